//! The event store: what happened to every part, in SQLite.
//!
//! One row per part in `parts` (class, confidence, lane, wall-clock
//! decision time, planned and actual fire time, per-stage latencies of the
//! frame that decided it), one counter per class in `class_counts`, one per
//! class and hour in `class_hourly`, and an `audit` log of who changed what.
//! The database runs in WAL mode with `synchronous = NORMAL`, so a power cut
//! loses at most the last transaction; [`Store::open_checked`] moves aside a
//! file damaged anyway (a failing card, a bad write) instead of refusing to
//! start.
//!
//! Writers batch rows into transactions with [`Store::write_batch`]; the
//! pipeline does this off its hot path. Readers page through parts as
//! [`Event`]s by id. [`Store::enforce_retention`] deletes by age and by size
//! and hands the space back to the file system, so the disk never fills.
#![deny(missing_docs)]

mod audit;
mod error;
mod events;
mod recovery;
mod retention;
mod schema;
mod store;

pub use audit::{AUDIT_ROWS_KEPT, AuditEntry};
pub use error::StoreError;
pub use events::{Event, HourlyCount};
pub use recovery::StoreReset;
pub use retention::{HOURLY_KEPT, RetentionPolicy, RetentionReport};
pub use store::{ClassCount, FireUpdate, PartRecord, StageLatencies, Store, StoreWrite};
