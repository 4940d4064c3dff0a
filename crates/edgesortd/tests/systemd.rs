//! edgesortd as systemd runs it: `Type=notify` readiness, the watchdog, and
//! a clean stop on SIGTERM that loses no decision.

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgesort_store::Store;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The example configuration with the repository's clip (looped), model and
/// pin map, and the store and data partition in `dir`.
fn write_config(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let text = std::fs::read_to_string(format!("{REPO}/board/edgesort.toml"))
        .unwrap()
        .replace("\"../", &format!("\"{REPO}/"))
        .replace("board = \"pins/", &format!("board = \"{REPO}/board/pins/"))
        .replace("/var/lib/edgesort", &data.display().to_string())
        .replace("realtime_priority = 80", "realtime_priority = 0");
    let path = dir.join("edgesort.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// edgesortd started as systemd starts it, with simulated pins: its
/// notifications as they come, and its log once it has exited.
struct Running {
    child: std::process::Child,
    log: Option<std::thread::JoinHandle<String>>,
    notifications: std::sync::mpsc::Receiver<String>,
    messages: Vec<String>,
}

impl Running {
    fn start(dir: &Path, config: &Path) -> Running {
        let socket_path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        // systemd names the watched process in WATCHDOG_PID; the shell's pid
        // becomes the daemon's through exec.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_edgesortd"))
            .args(["--config", config.to_str().unwrap(), "--simulate-gpio"])
            .args(["--bind", "127.0.0.1:0"])
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "400000")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        // Read every notification as systemd does: a reader that stops
        // reading would fill the socket and block the daemon's sender.
        let (notified, notifications) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(length) = socket.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..length]).to_string();
                if notified.send(message).is_err() {
                    return;
                }
            }
        });
        Running {
            child,
            log: Some(log),
            notifications,
            messages: Vec::new(),
        }
    }

    /// Waits for a notification with the line `until`.
    fn receive(&mut self, until: &str) {
        loop {
            let message = self
                .notifications
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|_| panic!("no {until} after {:?}", self.messages));
            self.messages.push(message.clone());
            if message.lines().any(|line| line == until) {
                return;
            }
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits for the exit; its status and the whole log.
    fn exit(&mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("no exit 30 s after the signal: {}", self.take_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, self.take_log())
    }

    fn take_log(&mut self) -> String {
        self.log
            .take()
            .map(|log| log.join().unwrap())
            .unwrap_or_default()
    }
}

/// The count a log line `line stopped parts=N outputs_high=M` gives for `key`.
fn final_count(log: &str, key: &str) -> usize {
    let stopped = log
        .lines()
        .find(|line| line.contains("line stopped") && line.contains(key))
        .unwrap_or_else(|| panic!("no final {key} in {log}"));
    stopped
        .split(key)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap()
}

#[test]
fn it_reports_ready_feeds_the_watchdog_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut daemon = Running::start(dir.path(), &config);
    daemon.receive("READY=1");
    let ready_at = Instant::now();
    daemon.receive("WATCHDOG=1");
    daemon.receive("WATCHDOG=1");
    // Two pings at half the 400 ms period.
    assert!(
        ready_at.elapsed() < Duration::from_secs(5),
        "{:?}",
        daemon.messages
    );

    // Let it sort a while, then stop it as systemd does.
    std::thread::sleep(Duration::from_secs(8));
    daemon.signal(libc::SIGTERM);
    let (status, log) = daemon.exit();
    assert!(status.success(), "{status}: {log}");
    daemon.receive("STOPPING=1");
    assert_eq!(final_count(&log, "outputs_high="), 0, "{log}");

    // Every part it decided is in the store.
    let parts = final_count(&log, "parts=");
    let store = Store::open(&dir.path().join("data/events.sqlite")).unwrap();
    let run = store.last_run().unwrap().unwrap();
    assert_eq!(store.parts_of_run(run).unwrap().len(), parts, "{log}");
    assert!(
        dir.path().join("data/api-token").is_file(),
        "token made at first start"
    );
}

