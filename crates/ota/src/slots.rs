//! The A/B slots on the data partition, and how root's tools change them
//! and the state (`crate::state`) that says which of them is committed.
//!
//! ```text
//! <ota dir>/state.json       committed slot and version, trial, history
//! <ota dir>/current   ->     slots/a (what the daemon runs; derived)
//! <ota dir>/slots/{a,b}/     slot.json plus bin/ model/ calibration/ ...
//! <ota dir>/lock             held by the installer for its whole run
//! ```
//!
//! Every path here is reached through the update folder as
//! [`OtaDir`] opened it (held open, for root's tools). The lock is opened
//! without following a link and never truncated before it is held: a
//! `lock` planted as a link or a FIFO is refused by name.
//!
//! `state.json` is the single truth and is only ever replaced whole
//! (temp file, fsync, rename). The `current` link is derived from it and
//! flipped by one rename; [`OtaDir::recover`] repairs it. A slot becomes
//! visible under its name only once it is complete and synced, so a power
//! cut or a SIGKILL at any point leaves either the old state or the new.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use edgesort_types::{sha256_file, sync_folder, write_atomically};
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::folder::{OtaDir, refuse_unless_owned};
use crate::keys::Trust;
use crate::manifest::{PayloadKind, slot_path_kind};
use crate::package::VerifiedPackage;
use crate::state::{Installed, STATE_FORMAT, State};
use crate::versions::raised_floor;
use crate::{OtaError, io_error};

/// A slot's own record of its files.
pub const SLOT_MANIFEST: &str = "slot.json";
/// What a slot built from the image rather than a package records as its
/// package digest.
pub const FACTORY: &str = "factory";

/// One of the two slots.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SlotName {
    /// Slot a.
    A,
    /// Slot b.
    B,
}

impl SlotName {
    /// The other slot.
    pub fn other(self) -> SlotName {
        match self {
            SlotName::A => SlotName::B,
            SlotName::B => SlotName::A,
        }
    }

    /// `a` or `b`.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotName::A => "a",
            SlotName::B => "b",
        }
    }
}

impl std::fmt::Display for SlotName {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A file as a slot records it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    /// sha256, lowercase hex.
    pub sha256: String,
    /// Length in bytes.
    pub size: u64,
    /// Executable or not.
    pub executable: bool,
}

/// `slot.json`: what a complete slot holds. Written last, so a slot
/// without one is not complete.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SlotManifest {
    /// The application version.
    pub version: Version,
    /// sha256 of the package manifest it came from, or [`FACTORY`].
    pub package: String,
    /// When it was staged, RFC 3339.
    pub staged_at: String,
    /// Every file, by slot path.
    pub files: BTreeMap<String, FileRecord>,
}

impl SlotManifest {
    /// The digests of the slot's models, by path.
    pub fn models(&self) -> impl Iterator<Item = (&String, &FileRecord)> {
        self.files
            .iter()
            .filter(|(path, _)| path.starts_with("model/"))
    }

    /// What the engine is built from: the model and the calibration set.
    /// A slot that changes either needs its engine prepared before the
    /// switch.
    pub fn engine_inputs(&self) -> Vec<(&String, &String)> {
        self.files
            .iter()
            .filter(|(path, _)| path.starts_with("model/") || path.starts_with("calibration/"))
            .map(|(path, record)| (path, &record.sha256))
            .collect()
    }

    /// The files an OS updater must be handed.
    pub fn os_payloads(&self) -> impl Iterator<Item = &String> {
        self.files.keys().filter(|path| path.starts_with("os/"))
    }
}

/// Held for the whole of an install, switch or recovery; released by the
/// kernel when its process dies, so a killed installer never leaves it.
pub struct InstallLock {
    _file: File,
}

/// What [`OtaDir::recover`] found and did.
#[derive(Debug)]
pub struct Recovery {
    /// The state afterwards.
    pub state: State,
    /// Each repair, in words; empty when all was in order.
    pub repairs: Vec<String>,
    /// A trial whose installer had died was rolled back.
    pub trial_rolled_back: bool,
}

