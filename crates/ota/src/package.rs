//! The package file: an uncompressed tar whose first entry is the manifest,
//! whose second is the signatures over it, and whose other entries are the
//! payloads, each under `payload/` and each named by the manifest.
//!
//! A reader trusts nothing before the signature holds, and then nothing the
//! manifest does not vouch for: every payload is hashed while it streams
//! into the slot, so a package is never unpacked whole before it is
//! checked, and a box with little free space can still take one.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use edgesort_types::open_regular_file;
use semver::Version;
use sha2::{Digest, Sha256};

use crate::keys::{Signatures, SigningKeyFile, Trust, TrustedKey, TrustedKeys};
use crate::manifest::{MANIFEST_FORMAT, MAX_MANIFEST_BYTES, Manifest, Payload, slot_path_kind};
use crate::{OtaError, io_error};

/// The first entry.
pub const MANIFEST_ENTRY: &str = "manifest.json";
/// The second entry.
pub const SIGNATURES_ENTRY: &str = "signatures.json";
/// Payload entries are named this prefix plus their slot path.
pub const PAYLOAD_PREFIX: &str = "payload/";
const MAX_SIGNATURES_BYTES: u64 = 64 << 10;

/// What `pack` puts in a manifest besides the payloads.
pub struct PackInfo {
    /// The version the package installs.
    pub version: Version,
    /// The oldest version it may be installed over.
    pub min_version: Version,
    /// Boards it is for.
    pub boards: Vec<String>,
    /// Release notes.
    pub notes: String,
    /// When it is made (the manifest's `created`, signed): the time a box
    /// that accepts it trusts to have passed. `edgesort ota pack` gives the
    /// clock's time.
    pub created: SystemTime,
    /// Signing keys it revokes, by id.
    pub revokes: Vec<String>,
}

/// Packs the files under `source` (laid out as in a slot: `bin/`,
/// `model/`, ...) into an unsigned package at `out`.
pub fn pack(source: &Path, info: PackInfo, out: &Path) -> Result<Manifest, OtaError> {
    let mut files = Vec::new();
    crate::slots::list_plain_files(source, source, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(OtaError::BadManifest(format!(
            "{} holds no file to pack",
            source.display()
        )));
    }
    let mut payloads = Vec::new();
    for relative in &files {
        let path = source.join(relative);
        let kind = slot_path_kind(relative)?;
        let (sha256, size) = crate::slots::hash_file(&path)?;
        let mode = std::fs::metadata(&path)
            .map_err(io_error(format!("reading {}", path.display())))?
            .permissions()
            .mode();
        payloads.push(Payload {
            path: relative.clone(),
            kind,
            size,
            sha256,
            executable: mode & 0o111 != 0,
        });
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        version: info.version,
        min_version: info.min_version,
        boards: info.boards,
        created: humantime::format_rfc3339_seconds(info.created).to_string(),
        notes: info.notes,
        revokes: info.revokes,
        payloads,
    };
    let manifest_bytes = manifest.to_bytes();
    Manifest::parse(&manifest_bytes)?;
    write_package(out, &manifest_bytes, &Signatures::default(), |builder| {
        for payload in &manifest.payloads {
            let path = source.join(&payload.path);
            let mut file =
                File::open(&path).map_err(io_error(format!("reading {}", path.display())))?;
            append(builder, &entry_name(&payload.path), payload.size, &mut file)?;
        }
        Ok(())
    })?;
    Ok(manifest)
}

