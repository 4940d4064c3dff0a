use std::path::PathBuf;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The event store could not be opened.
    #[error(transparent)]
    Store(#[from] edgesort_store::StoreError),
    /// The ejector outputs could not be set up.
    #[error(transparent)]
    Actuate(#[from] edgesort_actuate::ActuateError),
    /// The configuration names neither a camera nor a clip.
    #[error("camera: neither camera.device nor camera.replay is set")]
    NoSource,
    /// One output pin per ejector is needed.
    #[error("{pins} output pins for {ejectors} ejectors")]
    PinCount {
        /// Pins given.
        pins: usize,
        /// Ejectors configured.
        ejectors: usize,
    },
    /// The configuration file the daemon runs from cannot be read.
    #[error("cannot read config {path}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
