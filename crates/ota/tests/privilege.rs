//! Issue 23: root's installer never follows a link that the daemon's user
//! planted in the OTA folder's writable part (`incoming/`, its queue) or
//! in place of the `lock`, and never waits on a FIFO there. Each attack is
//! refused with an error that names the entry, and the file the link points
//! at, outside the OTA folder, keeps its bytes.
//!
//! Nor does root work in an update folder the daemon's user could have
//! swapped for its own: one others may write, or a link, is refused by
//! name, and once root opened its own, a folder put in its place does not
//! redirect it. "Root" here is the user running the tests, the owner the
//! folder is checked against; `crates/edgesort/tests/ota_cli.rs` has the
//! daemon's user (another uid) swap it, as root.

// Each test binary compiles the shared rig and uses part of it.
#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use edgesort_ota::{OtaDir, OtaError, Outcome, SlotName};
use edgesort_types::BeneathError;
use semver::Version;

const PRECIOUS: &[u8] = b"root's own file: these bytes must survive";

/// A file outside the OTA folder, for a planted link to point at.
fn outside_file(rig: &TestBox) -> PathBuf {
    let path = rig.path("precious.conf");
    fs::write(&path, PRECIOUS).unwrap();
    path
}

fn assert_untouched(path: &Path) {
    assert_eq!(
        fs::read(path).unwrap(),
        PRECIOUS,
        "{} was written through the link",
        path.display()
    );
}

fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|metadata| metadata.file_type().is_symlink())
}

fn mkfifo(path: &Path) {
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
}

fn refused_as(error: &OtaError, kind: &str) -> bool {
    matches!(error, OtaError::OpenBeneath(BeneathError::Refused { found, .. }) if *found == kind)
}

/// The queue drained as `edgesort ota install-queued` drains it, with the
/// rig's installer.
fn install_queued(rig: &mut TestBox) -> Vec<(PathBuf, Result<Outcome, OtaError>)> {
    let ota = rig.ota.clone();
    let keys = rig.keys.clone();
    ota.install_queued(&keys, |file, package| {
        rig.with_installer(|installer| installer.install_file(file, package, None))
    })
    .unwrap()
}

#[test]
fn issue_23_a_symlinked_partial_download_is_refused_and_its_target_untouched() {
    let rig = TestBox::new();
    let target = outside_file(&rig);
    let incoming = rig.ota.incoming();
    fs::create_dir_all(&incoming).unwrap();
    let partial = incoming.join("edgesort-1.1.0.esu.partial");
    symlink(&target, &partial).unwrap();
    let package = rig.signed_package("release", "1.1.0");

    let error = rig
        .ota
        .receive_download("edgesort-1.1.0.esu", &mut fs::File::open(&package).unwrap())
        .unwrap_err();

    let message = error.to_string();
    assert!(
        message.contains(&partial.display().to_string()) && message.contains("exists"),
        "{message}"
    );
    assert_untouched(&target);
    assert!(is_link(&partial), "the planted link was replaced");
    assert!(!incoming.join("edgesort-1.1.0.esu").exists());
}

#[test]
fn a_download_lands_whole_under_its_name_and_installs_from_the_file_it_wrote() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("release", "1.1.0");

    let (path, file) = rig
        .ota
        .receive_download("edgesort-1.1.0.esu", &mut fs::File::open(&package).unwrap())
        .unwrap();

    assert_eq!(path, rig.ota.incoming().join("edgesort-1.1.0.esu"));
    assert_eq!(fs::read(&path).unwrap(), fs::read(&package).unwrap());
    assert!(
        !rig.ota
            .incoming()
            .join("edgesort-1.1.0.esu.partial")
            .exists()
    );
    let outcome = rig.with_installer(|installer| installer.install_file(file, &path, None));
    assert_eq!(
        outcome.unwrap(),
        Outcome::Committed {
            version: Version::new(1, 1, 0),
            slot: SlotName::B
        }
    );
    rig.ota.discard_download(&path).unwrap();
    assert!(!path.exists());
}

