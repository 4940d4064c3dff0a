//! Issue 9's command line over the API: `edgesort status`, `events` and
//! `config get/set` against a running daemon (in this process, on a free
//! loopback port); and issue 23's, over HTTPS with the daemon's certificate
//! pinned.

#[path = "../../api/tests/common/mod.rs"]
mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Line, enable_tls, write_config};

fn edgesort(line: &Line, config: &std::path::Path, token: &str, args: &[&str]) -> Output {
    pinned(line, config, token, None, args)
}

/// `edgesort` with `EDGESORT_FINGERPRINT` set to `pin`, or unset.
fn pinned(
    line: &Line,
    config: &std::path::Path,
    token: &str,
    pin: Option<&str>,
    args: &[&str],
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgesort"));
    command
        .args(args)
        .args(["--config", config.to_str().unwrap(), "--url", &line.base])
        .env("EDGESORT_TOKEN", token)
        .env_remove("EDGESORT_FINGERPRINT")
        .env("RUST_LOG", "warn");
    if let Some(pin) = pin {
        command.env("EDGESORT_FINGERPRINT", pin);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    assert!(!output.status.success(), "it succeeded");
    String::from_utf8_lossy(&output.stderr).to_string()
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
    assert!(status.contains("api:      plain HTTP"), "{status}");
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

/// Issue 23: over HTTPS the command line trusts the daemon's certificate
/// only by its fingerprint: read from the certificate file on the box, or
/// given with `--fingerprint` (`EDGESORT_FINGERPRINT`) elsewhere; without
/// either it refuses, and a wrong one fails the handshake.
#[test]
fn commands_over_https_pin_the_daemon_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    enable_tls(&config, "");
    let line = Line::start(&config);
    let token = line.token.clone();
    let fingerprint = line.fingerprint.unwrap().to_string();

    // On the box: the certificate file is read, and its fingerprint shown.
    let status = stdout(&edgesort(&line, &config, &token, &["status"]));
    assert!(
        status.contains(&format!(
            "api:      https, certificate SHA-256 {fingerprint}"
        )),
        "{status}"
    );
    let got = stdout(&edgesort(&line, &config, &token, &["config", "get"]));
    assert_eq!(got, std::fs::read_to_string(&config).unwrap());
    let reset = stdout(&edgesort(&line, &config, &token, &["estop", "reset"]));
    assert!(reset.contains("not latched"), "{reset}");

    // Elsewhere: a configuration whose data folder holds no certificate.
    let away = tempfile::tempdir().unwrap();
    let laptop = write_config(away.path(), false);
    enable_tls(&laptop, "");
    let refused = stderr(&edgesort(&line, &laptop, &token, &["events"]));
    assert!(
        refused.contains("--fingerprint") && refused.contains("api-cert.pem"),
        "{refused}"
    );
    let pinned_status = pinned(&line, &laptop, &token, Some(&fingerprint), &["status"]);
    assert!(stdout(&pinned_status).contains(&fingerprint));
    let flag = edgesort(
        &line,
        &laptop,
        &token,
        &[
            "events",
            "--fingerprint",
            &fingerprint.to_lowercase().replace(':', ""),
        ],
    );
    stdout(&flag);

    // A wrong pin, even beside a readable certificate, fails the handshake.
    let wrong = "00".repeat(32);
    let mismatch = stderr(&pinned(&line, &config, &token, Some(&wrong), &["events"]));
    assert!(
        mismatch.contains("not the pinned") && mismatch.contains(&fingerprint),
        "{mismatch}"
    );
    let garbage = stderr(&pinned(&line, &config, &token, Some("AB:CD"), &["events"]));
    assert!(garbage.contains("not a SHA-256 fingerprint"), "{garbage}");
    line.stop();
}
