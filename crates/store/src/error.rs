use std::path::PathBuf;

/// Why the event store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or set up.
    #[error("cannot open event database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite refused write-ahead logging, without which a power cut can
    /// corrupt the file (e.g. the file system lacks shared memory).
    #[error("event database {path} cannot use WAL mode (journal mode is {mode:?})")]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// A write failed.
    #[error("cannot write to event database {path}")]
    Write {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A corrupt database could not be moved aside.
    #[error("cannot move corrupt event database {path} aside to {to}")]
    MoveAside {
        /// The file being moved.
        path: PathBuf,
        /// Where it was to go.
        to: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A read failed.
    #[error("cannot read event database {path}")]
    Read {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}