#[test]
fn issue_23_a_symlinked_lock_is_refused_and_its_target_untouched() {
    let mut rig = TestBox::new();
    let target = outside_file(&rig);
    let lock = rig.ota.root().join("lock");
    fs::remove_file(&lock).unwrap();
    symlink(&target, &lock).unwrap();
    let package = rig.signed_package("release", "1.1.0");
    let before = rig.running_slot();

    let errors = [
        rig.ota.lock().err().expect("lock refused"),
        rig.ota.try_lock().err().expect("try_lock refused"),
        rig.install(&package, None).unwrap_err(),
    ];

    for error in &errors {
        assert!(refused_as(error, "symbolic link"), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&lock.display().to_string()), "{message}");
    }
    assert_untouched(&target);
    assert!(is_link(&lock));
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn issue_23_a_symlinked_queue_entry_is_refused_and_its_target_untouched() {
    let mut rig = TestBox::new();
    // The link points at a good signed package outside the queue: were it
    // followed, it would install.
    let package = rig.signed_package("release", "1.1.0");
    let bytes = fs::read(&package).unwrap();
    let queue = rig.ota.queue();
    fs::create_dir_all(&queue).unwrap();
    let entry = queue.join("edgesort-1.1.0-0123456789ab.esu");
    symlink(&package, &entry).unwrap();

    let done = install_queued(&mut rig);

    assert_eq!(done.len(), 1);
    let (path, result) = &done[0];
    assert_eq!(path, &entry);
    let error = result.as_ref().unwrap_err();
    assert!(refused_as(error, "symbolic link"), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("edgesort-1.1.0-0123456789ab.esu"),
        "{error}"
    );
    assert_eq!(fs::read(&package).unwrap(), bytes);
    assert!(!is_link(&entry), "the link stayed queued");
    assert_eq!(rig.line.restarts, 0, "the line was restarted");
    let state = rig.ota.state().unwrap().unwrap();
    assert_eq!(
        state.committed.version,
        Version::parse(FACTORY_VERSION).unwrap()
    );
    let last = state.history.last().unwrap();
    assert_eq!(last.event, "refused");
    assert!(last.detail.contains("symbolic link"), "{}", last.detail);
}

#[test]
fn issue_23_a_linked_queue_folder_is_not_entered() {
    let rig = TestBox::new();
    let target = outside_file(&rig);
    let elsewhere = target.parent().unwrap().to_owned();
    fs::create_dir_all(rig.ota.incoming()).unwrap();
    symlink(&elsewhere, rig.ota.queue()).unwrap();

    let error = rig.ota.queued().unwrap_err();

    assert!(refused_as(&error, "symbolic link"), "{error:?}");
    assert!(error.to_string().contains("queued"), "{error}");
    let error = rig
        .ota
        .unqueue(&rig.ota.queue().join("precious.conf"))
        .unwrap_err();
    assert!(refused_as(&error, "symbolic link"), "{error:?}");
    assert_untouched(&target);
}

