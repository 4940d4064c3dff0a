//! How accurate is a detector? COCO-style mAP on a YOLO-format dataset.
//!
//! The instrument every accuracy claim goes through: the FP32 model against
//! Ultralytics' figures, the INT8 model against the FP32 one (calibration's
//! accuracy gate), and later each TensorRT engine. Steps:
//! 1. [`Dataset::open`] reads `images/*.jpg` and `labels/*.txt` (one line per
//!    object, `class cx cy w h` normalised to the image; an image without a
//!    label file shows no object, as in YOLO's convention).
//! 2. [`evaluate`] runs a [`Detector`](edgesort_infer::Detector) over every
//!    image with the runtime's own preprocessing but evaluation-style NMS
//!    ([`EVALUATION_PARAMS`]: confidence 0.001, IoU 0.7, at most 300
//!    detections, every class above threshold per box).
//! 3. [`score`] matches detections to labels per image and class at IoU
//!    0.50:0.05:0.95, samples the precision-recall curve at 101 recall points
//!    per class and threshold, and takes the mean over the classes that have
//!    labels. It follows either Ultralytics' `val` or pycocotools' COCOeval
//!    to the letter ([`Protocol`]): the two differ by about 0.01 mAP50-95 on
//!    the same detections, and a figure is only comparable with one of its
//!    own kind. It is pure, so tests feed it hand-made cases and both tools'
//!    recorded outputs.
#![deny(missing_docs)]

mod dataset;
mod error;
mod metrics;
mod run;

pub use dataset::{Dataset, LabelledImage, Object};
pub use error::EvalError;
pub use metrics::{ClassAccuracy, Evaluation, IOU_THRESHOLDS, ImageResult, Protocol, score};
pub use run::{EVALUATION_PARAMS, evaluate};
