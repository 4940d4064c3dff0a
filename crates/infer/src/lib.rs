//! From a camera frame to detections in frame pixels.
//!
//! The steps are those the model was trained with:
//! 1. [`Letterbox`] scales the frame to fit the model input, keeps its aspect
//!    ratio, centres it and pads with grey 114, writing planar RGB in 0..1
//!    straight into the backend's input tensor. A dynamic model gets a
//!    stride-aligned rectangle (640x384 for a 16:9 camera) instead of a square.
//! 2. A [`Backend`] runs the model. This crate owns the trait only; the tract
//!    CPU backend and the TensorRT backend live in crates of their own.
//! 3. [`decode_yolo`] turns the `batch x (4 + classes) x anchors` output into
//!    candidates and [`non_max_suppression`] keeps the best box per object and
//!    class.
//!
//! [`Detector`] runs the three steps and times each.
#![deny(missing_docs)]

mod backend;
mod decode;
mod detector;
mod error;
mod letterbox;

pub use backend::{Backend, ModelIo, TensorInfo};
pub use decode::{Candidate, DecodeParams, LabelsPerBox, decode_yolo, non_max_suppression};
pub use detector::{Detect, Detector, DetectorTimes, YoloIo, yolo_anchors, yolo_io};
pub use error::InferError;
pub use letterbox::{InputShape, Letterbox, PAD_VALUE, Resampler};