/// Issue 22: SIGHUP is systemd's reload (`ExecReload=`): the file is read
/// again and its live sections applied, an invalid file changes nothing
/// and the line runs on; SIGQUIT ends the daemon with every output low.
#[test]
fn sighup_reloads_the_configuration_and_sigquit_stops_with_outputs_low() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut daemon = Running::start(dir.path(), &config);
    daemon.receive("READY=1");
    std::thread::sleep(Duration::from_secs(2));

    // A technician turns the foreign-part rule off by hand, then reloads.
    let text = std::fs::read_to_string(&config).unwrap();
    let edited = text.replace(
        "lane = \"reject\"\n# Set to false to let a class ride to the default lane.\nenabled = true",
        "lane = \"reject\"\n# Set to false to let a class ride to the default lane.\nenabled = false",
    );
    assert_ne!(edited, text, "the example config changed");
    std::fs::write(&config, &edited).unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.receive("RELOADING=1");
    daemon.receive("READY=1");

    // A broken file: refused, and the line runs on.
    std::fs::write(&config, edited.replace("[belt]", "[belt\n")).unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.receive("RELOADING=1");
    daemon.receive("READY=1");
    daemon.receive("WATCHDOG=1");

    daemon.signal(libc::SIGQUIT);
    let (status, log) = daemon.exit();
    assert!(status.success(), "{status}: {log}");
    assert!(
        log.contains("SIGHUP: configuration reloaded") && log.contains("live=[\"rules\"]"),
        "{log}"
    );
    assert!(
        log.contains("SIGHUP: configuration not reloaded, the line runs on as it was"),
        "{log}"
    );
    assert!(log.contains("SIGQUIT: every output driven low"), "{log}");
    assert_eq!(final_count(&log, "outputs_high="), 0, "{log}");
    let store = Store::open(&dir.path().join("data/events.sqlite")).unwrap();
    let reloads: Vec<_> = store
        .audit_log(20)
        .unwrap()
        .into_iter()
        .filter(|entry| entry.action == "config.reload")
        .collect();
    assert_eq!(reloads.len(), 1, "{reloads:?}");
    assert_eq!(reloads[0].actor, "SIGHUP");
    assert!(
        reloads[0].detail.contains("\"live\":[\"rules\"]"),
        "{reloads:?}"
    );
}

/// Issue 23: with `[api.tls]` on, the daemon makes its self-signed pair at
/// first start (the key 0600) and logs the certificate's fingerprint; it
/// refuses to serve plain HTTP on an address off the box, even when only
/// `--bind` names it.
#[test]
fn over_https_it_makes_its_certificate_and_logs_the_fingerprint_and_plain_http_stays_on_loopback() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let plain = std::fs::read_to_string(&config).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_edgesortd"))
        .args(["--config", config.to_str().unwrap(), "--simulate-gpio"])
        .args(["--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("--bind") && error.contains("api.tls.enabled"),
        "{error}"
    );

    let section = plain
        .find("\n[api.tls]\n")
        .expect("the example config changed");
    let tls = plain[section..].replacen("\nenabled = false\n", "\nenabled = true\n", 1);
    std::fs::write(&config, format!("{}{tls}", &plain[..section])).unwrap();
    let mut daemon = Running::start(dir.path(), &config);
    daemon.receive("READY=1");
    // At once: the signal handlers are in place before READY=1.
    daemon.signal(libc::SIGTERM);
    let (status, log) = daemon.exit();
    assert!(status.success(), "{status}: {log}");
    let data = dir.path().join("data");
    let key = std::fs::metadata(data.join("api-key.pem")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    let fingerprint = edgesort_tls::Fingerprint::of_pem_file(&data.join("api-cert.pem")).unwrap();
    assert!(
        log.contains("over HTTPS") && log.contains(&format!("certificate_sha256={fingerprint}")),
        "{log}"
    );
}

/// Issue 24: `engine.backend` decides what serves. `tensorrt` without an
/// engine in service refuses to start with status 3, naming the reason;
/// `auto` starts on the CPU and logs the check that failed, the same one
/// `edgesort_serve` finds on this machine.
#[test]
fn backend_tensorrt_without_an_engine_exits_3_and_auto_names_the_failed_check() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let expected = {
        let config = edgesort_types::config::Config::load(&config).unwrap();
        let served = edgesort_serve::select_on_this_box(
            &config,
            edgesort_types::config::BackendChoice::Auto,
        )
        .unwrap();
        served.info.fallback.expect("no engine is in service here")
    };

    let auto = std::fs::read_to_string(&config).unwrap();
    assert!(
        auto.contains("\nbackend = \"auto\"\n"),
        "the example config changed"
    );
    std::fs::write(
        &config,
        auto.replace("\nbackend = \"auto\"\n", "\nbackend = \"tensorrt\"\n"),
    )
    .unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_edgesortd"))
        .args(["--config", config.to_str().unwrap(), "--simulate-gpio"])
        .args(["--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{error}");
    assert!(
        error.contains("engine.backend is \"tensorrt\"") && error.contains(&expected.to_string()),
        "{error}"
    );

    std::fs::write(&config, &auto).unwrap();
    let mut daemon = Running::start(dir.path(), &config);
    daemon.receive("READY=1");
    daemon.signal(libc::SIGTERM);
    let (status, log) = daemon.exit();
    assert!(status.success(), "{status}: {log}");
    assert!(
        log.contains(&format!("check=\"{}\"", expected.check()))
            && log.contains(&format!("running on the CPU: {expected}")),
        "{log}"
    );
}
