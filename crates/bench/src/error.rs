use std::path::PathBuf;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The clip's frames could not be listed.
    #[error(transparent)]
    ListFrames(#[from] edgesort_capture::CaptureError),
    /// A frame file could not be read.
    #[error("cannot read frame {path}")]
    ReadClip {
        /// The frame file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// A frame would not decode.
    #[error("cannot decode frame {index} of {clip}: {reason}")]
    DecodeFrame {
        /// The clip's name.
        clip: String,
        /// Frame index.
        index: usize,
        /// The decoder's message.
        reason: String,
    },
    /// A generated frame would not encode.
    #[error("cannot encode a generated frame: {0}")]
    EncodeFrame(String),
    /// The detector failed.
    #[error(transparent)]
    Detect(#[from] edgesort_infer::InferError),
}