#[test]
fn issue_23_a_fifo_in_the_queue_is_skipped_with_an_error_within_a_second_and_the_next_package_installs()
 {
    let mut rig = TestBox::new();
    let queue = rig.ota.queue();
    fs::create_dir_all(&queue).unwrap();
    let fifo = queue.join("a-fifo.esu");
    mkfifo(&fifo);
    let package = rig.signed_package("release", "1.1.0");
    let next = queue.join("b-release.esu");
    fs::copy(&package, &next).unwrap();
    // Oldest first: the FIFO comes before the package.
    let now = std::time::SystemTime::now();
    fs::File::options()
        .write(true)
        .open(&next)
        .unwrap()
        .set_modified(now + Duration::from_secs(60))
        .unwrap();

    // Opened by path, a FIFO blocks its reader for ever; a thread of its
    // own turns that into a failure instead of a hung test.
    let (sender, receiver) = mpsc::channel();
    let ota = rig.ota.clone();
    let opening = fifo.clone();
    std::thread::spawn(move || sender.send(ota.open_queued(&opening).map(|_| ())));
    let opened = receiver
        .recv_timeout(Duration::from_secs(1))
        .expect("opening the FIFO blocked for more than a second");
    let error = opened.unwrap_err();
    assert!(refused_as(&error, "FIFO"), "{error:?}");
    assert!(error.to_string().contains("a-fifo.esu"), "{error}");

    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let done = install_queued(&mut rig);
        sender.send((done, rig)).unwrap();
    });
    let (done, rig) = receiver
        .recv_timeout(Duration::from_secs(300))
        .expect("install-queued hung");

    let paths: Vec<&PathBuf> = done.iter().map(|(path, _)| path).collect();
    assert_eq!(paths, [&fifo, &next]);
    let error = done[0].1.as_ref().unwrap_err();
    assert!(refused_as(error, "FIFO"), "{error:?}");
    assert_eq!(
        done[1].1.as_ref().unwrap(),
        &Outcome::Committed {
            version: Version::new(1, 1, 0),
            slot: SlotName::B
        }
    );
    assert_eq!(
        fs::read_dir(&queue).unwrap().count(),
        0,
        "left in the queue"
    );
    let state = rig.ota.state().unwrap().unwrap();
    assert!(
        state
            .history
            .iter()
            .any(|entry| entry.event == "refused" && entry.detail.contains("a-fifo.esu")),
        "{:?}",
        state.history
    );
}

/// Every file under `folder` with its bytes, and every link with its
/// target, by path relative to `folder`.
fn snapshot(folder: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![folder.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(folder).unwrap().to_owned();
            let kind = fs::symlink_metadata(&path).unwrap().file_type();
            if kind.is_symlink() {
                let target = fs::read_link(&path).unwrap();
                found.insert(relative, target.as_os_str().as_bytes().to_vec());
            } else if kind.is_dir() {
                found.insert(relative, Vec::new());
                pending.push(path);
            } else {
                found.insert(relative, fs::read(&path).unwrap());
            }
        }
    }
    found
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn refused_as_untrusted(error: &OtaError, path: &Path, mode: u32) -> bool {
    matches!(error, OtaError::Untrusted { path: refused, mode: found, .. }
        if refused == path && *found == mode)
}

#[test]
fn issue_23_a_swapped_in_update_folder_its_group_or_others_may_write_is_refused_by_name() {
    let rig = TestBox::new();
    let root = rig.ota.root().to_owned();
    // The daemon's user owns the data partition: it can move root's folder
    // aside and make its own, open to anyone, where root will look.
    fs::rename(&root, rig.path("ota.root")).unwrap();
    fs::create_dir(&root).unwrap();
    let target = outside_file(&rig);
    symlink(&target, root.join("state.json")).unwrap();

    for mode in [0o777, 0o775, 0o757] {
        set_mode(&root, mode);

        let error = OtaDir::open_as_owner(&root).unwrap_err();

        assert!(refused_as_untrusted(&error, &root, mode), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("refusing {}: mode {mode:04o}", root.display()))
                && message.contains("group or others write it"),
            "{message}"
        );
    }
    assert_untouched(&target);
    assert_eq!(
        snapshot(&root).into_keys().collect::<Vec<_>>(),
        [PathBuf::from("state.json")],
        "root's tools wrote into the refused folder"
    );
}

