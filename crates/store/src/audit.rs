//! Who changed what on the machine: configuration edits, test pulses.

use rusqlite::params;
use serde::Serialize;

use crate::StoreError;
use crate::store::{Store, unix_ms_now};

/// Audit rows [`Store::enforce_retention`] keeps, newest first: years of
/// ordinary use, and a bounded size if a script hammers the API.
pub const AUDIT_ROWS_KEPT: u64 = 10_000;

/// One audited action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Grows with every entry.
    pub id: i64,
    /// When, ms since the Unix epoch.
    pub at_unix_ms: i64,
    /// Who, e.g. `api 127.0.0.1:51234`.
    pub actor: String,
    /// What, e.g. `config.put`.
    pub action: String,
    /// The particulars, often JSON.
    pub detail: String,
}

impl Store {
    /// Records that `actor` did `action`; returns the entry's id.
    pub fn audit(&self, actor: &str, action: &str, detail: &str) -> Result<i64, StoreError> {
        self.connection
            .execute(
                "INSERT INTO audit (at_unix_ms, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
                params![unix_ms_now(), actor, action, detail],
            )
            .map_err(|source| self.write_error(source))?;
        Ok(self.connection.last_insert_rowid())
    }

    /// The newest `limit` audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT id, at_unix_ms, actor, action, detail FROM audit
                 ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|source| self.read_error(source))?;
        let rows = statement
            .query_map([limit], |row| {
                Ok(AuditEntry {
                    id: row.get(0)?,
                    at_unix_ms: row.get(1)?,
                    actor: row.get(2)?,
                    action: row.get(3)?,
                    detail: row.get(4)?,
                })
            })
            .map_err(|source| self.read_error(source))?;
        rows.collect::<Result<_, _>>()
            .map_err(|source| self.read_error(source))
    }

    /// Deletes all but the newest `keep` audit entries; returns how many went.
    pub(crate) fn trim_audit(&self, keep: u64) -> rusqlite::Result<u64> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        // With fewer rows the subquery is NULL and nothing matches.
        self.connection
            .execute(
                "DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                [keep],
            )
            .map(|deleted| deleted as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_entries_come_back_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("events.sqlite")).unwrap();
        let before = unix_ms_now();
        let first = store
            .audit("api 127.0.0.1:5000", "config.put", "{\"rules\":1}")
            .unwrap();
        let second = store.audit("button", "ejector.test", "bolts").unwrap();
        assert!(second > first);

        let log = store.audit_log(10).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].id, second);
        assert_eq!(
            (
                log[0].actor.as_str(),
                log[0].action.as_str(),
                log[0].detail.as_str()
            ),
            ("button", "ejector.test", "bolts")
        );
        assert_eq!(log[1].action, "config.put");
        assert!(log.iter().all(|entry| entry.at_unix_ms >= before));
        assert_eq!(store.audit_log(1).unwrap(), &log[..1]);

        // Another connection, as the daemon's reader and writer are, sees it.
        let other = Store::open(store.path()).unwrap();
        assert_eq!(other.audit_log(10).unwrap(), log);
    }

    #[test]
    fn trimming_keeps_the_newest_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("events.sqlite")).unwrap();
        for n in 0..8 {
            store.audit("test", "step", &n.to_string()).unwrap();
        }
        assert_eq!(store.trim_audit(10).unwrap(), 0);
        assert_eq!(store.trim_audit(3).unwrap(), 5);
        let details: Vec<_> = store
            .audit_log(10)
            .unwrap()
            .into_iter()
            .map(|entry| entry.detail)
            .collect();
        assert_eq!(details, ["7", "6", "5"]);
        assert_eq!(store.trim_audit(0).unwrap(), 3);
        assert!(store.audit_log(10).unwrap().is_empty());
    }
}
