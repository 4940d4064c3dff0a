//! Issue 22: edgesortd itself on a real GPIO chip (the kernel's gpio-sim, in
//! the VM that `scripts/gpio-sim/test.sh` boots), wired as an integrator
//! wires a box: five ejectors, a normally-closed e-stop, a reset button and
//! a belt encoder, all on gpio-sim lines; no `--simulate-gpio`. The camera is
//! the replayed demo clip. The daemon binary is edgesortd's own code with one
//! test double: its detector returns the detections the CPU detector gave
//! for each frame (`edgesortd-recorded-detections`), because the real one
//! takes seconds per frame under the VM's CPU emulation.
//!
//! The test drives the inputs through the simulator's pulls, samples the
//! ejector lines' values, and reads the daemon's API. It prints its figures:
//! e-stop latency, pulse times against plan at the full and at half the
//! encoder rate.
//!
//! Environment (set by the script): `EDGESORTD_BIN`, `LINE_DIR` (the demo
//! clip with its recording in `demo_clip/`, the board's `edgesort.toml`),
//! and the gpio-sim variables of `common`.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgesort_types::{Clock, MonotonicClock, Timestamp};
use serde_json::Value;

use common::Sim;

/// gpio-sim lines (header pins are line + 1).
const EJECTOR_LINES: [u32; 5] = [0, 1, 2, 3, 4];
const ESTOP_LINE: u32 = 5;
const RESET_LINE: u32 = 6;
const ENCODER_LINE: u32 = 7;
/// 210 mm/s (the clip's belt) at 5.25 mm a count: 40 counts a second. A
/// pull written to gpio-sim takes about 3 ms of the VM's one emulated CPU,
/// so a finer encoder would take most of it.
const MM_PER_COUNT: f64 = 5.25;
const BELT_MM_S: f64 = 210.0;

fn now() -> Timestamp {
    MonotonicClock.now()
}

fn ms(nanos: i128) -> f64 {
    nanos as f64 / 1e6
}

