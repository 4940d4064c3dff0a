//! TensorRT on the box: the `EngineBuilder` that builds engines through
//! our `tensorrt-sys`, and the `Backend` that runs them on a CUDA stream
//! owned through cudarc.
//!
//! [`TensorRtBuilder`] maps an engine-cache `BuildJob` onto a TensorRT
//! build (precision, profile, workspace, DLA, timing cache, progress) and
//! says when a build ran out of memory, so the cache can retry smaller.
//! [`TensorRtEngine`] is a deserialized engine that runs on the device
//! buffers and stream it is given: the line's GPU detector
//! (`edgesort_infer_cuda::GpuDetector`) letterboxes straight into its input
//! binding and decodes straight from its output binding.
//! [`TensorRtBackend`] wraps it behind the CPU detector's `Backend` seam,
//! copying host tensors in and out, for provisioning's check of a new
//! engine against the CPU reference.
#![deny(missing_docs)]

mod backend;
mod builder;
mod engine;

pub use backend::{TensorRtBackend, TensorRtBackendError};
pub use builder::TensorRtBuilder;
pub use engine::TensorRtEngine;
