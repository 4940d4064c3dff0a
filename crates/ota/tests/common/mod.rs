//! A box with committed slot a, a release key it trusts, and doubles of the
//! line and the engine builder that record what was asked of them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use edgesort_ota::{
    DaemonHealth, EnginePreparer, Event, HealthCriteria, HealthEngine, HealthFrames, HealthStage,
    Installer, Line, MANIFEST_ENTRY, Manifest, OtaDir, OtaError, Outcome, PackInfo,
    SIGNATURES_ENTRY, SignatureEntry, Signatures, SigningKeyFile, SlotManifest, SlotName,
    TrustedKey, TrustedKeys,
};
use semver::Version;
use sha2::{Digest, Sha256};

pub const BOARD: &str = "orin-nano";
pub const FACTORY_VERSION: &str = "1.0.0";
pub const RELEASE_KEY: &str = "release-test";
pub const MODEL: &str = "model/detector.onnx";
pub const CONFIG: &str = "config/edgesort.toml";

/// Deterministic bytes, so a failure reproduces byte for byte.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes a slot-shaped folder: a model of `model_len` bytes from `seed`
/// and a config.
pub fn write_slot_files(folder: &Path, seed: u64, model_len: usize) {
    std::fs::create_dir_all(folder.join("model")).unwrap();
    std::fs::create_dir_all(folder.join("config")).unwrap();
    std::fs::write(folder.join(MODEL), pseudo_random_bytes(seed, model_len)).unwrap();
    std::fs::write(
        folder.join(CONFIG),
        format!("# build {seed}\n[model]\npath = \"current/model/detector.onnx\"\n"),
    )
    .unwrap();
}

/// The daemon as the installer sees it: it restarts onto whatever
/// `current` points at and then serves that slot's model, as edgesortd
/// does with `model.path` inside `current/`.
pub struct RecordingLine {
    pub ota: OtaDir,
    pub restarts: usize,
    /// Every restart fails, so a switch is rolled back.
    pub broken: bool,
}

impl Line for RecordingLine {
    fn restart(&mut self) -> Result<(), String> {
        self.restarts += 1;
        if self.broken {
            return Err("the test line is broken".into());
        }
        Ok(())
    }

    fn health(&mut self) -> Result<DaemonHealth, String> {
        let slot = self.ota.current_slot().ok_or("current points at no slot")?;
        let manifest = self.ota.slot_manifest(slot).map_err(|e| e.to_string())?;
        let (_, model) = manifest.models().next().ok_or("the slot has no model")?;
        Ok(DaemonHealth {
            state: "running".into(),
            uptime_s: 0.0,
            frames: HealthFrames { processed: 500 },
            engine: HealthEngine {
                backend: "test double".into(),
                model_sha256: Some(model.sha256.clone()),
            },
            stages: vec![HealthStage {
                name: "detect".into(),
                restarts: 0,
            }],
        })
    }
}

#[derive(Default)]
pub struct RecordingEngine {
    pub prepared: Vec<PathBuf>,
}

impl EnginePreparer for RecordingEngine {
    fn prepare(&mut self, slot: &Path, _manifest: &SlotManifest) -> Result<String, String> {
        self.prepared.push(slot.to_owned());
        Ok("engine built by the test double".into())
    }
}

/// What must not change when a package is refused.
pub struct RunningSlot {
    pub state_bytes: Vec<u8>,
    pub slot: SlotName,
    pub manifest: SlotManifest,
}

pub struct TestBox {
    pub dir: tempfile::TempDir,
    pub ota: OtaDir,
    pub keys: TrustedKeys,
    pub release_key: SigningKeyFile,
    pub line: RecordingLine,
    pub engine: RecordingEngine,
    pub events: Vec<Event>,
    pub reserve_bytes: u64,
    pub os_update_command: Vec<String>,
}

