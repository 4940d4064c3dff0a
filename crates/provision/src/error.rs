use std::path::PathBuf;

/// What went wrong while provisioning.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The engine cache failed.
    #[error(transparent)]
    Engine(#[from] edgesort_engine::EngineError),
    /// Hashing or reading an input of the engine key failed.
    #[error("cannot read {path}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing provisioning state failed.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The CPU reference model could not be loaded.
    #[error("cannot load the CPU reference model")]
    LoadReference(#[from] edgesort_infer::InferError),
    /// INT8 calibration failed.
    #[error("INT8 calibration failed")]
    Calibrate(#[from] edgesort_calibrate::CalibrateError),
    /// The validation images could not be read.
    #[error("no usable validation images in {path}")]
    ValidationImages {
        /// The folder.
        path: PathBuf,
    },
}
