//! The package manifest: what a package carries, for which boxes, and the
//! sha256 of every payload. The manifest's exact bytes are what is signed.

use std::path::{Component, Path};
use std::time::SystemTime;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::OtaError;

/// The manifest layout this code reads and writes.
pub const MANIFEST_FORMAT: u32 = 1;

/// A manifest larger than this is refused before it is parsed.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Payload paths a package may write, by the folder they start with.
const SLOT_FOLDERS: [(&str, PayloadKind); 6] = [
    ("bin", PayloadKind::Binary),
    ("model", PayloadKind::Model),
    ("calibration", PayloadKind::Calibration),
    ("config", PayloadKind::Config),
    ("board", PayloadKind::Board),
    ("os", PayloadKind::Os),
];

/// What a payload is for.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// `bin/edgesortd` runs in place of the image's daemon (which hands
    /// over to it at start); other files under `bin/` are kept with the
    /// slot for tools that look there.
    Binary,
    /// The detector (ONNX, float or Q/DQ); a new one changes the engine key.
    Model,
    /// Calibration stills for the on-box INT8 calibration.
    Calibration,
    /// Configuration defaults, kept with the slot; the site configuration
    /// stays in /etc and refers to them where it wants them.
    Config,
    /// Pin maps and other board files.
    Board,
    /// A base-OS update, handed to the image's updater (SWUpdate, Mender)
    /// before the switch; kept in the slot of the update that brought it
    /// and left out of the next one.
    Os,
}

/// One file the package carries.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// Where it goes, relative to the slot, e.g. `model/detector.onnx`.
    pub path: String,
    /// What it is; must agree with the path's first folder.
    pub kind: PayloadKind,
    /// Its length in bytes.
    pub size: u64,
    /// Its sha256, lowercase hex.
    pub sha256: String,
    /// Executable (binaries, scripts) or not.
    #[serde(default)]
    pub executable: bool,
}

/// The signed description of a package.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The application version this package installs.
    pub version: Version,
    /// The oldest committed version it may be installed over.
    pub min_version: Version,
    /// Boards it is for (`orin-nano`, `orin-nx`, `agx-orin`, ...).
    pub boards: Vec<String>,
    /// When it was packed, RFC 3339. Signed like the rest: a box that
    /// accepts the package knows the time is at least this (its trusted
    /// time), and a key that had expired by then cannot have signed it.
    pub created: String,
    /// Release notes for the technician.
    #[serde(default)]
    pub notes: String,
    /// Signing keys this package revokes, by id. A box that verifies the
    /// package records them and refuses their signatures from then on;
    /// their signatures do not count for this package itself. Left out of
    /// the manifest when empty, so packages without revocations read as
    /// before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revokes: Vec<String>,
    /// Its files.
    pub payloads: Vec<Payload>,
}

