//! Issue 23: what a box holds against signatures besides the keys its
//! image trusts. A signed package can revoke keys: the box records them as
//! soon as it verifies the package and refuses their signatures from then
//! on, through rollbacks, though the image still lists them. And key expiry
//! is judged at the box's trusted time, the signing time of the newest
//! package it switched to, when its clock is behind: a clock reset to 1970
//! does not bring an expired key back.

// Each test binary compiles the shared rig and uses part of it.
#[allow(dead_code)]
mod common;

use std::path::PathBuf;
use std::time::SystemTime;

use common::*;
use edgesort_ota::{OtaError, Outcome, SigningKeyFile, SlotName, Trust, VerifiedPackage};
use semver::Version;

/// The second key the rig's box trusts, besides [`RELEASE_KEY`].
const SECOND_KEY: &str = "release-second";

/// A box that trusts the rig's release key and a second one, both until
/// `expires` and 2099 respectively; the second key's signing file.
fn two_key_box(release_expires: &str) -> (TestBox, SigningKeyFile) {
    let mut rig = TestBox::new();
    let second = SigningKeyFile::generate(SECOND_KEY).unwrap();
    rig.keys.keys = vec![
        trusted(&rig.release_key, release_expires),
        trusted(&second, "2099-01-01T00:00:00Z"),
    ];
    (rig, second)
}

/// A package of `version` for this board made at `created`, revoking
/// `revokes`, signed by each of `keys`.
fn package(
    rig: &TestBox,
    name: &str,
    version: &str,
    created: SystemTime,
    revokes: &[&str],
    keys: &[&SigningKeyFile],
) -> PathBuf {
    let package = rig.package_made(name, version, &[BOARD], created, revokes);
    for key in keys {
        edgesort_ota::sign(&package, key).unwrap();
    }
    package
}

fn v(text: &str) -> Version {
    Version::parse(text).unwrap()
}

#[test]
fn issue_23_a_key_revoked_by_an_installed_package_is_refused_from_then_on() {
    let (mut rig, second) = two_key_box("2099-01-01T00:00:00Z");
    let revoking = package(
        &rig,
        "revoking",
        "1.1.0",
        SystemTime::now(),
        &[RELEASE_KEY],
        &[&second],
    );

    let outcome = rig.install(&revoking, None).unwrap();

    assert_eq!(
        outcome,
        Outcome::Committed {
            version: v("1.1.0"),
            slot: SlotName::B
        }
    );
    let state = rig.ota.state().unwrap().unwrap();
    assert!(
        state.revoked_keys.contains(RELEASE_KEY),
        "{:?}",
        state.revoked_keys
    );
    let entry = state
        .history
        .iter()
        .find(|entry| entry.event == "revoked")
        .expect("a revoked entry in the history");
    assert!(
        entry.detail.contains(RELEASE_KEY) && entry.detail.contains(SECOND_KEY),
        "{}",
        entry.detail
    );

    // The image still trusts the key; the box does not.
    let by_revoked = rig.signed_package("by-revoked", "1.2.0");
    let before = rig.running_slot();
    // What the install did is not the refusal's doing.
    rig.events.clear();
    rig.line.restarts = 0;
    rig.engine.prepared.clear();

    let error = rig.install(&by_revoked, None).unwrap_err();

    assert!(
        matches!(&error, OtaError::KeyRevoked { key } if key == RELEASE_KEY),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&format!(
            "signing key {RELEASE_KEY} was revoked on this box"
        )),
        "{error}"
    );
    assert!(!rig.was_reported_verified());
    rig.assert_running_slot_untouched(&before);
}

#[test]
fn issue_23_a_revocation_survives_a_rollback() {
    let (mut rig, second) = two_key_box("2099-01-01T00:00:00Z");
    let revoking = package(
        &rig,
        "revoking",
        "1.1.0",
        SystemTime::now(),
        &[RELEASE_KEY],
        &[&second],
    );
    rig.install(&revoking, None).unwrap();

    let outcome = rig.rollback("the new model misses springs").unwrap();

    assert_eq!(
        outcome,
        Outcome::Committed {
            version: v(FACTORY_VERSION),
            slot: SlotName::A
        }
    );
    let state = rig.ota.state().unwrap().unwrap();
    assert!(
        state.revoked_keys.contains(RELEASE_KEY),
        "{:?}",
        state.revoked_keys
    );
    let by_revoked = rig.signed_package("by-revoked", "1.2.0");
    let error = rig.install(&by_revoked, None).unwrap_err();
    assert!(
        matches!(&error, OtaError::KeyRevoked { key } if key == RELEASE_KEY),
        "{error:?}"
    );
}

#[test]
fn issue_23_a_revocation_holds_once_verified_even_when_the_package_is_refused() {
    let (mut rig, second) = two_key_box("2099-01-01T00:00:00Z");
    // Refused after its signature verified: it is for another board.
    let other_board = rig.package_made(
        "other-board",
        "1.1.0",
        &["agx-orin"],
        SystemTime::now(),
        &[RELEASE_KEY],
    );
    edgesort_ota::sign(&other_board, &second).unwrap();

    let error = rig.install(&other_board, None).unwrap_err();

    assert!(matches!(error, OtaError::WrongBoard { .. }), "{error:?}");
    let state = rig.ota.state().unwrap().unwrap();
    assert!(
        state.revoked_keys.contains(RELEASE_KEY),
        "{:?}",
        state.revoked_keys
    );
    assert_eq!(state.committed.version, v(FACTORY_VERSION));
    assert_eq!(rig.line.restarts, 0, "the line was restarted");
}

