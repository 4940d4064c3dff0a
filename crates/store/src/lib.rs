//! The event store: what happened to every part, in SQLite.
//!
//! One row per part in `parts` (class, confidence, lane, planned and actual
//! fire time, per-stage latencies of the frame that decided it) and one
//! counter per class in `class_counts`. The database runs in WAL mode with
//! `synchronous = NORMAL`, so a power cut loses at most the last transaction
//! and never corrupts the file. Writers batch rows into transactions with
//! [`Store::write_batch`]; the pipeline does this off its hot path.
#![deny(missing_docs)]

mod error;
mod store;

pub use error::StoreError;
pub use store::{ClassCount, FireUpdate, PartRecord, StageLatencies, Store, StoreWrite};
