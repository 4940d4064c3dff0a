//! A daemon on the bundled clip with simulated pins, its API on a free
//! loopback port (over HTTPS where the configuration's `[api.tls]` says
//! so), and an HTTP client for it.

// Each test file uses its own share of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgesort_actuate::{Edge, SimulatedPin};
use edgesort_api::Access;
use edgesort_daemon::{Daemon, DaemonSetup, WireInputs, served_detector};
use edgesort_tls::{Fingerprint, ServerTls};
use edgesort_types::config::{Config, OtaConfig, SystemConfig};
use serde_json::Value;

pub const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The board's example configuration, rewritten to stand in `dir`: the
/// clip, model and pin map from the repository, the store and the data
/// partition in `dir`.
pub fn write_config(dir: &Path, replay_loop: bool) -> PathBuf {
    let board = std::fs::read_to_string(format!("{REPO}/board/edgesort.toml")).unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut text = board
        .replace(
            "replay = \"../tests/data/demo_clip\"",
            &format!("replay = \"{REPO}/tests/data/demo_clip\""),
        )
        .replace(
            "replay_loop = true",
            &format!("replay_loop = {replay_loop}"),
        )
        .replace(
            "path = \"../models/sorter_yolov8n_dynamic.onnx\"",
            &format!("path = \"{REPO}/models/sorter_yolov8n_dynamic.onnx\""),
        )
        .replace(
            "board = \"pins/orin-nano-devkit.toml\"",
            &format!("board = \"{REPO}/board/pins/orin-nano-devkit.toml\""),
        )
        .replace(
            "path = \"/var/lib/edgesort/events.sqlite\"",
            &format!("path = \"{}\"", data.join("events.sqlite").display()),
        )
        .replace(
            "data_dir = \"/var/lib/edgesort\"",
            &format!("data_dir = \"{}\"", data.display()),
        );
    // Not asked for: the rest of the suite needs the CPU too.
    text = text.replace("realtime_priority = 80", "realtime_priority = 0");
    assert!(text.contains("replay_loop"), "the example config changed");
    let path = dir.join("edgesort.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Sets `fields` (TOML `key = value` lines) in the configuration's `[api]`
/// section, replacing the example's value where it has one.
pub fn set_api(config: &Path, fields: &str) {
    let mut text = std::fs::read_to_string(config).unwrap();
    let api = text.find("\n[api]\n").expect("the example config changed") + 1;
    for field in fields.lines() {
        let key = field.split('=').next().unwrap().trim();
        let section = &text[api..];
        let end = section[1..]
            .find("\n[")
            .map_or(text.len(), |at| api + 1 + at);
        let existing = text[api..end]
            .match_indices(&format!("\n{key} = "))
            .next()
            .map(|(at, _)| api + at + 1);
        match existing {
            Some(at) => {
                let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n);
                text.replace_range(at..line_end, field);
            }
            None => text.insert_str(api + "[api]\n".len(), &format!("{field}\n")),
        }
    }
    std::fs::write(config, text).unwrap();
}

/// The configuration's `[api.tls]` table, `enabled = true` and its
/// other `fields` (TOML lines), in place of the example's.
pub fn enable_tls(config: &Path, fields: &str) {
    let mut text = std::fs::read_to_string(config).unwrap();
    let section = text
        .find("\n[api.tls]\n")
        .expect("the example config changed");
    let plain = "\nenabled = false\n";
    let at = section
        + text[section..]
            .find(plain)
            .expect("the example config changed");
    let tls = format!("\nenabled = true\n{fields}");
    text.replace_range(at..at + plain.len(), &tls);
    std::fs::write(config, text).unwrap();
}

/// A running daemon with its API.
pub struct Line {
    pub daemon: Arc<Daemon>,
    pub pins: Vec<SimulatedPin>,
    pub config: Config,
    pub base: String,
    /// The certificate served, where the API speaks HTTPS.
    pub fingerprint: Option<Fingerprint>,
    /// Calls the API, trusting the certificate served where there is one.
    pub agent: ureq::Agent,
    pub token: String,
    /// The read-only token.
    pub read_token: String,
    runtime: Option<tokio::runtime::Runtime>,
    stop_api: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Line {
    pub fn start(config_path: &Path) -> Line {
        Line::start_wired(config_path, None)
    }

    /// As [`Line::start`], with inputs (an e-stop, its reset button) wired.
    pub fn start_wired(config_path: &Path, inputs: Option<WireInputs>) -> Line {
        let config = Config::load(config_path).unwrap();
        let pins = SimulatedPin::for_ejectors(&config);
        let access = Access::load_or_create(&config.api).unwrap();
        // Chosen as edgesortd chooses, on this machine: with no engine in
        // service in the test's data folder, `auto` falls back to the CPU.
        let (detector, engine) = served_detector(
            edgesort_serve::select_on_this_box(&config, config.engine.backend).unwrap(),
        );
        let daemon = Arc::new(
            Daemon::start(DaemonSetup {
                config: config.clone(),
                config_path: config_path.to_owned(),
                detector,
                engine,
                pins: pins.clone(),
                inputs,
            })
            .unwrap(),
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(SocketAddr::from((
                [127, 0, 0, 1],
                0,
            ))))
            .unwrap();
        // As edgesortd does: the self-signed pair made at first start.
        let tls = config.api.tls.enabled.then(|| {
            ServerTls::load_or_create(&config.api.tls.certificate(&config.engine.data_dir)).unwrap()
        });
        let fingerprint = tls.as_ref().map(ServerTls::fingerprint);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{}", listener.local_addr().unwrap());
        let (stop_api, stopped) = tokio::sync::oneshot::channel::<()>();
        // Root's system file beside the configuration where the test wrote
        // one; else as the box's would say: the slots on the data
        // partition, the trusted keys beside the configuration.
        let system = config_path.with_file_name("system.toml");
        let ota = match std::fs::read_to_string(&system) {
            Ok(text) => SystemConfig::from_file_text(&text, &system).unwrap().ota,
            Err(_) => OtaConfig {
                dir: config.engine.data_dir.join("ota"),
                trusted_keys: config_path.with_file_name("ota-keys.toml"),
                ..Default::default()
            },
        };
        let updates = edgesort_api::Updates::from(&ota);
        let router = edgesort_api::router(daemon.clone(), access.clone(), updates, &config.api);
        let limits = edgesort_api::Limits::from(&config.api);
        runtime.spawn(edgesort_api::serve(listener, router, limits, tls, async {
            let _ = stopped.await;
        }));
        Line {
            daemon,
            pins,
            config,
            base,
            agent: agent(fingerprint),
            fingerprint,
            token: access.admin.secret().to_string(),
            read_token: access.read.secret().to_string(),
            runtime: Some(runtime),
            stop_api: Some(stop_api),
        }
    }

    /// Calls the API with the right token.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        send(
            &self.agent,
            &self.base,
            method,
            path,
            Some(&self.token),
            body,
        )
    }

    pub fn get_json(&self, path: &str) -> Value {
        let (code, body) = self.call("GET", path, None);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Polls `/status` (and `/metrics`) until `done` holds for it.
    pub fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.get_json("/status");
            let (code, metrics) = self.call("GET", "/metrics", None);
            assert_eq!(code, 200);
            assert!(metrics.contains("edgesort_parts_total"), "{metrics}");
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last status: {status:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the API, then the line; the daemon's last status.
    pub fn stop(mut self) -> (edgesort_daemon::Status, Vec<SimulatedPin>, Config) {
        if let Some(stop) = self.stop_api.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
        let daemon = Arc::try_unwrap(self.daemon)
            .unwrap_or_else(|_| panic!("the API still holds the daemon"));
        (daemon.shutdown(), self.pins, self.config)
    }
}

/// A client for the API: plain, or trusting only the certificate `pin`
/// names.
pub fn agent(pin: Option<Fingerprint>) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build();
    match pin {
        Some(pin) => edgesort_tls::pinned_agent(config, pin),
        None => config.into(),
    }
}

/// Calls the API at `base` over plain HTTP.
pub fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    send(&agent(None), base, method, path, token, body)
}

/// Calls the API at `base` with `agent`.
pub fn send(
    agent: &ureq::Agent,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let url = format!("{base}{path}");
    let auth = token.map(|token| format!("Bearer {token}"));
    let mut response = match (method, body) {
        ("GET", _) => {
            let mut request = agent.get(&url);
            if let Some(auth) = &auth {
                request = request.header("Authorization", auth);
            }
            request.call()
        }
        (method, body) => {
            let mut request = match method {
                "PUT" => agent.put(&url),
                "POST" => agent.post(&url),
                other => panic!("no {other}"),
            };
            if let Some(auth) = &auth {
                request = request.header("Authorization", auth);
            }
            request.send(body.unwrap_or(""))
        }
    }
    .unwrap();
    let code = response.status().as_u16();
    (
        code,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// The rising edges of `pin`, ns on the monotonic clock.
pub fn rises(pin: &SimulatedPin) -> Vec<u64> {
    pin.edges()
        .iter()
        .filter(|edge: &&Edge| edge.high)
        .map(|edge| edge.at.as_nanos())
        .collect()
}
