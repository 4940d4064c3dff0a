//! Belt tracking: which detections in successive frames are the same part.
//!
//! Parts ride a belt whose speed is known, so a part seen at `x` at time `t`
//! is expected at `x + v·(t' − t)` at `t'`. [`Tracker::update`] predicts every
//! open track to the new frame's timestamp, pairs predictions with detections
//! by smallest distance inside a gate, starts tracks for unpaired detections,
//! and closes tracks whose part has left the field of view (or that have gone
//! unseen too long). Each [`ClosedTrack`] carries the class chosen by a
//! confidence-weighted vote and a fit of the part's position against time,
//! from which `decide` computes when the part reaches an ejector.
//!
//! Pure logic: detections and timestamps in, closed tracks out.
#![deny(missing_docs)]

mod tracker;

pub use tracker::{CloseReason, ClosedTrack, TrackView, Tracker, TrackerParams};
