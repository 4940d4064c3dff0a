//! Installing a package: verify, stage into the inactive slot, prepare the
//! engine while the line keeps sorting, switch, restart, judge, and commit
//! or roll back.

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use semver::Version;
use serde::Deserialize;

use crate::folder::OtaDir;
use crate::keys::TrustedKeys;
use crate::package::VerifiedPackage;
use crate::slots::{InstallLock, SlotManifest, SlotName};
use crate::state::{Installed, State, Trial};
use crate::versions::{needs_force, older_than, raised_floor};
use crate::{OtaError, now_rfc3339};

/// The running line, as the installer needs it.
pub trait Line {
    /// Restarts the daemon onto the slot `current` points at; returns once
    /// the service manager has started it (or failed to).
    fn restart(&mut self) -> Result<(), String>;
    /// The daemon's health now, or why it cannot be read.
    fn health(&mut self) -> Result<DaemonHealth, String>;
}

/// Builds and validates the engine for a staged slot while the current
/// slot keeps sorting.
pub trait EnginePreparer {
    /// Called when the staged slot's model differs from the running one's.
    /// Returns what was prepared, in words; an error keeps the box on its
    /// current slot.
    fn prepare(&mut self, slot: &Path, manifest: &SlotManifest) -> Result<String, String>;
}

/// What a new slot must show within the deadline to be committed.
#[derive(Clone, Debug)]
pub struct HealthCriteria {
    /// From the switch.
    pub deadline: Duration,
    /// Frames processed by the new daemon.
    pub min_frames: u64,
    /// Stage restarts tolerated.
    pub max_restarts: u64,
    /// How often the daemon is asked.
    pub poll: Duration,
}

/// The part of the daemon's `/status` the health check reads.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct DaemonHealth {
    /// `running` once frames flow and no stage is down.
    pub state: String,
    /// Seconds since the daemon started.
    pub uptime_s: f64,
    /// Frames.
    pub frames: HealthFrames,
    /// The engine in service.
    pub engine: HealthEngine,
    /// The supervised stages.
    pub stages: Vec<HealthStage>,
}

/// Frame totals.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct HealthFrames {
    /// Frames through the whole line.
    pub processed: u64,
}

/// The engine in service.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct HealthEngine {
    /// E.g. `tract (CPU)`.
    pub backend: String,
    /// sha256 of the model the detector was built from.
    pub model_sha256: Option<String>,
}

/// One stage.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct HealthStage {
    /// Its name.
    pub name: String,
    /// Times it was restarted.
    pub restarts: u64,
}

/// The health check's judgement of one sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Commit.
    Healthy,
    /// Not yet; why.
    Waiting(String),
    /// Can never pass; why.
    Failed(String),
}

impl HealthCriteria {
    /// Judges one sample of the daemon `since_switch` after the switch to
    /// a slot whose files are `slot`.
    pub fn judge(
        &self,
        health: &DaemonHealth,
        slot: &SlotManifest,
        since_switch: Duration,
    ) -> Verdict {
        // A daemon older than the switch is the one from before it.
        if health.uptime_s > since_switch.as_secs_f64() + 1.0 {
            return Verdict::Waiting(format!(
                "the daemon answering has run {:.0} s, longer than the {:.0} s since the switch: not restarted yet",
                health.uptime_s,
                since_switch.as_secs_f64()
            ));
        }
        let Some(model) = &health.engine.model_sha256 else {
            return Verdict::Waiting("the daemon reports no model yet".into());
        };
        if !slot.models().any(|(_, record)| &record.sha256 == model) {
            return Verdict::Failed(format!(
                "the daemon serves model sha256 {model}, which is none of the slot's models: \
                 model.path must point into the OTA folder's current/model/"
            ));
        }
        let restarts: u64 = health.stages.iter().map(|stage| stage.restarts).sum();
        if restarts > self.max_restarts {
            let stages: Vec<String> = health
                .stages
                .iter()
                .filter(|stage| stage.restarts > 0)
                .map(|stage| format!("{} {}x", stage.name, stage.restarts))
                .collect();
            return Verdict::Failed(format!(
                "stages crash-looping: {} restarts ({}), at most {} allowed",
                restarts,
                stages.join(", "),
                self.max_restarts
            ));
        }
        if health.state != "running" {
            return Verdict::Waiting(format!("the line is {}", health.state));
        }
        if health.frames.processed < self.min_frames {
            return Verdict::Waiting(format!(
                "{} of {} frames processed",
                health.frames.processed, self.min_frames
            ));
        }
        Verdict::Healthy
    }
}