impl OtaDir {
    /// The link to the slot the daemon runs, as the daemon and a
    /// configuration name it.
    pub fn current(&self) -> PathBuf {
        self.root().join("current")
    }

    /// `path` as it will be once the slot in `slot_dir` is current, when it
    /// points through the `current` link (a configuration's
    /// `.../ota/current/model/...`); other paths are returned as they are.
    pub fn through_slot(&self, path: &Path, slot_dir: &Path) -> PathBuf {
        match path.strip_prefix(self.current()) {
            Ok(rest) => slot_dir.join(rest),
            Err(_) => path.to_owned(),
        }
    }

    /// A slot's folder as this process reaches it: through the folder held
    /// open, for one opened with [`OtaDir::open_as_owner`]
    /// (`/proc/<pid>/fd/<n>/slots/a`, which a child process of the same
    /// user reaches too).
    pub fn slot_dir(&self, slot: SlotName) -> PathBuf {
        self.work().join("slots").join(slot.as_str())
    }

    fn staging_dir(&self, slot: SlotName) -> PathBuf {
        self.work().join("slots").join(format!("{slot}.staging"))
    }

    fn trash_dir(&self, slot: SlotName) -> PathBuf {
        self.work().join("slots").join(format!("{slot}.trash"))
    }

    fn state_path(&self) -> PathBuf {
        self.work().join("state.json")
    }

    /// Takes the lock, or says who holds it.
    pub fn lock(&self) -> Result<InstallLock, OtaError> {
        self.take_lock()?
            .map_err(|holder| OtaError::Busy(holder.trim().to_owned()))
    }

    /// Takes the lock if nobody holds it.
    pub fn try_lock(&self) -> Result<Option<InstallLock>, OtaError> {
        Ok(self.take_lock()?.ok())
    }

