//! Every bad package is refused with an error that names the problem, and
//! the box keeps running its committed slot exactly as it was: same
//! state.json, same `current`, a slot that still verifies, no half-staged
//! slot left on the data partition, no restart of the line and no engine
//! built.

mod common;

use common::*;
use edgesort_ota::{
    Event, MANIFEST_ENTRY, Manifest, OtaError, Outcome, SIGNATURES_ENTRY, SigningKeyFile, SlotName,
    TrustedKeys,
};
use semver::Version;

#[test]
fn a_tampered_payload_is_refused_and_the_running_slot_is_untouched() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("tampered", "1.1.0");
    let model = package_entry(&package, &payload_entry_name(MODEL));
    let middle = model.data_start + model.bytes.len() as u64 / 2;
    patch_file(&package, middle, |bytes| {
        for byte in &mut bytes[..16] {
            *byte ^= 0xA5;
        }
    });
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    match &error {
        OtaError::PayloadMismatch { path, reason } => {
            assert_eq!(path, MODEL);
            assert!(reason.contains("sha256"), "{reason}");
        }
        other => panic!("expected PayloadMismatch, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(MODEL) && message.contains("tampered"),
        "{message}"
    );
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn a_manifest_edited_after_signing_is_refused_as_a_bad_signature() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("edited", "1.1.0");
    // Same length, so the tar headers still hold: only the signature can
    // tell that the version was bumped.
    let manifest = package_entry(&package, MANIFEST_ENTRY);
    let at = find(&manifest.bytes, b"\"version\": \"1.1.0\"") + "\"version\": \"1.".len();
    patch_file(&package, manifest.data_start + at as u64, |bytes| {
        bytes[0] = b'9'
    });
    assert!(
        String::from_utf8(signed_manifest_bytes(&package))
            .unwrap()
            .contains("\"version\": \"1.9.0\"")
    );
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    assert!(
        matches!(&error, OtaError::BadSignature { key } if key == RELEASE_KEY),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(RELEASE_KEY) && message.contains("does not match"),
        "{message}"
    );
    assert!(!rig.was_reported_verified());
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn altered_signature_bytes_are_refused_as_a_bad_signature() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("resigned", "1.1.0");
    let signatures = package_entry(&package, SIGNATURES_ENTRY);
    let at = find(&signatures.bytes, b"\"signature\": \"") + "\"signature\": \"".len();
    patch_file(&package, signatures.data_start + at as u64, |bytes| {
        bytes[0] = if bytes[0] == b'0' { b'1' } else { b'0' };
    });
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    assert!(
        matches!(&error, OtaError::BadSignature { key } if key == RELEASE_KEY),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("does not match the manifest"),
        "{error}"
    );
    assert!(!rig.was_reported_verified());
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn a_package_signed_by_an_expired_key_is_refused() {
    let mut rig = TestBox::new();
    rig.keys = TrustedKeys {
        keys: vec![trusted(&rig.release_key, "2020-01-01T00:00:00Z")],
    };
    // Made while the key was current; installed after it expired.
    let package = rig.package_made(
        "expired",
        "1.1.0",
        &[BOARD],
        at("2019-06-01T00:00:00Z"),
        &[],
    );
    edgesort_ota::sign(&package, &rig.release_key).unwrap();
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    assert!(
        matches!(&error, OtaError::KeyExpired { key, expires }
            if key == RELEASE_KEY && expires == "2020-01-01T00:00:00Z"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("expired at 2020-01-01"), "{message}");
    assert!(!rig.was_reported_verified());
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn a_package_signed_by_an_unknown_key_is_refused() {
    let mut rig = TestBox::new();
    let package = rig.unsigned_package("stranger", "1.1.0", &[BOARD]);
    edgesort_ota::sign(&package, &SigningKeyFile::generate("stranger").unwrap()).unwrap();
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    assert!(
        matches!(&error, OtaError::UnknownKey { key } if key == "stranger"),
        "{error:?}"
    );
    assert!(error.to_string().contains("does not trust"), "{error}");
    assert!(!rig.was_reported_verified());
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn an_unsigned_package_is_refused() {
    let mut rig = TestBox::new();
    let package = rig.unsigned_package("unsigned", "1.1.0", &[BOARD]);
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    assert!(matches!(error, OtaError::Unsigned), "{error:?}");
    assert!(error.to_string().contains("not signed"), "{error}");
    assert!(!rig.was_reported_verified());
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn a_package_cut_inside_its_head_is_refused_as_truncated() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("whole", "1.1.0");
    let manifest = package_entry(&package, MANIFEST_ENTRY);
    let signatures = package_entry(&package, SIGNATURES_ENTRY);
    let before = rig.running_slot();

    for (cut, length) in [
        ("inside the manifest's header", 300),
        (
            "inside the manifest",
            manifest.data_start + manifest.bytes.len() as u64 / 2,
        ),
        (
            "inside the signatures",
            signatures.data_start + signatures.bytes.len() as u64 / 2,
        ),
    ] {
        let short = rig.path("cut-head.tar");
        cut_file(&package, &short, length);

        let error = rig.install(&short, None).unwrap_err();

        assert!(
            matches!(error, OtaError::Truncated(_)),
            "cut {cut} at byte {length}: {error:?}"
        );
        assert!(error.to_string().contains("truncated"), "{error}");
        assert!(!rig.was_reported_verified(), "cut {cut}");
        rig.assert_running_slot_untouched(&before);
    }
}

#[test]
fn a_package_cut_inside_a_payload_is_refused_as_truncated() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("whole", "1.1.0");
    let model = package_entry(&package, &payload_entry_name(MODEL));
    let size = model.bytes.len() as u64;
    let before = rig.running_slot();

    for length in [
        model.data_start + 1,
        model.data_start + size / 2,
        model.data_start + size - 1,
    ] {
        let short = rig.path("cut-payload.tar");
        cut_file(&package, &short, length);

        let error = rig.install(&short, None).unwrap_err();

        assert!(
            matches!(error, OtaError::Truncated(_)),
            "cut at byte {length}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("truncated") && message.contains(MODEL),
            "{message}"
        );
        rig.assert_running_slot_untouched(&before);
    }
}

#[test]
fn a_package_cut_before_its_last_payload_is_refused_as_truncated() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("whole", "1.1.0");
    let last = package_entries(&package).pop().unwrap();
    assert_eq!(last.name, payload_entry_name(MODEL), "pack sorts by path");
    let before = rig.running_slot();

    // At the header the archive simply ends; inside it a block is short.
    for length in [last.header_start, last.header_start + 100] {
        let short = rig.path("cut-before-last.tar");
        cut_file(&package, &short, length);

        let error = rig.install(&short, None).unwrap_err();

        assert!(
            matches!(error, OtaError::Truncated(_)),
            "cut at byte {length}: {error:?}"
        );
        assert!(error.to_string().contains("truncated"), "{error}");
        rig.assert_running_slot_untouched(&before);
    }
}

#[test]
fn a_manifest_path_climbing_out_with_dotdot_is_refused() {
    assert_path_outside_slot_is_refused(
        "model/../../../etc/cron.d/edgesort",
        "climbs out with `..`",
    );
}

#[test]
fn a_manifest_with_an_absolute_path_is_refused() {
    assert_path_outside_slot_is_refused("/etc/cron.d/edgesort", "absolute");
}

/// The manifest is signed by a trusted key, so only the path rule stands
/// between the package and a file outside the slot.
fn assert_path_outside_slot_is_refused(path: &str, why_contains: &str) {
    let mut rig = TestBox::new();
    let model = pseudo_random_bytes(7, 2048);
    let manifest = manifest_with_model_at(path, &model).to_bytes();
    let package = rig.path("outside.tar");
    write_raw_package(
        &package,
        &manifest,
        &signatures_over(&manifest, &rig.release_key),
        vec![RawEntry {
            name: payload_entry_name(path),
            body: RawBody::File(model),
        }],
    );
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    match &error {
        OtaError::PathOutsideSlot { path: refused, why } => {
            assert_eq!(refused, path);
            assert!(why.contains(why_contains), "{why}");
        }
        other => panic!("expected PathOutsideSlot, got {other:?}"),
    }
    assert!(error.to_string().contains(&format!("{path:?}")), "{error}");
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn a_symlink_entry_named_like_a_payload_is_refused() {
    let mut rig = TestBox::new();
    // The manifest is the genuine signed one; only the tar entry for the
    // model is a link, which extraction could follow out of the slot.
    let genuine = rig.signed_package("genuine", "1.1.0");
    let manifest = signed_manifest_bytes(&genuine);
    let config = package_entry(&genuine, &payload_entry_name(CONFIG));
    let package = rig.path("symlink.tar");
    write_raw_package(
        &package,
        &manifest,
        &signatures_over(&manifest, &rig.release_key),
        vec![
            RawEntry {
                name: config.name,
                body: RawBody::File(config.bytes),
            },
            RawEntry {
                name: payload_entry_name(MODEL),
                body: RawBody::Symlink("/etc/passwd".into()),
            },
        ],
    );
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    match &error {
        OtaError::UnexpectedEntry(what) => {
            assert!(what.contains(&payload_entry_name(MODEL)), "{what}");
            assert!(what.contains("symbolic link"), "{what}");
        }
        other => panic!("expected UnexpectedEntry, got {other:?}"),
    }
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn a_payload_size_that_differs_from_the_tar_entry_is_refused() {
    let mut rig = TestBox::new();
    let genuine = rig.signed_package("genuine", "1.1.0");
    let mut manifest = Manifest::parse(&signed_manifest_bytes(&genuine)).unwrap();
    let model = package_entry(&genuine, &payload_entry_name(MODEL));
    let real_size = model.bytes.len() as u64;
    let payload = manifest
        .payloads
        .iter_mut()
        .find(|p| p.path == MODEL)
        .unwrap();
    payload.size = real_size + 512;
    let manifest = manifest.to_bytes();
    let config = package_entry(&genuine, &payload_entry_name(CONFIG));
    let package = rig.path("size.tar");
    write_raw_package(
        &package,
        &manifest,
        &signatures_over(&manifest, &rig.release_key),
        vec![
            RawEntry {
                name: config.name,
                body: RawBody::File(config.bytes),
            },
            RawEntry {
                name: model.name,
                body: RawBody::File(model.bytes),
            },
        ],
    );
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    match &error {
        OtaError::PayloadMismatch { path, reason } => {
            assert_eq!(path, MODEL);
            let expected = format!(
                "{real_size} bytes in the package, {} in the manifest",
                real_size + 512
            );
            assert!(reason.contains(&expected), "{reason}");
        }
        other => panic!("expected PayloadMismatch, got {other:?}"),
    }
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn a_package_for_another_board_is_refused() {
    let mut rig = TestBox::new();
    let package = rig.unsigned_package("agx", "1.1.0", &["agx-orin", "orin-nx"]);
    edgesort_ota::sign(&package, &rig.release_key).unwrap();
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    assert!(
        matches!(&error, OtaError::WrongBoard { board, boards }
            if board == BOARD && boards == "agx-orin, orin-nx"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("agx-orin") && message.contains(BOARD),
        "{message}"
    );
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn a_disk_too_full_to_stage_is_refused() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("big", "1.1.0");
    let payload_bytes = Manifest::parse(&signed_manifest_bytes(&package))
        .unwrap()
        .payload_bytes();
    // The reserve is set above the partition's real free space, so the
    // installer's own statvfs check is what refuses. The 1 GiB margin keeps
    // it refused if other processes free space meanwhile.
    let free = rig.ota.free_bytes().unwrap();
    rig.reserve_bytes = free + (1 << 30);
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    match &error {
        OtaError::DiskFull { needed, free } => {
            assert_eq!(*needed, payload_bytes + rig.reserve_bytes);
            assert!(needed > free);
        }
        other => panic!("expected DiskFull, got {other:?}"),
    }
    assert!(error.to_string().contains("bytes free"), "{error}");
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn a_downgrade_without_force_is_refused() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("older", "0.9.0");
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    match &error {
        OtaError::Refused(why) => {
            assert!(
                why.contains("0.9.0") && why.contains(FACTORY_VERSION),
                "{why}"
            );
            assert!(
                why.contains("not newer") && why.contains("--force"),
                "{why}"
            );
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn a_forced_downgrade_installs_and_the_history_records_the_reason() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("older", "0.9.0");
    let reason = "1.0.0 rejects good parts on line 3";

    let outcome = rig.install(&package, Some(reason)).unwrap();

    let older = Version::new(0, 9, 0);
    assert_eq!(
        outcome,
        Outcome::Committed {
            version: older.clone(),
            slot: SlotName::B
        }
    );
    let state = rig.ota.state().unwrap().unwrap();
    assert_eq!(state.committed.version, older);
    let forced = state
        .history
        .iter()
        .find(|entry| entry.event == "forced")
        .expect("a forced entry in the history");
    assert_eq!(forced.version, older);
    assert!(forced.detail.contains(reason), "{}", forced.detail);
    assert!(forced.detail.contains(FACTORY_VERSION), "{}", forced.detail);
    assert_eq!(state.history.last().unwrap().event, "committed");
    assert_eq!(rig.line.restarts, 1);
}

#[test]
fn a_valid_package_installs_commits_and_rolls_back() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("release", "1.1.0");
    let manifest_bytes = signed_manifest_bytes(&package);
    let new_model = package_entry(&package, &payload_entry_name(MODEL)).bytes;
    let factory = rig.running_slot();

    let outcome = rig.install(&package, None).unwrap();

    let new_version = Version::new(1, 1, 0);
    assert_eq!(
        outcome,
        Outcome::Committed {
            version: new_version.clone(),
            slot: SlotName::B
        }
    );
    assert_eq!(rig.ota.current_slot(), Some(SlotName::B));
    let state = rig.ota.state().unwrap().unwrap();
    assert_eq!(state.committed.slot, SlotName::B);
    assert_eq!(state.committed.version, new_version);
    assert_eq!(state.committed.package, sha256_hex(&manifest_bytes));
    assert!(state.trial.is_none());
    let staged = rig.ota.verify_slot(SlotName::B).unwrap();
    assert_eq!(staged.files[MODEL].sha256, sha256_hex(&new_model));
    assert_eq!(rig.line.restarts, 1);
    assert_eq!(rig.engine.prepared, vec![rig.ota.slot_dir(SlotName::B)]);
    for expected in [
        Event::Verified {
            version: new_version.clone(),
            signer: RELEASE_KEY.into(),
        },
        Event::Switched(SlotName::B),
        Event::Restarted,
        Event::Committed(new_version.clone()),
    ] {
        assert!(
            rig.events.contains(&expected),
            "no {expected:?} in {:?}",
            rig.events
        );
    }
    assert_eq!(
        rig.ota.verify_slot(SlotName::A).unwrap(),
        factory.manifest,
        "the previous slot is kept for a rollback"
    );

    let outcome = rig
        .rollback("operator asked for the previous model")
        .unwrap();

    let factory_version = Version::parse(FACTORY_VERSION).unwrap();
    assert_eq!(
        outcome,
        Outcome::Committed {
            version: factory_version.clone(),
            slot: SlotName::A
        }
    );
    assert_eq!(rig.ota.current_slot(), Some(SlotName::A));
    let state = rig.ota.state().unwrap().unwrap();
    assert_eq!(state.committed.slot, SlotName::A);
    assert_eq!(state.committed.version, factory_version);
    assert!(
        state.history.iter().any(|entry| entry.event == "forced"
            && entry
                .detail
                .contains("operator asked for the previous model")),
        "{:?}",
        state.history
    );
    assert_eq!(rig.line.restarts, 2);
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(needle)))
}

#[test]
fn a_refused_package_keeps_the_previous_slot_for_a_rollback() {
    let mut rig = TestBox::new();
    let good = rig.signed_package("release", "1.1.0");
    rig.install(&good, None).unwrap();
    let previous = rig.ota.verify_slot(SlotName::A).unwrap();
    // 1.2.0 would be staged into slot a, the way back to 1.0.0.
    let bad = rig.signed_package("tampered", "1.2.0");
    let model = package_entry(&bad, &payload_entry_name(MODEL));
    patch_file(&bad, model.data_start + 1, |bytes| bytes[0] ^= 0xFF);

    let error = rig.install(&bad, None).unwrap_err();

    assert!(
        matches!(error, OtaError::PayloadMismatch { .. }),
        "{error:?}"
    );
    assert_eq!(rig.ota.verify_slot(SlotName::A).unwrap(), previous);
    let outcome = rig.rollback("the new model misses springs").unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Committed {
                slot: SlotName::A,
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[test]
fn a_forced_downgrade_refused_later_leaves_no_trace_in_the_history() {
    let mut rig = TestBox::new();
    let package = rig.signed_package("older", "0.9.0");
    rig.reserve_bytes = rig.ota.free_bytes().unwrap() + (1 << 30);
    let before = rig.running_slot();

    let error = rig.install(&package, Some("testing")).unwrap_err();

    assert!(matches!(error, OtaError::DiskFull { .. }), "{error:?}");
    rig.assert_running_slot_untouched(&before);
}

/// A package of new configuration defaults and a base-OS image.
fn os_package(rig: &TestBox, version: Version) -> std::path::PathBuf {
    let source = rig.path(&format!("os-{version}.source"));
    std::fs::create_dir_all(source.join("os")).unwrap();
    std::fs::create_dir_all(source.join("config")).unwrap();
    std::fs::write(source.join("os/jetpack-6.2.swu"), b"an SWUpdate image").unwrap();
    std::fs::write(source.join("config/defaults.toml"), b"# 1.1.0\n").unwrap();
    let out = rig.path(&format!("os-{version}.tar"));
    edgesort_ota::pack(
        &source,
        edgesort_ota::PackInfo {
            version,
            min_version: Version::new(0, 1, 0),
            boards: vec![BOARD.into()],
            notes: String::new(),
            created: std::time::SystemTime::now(),
            revokes: Vec::new(),
        },
        &out,
    )
    .unwrap();
    edgesort_ota::sign(&out, &rig.release_key).unwrap();
    out
}

#[test]
fn an_os_payload_without_an_os_updater_is_refused() {
    let mut rig = TestBox::new();
    let package = os_package(&rig, Version::new(1, 1, 0));
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    assert!(
        error.to_string().contains("no OS updater configured"),
        "{error}"
    );
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn an_os_payload_is_handed_to_the_os_updater_before_the_switch() {
    let mut rig = TestBox::new();
    let package = os_package(&rig, Version::new(1, 1, 0));
    let handed = rig.path("handed-to-swupdate");
    // Stands in for `swupdate -i`: keeps what it was given.
    rig.os_update_command = vec![
        "sh".into(),
        "-c".into(),
        format!("cp \"$0\" {}", handed.display()),
    ];

    let outcome = rig.install(&package, None).unwrap();

    assert!(matches!(outcome, Outcome::Committed { .. }), "{outcome:?}");
    assert_eq!(std::fs::read(&handed).unwrap(), b"an SWUpdate image");
    let handed_at = rig
        .events
        .iter()
        .position(|event| matches!(event, Event::OsHandedOff(path) if path == "os/jetpack-6.2.swu"))
        .expect("handed off");
    let switched_at = rig
        .events
        .iter()
        .position(|event| matches!(event, Event::Switched(_)))
        .unwrap();
    assert!(handed_at < switched_at);
}

#[test]
fn a_rollback_goes_only_to_a_version_that_ran_committed() {
    let mut rig = TestBox::new();
    let good = rig.signed_package("release", "1.1.0");
    rig.install(&good, None).unwrap();
    // 1.2.0 is staged into slot a (replacing 1.0.0), then the OS updater
    // refuses its OS payload: 1.2.0 never runs.
    rig.os_update_command = vec!["false".into()];
    let refused = os_package(&rig, Version::new(1, 2, 0));
    let error = rig.install(&refused, None).unwrap_err();
    assert!(
        error.to_string().contains("OS updater false refused"),
        "{error}"
    );
    assert_eq!(
        rig.ota.slot_manifest(SlotName::A).unwrap().version,
        Version::new(1, 2, 0)
    );

    let error = rig.rollback("back to the last one").unwrap_err();

    assert!(
        error
            .to_string()
            .contains("1.2.0, which was never committed"),
        "{error}"
    );
    assert_eq!(rig.ota.current_slot(), Some(SlotName::B));
}

#[test]
fn an_install_after_a_dead_installers_trial_first_restarts_the_line_on_the_committed_slot() {
    let mut rig = TestBox::new();
    let first = rig.signed_package("release", "1.1.0");
    rig.install(&first, None).unwrap();
    let restarts = rig.line.restarts;
    // As a killed installer leaves it: slot a on trial, `current` on it.
    {
        let lock = rig.ota.lock().unwrap();
        let mut state = rig.ota.state().unwrap().unwrap();
        state.trial = Some(edgesort_ota::Trial {
            installed: state.previous.clone().unwrap(),
            switched_at: "2026-11-29T00:00:00Z".into(),
            installer_pid: 1,
        });
        rig.ota.write_state(&lock, &state).unwrap();
        rig.ota.point_current(&lock, SlotName::A).unwrap();
    }
    let next = rig.signed_package("next", "1.2.0");

    rig.install(&next, None).unwrap();

    // One restart onto slot b after the recovery, one onto 1.2.0.
    assert_eq!(rig.line.restarts, restarts + 2);
    let state = rig.ota.state().unwrap().unwrap();
    assert!(
        state
            .history
            .iter()
            .any(|entry| entry.event == "rolled_back" && entry.detail.contains("pid 1")),
        "{:?}",
        state.history
    );
    assert_eq!(state.committed.version, Version::new(1, 2, 0));
}
