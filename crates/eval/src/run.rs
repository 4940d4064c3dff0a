use edgesort_capture::decode_jpeg_rgb;
use edgesort_infer::{Backend, DecodeParams, Detector, LabelsPerBox};
use edgesort_types::{Frame, Timestamp};

use crate::{Dataset, EvalError, Evaluation, ImageResult, Protocol, score};

/// Evaluation-style NMS, as Ultralytics' `val`: keep nearly everything the
/// model proposes, so the precision-recall curve runs to its end.
pub const EVALUATION_PARAMS: DecodeParams = DecodeParams {
    confidence: 0.001,
    iou: 0.7,
    max_detections: 300,
    labels: LabelsPerBox::Every,
};

/// Runs `detector` (built with [`EVALUATION_PARAMS`]) over every image of
/// `dataset` and scores it; precision and recall are counted at
/// `report_confidence`, by `protocol`'s rules. `progress` is called after each image with the count
/// done so far.
pub fn evaluate<B: Backend>(
    detector: &mut Detector<B>,
    dataset: &Dataset,
    class_names: &[String],
    report_confidence: f32,
    protocol: Protocol,
    progress: impl FnMut(usize),
) -> Result<Evaluation, EvalError> {
    let results = detect_all(detector, dataset, progress)?;
    Ok(score(&results, class_names, report_confidence, protocol))
}

fn detect_all<B: Backend>(
    detector: &mut Detector<B>,
    dataset: &Dataset,
    mut progress: impl FnMut(usize),
) -> Result<Vec<ImageResult>, EvalError> {
    let mut results = Vec::with_capacity(dataset.images.len());
    for (sequence, labelled) in dataset.images.iter().enumerate() {
        let decode_error = |reason: String| EvalError::DecodeImage {
            path: labelled.image.clone(),
            reason,
        };
        let bytes =
            std::fs::read(&labelled.image).map_err(|error| decode_error(error.to_string()))?;
        let (width, height, rgb) = decode_jpeg_rgb(&bytes).map_err(decode_error)?;
        let frame = Frame::from_rgb(sequence as u64, Timestamp::default(), width, height, rgb);
        let (detections, _) = detector
            .detect(&frame)
            .map_err(|source| EvalError::Detect {
                path: labelled.image.clone(),
                source,
            })?;
        let (width, height) = (width as f32, height as f32);
        let truths = labelled
            .objects
            .iter()
            .map(|object| (object.class, object.bbox(width, height)))
            .collect();
        results.push(ImageResult { truths, detections });
        progress(sequence + 1);
    }
    Ok(results)
}