#[test]
fn issue_23_a_folder_swapped_in_after_root_opened_its_own_does_not_redirect_an_install() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("release", "1.1.0");
    // What the planted links point at: a folder of root's that the swap
    // would have root write into, stage slots in, or empty.
    let victim = rig.path("victim");
    fs::create_dir_all(victim.join("a")).unwrap();
    fs::write(victim.join("a/precious.conf"), PRECIOUS).unwrap();
    fs::write(victim.join("state.json"), PRECIOUS).unwrap();
    let victim_before = snapshot(&victim);
    let root = rig.ota.root().to_owned();
    let pinned = rig.path("ota.root");

    // After root opened the folder: moved aside, and a folder of the
    // daemon's put in its place whose slots, state and link lead outside.
    fs::rename(&root, &pinned).unwrap();
    fs::create_dir(&root).unwrap();
    symlink(&victim, root.join("slots")).unwrap();
    symlink(victim.join("state.json"), root.join("state.json")).unwrap();
    symlink(victim.join("a"), root.join("current")).unwrap();
    let swapped_before = snapshot(&root);

    let outcome = rig.install(&package, None).unwrap();

    assert_eq!(
        outcome,
        Outcome::Committed {
            version: Version::new(1, 1, 0),
            slot: SlotName::B
        }
    );
    assert_eq!(snapshot(&victim), victim_before, "the victim changed");
    assert_eq!(
        snapshot(&root),
        swapped_before,
        "the swapped-in folder changed"
    );
    // The work landed in the folder root opened, under its new name.
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(pinned.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["committed"]["version"], "1.1.0");
    assert!(pinned.join("slots/b/slot.json").is_file());
    assert_eq!(
        fs::read_link(pinned.join("current")).unwrap(),
        Path::new("slots/b")
    );
    assert_eq!(
        rig.ota.state().unwrap().unwrap().committed.version,
        Version::new(1, 1, 0)
    );
}

#[test]
fn issue_23_errors_name_the_update_folder_by_its_path_not_the_descriptor_held_open() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("release", "1.1.0");
    // A leftover staging folder root may not remove: its group may write.
    let staging = rig.ota.root().join("slots/b.staging");
    fs::create_dir(&staging).unwrap();
    set_mode(&staging, 0o775);

    let error = rig.install(&package, None).unwrap_err();

    assert!(refused_as_untrusted(&error, &staging, 0o775), "{error:?}");
    assert!(
        error.to_string().contains(&staging.display().to_string()),
        "{error}"
    );
    assert!(!error.to_string().contains("/proc/"), "{error}");
    assert!(
        staging.is_dir(),
        "a folder that is not root's alone was removed"
    );
}

#[test]
fn issue_23_parts_of_the_update_folder_others_may_write_are_refused_not_used() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("release", "1.1.0");
    let root = rig.ota.root().to_owned();
    for (part, mode, restore) in [
        ("slots", 0o777, 0o755),
        ("state.json", 0o666, 0o644),
        ("slots/a", 0o775, 0o755),
        ("lock", 0o666, 0o644),
    ] {
        let path = root.join(part);
        set_mode(&path, mode);

        let error = rig.install(&package, None).unwrap_err();

        assert!(
            refused_as_untrusted(&error, &path, mode),
            "{part}: {error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with(&format!("refusing {}", path.display())),
            "{error}"
        );
        set_mode(&path, restore);
    }
    assert_eq!(rig.line.restarts, 0, "the line was restarted");
    rig.install(&package, None).unwrap();
}

#[test]
fn issue_23_an_update_folder_that_is_a_link_is_refused_and_not_entered() {
    let rig = TestBox::new();
    let root = rig.ota.root().to_owned();
    let elsewhere = rig.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    set_mode(&elsewhere, 0o755);
    fs::rename(&root, rig.path("ota.root")).unwrap();
    symlink(&elsewhere, &root).unwrap();

    let error = OtaDir::open_as_owner(&root).unwrap_err();

    assert!(refused_as(&error, "symbolic link"), "{error:?}");
    assert!(
        error.to_string().contains(&root.display().to_string()),
        "{error}"
    );
    assert!(is_link(&root));
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}
