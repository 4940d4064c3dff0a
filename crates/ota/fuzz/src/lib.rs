//! Shared pieces of the edgesort-ota fuzz targets: the fixed signing key
//! the harnesses trust, a scratch folder per process, the checks run after
//! an extraction, and the structured package input of `package_signed`
//! together with the tar builder that turns it into a package file.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use edgesort_ota::{
    MANIFEST_ENTRY, MANIFEST_FORMAT, Manifest, PAYLOAD_PREFIX, Payload, PayloadKind,
    SIGNATURES_ENTRY, SignatureEntry, Signatures, SigningKeyFile, Trust, TrustedKey, TrustedKeys,
    VerifiedPackage,
};
use semver::{Prerelease, Version};
use sha2::{Digest, Sha256};

/// The id of the key every harness trusts.
pub const KEY_ID: &str = "fuzz-release";
/// The fixed ed25519 seed of that key.
pub const KEY_SEED: [u8; 32] = [0x5a; 32];
/// A second key, never trusted.
pub const STRANGER_SEED: [u8; 32] = [0xa5; 32];

/// The signing key the harnesses trust.
pub fn signing_key() -> SigningKeyFile {
    SigningKeyFile {
        id: KEY_ID.into(),
        secret_key: hex::encode(KEY_SEED),
    }
}

/// A key with a trusted id but another secret, and one nobody trusts.
fn impostor_key(id: &str) -> SigningKeyFile {
    SigningKeyFile {
        id: id.into(),
        secret_key: hex::encode(STRANGER_SEED),
    }
}

/// The trusted keys: the fixed key until 2100.
pub fn trusted_keys() -> &'static TrustedKeys {
    static KEYS: OnceLock<TrustedKeys> = OnceLock::new();
    KEYS.get_or_init(|| TrustedKeys {
        keys: vec![TrustedKey {
            id: KEY_ID.into(),
            public_key: signing_key()
                .public_key_hex()
                .expect("the fixed key is valid"),
            expires: "2100-01-01T00:00:00Z".into(),
        }],
    })
}

/// The moment the harnesses verify at (2026-06-01), so runs do not depend
/// on the clock.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

/// A scratch folder for this process, emptied before each input.
/// Layout: `<root>/package.tar` and `<root>/sandbox/out/` (the extraction
/// target); nothing else may ever appear under `<root>`.
pub struct Scratch {
    pub root: PathBuf,
}

impl Scratch {
    pub fn get() -> &'static Scratch {
        static SCRATCH: OnceLock<Scratch> = OnceLock::new();
        SCRATCH.get_or_init(|| {
            let base = std::env::var_os("EDGESORT_OTA_FUZZ_TMP")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            let root = base.join(format!("edgesort-ota-fuzz-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).expect("creating the scratch folder");
            Scratch {
                root: root.canonicalize().expect("canonical scratch folder"),
            }
        })
    }

    pub fn package(&self) -> PathBuf {
        self.root.join("package.tar")
    }

    pub fn sandbox(&self) -> PathBuf {
        self.root.join("sandbox")
    }

    pub fn out(&self) -> PathBuf {
        self.sandbox().join("out")
    }

    /// Empties the scratch folder and writes `bytes` as the package.
    pub fn reset(&self, bytes: &[u8]) {
        let sandbox = self.sandbox();
        if sandbox.exists() {
            make_writable(&sandbox);
            std::fs::remove_dir_all(&sandbox).expect("clearing the sandbox");
        }
        std::fs::create_dir_all(self.out()).expect("creating the extraction folder");
        std::fs::write(self.package(), bytes).expect("writing the package");
    }
}

fn make_writable(folder: &Path) {
    if let Ok(entries) = std::fs::read_dir(folder) {
        for entry in entries.flatten() {
            if let Ok(kind) = entry.file_type()
                && kind.is_dir()
            {
                let _ =
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755));
                make_writable(&entry.path());
            }
        }
    }
}

