use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use edgesort_actuate::EstopState;
use serde::Serialize;

use crate::control::EngineInfo;
use crate::latency::{LatencyWindow, RateMeter, TIMED_STAGES};

/// Outages kept for the status; older ones are in the log.
const OUTAGES_KEPT: usize = 32;

/// Below this much free space on the store's disk the status raises an alarm.
const DISK_LOW_BYTES: u64 = 512 << 20;

/// The line as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineState {
    /// No frame processed yet.
    Starting,
    /// Every stage up, frames flowing, outputs armed.
    Running,
    /// A stage is down, the camera is lost, the line has stalled or the
    /// e-stop holds: outputs are in their safe state.
    Degraded,
    /// The replay clip has ended and every part and pulse is accounted for.
    Finished,
    /// Shutting down.
    Stopped,
}

/// p50, p99 and max of a stage over the recent frames, in ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// One stage under supervision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageStatus {
    /// Stage name.
    pub name: String,
    /// `running`, `down` (waiting to restart), `ended` (its input ended) or `stopped`.
    pub state: String,
    /// Restarts since the daemon started.
    pub restarts: u64,
    /// Why it last went down.
    pub last_error: Option<String>,
}

/// A stretch of time the line was down because a stage failed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outage {
    /// The stage that failed.
    pub stage: String,
    /// Why.
    pub error: String,
    /// When it went down, ns on the monotonic clock (the clock pulses are
    /// stamped with).
    pub down_ns: u64,
    /// When the line processed a frame again; `None` while still down.
    pub up_ns: Option<u64>,
}

/// The camera.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CameraStatus {
    /// `replay: <clip>` or the device node.
    pub source: String,
    /// `opening`, `streaming`, `lost` or `ended`.
    pub state: String,
    /// Why it is lost.
    pub detail: Option<String>,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// How a frame gets from the driver to the detector, and what it costs
    /// (copies, conversions); `None` for a replayed clip.
    pub path: Option<String>,
}

/// One ejector output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutputStatus {
    /// Lane.
    pub lane: String,
    /// Header pin.
    pub pin: u32,
    /// Driven high now.
    pub high: bool,
    /// Times driven from low to high: the pulses fired on this lane less
    /// those merged into a neighbour (closer than `safety.min_gap_ms`).
    pub activations: u64,
}

/// The e-stop and its latch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EstopView {
    /// An e-stop input is configured.
    pub wired: bool,
    /// `clear`, `pressed` or `released_awaiting_reset`.
    pub state: EstopState,
    /// The input could not be read (now, or when it tripped the latch).
    pub input_fault: bool,
    /// Presses and read errors since the daemon started.
    pub trips: u64,
    /// From the latest trip's input edge to every output low, ms.
    pub last_response_ms: Option<f64>,
    /// The part of it from the e-stop watcher reading the press to every
    /// output low, ms (GPIO lines only); the rest is the kernel's delivery.
    pub last_reaction_ms: Option<f64>,
    /// The reset button's header pin, if one is wired.
    pub reset_input: Option<u32>,
    /// Whether the API may reset the latch from another machine.
    pub remote_reset: bool,
}

/// The belt's motion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BeltView {
    /// Speed now, mm/s: the encoder's measurement, or the configured speed.
    pub speed_mm_s: f64,
    /// An encoder gives the belt's position.
    pub encoder: bool,
    /// Encoder edges since the daemon started.
    pub encoder_edges: u64,
    /// The encoder gives no edges while parts move: pulses are refused.
    pub encoder_silent: bool,
}

/// The GPIO side.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpioStatus {
    /// The e-stop latch.
    pub estop: EstopView,
    /// Outputs are held in their safe state (low, pulses dropped).
    pub safe: bool,
    /// Each ejector output.
    pub outputs: Vec<OutputStatus>,
}

/// What the line has sorted since the daemon started.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Parts decided.
    pub parts: u64,
    /// Pulses fired.
    pub ejections: u64,
    /// Parts decided, per voted class.
    pub per_class: BTreeMap<String, u64>,
    /// Pulses fired, per lane.
    pub per_lane: BTreeMap<String, u64>,
    /// Pulses not fired, per reason (`late`, `stalled`, `estop`,
    /// `no_belt_position`, ...).
    pub not_fired: BTreeMap<String, u64>,
}

/// Something a technician must look at.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alarm {
    /// `camera_lost`, `estop_latched`, `estop_input_fault`, `encoder_silent`,
    /// `engine_fallback`, `disk_low`, `store_reset`, `stage_down` or `stalled`.
    pub kind: String,
    /// One line for a person.
    pub message: String,
}

/// The event database.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoreStatus {
    /// The SQLite file.
    pub path: String,
    /// The file and its write-ahead log, bytes.
    pub size_bytes: u64,
    /// Free space on its filesystem, bytes.
    pub disk_free_bytes: u64,
    /// Rows queued and not yet committed.
    pub queued: u64,
}

/// Rates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Fps {
    /// Frames from the camera per second.
    pub camera: f64,
    /// Frames through the detector per second.
    pub processed: f64,
}

/// Frame totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Frames {
    /// From the camera.
    pub captured: u64,
    /// Through the whole line.
    pub processed: u64,
}

