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
    /// A detections recording (the test double's) cannot be read.
    #[error("cannot read detections recording {path}")]
    ReadRecording {
        /// The recording.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line of a detections recording is not one frame's detections.
    #[error("cannot parse detections recording {path}, line {line}")]
    ParseRecording {
        /// The recording.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A line of a detections recording holds another frame than its own:
    /// the recording skips, repeats or reorders frames.
    #[error(
        "detections recording {path}, line {line}: frame {found} where frame {expected} belongs \
         (record every frame of the clip, in order: `edgesort replay --fast --record-detections`)"
    )]
    RecordingOrder {
        /// The recording.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The frame the line should hold: its line number less one.
        expected: u64,
        /// The frame it holds.
        found: u64,
    },
    /// A detections recording holds no frame.
    #[error("detections recording {path} holds no frame")]
    EmptyRecording {
        /// The recording.
        path: PathBuf,
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
    /// A detector to swap in could not be built; the running one serves on.
    #[error("cannot build the detector {backend} to swap in: {reason}")]
    BuildSwappedDetector {
        /// The detector asked for.
        backend: String,
        /// Why.
        reason: String,
    },
}
