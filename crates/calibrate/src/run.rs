//! Calibrating from a folder of images, as `edgesort calibrate` does.

use std::path::{Path, PathBuf};
use std::time::Instant;

use edgesort_capture::{decode_jpeg_rgb, list_jpegs};
use edgesort_infer::InputShape;
use prost::Message;
use serde::Serialize;
use tract_onnx::pb::ModelProto;

use crate::{CalibrateError, Collector, Method, OnnxModel, QuantPlan, Ranges, RgbFrame, ranges};

/// What a calibration run may vary.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How each activation's range is chosen.
    pub method: Method,
    /// Use at most this many images (the first, in name order).
    pub max_images: Option<usize>,
    /// Fewer usable images than this is an error.
    pub min_images: usize,
    /// Conv nodes kept in float, besides the decode.
    pub float_nodes: Vec<String>,
    /// Keep YOLO's box and class decode in float.
    pub float_decode: bool,
    /// Inference threads for the forward passes.
    pub threads: usize,
}

/// The outcome of [`calibrate_folder`].
#[derive(Clone, Debug)]
pub struct FolderCalibration {
    /// Where Q/DQ went.
    pub plan: QuantPlan,
    /// The ranges chosen.
    pub ranges: Ranges,
    /// Images that were run.
    pub images_used: usize,
    /// Images that could not be read or decoded, with the reason.
    pub images_skipped: Vec<(PathBuf, String)>,
    /// The Q/DQ model.
    pub qdq: ModelProto,
    /// Wall time of the run, forward passes included.
    pub seconds: f64,
    /// The FP32 model it started from.
    pub model: OnnxModel,
    /// The settings it ran with.
    pub settings: Settings,
}

impl FolderCalibration {
    /// The Q/DQ model as ONNX bytes.
    pub fn qdq_bytes(&self) -> Vec<u8> {
        self.qdq.encode_to_vec()
    }

    /// The same calibration with `extra_float` Conv nodes also kept in
    /// float: the ranges measured once serve every float set, since floating
    /// a layer only removes tensors from the plan.
    pub fn with_float(&self, extra_float: &[String]) -> FolderCalibration {
        let mut settings = self.settings.clone();
        settings.float_nodes.extend(extra_float.iter().cloned());
        let plan = self
            .model
            .plan(&settings.float_nodes, settings.float_decode);
        let shared = plan.shared_amax(&self.ranges.measured);
        let measured = plan
            .tensors
            .iter()
            .map(|tensor| (tensor.clone(), self.ranges.measured[tensor]))
            .collect();
        let qdq = self.model.with_qdq(&plan, &shared);
        FolderCalibration {
            plan,
            ranges: Ranges { measured, shared },
            qdq,
            settings,
            images_skipped: self.images_skipped.clone(),
            model: self.model.clone(),
            ..*self
        }
    }
}

/// Runs the FP32 model at `model_path` over the JPEG images in `images`,
/// letterboxed for `input_shape`, and builds the Q/DQ model. Unreadable
/// images are skipped and counted. `progress` hears (images done, images
/// in all) after each image.
pub fn calibrate_folder(
    model_path: &Path,
    input_shape: InputShape,
    images: &Path,
    settings: &Settings,
    mut progress: impl FnMut(usize, usize),
) -> Result<FolderCalibration, CalibrateError> {
    let started = Instant::now();
    let model = OnnxModel::load(model_path)?;
    model.check_float_nodes(model_path, &settings.float_nodes)?;
    let plan = model.plan(&settings.float_nodes, settings.float_decode);
    let mut paths = list_images(images)?;
    if let Some(limit) = settings.max_images {
        paths.truncate(limit);
    }
    let mut collector = Collector::new(model_path, &plan, input_shape, settings.threads)?;
    let mut skipped = Vec::new();
    for (done, path) in paths.iter().enumerate() {
        match read_frame(path) {
            Ok((width, height, rgb)) => collector.observe(width, height, &rgb)?,
            Err(reason) => {
                tracing::warn!(image = %path.display(), %reason, "skipping calibration image");
                skipped.push((path.clone(), reason));
            }
        }
        progress(done + 1, paths.len());
    }
    if collector.frames() < settings.min_images {
        return Err(CalibrateError::TooFewImages {
            path: images.to_owned(),
            usable: collector.frames(),
            skipped: skipped.len(),
            minimum: settings.min_images,
        });
    }
    let ranges = ranges(&plan, collector.histograms(), settings.method);
    let qdq = model.with_qdq(&plan, &ranges.shared);
    Ok(FolderCalibration {
        plan,
        images_used: collector.frames(),
        images_skipped: skipped,
        ranges,
        qdq,
        seconds: started.elapsed().as_secs_f64(),
        model,
        settings: settings.clone(),
    })
}

/// The first `count` readable images of the folder `images`, for measuring
/// per-layer sensitivity.
pub fn first_frames(images: &Path, count: usize) -> Result<Vec<RgbFrame>, CalibrateError> {
    Ok(list_images(images)?
        .iter()
        .filter_map(|path| read_frame(path).ok())
        .take(count)
        .collect())
}

fn list_images(images: &Path) -> Result<Vec<PathBuf>, CalibrateError> {
    list_jpegs(images).map_err(|error| CalibrateError::ListImages {
        path: images.to_owned(),
        reason: error.to_string(),
    })
}

/// A JPEG file as a packed RGB frame, or why it cannot be one.
fn read_frame(path: &Path) -> Result<RgbFrame, String> {
    std::fs::read(path)
        .map_err(|error| error.to_string())
        .and_then(|bytes| decode_jpeg_rgb(&bytes))
}

/// One tensor's line in the report.
#[derive(Clone, Debug, Serialize)]
pub struct TensorRange {
    /// Tensor name.
    pub tensor: String,
    /// The range the model uses (after scale sharing).
    pub amax: f32,
    /// The range its own statistics gave.
    pub measured_amax: f32,
    /// Tensors with the same group share one scale.
    pub group: usize,
}

/// Per-tensor ranges for a report, in graph order.
pub fn tensor_ranges(plan: &QuantPlan, ranges: &Ranges) -> Vec<TensorRange> {
    plan.tensors
        .iter()
        .map(|tensor| TensorRange {
            tensor: tensor.clone(),
            amax: ranges.shared[tensor],
            measured_amax: ranges.measured[tensor],
            group: plan.group_of[tensor],
        })
        .collect()
}

/// Peak resident memory of this process so far, in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
