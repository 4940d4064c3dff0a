//! Reading parts back as events, page by page, and the hourly counters.

use rusqlite::{Row, params};
use serde::Serialize;

use crate::StoreError;
use crate::store::{StageLatencies, Store};

/// One decided part as the API shows it: what was decided, when, and what
/// became of its pulse.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Event id: grows with every part written and is never reused, so
    /// `events_since(last id seen)` pages through without gaps or repeats.
    pub id: i64,
    /// The run the part belongs to.
    pub run_id: i64,
    /// Part (track) id, unique within its run.
    pub part_id: u64,
    /// Decision time on the wall clock, ms since the Unix epoch.
    pub decided_unix_ms: i64,
    /// Class name.
    pub class: String,
    /// Voted confidence.
    pub confidence: f32,
    /// Lane name.
    pub lane: String,
    /// Why this lane (`rule`, `below_floor`, ...).
    pub reason: String,
    /// Decision time, ns on the pipeline clock (`CLOCK_MONOTONIC`, as the
    /// fire times): the part was last seen a frame or two before.
    pub decided_at_ns: u64,
    /// When the part was last seen, ns on the pipeline clock; its pulse is
    /// planned from there. None in rows written before this was kept.
    pub seen_at_ns: Option<u64>,
    /// Planned rising edge, ns on the pipeline clock; none without an ejector.
    pub planned_fire_ns: Option<u64>,
    /// When the output actually went high, ns on the pipeline clock.
    pub actual_fire_ns: Option<u64>,
    /// `fired`, `late`, `stalled` or `estop`; none until the pulse is over,
    /// which may be after the event was first read.
    pub fire_outcome: Option<String>,
    /// Per-stage time of the deciding frame.
    pub latencies: StageLatencies,
}

/// Parts of one class decided within one hour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HourlyCount {
    /// Start of the hour, seconds since the Unix epoch.
    pub hour_unix_s: i64,
    /// Class name.
    pub class: String,
    /// Parts decided in that hour.
    pub parts: u64,
}

const EVENT_COLUMNS: &str = "event_id, run_id, part_id, decided_unix_ms, class, confidence, lane,
    reason, planned_fire_ns, actual_fire_ns, fire_outcome, decode_us, preprocess_us, inference_us,
    postprocess_us, track_decide_us, decided_at_ns, seen_at_ns";

fn event_from_row(row: &Row) -> rusqlite::Result<Event> {
    let micros = |index| row.get::<_, i64>(index).map(|us| us as u64);
    Ok(Event {
        id: row.get(0)?,
        run_id: row.get(1)?,
        part_id: row.get::<_, i64>(2)? as u64,
        decided_unix_ms: row.get(3)?,
        class: row.get(4)?,
        confidence: row.get(5)?,
        lane: row.get(6)?,
        reason: row.get(7)?,
        decided_at_ns: row.get::<_, i64>(16)? as u64,
        seen_at_ns: row.get::<_, Option<i64>>(17)?.map(|ns| ns as u64),
        planned_fire_ns: row.get::<_, Option<i64>>(8)?.map(|ns| ns as u64),
        actual_fire_ns: row.get::<_, Option<i64>>(9)?.map(|ns| ns as u64),
        fire_outcome: row.get(10)?,
        latencies: StageLatencies {
            decode_us: micros(11)?,
            preprocess_us: micros(12)?,
            inference_us: micros(13)?,
            postprocess_us: micros(14)?,
            track_decide_us: micros(15)?,
        },
    })
}

