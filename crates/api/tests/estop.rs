//! Issue 22: the e-stop latch as a technician meets it through the running
//! daemon. A press shows `pressed`, a release `released_awaiting_reset`
//! (still degraded, still refusing pulses, with the `estop_latched` alarm),
//! and only a reset clears it: from the reset button, or through the API
//! from the box itself; another machine is refused unless the box allows it.
//! Every reset attempt is audited.

mod common;

use std::time::Duration;

use common::{Line, set_api, write_config};
use edgesort_actuate::{EjectorScheduler, SimulatedInput};
use edgesort_daemon::{EstopResetRefused, ResetLog, WireInputs};
use edgesort_store::Store;
use edgesort_types::{Clock, MonotonicClock};
use serde_json::Value;

fn alarms(status: &Value) -> Vec<String> {
    status["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alarm| alarm["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_estop_latch_shows_its_state_and_only_a_reset_rearms() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), true);
    // Pulses by hand are part of what the latch must hold back.
    set_api(&config, "allow_test_pulse = true");
    // A reset button on header pin 16, as an integrator wires one.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "debounce_ms = 20\n",
        "debounce_ms = 20\n\n[gpio.reset]\npin = 16\n",
    );
    assert!(text.contains("[gpio.reset]"), "the example config changed");
    std::fs::write(&config, text).unwrap();

    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(MonotonicClock);
    let estop = SimulatedInput::new(clock.clone());
    let button = SimulatedInput::new(clock);
    let wire: WireInputs = {
        let (estop, button) = (estop.clone(), button.clone());
        Box::new(move |scheduler: &mut EjectorScheduler, log: ResetLog| {
            scheduler.watch_estop(estop);
            scheduler.watch_reset(button, move |result| log("reset button (pin 16)", &result));
        })
    };
    let line = Line::start_wired(&config, Some(wire));
    let status = line.wait_for("the line to run", Duration::from_secs(120), |status| {
        status["state"] == "running"
    });
    assert_eq!(status["gpio"]["estop"]["state"], "clear");
    assert_eq!(status["gpio"]["estop"]["wired"], true);
    assert_eq!(status["gpio"]["estop"]["reset_input"], 16);

    // Pressed.
    estop.set(true);
    let status = line.wait_for("the press", Duration::from_secs(10), |status| {
        status["gpio"]["estop"]["state"] == "pressed"
    });
    assert_eq!(status["state"], "degraded");
    assert!(
        alarms(&status).contains(&"estop_latched".into()),
        "{status:#}"
    );
    let response_ms = status["gpio"]["estop"]["last_response_ms"]
        .as_f64()
        .unwrap();
    println!("e-stop press to outputs low (simulated pins): {response_ms:.3} ms");
    let (_, metrics) = line.call("GET", "/metrics", None);
    assert!(
        metrics.contains("edgesort_estop_state{state=\"pressed\"} 1\n"),
        "{metrics}"
    );
    let (code, body) = line.call("POST", "/estop/reset", None);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("still pressed"), "{body}");
    let lane = &line.config.ejectors[0].lane;
    let (code, body) = line.call("POST", &format!("/ejectors/{lane}/test?force=true"), None);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("e-stop is latched (pressed)"), "{body}");

    // Released: still latched, still degraded, still no pulses.
    estop.set(false);
    let status = line.wait_for("the release", Duration::from_secs(10), |status| {
        status["gpio"]["estop"]["state"] == "released_awaiting_reset"
    });
    assert_eq!(status["state"], "degraded");
    assert_eq!(status["healthy"], false);
    let latched = status["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|alarm| alarm["kind"] == "estop_latched")
        .unwrap_or_else(|| panic!("no estop_latched alarm: {status:#}"));
    assert!(
        latched["message"]
            .as_str()
            .unwrap()
            .contains("awaiting reset"),
        "{latched}"
    );
    let (code, body) = line.call("POST", &format!("/ejectors/{lane}/test?force=true"), None);
    assert_eq!(code, 409, "{body}");

    // Another machine may not reset: the box does not allow remote resets.
    assert_eq!(
        line.daemon.reset_estop("api 10.0.0.9:4711", true),
        Err(EstopResetRefused::RemoteResetOff)
    );
    assert_eq!(
        line.get_json("/status")["gpio"]["estop"]["state"],
        "released_awaiting_reset"
    );

    // The reset button re-arms once the release has settled (20 ms).
    std::thread::sleep(Duration::from_millis(30));
    button.set(true);
    button.set(false);
    let status = line.wait_for("the reset", Duration::from_secs(10), |status| {
        status["gpio"]["estop"]["state"] == "clear"
    });
    assert!(
        !alarms(&status).contains(&"estop_latched".into()),
        "{status:#}"
    );
    line.wait_for("the line to run again", Duration::from_secs(30), |status| {
        status["state"] == "running"
    });

    // Pressed and released again; this time the API from the box resets.
    estop.set(true);
    estop.set(false);
    line.wait_for("the second release", Duration::from_secs(10), |status| {
        status["gpio"]["estop"]["state"] == "released_awaiting_reset"
            && status["gpio"]["estop"]["trips"] == 2
    });
    std::thread::sleep(Duration::from_millis(30));
    let (code, body) = line.call("POST", "/estop/reset", None);
    assert_eq!((code, body.as_str()), (200, "{\"result\":\"rearmed\"}"));
    assert_eq!(line.get_json("/status")["gpio"]["estop"]["state"], "clear");

    // Every attempt is in the audit log, with who made it.
    let (_, _, config) = line.stop();
    let store = Store::open(&config.store.path).unwrap();
    let resets: Vec<(String, String)> = store
        .audit_log(50)
        .unwrap()
        .into_iter()
        .rev()
        .filter(|entry| entry.action == "estop.reset")
        .map(|entry| (entry.actor, entry.detail))
        .collect();
    let results: Vec<(&str, &str)> = resets
        .iter()
        .map(|(actor, detail)| {
            let result = if detail.contains("rearmed") {
                "rearmed"
            } else if detail.contains("still pressed") {
                "still pressed"
            } else if detail.contains("remote resets are off") {
                "remote off"
            } else {
                detail.as_str()
            };
            (actor.split(' ').next().unwrap(), result)
        })
        .collect();
    assert_eq!(
        results,
        [
            ("api", "still pressed"),
            ("api", "remote off"),
            ("reset", "rearmed"),
            ("api", "rearmed"),
        ],
        "{resets:?}"
    );
}
