//! The sorting line, end to end.
//!
//! [`run_replay`] plays a clip as a camera and runs every stage:
//!
//! ```text
//! camera thread ──frame handoff──▶ detect ─▶ track ─▶ decide ─┬─▶ ejectors (pulses)
//!  (decode, pace)  (latest-frame    (infer)                    └─▶ store thread (SQLite)
//!                   or lossless)
//! ```
//!
//! Two pacings: [`Pacing::RealTime`] runs the clip at its frame rate on the
//! monotonic clock; when processing is slower than the camera the newest frame
//! wins and the skipped ones are counted, so nothing queues up. Ejectors then
//! run on their own thread. [`Pacing::AsFastAsPossible`] hands over every
//! frame and runs the ejectors on a manual clock that follows frame
//! timestamps: the result depends on the clip alone, which is what tests and
//! scoring need.
//!
//! Every channel is bounded. Decisions are never dropped: the store's queue
//! applies backpressure rather than lose a row, and it writes in batches off
//! the detection thread.
#![deny(missing_docs)]

mod ejectors;
mod error;
pub mod handoff;
mod report;
mod run;
pub mod sorting;
mod stats;

pub use error::PipelineError;
pub use report::{DecisionRecord, RunReport, StageSummary};
pub use run::{Pacing, run_replay, run_replay_observed};
pub use stats::StageHistogram;