/// Opens the package in the scratch folder; when it verifies, checks its
/// payloads and extracts it, then checks what the extraction left.
pub fn open_check_extract(scratch: &Scratch) -> Option<VerifiedPackage> {
    let package =
        VerifiedPackage::open(&scratch.package(), trusted_keys(), &Trust::clock(now())).ok()?;
    // What open hands back must be the manifest as parsed from the package.
    assert_eq!(
        Manifest::parse(&package.manifest.to_bytes()).ok().as_ref(),
        Some(&package.manifest),
        "a verified manifest does not survive its own bytes"
    );
    assert_eq!(package.signer, KEY_ID);
    let checked = package.check_payloads();
    let out = scratch.out();
    let extracted = package.extract(&out);
    assert_contained(scratch);
    if std::env::var_os("EDGESORT_OTA_FUZZ_STATS").is_some() {
        // For measuring how deep a corpus reaches: one line per opened package.
        eprintln!(
            "edgesort-ota-fuzz: opened payloads={} check={} extract={}",
            package.manifest.payloads.len(),
            if checked.is_ok() { "ok" } else { "err" },
            if extracted.is_ok() { "ok" } else { "err" },
        );
    }
    match (&checked, &extracted) {
        (Ok(()), Ok(())) => assert_extracted(&package.manifest, &out),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "check_payloads and extract disagree on the same package: \
             check_payloads {checked:?}, extract {extracted:?}"
        ),
    }
    Some(package)
}

/// Nothing under the scratch folder but the package and the sandbox,
/// nothing in the sandbox but `out/`, no symbolic link anywhere and every
/// path, resolved, inside the extraction folder.
pub fn assert_contained(scratch: &Scratch) {
    let mut top: Vec<_> = std::fs::read_dir(&scratch.root)
        .expect("listing the scratch folder")
        .map(|entry| entry.expect("listing").file_name())
        .collect();
    top.sort();
    assert_eq!(
        top,
        ["package.tar", "sandbox"],
        "extraction wrote beside its folder"
    );
    let sandbox: Vec<_> = std::fs::read_dir(scratch.sandbox())
        .expect("listing the sandbox")
        .map(|entry| entry.expect("listing").file_name())
        .collect();
    assert_eq!(sandbox, ["out"], "extraction wrote beside its folder");
    let out = scratch.out().canonicalize().expect("canonical out");
    walk(&out, &out);
}

fn walk(out: &Path, folder: &Path) {
    for entry in std::fs::read_dir(folder).expect("listing an extracted folder") {
        let path = entry.expect("listing").path();
        let meta = std::fs::symlink_metadata(&path).expect("stat of an extracted path");
        assert!(
            !meta.file_type().is_symlink(),
            "extraction left a symbolic link {path:?}"
        );
        assert!(
            meta.is_dir() || meta.is_file(),
            "extraction left something neither file nor folder: {path:?}"
        );
        let resolved = path.canonicalize().expect("canonical extracted path");
        assert!(
            resolved.starts_with(out),
            "{path:?} resolves to {resolved:?}, outside {out:?}"
        );
        if meta.is_dir() {
            walk(out, &path);
        }
    }
}

/// After a successful extraction every payload is a plain file with the
/// manifest's size, digest and executable bit, and there is nothing else.
fn assert_extracted(manifest: &Manifest, out: &Path) {
    let mut files = Vec::new();
    list_files(out, out, &mut files);
    files.sort();
    let mut expected: Vec<String> = manifest.payloads.iter().map(|p| p.path.clone()).collect();
    expected.sort();
    assert_eq!(
        files, expected,
        "extracted files differ from the manifest's payloads"
    );
    for payload in &manifest.payloads {
        let path = out.join(&payload.path);
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .expect("reading an extracted payload");
        assert_eq!(bytes.len() as u64, payload.size, "{} size", payload.path);
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            payload.sha256,
            "{} sha256",
            payload.path
        );
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(
            mode & 0o111 != 0,
            payload.executable,
            "{} executable bit",
            payload.path
        );
    }
}

