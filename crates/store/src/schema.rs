//! The tables, and the one-off upgrade of a database written before parts
//! carried an event id and a wall-clock time.

use rusqlite::{Connection, TransactionBehavior};

/// Kept in `PRAGMA user_version`; 0 is the layout before event ids, 1
/// the one before parts kept when they were last seen.
const SCHEMA_VERSION: i64 = 2;

/// The `parts` table under `name`, so the upgrade can build the new layout
/// beside the old one.
fn parts_table(name: &str) -> String {
    // AUTOINCREMENT, unlike a plain rowid, never hands out an id again after
    // retention has deleted the newest rows, so a client paging by id never
    // skips a part. The default time is for a build from before this column
    // (after a rollback) that inserts without it: its rows then still age out
    // by when they were written instead of looking 55 years old.
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (
            event_id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER NOT NULL,
            part_id INTEGER NOT NULL,
            decided_unix_ms INTEGER NOT NULL
                DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
            class TEXT NOT NULL,
            confidence REAL NOT NULL,
            lane TEXT NOT NULL,
            reason TEXT NOT NULL,
            decided_at_ns INTEGER NOT NULL,
            planned_fire_ns INTEGER,
            actual_fire_ns INTEGER,
            fire_outcome TEXT,
            seen_at_ns INTEGER,
            decode_us INTEGER NOT NULL,
            preprocess_us INTEGER NOT NULL,
            inference_us INTEGER NOT NULL,
            postprocess_us INTEGER NOT NULL,
            track_decide_us INTEGER NOT NULL,
            UNIQUE (run_id, part_id)
        );"
    )
}