impl TestBox {
    /// Slot a committed at [`FACTORY_VERSION`] from the image's files.
    pub fn new() -> TestBox {
        let dir = tempfile::tempdir().unwrap();
        let factory = dir.path().join("factory");
        write_slot_files(&factory, 1, 4096);
        let ota = OtaDir::open_as_owner(&dir.path().join("ota")).unwrap();
        {
            // Released before installing: flock conflicts even within one
            // process when the file is opened twice.
            let lock = ota.lock().unwrap();
            ota.init(&lock, &factory, Version::parse(FACTORY_VERSION).unwrap())
                .unwrap();
        }
        let release_key = SigningKeyFile::generate(RELEASE_KEY).unwrap();
        let keys = TrustedKeys {
            keys: vec![trusted(&release_key, "2099-01-01T00:00:00Z")],
        };
        TestBox {
            line: RecordingLine {
                ota: ota.clone(),
                restarts: 0,
                broken: false,
            },
            dir,
            ota,
            keys,
            release_key,
            engine: RecordingEngine::default(),
            events: Vec::new(),
            reserve_bytes: 0,
            os_update_command: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An unsigned package of `version` for `boards`, with a new model,
    /// made now.
    pub fn unsigned_package(&self, name: &str, version: &str, boards: &[&str]) -> PathBuf {
        self.package_made(name, version, boards, SystemTime::now(), &[])
    }

    /// An unsigned package of `version` for `boards`, with a new model, made
    /// at `created` and revoking the keys `revokes`.
    pub fn package_made(
        &self,
        name: &str,
        version: &str,
        boards: &[&str],
        created: SystemTime,
        revokes: &[&str],
    ) -> PathBuf {
        let source = self.path(&format!("{name}.source"));
        write_slot_files(&source, 2 + name.len() as u64, 3072);
        let out = self.path(&format!("{name}.tar"));
        let version = Version::parse(version).unwrap();
        edgesort_ota::pack(
            &source,
            PackInfo {
                min_version: Version::new(0, 1, 0),
                version,
                boards: boards.iter().map(|board| board.to_string()).collect(),
                notes: "test package".into(),
                created,
                revokes: revokes.iter().map(|key| key.to_string()).collect(),
            },
            &out,
        )
        .unwrap();
        out
    }

    /// A package of `version` for this board, signed by the release key.
    pub fn signed_package(&self, name: &str, version: &str) -> PathBuf {
        let out = self.unsigned_package(name, version, &[BOARD]);
        edgesort_ota::sign(&out, &self.release_key).unwrap();
        out
    }

    pub fn install(&mut self, package: &Path, force: Option<&str>) -> Result<Outcome, OtaError> {
        self.with_installer(|installer| installer.install(package, force))
    }

    /// An installer wired to this box's doubles.
    pub fn with_installer<T>(&mut self, work: impl FnOnce(&mut Installer) -> T) -> T {
        let events = &mut self.events;
        let mut progress = |event: &Event| events.push(event.clone());
        work(&mut Installer {
            ota: &self.ota,
            keys: &self.keys,
            board: BOARD.into(),
            criteria: criteria(),
            reserve_bytes: self.reserve_bytes,
            os_update_command: self.os_update_command.clone(),
            line: &mut self.line,
            engine: &mut self.engine,
            progress: &mut progress,
        })
    }

    pub fn rollback(&mut self, reason: &str) -> Result<Outcome, OtaError> {
        let events = &mut self.events;
        let mut progress = |event: &Event| events.push(event.clone());
        Installer {
            ota: &self.ota,
            keys: &self.keys,
            board: BOARD.into(),
            criteria: criteria(),
            reserve_bytes: self.reserve_bytes,
            os_update_command: Vec::new(),
            line: &mut self.line,
            engine: &mut self.engine,
            progress: &mut progress,
        }
        .rollback(reason)
    }

    pub fn state_path(&self) -> PathBuf {
        self.ota.root().join("state.json")
    }

    pub fn running_slot(&self) -> RunningSlot {
        let state = self.ota.state().unwrap().unwrap();
        let slot = state.committed.slot;
        assert_eq!(self.ota.current_slot(), Some(slot));
        RunningSlot {
            state_bytes: std::fs::read(self.state_path()).unwrap(),
            slot,
            manifest: self.ota.verify_slot(slot).unwrap(),
        }
    }

    pub fn assert_running_slot_untouched(&self, before: &RunningSlot) {
        assert!(
            std::fs::read(self.state_path()).unwrap() == before.state_bytes,
            "state.json changed:\n{}",
            std::fs::read_to_string(self.state_path()).unwrap()
        );
        assert_eq!(self.ota.current_slot(), Some(before.slot), "current moved");
        match self.ota.verify_slot(before.slot) {
            Ok(manifest) => assert_eq!(manifest, before.manifest, "the slot's record changed"),
            Err(error) => panic!(
                "the committed slot {} no longer verifies: {error}",
                before.slot
            ),
        }
        let staging: Vec<String> = std::fs::read_dir(self.ota.root().join("slots"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".staging"))
            .collect();
        assert!(staging.is_empty(), "left behind in slots/: {staging:?}");
        assert_eq!(self.line.restarts, 0, "the line was restarted");
        assert!(
            self.engine.prepared.is_empty(),
            "an engine was built for a refused package: {:?}",
            self.engine.prepared
        );
    }

    pub fn was_reported_verified(&self) -> bool {
        self.events
            .iter()
            .any(|event| matches!(event, Event::Verified { .. }))
    }
}

/// An RFC 3339 time.
pub fn at(text: &str) -> SystemTime {
    humantime::parse_rfc3339(text).unwrap()
}

pub fn trusted(key: &SigningKeyFile, expires: &str) -> TrustedKey {
    TrustedKey {
        id: key.id.clone(),
        public_key: key.public_key_hex().unwrap(),
        expires: expires.into(),
    }
}

/// Generous deadline: a healthy double passes on its first sample, and a
/// slow machine must not turn that into a rollback.
fn criteria() -> HealthCriteria {
    HealthCriteria {
        deadline: Duration::from_secs(60),
        min_frames: 1,
        max_restarts: 0,
        poll: Duration::from_millis(10),
    }
}

/// One entry of a package file, with where its header and data lie.
pub struct PackageEntry {
    pub name: String,
    pub header_start: u64,
    pub data_start: u64,
    pub bytes: Vec<u8>,
}

pub fn package_entries(package: &Path) -> Vec<PackageEntry> {
    let mut archive = tar::Archive::new(std::fs::File::open(package).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            PackageEntry {
                name: String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
                header_start: entry.raw_header_position(),
                data_start: entry.raw_file_position(),
                bytes,
            }
        })
        .collect()
}

pub fn package_entry(package: &Path, name: &str) -> PackageEntry {
    package_entries(package)
        .into_iter()
        .find(|entry| entry.name == name)
        .unwrap_or_else(|| panic!("{} has no entry {name}", package.display()))
}

pub fn payload_entry_name(slot_path: &str) -> String {
    format!("{}{slot_path}", edgesort_ota::PAYLOAD_PREFIX)
}

pub fn signed_manifest_bytes(package: &Path) -> Vec<u8> {
    package_entry(package, MANIFEST_ENTRY).bytes
}

pub fn signatures_over(manifest: &[u8], key: &SigningKeyFile) -> Signatures {
    let entry: SignatureEntry = key.sign(manifest).unwrap();
    Signatures {
        signatures: vec![entry],
    }
}

/// What a hand-made entry holds.
pub enum RawBody {
    File(Vec<u8>),
    Symlink(String),
}

/// A package entry written as is: the name goes into the header bytes
/// unchecked, which `tar::Builder`'s path setters would refuse for `..`
/// and absolute names.
pub struct RawEntry {
    pub name: String,
    pub body: RawBody,
}

pub fn write_raw_package(
    out: &Path,
    manifest: &[u8],
    signatures: &Signatures,
    payloads: Vec<RawEntry>,
) {
    let signatures = serde_json::to_vec_pretty(signatures).unwrap();
    let mut entries = vec![
        RawEntry {
            name: MANIFEST_ENTRY.into(),
            body: RawBody::File(manifest.to_vec()),
        },
        RawEntry {
            name: SIGNATURES_ENTRY.into(),
            body: RawBody::File(signatures),
        },
    ];
    entries.extend(payloads);
    let mut builder = tar::Builder::new(std::fs::File::create(out).unwrap());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let gnu = header.as_gnu_mut().unwrap();
        assert!(
            entry.name.len() < gnu.name.len(),
            "{} is too long",
            entry.name
        );
        gnu.name[..entry.name.len()].copy_from_slice(entry.name.as_bytes());
        header.set_mode(0o644);
        header.set_mtime(0);
        let data = match entry.body {
            RawBody::File(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                bytes
            }
            RawBody::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                let gnu = header.as_gnu_mut().unwrap();
                gnu.linkname[..target.len()].copy_from_slice(target.as_bytes());
                Vec::new()
            }
        };
        header.set_cksum();
        builder.append(&header, &data[..]).unwrap();
    }
    builder.into_inner().unwrap();
}

