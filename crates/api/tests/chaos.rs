//! Issue 9, acceptance 2: the inference stage is killed three times while
//! the clip loops. The daemon restarts it each time, the outputs are low
//! throughout every outage, and every decision made reaches the database.

mod common;

use std::time::Duration;

use common::{Line, write_config};
use edgesort_daemon::StageName;
use edgesort_store::Store;

#[test]
fn three_inference_crashes_are_survived_with_outputs_low_and_no_decision_lost() {
    let dir = tempfile::tempdir().unwrap();
    let line = Line::start(&write_config(dir.path(), true));
    line.wait_for("frames", Duration::from_secs(120), |status| {
        status["frames"]["processed"].as_u64().unwrap() >= 5
    });
    for kill in 1..=3u64 {
        let before = line.get_json("/status");
        let processed = before["frames"]["processed"].as_u64().unwrap();
        line.daemon.inject_fault(StageName::Inference);
        let during = line.wait_for("the stage to go down", Duration::from_secs(30), |status| {
            status["outages"].as_array().unwrap().len() as u64 == kill
        });
        assert_ne!(during["state"], "running", "{during:#}");
        line.wait_for("the line to recover", Duration::from_secs(120), |status| {
            let outage = &status["outages"][kill as usize - 1];
            status["state"] == "running"
                && outage["up_ns"].is_u64()
                && status["frames"]["processed"].as_u64().unwrap() > processed + 3
        });
        // Let some parts be decided between the crashes.
        std::thread::sleep(Duration::from_secs(2));
    }
    let (last, pins, config) = line.stop();

    let inference = last
        .stages
        .iter()
        .find(|stage| stage.name == "inference")
        .unwrap();
    assert_eq!(inference.restarts, 3);
    assert!(
        inference
            .last_error
            .as_deref()
            .unwrap()
            .contains("fault injected"),
        "{inference:?}"
    );
    assert_eq!(last.outages.len(), 3);

    // Outputs low throughout every outage: no pin rises inside one, and a
    // pin that was high when the stage died fell within a millisecond.
    for outage in &last.outages {
        assert_eq!(outage.stage, "inference");
        let (down, up) = (outage.down_ns, outage.up_ns.expect("recovered"));
        assert!(up > down);
        eprintln!("outage: {} ms, {}", (up - down) / 1_000_000, outage.error);
        // The first restart waits 100 ms before it even builds a detector:
        // a shorter outage would mean a frame from before the crash was
        // taken for the line running again.
        assert!(up - down >= 100_000_000, "outage of {} ns", up - down);
        for (ejector, pin) in config.ejectors.iter().zip(&pins) {
            let edges = pin.edges();
            for edge in &edges {
                let at = edge.at.as_nanos();
                assert!(
                    !(edge.high && at > down && at < up),
                    "{} rose at {at} during the outage {down}..{up}",
                    ejector.lane
                );
            }
            let high_at_down = edges
                .iter()
                .take_while(|edge| edge.at.as_nanos() <= down)
                .last()
                .is_some_and(|edge| edge.high);
            if high_at_down {
                let fell = edges
                    .iter()
                    .find(|edge| !edge.high && edge.at.as_nanos() > down)
                    .expect("it fell");
                let latency_ns = fell.at.as_nanos() - down;
                eprintln!("{} fell {latency_ns} ns after the stage died", ejector.lane);
                assert!(latency_ns < 20_000_000, "{} fell late", ejector.lane);
            }
        }
    }

    // No decision lost: every part the line counted is in the database,
    // each pulse with its outcome.
    let store = Store::open(&config.store.path).unwrap();
    let run = store.last_run().unwrap().unwrap();
    let rows = store.parts_of_run(run).unwrap();
    assert!(last.counts.parts > 0, "{last:#?}");
    assert_eq!(rows.len() as u64, last.counts.parts);
    let planned = rows
        .iter()
        .filter(|(part, _)| part.planned_fire_ns.is_some())
        .count();
    let outcomes = rows.iter().filter(|(_, fire)| fire.is_some()).count();
    assert_eq!(planned, outcomes, "a planned pulse without its outcome");
}
