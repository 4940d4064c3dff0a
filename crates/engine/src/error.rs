use std::path::PathBuf;

/// What went wrong in the engine cache.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The cache folder could not be created or listed.
    #[error("cannot open engine cache {path}")]
    OpenCache {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process holds the cache and taking the lock failed.
    #[error("cannot lock engine cache {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading a file of the cache failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing a file of the cache failed.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Moving a broken engine aside failed.
    #[error("cannot quarantine {path}")]
    Quarantine {
        /// The engine file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The detector around a new engine could not be set up or run.
    #[error("cannot run the validation images through {what}")]
    RunValidation {
        /// Which model or engine.
        what: String,
        /// The cause.
        source: edgesort_infer::InferError,
    },
}