/// Prints pulse timing errors (ms) and checks them: median within 2 ms
/// (the plan is followed), none past the emulation's tail.
fn check_timing(what: &str, errors: &[f64]) {
    let worst = errors
        .iter()
        .fold(0.0f64, |worst, error| worst.max(error.abs()));
    let median = median(errors);
    println!(
        "FIGURE {what}: {} pulses, {errors:.2?} ms, median {median:.2} ms, worst {worst:.2} ms",
        errors.len()
    );
    assert!(median.abs() < 2.0 && worst < TIMING_TAIL_MS, "{errors:?}");
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// How late the test's sampling of a line may see it change: it reads the
/// lines every 0.5 ms, on the VM's one emulated CPU, under the daemon's
/// real-time threads.
const SAMPLING_SLACK_NS: i128 = 25_000_000;

/// The worst a pulse may miss its plan by in the VM. Under CPU emulation a
/// thread now and then loses the CPU for tens of ms (25 ms was seen once in
/// ten runs here, 62 ms once on a loaded CI host); the median must stay
/// within 2 ms. A timing figure, not a test of speed: what the test checks
/// is that pulses follow the plan and the encoder, which the median and
/// [`check_follows_encoder`] decide.
const TIMING_TAIL_MS: f64 = 150.0;

/// At half the encoder rate each pulse must land nearer the time the
/// encoder gives (`seen + 2 (plan - seen)`) than the time the configured
/// belt speed gives (`plan`), by far: off the first by less than a quarter
/// of the gap between the two. A pulse that ignored the encoder would be
/// off by the whole gap.
fn check_follows_encoder(fired: &[(String, i128, i128, i128)]) {
    for (lane, planned, actual, seen) in fired {
        let gap = ms(planned - seen);
        let error = ms(actual - (2 * planned - seen));
        assert!(
            error.abs() < gap / 4.0,
            "{lane}: fired {error:.2} ms from the encoder's time, {gap:.2} ms from the \
             configured speed's"
        );
    }
}

/// The board's configuration, rewired onto the simulator's lines.
fn write_config(sim: &Sim, dir: &Path, port: u16, replay_loop: bool) -> PathBuf {
    let line = PathBuf::from(std::env::var("LINE_DIR").expect("LINE_DIR: run in the gpio-sim VM"));
    let mut text = std::fs::read_to_string(line.join("edgesort.toml")).unwrap();
    let mut replace = |from: &str, to: &str| {
        assert!(text.contains(from), "the example config changed: {from}");
        text = text.replace(from, to);
    };
    replace(
        "replay = \"../tests/data/demo_clip\"",
        &format!("replay = \"{}\"", line.join("demo_clip").display()),
    );
    replace(
        "replay_loop = true",
        &format!("replay_loop = {replay_loop}"),
    );
    replace(
        "board = \"pins/orin-nano-devkit.toml\"",
        &format!("board = \"{}\"", sim.map_path.display()),
    );
    for (from, to) in [(29, 1), (31, 2), (32, 3), (33, 4), (35, 5)] {
        replace(&format!("pin = {from}\n"), &format!("pin = {to}\n"));
    }
    replace(
        "[gpio.estop]\npin = 37\n",
        &format!(
            "[gpio.encoder]\npin = {}\nmm_per_count = {MM_PER_COUNT}\nsilent_ms = 500\n\n\
             [gpio.reset]\npin = {}\nactive = \"high\"\n\n[gpio.estop]\npin = {}\n",
            ENCODER_LINE + 1,
            RESET_LINE + 1,
            ESTOP_LINE + 1
        ),
    );
    let data = dir.join("data");
    replace(
        "path = \"/var/lib/edgesort/events.sqlite\"",
        &format!("path = \"{}\"", data.join("events.sqlite").display()),
    );
    replace(
        "data_dir = \"/var/lib/edgesort\"",
        &format!("data_dir = \"{}\"", data.display()),
    );
    replace(
        "bind = \"127.0.0.1:8080\"",
        &format!("bind = \"127.0.0.1:{port}\""),
    );
    std::fs::create_dir_all(&data).unwrap();
    let path = dir.join("edgesort.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Makes the calling thread SCHED_FIFO at `priority` (the VM runs as root).
fn fifo(priority: i32) {
    // SAFETY: sched_param is plain data (musl's has more fields).
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = priority;
    // SAFETY: setting this thread's own scheduling.
    let set =
        unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    assert_eq!(set, 0, "SCHED_FIFO {priority}");
}

/// One level change seen on an ejector line.
#[derive(Clone, Copy, Debug)]
struct Pulse {
    line: u32,
    rise: Timestamp,
    fall: Option<Timestamp>,
}

/// Samples the ejector lines' values every ~500 µs (the VM has one
/// emulated CPU, which the daemon needs too), at SCHED_FIFO 70: below the
/// daemon's ejector and input threads, above everything else.
struct Sampler {
    pulses: Arc<Mutex<Vec<Pulse>>>,
    high_mask: Arc<AtomicU64>,
    _thread: Background,
}

impl Sampler {
    fn start(sysfs: &Path) -> Sampler {
        let pulses = Arc::new(Mutex::new(Vec::new()));
        let high_mask = Arc::new(AtomicU64::new(0));
        let files: Vec<std::fs::File> = EJECTOR_LINES
            .iter()
            .map(|line| std::fs::File::open(sysfs.join(format!("sim_gpio{line}/value"))).unwrap())
            .collect();
        let thread = {
            let (pulses, high_mask) = (pulses.clone(), high_mask.clone());
            Background::spawn(move |stop| {
                fifo(70);
                let mut open: [Option<usize>; 5] = [None; 5];
                let mut buffer = [0u8; 4];
                while !stop.load(Ordering::SeqCst) {
                    let mut mask = 0;
                    for (index, file) in files.iter().enumerate() {
                        // A sysfs attribute is read afresh from offset 0.
                        let length = file.read_at(&mut buffer, 0).unwrap_or(0);
                        let high = length > 0 && buffer[0] == b'1';
                        let at = now();
                        let mut pulses = pulses.lock().unwrap();
                        match (high, open[index]) {
                            (true, None) => {
                                open[index] = Some(pulses.len());
                                pulses.push(Pulse {
                                    line: EJECTOR_LINES[index],
                                    rise: at,
                                    fall: None,
                                });
                            }
                            (false, Some(pulse)) => {
                                pulses[pulse].fall = Some(at);
                                open[index] = None;
                            }
                            _ => {}
                        }
                        mask |= u64::from(high) << index;
                    }
                    high_mask.store(mask, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_micros(500));
                }
            })
        };
        Sampler {
            pulses,
            high_mask,
            _thread: thread,
        }
    }

    fn pulses(&self) -> Vec<Pulse> {
        self.pulses.lock().unwrap().clone()
    }

    fn rises_between(&self, from: Timestamp, to: Timestamp) -> usize {
        self.pulses()
            .iter()
            .filter(|pulse| pulse.rise >= from && pulse.rise <= to)
            .count()
    }
}

/// A thread that runs until dropped: it is handed the flag that says stop.
struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn spawn(body: impl FnOnce(&AtomicBool) + Send + 'static) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        Background {
            stop,
            thread: Some(std::thread::spawn(move || body(&flag))),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Toggles the encoder line at `counts_per_s` rising edges a second, on
/// absolute deadlines, until dropped. It runs above every thread of the
/// daemon (SCHED_FIFO 90): a real encoder is hardware, and the VM's one
/// emulated CPU must not make it late.
struct Encoder {
    /// The latest an edge came after its due time, µs.
    worst_lag_us: Arc<AtomicU64>,
    _thread: Background,
}

impl Encoder {
    fn start(sim: &Arc<Sim>, counts_per_s: f64) -> Encoder {
        let worst_lag_us = Arc::new(AtomicU64::new(0));
        let thread = {
            let (sim, worst) = (sim.clone(), worst_lag_us.clone());
            Background::spawn(move |stop| {
                fifo(90);
                let half = Duration::from_secs_f64(0.5 / counts_per_s);
                let start = Instant::now();
                let mut edges = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    for up in [true, false] {
                        let due = start + half * (2 * edges as u32 + u32::from(!up));
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        sim.pull(ENCODER_LINE, up);
                        let lag = Instant::now().saturating_duration_since(due);
                        worst.fetch_max(lag.as_micros() as u64, Ordering::SeqCst);
                    }
                    edges += 1;
                }
            })
        };
        Encoder {
            worst_lag_us,
            _thread: thread,
        }
    }
}

/// A running edgesortd and its API.
struct Daemon {
    child: Child,
    port: u16,
    token: String,
    dir: PathBuf,
}

impl Daemon {
    fn start(sim: &Sim, name: &str, port: u16, replay_loop: bool) -> Daemon {
        let dir = PathBuf::from(format!("/tmp/line-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = write_config(sim, &dir, port, replay_loop);
        let log = std::fs::File::create(dir.join("edgesortd.log")).unwrap();
        let child = Command::new(std::env::var("EDGESORTD_BIN").expect("EDGESORTD_BIN"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let token_file = dir.join("data/api-token");
        let give_up = Instant::now() + Duration::from_secs(120);
        let token = loop {
            if let Ok(token) = std::fs::read_to_string(&token_file)
                && !token.trim().is_empty()
            {
                break token.trim().to_string();
            }
            assert!(Instant::now() < give_up, "no API token: {}", log_of(&dir));
            std::thread::sleep(Duration::from_millis(100));
        };
        let daemon = Daemon {
            child,
            port,
            token,
            dir,
        };
        daemon.wait_for("the API", Duration::from_secs(120), |_| true);
        daemon
    }

    fn call(&self, method: &str, path: &str) -> Option<(u16, String)> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .ok()?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            self.token
        )
        .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let (head, body) = answer.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_string()))
    }

    fn status(&self) -> Option<Value> {
        let (code, body) = self.call("GET", "/status")?;
        (code == 200).then(|| serde_json::from_str(&body).ok())?
    }

    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let give_up = Instant::now() + timeout;
        loop {
            if let Some(status) = self.status()
                && done(&status)
            {
                return status;
            }
            assert!(
                Instant::now() < give_up,
                "timed out waiting for {what}; status {:?}; log:\n{}",
                self.status(),
                log_of(&self.dir)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn events(&self) -> Vec<Value> {
        let (code, body) = self.call("GET", "/events?limit=1000").unwrap();
        assert_eq!(code, 200, "{body}");
        let events: Value = serde_json::from_str(&body).unwrap();
        events["events"].as_array().unwrap().clone()
    }

    /// Stops it as systemd does; its outputs must end low.
    fn stop(mut self, sim: &Sim) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}: {}", log_of(&self.dir));
        for line in EJECTOR_LINES {
            assert!(!sim.output_is_high(line), "line {line} high after exit");
        }
    }
}

impl Drop for Daemon {
    /// A failed test must not leave the daemon holding the lines that the
    /// next test needs.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("edgesortd.log")).unwrap_or_default()
}

fn count(status: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(status, |value, key| &value[key])
        .as_u64()
        .unwrap_or(0)
}

/// The ejector line and pulse length of each lane, from the config.
fn lanes() -> BTreeMap<String, (u32, f64)> {
    let pulses = [20.0, 20.0, 20.0, 25.0, 30.0];
    ["bolts", "nuts", "washers", "springs", "reject"]
        .iter()
        .zip(EJECTOR_LINES)
        .zip(pulses)
        .map(|((lane, line), pulse)| (lane.to_string(), (line, pulse)))
        .collect()
}

/// Plays the clip once with the encoder at `rate` × the belt's speed;
/// checks every fired part's pulse on its line, and returns the fired
/// parts' (lane, planned, actual, seen) times, ns: `planned` at the
/// configured belt speed, from `seen`, the part's last sighting.
fn sort_the_clip(
    sim: &Arc<Sim>,
    name: &str,
    port: u16,
    rate: f64,
) -> Vec<(String, i128, i128, i128)> {
    let encoder = Encoder::start(sim, rate * BELT_MM_S / MM_PER_COUNT);
    let sampler = Sampler::start(&sim.sysfs);
    let daemon = Daemon::start(sim, name, port, false);
    let status = daemon.wait_for("the clip to end", Duration::from_secs(180), |status| {
        status["state"] == "finished"
    });
    println!(
        "[{name}] belt {:.1} mm/s measured, {} encoder edges; counts {}",
        status["belt"]["speed_mm_s"].as_f64().unwrap_or(0.0),
        status["belt"]["encoder_edges"],
        status["counts"]
    );
    let events = daemon.events();
    let log = log_of(&daemon.dir);
    daemon.stop(sim);
    println!(
        "[{name}] encoder edges at most {} µs late; the daemon's warnings: {:?}",
        encoder.worst_lag_us.load(Ordering::SeqCst),
        log.lines()
            .filter(|line| line.contains("WARN") || line.contains("ERROR"))
            .collect::<Vec<_>>()
    );
    drop(encoder);
    let pulses = sampler.pulses();
    drop(sampler);
    let lanes = lanes();
    let mut fired = Vec::new();
    let run_start = events
        .iter()
        .filter_map(|event| event["seen_at_ns"].as_u64())
        .min()
        .unwrap_or(0) as i128;
    for event in &events {
        if event["fire_outcome"] != "fired" {
            continue;
        }
        let lane = event["lane"].as_str().unwrap().to_string();
        let planned = event["planned_fire_ns"].as_u64().unwrap() as i128;
        let actual = event["actual_fire_ns"].as_u64().unwrap() as i128;
        let seen = event["seen_at_ns"].as_u64().unwrap() as i128;
        println!(
            "[{name}] part {} {lane}: seen {:.1} ms, planned {:.1} ms, fired {:.1} ms ({:+.2} ms from plan)",
            event["part_id"],
            ms(seen - run_start),
            ms(planned - run_start),
            ms(actual - run_start),
            ms(actual - planned)
        );
        fired.push((lane, planned, actual, seen));
    }
    // Each high period on a line: it rose when the daemon stamped its first
    // pulse, and fell a pulse length after the last pulse it took in (pulses
    // closer than the valve's re-arm gap merge into one opening).
    for pulse in &pulses {
        let (lane, (_, pulse_ms)) = lanes
            .iter()
            .find(|(_, (line, _))| *line == pulse.line)
            .unwrap();
        let rise = pulse.rise.as_nanos() as i128;
        let fall = pulse.fall.expect("every pulse ended").as_nanos() as i128;
        let inside: Vec<i128> = fired
            .iter()
            .filter(|(fired_lane, _, actual, _)| {
                fired_lane == lane && *actual >= rise - SAMPLING_SLACK_NS && *actual <= fall
            })
            .map(|(_, _, actual, _)| *actual)
            .collect();
        let first = *inside.iter().min().unwrap_or_else(|| {
            let seen: Vec<_> = pulses
                .iter()
                .map(|p| {
                    let at = |t: Timestamp| ms(t.as_nanos() as i128 - run_start);
                    (p.line, at(p.rise), p.fall.map(at))
                })
                .collect();
            panic!(
                "line {} rose at {:.1} ms with no part's pulse; lines seen: {seen:.1?}",
                pulse.line,
                ms(rise - run_start)
            )
        });
        let last = *inside.iter().max().unwrap();
        let expected_ms = ms(last - first) + pulse_ms;
        // From the daemon's own stamp of the rise to the sampled fall: the
        // sampler can only see the fall late, never early.
        let length = ms(fall - first);
        println!(
            "[{name}] line {} ({lane}): rose {:+.2} ms from the daemon's stamp, high {length:.2} ms \
             for {} pulse(s), {expected_ms:.2} ms expected",
            pulse.line,
            ms(rise - first),
            inside.len()
        );
        assert!(
            ms(rise - first) < ms(SAMPLING_SLACK_NS),
            "line {} rose off",
            pulse.line
        );
        assert!(
            length > expected_ms - 1.0 && length < expected_ms + ms(SAMPLING_SLACK_NS),
            "line {}: {length} ms high, {expected_ms} ms expected",
            pulse.line
        );
    }
    assert!(fired.len() >= 3, "too few pulses: {events:?}");
    // Every fired part had its line high, and no line rose for anything
    // else (pulses closer than the re-arm gap merge into one).
    for (lane, _, actual, _) in &fired {
        let line = lanes[lane].0;
        assert!(
            pulses.iter().any(|pulse| pulse.line == line
                && pulse.rise.as_nanos() as i128 - SAMPLING_SLACK_NS <= *actual
                && pulse
                    .fall
                    .is_some_and(|fall| fall.as_nanos() as i128 >= *actual)),
            "no pulse on line {line} at {actual}"
        );
    }
    assert!(
        pulses.len() <= fired.len(),
        "{} rises for {} pulses",
        pulses.len(),
        fired.len()
    );
    fired
}

/// Puts the pulls back as the VM's setup left them for the backend's own
/// test (`gpio_sim`): line 3 up, the others down.
struct RestorePulls(Arc<Sim>);

impl Drop for RestorePulls {
    fn drop(&mut self) {
        for line in 0..8 {
            self.0.pull(line, line == 3);
        }
    }
}

#[test]
#[ignore = "needs the gpio-sim VM: scripts/gpio-sim/test.sh"]
fn edgesortd_sorts_stops_resets_and_follows_the_encoder_on_a_real_gpio_chip() {
    let sim = Arc::new(Sim::new());
    let _restore = RestorePulls(sim.clone());
    for line in EJECTOR_LINES {
        sim.pull(line, false);
    }
    sim.pull(ESTOP_LINE, true); // normally closed: released reads high
    sim.pull(RESET_LINE, false);
    sim.pull(ENCODER_LINE, false);

    // Full encoder rate: every pulse at its planned time.
    let full = sort_the_clip(&sim, "full", 18081, 1.0);
    let errors: Vec<f64> = full
        .iter()
        .map(|(_, planned, actual, _)| ms(actual - planned))
        .collect();
    check_timing("full encoder rate: fire - plan", &errors);

    // Half the rate: the encoder says the belt runs at half its speed, so
    // each part takes twice as long from its last sighting to its ejector:
    // its pulse is due at `seen + 2 * (planned - seen)`.
    let half = sort_the_clip(&sim, "half", 18082, 0.5);
    let later: Vec<f64> = half
        .iter()
        .map(|(_, planned, actual, _)| ms(actual - planned))
        .collect();
    println!("[half] pulses {later:.0?} ms after the full-speed plan");
    let errors: Vec<f64> = half
        .iter()
        .map(|(_, planned, actual, seen)| ms(actual - (2 * planned - seen)))
        .collect();
    check_timing(
        "half encoder rate: fire - (seen + 2 (plan - seen))",
        &errors,
    );
    check_follows_encoder(&half);

    // No edges at all while parts move: the alarm, and no pulse.
    let sampler = Sampler::start(&sim.sysfs);
    let daemon = Daemon::start(&sim, "silent", 18083, false);
    let status = daemon.wait_for("the clip to end", Duration::from_secs(180), |status| {
        status["state"] == "finished"
    });
    let alarms = status["alarms"].to_string();
    println!("[silent] counts {}; alarms {alarms}", status["counts"]);
    assert!(alarms.contains("encoder_silent"), "{status:#}");
    assert_eq!(count(&status, &["counts", "ejections"]), 0);
    assert!(
        count(&status, &["counts", "not_fired", "no_belt_position"]) >= 3,
        "{status:#}"
    );
    daemon.stop(&sim);
    assert_eq!(
        sampler.pulses().len(),
        0,
        "a pulse fired without a belt position"
    );
    drop(sampler);

    // The e-stop, on a looping clip with the encoder at full rate.
    let _encoder = Encoder::start(&sim, BELT_MM_S / MM_PER_COUNT);
    let sampler = Sampler::start(&sim.sysfs);
    let daemon = Daemon::start(&sim, "estop", 18084, true);
    // Pressed while an output is high.
    let give_up = Instant::now() + Duration::from_secs(120);
    while sampler.high_mask.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < give_up,
            "no pulse: {}",
            log_of(&daemon.dir)
        );
        std::thread::sleep(Duration::from_micros(100));
    }
    let pressed = now();
    sim.pull(ESTOP_LINE, false);
    let written = now();
    while sampler.high_mask.load(Ordering::SeqCst) != 0
        || EJECTOR_LINES.iter().any(|line| sim.output_is_high(*line))
    {
        std::thread::sleep(Duration::from_micros(50));
    }
    let all_low = now();
    let status = daemon.wait_for("the press", Duration::from_secs(10), |status| {
        status["gpio"]["estop"]["state"] == "pressed"
    });
    let response = status["gpio"]["estop"]["last_response_ms"]
        .as_f64()
        .unwrap();
    let reaction = status["gpio"]["estop"]["last_reaction_ms"]
        .as_f64()
        .unwrap();
    let cut = sampler
        .pulses()
        .iter()
        .filter_map(|pulse| pulse.fall)
        .filter(|fall| *fall >= pressed)
        .min()
        .unwrap();
    println!(
        "FIGURE e-stop: kernel edge to every output low {response:.3} ms, of which the daemon \
         reading the press to every output low {reaction:.3} ms (the daemon's measures); \
         pull written to a line seen low {:.3} ms, to all lines read low {:.3} ms (the test's \
         sampling, an upper bound; the pull write itself took {:.3} ms)",
        ms(cut.as_nanos() as i128 - written.as_nanos() as i128),
        ms(all_low.as_nanos() as i128 - written.as_nanos() as i128),
        ms(written.as_nanos() as i128 - pressed.as_nanos() as i128),
    );
    // How fast is a figure, measured under CPU emulation and printed above;
    // what is asserted is the behaviour: the daemon's share lies inside the
    // whole, and the outputs fell within the safety bound of 50 ms (which
    // the emulated kernel's own delivery of the edge leaves far behind).
    assert!(
        (0.0..=response).contains(&reaction),
        "the daemon's share ({reaction} ms) is not inside the whole ({response} ms)"
    );
    assert!(
        response < 50.0,
        "{response} ms from the e-stop edge to outputs low"
    );
    assert_eq!(status["state"], "degraded");

    // Pressed: a reset is refused, and no pulse fires while parts pass.
    let (code, body) = daemon.call("POST", "/estop/reset").unwrap();
    println!("[estop] reset while pressed: {code} {body}");
    assert_eq!(code, 409, "{body}");
    std::thread::sleep(Duration::from_secs(3));
    let status = daemon.status().unwrap();
    let refused = count(&status, &["counts", "not_fired", "estop"]);
    println!("[estop] pulses refused while pressed: {refused}");
    assert!(refused >= 1, "{status:#}");
    assert_eq!(sampler.rises_between(written, now()), 0);

    // Released: still latched, and the status says why.
    sim.pull(ESTOP_LINE, true);
    let released = now();
    let status = daemon.wait_for("the release", Duration::from_secs(10), |status| {
        status["gpio"]["estop"]["state"] == "released_awaiting_reset"
    });
    assert_eq!(status["healthy"], false);
    assert!(
        status["alarms"].to_string().contains("awaiting reset"),
        "{status:#}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let status = daemon.status().unwrap();
    assert_eq!(status["gpio"]["estop"]["state"], "released_awaiting_reset");
    let refused_after = count(&status, &["counts", "not_fired", "estop"]);
    println!(
        "[estop] refused after release, before reset: {}",
        refused_after - refused
    );
    assert!(refused_after > refused, "{status:#}");
    assert_eq!(sampler.rises_between(released, now()), 0);

    // The reset button restores ejection.
    sim.pull(RESET_LINE, true);
    sim.pull(RESET_LINE, false);
    let reset = now();
    daemon.wait_for("the reset", Duration::from_secs(10), |status| {
        status["gpio"]["estop"]["state"] == "clear"
    });
    let give_up = Instant::now() + Duration::from_secs(60);
    while sampler.rises_between(reset, now()) == 0 {
        assert!(
            Instant::now() < give_up,
            "no pulse after the reset: {}",
            log_of(&daemon.dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("[estop] first pulse after the reset button: ok");
    daemon.stop(&sim);
}
