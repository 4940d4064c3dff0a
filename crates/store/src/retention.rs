//! Keeping the database within its age and size budget, so the disk never
//! fills.
//!
//! Deleting rows alone frees pages inside the file without shrinking it.
//! The database is created with `auto_vacuum = INCREMENTAL`, so after each
//! deletion `PRAGMA incremental_vacuum` moves the free pages to the end of
//! the file and a `TRUNCATE` checkpoint copies the write-ahead log back,
//! cuts the main file to its new length and empties the log.

use std::time::Duration;

use edgesort_types::config::StoreConfig;
use serde::Serialize;

use crate::StoreError;
use crate::audit::AUDIT_ROWS_KEPT;
use crate::store::{Store, hour_of, unix_ms_now};

/// How long the per-class hourly counters are kept: over a year, so a
/// season can be compared with the last one long after its parts are gone.
pub const HOURLY_KEPT: Duration = Duration::from_secs(400 * 24 * 3600);

/// Fewer rows per size-driven deletion would take a round trip per few pages.
const MIN_CHUNK: i64 = 64;
/// Each deletion goes through the write-ahead log, which grows by about the
/// size of what is deleted until the checkpoint that follows; capping the
/// chunk caps that growth.
const MAX_CHUNK: i64 = 10_000;

/// How much history to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Parts decided longer ago than this are deleted.
    pub max_age: Duration,
    /// The database and its write-ahead log together stay at or under this
    /// many bytes; the oldest parts are deleted to get there.
    pub max_bytes: u64,
}

impl RetentionPolicy {
    /// The policy the `[store]` section asks for.
    pub fn from_config(config: &StoreConfig) -> RetentionPolicy {
        RetentionPolicy {
            max_age: config.max_age(),
            max_bytes: config.max_bytes(),
        }
    }
}

/// What one [`Store::enforce_retention`] pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// Parts deleted, for age and size together.
    pub deleted_parts: u64,
    /// Hourly counter rows deleted.
    pub deleted_hours: u64,
    /// Audit entries deleted.
    pub deleted_audit: u64,
    /// Database and write-ahead log before, in bytes.
    pub bytes_before: u64,
    /// Database and write-ahead log after, in bytes. Still above
    /// `max_bytes` only if no part was left to delete or a reader kept the
    /// log from being emptied; the next pass tries again.
    pub bytes_after: u64,
}

