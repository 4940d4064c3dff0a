//! Issue 9, acceptance 4: the token guards every call, configuration
//! changes are validated, audited and applied live where safe, and a bad
//! one leaves everything as it was. Also the manual test pulse.

mod common;

use std::time::Duration;

use common::{Line, call, rises, set_api, write_config};
use edgesort_store::Store;

#[test]
fn calls_without_the_right_token_get_401() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    // Every refusal here is from one address: more than the default lock-out allows.
    set_api(&config, "auth_failures_per_minute = 100");
    let line = Line::start(&config);
    for (method, path) in [
        ("GET", "/health"),
        ("GET", "/status"),
        ("GET", "/metrics"),
        ("GET", "/events?since=0"),
        ("GET", "/config"),
        ("PUT", "/config"),
        ("GET", "/snapshot.jpg"),
        ("POST", "/ejectors/bolts/test?force=true"),
        ("POST", "/ota/packages"),
    ] {
        for token in [None, Some("wrong-token-0123456789"), Some("")] {
            let (code, body) = call(&line.base, method, path, token, Some(""));
            assert_eq!(code, 401, "{method} {path} with {token:?}: {body}");
        }
    }
    // The page shell itself carries no data and loads without the token.
    let (code, page) = call(&line.base, "GET", "/", None, None);
    assert_eq!(code, 200);
    assert!(page.contains("<html"), "{page}");
    // No pulse went out for the refused calls.
    let (_, pins, _) = line.stop();
    assert!(pins.iter().all(|pin| rises(pin).is_empty()));
}

#[test]
fn config_changes_are_validated_audited_and_applied_live_where_safe() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), false);
    let line = Line::start(&config_path);
    let (code, original) = line.call("GET", "/config", None);
    assert_eq!(code, 200);
    assert_eq!(original, std::fs::read_to_string(&config_path).unwrap());

    // Invalid: 400, the field named, nothing changed.
    let invalid = original.replace("confidence_floor = 0.5", "confidence_floor = 7.0");
    let (code, body) = line.call("PUT", "/config", Some(&invalid));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("rules.confidence_floor"), "{body}");
    let broken = original.replace("[rules]", "[rules");
    let (code, body) = line.call("PUT", "/config", Some(&broken));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("rules"), "{body}");
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), original);
    assert_eq!(line.call("GET", "/config", None).1, original);

    // Rules apply live.
    let stricter = original.replace("confidence_floor = 0.5", "confidence_floor = 0.6");
    let (code, body) = line.call("PUT", "/config", Some(&stricter));
    assert_eq!(code, 200, "{body}");
    let applied: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(applied["live"], serde_json::json!(["rules"]));
    assert_eq!(applied["on_restart"], serde_json::json!([]));
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), stricter);

    // A tracking change waits for a restart.
    let wider = stricter.replace("gate_px = 24.0", "gate_px = 20.0");
    assert_ne!(wider, stricter);
    let (code, body) = line.call("PUT", "/config", Some(&wider));
    assert_eq!(code, 200, "{body}");
    let applied: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(applied["on_restart"], serde_json::json!(["tracking"]));
    let (_, pins, config) = line.stop();

    // Both accepted changes are in the audit log, newest first, with who,
    // field by field.
    let store = Store::open(&config.store.path).unwrap();
    let audit = store.audit_log(10).unwrap();
    let puts: Vec<_> = audit
        .iter()
        .filter(|entry| entry.action == "config.put")
        .collect();
    assert_eq!(puts.len(), 2, "{audit:?}");
    let changes = |detail: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(detail).unwrap()["changes"].clone()
    };
    assert_eq!(
        changes(&puts[0].detail),
        serde_json::json!([{"field": "tracking.gate_px", "before": 24.0, "after": 20.0}]),
        "{audit:?}"
    );
    let floor = changes(&puts[1].detail);
    assert_eq!(floor.as_array().map(Vec::len), Some(1), "{audit:?}");
    assert_eq!(floor[0]["field"], "rules.confidence_floor", "{audit:?}");
    assert_eq!(floor[0]["before"], 0.5, "{audit:?}");
    assert!(
        puts.iter()
            .all(|entry| entry.actor.starts_with("api 127.0.0.1:"))
    );
    drop(pins);
}

