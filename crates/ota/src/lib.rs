//! Over-the-air updates of the application: signed packages, A/B slots on
//! the data partition, a health-checked commit and automatic rollback.
//!
//! The base OS (JetPack, kernel, bootloader) is the image's own updater's
//! job; a package can carry an OS payload and the installer hands it over.
//! See `docs/ota.md` for the format and the reasoning behind it.

mod folder;
mod inbox;
mod install;
mod keys;
mod manifest;
mod package;
mod priority;
mod slots;
mod state;
mod versions;

use std::path::PathBuf;

pub use folder::OtaDir;
pub use inbox::{Dequeued, MAX_PACKAGE_BYTES};
pub use install::{
    CommandLine, DaemonHealth, EnginePreparer, Event, HealthCriteria, HealthEngine, HealthFrames,
    HealthStage, Installer, Line, Outcome, Verdict,
};
pub use keys::{SignatureEntry, Signatures, SigningKeyFile, Trust, TrustedKey, TrustedKeys};
pub use manifest::{MANIFEST_FORMAT, Manifest, Payload, PayloadKind, slot_path_kind};
pub use package::{
    MANIFEST_ENTRY, PAYLOAD_PREFIX, PackInfo, SIGNATURES_ENTRY, VerifiedPackage, pack, sign,
};
pub use priority::at_low_priority;
pub use slots::{
    FACTORY, FileRecord, InstallLock, Recovery, SLOT_MANIFEST, SlotManifest, SlotName, hash_file,
};
pub use state::{HistoryEntry, Installed, State, Trial};

pub(crate) use slots::now_rfc3339;

/// Why an update was refused or failed. Each names the problem; none
/// leaves the running slot changed.
#[derive(Debug, thiserror::Error)]
pub enum OtaError {
    /// The manifest does not parse or breaks a rule.
    #[error("bad manifest: {0}")]
    BadManifest(String),
    /// A payload path would land outside its slot.
    #[error("payload path {path:?} is refused: {why}")]
    PathOutsideSlot {
        /// The path.
        path: String,
        /// The rule it breaks.
        why: String,
    },
    /// The package holds an entry it may not.
    #[error("refused entry: {0}")]
    UnexpectedEntry(String),
    /// The package or a payload ends early.
    #[error("the package is truncated: {0}")]
    Truncated(String),
    /// A payload's bytes are not the ones the manifest vouches for.
    #[error("payload {path} was tampered with or damaged: {reason}")]
    PayloadMismatch {
        /// The payload.
        path: String,
        /// What differs.
        reason: String,
    },
    /// A signature by a known key does not match the manifest.
    #[error(
        "the signature by key {key} does not match the manifest: the package was altered or signed wrongly"
    )]
    BadSignature {
        /// The key.
        key: String,
    },
    /// The only valid signature is by a key past its expiry.
    #[error(
        "signing key {key} expired at {expires}; the package must be signed with a current key"
    )]
    KeyExpired {
        /// The key.
        key: String,
        /// Its expiry.
        expires: String,
    },
    /// The only valid signature is by a key past its expiry at the box's
    /// trusted time, while the box's clock says it has not expired yet: the
    /// box once accepted a package signed after the key expired, so the
    /// clock is behind (an RTC reset to 1970, say).
    #[error(
        "signing key {key} expired at {expires}, before this box's trusted time {trusted_time} \
         (the signing time of the newest package it accepted; its clock says {clock}, \
         which is behind); the package must be signed with a current key"
    )]
    KeyExpiredAtTrustedTime {
        /// The key.
        key: String,
        /// Its expiry.
        expires: String,
        /// The box's trusted time.
        trusted_time: String,
        /// The box's clock.
        clock: String,
    },
    /// The only valid signature is by a key that had expired when the
    /// package says it was made.
    #[error(
        "signing key {key} expired at {expires}, before the package was made at {created}: \
         a key signs nothing after its expiry"
    )]
    SignedAfterExpiry {
        /// The key.
        key: String,
        /// Its expiry.
        expires: String,
        /// The manifest's `created`.
        created: String,
    },
    /// The only valid signature is by a key a package this box accepted
    /// revoked.
    #[error(
        "signing key {key} was revoked on this box (by a signed package it accepted); \
         the package must be signed with another key"
    )]
    KeyRevoked {
        /// The key.
        key: String,
    },
    /// The only valid signature is by a key the package itself revokes:
    /// a revocation must be vouched for by a key it leaves standing.
    #[error(
        "the package revokes key {key}, so a signature by {key} does not count for it; \
         it must be signed by a key it does not revoke"
    )]
    RevokesItsSigner {
        /// The key.
        key: String,
    },
    /// Signed by a key the image does not trust.
    #[error("signed by key {key}, which this box does not trust")]
    UnknownKey {
        /// The key.
        key: String,
    },
    /// No signature at all.
    #[error("the package is not signed")]
    Unsigned,
    /// The trusted-keys file is unusable.
    #[error("trusted keys {path}: {reason}")]
    TrustedKeys {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Signing, key generation.
    #[error("{0}")]
    Crypto(String),
    /// The package is for other boards.
    #[error("the package is for {boards}, and this box is {board}")]
    WrongBoard {
        /// This box.
        board: String,
        /// The package's boards.
        boards: String,
    },
    /// Not enough space on the data partition.
    #[error(
        "the data partition has {free} bytes free; staging needs {needed} (payloads plus ota.reserve_mib)"
    )]
    DiskFull {
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// Refused by a rule (version, OS updater, ...).
    #[error("refused: {0}")]
    Refused(String),
    /// The engine for the new model could not be built or validated.
    #[error("the new model's engine was not prepared: {0}")]
    Engine(String),
    /// Another installer holds the lock.
    #[error("another update is in progress ({0})")]
    Busy(String),
    /// No slot was ever committed.
    #[error(
        "the OTA folder has no state yet: run `edgesort ota init` (the image does at first boot)"
    )]
    NotInitialized,
    /// A slot or the state file is damaged.
    #[error("damaged: {0}")]
    Damaged(String),
    /// Root's tools work only in a folder that is theirs alone: the update
    /// folder, or a part of it that must be root's (`slots/`, a slot,
    /// `state.json`, `lock`), is owned by another user or writable by its
    /// group or others, so someone else may have made it or may change it.
    #[error("refusing {}: {}", path.display(), untrusted_reason(*owner, *mode, *expected_owner))]
    Untrusted {
        /// The folder or file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Its permission bits.
        mode: u32,
        /// Who must own it: the effective user, root on a box.
        expected_owner: u32,
    },
    /// A file or folder in the OTA tree, where a less trusted user may
    /// write, is not what it must be (a link, a FIFO, a socket where a
    /// plain file belongs) or could not be reached without following a
    /// link; nothing was read or written through it.
    #[error(transparent)]
    OpenBeneath(#[from] edgesort_types::BeneathError),
    /// Reading or writing failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn untrusted_reason(owner: u32, mode: u32, expected_owner: u32) -> String {
    if owner != expected_owner {
        let expected = match expected_owner {
            0 => "root (uid 0)".to_owned(),
            uid => format!("uid {uid}, the user running this"),
        };
        format!("owned by uid {owner} (mode {mode:04o}), not by {expected}")
    } else {
        format!("mode {mode:04o} (owner uid {owner}) lets its group or others write it")
    }
}

pub(crate) fn io_error(what: String) -> impl FnOnce(std::io::Error) -> OtaError {
    move |source| OtaError::Io { what, source }
}
