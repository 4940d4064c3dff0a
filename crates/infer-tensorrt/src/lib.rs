//! TensorRT on the box: the `EngineBuilder` that builds engines through
//! our `tensorrt-sys`, and the `Backend` that runs them on a CUDA stream
//! owned through cudarc.
//!
//! [`TensorRtBuilder`] maps an engine-cache `BuildJob` onto a TensorRT
//! build (precision, profile, workspace, DLA, timing cache, progress) and
//! says when a build ran out of memory, so the cache can retry smaller.
//! [`TensorRtBackend`] deserializes a plan, sizes device buffers for the
//! input shape the detector asks for, and per run copies the input in,
//! enqueues, copies the output out and waits. The copies go through
//! host buffers for now; on Jetson, where CPU and GPU share memory, the GPU
//! preprocessing of the next issue writes the input on the device instead.
#![deny(missing_docs)]

mod backend;
mod builder;

pub use backend::{TensorRtBackend, TensorRtBackendError};
pub use builder::TensorRtBuilder;