/// Frames lost, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Drops {
    /// Replaced by a newer frame before the detector took them.
    pub pipeline: u64,
    /// Undecodable or flagged damaged.
    pub corrupt: u64,
    /// Lost by the driver.
    pub driver: u64,
}

/// Everything `GET /status` answers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    /// The line as a whole.
    pub state: LineState,
    /// `state == running`.
    pub healthy: bool,
    /// Seconds since the daemon started.
    pub uptime_s: f64,
    /// Rates.
    pub fps: Fps,
    /// Totals.
    pub frames: Frames,
    /// Losses.
    pub drops: Drops,
    /// Per-stage latency over the recent frames, ms.
    pub latency_ms: BTreeMap<String, Percentiles>,
    /// Total latency of the recent frames, ms, oldest first.
    pub latency_history_ms: Vec<f64>,
    /// The supervised stages.
    pub stages: Vec<StageStatus>,
    /// The inference engine.
    pub engine: EngineInfo,
    /// The camera.
    pub camera: CameraStatus,
    /// Outputs and e-stop.
    pub gpio: GpioStatus,
    /// The belt.
    pub belt: BeltView,
    /// Sorting totals.
    pub counts: Counts,
    /// What needs attention.
    pub alarms: Vec<Alarm>,
    /// The event database.
    pub store: StoreStatus,
    /// Recent stage outages.
    pub outages: Vec<Outage>,
}

/// The mutable part of the status, written by the stages.
pub(crate) struct Board {
    pub frames_captured: u64,
    pub frames_processed: u64,
    pub corrupt: u64,
    pub driver_drops: u64,
    pub counts: Counts,
    pub latency: LatencyWindow,
    pub camera: CameraStatus,
    pub capture_rate: RateMeter,
    pub processed_rate: RateMeter,
    pub last_processed: Option<Instant>,
    /// The sorting stage has seen the end of the replay.
    pub input_ended: bool,
    pub pulses_scheduled: u64,
    pub pulses_reported: u64,
    pub writes_sent: u64,
    pub writes_committed: u64,
    pub outages: VecDeque<Outage>,
    pub store_reset: Option<String>,
}

impl Board {
    pub fn new(camera: CameraStatus) -> Self {
        Board {
            frames_captured: 0,
            frames_processed: 0,
            corrupt: 0,
            driver_drops: 0,
            counts: Counts::default(),
            latency: LatencyWindow::default(),
            camera,
            capture_rate: RateMeter::default(),
            processed_rate: RateMeter::default(),
            last_processed: None,
            input_ended: false,
            pulses_scheduled: 0,
            pulses_reported: 0,
            writes_sent: 0,
            writes_committed: 0,
            outages: VecDeque::new(),
            store_reset: None,
        }
    }

    pub fn outage_began(&mut self, stage: &str, error: &str, down_ns: u64) {
        if self.outages.len() == OUTAGES_KEPT {
            self.outages.pop_front();
        }
        self.outages.push_back(Outage {
            stage: stage.to_string(),
            error: error.to_string(),
            down_ns,
            up_ns: None,
        });
    }

    /// Whether a frame captured at `captured_ns` was taken before a stage
    /// that is still down failed: such a frame, still queued when the
    /// stage died, does not show that the line runs again.
    pub fn predates_outage(&self, captured_ns: u64) -> bool {
        self.outages
            .iter()
            .any(|outage| outage.up_ns.is_none() && captured_ns < outage.down_ns)
    }

    /// A frame captured after every outage began made it through the whole
    /// line: the outages are over.
    pub fn line_up(&mut self, now_ns: u64) {
        for outage in self.outages.iter_mut().filter(|o| o.up_ns.is_none()) {
            outage.up_ns = Some(now_ns);
        }
    }

    /// Every part decided is stored and every pulse has its outcome.
    pub fn settled(&self) -> bool {
        self.pulses_reported >= self.pulses_scheduled && self.writes_committed >= self.writes_sent
    }

    pub fn latency_by_stage(&self) -> BTreeMap<String, Percentiles> {
        TIMED_STAGES
            .iter()
            .map(|name| name.to_string())
            .zip(self.latency.percentiles())
            .collect()
    }
}

/// How long ago, for alarm texts.
pub(crate) fn ago(since: Instant, now: Instant) -> String {
    format!("{:.1} s", now.duration_since(since).as_secs_f64())
}

/// Whether the line has processed a frame within `window`.
pub(crate) fn recently(last: Option<Instant>, now: Instant, window: Duration) -> bool {
    last.is_some_and(|last| now.duration_since(last) <= window)
}

/// Size of a SQLite database with its write-ahead log, bytes.
pub(crate) fn database_size(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(name).ok()
        })
        .map(|meta| meta.len())
        .sum()
}

/// Free bytes on the filesystem holding `path` (0 when it cannot be read).
pub(crate) fn disk_free(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(c_path) = std::ffi::CString::new(folder.as_os_str().as_bytes()) else {
        return 0;
    };
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a zeroed out-parameter.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return 0;
    }
    stats.f_bavail as u64 * stats.f_frsize as u64
}

/// Whether `free` bytes is too little for the store to keep writing safely.
pub(crate) fn disk_low(free: u64) -> bool {
    free < DISK_LOW_BYTES
}
