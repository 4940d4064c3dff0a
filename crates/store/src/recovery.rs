//! Opening after a power cut: a database that fails SQLite's integrity
//! check is moved aside, never deleted, and a new one takes its place, so
//! the machine keeps sorting and the old file stays for inspection.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::config::DbConfig;

use crate::StoreError;
use crate::store::{Store, unix_ms_now};

/// Integrity-check messages kept in the reason; the check lists up to 100.
const MESSAGES_KEPT: usize = 3;

/// The files of a database besides the main one; the log goes first, so
/// that an interrupted move never leaves a log beside a file it does not
/// belong to, which SQLite would replay into it.
const COMPANIONS: [&str; 2] = ["-wal", "-shm"];

/// A corrupt database was moved aside and replaced with an empty one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreReset {
    /// Where the old file went; its log and shared-memory files, if any,
    /// went beside it with `-wal` and `-shm` appended.
    pub moved_to: PathBuf,
    /// What SQLite said was wrong.
    pub reason: String,
}

impl fmt::Display for StoreReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event database was corrupt ({}); moved to {} and started empty",
            self.reason,
            self.moved_to.display()
        )
    }
}

impl Store {
    /// Opens `path` as [`Store::open`] does after checking the file with
    /// `PRAGMA integrity_check`. A file that is not a database or fails the
    /// check is moved aside to `<path>.corrupt-<unix seconds>` and a new
    /// database created; the reset says so. The check reads the whole file:
    /// 0.8 s for 120 MB (a million parts) on a desktop with the file in the
    /// page cache, longer from a cold eMMC.
    pub fn open_checked(path: &Path) -> Result<(Store, Option<StoreReset>), StoreError> {
        let reason = match integrity_problem(path)? {
            Some(reason) => reason,
            None => match Store::open(path) {
                Ok(store) => return Ok((store, None)),
                Err(StoreError::Open { source, .. }) if is_corruption(&source) => {
                    source.to_string()
                }
                Err(error) => return Err(error),
            },
        };
        let moved_to = move_aside(path)?;
        tracing::error!(
            path = %path.display(),
            moved_to = %moved_to.display(),
            %reason,
            "event database is corrupt; moved it aside and started an empty one"
        );
        let store = Store::open(path)?;
        Ok((store, Some(StoreReset { moved_to, reason })))
    }
}

