use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::CaptureFormat;

/// The camera: a V4L2 device on the line, or a recorded clip standing in for it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// A V4L2 capture node, e.g. `/dev/video0` (a stable
    /// `/dev/v4l/by-id/...` link survives USB re-enumeration).
    #[serde(default)]
    pub device: Option<PathBuf>,
    /// A folder with `frames/*.jpg` replayed as the camera when no device is
    /// set, and by `edgesort replay` and the demo.
    #[serde(default)]
    pub replay: Option<PathBuf>,
    /// The daemon plays a replay clip over and over (a demonstration box, a
    /// soak run) instead of once.
    #[serde(default)]
    pub replay_loop: bool,
    /// Frames per second.
    pub fps: f64,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Formats the device may stream, most wanted first (`YUYV`, `NV12`,
    /// `RGB3`, `BGR3`, `GREY`, `MJPG`).
    #[serde(default = "all_formats")]
    pub formats: Vec<CaptureFormat>,
    /// Driver buffers: more ride out longer pipeline stalls, at the cost of latency.
    #[serde(default = "default_buffers")]
    pub buffers: u32,
    /// A device that delivers nothing this long is reported and reopened.
    #[serde(default = "default_stall_ms")]
    pub stall_ms: u64,
    /// Fixed image settings.
    #[serde(default)]
    pub controls: CameraControls,
}

fn all_formats() -> Vec<CaptureFormat> {
    CaptureFormat::ALL.to_vec()
}

fn default_buffers() -> u32 {
    4
}

fn default_stall_ms() -> u64 {
    1000
}

/// Image settings fixed at start; each left out stays as the camera has it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraControls {
    /// Exposure time in microseconds (auto-exposure off).
    pub exposure_us: Option<u32>,
    /// Analogue gain in the camera's own units (auto-gain off).
    pub gain: Option<i64>,
    /// White balance in kelvin (auto white balance off).
    pub white_balance_k: Option<i64>,
    /// Focus position in the camera's own units (autofocus off).
    pub focus: Option<i64>,
}
