use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::StoreError;
use crate::schema;

/// Per-stage time of the frame that decided a part, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StageLatencies {
    /// JPEG decode (or other capture-side conversion).
    pub decode_us: u64,
    /// Letterbox and normalise.
    pub preprocess_us: u64,
    /// Model run.
    pub inference_us: u64,
    /// Output decode and NMS.
    pub postprocess_us: u64,
    /// Tracking and decision.
    pub track_decide_us: u64,
}

/// One decided part.
#[derive(Clone, Debug, PartialEq)]
pub struct PartRecord {
    /// Part (track) id, unique within a run.
    pub part_id: u64,
    /// Class name.
    pub class: String,
    /// Voted confidence.
    pub confidence: f32,
    /// Lane name.
    pub lane: String,
    /// Why this lane (`rule`, `below_floor`, ...).
    pub reason: String,
    /// Decision time, ns on the pipeline clock.
    pub decided_at_ns: u64,
    /// Decision time on the wall clock, ms since the Unix epoch: what the
    /// hourly counters and age-based retention go by.
    pub decided_unix_ms: i64,
    /// When the part was last seen (its deciding frame's capture), ns on the
    /// pipeline clock: a pulse is planned from there; none in rows written
    /// before this was kept.
    pub seen_at_ns: Option<u64>,
    /// Planned rising edge, ns on the pipeline clock; none without an ejector.
    pub planned_fire_ns: Option<u64>,
    /// Latencies of the deciding frame.
    pub latencies: StageLatencies,
}

/// What became of a part's pulse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FireUpdate {
    /// The part.
    pub part_id: u64,
    /// `fired`, `late`, `stalled` or `estop`.
    pub outcome: String,
    /// When the output actually went high, if it did.
    pub actual_fire_ns: Option<u64>,
}

/// One write for [`Store::write_batch`].
#[derive(Clone, Debug, PartialEq)]
pub enum StoreWrite {
    /// A new part.
    Part(PartRecord),
    /// The outcome of a part's pulse.
    Fire(FireUpdate),
}

/// A class's running total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassCount {
    /// Class name.
    pub class: String,
    /// Parts seen.
    pub parts: u64,
}

/// The event database.
pub struct Store {
    pub(crate) path: PathBuf,
    pub(crate) connection: Connection,
    run_id: Option<i64>,
}

/// Milliseconds since the Unix epoch on the wall clock (0 before 1970).
pub(crate) fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The start of the hour holding `unix_ms`, in seconds since the epoch.
pub(crate) fn hour_of(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(3_600_000) * 3600
}

