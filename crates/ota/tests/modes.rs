//! Root writes the slots from units that run under `UMask=0077`, and the
//! daemon's own user reads them: whatever the writer's umask, every slot
//! folder is 0755, every file 0644, and an executable payload 0755.
//!
//! A test binary of its own, because the umask is the whole process's.

// Each test binary compiles the shared rig and uses part of it.
#[allow(dead_code)]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use edgesort_ota::PackInfo;
use semver::Version;

const DAEMON: &str = "bin/edgesortd";

#[test]
fn slots_are_readable_by_the_daemon_whatever_the_umask() {
    // SAFETY: umask only swaps a process attribute; this binary runs this
    // one test, so no other test sees it.
    unsafe { libc::umask(0o077) };
    let mut rig = TestBox::new();
    assert_readable(&rig.ota.root().join("slots/a"));

    let source = rig.path("update.source");
    write_slot_files(&source, 7, 2048);
    std::fs::create_dir_all(source.join("bin")).unwrap();
    std::fs::write(source.join(DAEMON), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(source.join(DAEMON), PermissionsExt::from_mode(0o700)).unwrap();
    let package = rig.path("update.tar");
    edgesort_ota::pack(
        &source,
        PackInfo {
            version: Version::new(1, 1, 0),
            min_version: Version::new(0, 1, 0),
            boards: vec![BOARD.into()],
            notes: "modes".into(),
            created: std::time::SystemTime::now(),
            revokes: Vec::new(),
        },
        &package,
    )
    .unwrap();
    edgesort_ota::sign(&package, &rig.release_key).unwrap();
    rig.install(&package, None).unwrap();

    let slot_b = rig.ota.root().join("slots/b");
    assert_eq!(mode(&slot_b.join(DAEMON)), 0o755, "{DAEMON}");
    assert_readable(&slot_b);
    for folder in [rig.ota.root(), &rig.ota.root().join("slots")] {
        assert_eq!(mode(folder), 0o755, "{}", folder.display());
    }
}

/// Folders 0755 and files 0644 (0755 for the daemon) under `folder`.
fn assert_readable(folder: &Path) {
    assert_eq!(mode(folder), 0o755, "{}", folder.display());
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_readable(&path);
        } else if !path.ends_with(DAEMON) {
            assert_eq!(mode(&path), 0o644, "{}", path.display());
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
