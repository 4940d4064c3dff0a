//! Which detector serves the line, decided in one place for `edgesortd`,
//! `edgesort demo`, `edgesort replay` and `edgesort bench pipeline`.
//!
//! [`select`] honours `[engine] backend`:
//! - `auto` serves the engine that provisioning put in service
//!   (`provision/active.json`) once every check passes on this box: the
//!   binary has the TensorRT shim, a GPU and TensorRT are there, the record
//!   names a cache entry whose bytes match its manifest, the engine was
//!   built for this GPU, this TensorRT and this model, TensorRT loads it,
//!   and its inputs and outputs are a YOLO detector's for the configured
//!   classes. Otherwise tract runs on the CPU and [`ServedInfo::fallback`]
//!   names the check that failed ([`Fallback`]), for the `engine_fallback`
//!   alarm.
//! - `tensorrt` is the same checks with no fallback: the first that fails
//!   is [`ServeError::TensorRtRefused`].
//! - `cpu` serves tract whatever is provisioned.
//!
//! TensorRT sits behind [`EngineRuntime`] ("deserialize this plan into a
//! detector"), which [`TensorRtRuntime`] implements with the engine on the
//! GPU's stream between the GPU letterbox and decode
//! (`edgesort_infer_cuda::GpuDetector`); tests put a double there.
#![deny(missing_docs)]

mod error;
mod fallback;
mod runtime;
mod select;

pub use error::ServeError;
pub use fallback::Fallback;
pub use runtime::{EngineRuntime, RuntimeError, TensorRtRuntime};
pub use select::{Served, ServedBackend, ServedInfo, select, select_on_this_box};