/// Adds a signature by `key` to the package at `path` (replacing one by
/// the same key), rewriting it atomically. A key the package revokes is
/// refused: its signature would not count.
pub fn sign(path: &Path, key: &SigningKeyFile) -> Result<(), OtaError> {
    let package = open_regular_file(path)?;
    let (manifest_bytes, mut signatures) = read_head(&package, path)?;
    let manifest = Manifest::parse(&manifest_bytes)?;
    if manifest.revokes.contains(&key.id) {
        return Err(OtaError::RevokesItsSigner {
            key: key.id.clone(),
        });
    }
    signatures
        .signatures
        .retain(|signature| signature.key_id != key.id);
    signatures.signatures.push(key.sign(&manifest_bytes)?);
    let temporary = path.with_extension("signing");
    write_package(&temporary, &manifest_bytes, &signatures, |builder| {
        let mut archive = open_archive(&package, path)?;
        let mut entries = archive.entries().map_err(truncated_or(path))?;
        for _ in 0..2 {
            entries.next();
        }
        for payload in &manifest.payloads {
            let mut entry = entries
                .next()
                .ok_or_else(|| {
                    OtaError::Truncated(format!("no entry for payload {}", payload.path))
                })?
                .map_err(truncated_or(path))?;
            append(
                builder,
                &entry_name(&payload.path),
                payload.size,
                &mut entry,
            )?;
        }
        Ok(())
    })?;
    std::fs::rename(&temporary, path).map_err(io_error(format!("replacing {}", path.display())))
}

/// A package whose manifest carries a valid signature by a trusted key.
/// Its payloads are checked as they are extracted, from the file opened
/// when it was verified.
#[derive(Debug)]
pub struct VerifiedPackage {
    path: PathBuf,
    file: File,
    manifest_bytes: Vec<u8>,
    /// The manifest.
    pub manifest: Manifest,
    /// sha256 of the manifest's bytes: names this exact release.
    pub manifest_sha256: String,
    /// The key that vouched for it.
    pub signer: String,
    /// When it was made: the manifest's `created`.
    pub created: SystemTime,
}

impl VerifiedPackage {
    /// Reads the manifest and its signatures and checks them against
    /// `keys` and what the box holds against signatures (`trust`: its
    /// clock, trusted time and revoked keys). Nothing past the signatures
    /// is read. The file must be a plain file: a link in the last component
    /// or a FIFO is refused by name, at once.
    pub fn open(path: &Path, keys: &TrustedKeys, trust: &Trust) -> Result<Self, OtaError> {
        Self::from_file(open_regular_file(path)?, path, keys, trust)
    }

    /// [`VerifiedPackage::open`] for a package file already open (as
    /// [`OtaDir::open_queued`](crate::OtaDir::open_queued) opens one);
    /// `path` names it in messages.
    pub fn from_file(
        file: File,
        path: &Path,
        keys: &TrustedKeys,
        trust: &Trust,
    ) -> Result<Self, OtaError> {
        let (manifest_bytes, signatures) = read_head(&file, path)?;
        // The signatures are checked before the manifest is parsed; which
        // of them count depends on what the signed manifest says (when it
        // was made, which keys it revokes).
        let signers = keys.signers(&manifest_bytes, &signatures)?;
        let manifest = Manifest::parse(&manifest_bytes)?;
        let created = manifest.created_time()?;
        let signer: &TrustedKey = signers.accept(trust, created, &manifest.revokes)?;
        Ok(VerifiedPackage {
            path: path.to_owned(),
            file,
            manifest_sha256: hex::encode(Sha256::digest(&manifest_bytes)),
            signer: signer.id.clone(),
            created,
            manifest_bytes,
            manifest,
        })
    }

