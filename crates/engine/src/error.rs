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
    /// An entry of the cache could not be opened, listed or made without
    /// following a link, or is not what the cache keeps there (a link, a
    /// FIFO, a socket); nothing was done through it.
    #[error("cannot open {path} in the engine cache")]
    OpenEntry {
        /// The entry.
        path: PathBuf,
        /// The cause, naming what was found.
        source: edgesort_types::BeneathError,
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