fn is_corruption(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// What is wrong with the database at `path`, if anything; a missing file
/// is fine. Errors other than corruption (permissions, a locked file) are
/// returned, since moving the file aside would not cure them.
fn integrity_problem(path: &Path) -> Result<Option<String>, StoreError> {
    if !path.exists() {
        return Ok(None);
    }
    let open_error = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let connection = Connection::open(path).map_err(open_error)?;
    // Closing the last connection would otherwise checkpoint the log into
    // the main file, changing a file that may be about to be kept as evidence.
    connection
        .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(open_error)?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(open_error)?;
    match check(&connection) {
        Ok(problem) => Ok(problem),
        Err(error) if is_corruption(&error) => Ok(Some(error.to_string())),
        Err(source) => Err(open_error(source)),
    }
}

/// Runs `PRAGMA integrity_check`: none if it said `ok`, else its first
/// messages on one line.
fn check(connection: &Connection) -> rusqlite::Result<Option<String>> {
    let mut statement = connection.prepare("PRAGMA integrity_check")?;
    let mut rows = statement.query([])?;
    let mut messages = Vec::new();
    // After its b-tree walk the check reads each table against its indexes
    // with ordinary cursors, which end the statement with an error at the
    // first bad page: the messages so far say where, the error that it is
    // corrupt.
    loop {
        match rows.next() {
            Ok(Some(row)) => messages.push(row.get::<_, String>(0)?),
            Ok(None) => break,
            Err(error) if is_corruption(&error) => {
                messages.push(error.to_string());
                break;
            }
            Err(error) => return Err(error),
        }
    }
    if messages == ["ok"] {
        return Ok(None);
    }
    let mut reason = messages
        .iter()
        .take(MESSAGES_KEPT)
        .map(|message| {
            message
                .trim_start_matches("*** in database main ***")
                .trim()
                .replace('\n', " ")
        })
        .collect::<Vec<_>>()
        .join("; ");
    if messages.len() > MESSAGES_KEPT {
        reason.push_str(&format!("; {} more", messages.len() - MESSAGES_KEPT));
    }
    Ok(Some(format!("integrity check: {reason}")))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Renames the database and its companions to a name no file has yet.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let seconds = unix_ms_now() / 1000;
    let base = with_suffix(path, &format!(".corrupt-{seconds}"));
    // A second reset within the same second must not overwrite the first.
    let target = (0..)
        .map(|n| match n {
            0 => base.clone(),
            n => with_suffix(&base, &format!(".{n}")),
        })
        .find(|target| {
            !target.exists() && COMPANIONS.iter().all(|c| !with_suffix(target, c).exists())
        })
        .expect("an unused name exists");
    for suffix in COMPANIONS.iter().chain(&[""]) {
        let from = with_suffix(path, suffix);
        if !from.exists() {
            continue;
        }
        let to = with_suffix(&target, suffix);
        std::fs::rename(&from, &to).map_err(|source| StoreError::MoveAside {
            path: from.clone(),
            to: to.clone(),
            source,
        })?;
    }
    // A rename is only durable once its folder is: without this a power cut
    // could bring the corrupt file back under its old name.
    let folder = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Err(error) = std::fs::File::open(folder).and_then(|folder| folder.sync_all()) {
        tracing::warn!(folder = %folder.display(), %error, "cannot sync the folder after the move");
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};

    use super::*;
    use crate::StoreWrite;
    use crate::store::tests::part_at;

    /// Bytes that no SQLite header starts with and no b-tree page holds.
    fn garbage(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    /// The new database at the old path works and starts empty.
    fn assert_fresh_and_working(mut store: Store) {
        assert!(store.events_since(0, 10).unwrap().is_empty());
        store
            .write_batch(&[StoreWrite::Part(part_at(1, "bolt", unix_ms_now()))])
            .unwrap();
        assert_eq!(store.events_since(0, 10).unwrap().len(), 1);
        assert_eq!(store.journal_mode().unwrap(), "wal");
    }

    #[test]
    fn a_file_of_garbage_is_moved_aside_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let bytes = garbage(64 * 1024);
        let log = garbage(4096);
        std::fs::write(&path, &bytes).unwrap();
        std::fs::write(with_suffix(&path, "-wal"), &log[..1000]).unwrap();

        let (store, reset) = Store::open_checked(&path).unwrap();
        let reset = reset.expect("garbage is not a database");
        assert!(reset.reason.contains("not a database"), "{}", reset.reason);
        assert!(
            reset
                .moved_to
                .to_string_lossy()
                .starts_with(&format!("{}.corrupt-", path.display())),
            "{}",
            reset.moved_to.display()
        );
        assert!(std::fs::read(&reset.moved_to).unwrap() == bytes);
        assert!(std::fs::read(with_suffix(&reset.moved_to, "-wal")).unwrap() == log[..1000]);
        let alarm = reset.to_string();
        assert!(!alarm.contains('\n') && alarm.contains(&*reset.moved_to.to_string_lossy()));
        assert_fresh_and_working(store);
    }

    #[test]
    fn overwritten_pages_fail_the_integrity_check_and_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let (page, page_size) = {
            let mut store = Store::open(&path).unwrap();
            let batch: Vec<_> = (1..=3000)
                .map(|id| StoreWrite::Part(part_at(id, "bolt", 1_700_000_000_000)))
                .collect();
            store.write_batch(&batch).unwrap();
            // A leaf of the parts table from the middle of the file: damage
            // there goes unnoticed until something reads those rows.
            let leaves: Vec<i64> = store
                .connection
                .prepare("SELECT pageno FROM dbstat WHERE name = 'parts' AND pagetype = 'leaf' ORDER BY pageno")
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(leaves.len() > 20, "{} leaves", leaves.len());
            let page_size: i64 = store
                .connection
                .query_row("PRAGMA page_size", [], |row| row.get(0))
                .unwrap();
            (leaves[leaves.len() / 2], page_size as u64)
        };
        // Closing the last connection folded the log into the main file.
        assert!(!with_suffix(&path, "-wal").exists());
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start((page as u64 - 1) * page_size))
            .unwrap();
        file.write_all(&garbage(page_size as usize)).unwrap();
        drop(file);

        // Opening alone does not notice: only the check does.
        let unchecked = Store::open(&path).unwrap();
        assert_eq!(unchecked.class_count("bolt").unwrap(), 3000);
        drop(unchecked);
        let reason = integrity_problem(&path)
            .unwrap()
            .expect("the check finds the damage");
        assert!(reason.starts_with("integrity check: "), "{reason}");
        assert!(reason.contains(&format!("page {page}")), "{reason}");
        let damaged = std::fs::read(&path).unwrap();

        let (store, reset) = Store::open_checked(&path).unwrap();
        let reset = reset.expect("a reset");
        assert_eq!(reset.reason, reason);
        let moved = std::fs::read(&reset.moved_to).unwrap();
        let differ: Vec<_> = (0..moved.len().max(damaged.len()))
            .filter(|&i| moved.get(i) != damaged.get(i))
            .take(20)
            .collect();
        assert!(
            differ.is_empty(),
            "moved file differs at {differ:?} (len {} vs {})",
            moved.len(),
            damaged.len()
        );
        assert_fresh_and_working(store);
    }

    #[test]
    fn a_healthy_database_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let (mut store, reset) = Store::open_checked(&path).unwrap();
        assert!(reset.is_none(), "a missing file is simply created");
        store
            .write_batch(&[StoreWrite::Part(part_at(1, "bolt", unix_ms_now()))])
            .unwrap();
        // Left with a live log, as after a power cut.
        std::mem::forget(store);

        let (store, reset) = Store::open_checked(&path).unwrap();
        assert!(reset.is_none(), "{reset:?}");
        assert_eq!(store.events_since(0, 10).unwrap().len(), 1);
        let stray: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().contains("corrupt"))
            .collect();
        assert!(stray.is_empty());
    }

    #[test]
    fn a_second_reset_in_the_same_second_keeps_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        std::fs::write(&path, garbage(8192)).unwrap();
        let first = move_aside(&path).unwrap();
        std::fs::write(&path, b"second").unwrap();
        let second = move_aside(&path).unwrap();
        assert_ne!(first, second);
        assert!(std::fs::read(&first).unwrap() == garbage(8192));
        assert_eq!(std::fs::read(&second).unwrap(), b"second");
    }

    #[test]
    fn a_folder_that_cannot_hold_the_database_is_an_error_not_a_reset() {
        let error = match Store::open_checked(Path::new("/nonexistent-dir/events.sqlite")) {
            Err(error) => error.to_string(),
            Ok(_) => panic!("opened a database in a missing folder"),
        };
        assert!(error.contains("/nonexistent-dir/events.sqlite"), "{error}");
    }
}
