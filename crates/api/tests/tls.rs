//! Issue 23, point 3 and acceptance 4: the API over HTTPS. A client that
//! pins the daemon's certificate by its SHA-256 fingerprint gets the API; a
//! wrong pin fails the handshake, plain HTTP to the HTTPS port gets only a
//! pointer to https://, a client that never finishes its handshake is cut
//! off at the header timeout, and plain HTTP off loopback is refused by
//! the configuration's validation.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Line, agent, call, enable_tls, send, set_api, write_config};
use edgesort_tls::Fingerprint;
use edgesort_types::config::Config;

fn server(line: &Line) -> SocketAddr {
    line.base.trim_start_matches("https://").parse().unwrap()
}

fn tls_line(dir: &std::path::Path, api: &str) -> Line {
    let config = write_config(dir, false);
    enable_tls(&config, "");
    set_api(&config, api);
    Line::start(&config)
}

#[test]
fn a_client_pinning_the_certificate_gets_the_api_and_status_reports_the_pin() {
    let dir = tempfile::tempdir().unwrap();
    let line = tls_line(dir.path(), "auth_failures_per_minute = 10");
    assert!(line.base.starts_with("https://127.0.0.1:"), "{}", line.base);
    // The self-signed pair, made as at a box's first start.
    let data = dir.path().join("data");
    let fingerprint = Fingerprint::of_pem_file(&data.join("api-cert.pem")).unwrap();
    assert_eq!(line.fingerprint, Some(fingerprint));

    let status = line.get_json("/status");
    assert_eq!(status["api"]["tls"], true, "{status:#}");
    assert_eq!(
        status["api"]["certificate_sha256"],
        fingerprint.to_string(),
        "{status:#}"
    );
    // The page, a call with the read-only token, and a change with the
    // admin token all go over the pinned connection.
    let (code, page) = send(&line.agent, &line.base, "GET", "/", None, None);
    assert_eq!(code, 200);
    assert!(page.contains("<html"), "{page}");
    let (code, body) = send(
        &line.agent,
        &line.base,
        "GET",
        "/health",
        Some(&line.read_token),
        None,
    );
    assert!(code == 200 || code == 503, "{code}: {body}");
    let (code, body) = line.call("POST", "/estop/reset", Some(""));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("was_clear"), "{body}");
    // Without the token, 401 as over HTTP.
    let (code, _) = send(&line.agent, &line.base, "GET", "/status", None, None);
    assert_eq!(code, 401);
    line.stop();
}

#[test]
fn a_wrong_pin_fails_the_handshake_naming_both_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let line = tls_line(dir.path(), "auth_failures_per_minute = 10");
    let wrong = Fingerprint::of(b"some other certificate");
    let error = agent(Some(wrong))
        .get(format!("{}/health", line.base))
        .call()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("fingerprint")
            && error.contains(&wrong.to_string())
            && error.contains(&line.fingerprint.unwrap().to_string()),
        "{error}"
    );
    // A client trusting the usual roots refuses the self-signed certificate
    // too: nothing takes it on trust.
    let plain_roots: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    assert!(plain_roots.get(format!("{}/", line.base)).call().is_err());
    line.stop();
}

#[test]
fn plain_http_to_the_https_port_gets_a_pointer_and_no_api() {
    let dir = tempfile::tempdir().unwrap();
    let line = tls_line(dir.path(), "auth_failures_per_minute = 10");
    let plain = line.base.replace("https://", "http://");
    for path in ["/status", "/"] {
        let (code, body) = call(&plain, "GET", path, Some(&line.token), None);
        assert_eq!(code, 400, "{path}: {body}");
        assert!(body.contains("https://"), "{body}");
        assert!(!body.contains("state") && !body.contains("<html"), "{body}");
    }
    line.stop();
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_cut_off_at_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let line = tls_line(dir.path(), "header_timeout_s = 1");
    // One says nothing at all; one starts a handshake record and stalls.
    for opening in [&b""[..], &[0x16, 0x03, 0x01][..]] {
        let mut stream = TcpStream::connect(server(&line)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.write_all(opening).unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        // Closed by the server: end of file (or a reset), not our timeout.
        let closed = match stream.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
        };
        let waited = started.elapsed();
        assert!(closed, "{opening:?}: still open after {waited:?}");
        assert!(
            waited >= Duration::from_millis(500) && waited < Duration::from_secs(10),
            "{opening:?}: closed after {waited:?}"
        );
    }
    // The API still answers.
    assert_eq!(line.call("GET", "/status", None).0, 200);
    line.stop();
}

#[test]
fn plain_http_off_loopback_is_refused_naming_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("\nenabled = false\n"),
        "the example config changed"
    );
    let open = text.replace("bind = \"127.0.0.1:8080\"", "bind = \"0.0.0.0:8080\"");
    std::fs::write(&config, &open).unwrap();
    let error = format!("{:#}", Config::load(&config).unwrap_err());
    assert!(
        error.contains("api.tls.enabled") && error.contains("api.bind 0.0.0.0:8080"),
        "{error}"
    );

    // Nor can a change over the API open plain HTTP to the network.
    std::fs::write(&config, &text).unwrap();
    let line = Line::start(&config);
    let (code, body) = line.call("PUT", "/config", Some(&open));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("api.tls.enabled"), "{body}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
    // Over plain HTTP (loopback), /status says so.
    let status = line.get_json("/status");
    assert_eq!(status["api"]["tls"], false);
    assert!(status["api"]["certificate_sha256"].is_null());
    line.stop();
}
