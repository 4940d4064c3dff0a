use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use edgesort_types::{BeneathError, Folder, PARTIAL_PREFIX, sync_folder, write_atomically};

use crate::{EngineError, EngineKey, Manifest, sha256_hex};

const ENGINE_EXTENSION: &str = "engine";
const MANIFEST_EXTENSION: &str = "json";
const QUARANTINE: &str = "quarantine";
const LOCK_FILE: &str = ".lock";

/// What the cache holds for one key.
#[derive(Debug)]
pub enum Entry {
    /// Nothing, or only the leftovers of an interrupted build.
    Missing,
    /// An engine whose bytes match its manifest.
    Ready {
        /// Its manifest.
        manifest: Box<Manifest>,
        /// The serialized engine.
        plan: Vec<u8>,
    },
    /// Something is there but must not be used.
    Damaged {
        /// What is wrong, for the log and the quarantine note.
        reason: String,
    },
}

/// Engines built on this box, one per key, on the data partition.
///
/// Layout: `<key>.engine` and `<key>.json` (the manifest), `quarantine/` for
/// engines that failed to load, `timing-*.cache` for TensorRT's kernel
/// timings, and `.lock`. Every file is written atomically and the manifest
/// last, so a power cut leaves an entry whole, absent, or as an orphan engine
/// that [`EngineCache::sweep`] removes; a damaged file is caught by the
/// manifest's hash before any byte reaches TensorRT.
///
/// The folder may be writable by a less trusted user than the one that
/// provisions, so the cache never goes through a symbolic link: files are
/// read only when they are plain files (a FIFO is refused, not waited on),
/// entries are removed and moved by name within the folder (a link goes as
/// a link, its target untouched), and `quarantine/` is entered only when it
/// is a real folder.
#[derive(Clone, Debug)]
pub struct EngineCache {
    dir: PathBuf,
}

