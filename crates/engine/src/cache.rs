use std::fs::{self, File};
use std::path::{Path, PathBuf};

use edgesort_types::{PARTIAL_PREFIX, sync_folder, write_atomically};

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
        fs::create_dir_all(dir.join(QUARANTINE)).map_err(|source| EngineError::OpenCache {
            path: dir.to_owned(),
            source,
        })?;
        Ok(EngineCache {
            dir: dir.to_owned(),
        })
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits for the cache lock.
    pub fn lock(&self) -> Result<CacheLock, EngineError> {
        let path = self.dir.join(LOCK_FILE);
        let lock_error = |source| EngineError::Lock {
            path: path.clone(),
            source,
        };
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(lock_error)?;
        file.lock().map_err(lock_error)?;
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
        let text = match fs::read(&path) {
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
        let plan = match fs::read(&path) {
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
        let folder = self.dir.join(QUARANTINE);
        let stem = format!("{key}.{}", self.quarantined(key) + 1);
        for (from, extension) in [
            (self.manifest_path(key), MANIFEST_EXTENSION),
            (self.engine_path(key), ENGINE_EXTENSION),
        ] {
            let to = folder.join(format!("{stem}.{extension}"));
            match fs::rename(&from, &to) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(EngineError::Quarantine { path: from, source }),
            }
        }
        let note = folder.join(format!("{stem}.reason"));
        write_atomically(&note, reason.as_bytes()).map_err(|source| EngineError::Write {
            path: note.clone(),
            source,
        })?;
        sync_folder(&self.dir).map_err(|source| EngineError::Write {
            path: self.dir.clone(),
            source,
        })?;
        tracing::warn!(%key, reason, "engine quarantined");
        Ok(note)
    }

    /// How many times `key`'s engine has been quarantined.
    pub fn quarantined(&self, key: &EngineKey) -> usize {
        let prefix = format!("{key}.");
        fs::read_dir(self.dir.join(QUARANTINE))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| {
                        let name = entry.file_name();
                        let name = name.to_string_lossy();
                        name.starts_with(&prefix) && name.ends_with(".reason")
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Removes what interrupted writes left: temporary files, and engines
    /// that never got their manifest. Returns what it removed.
    pub fn sweep(&self, _lock: &CacheLock) -> Result<Vec<PathBuf>, EngineError> {
        let mut removed = Vec::new();
        for folder in [self.dir.clone(), self.dir.join(QUARANTINE)] {
            for path in self.list(&folder)? {
                let name = file_name(&path);
                let orphan_engine = path.extension().is_some_and(|e| e == ENGINE_EXTENSION)
                    && folder == self.dir
                    && !path.with_extension(MANIFEST_EXTENSION).exists();
                if name.starts_with(PARTIAL_PREFIX) || orphan_engine {
                    self.remove_file(&path)?;
                    removed.push(path);
                }
            }
        }
        Ok(removed)
    }

    /// Every entry with a readable manifest, newest build first.
    pub fn manifests(&self) -> Result<Vec<Manifest>, EngineError> {
        let mut manifests: Vec<Manifest> = self
            .list(&self.dir)?
            .iter()
            .filter(|path| path.extension().is_some_and(|e| e == MANIFEST_EXTENSION))
            .filter_map(|path| EngineKey::parse(&file_name(path).replace(".json", "")))
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
            self.remove_file(&self.manifest_path(&manifest.key))?;
            self.remove_file(&self.engine_path(&manifest.key))?;
            removed.push(manifest.key);
        }
        let prefixes: Vec<String> = keep.iter().map(|key| format!("{key}.")).collect();
        for path in self.list(&self.dir.join(QUARANTINE))? {
            let name = file_name(&path);
            if !prefixes.iter().any(|prefix| name.starts_with(prefix)) {
                self.remove_file(&path)?;
            }
        }
        self.sweep(lock)?;
        Ok(removed)
    }

    /// The timing cache for one TensorRT and GPU; empty when there is none
    /// or it cannot be read (TensorRT then times kernels afresh).
    pub fn timing_cache(&self, tensorrt: &str, gpu: &str) -> Vec<u8> {
        fs::read(self.timing_cache_path(tensorrt, gpu)).unwrap_or_default()
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

    fn list(&self, folder: &Path) -> Result<Vec<PathBuf>, EngineError> {
        let entries = fs::read_dir(folder).map_err(|source| EngineError::OpenCache {
            path: folder.to_owned(),
            source,
        })?;
        Ok(entries.filter_map(Result::ok).map(|e| e.path()).collect())
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

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::tests::inputs;
    use edgesort_types::config::Precision;

    fn manifest_for(key: &EngineKey, plan: &[u8], built_at: &str) -> Manifest {
        Manifest {
            key: key.clone(),
            inputs: inputs(),
            model: PathBuf::from("model.onnx"),
            board: "test".into(),
            l4t: None,
            precision: Precision::Fp16,
            fallback: Vec::new(),
            workspace_bytes: 1 << 30,
            build_seconds: 1.0,
            built_at: built_at.into(),
            engine_sha256: sha256_hex(plan),
            engine_bytes: plan.len() as u64,
            validation: None,
            edgesort_version: "test".into(),
        }
    }

    fn key(digit: char) -> EngineKey {
        EngineKey::parse(&digit.to_string().repeat(32)).unwrap()
    }

    #[test]
    fn stores_and_serves_an_engine_whole() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EngineCache::open(dir.path()).unwrap();
        let lock = cache.lock().unwrap();
        assert!(matches!(cache.entry(&key('a')), Entry::Missing));
        let plan = vec![7u8; 4096];
        cache
            .store(
                &lock,
                &manifest_for(&key('a'), &plan, "2026-01-01T00:00:00Z"),
                &plan,
            )
            .unwrap();
        let Entry::Ready {
            manifest,
            plan: served,
        } = cache.entry(&key('a'))
        else {
            panic!("expected the stored engine");
        };
        assert_eq!(served, plan);
        assert_eq!(manifest.key, key('a'));
    }

    #[test]
    fn a_truncated_or_altered_engine_is_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EngineCache::open(dir.path()).unwrap();
        let lock = cache.lock().unwrap();
        let plan = vec![7u8; 4096];
        cache
            .store(&lock, &manifest_for(&key('a'), &plan, "t"), &plan)
            .unwrap();
        fs::write(cache.engine_path(&key('a')), &plan[..100]).unwrap();
        let Entry::Damaged { reason } = cache.entry(&key('a')) else {
            panic!("a truncated engine must be damaged");
        };
        assert!(reason.contains("do not match its manifest"), "{reason}");
        fs::write(cache.engine_path(&key('a')), vec![8u8; 4096]).unwrap();
        assert!(matches!(cache.entry(&key('a')), Entry::Damaged { .. }));
        fs::write(cache.manifest_path(&key('a')), b"{ not json").unwrap();
        let Entry::Damaged { reason } = cache.entry(&key('a')) else {
            panic!("a damaged manifest must be damaged");
        };
        assert!(reason.contains("manifest"), "{reason}");
    }

    #[test]
    fn quarantine_moves_the_engine_aside_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EngineCache::open(dir.path()).unwrap();
        let lock = cache.lock().unwrap();
        let plan = vec![1u8; 64];
        for round in 1..=2 {
            cache
                .store(&lock, &manifest_for(&key('a'), &plan, "t"), &plan)
                .unwrap();
            let note = cache
                .quarantine(&lock, &key('a'), "does not deserialize")
                .unwrap();
            assert_eq!(fs::read_to_string(note).unwrap(), "does not deserialize");
            assert_eq!(cache.quarantined(&key('a')), round);
            assert!(matches!(cache.entry(&key('a')), Entry::Missing));
        }
        assert_eq!(cache.quarantined(&key('b')), 0);
    }

    #[test]
    fn sweep_removes_temporaries_and_orphan_engines_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EngineCache::open(dir.path()).unwrap();
        let lock = cache.lock().unwrap();
        let plan = vec![1u8; 64];
        cache
            .store(&lock, &manifest_for(&key('a'), &plan, "t"), &plan)
            .unwrap();
        fs::write(dir.path().join(".partial-XYZ"), b"half an engine").unwrap();
        fs::write(cache.engine_path(&key('b')), b"engine without manifest").unwrap();
        let mut removed = cache.sweep(&lock).unwrap();
        removed.sort();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(matches!(cache.entry(&key('a')), Entry::Ready { .. }));
    }

    #[test]
    fn prune_keeps_the_active_and_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EngineCache::open(dir.path()).unwrap();
        let lock = cache.lock().unwrap();
        let plan = vec![1u8; 64];
        for (digit, built_at) in [
            ('a', "2026-01-01"),
            ('b', "2026-02-01"),
            ('c', "2026-03-01"),
            ('d', "2026-04-01"),
        ] {
            cache
                .store(&lock, &manifest_for(&key(digit), &plan, built_at), &plan)
                .unwrap();
        }
        let removed = cache.prune(&lock, &[key('a')], 2).unwrap();
        assert_eq!(removed, [key('c'), key('b')]);
        assert!(matches!(cache.entry(&key('a')), Entry::Ready { .. }));
        assert!(matches!(cache.entry(&key('d')), Entry::Ready { .. }));
    }

    #[test]
    fn two_holders_never_hold_the_lock_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EngineCache::open(dir.path()).unwrap();
        let held = cache.lock().unwrap();
        let other = cache.clone();
        let (sender, receiver) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _lock = other.lock().unwrap();
            sender.send(()).unwrap();
        });
        assert!(
            receiver
                .recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "the second holder got the lock while the first held it"
        );
        drop(held);
        receiver
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the lock is released on drop");
        waiter.join().unwrap();
    }
}
