//! Frame sources: where images enter edgesort.
//!
//! [`ReplaySource`] plays a recorded clip (`frames/*.jpg`, in name order) as a
//! camera. Each frame gets a sequence number and a timestamp on the nominal
//! frame grid, `start + sequence / fps`, so a replay is deterministic whatever
//! the machine's speed; pacing it in real time is the caller's choice. A frame
//! that cannot be read or decoded is returned as an error for the caller to
//! count and skip: its sequence number is spent, as a camera's would be.
#![deny(missing_docs)]

mod error;
mod jpeg;
mod replay;

pub use error::CaptureError;
pub use jpeg::decode_jpeg_rgb;
pub use replay::{ReplaySource, clip_frames, list_jpegs, probe_frame_size};
