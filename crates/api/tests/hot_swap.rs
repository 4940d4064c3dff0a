//! Issue 24, acceptance 4: a detector swapped in under a running line
//! serves from the next frame; no pulse is lost or doubled, no track or
//! stage restarts, and the swap is in the audit log. CPU to CPU with
//! another model file here; edgesortd swaps the same way when provisioning
//! activates a new engine.

mod common;

use std::time::Duration;

use common::{Line, rises, write_config};
use edgesort_daemon::served_detector;
use edgesort_serve::Served;
use edgesort_store::Store;

#[test]
fn a_detector_swapped_under_the_running_line_loses_no_pulse_and_no_track() {
    let dir = tempfile::tempdir().unwrap();
    let line = Line::start(&write_config(dir.path(), false));
    let before = line.daemon.status().engine;

    // Another model file (the same weights under another name, as an
    // update's slot would hold them).
    let other = dir.path().join("other-model.onnx");
    std::fs::copy(&line.config.model.path, &other).unwrap();

    // A swap that cannot load changes nothing, and is audited.
    let missing = dir.path().join("missing.onnx");
    let (factory, engine) = served_detector(Served::cpu(&missing, 2, None));
    let refused = line
        .daemon
        .swap_detector(factory, engine, "test")
        .unwrap_err();
    assert!(refused.to_string().contains("missing.onnx"), "{refused}");
    assert_eq!(line.daemon.status().engine, before);

    // Mid-clip: frames processed and no part decided yet at the latest.
    line.wait_for("frames to flow", Duration::from_secs(120), |status| {
        status["frames"]["processed"].as_u64().unwrap() >= 3
    });
    let (factory, engine) = served_detector(Served::cpu(&other, 2, None));
    line.daemon.swap_detector(factory, engine, "test").unwrap();
    let at_swap = line.daemon.status().frames.processed;

    let status = line.wait_for("the run to finish", Duration::from_secs(300), |status| {
        status["state"] == "finished"
    });
    assert_eq!(
        status["engine"]["model"],
        other.display().to_string(),
        "the swapped-in detector serves: {status:#}"
    );
    let processed = status["frames"]["processed"].as_u64().unwrap();
    assert!(processed > at_swap, "frames after the swap: {status:#}");
    for stage in status["stages"].as_array().unwrap() {
        assert_eq!(stage["restarts"], 0, "no stage restarted: {status:#}");
    }
    let parts = status["counts"]["parts"].as_u64().unwrap();
    let ejections = status["counts"]["ejections"].as_u64().unwrap();
    assert!(parts >= 3, "the clip has six parts crossing: {status:#}");

    let (last, pins, config) = line.stop();
    // Each part decided once, each planned pulse reported once, and the
    // pins rose for the pulses that fired (merges aside), no more.
    let store = Store::open(&config.store.path).unwrap();
    let run = store.last_run().unwrap().unwrap();
    let rows = store.parts_of_run(run).unwrap();
    assert_eq!(rows.len() as u64, parts);
    let mut ids: Vec<u64> = rows.iter().map(|(part, _)| part.part_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, parts, "a part decided twice");
    let planned = rows
        .iter()
        .filter(|(part, _)| part.planned_fire_ns.is_some())
        .count();
    let reported = rows.iter().filter(|(_, fire)| fire.is_some()).count();
    assert_eq!(planned, reported, "every planned pulse has its one outcome");
    let fired = rows
        .iter()
        .filter(|(_, fire)| fire.as_ref().is_some_and(|fire| fire.outcome == "fired"))
        .count() as u64;
    assert_eq!(fired, ejections);
    let edges: u64 = pins.iter().map(|pin| rises(pin).len() as u64).sum();
    let activations: u64 = last.gpio.outputs.iter().map(|o| o.activations).sum();
    assert_eq!(edges, activations);
    assert!(
        edges <= fired && (fired == 0) == (edges == 0),
        "{edges} edges for {fired} pulses"
    );

    // The audit log has both attempts.
    let audit = store.audit_log(10).unwrap();
    let swaps: Vec<_> = audit
        .iter()
        .filter(|entry| entry.action == "engine.swap")
        .collect();
    assert_eq!(swaps.len(), 2, "{audit:?}");
    assert!(
        swaps
            .iter()
            .any(|entry| entry.detail.contains("\"result\":\"swapped\"")
                && entry.detail.contains("other-model.onnx")),
        "{swaps:?}"
    );
    assert!(
        swaps
            .iter()
            .any(|entry| entry.detail.contains("refused") && entry.detail.contains("missing.onnx")),
        "{swaps:?}"
    );
}
