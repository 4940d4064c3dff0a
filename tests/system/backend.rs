//! The tract backend against ONNX Runtime, and how the detector meets bad models.

use crate::common;

use edgesort_infer::{Backend, DecodeParams, Detector, InferError, LabelsPerBox};
use edgesort_infer_tract::TractBackend;

const PARAMS: DecodeParams = DecodeParams {
    confidence: 0.25,
    iou: 0.45,
    max_detections: 300,
    labels: LabelsPerBox::Best,
};

/// `scripts/make-reference-output.py` wrote these with ONNX Runtime 1.31.
#[test]
fn tract_output_matches_the_onnx_runtime_reference() {
    let reference = common::repo().join("tests/data/reference");
    let input_bytes = std::fs::read(reference.join("input_u8_3x384x640.bin")).unwrap();
    let expected: Vec<f32> = std::fs::read(reference.join("output_1x9x5040.f32"))
        .unwrap()
        .chunks_exact(4)
        .map(|bytes| f32::from_le_bytes(bytes.try_into().unwrap()))
        .collect();

    let mut backend =
        TractBackend::load(&common::repo().join("models/sorter_yolov8n_dynamic.onnx")).unwrap();
    let input = backend.input_mut("images", &[1, 3, 384, 640]).unwrap();
    for (value, byte) in input.iter_mut().zip(&input_bytes) {
        *value = *byte as f32 / 255.0;
    }
    backend.run().unwrap();
    let (output, shape) = backend.output("output0").unwrap();
    assert_eq!(shape, [1, 9, 5040]);

    // Element-wise, as numpy's allclose: |tract - ort| <= 1e-4 * |ort| + 1e-6.
    // The absolute term only matters for class scores of empty anchors
    // (~1e-6), where a relative comparison would measure float noise.
    let mut worst_relative = (0.0f32, 0usize);
    let mut worst_abs = 0.0f32;
    let mut violations = 0;
    for (index, (&got, &want)) in output.iter().zip(&expected).enumerate() {
        let difference = (got - want).abs();
        worst_abs = worst_abs.max(difference);
        if want.abs() >= 1e-2 && difference / want.abs() > worst_relative.0 {
            worst_relative = (difference / want.abs(), index);
        }
        if difference > 1e-4 * want.abs() + 1e-6 {
            violations += 1;
        }
    }
    println!(
        "max relative error {:.3e} (element {}, over |ref| >= 0.01), max absolute error {:.3e}, {violations} elements outside 1e-4 rtol + 1e-6 atol",
        worst_relative.0, worst_relative.1, worst_abs
    );
    assert_eq!(violations, 0);
}

#[test]
fn a_missing_model_is_reported_with_its_path() {
    let path = common::repo().join("models/no-such-model.onnx");
    let error = match TractBackend::load(&path) {
        Err(error) => error,
        Ok(_) => panic!("loaded a missing file"),
    };
    assert!(matches!(error, InferError::ModelNotFound { .. }));
    assert!(
        error.to_string().contains("models/no-such-model.onnx"),
        "{error}"
    );
}

#[test]
fn a_model_that_is_not_yolo_shaped_is_refused() {
    let backend = TractBackend::load(&common::repo().join("tests/data/not_yolo.onnx")).unwrap();
    let error = match Detector::new(backend, 5, 640, PARAMS) {
        Err(error) => error,
        Ok(_) => panic!("accepted a classifier as a detector"),
    };
    let message = error.to_string();
    assert!(matches!(error, InferError::NotYolo { .. }), "{message}");
    assert!(
        message.contains("not a YOLOv8 detector")
            && message.contains("expected [batch, 9, anchors]"),
        "{message}"
    );
}

#[test]
fn a_detector_with_the_wrong_class_count_is_refused() {
    let backend =
        TractBackend::load(&common::repo().join("models/sorter_yolov8n_dynamic.onnx")).unwrap();
    // The dynamic model leaves its output rank to shape inference, so the
    // class count can only be checked against the first run's output.
    let mut detector = Detector::new(backend, 80, 640, PARAMS).unwrap();
    let frame = edgesort_types::Frame::from_rgb(
        0,
        edgesort_types::Timestamp::ZERO,
        640,
        360,
        vec![114; 640 * 360 * 3],
    );
    let error = detector.detect(&frame).unwrap_err();
    assert!(matches!(error, InferError::NotYolo { .. }), "{error}");
    assert!(
        error.to_string().contains("expected [1, 84, 5040]"),
        "{error}"
    );
}

/// The tract backend writes each frame into the memory of the last one
/// (no 4.9 MB allocation per frame), and a reused input gives exactly what a
/// fresh backend gives.
#[test]
fn tract_reuses_its_input_tensor_and_a_reused_input_runs_like_a_fresh_one() {
    let model = common::repo().join("models/sorter_yolov8n_dynamic.onnx");
    let input_bytes =
        std::fs::read(common::repo().join("tests/data/reference/input_u8_3x384x640.bin")).unwrap();
    let shape = [1, 3, 384, 640];
    let write = |backend: &mut TractBackend, flip: bool| {
        let input = backend.input_mut("images", &shape).unwrap();
        for (value, byte) in input.iter_mut().zip(&input_bytes) {
            *value = if flip { 255 - byte } else { *byte } as f32 / 255.0;
        }
        input.as_ptr()
    };
    let mut reused = TractBackend::load(&model).unwrap();
    let first = write(&mut reused, false);
    reused.run().unwrap();
    let second = write(&mut reused, true);
    reused.run().unwrap();
    assert_eq!(first, second, "the second frame got a new input tensor");
    let mut fresh = TractBackend::load(&model).unwrap();
    write(&mut fresh, true);
    fresh.run().unwrap();
    let (reused_output, _) = reused.output("output0").unwrap();
    let (fresh_output, _) = fresh.output("output0").unwrap();
    assert!(
        reused_output
            .iter()
            .zip(fresh_output)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    assert!(matches!(reused.run(), Err(InferError::Run { .. })));
}