impl Store {
    /// Opens or creates the database at `path` in WAL mode, upgrading one
    /// written by an older build in place.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let mut connection = Connection::open(path).map_err(open_error)?;
        // Only takes effect before the first table exists, so it comes first;
        // on an existing file it is a no-op until schema::prepare rebuilds it.
        connection
            .execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
            .map_err(open_error)?;
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal {
                path: path.to_owned(),
                mode,
            });
        }
        connection
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")
            .map_err(open_error)?;
        schema::prepare(&mut connection).map_err(open_error)?;
        Ok(Store {
            path: path.to_owned(),
            connection,
            run_id: None,
        })
    }

    /// Continues run `run_id` instead of starting one: for a writer that
    /// reopened the database mid-run.
    pub fn resume_run(&mut self, run_id: i64) {
        self.run_id = Some(run_id);
    }

    /// Bytes the database takes on disk: the main file and its write-ahead
    /// log (the shared-memory index is not data and stays small).
    pub fn size_on_disk(&self) -> u64 {
        ["", "-wal"]
            .iter()
            .filter_map(|suffix| {
                let mut name = self.path.as_os_str().to_owned();
                name.push(suffix);
                std::fs::metadata(name).ok()
            })
            .map(|meta| meta.len())
            .sum()
    }

    /// Starts a new run: parts written from now on belong to it.
    pub fn begin_run(&mut self) -> Result<i64, StoreError> {
        let started = unix_ms_now() / 1000;
        self.connection
            .execute("INSERT INTO runs (started_unix_s) VALUES (?1)", [started])
            .map_err(|source| StoreError::Write {
                path: self.path.clone(),
                source,
            })?;
        let run_id = self.connection.last_insert_rowid();
        self.run_id = Some(run_id);
        Ok(run_id)
    }

    /// The newest run, if any.
    pub fn last_run(&self) -> Result<Option<i64>, StoreError> {
        self.connection
            .query_row("SELECT MAX(run_id) FROM runs", [], |row| row.get(0))
            .map_err(|source| self.read_error(source))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Journal mode as SQLite reports it (`wal`).
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        self.connection
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .map_err(|source| self.read_error(source))
    }

    /// Writes `batch` in one transaction of the current run (started by
    /// [`Store::begin_run`], or begun here if none was): all of it lands, or none.
    pub fn write_batch(&mut self, batch: &[StoreWrite]) -> Result<(), StoreError> {
        let run_id = match self.run_id {
            Some(run_id) => run_id,
            None => self.begin_run()?,
        };
        let path = self.path.clone();
        let write_error = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        let transaction = self.connection.transaction().map_err(write_error)?;
        {
            let mut insert_part = transaction
                .prepare_cached(
                    "INSERT INTO parts (run_id, part_id, class, confidence, lane, reason, decided_at_ns,
                         planned_fire_ns, decode_us, preprocess_us, inference_us, postprocess_us, track_decide_us,
                         decided_unix_ms, seen_at_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )
                .map_err(write_error)?;
            let mut count_hour = transaction
                .prepare_cached(
                    "INSERT INTO class_hourly (hour_unix_s, class, parts) VALUES (?1, ?2, 1)
                     ON CONFLICT (hour_unix_s, class) DO UPDATE SET parts = parts + 1",
                )
                .map_err(write_error)?;
            let mut count_class = transaction
                .prepare_cached(
                    "INSERT INTO class_counts (class, parts) VALUES (?1, 1)
                     ON CONFLICT (class) DO UPDATE SET parts = parts + 1",
                )
                .map_err(write_error)?;
            let mut update_fire = transaction
                .prepare_cached(
                    "UPDATE parts SET actual_fire_ns = ?3, fire_outcome = ?4 WHERE run_id = ?1 AND part_id = ?2",
                )
                .map_err(write_error)?;
            for write in batch {
                match write {
                    StoreWrite::Part(part) => {
                        let latencies = &part.latencies;
                        insert_part
                            .execute(params![
                                run_id,
                                part.part_id as i64,
                                part.class,
                                part.confidence,
                                part.lane,
                                part.reason,
                                part.decided_at_ns as i64,
                                part.planned_fire_ns.map(|ns| ns as i64),
                                latencies.decode_us as i64,
                                latencies.preprocess_us as i64,
                                latencies.inference_us as i64,
                                latencies.postprocess_us as i64,
                                latencies.track_decide_us as i64,
                                part.decided_unix_ms,
                                part.seen_at_ns.map(|ns| ns as i64),
                            ])
                            .map_err(write_error)?;
                        count_class.execute([&part.class]).map_err(write_error)?;
                        count_hour
                            .execute(params![hour_of(part.decided_unix_ms), part.class])
                            .map_err(write_error)?;
                    }
                    StoreWrite::Fire(fire) => {
                        update_fire
                            .execute(params![
                                run_id,
                                fire.part_id as i64,
                                fire.actual_fire_ns.map(|ns| ns as i64),
                                fire.outcome,
                            ])
                            .map_err(write_error)?;
                    }
                }
            }
        }
        transaction.commit().map_err(write_error)
    }

    /// Running totals per class, by name.
    pub fn class_counts(&self) -> Result<Vec<ClassCount>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT class, parts FROM class_counts ORDER BY class")
            .map_err(|source| self.read_error(source))?;
        let rows = statement
            .query_map([], |row| {
                Ok(ClassCount {
                    class: row.get(0)?,
                    parts: row.get::<_, i64>(1)? as u64,
                })
            })
            .map_err(|source| self.read_error(source))?;
        rows.collect::<Result<_, _>>()
            .map_err(|source| self.read_error(source))
    }

    /// The parts of run `run_id`, by id, with their fire outcome.
    pub fn parts_of_run(
        &self,
        run_id: i64,
    ) -> Result<Vec<(PartRecord, Option<FireUpdate>)>, StoreError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT part_id, class, confidence, lane, reason, decided_at_ns, planned_fire_ns,
                        decode_us, preprocess_us, inference_us, postprocess_us, track_decide_us,
                        fire_outcome, actual_fire_ns, decided_unix_ms, seen_at_ns
                 FROM parts WHERE run_id = ?1 ORDER BY part_id",
            )
            .map_err(|source| self.read_error(source))?;
        let rows = statement
            .query_map([run_id], |row| {
                let part_id = row.get::<_, i64>(0)? as u64;
                let record = PartRecord {
                    part_id,
                    class: row.get(1)?,
                    confidence: row.get(2)?,
                    lane: row.get(3)?,
                    reason: row.get(4)?,
                    decided_at_ns: row.get::<_, i64>(5)? as u64,
                    decided_unix_ms: row.get(14)?,
                    seen_at_ns: row.get::<_, Option<i64>>(15)?.map(|ns| ns as u64),
                    planned_fire_ns: row.get::<_, Option<i64>>(6)?.map(|ns| ns as u64),
                    latencies: StageLatencies {
                        decode_us: row.get::<_, i64>(7)? as u64,
                        preprocess_us: row.get::<_, i64>(8)? as u64,
                        inference_us: row.get::<_, i64>(9)? as u64,
                        postprocess_us: row.get::<_, i64>(10)? as u64,
                        track_decide_us: row.get::<_, i64>(11)? as u64,
                    },
                };
                let actual_fire_ns = row.get::<_, Option<i64>>(13)?.map(|ns| ns as u64);
                let fire = row.get::<_, Option<String>>(12)?.map(|outcome| FireUpdate {
                    part_id,
                    outcome,
                    actual_fire_ns,
                });
                Ok((record, fire))
            })
            .map_err(|source| self.read_error(source))?;
        rows.collect::<Result<_, _>>()
            .map_err(|source| self.read_error(source))
    }

    /// Total parts ever recorded for `class`, zero if none.
    pub fn class_count(&self, class: &str) -> Result<u64, StoreError> {
        self.connection
            .query_row(
                "SELECT parts FROM class_counts WHERE class = ?1",
                [class],
                |row| row.get::<_, i64>(0),
            )
            .optional()
            .map(|count| count.unwrap_or(0) as u64)
            .map_err(|source| self.read_error(source))
    }

    pub(crate) fn read_error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Read {
            path: self.path.clone(),
            source,
        }
    }

    pub(crate) fn write_error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A part decided at `decided_unix_ms` on the wall clock.
    pub(crate) fn part_at(part_id: u64, class: &str, decided_unix_ms: i64) -> PartRecord {
        PartRecord {
            part_id,
            class: class.into(),
            confidence: 0.9,
            lane: "bolts".into(),
            reason: "rule".into(),
            decided_at_ns: 1_000,
            decided_unix_ms,
            seen_at_ns: Some(500),
            planned_fire_ns: Some(2_000),
            latencies: StageLatencies {
                inference_us: 50_000,
                ..StageLatencies::default()
            },
        }
    }

    fn part(part_id: u64, class: &str) -> PartRecord {
        part_at(part_id, class, 1_700_000_000_000)
    }

    #[test]
    fn parts_counts_and_fire_times_round_trip_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.journal_mode().unwrap(), "wal");
        let run = store.begin_run().unwrap();
        store
            .write_batch(&[
                StoreWrite::Part(part(1, "bolt")),
                StoreWrite::Part(part(2, "nut")),
                StoreWrite::Part(part(3, "bolt")),
                StoreWrite::Fire(FireUpdate {
                    part_id: 1,
                    outcome: "fired".into(),
                    actual_fire_ns: Some(2_050),
                }),
            ])
            .unwrap();
        assert_eq!(store.class_count("bolt").unwrap(), 2);
        assert_eq!(store.class_count("washer").unwrap(), 0);
        let parts = store.parts_of_run(run).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].0, part(1, "bolt"));
        assert_eq!(parts[0].1.as_ref().unwrap().actual_fire_ns, Some(2_050));
        assert!(parts[1].1.is_none());
        drop(store);

        // A new run keeps the counters and starts an empty part list.
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.last_run().unwrap(), Some(run));
        let next = store.begin_run().unwrap();
        assert!(store.parts_of_run(next).unwrap().is_empty());
        assert_eq!(store.parts_of_run(run).unwrap().len(), 3);
        assert_eq!(
            store.class_counts().unwrap()[0],
            ClassCount {
                class: "bolt".into(),
                parts: 2
            }
        );
    }

    #[test]
    fn a_failed_batch_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("events.sqlite")).unwrap();
        let run = store.begin_run().unwrap();
        let error = store
            .write_batch(&[
                StoreWrite::Part(part(1, "bolt")),
                StoreWrite::Part(part(1, "bolt")),
            ])
            .unwrap_err();
        assert!(matches!(error, StoreError::Write { .. }));
        assert!(store.parts_of_run(run).unwrap().is_empty());
        assert_eq!(store.class_count("bolt").unwrap(), 0);
    }

    #[test]
    fn an_unwritable_path_names_the_file() {
        let error = match Store::open(Path::new("/nonexistent-dir/events.sqlite")) {
            Err(error) => error.to_string(),
            Ok(_) => panic!("opened a database in a missing folder"),
        };
        assert!(error.contains("/nonexistent-dir/events.sqlite"), "{error}");
    }
}