/// What the installer reports as it goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The signature holds.
    Verified {
        /// The version.
        version: Version,
        /// The key.
        signer: String,
    },
    /// The inactive slot holds the new files, checked on disk.
    Staged {
        /// Which slot.
        slot: SlotName,
        /// Files in it.
        files: usize,
    },
    /// The model changed: the engine is being built for it.
    EngineBuilding,
    /// The engine is built and validated.
    EngineReady(String),
    /// An OS payload went to the OS updater.
    OsHandedOff(String),
    /// `current` now points at the new slot.
    Switched(SlotName),
    /// The daemon restarted.
    Restarted,
    /// A health sample that did not yet pass.
    Waiting(String),
    /// The new slot is committed.
    Committed(Version),
    /// The box is back on its committed slot.
    RolledBack(String),
}

/// How an install ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The new version runs and is committed.
    Committed {
        /// The version.
        version: Version,
        /// Its slot.
        slot: SlotName,
    },
    /// It failed its health check and the box went back.
    RolledBack {
        /// The version that failed.
        version: Version,
        /// Why.
        reason: String,
    },
}

/// Everything an install needs.
pub struct Installer<'a> {
    /// The slots.
    pub ota: &'a OtaDir,
    /// Keys the image trusts.
    pub keys: &'a TrustedKeys,
    /// This box's board.
    pub board: String,
    /// What commits a slot.
    pub criteria: HealthCriteria,
    /// Space staging must leave free.
    pub reserve_bytes: u64,
    /// Hands an OS payload to the OS updater; empty refuses them.
    pub os_update_command: Vec<String>,
    /// The running line.
    pub line: &'a mut dyn Line,
    /// Builds engines.
    pub engine: &'a mut dyn EnginePreparer,
    /// Told of each step.
    pub progress: &'a mut dyn FnMut(&Event),
}