const OTHER_TABLES: &str = "
    CREATE TABLE IF NOT EXISTS class_counts (
        class TEXT PRIMARY KEY,
        parts INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS runs (
        run_id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_unix_s INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS class_hourly (
        hour_unix_s INTEGER NOT NULL,
        class TEXT NOT NULL,
        parts INTEGER NOT NULL,
        PRIMARY KEY (hour_unix_s, class)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_unix_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
";

/// Age-based retention deletes by this instead of scanning the table.
const TIME_INDEX: &str = "CREATE INDEX IF NOT EXISTS parts_by_time ON parts (decided_unix_ms);";

/// Creates the tables, or brings an older database up to date, and makes
/// sure deleted pages can be handed back to the file system.
///
/// `PRAGMA auto_vacuum = INCREMENTAL` must already have been issued: on a
/// new file it only takes effect if it precedes the first table.
pub(crate) fn prepare(connection: &mut Connection) -> rusqlite::Result<()> {
    // IMMEDIATE: two processes opening an old file at once must not both
    // upgrade it.
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version < SCHEMA_VERSION {
        let has_old_parts = transaction
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'parts'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|count| count > 0)?;
        transaction.execute_batch(OTHER_TABLES)?;
        if has_old_parts && version == 0 {
            upgrade_from_v0(&transaction)?;
        } else if has_old_parts {
            // Version 1: one column more, NULL in the rows already there.
            transaction.execute_batch("ALTER TABLE parts ADD COLUMN seen_at_ns INTEGER;")?;
        } else {
            transaction.execute_batch(&parts_table("parts"))?;
        }
        transaction.execute_batch(TIME_INDEX)?;
        transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    transaction.commit()?;

    // 2 is INCREMENTAL. A database created before auto-vacuum was turned on
    // keeps its freed pages inside the file until it is rebuilt once.
    let auto_vacuum: i64 = connection.query_row("PRAGMA auto_vacuum", [], |row| row.get(0))?;
    if auto_vacuum != 2 {
        tracing::info!("rebuilding the event database once so that retention can shrink it");
        connection.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
    }
    Ok(())
}

/// Rebuilds a version-0 `parts` table (keyed by run and part, no wall-clock
/// time) in the current layout, the way SQLite's documentation recommends
/// for changes ALTER TABLE cannot make: new table, copy, drop, rename.
fn upgrade_from_v0(transaction: &rusqlite::Transaction) -> rusqlite::Result<()> {
    transaction.execute_batch(&parts_table("parts_v1"))?;
    // The old rows never recorded a wall-clock time; their run's start is
    // the closest thing known, and keeps them in the right order for
    // retention.
    transaction.execute_batch(
        "INSERT INTO parts_v1 (run_id, part_id, decided_unix_ms, class, confidence, lane,
             reason, decided_at_ns, planned_fire_ns, actual_fire_ns, fire_outcome, decode_us,
             preprocess_us, inference_us, postprocess_us, track_decide_us)
         SELECT parts.run_id, parts.part_id, COALESCE(runs.started_unix_s, 0) * 1000,
             class, confidence, lane, reason, decided_at_ns, planned_fire_ns, actual_fire_ns,
             fire_outcome, decode_us, preprocess_us, inference_us, postprocess_us,
             track_decide_us
         FROM parts LEFT JOIN runs ON runs.run_id = parts.run_id
         ORDER BY parts.run_id, parts.part_id;
         DROP TABLE parts;
         ALTER TABLE parts_v1 RENAME TO parts;
         INSERT INTO class_hourly (hour_unix_s, class, parts)
         SELECT decided_unix_ms / 3600000 * 3600, class, COUNT(*)
         FROM parts GROUP BY 1, 2;",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::part_at;
    use crate::store::unix_ms_now;
    use crate::{Store, StoreWrite};

    /// The layout of the first release, as a box in the field still has it.
    const V0: &str = "
        PRAGMA journal_mode = WAL;
        CREATE TABLE parts (
            run_id INTEGER NOT NULL, part_id INTEGER NOT NULL, class TEXT NOT NULL,
            confidence REAL NOT NULL, lane TEXT NOT NULL, reason TEXT NOT NULL,
            decided_at_ns INTEGER NOT NULL, planned_fire_ns INTEGER, actual_fire_ns INTEGER,
            fire_outcome TEXT, decode_us INTEGER NOT NULL, preprocess_us INTEGER NOT NULL,
            inference_us INTEGER NOT NULL, postprocess_us INTEGER NOT NULL,
            track_decide_us INTEGER NOT NULL,
            PRIMARY KEY (run_id, part_id)
        );
        CREATE TABLE class_counts (class TEXT PRIMARY KEY, parts INTEGER NOT NULL);
        CREATE TABLE runs (
            run_id INTEGER PRIMARY KEY AUTOINCREMENT, started_unix_s INTEGER NOT NULL
        );
        INSERT INTO runs (started_unix_s) VALUES (1700000000);
        INSERT INTO parts VALUES (1, 1, 'bolt', 0.9, 'bolts', 'rule', 1000, 2000, 2050, 'fired',
            1, 2, 3, 4, 5);
        INSERT INTO parts VALUES (1, 2, 'nut', 0.8, 'nuts', 'rule', 3000, NULL, NULL, NULL,
            1, 2, 3, 4, 5);
        INSERT INTO class_counts VALUES ('bolt', 1), ('nut', 1);
    ";

    fn pragma(store: &Store, name: &str) -> i64 {
        store
            .connection
            .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn a_new_database_can_hand_pages_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("events.sqlite")).unwrap();
        assert_eq!(pragma(&store, "auto_vacuum"), 2, "incremental");
        assert_eq!(pragma(&store, "user_version"), SCHEMA_VERSION);
    }

    #[test]
    fn a_database_of_the_first_layout_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        Connection::open(&path).unwrap().execute_batch(V0).unwrap();

        let mut store = Store::open(&path).unwrap();
        assert_eq!(pragma(&store, "auto_vacuum"), 2, "rebuilt for retention");
        assert_eq!(pragma(&store, "user_version"), SCHEMA_VERSION);
        let parts = store.parts_of_run(1).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].0.decided_unix_ms, 1_700_000_000_000,
            "the run's start"
        );
        assert_eq!(parts[0].0.latencies.track_decide_us, 5);
        assert_eq!(parts[0].1.as_ref().unwrap().actual_fire_ns, Some(2050));
        let events = store.events_since(0, 10).unwrap();
        assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2]);
        let hours = store.hourly_counts(0).unwrap();
        assert_eq!(hours.len(), 2);
        assert!(
            hours
                .iter()
                .all(|hour| hour.hour_unix_s == 1_699_999_200 && hour.parts == 1)
        );
        assert_eq!(store.class_count("bolt").unwrap(), 1);

        // The run's part ids stay unique, and new parts carry on the ids.
        store.resume_run(1);
        store
            .write_batch(&[StoreWrite::Part(part_at(2, "nut", unix_ms_now()))])
            .unwrap_err();
        store
            .write_batch(&[StoreWrite::Part(part_at(3, "nut", unix_ms_now()))])
            .unwrap();
        assert_eq!(store.latest_event_id().unwrap(), 3);
        drop(store);

        // A second open finds nothing to do.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.events_since(0, 10).unwrap().len(), 3);
        assert_eq!(store.hourly_counts(0).unwrap().len(), 3);
    }

    #[test]
    fn a_database_of_the_second_layout_gains_the_seen_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let mut store = Store::open(&path).unwrap();
        store.begin_run().unwrap();
        store
            .write_batch(&[StoreWrite::Part(part_at(1, "bolt", unix_ms_now()))])
            .unwrap();
        // Back to version 1's layout, as a box updated from it has it.
        store
            .connection
            .execute_batch(
                "UPDATE parts SET seen_at_ns = NULL;
                 ALTER TABLE parts DROP COLUMN seen_at_ns;
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        drop(store);
        let mut store = Store::open(&path).unwrap();
        assert_eq!(pragma(&store, "user_version"), SCHEMA_VERSION);
        store.begin_run().unwrap();
        store
            .write_batch(&[StoreWrite::Part(part_at(2, "nut", unix_ms_now()))])
            .unwrap();
        let seen: Vec<_> = store
            .events_since(0, 10)
            .unwrap()
            .iter()
            .map(|event| event.seen_at_ns)
            .collect();
        assert_eq!(seen, [None, Some(500)]);
    }

    #[test]
    fn a_row_written_without_a_wall_clock_time_gets_the_time_of_writing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("events.sqlite")).unwrap();
        let before = unix_ms_now();
        // As a build from before the column would insert after a rollback.
        store
            .connection
            .execute_batch(
                "INSERT INTO parts (run_id, part_id, class, confidence, lane, reason,
                     decided_at_ns, decode_us, preprocess_us, inference_us, postprocess_us,
                     track_decide_us)
                 VALUES (1, 1, 'bolt', 0.9, 'bolts', 'rule', 0, 0, 0, 0, 0, 0)",
            )
            .unwrap();
        let after = unix_ms_now();
        let written = store.events_since(0, 1).unwrap()[0].decided_unix_ms;
        // SQLite goes through a floating-point Julian day, which may round a
        // millisecond down.
        assert!(
            (before - 1..=after).contains(&written),
            "{before} <= {written} <= {after}"
        );
    }
}
