use std::path::PathBuf;

/// Why a frame source failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The clip folder or its `frames/` folder could not be listed.
    #[error("cannot list frames in {path}")]
    ListFrames {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The clip has no `*.jpg` frame.
    #[error("no *.jpg frames in {path}")]
    EmptyClip {
        /// The folder searched.
        path: PathBuf,
    },
    /// A frame file could not be read.
    #[error("cannot read frame {path}")]
    ReadFrame {
        /// The frame file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A frame is not a decodable JPEG.
    #[error("corrupt JPEG frame {path}: {reason}")]
    DecodeFrame {
        /// The frame file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// A frame decoded to another size than the camera's.
    #[error("frame {path} is {actual_width}x{actual_height}, the camera is {width}x{height}")]
    FrameSize {
        /// The frame file.
        path: PathBuf,
        /// Decoded width.
        actual_width: u32,
        /// Decoded height.
        actual_height: u32,
        /// Expected width.
        width: u32,
        /// Expected height.
        height: u32,
    },
}
