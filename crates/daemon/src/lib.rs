//! The sorting line as the appliance runs it all day.
//!
//! ```text
//!            latest-frame slot        bounded(2), waits       bounded, waits
//! capture ───────────────────▶ inference ─────────────▶ sorting ─────────▶ store
//! (replay or V4L2)  (drops the    (detector)              (track, decide,    (SQLite, batched)
//!                    stale frame)                           schedule pulses)
//!                                                              │
//!                                                              ▼
//!                                                      ejector thread (real-time)
//! ```
//!
//! Each stage runs on a thread of its own under a [supervisor](Daemon): a
//! stage that fails or panics is restarted with a growing backoff, and the
//! instant it goes down the ejectors are held (outputs low, pending pulses
//! dropped and recorded as `stalled`) until the line heartbeats again. The
//! ejector thread itself is never restarted: it outlives every other stage.
//!
//! The backpressure of each link is deliberate. Capture keeps only the newest
//! frame and counts what it replaced. Decisions are never dropped: the
//! sorting stage waits for room in the store's queue, so a slow disk slows
//! the line (and, past the stall timeout, makes it safe) rather than losing
//! a part.
#![deny(missing_docs)]

mod capture;
mod config_change;
mod control;
mod engines;
mod error;
mod inference;
mod latency;
mod recorded;
mod sorting;
mod stage;
mod status;
mod store_stage;

pub use config_change::{ConfigApplied, ConfigRejected};
pub use control::{
    Daemon, DaemonSetup, DetectorFactory, EngineInfo, EstopResetRefused, Overlay, PulseRefused,
    ResetLog, Snapshot, WireInputs,
};
pub use edgesort_actuate::{EstopState, ResetDone, ResetRefused};
pub use edgesort_infer::Detect;
pub use engines::served_detector;
pub use error::DaemonError;
pub use recorded::recorded_detector;
pub use stage::StageName;
pub use status::{
    Alarm, BeltView, CameraStatus, Counts, EstopView, GpioStatus, LineState, Outage, OutputStatus,
    Percentiles, StageStatus, Status, StoreStatus,
};