fn list_files(root: &Path, folder: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(folder).expect("listing") {
        let path = entry.expect("listing").path();
        if std::fs::symlink_metadata(&path).expect("stat").is_dir() {
            list_files(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).expect("under root");
            files.push(
                relative
                    .to_str()
                    .expect("extracted names are UTF-8")
                    .to_owned(),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The structured input of `package_signed`. Every knob's first variant (or
// `None`, `false`, zero) is the well-formed choice, so an input that runs out
// of bytes early still describes a valid, signed package.
// ---------------------------------------------------------------------------

/// A whole package.
#[derive(Arbitrary, Debug)]
pub struct PackageInput {
    pub manifest: ManifestSpec,
    pub signatures: SignatureSpec,
    pub head: HeadSpec,
    pub auto: AutoEntries,
    pub extra: Vec<ExtraEntry>,
    pub tail: Tail,
}

/// The manifest's bytes.
#[derive(Arbitrary, Debug)]
pub enum ManifestSpec {
    /// Serialized from a structured manifest.
    Structured(StructuredManifest),
    /// Serialized, then one byte-level edit before signing.
    Edited(StructuredManifest, JsonEdit),
    /// Raw bytes (mostly not JSON).
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub struct StructuredManifest {
    /// 0 keeps [`MANIFEST_FORMAT`]; anything else is used as the format.
    pub format: Option<u32>,
    pub version: (u8, u8, u8),
    pub prerelease: Option<String>,
    /// `None`: the version itself.
    pub min_version: Option<(u8, u8, u8)>,
    /// Empty: `["orin-nano"]`.
    pub boards: Vec<String>,
    pub created: Option<String>,
    pub notes: String,
    /// Serialize compactly instead of with [`Manifest::to_bytes`].
    pub compact: bool,
    /// Empty: one default payload.
    pub payloads: Vec<PayloadSpec>,
}

#[derive(Arbitrary, Debug)]
pub struct PayloadSpec {
    pub folder: Folder,
    /// Empty: `file<index>`.
    pub components: Vec<Component>,
    /// `None`: the kind the folder stands for.
    pub kind: Option<KindSpec>,
    pub executable: bool,
    /// `None`: the length of `data`.
    pub size: Option<u64>,
    /// `None`: the sha256 of `data`.
    pub sha256: Option<HashSpec>,
    pub data: Vec<u8>,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Folder {
    Model,
    Bin,
    Calibration,
    Config,
    Board,
    Os,
    Other(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Component {
    Name(String),
    Ascii(u8),
    Long(u8),
    Empty,
    Dot,
    DotDot,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum KindSpec {
    Binary,
    Model,
    Calibration,
    Config,
    Board,
    Os,
}

#[derive(Arbitrary, Debug)]
pub enum HashSpec {
    /// The right digest with one hex digit changed.
    FlipOne(u8),
    /// The digest of other bytes.
    Of(Vec<u8>),
    /// Any text.
    Text(String),
}

#[derive(Arbitrary, Debug)]
pub struct JsonEdit {
    pub at: u16,
    pub delete: u8,
    pub insert: Vec<u8>,
}

/// The signatures entry.
#[derive(Arbitrary, Debug)]
pub enum SignatureSpec {
    /// One valid signature by the trusted key over the manifest's bytes.
    Good,
    /// A list of signatures, valid or not.
    Several(Vec<SignatureKind>),
    /// Raw bytes.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub enum SignatureKind {
    Good,
    /// The trusted key over other bytes.
    OverOther(Vec<u8>),
    /// Another secret under the trusted id.
    Impostor,
    /// A key nobody trusts.
    Stranger(String),
    /// Any text under any id.
    Text {
        key_id: String,
        signature: String,
    },
}

/// The first two entries.
#[derive(Arbitrary, Debug)]
pub struct HeadSpec {
    pub order: HeadOrder,
    pub manifest: Option<EntryTweak>,
    pub signatures: Option<EntryTweak>,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadOrder {
    ManifestThenSignatures,
    SignaturesThenManifest,
    ManifestOnly,
    SignaturesOnly,
    ManifestTwice,
    Neither,
}

/// How one entry's header is written.
#[derive(Arbitrary, Debug, Clone, Default)]
pub struct EntryTweak {
    pub kind: EntryKind,
    pub format: HeaderFormat,
    pub long_name: LongName,
    /// Added to the header's size field (the data written stays the same).
    pub size_delta: i8,
    /// A PAX `size` record.
    pub pax_size: Option<u64>,
    pub link_name: Option<String>,
    pub mode: Option<u32>,
    pub bad_checksum: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy, Default)]
pub enum EntryKind {
    #[default]
    Regular,
    RegularNul,
    Continuous,
    Symlink,
    HardLink,
    Directory,
    Char,
    Block,
    Fifo,
    GnuSparse,
    Other(u8),
}

impl EntryKind {
    fn byte(self) -> u8 {
        match self {
            EntryKind::Regular => b'0',
            EntryKind::RegularNul => b'\0',
            EntryKind::Continuous => b'7',
            EntryKind::Symlink => b'2',
            EntryKind::HardLink => b'1',
            EntryKind::Directory => b'5',
            EntryKind::Char => b'3',
            EntryKind::Block => b'4',
            EntryKind::Fifo => b'6',
            EntryKind::GnuSparse => b'S',
            EntryKind::Other(byte) => byte,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy, Default)]
pub enum HeaderFormat {
    #[default]
    Gnu,
    Ustar,
    Old,
}

/// How a name longer than the header's 100 bytes (or any name) is carried.
#[derive(Arbitrary, Debug, Clone, Default)]
pub enum LongName {
    /// GNU long name entry only when the name does not fit.
    #[default]
    WhenNeeded,
    /// Cut to 100 bytes.
    Truncate,
    /// Always a GNU long name entry.
    Gnu,
    /// Always a PAX `path` record.
    Pax,
    /// A PAX `path` record naming something else than the header.
    PaxOther(Name),
}

/// The payload entries made from the structured manifest, one per payload
/// in manifest order unless changed here.
#[derive(Arbitrary, Debug)]
pub struct AutoEntries {
    pub order: Order,
    pub skip: Option<u8>,
    pub duplicate: Option<u8>,
    /// Per payload, by position.
    pub tweaks: Vec<Option<EntryTweak>>,
    /// Per payload, by position: replace the data written.
    pub data: Vec<Option<Vec<u8>>>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Order {
    Manifest,
    Reversed,
    Rotated(u8),
}

/// One more entry, inserted among the payload entries.
#[derive(Arbitrary, Debug)]
pub struct ExtraEntry {
    pub at: u8,
    pub name: Name,
    pub data: Data,
    pub tweak: EntryTweak,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Name {
    /// The entry name of the manifest's payload at this index.
    PayloadOf(u8),
    /// `payload/` plus this.
    Payload(String),
    /// Any bytes.
    Raw(Vec<u8>),
    Manifest,
    Signatures,
}

#[derive(Arbitrary, Debug)]
pub enum Data {
    /// The data of the structured payload at this index.
    PayloadOf(u8),
    Raw(Vec<u8>),
}

/// How the archive ends.
#[derive(Arbitrary, Debug)]
pub enum Tail {
    Complete,
    /// Cut after this many bytes (modulo the length).
    Truncate(u32),
    /// Without the two zero blocks.
    NoEndMarker,
    /// Garbage after the end marker.
    Trailing(Vec<u8>),
}

/// A package built from a [`PackageInput`]: its bytes and, for reference,
/// the manifest bytes that were signed.
pub struct Built {
    pub bytes: Vec<u8>,
    pub manifest_bytes: Vec<u8>,
}

struct PlannedPayload {
    path: String,
    data: Vec<u8>,
}

impl StructuredManifest {
    fn build(&self) -> (Manifest, Vec<PlannedPayload>, bool) {
        let mut version = Version::new(
            self.version.0.into(),
            self.version.1.into(),
            self.version.2.into(),
        );
        if let Some(pre) = &self.prerelease
            && let Ok(pre) = Prerelease::new(pre)
        {
            version.pre = pre;
        }
        let min_version = match self.min_version {
            None => version.clone(),
            Some((a, b, c)) => Version::new(a.into(), b.into(), c.into()),
        };
        let boards = if self.boards.is_empty() {
            vec!["orin-nano".to_owned()]
        } else {
            self.boards.clone()
        };
        let mut payloads = Vec::new();
        let mut planned = Vec::new();
        let default_spec;
        let specs: &[PayloadSpec] = if self.payloads.is_empty() {
            default_spec = [PayloadSpec {
                folder: Folder::Model,
                components: vec![Component::Name("detector.onnx".into())],
                kind: None,
                executable: false,
                size: None,
                sha256: None,
                data: b"onnx".to_vec(),
            }];
            &default_spec
        } else {
            &self.payloads
        };
        for (index, spec) in specs.iter().enumerate() {
            let (folder, folder_kind) = match &spec.folder {
                Folder::Model => ("model".to_owned(), PayloadKind::Model),
                Folder::Bin => ("bin".to_owned(), PayloadKind::Binary),
                Folder::Calibration => ("calibration".to_owned(), PayloadKind::Calibration),
                Folder::Config => ("config".to_owned(), PayloadKind::Config),
                Folder::Board => ("board".to_owned(), PayloadKind::Board),
                Folder::Os => ("os".to_owned(), PayloadKind::Os),
                Folder::Other(name) => (name.clone(), PayloadKind::Config),
            };
            let mut path = folder;
            if spec.components.is_empty() {
                path.push_str(&format!("/file{index}"));
            }
            for component in &spec.components {
                path.push('/');
                match component {
                    Component::Name(name) => path.push_str(name),
                    Component::Ascii(byte) => path.push(char::from(b'a' + byte % 26)),
                    Component::Long(length) => {
                        path.extend(std::iter::repeat_n('x', usize::from(*length) + 1))
                    }
                    Component::Empty => {}
                    Component::Dot => path.push('.'),
                    Component::DotDot => path.push_str(".."),
                }
            }
            let kind = match spec.kind {
                None => folder_kind,
                Some(KindSpec::Binary) => PayloadKind::Binary,
                Some(KindSpec::Model) => PayloadKind::Model,
                Some(KindSpec::Calibration) => PayloadKind::Calibration,
                Some(KindSpec::Config) => PayloadKind::Config,
                Some(KindSpec::Board) => PayloadKind::Board,
                Some(KindSpec::Os) => PayloadKind::Os,
            };
            let digest = hex::encode(Sha256::digest(&spec.data));
            let sha256 = match &spec.sha256 {
                None => digest,
                Some(HashSpec::FlipOne(at)) => {
                    let mut digits = digest.into_bytes();
                    let at = usize::from(*at) % digits.len();
                    digits[at] = if digits[at] == b'0' { b'1' } else { b'0' };
                    String::from_utf8(digits).expect("hex")
                }
                Some(HashSpec::Of(other)) => hex::encode(Sha256::digest(other)),
                Some(HashSpec::Text(text)) => text.clone(),
            };
            payloads.push(Payload {
                path: path.clone(),
                kind,
                size: spec.size.unwrap_or(spec.data.len() as u64),
                sha256,
                executable: spec.executable,
            });
            planned.push(PlannedPayload {
                path,
                data: spec.data.clone(),
            });
        }
        let manifest = Manifest {
            format: self.format.unwrap_or(MANIFEST_FORMAT),
            version,
            min_version,
            boards,
            created: self
                .created
                .clone()
                .unwrap_or_else(|| "2026-05-01T00:00:00Z".to_owned()),
            notes: self.notes.clone(),
            revokes: Vec::new(),
            payloads,
        };
        (manifest, planned, self.compact)
    }
}

fn signatures_bytes(spec: &SignatureSpec, manifest: &[u8]) -> Vec<u8> {
    let key = signing_key();
    let entries = match spec {
        SignatureSpec::Good => vec![key.sign(manifest).expect("signing")],
        SignatureSpec::Several(kinds) => kinds
            .iter()
            .map(|kind| match kind {
                SignatureKind::Good => key.sign(manifest).expect("signing"),
                SignatureKind::OverOther(other) => key.sign(other).expect("signing"),
                SignatureKind::Impostor => impostor_key(KEY_ID).sign(manifest).expect("signing"),
                SignatureKind::Stranger(id) => impostor_key(id).sign(manifest).expect("signing"),
                SignatureKind::Text { key_id, signature } => SignatureEntry {
                    key_id: key_id.clone(),
                    signature: signature.clone(),
                },
            })
            .collect(),
        SignatureSpec::Raw(bytes) => return bytes.clone(),
    };
    serde_json::to_vec_pretty(&Signatures {
        signatures: entries,
    })
    .expect("signatures serialize")
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // "<len> <key>=<value>\n", where <len> counts the whole record.
    let body = 1 + key.len() + 1 + value.len() + 1;
    let mut length = body + 1;
    while length != body + length.to_string().len() {
        length = body + length.to_string().len();
    }
    let mut record = format!("{length} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

fn new_header(format: HeaderFormat) -> tar::Header {
    match format {
        HeaderFormat::Gnu => tar::Header::new_gnu(),
        HeaderFormat::Ustar => tar::Header::new_ustar(),
        HeaderFormat::Old => tar::Header::new_old(),
    }
}

fn set_name_field(header: &mut tar::Header, name: &[u8]) {
    let field = &mut header.as_old_mut().name;
    field.fill(0);
    let length = name.len().min(field.len());
    field[..length].copy_from_slice(&name[..length]);
}

fn append_raw(
    builder: &mut tar::Builder<Vec<u8>>,
    mut header: tar::Header,
    data: &[u8],
    bad_checksum: bool,
) {
    header.set_cksum();
    if bad_checksum {
        header.as_old_mut().cksum[0] ^= 0x01;
    }
    builder.append(&header, data).expect("writing to memory");
}

/// Appends one entry named `name` with `data`, shaped by `tweak`.
fn append_entry(
    builder: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    data: &[u8],
    tweak: &EntryTweak,
    names: &Names,
) {
    let long = match &tweak.long_name {
        LongName::WhenNeeded => name.len() > 100,
        LongName::Gnu => true,
        _ => false,
    };
    if long {
        let mut header = new_header(HeaderFormat::Gnu);
        set_name_field(&mut header, b"././@LongLink");
        header.set_entry_type(tar::EntryType::GNULongName);
        let mut long_data = name.to_vec();
        long_data.push(0);
        header.set_size(long_data.len() as u64);
        header.set_mode(0o644);
        append_raw(builder, header, &long_data, false);
    }
    let mut pax = Vec::new();
    match &tweak.long_name {
        LongName::Pax => pax.extend(pax_record("path", name)),
        LongName::PaxOther(other) => pax.extend(pax_record("path", &names.resolve(other))),
        _ => {}
    }
    if let Some(size) = tweak.pax_size {
        pax.extend(pax_record("size", size.to_string().as_bytes()));
    }
    if !pax.is_empty() {
        let mut header = new_header(HeaderFormat::Ustar);
        set_name_field(&mut header, b"PaxHeaders/entry");
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_size(pax.len() as u64);
        header.set_mode(0o644);
        append_raw(builder, header, &pax, false);
    }
    let mut header = new_header(tweak.format);
    set_name_field(&mut header, name);
    header.set_entry_type(tar::EntryType::new(tweak.kind.byte()));
    let size = (data.len() as i64 + i64::from(tweak.size_delta)).max(0) as u64;
    header.set_size(size);
    header.set_mode(tweak.mode.unwrap_or(0o644) & 0o7777);
    header.set_mtime(0);
    if let Some(link) = &tweak.link_name {
        let field = &mut header.as_old_mut().linkname;
        let length = link.len().min(field.len());
        field[..length].copy_from_slice(&link.as_bytes()[..length]);
    }
    append_raw(builder, header, data, tweak.bad_checksum);
}

struct Names {
    payload_paths: Vec<String>,
}

impl Names {
    fn resolve(&self, name: &Name) -> Vec<u8> {
        match name {
            Name::PayloadOf(index) if !self.payload_paths.is_empty() => {
                let path = &self.payload_paths[usize::from(*index) % self.payload_paths.len()];
                format!("{PAYLOAD_PREFIX}{path}").into_bytes()
            }
            Name::PayloadOf(index) => format!("{PAYLOAD_PREFIX}model/file{index}").into_bytes(),
            Name::Payload(rest) => format!("{PAYLOAD_PREFIX}{rest}").into_bytes(),
            Name::Raw(bytes) => bytes.clone(),
            Name::Manifest => MANIFEST_ENTRY.as_bytes().to_vec(),
            Name::Signatures => SIGNATURES_ENTRY.as_bytes().to_vec(),
        }
    }
}

impl PackageInput {
    /// Builds the package: serializes (and maybe edits) the manifest,
    /// signs its exact bytes with the fixed key, and writes the tar.
    pub fn build(&self) -> Built {
        let (manifest_bytes, planned) = match &self.manifest {
            ManifestSpec::Structured(spec) | ManifestSpec::Edited(spec, _) => {
                let (manifest, planned, compact) = spec.build();
                let mut bytes = if compact {
                    serde_json::to_vec(&manifest).expect("a manifest serializes")
                } else {
                    manifest.to_bytes()
                };
                if let ManifestSpec::Edited(_, edit) = &self.manifest {
                    let at = usize::from(edit.at) % (bytes.len() + 1);
                    let end = (at + usize::from(edit.delete)).min(bytes.len());
                    bytes.splice(at..end, edit.insert.iter().copied());
                }
                (bytes, planned)
            }
            ManifestSpec::Raw(bytes) => {
                // Payload entries for whatever the raw manifest names.
                let planned = Manifest::parse(bytes)
                    .map(|manifest| {
                        manifest
                            .payloads
                            .into_iter()
                            .map(|payload| PlannedPayload {
                                path: payload.path,
                                data: Vec::new(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (bytes.clone(), planned)
            }
        };
        let signatures = signatures_bytes(&self.signatures, &manifest_bytes);
        let names = Names {
            payload_paths: planned.iter().map(|p| p.path.clone()).collect(),
        };
        let default_tweak = EntryTweak::default();

        let mut builder = tar::Builder::new(Vec::new());
        let head_manifest = |builder: &mut tar::Builder<Vec<u8>>| {
            let tweak = self.head.manifest.as_ref().unwrap_or(&default_tweak);
            append_entry(
                builder,
                MANIFEST_ENTRY.as_bytes(),
                &manifest_bytes,
                tweak,
                &names,
            );
        };
        let head_signatures = |builder: &mut tar::Builder<Vec<u8>>| {
            let tweak = self.head.signatures.as_ref().unwrap_or(&default_tweak);
            append_entry(
                builder,
                SIGNATURES_ENTRY.as_bytes(),
                &signatures,
                tweak,
                &names,
            );
        };
        match self.head.order {
            HeadOrder::ManifestThenSignatures => {
                head_manifest(&mut builder);
                head_signatures(&mut builder);
            }
            HeadOrder::SignaturesThenManifest => {
                head_signatures(&mut builder);
                head_manifest(&mut builder);
            }
            HeadOrder::ManifestOnly => head_manifest(&mut builder),
            HeadOrder::SignaturesOnly => head_signatures(&mut builder),
            HeadOrder::ManifestTwice => {
                head_manifest(&mut builder);
                head_manifest(&mut builder);
            }
            HeadOrder::Neither => {}
        }

        // The payload entries, in the chosen order, then the extra ones
        // spliced in.
        let mut order: Vec<usize> = (0..planned.len()).collect();
        match self.auto.order {
            Order::Manifest => {}
            Order::Reversed => order.reverse(),
            Order::Rotated(by) if !order.is_empty() => {
                let by = usize::from(by) % order.len();
                order.rotate_left(by);
            }
            Order::Rotated(_) => {}
        }
        if let Some(skip) = self.auto.skip
            && !order.is_empty()
        {
            order.remove(usize::from(skip) % order.len());
        }
        if let Some(duplicate) = self.auto.duplicate
            && !order.is_empty()
        {
            let at = usize::from(duplicate) % order.len();
            order.insert(at, order[at]);
        }
        enum Planned<'a> {
            Auto(usize),
            Extra(&'a ExtraEntry),
        }
        let mut entries: Vec<Planned> = order.into_iter().map(Planned::Auto).collect();
        for extra in &self.extra {
            let at = usize::from(extra.at) % (entries.len() + 1);
            entries.insert(at, Planned::Extra(extra));
        }
        for entry in entries {
            match entry {
                Planned::Auto(index) => {
                    let payload = &planned[index];
                    let tweak = self
                        .auto
                        .tweaks
                        .get(index)
                        .and_then(Option::as_ref)
                        .unwrap_or(&default_tweak);
                    let data = self
                        .auto
                        .data
                        .get(index)
                        .and_then(Option::as_ref)
                        .unwrap_or(&payload.data);
                    let name = format!("{PAYLOAD_PREFIX}{}", payload.path);
                    append_entry(&mut builder, name.as_bytes(), data, tweak, &names);
                }
                Planned::Extra(extra) => {
                    let name = names.resolve(&extra.name);
                    let data: &[u8] = match &extra.data {
                        Data::PayloadOf(index) if !planned.is_empty() => {
                            &planned[usize::from(*index) % planned.len()].data
                        }
                        Data::PayloadOf(_) => &[],
                        Data::Raw(bytes) => bytes,
                    };
                    append_entry(&mut builder, &name, data, &extra.tweak, &names);
                }
            }
        }
        let mut bytes = builder.into_inner().expect("finishing in memory");
        match &self.tail {
            Tail::Complete => {}
            Tail::Truncate(at) => {
                let at = *at as usize % (bytes.len() + 1);
                bytes.truncate(at);
            }
            Tail::NoEndMarker => bytes.truncate(bytes.len().saturating_sub(1024)),
            Tail::Trailing(extra) => bytes.extend_from_slice(extra),
        }
        Built {
            bytes,
            manifest_bytes,
        }
    }
}