/// A manifest for one model payload at `path` holding `model`.
pub fn manifest_with_model_at(path: &str, model: &[u8]) -> Manifest {
    Manifest {
        format: edgesort_ota::MANIFEST_FORMAT,
        version: Version::new(1, 1, 0),
        min_version: Version::new(0, 1, 0),
        boards: vec![BOARD.into()],
        created: "2026-11-29T00:00:00Z".into(),
        notes: String::new(),
        revokes: Vec::new(),
        payloads: vec![edgesort_ota::Payload {
            path: path.into(),
            kind: edgesort_ota::PayloadKind::Model,
            size: model.len() as u64,
            sha256: sha256_hex(model),
            executable: false,
        }],
    }
}

/// Lets `change` rewrite the file in place from `offset` on; a tampered
/// package keeps its length, so only its contents give it away.
pub fn patch_file(path: &Path, offset: u64, change: impl FnOnce(&mut [u8])) {
    let mut bytes = std::fs::read(path).unwrap();
    let length = bytes.len();
    change(&mut bytes[offset as usize..]);
    assert_eq!(bytes.len(), length);
    std::fs::write(path, bytes).unwrap();
}

pub fn cut_file(from: &Path, to: &Path, length: u64) {
    let bytes = std::fs::read(from).unwrap();
    assert!((length as usize) < bytes.len());
    std::fs::write(to, &bytes[..length as usize]).unwrap();
}
