//! `state.json`: the one file that says which slot is committed, what was
//! committed before it, what is on trial, and what the box holds against
//! signatures (revoked keys, its trusted time). Read and written whole by
//! [`OtaDir`](crate::OtaDir).

use std::collections::BTreeSet;
use std::time::SystemTime;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::OtaError;
use crate::keys::Trust;
use crate::slots::{SlotName, now_rfc3339};

/// The state layout this code reads and writes.
pub(crate) const STATE_FORMAT: u32 = 1;
/// History entries kept in the state file.
const HISTORY: usize = 50;

/// A slot and its version, as the state records it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Installed {
    /// The slot.
    pub slot: SlotName,
    /// Its version.
    pub version: Version,
    /// Its package's manifest digest, or [`FACTORY`].
    pub package: String,
}

/// A slot switched to but not yet proven.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Trial {
    /// What is on trial.
    pub installed: Installed,
    /// When the switch happened, RFC 3339.
    pub switched_at: String,
    /// The installer judging it.
    pub installer_pid: u32,
}

/// Something that happened to the slots.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    /// When, RFC 3339.
    pub at: String,
    /// `initialized`, `committed`, `rolled_back`, `forced`, `refused`.
    pub event: String,
    /// The version it concerns.
    pub version: Version,
    /// Why, in words.
    pub detail: String,
}

/// `state.json`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// [`STATE_FORMAT`].
    pub format: u32,
    /// The slot the box returns to whatever happens.
    pub committed: Installed,
    /// What was committed before it: the only version `rollback` goes to.
    #[serde(default)]
    pub previous: Option<Installed>,
    /// The highest version ever committed here, by semver precedence. It
    /// only rises: a rollback, manual or automatic, leaves it, and a
    /// package below it needs `--force`. A state written before the floor
    /// existed reads as its committed version.
    #[serde(default = "no_floor")]
    pub floor: Version,
    /// A slot being tried, if any.
    pub trial: Option<Trial>,
    /// Signing keys revoked by packages this box verified, by id. Ids are
    /// only ever added: no rollback or later package takes one back.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub revoked_keys: BTreeSet<String>,
    /// The box's trusted time, RFC 3339: the signing time (`created`) of
    /// the newest package it switched to. It only rises, and key expiry is
    /// judged at the later of it and the clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_time: Option<String>,
    /// Recent events, oldest first.
    pub history: Vec<HistoryEntry>,
}

impl State {
    /// Appends to the history, keeping the newest entries.
    pub fn record(&mut self, event: &str, version: &Version, detail: impl Into<String>) {
        self.history.push(HistoryEntry {
            at: now_rfc3339(),
            event: event.to_owned(),
            version: version.clone(),
            detail: detail.into(),
        });
        let excess = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..excess);
    }

    /// What this box judges signatures by at `clock`: its trusted time and
    /// revoked keys.
    pub fn trust(&self, clock: SystemTime) -> Result<Trust, OtaError> {
        Ok(Trust {
            clock,
            trusted_time: self.trusted_time()?,
            revoked: self.revoked_keys.clone(),
        })
    }

    /// Records `keys` as revoked; whether any was new.
    pub fn revoke(&mut self, keys: &[String]) -> bool {
        let before = self.revoked_keys.len();
        self.revoked_keys.extend(keys.iter().cloned());
        self.revoked_keys.len() > before
    }

    /// Raises the trusted time to `signed_at` if that is later; it never
    /// moves back.
    pub fn raise_trusted_time(&mut self, signed_at: SystemTime) -> Result<(), OtaError> {
        if self
            .trusted_time()?
            .is_none_or(|trusted| trusted < signed_at)
        {
            self.trusted_time = Some(humantime::format_rfc3339_seconds(signed_at).to_string());
        }
        Ok(())
    }

    pub(crate) fn trusted_time(&self) -> Result<Option<SystemTime>, OtaError> {
        self.trusted_time
            .as_deref()
            .map(|text| {
                humantime::parse_rfc3339(text).map_err(|error| {
                    OtaError::Damaged(format!(
                        "state.json: trusted_time {text:?} is not an RFC 3339 time: {error}"
                    ))
                })
            })
            .transpose()
    }

    /// The slot the daemon should run now.
    pub fn running(&self) -> SlotName {
        self.trial
            .as_ref()
            .map_or(self.committed.slot, |trial| trial.installed.slot)
    }
}

/// The floor of a state written before floors existed, raised to its
/// committed version as it is read.
fn no_floor() -> Version {
    Version::new(0, 0, 0)
}
