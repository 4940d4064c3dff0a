//! The `[gpio]` section: the board map, the e-stop and the encoder.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which level of an input line means "active".
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActiveLevel {
    /// Active when the line reads low.
    Low,
    /// Active when the line reads high.
    High,
}

/// The board and the GPIO inputs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpioConfig {
    /// The board's pin map file (`board/pins/*.toml`).
    pub board: PathBuf,
    /// The emergency-stop input, if wired.
    #[serde(default)]
    pub estop: Option<EstopConfig>,
    /// A reset button for the e-stop latch, if wired.
    #[serde(default)]
    pub reset: Option<ResetConfig>,
    /// A belt encoder, if fitted; without one the belt runs at `belt.speed_mm_s`.
    #[serde(default)]
    pub encoder: Option<EncoderConfig>,
    /// Real-time priority (SCHED_FIFO, 1..=99) of the thread that fires the
    /// ejectors; 0 leaves it an ordinary thread.
    #[serde(default = "default_realtime_priority")]
    pub realtime_priority: u8,
    /// The last stretch before each edge is waited out by spinning rather
    /// than sleeping, because a sleeping thread wakes late by up to the
    /// kernel's timer slack and scheduling latency.
    #[serde(default = "default_spin_us")]
    pub spin_us: u32,
    /// The map loaded from `board`, filled by [`Config::load`].
    #[serde(skip)]
    pub map: crate::board::BoardMap,
}

/// The emergency-stop input.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EstopConfig {
    /// Header pin.
    pub pin: u32,
    /// The level that means "stop". Normally-closed e-stop circuits read low
    /// when pressed or when a wire breaks, so "low" is the safe default.
    #[serde(default = "default_estop_active")]
    pub active: ActiveLevel,
    /// After release, the line must stay released this long before a reset
    /// is accepted. A press acts on its first edge, never debounced.
    #[serde(default = "default_estop_debounce_ms")]
    pub debounce_ms: u32,
    /// Whether the API may reset the latch from another machine (with the
    /// token). Off by default: a reset re-arms machinery, so it is given
    /// at the box, by the reset button or `edgesort estop reset`.
    #[serde(default)]
    pub remote_reset: bool,
}

/// The e-stop reset button: a momentary input whose press re-arms the
/// ejectors once the e-stop has been released for its debounce time.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResetConfig {
    /// Header pin.
    pub pin: u32,
    /// The level that means "pressed". A normally-open button switching
    /// the input high is the usual wiring.
    #[serde(default = "default_reset_active")]
    pub active: ActiveLevel,
}

/// A belt encoder on a GPIO input.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// Header pin.
    pub pin: u32,
    /// Belt travel per rising edge.
    pub mm_per_count: f64,
    /// With parts seen moving and no edge for this long, the encoder counts
    /// as silent: the `encoder_silent` alarm, and pulses are refused
    /// (`no_belt_position`) rather than timed on a guessed speed.
    #[serde(default = "default_encoder_silent_ms")]
    pub silent_ms: u32,
}

fn default_realtime_priority() -> u8 {
    80
}

fn default_spin_us() -> u32 {
    200
}

fn default_estop_active() -> ActiveLevel {
    ActiveLevel::Low
}

fn default_estop_debounce_ms() -> u32 {
    20
}

fn default_reset_active() -> ActiveLevel {
    ActiveLevel::High
}

fn default_encoder_silent_ms() -> u32 {
    1000
}
