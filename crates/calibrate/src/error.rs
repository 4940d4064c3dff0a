use std::path::PathBuf;

use edgesort_eval::EvalError;
use edgesort_infer::InferError;

/// Why calibration stopped.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// The model file cannot be read or parsed as ONNX.
    #[error("cannot read ONNX model {path}: {reason}")]
    ReadModel {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The model is ONNX but not one this calibrator turns into INT8.
    #[error("cannot calibrate {path}: {reason}")]
    Unsupported {
        /// The model file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// The calibration images cannot be listed.
    #[error("cannot list calibration images in {path}: {reason}")]
    ListImages {
        /// The image folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Too few images could be used.
    #[error(
        "only {usable} usable calibration images in {path} ({skipped} unreadable), at least {minimum} needed"
    )]
    TooFewImages {
        /// The image folder.
        path: PathBuf,
        /// Images decoded and run.
        usable: usize,
        /// Images skipped as unreadable.
        skipped: usize,
        /// The configured minimum.
        minimum: usize,
    },
    /// Running the FP32 model failed.
    #[error(transparent)]
    Infer(#[from] InferError),
    /// Evaluating accuracy failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// An output file cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}