/// Issue 23: `PUT /config` edits only rules, ejectors, tracking, safety and
/// store retention. Everything else (what root acts on among it) is
/// refused with 403, named, audited, and the file is left as it was.
#[test]
fn a_config_put_outside_the_editable_sections_is_refused_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), false);
    let line = Line::start(&config_path);
    let (_, original) = line.call("GET", "/config", None);
    let attempts = [
        (
            "ota",
            format!(
                "{original}\n[ota]\nrestart_command = [\"/bin/sh\", \"-c\", \"id > /tmp/owned\"]\n"
            ),
        ),
        ("camera", original.replace("fps = 60.0", "fps = 30.0")),
        (
            "api",
            original.replace("token_file = \"api-token\"", "token_file = \"/etc/shadow\""),
        ),
        (
            "engine",
            original.replace("keep_engines = 3", "keep_engines = 9"),
        ),
        (
            "store.path",
            original.replace("events.sqlite", "elsewhere.sqlite"),
        ),
    ];
    for (field, text) in &attempts {
        assert_ne!(text, &original, "{field}: the test changes nothing");
        let (code, body) = line.call("PUT", "/config", Some(text));
        assert_eq!(code, 403, "{field}: {body}");
        assert!(
            body.contains(&format!("changes {field}")),
            "{field}: {body}"
        );
        assert_eq!(std::fs::read_to_string(&config_path).unwrap(), original);
    }
    let (_, pins, config) = line.stop();
    let store = Store::open(&config.store.path).unwrap();
    let refused: Vec<_> = store
        .audit_log(20)
        .unwrap()
        .into_iter()
        .filter(|entry| entry.action == "config.put.refused")
        .collect();
    assert_eq!(refused.len(), attempts.len(), "{refused:?}");
    // The newest first: the store.path attempt, its field diff kept.
    assert!(
        refused[0].detail.contains("\"field\":\"store.path\""),
        "{refused:?}"
    );
    drop(pins);
}

#[test]
fn a_test_pulse_is_refused_while_sorting_unless_forced_and_fires_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), true);
    set_api(&config, "allow_test_pulse = true");
    let line = Line::start(&config);
    line.wait_for("the line to run", Duration::from_secs(120), |status| {
        status["state"] == "running"
    });
    let (code, body) = line.call("POST", "/ejectors/bolts/test", None);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("running"), "{body}");
    let (code, body) = line.call("POST", "/ejectors/nosuch/test?force=true", None);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("bolts"), "the lanes are listed: {body}");
    let bolts = line
        .config
        .ejectors
        .iter()
        .position(|e| e.lane == "bolts")
        .unwrap();
    let before = rises(&line.pins[bolts]).len();
    let (code, body) = line.call("POST", "/ejectors/bolts/test?force=true", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"fired\""), "{body}");
    assert!(rises(&line.pins[bolts]).len() > before);
    let (_, pins, config) = line.stop();
    let store = Store::open(&config.store.path).unwrap();
    let audit = store.audit_log(10).unwrap();
    assert!(
        audit.iter().any(|entry| entry.action == "ejector.test"),
        "{audit:?}"
    );
    drop(pins);
}

/// Issue 23, acceptance 4b and 4c.
#[test]
fn the_read_only_token_reads_and_is_refused_403_on_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    set_api(&config, "allow_test_pulse = true");
    let line = Line::start(&config);
    let read = Some(line.read_token.as_str());
    assert_ne!(line.read_token, line.token);
    for path in ["/status", "/metrics", "/events?since=0", "/config"] {
        let (code, body) = call(&line.base, "GET", path, read, None);
        assert_eq!(code, 200, "GET {path}: {body}");
    }
    let (_, original) = line.call("GET", "/config", None);
    for (method, path, body) in [
        ("PUT", "/config", original.as_str()),
        ("POST", "/ota/packages", "not a package"),
        ("POST", "/ejectors/bolts/test?force=true", ""),
        ("POST", "/estop/reset", ""),
    ] {
        let (code, answer) = call(&line.base, method, path, read, Some(body));
        assert_eq!(code, 403, "{method} {path}: {answer}");
        assert!(answer.contains("read-only token may only read"), "{answer}");
    }
    let (_, pins, config) = line.stop();
    assert!(
        pins.iter().all(|pin| rises(pin).is_empty()),
        "no pulse fired"
    );
    let store = Store::open(&config.store.path).unwrap();
    let audit = store.audit_log(10).unwrap();
    assert!(
        audit.iter().all(|entry| entry.action != "config.put"),
        "{audit:?}"
    );
}

/// Issue 23, acceptance 4c: the board's default refuses test pulses.
#[test]
fn a_test_pulse_over_the_api_is_refused_while_the_box_does_not_allow_it() {
    let dir = tempfile::tempdir().unwrap();
    let line = Line::start(&write_config(dir.path(), false));
    assert!(!line.config.api.allow_test_pulse);
    let (code, body) = line.call("POST", "/ejectors/bolts/test?force=true", None);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("api.allow_test_pulse"), "{body}");
    let (_, pins, _) = line.stop();
    assert!(
        pins.iter().all(|pin| rises(pin).is_empty()),
        "no pulse fired"
    );
}