    /// The lock, or what its holder wrote in it.
    fn take_lock(&self) -> Result<Result<InstallLock, String>, OtaError> {
        self.named(|| {
            let root = self.folder()?;
            let slots = root.create_folder("slots", 0o755)?;
            if let Some(owner) = self.owner() {
                refuse_unless_owned(slots.path(), &slots.metadata()?, owner)?;
            }
            // The daemon's user reads the slots that root writes here.
            for folder in [self.work().to_owned(), self.work().join("slots")] {
                set_mode(&folder, 0o755)?;
            }
            let path = root.join("lock");
            // Never through a link, never a FIFO, and not truncated before it
            // is held: another installer's pid stays readable.
            let mut file = root.open_or_create("lock", 0o644)?;
            if let Some(owner) = self.owner() {
                let metadata = file
                    .metadata()
                    .map_err(io_error(format!("reading {}", path.display())))?;
                refuse_unless_owned(&path, &metadata, owner)?;
            }
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let error = std::io::Error::last_os_error();
                if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    let mut holder = String::new();
                    let _ = (&mut file).take(256).read_to_string(&mut holder);
                    return Ok(Err(holder));
                }
                return Err(OtaError::Io {
                    what: format!("locking {}", path.display()),
                    source: error,
                });
            }
            let holder = format!("pid {}", std::process::id());
            let _ = file
                .set_len(0)
                .and_then(|()| file.write_all(holder.as_bytes()));
            Ok(Ok(InstallLock { _file: file }))
        })
    }

    /// The state, or `None` before the first [`OtaDir::init`].
    pub fn state(&self) -> Result<Option<State>, OtaError> {
        self.named(|| self.read_state())
    }

    fn read_state(&self) -> Result<Option<State>, OtaError> {
        let path = self.state_path();
        if !self.check_owned(&path, false)? {
            return Ok(None);
        }
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(OtaError::Io {
                    what: format!("reading {}", path.display()),
                    source,
                });
            }
        };
        let mut state: State = serde_json::from_slice(&bytes)
            .map_err(|error| OtaError::Damaged(format!("{}: {error}", path.display())))?;
        state.floor = raised_floor(&state.floor, &state.committed.version);
        if state.format != STATE_FORMAT {
            return Err(OtaError::Damaged(format!(
                "{}: format {} is not {STATE_FORMAT}",
                path.display(),
                state.format
            )));
        }
        state.trusted_time()?;
        Ok(Some(state))
    }

    /// What this box judges signatures by at `clock` (see [`State::trust`]);
    /// by the clock alone before the first [`OtaDir::init`].
    pub fn trust(&self, clock: SystemTime) -> Result<Trust, OtaError> {
        match self.state()? {
            Some(state) => state.trust(clock),
            None => Ok(Trust::clock(clock)),
        }
    }

    /// Replaces the state whole.
    pub fn write_state(&self, _lock: &InstallLock, state: &State) -> Result<(), OtaError> {
        let mut bytes = serde_json::to_vec_pretty(state).expect("state serializes");
        bytes.push(b'\n');
        self.named(|| {
            write_atomically(&self.state_path(), &bytes)
                .map_err(io_error(format!("writing {}", self.state_path().display())))
        })
    }

    /// The slot `current` points at, if it is a link to one.
    pub fn current_slot(&self) -> Option<SlotName> {
        let target = std::fs::read_link(self.work().join("current")).ok()?;
        [SlotName::A, SlotName::B]
            .into_iter()
            .find(|slot| target == Path::new("slots").join(slot.as_str()))
    }

    /// Points `current` at `slot` with one rename.
    pub fn point_current(&self, _lock: &InstallLock, slot: SlotName) -> Result<(), OtaError> {
        self.named(|| {
            let next = self.work().join("current.next");
            let current = self.work().join("current");
            let _ = std::fs::remove_file(&next);
            // Relative, so it holds by whichever path the folder is reached.
            std::os::unix::fs::symlink(Path::new("slots").join(slot.as_str()), &next)
                .map_err(io_error(format!("linking {}", next.display())))?;
            std::fs::rename(&next, &current)
                .map_err(io_error(format!("switching {}", current.display())))?;
            sync_folder(self.work()).map_err(io_error(format!("syncing {}", self.work().display())))
        })
    }

    /// Reads a slot's `slot.json`.
    pub fn slot_manifest(&self, slot: SlotName) -> Result<SlotManifest, OtaError> {
        self.named(|| {
            let folder = self.slot_dir(slot);
            self.check_owned(&folder, true)?;
            let path = folder.join(SLOT_MANIFEST);
            let bytes = std::fs::read(&path).map_err(|error| {
                OtaError::Damaged(format!(
                    "slot {slot} is not complete: {}: {error}",
                    path.display()
                ))
            })?;
            serde_json::from_slice(&bytes)
                .map_err(|error| OtaError::Damaged(format!("{}: {error}", path.display())))
        })
    }

    /// Re-reads every file of a slot and checks it against `slot.json`:
    /// nothing missing, changed, added, or a link.
    pub fn verify_slot(&self, slot: SlotName) -> Result<SlotManifest, OtaError> {
        self.named(|| {
            let manifest = self.slot_manifest(slot)?;
            let folder = self.slot_dir(slot);
            let mut found = Vec::new();
            list_plain_files(&folder, &folder, &mut found)?;
            for path in &found {
                if path != SLOT_MANIFEST && !manifest.files.contains_key(path) {
                    return Err(OtaError::Damaged(format!(
                        "slot {slot} holds {path}, which its slot.json does not list"
                    )));
                }
            }
            for (path, record) in &manifest.files {
                let file = folder.join(path);
                let (sha256, size) = hash_file(&file)
                    .map_err(|error| OtaError::Damaged(format!("slot {slot}: {path}: {error}")))?;
                if sha256 != record.sha256 || size != record.size {
                    return Err(OtaError::Damaged(format!(
                        "slot {slot}: {path} has changed on disk ({size} bytes, sha256 {sha256}; \
                         recorded {} bytes, {})",
                        record.size, record.sha256
                    )));
                }
            }
            Ok(manifest)
        })
    }

    /// First start: makes slot a from the image's files under `factory`
    /// (laid out as a slot) and commits it as `version`.
    pub fn init(
        &self,
        lock: &InstallLock,
        factory: &Path,
        version: Version,
    ) -> Result<State, OtaError> {
        self.named(|| {
            if let Some(state) = self.state()? {
                return Err(OtaError::Refused(format!(
                    "already initialized: slot {} holds committed version {}",
                    state.committed.slot, state.committed.version
                )));
            }
            let slot = SlotName::A;
            self.clear_leftovers(lock)?;
            self.discard(lock, slot)?;
            let staging = self.staging_dir(slot);
            create_dir(&staging)?;
            let mut files = Vec::new();
            list_plain_files(factory, factory, &mut files)?;
            let mut records = BTreeMap::new();
            for path in files {
                slot_path_kind(&path)?;
                let record = place_file(&factory.join(&path), &staging.join(&path))?;
                records.insert(path, record);
            }
            let manifest = SlotManifest {
                version: version.clone(),
                package: FACTORY.to_owned(),
                staged_at: now_rfc3339(),
                files: records,
            };
            self.seal(lock, slot, &manifest)?;
            self.point_current(lock, slot)?;
            let mut state = State {
                format: STATE_FORMAT,
                committed: Installed {
                    slot,
                    version: version.clone(),
                    package: FACTORY.to_owned(),
                },
                previous: None,
                floor: version.clone(),
                trial: None,
                revoked_keys: BTreeSet::new(),
                trusted_time: None,
                history: Vec::new(),
            };
            state.record(
                "initialized",
                &version,
                format!("slot a from the image's files in {}", factory.display()),
            );
            self.write_state(lock, &state)?;
            Ok(state)
        })
    }

    /// Brings the folder back to one consistent committed slot: removes
    /// half-staged and half-deleted slots, rolls back a trial whose
    /// installer is gone (whoever holds the lock is the only installer, so
    /// a trial found by the lock's holder was left by a dead one), and
    /// points `current` at the slot the state names.
    pub fn recover(&self, lock: &InstallLock) -> Result<Recovery, OtaError> {
        self.named(|| {
            let mut repairs = self.clear_leftovers(lock)?;
            let mut state = self.state()?.ok_or(OtaError::NotInitialized)?;
            let trial_rolled_back = state.trial.is_some();
            if let Some(trial) = state.trial.take() {
                let detail = format!(
                    "version {} in slot {} was switched to at {} but its installer (pid {}) \
                     stopped before it proved healthy; back to version {} in slot {}",
                    trial.installed.version,
                    trial.installed.slot,
                    trial.switched_at,
                    trial.installer_pid,
                    state.committed.version,
                    state.committed.slot
                );
                state.record("rolled_back", &trial.installed.version, &detail);
                self.write_state(lock, &state)?;
                repairs.push(detail);
            }
            if self.current_slot() != Some(state.committed.slot) {
                self.point_current(lock, state.committed.slot)?;
                repairs.push(format!(
                    "pointed current at the committed slot {}",
                    state.committed.slot
                ));
            }
            self.slot_manifest(state.committed.slot)?;
            Ok(Recovery {
                state,
                repairs,
                trial_rolled_back,
            })
        })
    }

    /// Builds the slot other than `base` from `base`'s files and the
    /// package's payloads, hashing every payload as it lands. The slot
    /// appears under its name only once it is complete and synced.
    pub fn stage(
        &self,
        lock: &InstallLock,
        base: SlotName,
        package: &VerifiedPackage,
    ) -> Result<(SlotName, SlotManifest), OtaError> {
        self.named(|| {
            let target = base.other();
            let base_manifest = self.slot_manifest(base)?;
            let staging = self.staging_dir(target);
            if self.check_owned(&staging, true)? {
                let _ = std::fs::remove_dir_all(&staging);
            }
            create_dir(&staging)?;
            let filled = self.fill(base, &base_manifest, package, &staging);
            let sealed = filled.and_then(|manifest| {
                self.seal(lock, target, &manifest)?;
                Ok(manifest)
            });
            match sealed {
                Ok(manifest) => Ok((target, manifest)),
                Err(error) => {
                    // Refused or failed: no half-staged files stay behind (a
                    // tampered payload among them), and the other slot, the
                    // way back, is as it was.
                    let _ = std::fs::remove_dir_all(&staging);
                    Err(error)
                }
            }
        })
    }

    /// Places `base`'s files the package does not replace, then the
    /// package's payloads, in `staging`; returns the slot's record.
    fn fill(
        &self,
        base: SlotName,
        base_manifest: &SlotManifest,
        package: &VerifiedPackage,
        staging: &Path,
    ) -> Result<SlotManifest, OtaError> {
        let manifest = &package.manifest;
        let mut records = BTreeMap::new();
        for (path, record) in &base_manifest.files {
            // A package replaces what it carries; an OS payload belongs to
            // the one update that brought it.
            if manifest.payload(path).is_some() || slot_path_kind(path)? == PayloadKind::Os {
                continue;
            }
            place_file(&self.slot_dir(base).join(path), &staging.join(path))?;
            records.insert(path.clone(), record.clone());
        }
        package.extract(staging)?;
        for payload in &manifest.payloads {
            records.insert(
                payload.path.clone(),
                FileRecord {
                    sha256: payload.sha256.clone(),
                    size: payload.size,
                    executable: payload.executable,
                },
            );
        }
        Ok(SlotManifest {
            version: manifest.version.clone(),
            package: package.manifest_sha256.clone(),
            staged_at: now_rfc3339(),
            files: records,
        })
    }

    /// Writes `slot.json` into the staging folder, syncs every folder, and
    /// puts the staging folder in the place of the slot's old contents.
    fn seal(
        &self,
        lock: &InstallLock,
        slot: SlotName,
        manifest: &SlotManifest,
    ) -> Result<(), OtaError> {
        let staging = self.staging_dir(slot);
        let bytes = serde_json::to_vec_pretty(manifest).expect("slot manifest serializes");
        write_atomically(&staging.join(SLOT_MANIFEST), &bytes)
            .map_err(io_error(format!("writing {}", staging.display())))?;
        open_to_readers(&staging, &staging, manifest)?;
        sync_tree(&staging)?;
        self.discard(lock, slot)?;
        std::fs::rename(&staging, self.slot_dir(slot))
            .map_err(io_error(format!("renaming {}", staging.display())))?;
        sync_folder(&self.work().join("slots"))
            .map_err(io_error(format!("syncing {}", self.work().display())))
    }

    /// Removes a slot: renamed aside first, so a slot is either whole
    /// under its name or gone.
    fn discard(&self, _lock: &InstallLock, slot: SlotName) -> Result<(), OtaError> {
        let folder = self.slot_dir(slot);
        let trash = self.trash_dir(slot);
        if self.check_owned(&folder, true)? {
            if self.check_owned(&trash, true)? {
                let _ = std::fs::remove_dir_all(&trash);
            }
            std::fs::rename(&folder, &trash)
                .map_err(io_error(format!("moving {} aside", folder.display())))?;
            sync_folder(&self.work().join("slots"))
                .map_err(io_error(format!("syncing {}", self.work().display())))?;
        }
        if self.check_owned(&trash, true)? {
            std::fs::remove_dir_all(&trash)
                .map_err(io_error(format!("removing {}", trash.display())))?;
        }
        Ok(())
    }

    fn clear_leftovers(&self, _lock: &InstallLock) -> Result<Vec<String>, OtaError> {
        let mut repairs = Vec::new();
        for slot in [SlotName::A, SlotName::B] {
            for leftover in [self.staging_dir(slot), self.trash_dir(slot)] {
                if self.check_owned(&leftover, true)? {
                    std::fs::remove_dir_all(&leftover)
                        .map_err(io_error(format!("removing {}", leftover.display())))?;
                    repairs.push(
                        self.shown(&format!("removed the unfinished {}", leftover.display())),
                    );
                }
            }
        }
        let _ = std::fs::remove_file(self.work().join("current.next"));
        Ok(repairs)
    }

    /// Free bytes on the data partition.
    pub fn free_bytes(&self) -> Result<u64, OtaError> {
        let path = std::ffi::CString::new(self.work().as_os_str().as_encoded_bytes())
            .map_err(|_| OtaError::Damaged("the OTA folder's path holds a NUL".into()))?;
        // SAFETY: statvfs writes into the zeroed struct it is given.
        let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
            return Err(OtaError::Io {
                what: format!("measuring free space on {}", self.root().display()),
                source: std::io::Error::last_os_error(),
            });
        }
        // Saturating: more free bytes than a u64 holds is plenty.
        Ok((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
    }
}