#[test]
fn issue_23_a_package_revoking_the_only_key_that_signed_it_is_refused() {
    let mut rig = TestBox::new();
    let unsigned = rig.package_made(
        "self-revoking",
        "1.1.0",
        &[BOARD],
        SystemTime::now(),
        &[RELEASE_KEY],
    );

    // `sign` refuses the key the package revokes...
    let error = edgesort_ota::sign(&unsigned, &rig.release_key).unwrap_err();
    assert!(
        matches!(&error, OtaError::RevokesItsSigner { key } if key == RELEASE_KEY),
        "{error:?}"
    );

    // ...and a box refuses a package signed with it anyway.
    let manifest = signed_manifest_bytes(&unsigned);
    let signed = rig.path("self-revoking.esu");
    let model = package_entry(&unsigned, &payload_entry_name(MODEL));
    let config = package_entry(&unsigned, &payload_entry_name(CONFIG));
    write_raw_package(
        &signed,
        &manifest,
        &signatures_over(&manifest, &rig.release_key),
        [config, model]
            .into_iter()
            .map(|entry| RawEntry {
                name: entry.name,
                body: RawBody::File(entry.bytes),
            })
            .collect(),
    );
    let before = rig.running_slot();

    let error = rig.install(&signed, None).unwrap_err();

    assert!(
        matches!(&error, OtaError::RevokesItsSigner { key } if key == RELEASE_KEY),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&format!(
            "the package revokes key {RELEASE_KEY}, so a signature by {RELEASE_KEY} does not count"
        )),
        "{error}"
    );
    rig.assert_running_slot_untouched(&before);
    assert!(
        rig.ota.state().unwrap().unwrap().revoked_keys.is_empty(),
        "a package that did not verify revoked a key"
    );
}

#[test]
fn issue_23_a_clock_reset_to_1970_does_not_bring_back_a_key_expired_at_the_trusted_time() {
    let (mut rig, second) = two_key_box("2080-01-01T00:00:00Z");
    // Made after the release key expired, signed by the second key.
    let later = package(
        &rig,
        "later",
        "1.1.0",
        at("2081-06-01T00:00:00Z"),
        &[],
        &[&second],
    );
    rig.install(&later, None).unwrap();
    let state = rig.ota.state().unwrap().unwrap();
    assert_eq!(state.trusted_time.as_deref(), Some("2081-06-01T00:00:00Z"));

    // Made while the release key was current; the box's RTC has reset.
    let old = package(
        &rig,
        "old",
        "1.2.0",
        at("2079-06-01T00:00:00Z"),
        &[],
        &[&rig.release_key],
    );
    let epoch = SystemTime::UNIX_EPOCH;
    let error = VerifiedPackage::open(&old, &rig.keys, &rig.ota.trust(epoch).unwrap()).unwrap_err();

    assert!(
        matches!(&error, OtaError::KeyExpiredAtTrustedTime { key, .. } if key == RELEASE_KEY),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "signing key {RELEASE_KEY} expired at 2080-01-01T00:00:00Z"
        )) && message.contains("before this box's trusted time 2081-06-01T00:00:00Z")
            && message.contains("its clock says 1970-01-01T00:00:00Z"),
        "{message}"
    );
    // By the clock alone, the same package would pass.
    VerifiedPackage::open(&old, &rig.keys, &Trust::clock(epoch)).unwrap();
}

#[test]
fn issue_23_the_trusted_time_only_rises() {
    let mut rig = TestBox::new();
    assert_eq!(rig.ota.state().unwrap().unwrap().trusted_time, None);
    let first = package(
        &rig,
        "first",
        "1.1.0",
        at("2031-06-01T00:00:00Z"),
        &[],
        &[&rig.release_key],
    );
    rig.install(&first, None).unwrap();
    let trusted = |rig: &TestBox| rig.ota.state().unwrap().unwrap().trusted_time;
    assert_eq!(trusted(&rig).as_deref(), Some("2031-06-01T00:00:00Z"));

    // A newer version packed earlier (a hotfix branch) leaves it.
    let earlier = package(
        &rig,
        "earlier",
        "1.2.0",
        at("2030-01-01T00:00:00Z"),
        &[],
        &[&rig.release_key],
    );
    rig.install(&earlier, None).unwrap();
    assert_eq!(trusted(&rig).as_deref(), Some("2031-06-01T00:00:00Z"));

    // A rollback leaves it too.
    rig.rollback("hotfix misbehaves").unwrap();
    assert_eq!(trusted(&rig).as_deref(), Some("2031-06-01T00:00:00Z"));

    let newest = package(
        &rig,
        "newest",
        "1.3.0",
        at("2032-02-01T00:00:00Z"),
        &[],
        &[&rig.release_key],
    );
    rig.install(&newest, None).unwrap();
    assert_eq!(trusted(&rig).as_deref(), Some("2032-02-01T00:00:00Z"));
}

#[test]
fn issue_23_a_package_made_after_its_key_expired_is_refused() {
    let (mut rig, _) = two_key_box("2080-01-01T00:00:00Z");
    let made_after = package(
        &rig,
        "made-after",
        "1.1.0",
        at("2080-02-01T00:00:00Z"),
        &[],
        &[&rig.release_key],
    );
    let before = rig.running_slot();

    let error = rig.install(&made_after, None).unwrap_err();

    assert!(
        matches!(&error, OtaError::SignedAfterExpiry { key, .. } if key == RELEASE_KEY),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(
            "expired at 2080-01-01T00:00:00Z, before the package was made at 2080-02-01T00:00:00Z"
        ),
        "{error}"
    );
    rig.assert_running_slot_untouched(&before);
}