impl Store {
    /// Deletes parts older than `policy.max_age`, hourly counters older than
    /// [`HOURLY_KEPT`] and audit entries beyond the newest
    /// [`AUDIT_ROWS_KEPT`]; then, while the database is bigger than
    /// `policy.max_bytes`, the oldest parts, and hands the space back to the
    /// file system. The all-time per-class totals are never deleted.
    pub fn enforce_retention(
        &self,
        policy: &RetentionPolicy,
    ) -> Result<RetentionReport, StoreError> {
        let write_error = |source| self.write_error(source);
        let mut report = RetentionReport {
            bytes_before: self.size_on_disk(),
            ..RetentionReport::default()
        };
        let now_ms = unix_ms_now();

        let max_age_ms = i64::try_from(policy.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff_ms = now_ms.saturating_sub(max_age_ms);
        loop {
            let deleted = self
                .connection
                .execute(
                    "DELETE FROM parts WHERE event_id IN
                         (SELECT event_id FROM parts WHERE decided_unix_ms < ?1 LIMIT ?2)",
                    [cutoff_ms, MAX_CHUNK],
                )
                .map_err(write_error)?;
            report.deleted_parts += deleted as u64;
            if (deleted as i64) < MAX_CHUNK {
                break;
            }
            self.reclaim().map_err(write_error)?;
        }
        let hourly_ms = i64::try_from(HOURLY_KEPT.as_millis()).unwrap_or(i64::MAX);
        report.deleted_hours = self
            .connection
            .execute(
                "DELETE FROM class_hourly WHERE hour_unix_s < ?1",
                [hour_of(now_ms.saturating_sub(hourly_ms))],
            )
            .map_err(write_error)? as u64;
        report.deleted_audit = self.trim_audit(AUDIT_ROWS_KEPT).map_err(write_error)?;
        let mut log_emptied = self.reclaim().map_err(write_error)?;

        while log_emptied && self.size_on_disk() > policy.max_bytes {
            let Some(chunk) = self.size_chunk(policy.max_bytes)? else {
                break;
            };
            let deleted = self
                .connection
                .execute("DELETE FROM parts WHERE event_id < ?1", [chunk])
                .map_err(write_error)?;
            report.deleted_parts += deleted as u64;
            log_emptied = self.reclaim().map_err(write_error)?;
        }

        report.bytes_after = self.size_on_disk();
        if report.bytes_after > policy.max_bytes {
            tracing::warn!(
                path = %self.path.display(),
                bytes = report.bytes_after,
                max_bytes = policy.max_bytes,
                "event database is still over its size limit"
            );
        }
        Ok(report)
    }

    /// The event id below which parts go in the next size-driven deletion,
    /// sized from the average bytes per part so that one or two rounds
    /// usually suffice; none when no part is left.
    fn size_chunk(&self, max_bytes: u64) -> Result<Option<i64>, StoreError> {
        // Ids are nearly contiguous (a failed batch gives its ids back, and
        // age deletes from the old end unless the clock jumped), so the
        // range counts the rows closely enough without a full scan.
        let (first, last): (Option<i64>, Option<i64>) = self
            .connection
            .query_row(
                "SELECT MIN(event_id), MAX(event_id) FROM parts",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(|source| self.read_error(source))?;
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(None);
        };
        let rows = last - first + 1;
        let size = self.size_on_disk();
        let bytes_per_row = (size / rows as u64).max(1);
        let excess_rows = size.saturating_sub(max_bytes).div_ceil(bytes_per_row);
        let chunk = i64::try_from(excess_rows)
            .unwrap_or(MAX_CHUNK)
            .clamp(MIN_CHUNK, MAX_CHUNK);
        Ok(Some(first + chunk))
    }

    /// Returns free pages to the file system; false if a reader kept the
    /// write-ahead log from being emptied.
    fn reclaim(&self) -> rusqlite::Result<bool> {
        // Each step of this pragma frees one page, so it must run to the end.
        let mut vacuum = self.connection.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = vacuum.query([])?;
        while rows.next()?.is_some() {}
        drop(rows);
        let busy: i64 =
            self.connection
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        Ok(busy == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreWrite;
    use crate::store::tests::part_at;

    const DAY_MS: i64 = 24 * 3600 * 1000;

    fn unlimited(max_age: Duration) -> RetentionPolicy {
        RetentionPolicy {
            max_age,
            max_bytes: u64::MAX,
        }
    }

    #[test]
    fn parts_older_than_max_age_go_and_their_counters_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("events.sqlite")).unwrap();
        let now = unix_ms_now();
        store
            .write_batch(&[
                StoreWrite::Part(part_at(1, "bolt", now - 401 * DAY_MS)),
                StoreWrite::Part(part_at(2, "bolt", now - 100 * DAY_MS)),
                StoreWrite::Part(part_at(3, "nut", now - 89 * DAY_MS)),
                StoreWrite::Part(part_at(4, "bolt", now)),
            ])
            .unwrap();
        let report = store
            .enforce_retention(&unlimited(Duration::from_secs(90 * 24 * 3600)))
            .unwrap();
        assert_eq!(report.deleted_parts, 2);
        assert_eq!(report.deleted_hours, 1, "only the 401-day-old hour");
        let left: Vec<_> = store
            .events_since(0, 10)
            .unwrap()
            .into_iter()
            .map(|event| event.part_id)
            .collect();
        assert_eq!(left, [3, 4]);
        let hours = store.hourly_counts(0).unwrap();
        assert_eq!(hours.len(), 3);
        assert_eq!(hours[0].hour_unix_s, hour_of(now - 100 * DAY_MS));
        assert_eq!(store.class_count("bolt").unwrap(), 3, "totals are kept");

        // Nothing more is old enough on a second pass.
        let again = store
            .enforce_retention(&unlimited(Duration::from_secs(90 * 24 * 3600)))
            .unwrap();
        assert_eq!((again.deleted_parts, again.deleted_hours), (0, 0));
    }

    #[test]
    fn an_oversized_database_shrinks_on_disk_keeping_the_newest_parts() {
        const MAX_BYTES: u64 = 256 * 1024;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("events.sqlite")).unwrap();
        let now = unix_ms_now();
        let mut next = 1;
        while store.size_on_disk() < 4 * MAX_BYTES {
            let batch: Vec<_> = (next..next + 500)
                .map(|id| StoreWrite::Part(part_at(id, "bolt", now - 1000 + id as i64)))
                .collect();
            store.write_batch(&batch).unwrap();
            next += 500;
        }
        let written = next - 1;
        let newest = store.latest_event_id().unwrap();

        let report = store
            .enforce_retention(&RetentionPolicy {
                max_age: Duration::from_secs(3600),
                max_bytes: MAX_BYTES,
            })
            .unwrap();

        let main = std::fs::metadata(store.path()).unwrap().len();
        let wal_path = format!("{}-wal", store.path().display());
        let wal = std::fs::metadata(wal_path).map_or(0, |meta| meta.len());
        assert!(main + wal <= MAX_BYTES, "{main} + {wal} bytes on disk");
        assert!(report.bytes_before >= 4 * MAX_BYTES, "{report:?}");
        assert_eq!(report.bytes_after, main + wal);
        assert!(
            report.deleted_parts > 0 && report.deleted_parts < written,
            "{report:?}"
        );

        let left = store.events_since(0, usize::MAX).unwrap();
        assert_eq!(left.len() as u64, written - report.deleted_parts);
        assert_eq!(left.last().unwrap().id, newest, "the newest part survives");
        assert_eq!(left.last().unwrap().part_id, written);
        assert!(left[0].part_id > 1, "the oldest part is gone");
        assert!(
            left.windows(2).all(|pair| pair[1].id == pair[0].id + 1),
            "only a prefix went"
        );
        // Not more than needed: the survivors fill a fair share of the budget.
        assert!(main > MAX_BYTES / 2, "{main} bytes left");
        assert_eq!(store.class_count("bolt").unwrap(), written);
        assert_eq!(store.latest_event_id().unwrap(), newest);

        // The store keeps working, with ids that carry on.
        store
            .write_batch(&[StoreWrite::Part(part_at(written + 1, "nut", now))])
            .unwrap();
        assert_eq!(store.events_since(newest, 10).unwrap()[0].id, newest + 1);
    }