/// sha256 and length of a file.
pub fn hash_file(path: &Path) -> Result<(String, u64), OtaError> {
    let sha256 = sha256_file(path).map_err(io_error(format!("reading {}", path.display())))?;
    let size = std::fs::metadata(path)
        .map_err(io_error(format!("reading {}", path.display())))?
        .len();
    Ok((sha256, size))
}

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn create_dir(path: &Path) -> Result<(), OtaError> {
    std::fs::create_dir_all(path).map_err(io_error(format!("creating {}", path.display())))
}

/// Hard-links `from` to `to` where it can (unchanged files cost no space
/// and no time), copies and syncs otherwise; returns the file's record.
fn place_file(from: &Path, to: &Path) -> Result<FileRecord, OtaError> {
    if let Some(parent) = to.parent() {
        create_dir(parent)?;
    }
    let metadata =
        std::fs::symlink_metadata(from).map_err(io_error(format!("reading {}", from.display())))?;
    if !metadata.file_type().is_file() {
        return Err(OtaError::UnexpectedEntry(format!(
            "{} is not a plain file",
            from.display()
        )));
    }
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(io_error(format!(
            "copying {} to {}",
            from.display(),
            to.display()
        )))?;
        File::open(to)
            .and_then(|file| file.sync_all())
            .map_err(io_error(format!("syncing {}", to.display())))?;
    }
    let (sha256, size) = hash_file(to)?;
    Ok(FileRecord {
        sha256,
        size,
        executable: metadata.permissions().mode() & 0o111 != 0,
    })
}

