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

/// A file and a folder outside the cache, with content that must
/// survive whatever the cache does through links to them.
struct Outside {
    _dir: tempfile::TempDir,
    file: PathBuf,
    folder: PathBuf,
}

const PRECIOUS: &[u8] = b"root's file, not the cache's";

impl Outside {
    fn new() -> Outside {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("precious.txt");
        fs::write(&file, PRECIOUS).unwrap();
        let folder = dir.path().join("etc");
        fs::create_dir(&folder).unwrap();
        // Named like quarantined entries of a key that is not kept,
        // and like a temporary file: what prune and sweep delete.
        for name in [
            format!("{}.1.engine", key('b')),
            format!("{}.1.reason", key('b')),
            format!("{PARTIAL_PREFIX}passwd"),
        ] {
            fs::write(folder.join(name), PRECIOUS).unwrap();
        }
        Outside {
            _dir: dir,
            file,
            folder,
        }
    }

    fn assert_untouched(&self) {
        assert_eq!(fs::read(&self.file).unwrap(), PRECIOUS);
        let mut names: Vec<String> = fs::read_dir(&self.folder)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                assert_eq!(fs::read(entry.path()).unwrap(), PRECIOUS);
                entry.file_name().to_string_lossy().into_owned()
            })
            .collect();
        names.sort();
        assert_eq!(
            names.len(),
            3,
            "files went from outside the cache: {names:?}"
        );
    }
}

fn link_quarantine_to(cache: &EngineCache, folder: &Path) -> PathBuf {
    let quarantine = cache.dir().join(QUARANTINE);
    fs::remove_dir(&quarantine).unwrap();
    std::os::unix::fs::symlink(folder, &quarantine).unwrap();
    quarantine
}

#[test]
fn sweep_removes_links_as_links_and_never_enters_a_linked_quarantine() {
    let outside = Outside::new();
    let dir = tempfile::tempdir().unwrap();
    let cache = EngineCache::open(dir.path()).unwrap();
    let lock = cache.lock().unwrap();
    let quarantine = link_quarantine_to(&cache, &outside.folder);
    let partial = dir.path().join(format!("{PARTIAL_PREFIX}planted"));
    std::os::unix::fs::symlink(&outside.file, &partial).unwrap();
    let orphan = cache.engine_path(&key('d'));
    std::os::unix::fs::symlink(&outside.file, &orphan).unwrap();

    let mut removed = cache.sweep(&lock).unwrap();

    removed.sort();
    let mut expected = vec![quarantine.clone(), partial.clone(), orphan.clone()];
    expected.sort();
    assert_eq!(removed, expected, "sweep names each link it removed");
    for link in [&quarantine, &partial, &orphan] {
        assert!(fs::symlink_metadata(link).is_err(), "{link:?} stayed");
    }
    outside.assert_untouched();
}

#[test]
fn prune_removes_linked_entries_as_links_and_never_enters_a_linked_quarantine() {
    let outside = Outside::new();
    let dir = tempfile::tempdir().unwrap();
    let cache = EngineCache::open(dir.path()).unwrap();
    let lock = cache.lock().unwrap();
    let plan = vec![1u8; 64];
    for (digit, built_at) in [
        ('a', "2026-01-01"),
        ('b', "2026-02-01"),
        ('c', "2026-03-01"),
    ] {
        cache
            .store(&lock, &manifest_for(&key(digit), &plan, built_at), &plan)
            .unwrap();
    }
    // Entry c's engine is a link out of the cache.
    fs::remove_file(cache.engine_path(&key('c'))).unwrap();
    std::os::unix::fs::symlink(&outside.file, cache.engine_path(&key('c'))).unwrap();
    let quarantine = link_quarantine_to(&cache, &outside.folder);

    let removed = cache.prune(&lock, &[key('a')], 1).unwrap();

    assert_eq!(removed, [key('c'), key('b')]);
    assert!(fs::symlink_metadata(cache.engine_path(&key('c'))).is_err());
    assert!(
        fs::symlink_metadata(&quarantine).is_err(),
        "the linked quarantine stayed"
    );
    assert!(matches!(cache.entry(&key('a')), Entry::Ready { .. }));
    outside.assert_untouched();
}

#[test]
fn a_linked_quarantine_or_lock_is_refused_by_name_and_its_target_untouched() {
    let outside = Outside::new();
    let dir = tempfile::tempdir().unwrap();
    let cache = EngineCache::open(dir.path()).unwrap();
    let lock = cache.lock().unwrap();
    let plan = vec![1u8; 64];
    cache
        .store(&lock, &manifest_for(&key('b'), &plan, "t"), &plan)
        .unwrap();
    link_quarantine_to(&cache, &outside.folder);

    let error = cache.quarantine(&lock, &key('b'), "bad").unwrap_err();

    let message = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    assert!(
        message.contains("quarantine") && message.contains("symbolic link"),
        "{message}"
    );
    assert!(matches!(cache.entry(&key('b')), Entry::Ready { .. }));
    drop(lock);
    fs::remove_file(dir.path().join(LOCK_FILE)).unwrap();
    std::os::unix::fs::symlink(&outside.file, dir.path().join(LOCK_FILE)).unwrap();

    let error = cache.lock().unwrap_err();

    let message = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    assert!(
        message.contains(LOCK_FILE) && message.contains("symbolic link"),
        "{message}"
    );
    outside.assert_untouched();
}

#[test]
fn a_fifo_in_place_of_an_engine_is_damaged_at_once_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let cache = EngineCache::open(dir.path()).unwrap();
    let lock = cache.lock().unwrap();
    let plan = vec![1u8; 64];
    cache
        .store(&lock, &manifest_for(&key('a'), &plan, "t"), &plan)
        .unwrap();
    let engine = cache.engine_path(&key('a'));
    fs::remove_file(&engine).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&engine)
        .status()
        .unwrap();
    assert!(status.success());

    let Entry::Damaged { reason } = cache.entry(&key('a')) else {
        panic!("a FIFO engine must be damaged");
    };

    assert!(reason.contains("FIFO"), "{reason}");
    assert!(reason.contains(&key('a').to_string()), "{reason}");
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
