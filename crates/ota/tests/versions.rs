//! Issue 23: versions are ordered by semver precedence, where build
//! metadata does not count, and a box keeps a version floor, the highest
//! version it ever committed, which only rises: no rollback, manual or
//! automatic, lowers it, and a package below it needs `--force`.

// Each test binary compiles the shared rig and uses part of it.
#[allow(dead_code)]
mod common;

use common::*;
use edgesort_ota::{OtaError, Outcome, SlotName};
use semver::Version;

fn v(text: &str) -> Version {
    Version::parse(text).unwrap()
}

#[test]
fn issue_23_a_package_of_equal_precedence_to_the_committed_one_is_refused_without_force() {
    let mut rig = TestBox::new();
    // Signed, and by `Version`'s own order newer than 1.0.0.
    let package = rig.signed_package("rebuilt", "1.0.0+z");
    let before = rig.running_slot();

    let error = rig.install(&package, None).unwrap_err();

    let OtaError::Refused(why) = &error else {
        panic!("expected Refused, got {error:?}");
    };
    assert!(
        why.contains("1.0.0+z") && why.contains(FACTORY_VERSION),
        "{why}"
    );
    assert!(
        why.contains("same precedence") && why.contains("--force"),
        "{why}"
    );
    rig.assert_running_slot_untouched(&before);

    let outcome = rig.install(&package, Some("rebuilt with debug logging"));

    assert_eq!(
        outcome.unwrap(),
        Outcome::Committed {
            version: v("1.0.0+z"),
            slot: SlotName::B
        }
    );
    let state = rig.ota.state().unwrap().unwrap();
    let forced = state
        .history
        .iter()
        .find(|entry| entry.event == "forced")
        .expect("a forced entry in the history");
    assert!(
        forced.detail.contains("rebuilt with debug logging"),
        "{}",
        forced.detail
    );
}

#[test]
fn issue_23_the_floor_survives_a_manual_rollback_and_refuses_what_is_below_it() {
    let mut rig = TestBox::new();
    let release = rig.signed_package("release", "1.1.0");
    rig.install(&release, None).unwrap();
    assert_eq!(rig.ota.state().unwrap().unwrap().floor, v("1.1.0"));

    let outcome = rig.rollback("misses springs on line 3").unwrap();

    assert_eq!(
        outcome,
        Outcome::Committed {
            version: v(FACTORY_VERSION),
            slot: SlotName::A
        }
    );
    let state = rig.ota.state().unwrap().unwrap();
    assert_eq!(state.committed.version, v(FACTORY_VERSION));
    assert_eq!(state.floor, v("1.1.0"), "the rollback lowered the floor");

    // Newer than what runs now, older than what ran.
    let between = rig.signed_package("between", "1.0.5");
    let before = rig.running_slot();
    // What the install and the rollback did is not the refusal's doing.
    rig.line.restarts = 0;
    rig.engine.prepared.clear();

    let error = rig.install(&between, None).unwrap_err();

    let OtaError::Refused(why) = &error else {
        panic!("expected Refused, got {error:?}");
    };
    assert!(
        why.contains("1.0.5") && why.contains("floor 1.1.0") && why.contains("--force"),
        "{why}"
    );
    rig.assert_running_slot_untouched(&before);

    rig.install(&between, Some("1.1.0 misses springs; 1.0.5 has the fix"))
        .unwrap();

    let state = rig.ota.state().unwrap().unwrap();
    assert_eq!(state.committed.version, v("1.0.5"));
    assert_eq!(
        state.floor,
        v("1.1.0"),
        "a forced install lowered the floor"
    );
}

#[test]
fn issue_23_an_automatic_rollback_neither_lowers_nor_raises_the_floor() {
    let mut rig = TestBox::new();
    let release = rig.signed_package("release", "1.1.0");
    rig.install(&release, None).unwrap();
    let broken = rig.signed_package("broken", "1.2.0");
    rig.line.broken = true;

    let outcome = rig.install(&broken, None).unwrap();

    assert!(
        matches!(&outcome, Outcome::RolledBack { version, .. } if *version == v("1.2.0")),
        "{outcome:?}"
    );
    let state = rig.ota.state().unwrap().unwrap();
    assert_eq!(state.committed.version, v("1.1.0"));
    assert_eq!(
        state.floor,
        v("1.1.0"),
        "a version that never committed moved the floor"
    );

    // Below the floor stays refused; the release that failed may come back.
    let older = rig.signed_package("older", "1.0.5");
    let error = rig.install(&older, None).unwrap_err();
    assert!(error.to_string().contains("not newer"), "{error}");
    rig.line.broken = false;
    assert_eq!(
        rig.install(&broken, None).unwrap(),
        Outcome::Committed {
            version: v("1.2.0"),
            slot: SlotName::A
        }
    );
    assert_eq!(rig.ota.state().unwrap().unwrap().floor, v("1.2.0"));
}

#[test]
fn a_state_written_before_floors_existed_reads_its_committed_version_as_the_floor() {
    let mut rig = TestBox::new();
    let release = rig.signed_package("release", "1.1.0");
    rig.install(&release, None).unwrap();
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rig.state_path()).unwrap()).unwrap();
    assert!(state["floor"].is_string(), "{state}");
    state.as_object_mut().unwrap().remove("floor");
    std::fs::write(rig.state_path(), serde_json::to_vec(&state).unwrap()).unwrap();

    let read = rig.ota.state().unwrap().unwrap();

    assert_eq!(read.floor, v("1.1.0"));
    assert_eq!(read.committed.version, v("1.1.0"));
}