    #[test]
    fn ids_are_not_reused_after_the_newest_part_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("events.sqlite")).unwrap();
        let long_ago = unix_ms_now() - 10 * DAY_MS;
        store
            .write_batch(&[
                StoreWrite::Part(part_at(1, "bolt", long_ago)),
                StoreWrite::Part(part_at(2, "bolt", long_ago)),
            ])
            .unwrap();
        let report = store
            .enforce_retention(&unlimited(Duration::from_secs(24 * 3600)))
            .unwrap();
        assert_eq!(report.deleted_parts, 2);
        assert!(store.events_since(0, 10).unwrap().is_empty());
        assert_eq!(store.latest_event_id().unwrap(), 2);
        store
            .write_batch(&[StoreWrite::Part(part_at(3, "bolt", unix_ms_now()))])
            .unwrap();
        assert_eq!(store.events_since(0, 10).unwrap()[0].id, 3);
    }

    #[test]
    fn the_audit_log_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("events.sqlite")).unwrap();
        // One transaction: ten thousand commits would only slow the test.
        store.connection.execute_batch("BEGIN").unwrap();
        for n in 0..AUDIT_ROWS_KEPT + 3 {
            store.audit("test", "step", &n.to_string()).unwrap();
        }
        store.connection.execute_batch("COMMIT").unwrap();
        let report = store
            .enforce_retention(&unlimited(Duration::from_secs(3600)))
            .unwrap();
        assert_eq!(report.deleted_audit, 3);
        let log = store.audit_log(usize::MAX).unwrap();
        assert_eq!(log.len() as u64, AUDIT_ROWS_KEPT);
        assert_eq!(log[0].detail, (AUDIT_ROWS_KEPT + 2).to_string());
        assert_eq!(log.last().unwrap().detail, "3");
    }

    #[test]
    fn the_policy_follows_the_config() {
        let config = StoreConfig {
            path: "events.sqlite".into(),
            max_age_days: 2,
            max_mb: 16,
        };
        assert_eq!(
            RetentionPolicy::from_config(&config),
            RetentionPolicy {
                max_age: Duration::from_secs(2 * 24 * 3600),
                max_bytes: 16 * 1024 * 1024,
            }
        );
    }
}
