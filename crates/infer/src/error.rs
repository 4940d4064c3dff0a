use std::path::PathBuf;

/// Why loading or running the detector failed.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The model file does not exist.
    #[error("model file not found: {path}")]
    ModelNotFound {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The model file exists but the backend cannot load it.
    #[error("cannot load model {path}: {reason}")]
    LoadModel {
        /// The model file.
        path: PathBuf,
        /// The backend's message.
        reason: String,
    },
    /// The model's inputs or outputs are not those of a YOLOv8 detector.
    #[error("model {model} is not a YOLOv8 detector: {reason}")]
    NotYolo {
        /// The model's name or path.
        model: String,
        /// What does not fit.
        reason: String,
    },
    /// A tensor name the backend does not know.
    #[error("model has no tensor named {name:?}")]
    UnknownTensor {
        /// The name asked for.
        name: String,
    },
    /// The backend could not prepare the model for an input shape.
    #[error("cannot prepare the model for input shape {shape:?}: {reason}")]
    PrepareShape {
        /// The input shape.
        shape: Vec<usize>,
        /// The backend's message.
        reason: String,
    },
    /// Inference failed.
    #[error("inference failed: {reason}")]
    Run {
        /// The backend's message.
        reason: String,
    },
    /// The frame cannot be fed to this model.
    #[error("frame {width}x{height} cannot be letterboxed: {reason}")]
    FrameGeometry {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// Why not.
        reason: String,
    },
}
