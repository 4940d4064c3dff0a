//! Where does a frame's time go? Per-stage timing of the pipeline.
//!
//! [`bench_clip`] runs a clip (its JPEGs held in memory) through JPEG decode,
//! letterbox + normalise, inference, decode + NMS and tracking + decision,
//! first once to warm up (plans built, caches and branch predictors primed),
//! then `repeat` more times, recording every frame's time per stage.
//! [`bench_targets`] times the CPU stages alone under the conditions the
//! speed targets name: a 1280x720 frame into a 640x640 square, the full 8400
//! anchors of a square output, and 20 parts in view. Every figure is a
//! distribution (p50, p99, max) over many samples, never one run.
//!
//! [`bench_actuation`] times the ejector scheduler: rising edges against
//! their planned times, pulse lengths, and e-stop latency, on simulated pins
//! stamped with `CLOCK_MONOTONIC`.
#![deny(missing_docs)]

mod actuation;
mod clip;
mod error;
mod samples;
mod stages;

pub use actuation::{ActuationOptions, ActuationReport, ErrorSpread, bench_actuation};
pub use clip::{Clip, generate_from};
pub use error::BenchError;
pub use samples::{Samples, StageTiming};
pub use stages::{ClipReport, TargetReport, bench_clip, bench_targets};
