use std::path::PathBuf;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The clip's frames could not be listed or read.
    #[error("cannot read clip frames in {path}")]
    ReadClip {
        /// The frame folder or file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// The clip holds no JPEG frames.
    #[error("clip {path} has no frames (expected frames/*.jpg)")]
    EmptyClip {
        /// The clip folder.
        path: PathBuf,
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