    /// Streams every payload through `sink`, which gets each payload and
    /// its bytes; a payload whose length or sha256 differs from the
    /// manifest, an entry the manifest does not name, a link, or a package
    /// that ends early is refused by name.
    pub fn for_each_payload(
        &self,
        mut sink: impl FnMut(&Payload, &mut dyn Read) -> Result<(), OtaError>,
    ) -> Result<(), OtaError> {
        let mut archive = open_archive(&self.file, &self.path)?;
        let mut entries = archive.entries().map_err(truncated_or(&self.path))?;
        let head = [MANIFEST_ENTRY, SIGNATURES_ENTRY];
        for name in head {
            let mut entry = entries
                .next()
                .ok_or_else(|| OtaError::Truncated(format!("no {name}")))?
                .map_err(truncated_or(&self.path))?;
            if name == MANIFEST_ENTRY {
                let bytes = read_small(&mut entry, MAX_MANIFEST_BYTES, name)?;
                if bytes != self.manifest_bytes {
                    return Err(OtaError::BadManifest(
                        "the package changed on disk after it was verified".into(),
                    ));
                }
            }
        }
        let mut remaining: Vec<&Payload> = self.manifest.payloads.iter().collect();
        for entry in entries {
            let mut entry = entry.map_err(truncated_or(&self.path))?;
            let name = String::from_utf8(entry.path_bytes().into_owned()).map_err(|_| {
                OtaError::UnexpectedEntry("an entry whose name is not UTF-8".into())
            })?;
            let kind = entry.header().entry_type();
            if !kind.is_file() {
                return Err(OtaError::UnexpectedEntry(format!(
                    "{name} is a {}, and a package may hold only plain files",
                    entry_kind_name(kind)
                )));
            }
            let Some(slot_path) = name.strip_prefix(PAYLOAD_PREFIX) else {
                return Err(OtaError::UnexpectedEntry(format!(
                    "{name} is not under {PAYLOAD_PREFIX}"
                )));
            };
            let Some(index) = remaining
                .iter()
                .position(|payload| payload.path == slot_path)
            else {
                return Err(OtaError::UnexpectedEntry(format!(
                    "{name} is not a payload the signed manifest names (or appears twice)"
                )));
            };
            let payload = remaining.swap_remove(index);
            let declared = entry.header().size().unwrap_or(u64::MAX);
            if declared != payload.size {
                return Err(OtaError::PayloadMismatch {
                    path: payload.path.clone(),
                    reason: format!(
                        "{declared} bytes in the package, {} in the manifest",
                        payload.size
                    ),
                });
            }
            let mut hashing = HashingReader::new(&mut entry);
            sink(payload, &mut hashing)?;
            // Drain what the sink left, so the digest covers every byte.
            std::io::copy(&mut hashing, &mut std::io::sink()).map_err(truncated_or(&self.path))?;
            let (sha256, length) = hashing.finish();
            if length != payload.size {
                return Err(OtaError::Truncated(format!(
                    "payload {} ends after {length} of {} bytes",
                    payload.path, payload.size
                )));
            }
            if sha256 != payload.sha256 {
                return Err(OtaError::PayloadMismatch {
                    path: payload.path.clone(),
                    reason: format!(
                        "its sha256 is {sha256}, the signed manifest says {}",
                        payload.sha256
                    ),
                });
            }
        }
        if let Some(missing) = remaining.first() {
            return Err(OtaError::Truncated(format!(
                "the package ends before payload {}",
                missing.path
            )));
        }
        Ok(())
    }

    /// Checks every payload without writing anything.
    pub fn check_payloads(&self) -> Result<(), OtaError> {
        self.for_each_payload(|_, _| Ok(()))
    }

    /// Extracts every payload under `folder` (which must exist and be
    /// empty of these paths), checking each; files are created new, never
    /// followed through a link, and synced.
    pub fn extract(&self, folder: &Path) -> Result<(), OtaError> {
        self.for_each_payload(|payload, bytes| {
            let path = folder.join(&payload.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(io_error(format!("creating {}", parent.display())))?;
            }
            let mode = if payload.executable { 0o755 } else { 0o644 };
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(io_error(format!("creating {}", path.display())))?;
            std::io::copy(bytes, &mut file).map_err(|source| match source.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    OtaError::Truncated(format!("payload {} ends early", payload.path))
                }
                _ => OtaError::Io {
                    what: format!("writing {}", path.display()),
                    source,
                },
            })?;
            file.sync_all()
                .map_err(io_error(format!("syncing {}", path.display())))
        })
    }

    /// The same package after its file was renamed to `path`.
    pub(crate) fn moved_to(self, path: PathBuf) -> Self {
        VerifiedPackage { path, ..self }
    }

    /// The package file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn entry_name(slot_path: &str) -> String {
    format!("{PAYLOAD_PREFIX}{slot_path}")
}

fn entry_kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Directory => "directory",
        tar::EntryType::Char | tar::EntryType::Block => "device",
        tar::EntryType::Fifo => "FIFO",
        _ => "special entry",
    }
}

/// The package `file` read from its start; `path` names it in messages.
fn open_archive(file: &File, path: &Path) -> Result<tar::Archive<File>, OtaError> {
    // A clone shares the offset, which an earlier reader left anywhere.
    let file = file
        .try_clone()
        .and_then(|mut file| file.seek(SeekFrom::Start(0)).map(|_| file))
        .map_err(io_error(format!("reading {}", path.display())))?;
    Ok(tar::Archive::new(file))
}

