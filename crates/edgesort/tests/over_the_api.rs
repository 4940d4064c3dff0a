//! Issue 9's command line over the API: `edgesort status`, `events` and
//! `config get/set` against a running daemon (in this process, on a free
//! loopback port).

#[path = "../../api/tests/common/mod.rs"]
mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Line, write_config};

fn edgesort(line: &Line, config: &std::path::Path, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgesort"))
        .args(args)
        .args(["--config", config.to_str().unwrap(), "--url", &line.base])
        .env("EDGESORT_TOKEN", token)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[test]
fn status_events_and_config_go_through_the_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), true);
    let line = Line::start(&config);
    line.wait_for("parts", Duration::from_secs(180), |status| {
        status["counts"]["parts"].as_u64().unwrap() >= 1
    });
    let token = line.token.clone();

    let status = stdout(&edgesort(&line, &config, &token, &["status"]));
    assert!(status.contains("line:     "), "{status}");
    assert!(status.contains("camera:   streaming (replay: "), "{status}");
    assert!(status.contains("engine:   tract (CPU)"), "{status}");
    let json = stdout(&edgesort(&line, &config, &token, &["status", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(json["counts"]["parts"].as_u64().unwrap() >= 1);

    let events = stdout(&edgesort(&line, &config, &token, &["events", "--json"]));
    let first: serde_json::Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], 1, "{events}");

    let set = stdout(&edgesort(
        &line,
        &config,
        &token,
        &["config", "set", "rules.confidence_floor", "0.7"],
    ));
    assert!(set.contains("applied now:        rules"), "{set}");
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(saved.contains("confidence_floor = 0.7"), "{saved}");
    let got = stdout(&edgesort(&line, &config, &token, &["config", "get"]));
    assert_eq!(got, saved);

    let invalid = edgesort(
        &line,
        &config,
        &token,
        &["config", "set", "rules.confidence_floor", "7"],
    );
    assert!(!invalid.status.success());
    let error = String::from_utf8_lossy(&invalid.stderr);
    assert!(
        error.contains("400") && error.contains("rules.confidence_floor"),
        "{error}"
    );

    let refused = edgesort(&line, &config, "not-the-token-000000", &["events"]);
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("refused the API token (401)"), "{error}");
    line.stop();
}
