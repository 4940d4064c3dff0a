//! Frame sources: where images enter edgesort.
//!
//! [`LiveCamera`] streams a V4L2 camera (USB UVC or CSI) on its own thread:
//! the mode is negotiated from the configuration ([`negotiate`]), exposure
//! and friends are fixed ([`plan_controls`]), each frame carries the driver's
//! capture time and sequence number, YUYV, NV12, GREY, RGB and BGR are read in
//! place and MJPEG is decoded, and a camera that goes away is reopened. Where
//! a detector lends frame buffers and the driver takes user pointers, the
//! driver writes raw frames straight into them.
//!
//! [`ReplaySource`] plays a recorded clip (`frames/*.jpg`, in name order) as a
//! camera. Each frame gets a sequence number and a timestamp on the nominal
//! frame grid, `start + sequence / fps`, so a replay is deterministic whatever
//! the machine's speed; pacing it in real time is the caller's choice. A frame
//! that cannot be read or decoded is returned as an error for the caller to
//! count and skip: its sequence number is spent, as a camera's would be.
#![deny(missing_docs)]

mod controls;
mod convert;
mod error;
mod jpeg;
mod live;
pub mod negotiate;
mod replay;
mod userptr;
mod v4l2;

pub use controls::{ControlInfo, ControlPlan, ControlWrite, id as control_id, plan_controls};
pub use convert::raw_to_rgb;
pub use edgesort_types::config::CameraControls;
pub use edgesort_types::{CaptureFormat, fourcc_text};
pub use error::{CameraError, CaptureError};
pub use jpeg::{decode_jpeg_rgb, decode_jpeg_rgb_into};
pub use live::{
    CameraHealth, CaptureCounters, FrameDevice, LiveCamera, LiveOptions, Opener, live_settings,
};
pub use negotiate::{CameraRequest, NegotiationError, StreamMode};
pub use replay::{ReplaySource, clip_frames, list_jpegs, probe_frame_size};
pub use v4l2::{
    CameraDescription, CameraSettings, FormatListing, OpenReport, RawBytes, RawFrame, SizeListing,
    V4l2Camera, describe_camera, video_nodes,
};
