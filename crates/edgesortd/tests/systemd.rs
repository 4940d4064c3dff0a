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

#[test]
fn it_reports_ready_feeds_the_watchdog_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let socket_path = dir.path().join("notify.sock");
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

    // Read every notification as systemd does: a reader that stops reading
    // would fill the socket and block the daemon's sender.
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
    let mut messages = Vec::new();
    let mut receive = |until: &str| loop {
        let message = notifications
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("no {until} after {messages:?}"));
        messages.push(message.clone());
        if message.lines().any(|line| line == until) {
            return;
        }
    };
    receive("READY=1");
    let ready_at = Instant::now();
    receive("WATCHDOG=1");
    receive("WATCHDOG=1");
    // Two pings at half the 400 ms period.
    assert!(ready_at.elapsed() < Duration::from_secs(5), "{messages:?}");

    // Let it sort a while, then stop it as systemd does.
    std::thread::sleep(Duration::from_secs(8));
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("no exit 30 s after SIGTERM: {}", log.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = log.join().unwrap();
    assert!(status.success(), "{status}: {log}");
    receive("STOPPING=1");

    // Every part it decided is in the store.
    let stopped = log
        .lines()
        .find(|line| line.contains("line stopped") && line.contains("parts="))
        .unwrap_or_else(|| panic!("no final count in {log}"));
    let parts: usize = stopped
        .split("parts=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap();
    let store = Store::open(&dir.path().join("data/events.sqlite")).unwrap();
    let run = store.last_run().unwrap().unwrap();
    assert_eq!(store.parts_of_run(run).unwrap().len(), parts, "{log}");
    assert!(
        dir.path().join("data/api-token").is_file(),
        "token made at first start"
    );
}
