//! Which Conv layers INT8 hurts most: each one is quantized alone and the
//! model's output compared with the FP32 output on the same frames.

use std::collections::BTreeMap;
use std::path::Path;

use edgesort_infer::{Backend, InputShape};
use edgesort_infer_tract::TractBackend;
use prost::Message;
use serde::Serialize;

use crate::collect::Feeder;
use crate::{CalibrateError, OnnxModel, QuantPlan, RgbFrame, write_atomically};

/// Anchors whose best class score reaches this in the FP32 output are the
/// ones the comparison weighs: they become detections.
const CONFIDENT: f32 = 0.25;

/// One layer's effect on the output when it alone runs in INT8.
#[derive(Clone, Debug, Serialize)]
pub struct LayerSensitivity {
    /// The Conv node.
    pub conv: String,
    /// Mean over confident anchors of the box error (sum of the four
    /// coordinate errors over the box's width + height) plus the summed
    /// class-score error; 0 means no change.
    pub output_error: f64,
}

/// Measures every Conv of `plan` alone in INT8 (ranges from `measured`) on
/// `frames`, most harmful first. `progress` hears (layers done, layers).
#[allow(clippy::too_many_arguments)]
pub fn layer_sensitivity(
    model_path: &Path,
    model: &OnnxModel,
    plan: &QuantPlan,
    measured: &BTreeMap<String, f32>,
    frames: &[RgbFrame],
    input_shape: InputShape,
    threads: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<LayerSensitivity>, CalibrateError> {
    let reference = outputs(
        TractBackend::load(model_path)?,
        frames,
        input_shape,
        threads,
    )?;
    let scratch = tempfile::tempdir().map_err(|source| CalibrateError::Write {
        path: std::env::temp_dir(),
        source,
    })?;
    let variant_path = scratch.path().join("one-layer.qdq.onnx");
    let mut sensitivities = Vec::with_capacity(plan.quantized_convs.len());
    for (done, conv) in plan.quantized_convs.iter().enumerate() {
        let others: Vec<String> = plan
            .quantized_convs
            .iter()
            .filter(|other| *other != conv)
            .chain(&plan.float_convs)
            .cloned()
            .collect();
        let alone = model.plan(&others, true);
        let proto = model.with_qdq(&alone, &alone.shared_amax(measured));
        write_atomically(&variant_path, &proto.encode_to_vec())?;
        let quantized = outputs(
            TractBackend::load(&variant_path)?,
            frames,
            input_shape,
            threads,
        )?;
        let error = reference
            .iter()
            .zip(&quantized)
            .map(|((expected, shape), (found, _))| output_error(expected, found, shape))
            .sum::<f64>()
            / frames.len().max(1) as f64;
        sensitivities.push(LayerSensitivity {
            conv: conv.clone(),
            output_error: error,
        });
        progress(done + 1, plan.quantized_convs.len());
    }
    sensitivities.sort_by(|a, b| b.output_error.total_cmp(&a.output_error));
    Ok(sensitivities)
}

type Output = (Vec<f32>, Vec<usize>);

fn outputs(
    backend: TractBackend,
    frames: &[RgbFrame],
    input_shape: InputShape,
    threads: usize,
) -> Result<Vec<Output>, CalibrateError> {
    let mut backend = backend.with_threads(threads);
    let io = backend.io().clone();
    let mut feeder = Feeder::new(io.inputs[0].name.clone(), input_shape);
    frames
        .iter()
        .map(|(width, height, rgb)| {
            feeder.feed(&mut backend, *width, *height, rgb)?;
            backend.run()?;
            let (values, shape) = backend.output(&io.outputs[0].name)?;
            Ok((values.to_vec(), shape.to_vec()))
        })
        .collect()
}

/// The error of `found` against `expected`, both `[1, 4 + classes, anchors]`.
fn output_error(expected: &[f32], found: &[f32], shape: &[usize]) -> f64 {
    let (rows, anchors) = (shape[1], shape[2]);
    let at = |values: &[f32], row: usize, anchor: usize| values[row * anchors + anchor];
    let (mut total, mut confident) = (0.0, 0usize);
    for anchor in 0..anchors {
        let best = (4..rows)
            .map(|row| at(expected, row, anchor))
            .fold(0.0f32, f32::max);
        if best < CONFIDENT {
            continue;
        }
        confident += 1;
        let size = (at(expected, 2, anchor) + at(expected, 3, anchor)).max(1.0);
        let box_error: f32 = (0..4)
            .map(|row| (at(expected, row, anchor) - at(found, row, anchor)).abs())
            .sum::<f32>()
            / size;
        let score_error: f32 = (4..rows)
            .map(|row| (at(expected, row, anchor) - at(found, row, anchor)).abs())
            .sum();
        total += f64::from(box_error + score_error);
    }
    total / confident.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_confident_anchors_count_and_boxes_are_relative() {
        // Two anchors, one class: anchor 0 is confident (0.9), anchor 1 not.
        // Layout [1, 5, 2]: rows cx, cy, w, h, score.
        let expected = [10.0, 50.0, 20.0, 50.0, 8.0, 9.0, 12.0, 9.0, 0.9, 0.1];
        let found = [11.0, 0.0, 20.0, 0.0, 8.0, 0.0, 13.0, 0.0, 0.8, 0.9];
        // Anchor 0: |Δ| = 1 + 0 + 0 + 1 over w + h = 20, plus |Δscore| 0.1.
        let error = output_error(&expected, &found, &[1, 5, 2]);
        assert!((error - (2.0 / 20.0 + 0.1)).abs() < 1e-6, "{error}");
    }
}
