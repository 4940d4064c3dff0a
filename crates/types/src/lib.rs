//! The vocabulary every edgesort stage speaks.
//!
//! Frames come out of `capture` stamped with a [`Timestamp`] and a sequence
//! number; `infer` turns them into [`Detection`]s; `track` and `decide` turn
//! those into sorting decisions that `actuate` fires at a [`Timestamp`] on the
//! same clock. The [`config`] module holds the one TOML file that configures all
//! of it, with validation that names the offending field.
#![deny(missing_docs)]

mod atomic_file;
mod beneath;
pub mod board;
mod capture_format;
pub mod config;
mod detection;
mod digest;
mod frame;
mod pixel;
mod time;

pub use atomic_file::{PARTIAL_PREFIX, sync_folder, write_atomically};
pub use beneath::{BeneathError, Folder, FolderEntry, open_regular_file};
pub use capture_format::{CaptureFormat, fourcc_text};
pub use detection::{BoundingBox, ClassId, Detection, FrameDetections};
pub use digest::{sha256_file, sha256_hex};
pub use frame::{Frame, FramePool, PixelBuffer, Pixels};
pub use pixel::{FrameLayout, PixelFormat, yuv_to_rgb};
pub use time::{Clock, ManualClock, MonotonicClock, Timestamp};