impl Installer<'_> {
    /// Installs the package at `path`. A package not newer than the
    /// committed version by semver precedence (build metadata does not
    /// count), or below the box's version floor, is refused unless `force`
    /// gives a reason, which the history keeps. Any refusal leaves the
    /// running slot as it was. The file must be a plain file, not a link.
    ///
    /// Signatures are judged by the box's trust ([`State::trust`]): keys
    /// revoked here are refused, and expiry is judged at the later of the
    /// clock and the trusted time. The keys a verified package revokes are
    /// recorded at once, whether or not it goes on to install: a revocation
    /// is a security fix. The package's signing time raises the trusted
    /// time when the box switches to it.
    pub fn install(&mut self, path: &Path, force: Option<&str>) -> Result<Outcome, OtaError> {
        self.install_file(edgesort_types::open_regular_file(path)?, path, force)
    }

    /// [`Installer::install`] of a package file already open (as
    /// [`OtaDir::open_queued`] opens one); `path` names it in messages.
    pub fn install_file(
        &mut self,
        file: File,
        path: &Path,
        force: Option<&str>,
    ) -> Result<Outcome, OtaError> {
        let lock = self.ota.lock()?;
        let mut state = self.recover(&lock)?;
        let trust = state.trust(SystemTime::now())?;
        let package = VerifiedPackage::from_file(file, path, self.keys, &trust)?;
        let manifest = &package.manifest;
        if state.revoke(&manifest.revokes) {
            state.record(
                "revoked",
                &manifest.version,
                format!(
                    "signing keys {} revoked by the package signed by {} (manifest sha256 {})",
                    manifest.revokes.join(", "),
                    package.signer,
                    package.manifest_sha256
                ),
            );
            self.ota.write_state(&lock, &state)?;
        }
        (self.progress)(&Event::Verified {
            version: manifest.version.clone(),
            signer: package.signer.clone(),
        });
        if !manifest.boards.iter().any(|board| board == &self.board) {
            return Err(OtaError::WrongBoard {
                board: self.board.clone(),
                boards: manifest.boards.join(", "),
            });
        }
        let committed = state.committed.version.clone();
        if older_than(&committed, &manifest.min_version) {
            return Err(OtaError::Refused(format!(
                "version {} needs at least {} installed; this box has {committed}",
                manifest.version, manifest.min_version
            )));
        }
        // Recorded with the switch, so a forced install refused later
        // leaves no trace of having happened.
        let mut forced = None;
        if let Some(why) = needs_force(&manifest.version, &committed, &state.floor) {
            let Some(reason) = force else {
                return Err(OtaError::Refused(why));
            };
            forced = Some(format!(
                "installed over {committed} (version floor {}): {reason}",
                state.floor
            ));
        }
        let has_os_payload = manifest
            .payloads
            .iter()
            .any(|payload| payload.path.starts_with("os/"));
        if has_os_payload && self.os_update_command.is_empty() {
            return Err(OtaError::Refused(
                "the package carries an OS payload and this box has no OS updater \
                 configured (ota.os_update_command)"
                    .into(),
            ));
        }
        let free = self.ota.free_bytes()?;
        let needed = manifest
            .payload_bytes()
            .checked_add(self.reserve_bytes)
            .ok_or(OtaError::DiskFull {
                needed: u64::MAX,
                free,
            })?;
        if free < needed {
            return Err(OtaError::DiskFull { needed, free });
        }

        let (slot, slot_manifest) = self.ota.stage(&lock, state.committed.slot, &package)?;
        let slot_manifest = self.ota.verify_slot(slot).map(|verified| {
            debug_assert_eq!(verified, slot_manifest);
            verified
        })?;
        (self.progress)(&Event::Staged {
            slot,
            files: slot_manifest.files.len(),
        });
        let running = self.ota.slot_manifest(state.committed.slot)?;
        if slot_manifest.engine_inputs() != running.engine_inputs() {
            (self.progress)(&Event::EngineBuilding);
            let report = self
                .engine
                .prepare(&self.ota.slot_dir(slot), &slot_manifest)
                .map_err(|error| OtaError::Engine(self.ota.shown(&error)))?;
            (self.progress)(&Event::EngineReady(report));
        }
        for payload in slot_manifest.os_payloads() {
            let file = self.ota.slot_dir(slot).join(payload);
            hand_to_os_updater(&self.os_update_command, &file)
                .map_err(|error| self.ota.shown_error(error))?;
            (self.progress)(&Event::OsHandedOff(payload.clone()));
        }
        let installed = Installed {
            slot,
            version: slot_manifest.version.clone(),
            package: slot_manifest.package.clone(),
        };
        if let Some(forced) = forced {
            state.record("forced", &installed.version, forced);
        }
        // Recorded with the switch: every payload has been checked by now.
        state.raise_trusted_time(package.created)?;
        self.try_slot(&lock, state, installed, &slot_manifest)
    }

    /// Goes back to the other slot (the version before the committed
    /// one), health-checked like an install.
    pub fn rollback(&mut self, reason: &str) -> Result<Outcome, OtaError> {
        let lock = self.ota.lock()?;
        let mut state = self.recover(&lock)?;
        let slot = state.committed.slot.other();
        let manifest = self.ota.verify_slot(slot).map_err(|error| {
            OtaError::Refused(format!("there is no previous slot to go back to: {error}"))
        })?;
        // Only to what ran committed before: the other slot may hold an
        // update refused after it was staged, which never ran.
        if state.previous.as_ref().map(|previous| &previous.package) != Some(&manifest.package) {
            return Err(OtaError::Refused(format!(
                "slot {slot} holds version {}, which was never committed on this box",
                manifest.version
            )));
        }
        state.record(
            "forced",
            &manifest.version,
            format!(
                "rollback from {} asked for: {reason}",
                state.committed.version
            ),
        );
        let installed = Installed {
            slot,
            version: manifest.version.clone(),
            package: manifest.package.clone(),
        };
        self.try_slot(&lock, state, installed, &manifest)
    }

    /// Recovers the OTA folder; when that rolled back a trial whose
    /// installer died, the line may still run the trial's slot, so it is
    /// restarted onto the committed one before anything else is done.
    fn recover(&mut self, lock: &InstallLock) -> Result<State, OtaError> {
        let recovery = self.ota.recover(lock)?;
        if recovery.trial_rolled_back {
            self.line.restart().map_err(|error| {
                OtaError::Refused(format!(
                    "an interrupted update was rolled back, and the line did not restart \
                     onto the committed slot: {error}"
                ))
            })?;
        }
        Ok(recovery.state)
    }

    /// Switches to `installed`, restarts the line and judges it.
    fn try_slot(
        &mut self,
        lock: &InstallLock,
        mut state: State,
        installed: Installed,
        manifest: &SlotManifest,
    ) -> Result<Outcome, OtaError> {
        let slot = installed.slot;
        state.trial = Some(Trial {
            installed: installed.clone(),
            switched_at: now_rfc3339(),
            installer_pid: std::process::id(),
        });
        self.ota.write_state(lock, &state)?;
        self.ota.point_current(lock, slot)?;
        let switched = Instant::now();
        (self.progress)(&Event::Switched(slot));

        let verdict = match self.line.restart() {
            Err(error) => Verdict::Failed(format!("the daemon did not restart: {error}")),
            Ok(()) => {
                (self.progress)(&Event::Restarted);
                self.await_health(manifest, switched)
            }
        };
        match verdict {
            Verdict::Healthy => {
                state.trial = None;
                state.floor = raised_floor(&state.floor, &installed.version);
                state.previous = Some(std::mem::replace(&mut state.committed, installed.clone()));
                state.record(
                    "committed",
                    &installed.version,
                    format!(
                        "healthy {:.1} s after the switch to slot {slot}",
                        switched.elapsed().as_secs_f64()
                    ),
                );
                self.ota.write_state(lock, &state)?;
                (self.progress)(&Event::Committed(installed.version.clone()));
                Ok(Outcome::Committed {
                    version: installed.version,
                    slot,
                })
            }
            Verdict::Failed(reason) | Verdict::Waiting(reason) => {
                state.trial = None;
                state.record("rolled_back", &installed.version, &reason);
                self.ota.write_state(lock, &state)?;
                self.ota.point_current(lock, state.committed.slot)?;
                if let Err(error) = self.line.restart() {
                    tracing::error!(%error, "the daemon did not restart on the committed slot");
                }
                (self.progress)(&Event::RolledBack(reason.clone()));
                Ok(Outcome::RolledBack {
                    version: installed.version,
                    reason,
                })
            }
        }
    }

    /// Polls the daemon until it passes, fails for good, or the deadline
    /// passes; returns the last verdict.
    fn await_health(&mut self, manifest: &SlotManifest, switched: Instant) -> Verdict {
        let mut last = Verdict::Waiting("the daemon has not answered".into());
        while switched.elapsed() < self.criteria.deadline {
            let verdict = match self.line.health() {
                Ok(health) => self.criteria.judge(&health, manifest, switched.elapsed()),
                Err(error) => Verdict::Waiting(format!("the daemon does not answer: {error}")),
            };
            match verdict {
                Verdict::Healthy | Verdict::Failed(_) => return verdict,
                Verdict::Waiting(ref why) => {
                    if last != verdict {
                        (self.progress)(&Event::Waiting(why.clone()));
                    }
                }
            }
            last = verdict;
            std::thread::sleep(self.criteria.poll);
        }
        match last {
            Verdict::Waiting(why) => Verdict::Failed(format!(
                "not healthy within {} s of the switch: {why}",
                self.criteria.deadline.as_secs()
            )),
            other => other,
        }
    }
}

