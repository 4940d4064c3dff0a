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

/// Why a V4L2 camera could not be opened or read. Every message names the
/// device node.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// The device node does not exist.
    #[error(
        "no camera at {device}: the device node does not exist (is it plugged in? \
         `edgesort camera list` shows the cameras found)"
    )]
    NoDevice {
        /// The device node.
        device: PathBuf,
    },
    /// Another process holds the camera.
    #[error(
        "camera {device} is busy: another process is streaming from it (`fuser {device}` \
         names it)"
    )]
    Busy {
        /// The device node.
        device: PathBuf,
    },
    /// The process may not open the node.
    #[error("no permission to open camera {device}: run as root or join the `video` group")]
    Permission {
        /// The device node.
        device: PathBuf,
    },
    /// The node is not a capture device with streaming I/O.
    #[error("{device} ({card}, driver {driver}) is not a video capture device with streaming I/O")]
    NotCapture {
        /// The device node.
        device: PathBuf,
        /// The driver's card name.
        card: String,
        /// The driver.
        driver: String,
    },
    /// No usable mode.
    #[error("camera {device}: {source}")]
    Negotiation {
        /// The device node.
        device: PathBuf,
        /// What did not match.
        #[source]
        source: crate::NegotiationError,
    },
    /// The driver set a mode whose numbers cannot describe a frame.
    #[error("camera {device}: the driver's mode is unusable: {reason}")]
    UnusableMode {
        /// The device node.
        device: PathBuf,
        /// What does not add up.
        reason: String,
    },
    /// The camera went away (unplugged, USB reset).
    #[error("camera {device} disconnected")]
    Disconnected {
        /// The device node.
        device: PathBuf,
    },
    /// No frame arrived in time.
    #[error("camera {device} delivered no frame for {waited_ms} ms")]
    Timeout {
        /// The device node.
        device: PathBuf,
        /// How long it was waited for.
        waited_ms: u64,
    },
    /// One frame could not be used (`edgesort camera snap`); the capture
    /// thread counts such frames itself and goes on.
    #[error("camera {device}: frame {sequence} is unusable: {reason}")]
    CorruptFrame {
        /// The device node.
        device: PathBuf,
        /// The driver's sequence number.
        sequence: u32,
        /// What is wrong with it.
        reason: String,
    },
    /// Any other failure of a V4L2 call.
    #[error("camera {device}: {operation} failed")]
    Device {
        /// The device node.
        device: PathBuf,
        /// The call, e.g. `VIDIOC_S_FMT`.
        operation: &'static str,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
}

impl CameraError {
    /// Sorts a failed call on `device` into the error a technician can act on.
    pub fn from_io(
        device: &std::path::Path,
        operation: &'static str,
        source: std::io::Error,
    ) -> Self {
        let device = device.to_owned();
        match source.raw_os_error() {
            Some(libc::ENOENT) => CameraError::NoDevice { device },
            Some(libc::EBUSY) => CameraError::Busy { device },
            Some(libc::EACCES | libc::EPERM) => CameraError::Permission { device },
            Some(libc::ENODEV | libc::ENXIO | libc::ESHUTDOWN) => {
                CameraError::Disconnected { device }
            }
            _ => CameraError::Device {
                device,
                operation,
                source,
            },
        }
    }
}