/// Exclusive hold on the cache: two builders never write at once. Released
/// when dropped, or by the kernel when the process dies.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl EngineCache {
    /// Opens (creating where needed) the cache in `dir`.
    pub fn open(dir: &Path) -> Result<Self, EngineError> {
        fs::create_dir_all(dir).map_err(|source| EngineError::OpenCache {
            path: dir.to_owned(),
            source,
        })?;
        let cache = EngineCache {
            dir: dir.to_owned(),
        };
        match cache.folder()?.create_folder(QUARANTINE, 0o755) {
            // Something else in its place (a link): never entered, and
            // removed as a link by `sweep`.
            Ok(_) | Err(BeneathError::Refused { .. }) => Ok(cache),
            Err(source) => Err(EngineError::OpenEntry {
                path: dir.join(QUARANTINE),
                source,
            }),
        }
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits for the cache lock.
    pub fn lock(&self) -> Result<CacheLock, EngineError> {
        let path = self.dir.join(LOCK_FILE);
        let file = self
            .folder()?
            .open_or_create(LOCK_FILE, 0o644)
            .map_err(|source| EngineError::OpenEntry {
                path: path.clone(),
                source,
            })?;
        file.lock()
            .map_err(|source| EngineError::Lock { path, source })?;
        Ok(CacheLock { _file: file })
    }

    /// Path of `key`'s engine file.
    pub fn engine_path(&self, key: &EngineKey) -> PathBuf {
        self.dir.join(format!("{key}.{ENGINE_EXTENSION}"))
    }

    /// Path of `key`'s manifest.
    pub fn manifest_path(&self, key: &EngineKey) -> PathBuf {
        self.dir.join(format!("{key}.{MANIFEST_EXTENSION}"))
    }

    /// Reads `key`'s manifest alone (cheap: no engine bytes). `Err` carries
    /// the reason a manifest that exists cannot be used.
    pub fn manifest(&self, key: &EngineKey) -> Result<Option<Manifest>, String> {
        let path = self.manifest_path(key);
        let text = match self.read(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        };
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|error| format!("manifest {} is damaged: {error}", path.display()))?;
        if manifest.key != *key {
            return Err(format!(
                "manifest {} names key {}",
                path.display(),
                manifest.key
            ));
        }
        Ok(Some(manifest))
    }

    /// Reads and checks `key`'s entry.
    pub fn entry(&self, key: &EngineKey) -> Entry {
        let manifest = match self.manifest(key) {
            Ok(Some(manifest)) => manifest,
            Ok(None) => return Entry::Missing,
            Err(reason) => return Entry::Damaged { reason },
        };
        let path = self.engine_path(key);
        let plan = match self.read(&path) {
            Ok(plan) => plan,
            Err(error) => {
                return Entry::Damaged {
                    reason: format!("cannot read {}: {error}", path.display()),
                };
            }
        };
        if plan.len() as u64 != manifest.engine_bytes || sha256_hex(&plan) != manifest.engine_sha256
        {
            return Entry::Damaged {
                reason: format!(
                    "{} has {} bytes that do not match its manifest ({} bytes, sha256 {})",
                    path.display(),
                    plan.len(),
                    manifest.engine_bytes,
                    manifest.engine_sha256
                ),
            };
        }
        Entry::Ready {
            manifest: Box::new(manifest),
            plan,
        }
    }

    /// Stores an engine and its manifest, replacing any entry of that key.
    /// The old manifest goes first, so no moment exists where a manifest
    /// vouches for bytes it does not describe.
    pub fn store(
        &self,
        _lock: &CacheLock,
        manifest: &Manifest,
        plan: &[u8],
    ) -> Result<(), EngineError> {
        let key = &manifest.key;
        self.remove_file(&self.manifest_path(key))?;
        let engine_path = self.engine_path(key);
        write_atomically(&engine_path, plan).map_err(|source| EngineError::Write {
            path: engine_path,
            source,
        })?;
        self.update_manifest(_lock, manifest)
    }

    /// Rewrites a manifest, e.g. to record its validation.
    pub fn update_manifest(
        &self,
        _lock: &CacheLock,
        manifest: &Manifest,
    ) -> Result<(), EngineError> {
        let path = self.manifest_path(&manifest.key);
        let text = serde_json::to_vec_pretty(manifest).expect("manifests serialize");
        write_atomically(&path, &text).map_err(|source| EngineError::Write { path, source })
    }

    /// Moves `key`'s files into `quarantine/` with a note saying why, so
    /// that the engine is rebuilt and a technician can still inspect it.
    pub fn quarantine(
        &self,
        _lock: &CacheLock,
        key: &EngineKey,
        reason: &str,
    ) -> Result<PathBuf, EngineError> {
        let root = self.folder()?;
        let folder =
            root.create_folder(QUARANTINE, 0o755)
                .map_err(|source| EngineError::OpenEntry {
                    path: self.dir.join(QUARANTINE),
                    source,
                })?;
        let stem = format!("{key}.{}", self.quarantined(key) + 1);
        for extension in [MANIFEST_EXTENSION, ENGINE_EXTENSION] {
            let from = format!("{key}.{extension}");
            match root.rename(&from, &folder, format!("{stem}.{extension}")) {
                Ok(()) => {}
                Err(BeneathError::Rename { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(EngineError::Quarantine {
                        path: root.join(&from),
                        source: std::io::Error::other(source),
                    });
                }
            }
        }
        let note_name = format!("{stem}.reason");
        let note = folder.join(&note_name);
        let write_error = |source| EngineError::Write {
            path: note.clone(),
            source,
        };
        let beneath_error = |source| EngineError::OpenEntry {
            path: note.clone(),
            source,
        };
        folder.remove(&note_name).map_err(beneath_error)?;
        let mut file = folder
            .create_new(&note_name, 0o644)
            .map_err(beneath_error)?;
        std::io::Write::write_all(&mut file, reason.as_bytes())
            .and_then(|()| file.sync_all())
            .and_then(|()| folder.sync())
            .and_then(|()| root.sync())
            .map_err(write_error)?;
        tracing::warn!(%key, reason, "engine quarantined");
        Ok(note)
    }

    /// How many times `key`'s engine has been quarantined.
    pub fn quarantined(&self, key: &EngineKey) -> usize {
        let prefix = format!("{key}.");
        let Ok(Some(folder)) = self.folder().and_then(|root| self.quarantine_folder(&root)) else {
            return 0;
        };
        folder
            .entries()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|entry| {
                        let name = entry.name.to_string_lossy();
                        name.starts_with(&prefix) && name.ends_with(".reason")
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Removes what interrupted writes left: temporary files, and engines
    /// that never got their manifest; and anything but a folder where
    /// `quarantine/` belongs (a link is removed as a link, its target
    /// untouched). Returns what it removed.
    pub fn sweep(&self, _lock: &CacheLock) -> Result<Vec<PathBuf>, EngineError> {
        let root = self.folder()?;
        let names = self.names(&root)?;
        let mut removed = Vec::new();
        for (name, is_folder) in &names {
            let orphan_engine = name
                .strip_suffix(&format!(".{ENGINE_EXTENSION}"))
                .is_some_and(|stem| {
                    !names.contains(&(format!("{stem}.{MANIFEST_EXTENSION}"), false))
                });
            let foreign_quarantine = name == QUARANTINE && !is_folder;
            if name.starts_with(PARTIAL_PREFIX) || orphan_engine || foreign_quarantine {
                if foreign_quarantine {
                    tracing::warn!(path = %root.join(name).display(), "the quarantine folder is not a folder (a link?): removed, not followed");
                }
                self.remove_entry(&root, name)?;
                removed.push(root.join(name));
            }
        }
        if let Some(quarantine) = self.quarantine_folder(&root)? {
            for (name, _) in self.names(&quarantine)? {
                if name.starts_with(PARTIAL_PREFIX) {
                    self.remove_entry(&quarantine, &name)?;
                    removed.push(quarantine.join(&name));
                }
            }
        }
        Ok(removed)
    }

    /// Every entry with a readable manifest, newest build first.
    pub fn manifests(&self) -> Result<Vec<Manifest>, EngineError> {
        let mut manifests: Vec<Manifest> = self
            .names(&self.folder()?)?
            .iter()
            .filter_map(|(name, _)| name.strip_suffix(&format!(".{MANIFEST_EXTENSION}")))
            .filter_map(EngineKey::parse)
            .filter_map(|key| self.manifest(&key).ok().flatten())
            .collect();
        manifests.sort_by(|a, b| b.built_at.cmp(&a.built_at));
        Ok(manifests)
    }

    /// Keeps the entries in `keep` and the newest others up to `max_entries`
    /// in all; removes the rest with their quarantined copies. Returns the
    /// keys removed.
    pub fn prune(
        &self,
        lock: &CacheLock,
        keep: &[EngineKey],
        max_entries: usize,
    ) -> Result<Vec<EngineKey>, EngineError> {
        let root = self.folder()?;
        let mut kept = keep.len();
        let mut removed = Vec::new();
        for manifest in self.manifests()? {
            if keep.contains(&manifest.key) {
                continue;
            }
            if kept < max_entries {
                kept += 1;
                continue;
            }
            let key = &manifest.key;
            self.remove_entry(&root, &format!("{key}.{MANIFEST_EXTENSION}"))?;
            self.remove_entry(&root, &format!("{key}.{ENGINE_EXTENSION}"))?;
            removed.push(manifest.key);
        }
        let prefixes: Vec<String> = keep.iter().map(|key| format!("{key}.")).collect();
        if let Some(quarantine) = self.quarantine_folder(&root)? {
            for (name, is_folder) in self.names(&quarantine)? {
                // The cache makes no folders there; one found is not
                // entered.
                if !is_folder && !prefixes.iter().any(|prefix| name.starts_with(prefix)) {
                    self.remove_entry(&quarantine, &name)?;
                }
            }
        }
        self.sweep(lock)?;
        Ok(removed)
    }

    /// The timing cache for one TensorRT and GPU; empty when there is none
    /// or it cannot be read (TensorRT then times kernels afresh).
    pub fn timing_cache(&self, tensorrt: &str, gpu: &str) -> Vec<u8> {
        self.read(&self.timing_cache_path(tensorrt, gpu))
            .unwrap_or_default()
    }

    /// Saves the timing cache a build returned.
    pub fn save_timing_cache(
        &self,
        _lock: &CacheLock,
        tensorrt: &str,
        gpu: &str,
        bytes: &[u8],
    ) -> Result<(), EngineError> {
        let path = self.timing_cache_path(tensorrt, gpu);
        write_atomically(&path, bytes).map_err(|source| EngineError::Write { path, source })
    }

    fn timing_cache_path(&self, tensorrt: &str, gpu: &str) -> PathBuf {
        // A timing cache is as tied to TensorRT and the GPU as an engine.
        let id = sha256_hex(format!("{tensorrt}\n{gpu}").as_bytes());
        self.dir.join(format!("timing-{}.cache", &id[..16]))
    }

    /// The cache folder, held open.
    fn folder(&self) -> Result<Folder, EngineError> {
        Folder::open(&self.dir).map_err(|source| EngineError::OpenEntry {
            path: self.dir.clone(),
            source,
        })
    }

    /// `quarantine/` when it is a real folder; `None` when it is absent or
    /// something else (which is never entered).
    fn quarantine_folder(&self, root: &Folder) -> Result<Option<Folder>, EngineError> {
        match root.folder(QUARANTINE) {
            Ok(folder) => Ok(Some(folder)),
            Err(BeneathError::Refused { .. }) => Ok(None),
            Err(error) if error.is_not_found() => Ok(None),
            Err(source) => Err(EngineError::OpenEntry {
                path: root.join(QUARANTINE),
                source,
            }),
        }
    }

    /// The names in `folder` (UTF-8 ones: the cache makes no others), each
    /// with whether it is a real folder.
    fn names(&self, folder: &Folder) -> Result<Vec<(String, bool)>, EngineError> {
        let entries = folder.entries().map_err(|source| EngineError::OpenEntry {
            path: folder.path().to_owned(),
            source,
        })?;
        Ok(entries
            .into_iter()
            .filter_map(|entry| {
                let is_folder = entry.kind == "folder";
                entry.name.into_string().ok().map(|name| (name, is_folder))
            })
            .collect())
    }

    /// A file of the cache, read only if it is a plain file.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let name = path.file_name().unwrap_or_default();
        let opened = Folder::open(&self.dir).and_then(|folder| folder.open_regular(name));
        let mut file = opened.map_err(|error| {
            let kind = if error.is_not_found() {
                std::io::ErrorKind::NotFound
            } else {
                std::io::ErrorKind::Other
            };
            std::io::Error::new(kind, error)
        })?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Removes the entry `name` of `folder`: a link as a link.
    fn remove_entry(&self, folder: &Folder, name: &str) -> Result<(), EngineError> {
        let write_error = |source| EngineError::Write {
            path: folder.join(name),
            source,
        };
        match folder.remove(name) {
            Ok(true) => folder.sync().map_err(write_error),
            Ok(false) => Ok(()),
            Err(error) => Err(write_error(std::io::Error::other(error))),
        }
    }

    fn remove_file(&self, path: &Path) -> Result<(), EngineError> {
        match fs::remove_file(path) {
            Ok(()) => sync_folder(path.parent().unwrap_or(&self.dir)).map_err(|source| {
                EngineError::Write {
                    path: path.to_owned(),
                    source,
                }
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(EngineError::Write {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