/// Reads the manifest's bytes and the signatures.
fn read_head(file: &File, path: &Path) -> Result<(Vec<u8>, Signatures), OtaError> {
    let mut archive = open_archive(file, path)?;
    let mut entries = archive.entries().map_err(truncated_or(path))?;
    let mut next = |name: &str, limit: u64| -> Result<Vec<u8>, OtaError> {
        let mut entry = entries
            .next()
            .ok_or_else(|| {
                OtaError::Truncated(format!("{} ends before its {name}", path.display()))
            })?
            .map_err(truncated_or(path))?;
        let found = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if found != name || !entry.header().entry_type().is_file() {
            return Err(OtaError::BadManifest(format!(
                "{}: expected the entry {name}, found {found:?}; is this an edgesort package?",
                path.display()
            )));
        }
        read_small(&mut entry, limit, name)
    };
    let manifest = next(MANIFEST_ENTRY, MAX_MANIFEST_BYTES)?;
    let signatures = next(SIGNATURES_ENTRY, MAX_SIGNATURES_BYTES)?;
    let signatures: Signatures = serde_json::from_slice(&signatures)
        .map_err(|error| OtaError::BadManifest(format!("{SIGNATURES_ENTRY}: {error}")))?;
    Ok((manifest, signatures))
}

/// Reads a small entry whole: one declared larger than `limit` is refused
/// unread, and one the file ends inside is truncated.
fn read_small(entry: &mut tar::Entry<File>, limit: u64, name: &str) -> Result<Vec<u8>, OtaError> {
    let declared = entry.header().size().unwrap_or(u64::MAX);
    if declared > limit {
        return Err(OtaError::BadManifest(format!(
            "{name} is larger than {limit} bytes"
        )));
    }
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::UnexpectedEof => OtaError::Truncated(format!("{name} ends early")),
            _ => OtaError::Io {
                what: format!("reading {name}"),
                source,
            },
        })?;
    if (bytes.len() as u64) < declared {
        return Err(OtaError::Truncated(format!(
            "{name} ends after {} of its {declared} bytes",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn truncated_or(path: &Path) -> impl Fn(std::io::Error) -> OtaError + '_ {
    move |source| {
        // The tar reader reports a short archive as UnexpectedEof or as a
        // short block read.
        let text = source.to_string();
        if source.kind() == std::io::ErrorKind::UnexpectedEof
            || text.contains("entire block")
            || text.contains("unexpected EOF")
            || text.contains("failed to fill whole buffer")
        {
            OtaError::Truncated(format!("{}: {text}", path.display()))
        } else {
            OtaError::Io {
                what: format!("reading {}", path.display()),
                source,
            }
        }
    }
}

fn write_package(
    out: &Path,
    manifest: &[u8],
    signatures: &Signatures,
    payloads: impl FnOnce(&mut tar::Builder<File>) -> Result<(), OtaError>,
) -> Result<(), OtaError> {
    let file = File::create(out).map_err(io_error(format!("creating {}", out.display())))?;
    let mut builder = tar::Builder::new(file);
    append(
        &mut builder,
        MANIFEST_ENTRY,
        manifest.len() as u64,
        &mut &manifest[..],
    )?;
    let signatures = serde_json::to_vec_pretty(signatures).expect("signatures serialize");
    append(
        &mut builder,
        SIGNATURES_ENTRY,
        signatures.len() as u64,
        &mut &signatures[..],
    )?;
    payloads(&mut builder)?;
    let mut file = builder
        .into_inner()
        .map_err(io_error(format!("finishing {}", out.display())))?;
    file.flush()
        .and_then(|()| file.sync_all())
        .map_err(io_error(format!("syncing {}", out.display())))
}

fn append(
    builder: &mut tar::Builder<File>,
    name: &str,
    size: u64,
    data: &mut impl Read,
) -> Result<(), OtaError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(0);
    builder
        .append_data(&mut header, name, data.take(size))
        .map_err(io_error(format!("writing {name} into the package")))
}

/// Hashes what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    length: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            length: 0,
        }
    }

    fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.length)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let count = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..count]);
        self.length += count as u64;
        Ok(count)
    }
}
