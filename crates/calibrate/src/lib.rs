//! On-device INT8 calibration: from an FP32 YOLO ONNX model and a folder of
//! frames to an explicit-quantization (Q/DQ) ONNX model that TensorRT 8.5,
//! 8.6 and 10.x build as INT8, plus TensorRT 8.x's implicit calibration
//! cache for the same ranges.
//!
//! 1. [`OnnxModel::plan`] decides where Q/DQ goes: the activation and weight
//!    inputs of every Conv outside the float set, and, walking back from
//!    them, the inputs of Concat, residual Add, MaxPool and Resize, which
//!    TensorRT runs in INT8 when their inputs share one scale.
//! 2. [`Collector`] runs the FP32 model on each frame, letterboxed as at
//!    runtime, and adds every planned tensor to a fixed-size [`Histogram`].
//!    Frames come from an image folder ([`calibrate_folder`]) or from the
//!    line's camera, through [`DiverseFrames`], which keeps a bounded set of
//!    frames that differ from each other.
//! 3. A [`Method`] turns each histogram into a range (amax): entropy (as
//!    TensorRT's EntropyCalibration2), a percentile, or the maximum. Tensors
//!    that must share a scale take their group's largest range.
//! 4. [`OnnxModel::with_qdq`] writes the Q/DQ model: int8 zero points, FP32
//!    scales, per-output-channel symmetric INT8 weights.
#![deny(missing_docs)]

mod cache;
mod collect;
mod error;
mod graph;
mod histogram;
mod run;
mod scales;
mod select;
mod sensitivity;

use std::collections::BTreeMap;
use std::path::Path;

pub use cache::{CacheError, read_cache, trt8_version, write_cache};
pub use collect::Collector;
pub use error::CalibrateError;
pub use graph::{OnnxModel, QuantPlan, quantize};
pub use histogram::{HISTOGRAM_BINS, Histogram};
pub use run::{
    FolderCalibration, Settings, TensorRange, calibrate_folder, first_frames, peak_rss_mib,
    tensor_ranges,
};
pub use scales::{INT8_LEVELS, Method, entropy_bins, percentile_bins};
pub use select::{DiverseFrames, RgbFrame};
pub use sensitivity::{LayerSensitivity, layer_sensitivity};

/// The ranges of one calibration run.
#[derive(Clone, Debug)]
pub struct Ranges {
    /// Range per planned tensor as its own histogram gives it.
    pub measured: BTreeMap<String, f32>,
    /// Range per planned tensor after scale sharing: what the model uses.
    pub shared: BTreeMap<String, f32>,
}

/// Picks each tensor's range with `method` and applies `plan`'s scale
/// sharing.
pub fn ranges(
    plan: &QuantPlan,
    histograms: &BTreeMap<String, Histogram>,
    method: Method,
) -> Ranges {
    let measured: BTreeMap<String, f32> = histograms
        .iter()
        .map(|(tensor, histogram)| (tensor.clone(), method.amax(histogram)))
        .collect();
    let shared = plan.shared_amax(&measured);
    Ranges { measured, shared }
}

/// Writes `bytes` to `path` so that a power cut or an interrupted run
/// leaves either the old file or the new one, never a part.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CalibrateError> {
    edgesort_types::write_atomically(path, bytes).map_err(|source| CalibrateError::Write {
        path: path.to_owned(),
        source,
    })
}
