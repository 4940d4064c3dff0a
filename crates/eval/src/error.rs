use std::path::PathBuf;

/// Why an evaluation could not run. Each names the file at fault: a number
/// from a partly read dataset would be worse than none.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The dataset's `images/` could not be listed or holds no JPEG.
    #[error("cannot list the images of dataset folder {path}")]
    ListImages {
        /// The `images/` folder.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: edgesort_capture::CaptureError,
    },
    /// A label file could not be read.
    #[error("cannot read label file {path}")]
    ReadLabels {
        /// The label file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// A label line is not `class cx cy w h` with a known class.
    #[error("{path}:{line}: {reason}")]
    ParseLabel {
        /// The label file.
        path: PathBuf,
        /// One-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An image could not be read or decoded.
    #[error("cannot decode image {path}: {reason}")]
    DecodeImage {
        /// The image.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The detector failed on an image.
    #[error("detector failed on {path}")]
    Detect {
        /// The image.
        path: PathBuf,
        /// The detector's error.
        #[source]
        source: edgesort_infer::InferError,
    },
}
