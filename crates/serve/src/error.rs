use std::path::PathBuf;

use crate::Fallback;

/// Why no detector can serve the line.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `backend = "tensorrt"` and the provisioned engine cannot serve.
    #[error(
        "engine.backend is \"tensorrt\" but the TensorRT engine cannot serve the line: {reason}"
    )]
    TensorRtRefused {
        /// The check that failed.
        reason: Fallback,
    },
    /// The CPU backend could not load the model.
    #[error("cannot load {path} on the CPU backend")]
    LoadCpuModel {
        /// The model file.
        path: PathBuf,
        /// The cause.
        source: edgesort_infer::InferError,
    },
    /// TensorRT could not deserialize the engine that passed its checks
    /// (a restart of the inference stage loads it again).
    #[error("cannot load engine {path}")]
    LoadEngine {
        /// The engine file.
        path: PathBuf,
        /// The cause.
        source: crate::RuntimeError,
    },
    /// The backend's model is not the configured detector.
    #[error("cannot set up the detector over {what}")]
    SetUpDetector {
        /// The model or engine.
        what: String,
        /// The cause.
        source: edgesort_infer::InferError,
    },
}