impl Manifest {
    /// Parses and checks a manifest: every path must stay inside its slot
    /// and name its kind's folder, digests must be sha256, and no path may
    /// appear twice.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, OtaError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(OtaError::BadManifest(format!(
                "{} bytes is more than the {MAX_MANIFEST_BYTES} a manifest may have",
                bytes.len()
            )));
        }
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|error| OtaError::BadManifest(error.to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The bytes that are signed and stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        bytes.push(b'\n');
        bytes
    }

    fn check(&self) -> Result<(), OtaError> {
        let bad = |reason: String| Err(OtaError::BadManifest(reason));
        if self.format != MANIFEST_FORMAT {
            return bad(format!(
                "format {} is not the {MANIFEST_FORMAT} this edgesort reads",
                self.format
            ));
        }
        if crate::versions::older_than(&self.version, &self.min_version) {
            return bad(format!(
                "min_version {} is newer than the version {} itself",
                self.min_version, self.version
            ));
        }
        if let Err(error) = self.created_time() {
            return bad(error.to_string());
        }
        let mut revoked = std::collections::HashSet::new();
        for key in &self.revokes {
            if key.trim().is_empty() {
                return bad("revokes lists an empty key id".into());
            }
            if !revoked.insert(key) {
                return bad(format!("revokes lists key {key} twice"));
            }
        }
        if self.boards.is_empty() || self.boards.iter().any(|board| board.trim().is_empty()) {
            return bad("boards must name at least one board, none empty".into());
        }
        if self.payloads.is_empty() {
            return bad("carries no payload".into());
        }
        if self
            .payloads
            .iter()
            .try_fold(0u64, |total, payload| total.checked_add(payload.size))
            .is_none()
        {
            return bad("the payloads' sizes add up to more bytes than a u64 counts".into());
        }
        let mut seen = std::collections::HashSet::new();
        for payload in &self.payloads {
            let kind = slot_path_kind(&payload.path)?;
            if kind != payload.kind {
                return bad(format!(
                    "payload {} is under the {kind:?} folder but says it is {:?}",
                    payload.path, payload.kind
                ));
            }
            if !is_sha256_hex(&payload.sha256) {
                return bad(format!(
                    "payload {} has sha256 {:?}, not 64 lowercase hex digits",
                    payload.path, payload.sha256
                ));
            }
            if !seen.insert(payload.path.as_str()) {
                return bad(format!("payload {} appears twice", payload.path));
            }
        }
        if let Some(overlap) = self.payloads.iter().find_map(|payload| {
            self.payloads
                .iter()
                .find(|other| other.path.starts_with(&format!("{}/", payload.path)))
                .map(|other| (&payload.path, &other.path))
        }) {
            return bad(format!(
                "payload {} is also a folder of payload {}",
                overlap.0, overlap.1
            ));
        }
        Ok(())
    }

    /// When the package was made: `created`, which must be an RFC 3339
    /// time in UTC (`2026-11-29T06:00:00Z`, as `pack` writes it).
    pub fn created_time(&self) -> Result<SystemTime, OtaError> {
        humantime::parse_rfc3339(&self.created).map_err(|error| {
            OtaError::BadManifest(format!(
                "created {:?} is not an RFC 3339 time in UTC: {error}",
                self.created
            ))
        })
    }

    /// The payload of `kind` under `path`, if the package carries it.
    pub fn payload(&self, path: &str) -> Option<&Payload> {
        self.payloads.iter().find(|payload| payload.path == path)
    }

    /// Total payload bytes ([`Manifest::parse`] refuses a manifest whose
    /// sizes overflow; one built by hand saturates).
    pub fn payload_bytes(&self) -> u64 {
        self.payloads
            .iter()
            .fold(0u64, |total, payload| total.saturating_add(payload.size))
    }
}

/// Checks that `path` is a plain relative path inside a slot and returns
/// the kind its first folder stands for. `..`, absolute paths, empty or
/// `.` components, backslashes and NUL are refused by name.
pub fn slot_path_kind(path: &str) -> Result<PayloadKind, OtaError> {
    let outside = |why: &str| {
        Err(OtaError::PathOutsideSlot {
            path: path.to_owned(),
            why: why.to_owned(),
        })
    };
    if path.is_empty() {
        return outside("it is empty");
    }
    if path.starts_with('/') {
        return outside("it is absolute");
    }
    if path.contains('\\') || path.contains('\0') {
        return outside("it holds a backslash or NUL");
    }
    if path.len() > 255 {
        return outside("it is longer than 255 bytes");
    }
    let mut components = Path::new(path).components();
    let mut count = 0;
    for part in path.split('/') {
        match part {
            "" => return outside("it has an empty component"),
            "." => return outside("it has a `.` component"),
            ".." => return outside("it climbs out with `..`"),
            _ => count += 1,
        }
    }
    if count < 2 {
        return outside("a payload must sit inside one of the slot's folders");
    }
    let Some(Component::Normal(first)) = components.next() else {
        return outside("it does not start with a folder name");
    };
    match SLOT_FOLDERS
        .iter()
        .find(|(folder, _)| first == std::ffi::OsStr::new(folder))
    {
        Some((_, kind)) => Ok(*kind),
        None => outside("its first folder is none of bin, model, calibration, config, board, os"),
    }
}

pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            version: Version::new(1, 2, 0),
            min_version: Version::new(1, 0, 0),
            boards: vec!["orin-nano".into()],
            created: "2026-11-29T00:00:00Z".into(),
            notes: String::new(),
            revokes: Vec::new(),
            payloads: vec![Payload {
                path: "model/detector.onnx".into(),
                kind: PayloadKind::Model,
                size: 3,
                sha256: "a".repeat(64),
                executable: false,
            }],
        }
    }

    #[test]
    fn a_manifest_survives_its_own_bytes() {
        let manifest = manifest();
        assert_eq!(Manifest::parse(&manifest.to_bytes()).unwrap(), manifest);
    }

    #[test]
    fn paths_that_leave_the_slot_are_refused_by_name() {
        for (path, why) in [
            ("../etc/passwd", "climbs out"),
            ("model/../../x", "climbs out"),
            ("/etc/shadow", "absolute"),
            ("model//x", "empty component"),
            ("model/./x", "`.` component"),
            ("detector.onnx", "inside one of the slot's folders"),
            ("usr/bin/x", "none of bin"),
            ("model\\x", "backslash"),
        ] {
            let error = slot_path_kind(path).unwrap_err().to_string();
            assert!(error.contains(why), "{path}: {error}");
            assert!(error.contains(&format!("{path:?}")), "{path}: {error}");
        }
        assert_eq!(
            slot_path_kind("calibration/images/0001.jpg").unwrap(),
            PayloadKind::Calibration
        );
    }

    #[test]
    fn a_payload_under_the_wrong_folder_for_its_kind_is_refused() {
        let mut manifest = manifest();
        manifest.payloads[0].kind = PayloadKind::Binary;
        let error = Manifest::parse(&manifest.to_bytes()).unwrap_err();
        assert!(error.to_string().contains("says it is Binary"), "{error}");
    }

    #[test]
    fn a_min_version_above_the_version_is_refused() {
        let mut manifest = manifest();
        manifest.min_version = Version::new(2, 0, 0);
        assert!(Manifest::parse(&manifest.to_bytes()).is_err());
    }

    #[test]
    fn a_manifest_without_revocations_has_the_bytes_it_had_before_they_existed() {
        let text = String::from_utf8(manifest().to_bytes()).unwrap();
        assert!(!text.contains("revokes"), "{text}");
        let mut revoking = manifest();
        revoking.revokes = vec!["release-2024".into()];
        assert_eq!(Manifest::parse(&revoking.to_bytes()).unwrap(), revoking);
    }

    #[test]
    fn a_creation_time_that_is_not_rfc_3339_and_repeated_revocations_are_refused() {
        let mut manifest = manifest();
        manifest.created = "29/11/2026".into();
        let error = Manifest::parse(&manifest.to_bytes()).unwrap_err();
        assert!(
            error.to_string().contains("created \"29/11/2026\""),
            "{error}"
        );
        manifest.created = "2026-11-29T00:00:00Z".into();
        manifest.revokes = vec!["old".into(), "old".into()];
        let error = Manifest::parse(&manifest.to_bytes()).unwrap_err();
        assert!(error.to_string().contains("key old twice"), "{error}");
    }

    #[test]
    fn a_file_and_a_folder_of_the_same_name_are_refused() {
        let mut manifest = manifest();
        let mut inner = manifest.payloads[0].clone();
        inner.path = "model/detector.onnx/inner".into();
        manifest.payloads.push(inner);
        let error = Manifest::parse(&manifest.to_bytes()).unwrap_err();
        assert!(error.to_string().contains("also a folder"), "{error}");
    }
}