impl Store {
    /// Up to `limit` events with an id above `after_id`, oldest first.
    /// Start with 0; pass the last id received to get the next page.
    pub fn events_since(&self, after_id: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM parts WHERE event_id > ?1 ORDER BY event_id LIMIT ?2"
            ))
            .map_err(|source| self.read_error(source))?;
        let rows = statement
            .query_map(params![after_id, limit], event_from_row)
            .map_err(|source| self.read_error(source))?;
        rows.collect::<Result<_, _>>()
            .map_err(|source| self.read_error(source))
    }

    /// The highest event id ever handed out, 0 if none: also counts parts
    /// that retention has since deleted, so `events_since` of it returns
    /// only what is written afterwards.
    pub fn latest_event_id(&self) -> Result<i64, StoreError> {
        self.connection
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'parts'",
                [],
                |row| row.get(0),
            )
            .map_err(|source| self.read_error(source))
    }

    /// Per-class counts of every hour that ends after `since_unix_s` (so the
    /// hour holding it is included), by hour then class. Hours without
    /// parts are absent.
    pub fn hourly_counts(&self, since_unix_s: i64) -> Result<Vec<HourlyCount>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT hour_unix_s, class, parts FROM class_hourly
                 WHERE hour_unix_s > ?1 - 3600 ORDER BY hour_unix_s, class",
            )
            .map_err(|source| self.read_error(source))?;
        let rows = statement
            .query_map([since_unix_s], |row| {
                Ok(HourlyCount {
                    hour_unix_s: row.get(0)?,
                    class: row.get(1)?,
                    parts: row.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(|source| self.read_error(source))?;
        rows.collect::<Result<_, _>>()
            .map_err(|source| self.read_error(source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::part_at;
    use crate::{FireUpdate, StoreWrite};

    const HOUR_MS: i64 = 3_600_000;
    /// 2023-11-14 22:00:00 UTC, the start of an hour.
    const T0_MS: i64 = 1_700_000_000_000 / HOUR_MS * HOUR_MS;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("events.sqlite")).unwrap();
        (dir, store)
    }

    #[test]
    fn events_page_by_id_with_every_field() {
        let (_dir, mut store) = store();
        let run = store.begin_run().unwrap();
        assert_eq!(store.latest_event_id().unwrap(), 0);
        let writes: Vec<_> = (1..=5)
            .map(|id| StoreWrite::Part(part_at(id, "bolt", T0_MS + id as i64)))
            .chain([StoreWrite::Fire(FireUpdate {
                part_id: 2,
                outcome: "fired".into(),
                actual_fire_ns: Some(2_050),
            })])
            .collect();
        store.write_batch(&writes).unwrap();

        let first = store.events_since(0, 2).unwrap();
        assert_eq!(first.iter().map(|e| e.part_id).collect::<Vec<_>>(), [1, 2]);
        let second = &first[1];
        assert_eq!(second.run_id, run);
        assert_eq!(second.decided_unix_ms, T0_MS + 2);
        assert_eq!(second.fire_outcome.as_deref(), Some("fired"));
        assert_eq!(second.actual_fire_ns, Some(2_050));
        assert_eq!(second.planned_fire_ns, Some(2_000));
        assert_eq!(second.latencies.inference_us, 50_000);
        assert_eq!(second.class, "bolt");
        assert!(first[0].fire_outcome.is_none());

        let rest = store.events_since(first[1].id, 10).unwrap();
        assert_eq!(
            rest.iter().map(|e| e.part_id).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert!(rest.windows(2).all(|pair| pair[0].id < pair[1].id));
        assert_eq!(store.latest_event_id().unwrap(), rest[2].id);
        assert!(store.events_since(rest[2].id, 10).unwrap().is_empty());
    }

    #[test]
    fn an_event_serializes_with_its_latencies() {
        let (_dir, mut store) = store();
        store
            .write_batch(&[StoreWrite::Part(part_at(7, "nut", T0_MS))])
            .unwrap();
        let event = &store.events_since(0, 1).unwrap()[0];
        let json = serde_json::to_value(event).unwrap();
        assert_eq!(json["part_id"], 7);
        assert_eq!(json["class"], "nut");
        assert_eq!(json["decided_unix_ms"], T0_MS);
        assert_eq!(json["latencies"]["inference_us"], 50_000);
        assert!(json["fire_outcome"].is_null());
    }

    #[test]
    fn hourly_counters_split_by_hour_and_class() {
        let (_dir, mut store) = store();
        store
            .write_batch(&[
                StoreWrite::Part(part_at(1, "bolt", T0_MS)),
                StoreWrite::Part(part_at(2, "bolt", T0_MS + HOUR_MS - 1)),
                StoreWrite::Part(part_at(3, "nut", T0_MS + 10)),
                StoreWrite::Part(part_at(4, "bolt", T0_MS + HOUR_MS)),
            ])
            .unwrap();
        store
            .write_batch(&[StoreWrite::Part(part_at(
                5,
                "bolt",
                T0_MS + 2 * HOUR_MS + 5,
            ))])
            .unwrap();
        let hour0 = T0_MS / 1000;
        let count = |hour_unix_s, class: &str, parts| HourlyCount {
            hour_unix_s,
            class: class.into(),
            parts,
        };
        assert_eq!(
            store.hourly_counts(0).unwrap(),
            [
                count(hour0, "bolt", 2),
                count(hour0, "nut", 1),
                count(hour0 + 3600, "bolt", 1),
                count(hour0 + 7200, "bolt", 1),
            ]
        );
        // The hour holding `since` is in; the one before it is not.
        assert_eq!(
            store.hourly_counts(hour0 + 3600 + 1800).unwrap(),
            [
                count(hour0 + 3600, "bolt", 1),
                count(hour0 + 7200, "bolt", 1)
            ]
        );
        assert!(store.hourly_counts(hour0 + 3 * 3600).unwrap().is_empty());
    }

    #[test]
    fn a_failed_batch_counts_no_hour() {
        let (_dir, mut store) = store();
        store
            .write_batch(&[
                StoreWrite::Part(part_at(1, "bolt", T0_MS)),
                StoreWrite::Part(part_at(1, "bolt", T0_MS)),
            ])
            .unwrap_err();
        assert!(store.hourly_counts(0).unwrap().is_empty());
        assert!(store.events_since(0, 10).unwrap().is_empty());
    }
}