/// Lists the plain files under `folder`, relative to `root`; a link or a
/// special file is an error (slots and packages hold plain files only).
pub(crate) fn list_plain_files(
    root: &Path,
    folder: &Path,
    files: &mut Vec<String>,
) -> Result<(), OtaError> {
    let entries =
        std::fs::read_dir(folder).map_err(io_error(format!("listing {}", folder.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_error(format!("listing {}", folder.display())))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(io_error(format!("reading {}", path.display())))?;
        if kind.is_dir() {
            list_plain_files(root, &path, files)?;
        } else if kind.is_file() {
            let relative = path.strip_prefix(root).expect("under root");
            let relative = relative.to_str().ok_or_else(|| {
                OtaError::UnexpectedEntry(format!("{} is not a UTF-8 name", path.display()))
            })?;
            files.push(relative.to_owned());
        } else {
            return Err(OtaError::UnexpectedEntry(format!(
                "{} is a link or special file; slots and packages hold plain files only",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Gives a sealed slot the modes its readers need: folders 0755, files 0644,
/// or 0755 where the manifest says executable. Set here rather than at
/// creation because creation modes pass through the umask, and the units
/// that write slots run under `UMask=0077`: a slot made there would be
/// root's alone, and the daemon's user could not load its model.
fn open_to_readers(root: &Path, folder: &Path, manifest: &SlotManifest) -> Result<(), OtaError> {
    set_mode(folder, 0o755)?;
    let entries =
        std::fs::read_dir(folder).map_err(io_error(format!("listing {}", folder.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_error(format!("listing {}", folder.display())))?;
        let path = entry.path();
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            open_to_readers(root, &path, manifest)?;
            continue;
        }
        let executable = path
            .strip_prefix(root)
            .ok()
            .and_then(|relative| relative.to_str())
            .and_then(|relative| manifest.files.get(relative))
            .is_some_and(|record| record.executable);
        set_mode(&path, if executable { 0o755 } else { 0o644 })?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), OtaError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_error(format!("setting the mode of {}", path.display())))
}

fn sync_tree(folder: &Path) -> Result<(), OtaError> {
    let entries =
        std::fs::read_dir(folder).map_err(io_error(format!("listing {}", folder.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_error(format!("listing {}", folder.display())))?;
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            sync_tree(&entry.path())?;
        }
    }
    sync_folder(folder).map_err(io_error(format!("syncing {}", folder.display())))
}
