//! Scoring a replay against the clip's ground truth (`tracks.json`).
//!
//! The ground truth gives every part's class and its centre x on every frame
//! it is visible; the centre moves exactly `speed_px_per_frame` per frame. A
//! part "crosses the whole field of view" when its centre is seen both before
//! the upstream image edge and past the downstream one. [`score`] pairs each
//! decision with the ground-truth part nearest to it (position along the belt
//! at the decision's reference-line crossing, and y), then counts misses,
//! duplicates and class errors among crossing parts, and compares each planned
//! fire time with the moment the part's centre reaches that ejector.
//!
//! Pure logic: ground truth and decisions in, a [`Score`] out.
#![deny(missing_docs)]

mod ground_truth;
mod scoring;

pub use ground_truth::{GroundTruth, GroundTruthFrame, GroundTruthPart, ScoreError};
pub use scoring::{FireError, Score, ScoredDecision, score};