/// Runs the OS updater on `file`; it installs into the other rootfs slot
/// and takes effect at the next boot.
fn hand_to_os_updater(command: &[String], file: &Path) -> Result<(), OtaError> {
    let (program, arguments) = command.split_first().expect("checked non-empty");
    let output = Command::new(program)
        .args(arguments)
        .arg(file)
        .output()
        .map_err(|source| OtaError::Io {
            what: format!("running the OS updater {program}"),
            source,
        })?;
    if !output.status.success() {
        return Err(OtaError::Refused(format!(
            "the OS updater {program} refused {}: {} {}",
            file.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// Restarts the line through a command, `systemctl restart
/// edgesortd.service` on a box.
pub struct CommandLine<H> {
    /// The command.
    pub restart: Vec<String>,
    /// Reads the daemon's health.
    pub probe: H,
}

impl<H: FnMut() -> Result<DaemonHealth, String>> Line for CommandLine<H> {
    fn restart(&mut self) -> Result<(), String> {
        let (program, arguments) = self
            .restart
            .split_first()
            .ok_or("ota.restart_command is empty")?;
        let output = Command::new(program)
            .args(arguments)
            .output()
            .map_err(|error| format!("{program}: {error}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {}: {}",
                self.restart.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    fn health(&mut self) -> Result<DaemonHealth, String> {
        (self.probe)()
    }
}
