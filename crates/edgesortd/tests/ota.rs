//! Over-the-air updates on a running line: edgesortd sorts the replay clip
//! with simulated pins while packages are installed into the other slot,
//! switched to, health-checked over the daemon's API, and committed or
//! rolled back; and the installer is killed at random moments.
//!
//! A supervisor thread stands in for systemd: it starts edgesortd,
//! restarts it on request (what `systemctl restart` asks of systemd) over a
//! Unix socket, and reaps it. Engine builds use the builder double.

#[allow(dead_code)] // Shared with the system tests; this file uses the builder and scene only.
#[path = "../../../tests/engine_double/mod.rs"]
mod engine_double;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgesort_engine::{EngineCache, Entry};
use edgesort_ota::{
    DaemonHealth, EnginePreparer, Event, HealthCriteria, Installer, Line, OtaDir, Outcome,
    PackInfo, SigningKeyFile, SlotManifest, SlotName, TrustedKey, TrustedKeys, at_low_priority,
};
use edgesort_provision::prepare_engine;
use engine_double::{DoubleBuilder, double_config, scene_inputs, scene_reference};
use semver::Version;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const BOARD: &str = "test-box";
/// Set in the environment of the installer processes the fault-injection
/// test starts and kills: the package to install.
const CHILD_PACKAGE: &str = "EDGESORT_OTA_TEST_PACKAGE";
/// ... and the test box's folder.
const CHILD_BOX: &str = "EDGESORT_OTA_TEST_BOX";

/// The two tests each run a daemon sorting at 20 fps; one at a time keeps
/// a 2-core box from starving either.
static ONE_LINE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A box: data partition with its OTA folder, site configuration, trusted
/// keys, and the release team's signing key.
struct TestBox {
    root: PathBuf,
    ota: OtaDir,
    config: PathBuf,
    keys: TrustedKeys,
    signing: SigningKeyFile,
    port: u16,
}

impl TestBox {
    /// Lays out a box whose slot a holds the bundled model (version 1.0.0).
    fn create(root: &Path) -> TestBox {
        let data = root.join("data");
        let factory = root.join("factory");
        std::fs::create_dir_all(factory.join("model")).unwrap();
        std::fs::create_dir_all(factory.join("config")).unwrap();
        std::fs::copy(
            format!("{REPO}/models/sorter_yolov8n_dynamic.onnx"),
            factory.join("model/detector.onnx"),
        )
        .unwrap();
        std::fs::write(factory.join("config/defaults.toml"), "# release 1.0.0\n").unwrap();
        let ota = OtaDir::open_as_owner(&data.join("ota")).unwrap();
        let lock = ota.lock().unwrap();
        ota.init(&lock, &factory, Version::new(1, 0, 0)).unwrap();
        drop(lock);

        let signing = SigningKeyFile::generate("release-test").unwrap();
        let keys = TrustedKeys {
            keys: vec![TrustedKey {
                id: signing.id.clone(),
                public_key: signing.public_key_hex().unwrap(),
                expires: "2099-01-01T00:00:00Z".into(),
            }],
        };
        std::fs::write(root.join("signing.key"), toml::to_string(&signing).unwrap()).unwrap();
        std::fs::write(root.join("ota-keys.toml"), toml::to_string(&keys).unwrap()).unwrap();

        let port = free_port();
        let text = std::fs::read_to_string(format!("{REPO}/board/edgesort.toml"))
            .unwrap()
            .replace(
                "path = \"../models/sorter_yolov8n_dynamic.onnx\"",
                &format!(
                    "path = \"{}/current/model/detector.onnx\"",
                    ota.root().display()
                ),
            )
            .replace("\"../", &format!("\"{REPO}/"))
            .replace("board = \"pins/", &format!("board = \"{REPO}/board/pins/"))
            .replace("/var/lib/edgesort", &data.display().to_string())
            .replace("realtime_priority = 80", "realtime_priority = 0")
            // A slower camera leaves CPU for the installer on a 2-core CI box.
            .replace("fps = 60.0", "fps = 20.0")
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
        let config = root.join("edgesort.toml");
        std::fs::write(&config, text).unwrap();
        TestBox {
            root: root.to_owned(),
            ota,
            config,
            keys,
            signing,
            port,
        }
    }

    /// The box laid out by [`TestBox::create`] in `root`.
    fn reopen(root: &Path) -> TestBox {
        let text = std::fs::read_to_string(root.join("edgesort.toml")).unwrap();
        let port = text
            .split("bind = \"127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|port| port.parse().ok())
            .unwrap();
        TestBox {
            root: root.to_owned(),
            ota: OtaDir::open_as_owner(&root.join("data/ota")).unwrap(),
            config: root.join("edgesort.toml"),
            keys: toml::from_str(&std::fs::read_to_string(root.join("ota-keys.toml")).unwrap())
                .unwrap(),
            signing: toml::from_str(&std::fs::read_to_string(root.join("signing.key")).unwrap())
                .unwrap(),
            port,
        }
    }

    /// Packs and signs the files under `source` as `version`.
    fn package(&self, source: &Path, version: Version, out: &Path) {
        edgesort_ota::pack(
            source,
            PackInfo {
                version,
                min_version: Version::new(1, 0, 0),
                boards: vec![BOARD.into()],
                notes: String::new(),
                created: std::time::SystemTime::now(),
                revokes: Vec::new(),
            },
            out,
        )
        .unwrap();
        edgesort_ota::sign(out, &self.signing).unwrap();
    }

    fn state(&self) -> edgesort_ota::State {
        self.ota.state().unwrap().unwrap()
    }

    /// The daemon's `/status`, or why it does not answer.
    fn status(&self) -> Result<serde_json::Value, String> {
        let token = std::fs::read_to_string(self.root.join("data/api-token"))
            .map_err(|error| format!("no API token yet: {error}"))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let body = agent
            .get(format!("http://127.0.0.1:{}/status", self.port))
            .header("Authorization", &format!("Bearer {}", token.trim()))
            .call()
            .map_err(|error| error.to_string())?
            .body_mut()
            .read_to_string()
            .map_err(|error| error.to_string())?;
        serde_json::from_str(&body).map_err(|error| error.to_string())
    }

    fn health(&self) -> Result<DaemonHealth, String> {
        serde_json::from_value(self.status()?).map_err(|error| error.to_string())
    }

    /// Waits until the daemon answers, serves `model_sha256` and has
    /// processed `frames` frames since it started.
    fn await_running(&self, model_sha256: &str, frames: u64) -> DaemonHealth {
        let started = Instant::now();
        loop {
            let health = self.health();
            if let Ok(health) = &health
                && health.engine.model_sha256.as_deref() == Some(model_sha256)
                && health.frames.processed >= frames
            {
                return health.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the daemon never ran model {model_sha256}: {health:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What systemd does for the unit, as far as these tests need: start
/// edgesortd, restart it when asked (over a Unix socket, as `systemctl`
/// asks systemd over D-Bus), stop it at the end. The daemon is always a
/// child of this process, so it outlives an installer that is killed.
struct Supervisor {
    daemon: Arc<Mutex<Daemon>>,
    socket: PathBuf,
}

impl Supervisor {
    /// When the last restart was asked for.
    fn last_request(&self) -> Option<Instant> {
        self.daemon.lock().unwrap().last_request
    }
}

struct Daemon {
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    /// The slot `current` pointed at when the daemon was started.
    started_on: Option<SlotName>,
    last_request: Option<Instant>,
    ota: OtaDir,
}

impl Daemon {
    fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    child.kill().ok();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.started_on = self.ota.current_slot();
        self.child = Some(
            Command::new(env!("CARGO_BIN_EXE_edgesortd"))
                .args(["--config", self.config.to_str().unwrap(), "--simulate-gpio"])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
}

impl Supervisor {
    fn start(test_box: &TestBox) -> Supervisor {
        let daemon = Arc::new(Mutex::new(Daemon {
            child: None,
            config: test_box.config.clone(),
            log: test_box.root.join("edgesortd.log"),
            started_on: None,
            last_request: None,
            ota: test_box.ota.clone(),
        }));
        daemon.lock().unwrap().restart();
        let socket = test_box.root.join("supervisor.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let served = daemon.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = String::new();
                if BufReader::new(&stream).read_line(&mut request).is_err() {
                    continue;
                }
                if request.trim() == "restart" {
                    let mut daemon = served.lock().unwrap();
                    daemon.last_request = Some(Instant::now());
                    daemon.restart();
                    let _ = stream.write_all(b"ok\n");
                }
            }
        });
        Supervisor { daemon, socket }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.daemon.lock().unwrap().log).unwrap_or_default()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.lock().unwrap().child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// The installer's view of the line: restart through the supervisor's
/// socket, health through the daemon's API.
struct TestLine<'a> {
    test_box: &'a TestBox,
    socket: PathBuf,
}

impl Line for TestLine<'_> {
    fn restart(&mut self) -> Result<(), String> {
        let mut stream = UnixStream::connect(&self.socket).map_err(|error| error.to_string())?;
        stream
            .write_all(b"restart\n")
            .map_err(|error| error.to_string())?;
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .map_err(|error| error.to_string())?;
        match answer.trim() {
            "ok" => Ok(()),
            other => Err(format!("the supervisor answered {other:?}")),
        }
    }

    fn health(&mut self) -> Result<DaemonHealth, String> {
        self.test_box.health()
    }
}

/// Builds engines with the builder double at low priority, and notes the
/// line's frames and daemon process before and after each build.
struct DoubleEngines<'a> {
    test_box: &'a TestBox,
    build_time: Duration,
    data: PathBuf,
    during_build: Vec<(u64, f64, u64, f64)>,
    state_after_build: Vec<String>,
}

impl EnginePreparer for DoubleEngines<'_> {
    fn prepare(&mut self, slot: &Path, _manifest: &SlotManifest) -> Result<String, String> {
        let sample = || self.test_box.health().unwrap();
        let before = sample();
        let model = self.test_box.ota.through_slot(
            &self.test_box.ota.current().join("model/detector.onnx"),
            slot,
        );
        let config = double_config(&self.data, &model);
        let build_time = self.build_time;
        let key = at_low_priority(|| {
            let mut builder = DoubleBuilder::new();
            builder.build_time = build_time;
            let inputs = scene_inputs(&config, &builder);
            let reference = scene_reference(&config, &inputs);
            prepare_engine(&config, &mut builder, inputs, reference)
        })
        .map_err(|error| error.to_string())??;
        let after = sample();
        self.during_build.push((
            before.frames.processed,
            before.uptime_s,
            after.frames.processed,
            after.uptime_s,
        ));
        self.state_after_build.push(after.state);
        Ok(format!("engine {key} built and validated"))
    }
}

fn criteria(deadline: Duration, min_frames: u64) -> HealthCriteria {
    HealthCriteria {
        deadline,
        min_frames,
        max_restarts: 1,
        poll: Duration::from_millis(100),
    }
}

/// The same network as the bundled model with different bytes, as a
/// retrained model would have: an unknown protobuf field (number 100,
/// varint 1) appended to the ModelProto, which ONNX readers skip.
fn retrained_model(out: &Path) {
    let mut bytes = std::fs::read(format!("{REPO}/models/sorter_yolov8n_dynamic.onnx")).unwrap();
    bytes.extend([0xA0, 0x06, 0x01]);
    std::fs::write(out, bytes).unwrap();
}

#[test]
fn a_model_update_builds_its_engine_while_the_line_sorts_commits_and_a_broken_update_rolls_back() {
    let _alone = ONE_LINE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let scratch = tempfile::tempdir().unwrap();
    let test_box = TestBox::create(scratch.path());
    let supervisor = Supervisor::start(&test_box);
    let slot_a = test_box.ota.slot_manifest(SlotName::A).unwrap();
    let old_model = slot_a.files["model/detector.onnx"].sha256.clone();
    test_box.await_running(&old_model, 10);

    // 1.1.0 changes the model.
    let release = scratch.path().join("release-1.1.0");
    std::fs::create_dir_all(release.join("model")).unwrap();
    retrained_model(&release.join("model/detector.onnx"));
    let new_model = edgesort_types::sha256_file(&release.join("model/detector.onnx")).unwrap();
    assert_ne!(new_model, old_model);
    let package = scratch.path().join("edgesort-1.1.0.esu");
    test_box.package(&release, Version::new(1, 1, 0), &package);

    let mut line = TestLine {
        test_box: &test_box,
        socket: supervisor.socket.clone(),
    };
    let mut engines = DoubleEngines {
        test_box: &test_box,
        build_time: Duration::from_secs(4),
        data: scratch.path().join("data"),
        during_build: Vec::new(),
        state_after_build: Vec::new(),
    };
    let mut events = Vec::new();
    let mut progress = |event: &Event| events.push(event.clone());
    let mut installer = Installer {
        ota: &test_box.ota,
        keys: &test_box.keys,
        board: BOARD.into(),
        criteria: criteria(Duration::from_secs(90), 20),
        reserve_bytes: 0,
        os_update_command: Vec::new(),
        line: &mut line,
        engine: &mut engines,
        progress: &mut progress,
    };
    let outcome = installer.install(&package, None).unwrap();
    drop(installer);
    assert_eq!(
        outcome,
        Outcome::Committed {
            version: Version::new(1, 1, 0),
            slot: SlotName::B
        }
    );

    // The order: the engine was ready before anything was switched.
    let step = |wanted: fn(&Event) -> bool| {
        events
            .iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("missing step in {events:?}"))
    };
    let building = step(|event| matches!(event, Event::EngineBuilding));
    let ready = step(|event| matches!(event, Event::EngineReady(_)));
    let switched = step(|event| matches!(event, Event::Switched(SlotName::B)));
    let committed = step(|event| matches!(event, Event::Committed(_)));
    assert!(step(|event| matches!(event, Event::Staged { .. })) < building);
    assert!(building < ready && ready < switched && switched < committed);

    // The line kept sorting on the old slot while the engine was built: the
    // same daemon process (its uptime ran on) processed frames throughout.
    let [(frames_before, uptime_before, frames_after, uptime_after)] = engines.during_build[..]
    else {
        panic!("one build expected: {:?}", engines.during_build)
    };
    let sorted_during_build = frames_after - frames_before;
    assert!(
        uptime_after >= uptime_before + 3.5,
        "the daemon restarted during the build: uptime {uptime_before} then {uptime_after}"
    );
    // Not a speed test: a loaded CI box processes a few frames a second.
    assert!(
        sorted_during_build >= 5,
        "only {sorted_during_build} frames were processed during a 4 s build"
    );
    assert_eq!(engines.state_after_build, ["running"]);

    // The new engine is in the cache and passed validation.
    let cache = EngineCache::open(&scratch.path().join("data/engines")).unwrap();
    let validated = cache
        .manifests()
        .unwrap()
        .into_iter()
        .filter(|manifest| {
            manifest
                .validation
                .as_ref()
                .is_some_and(|report| report.passed)
        })
        .count();
    assert_eq!(validated, 1, "one validated engine expected");
    let new_engine = cache.manifests().unwrap().remove(0);
    assert!(matches!(cache.entry(&new_engine.key), Entry::Ready { .. }));

    // Committed: slot b is what the box returns to, and the daemon serves
    // the new model.
    let state = test_box.state();
    assert_eq!(state.committed.slot, SlotName::B);
    assert_eq!(state.committed.version, Version::new(1, 1, 0));
    assert!(state.trial.is_none());
    assert_eq!(test_box.ota.current_slot(), Some(SlotName::B));
    test_box.ota.verify_slot(SlotName::B).unwrap();
    let on_new = test_box.await_running(&new_model, 20);

    // 1.2.0 carries a daemon that cannot start.
    let broken = scratch.path().join("release-1.2.0");
    std::fs::create_dir_all(broken.join("bin")).unwrap();
    let daemon = broken.join("bin/edgesortd");
    std::fs::write(
        &daemon,
        "#!/bin/sh\necho 'edgesortd 1.2.0: missing libnvinfer_plugin.so.10' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&daemon, std::fs::Permissions::from_mode(0o755)).unwrap();
    let broken_package = scratch.path().join("edgesort-1.2.0.esu");
    test_box.package(&broken, Version::new(1, 2, 0), &broken_package);
    let mut line = TestLine {
        test_box: &test_box,
        socket: supervisor.socket.clone(),
    };
    let mut events = Vec::new();
    let mut progress = |event: &Event| events.push(event.clone());
    let started = Instant::now();
    let outcome = Installer {
        ota: &test_box.ota,
        keys: &test_box.keys,
        board: BOARD.into(),
        criteria: criteria(Duration::from_secs(15), 20),
        reserve_bytes: 0,
        os_update_command: Vec::new(),
        line: &mut line,
        engine: &mut engines,
        progress: &mut progress,
    }
    .install(&broken_package, None)
    .unwrap();
    let Outcome::RolledBack { version, reason } = outcome else {
        panic!("the broken update was kept: {outcome:?}")
    };
    assert_eq!(version, Version::new(1, 2, 0));
    assert!(reason.contains("not healthy within 15 s"), "{reason}");
    assert!(events.contains(&Event::Switched(SlotName::A)), "{events:?}");
    assert!(
        matches!(events.last(), Some(Event::RolledBack(_))),
        "{events:?}"
    );
    // The slot's daemon really was the one started during the trial.
    assert!(
        supervisor.log().contains("missing libnvinfer_plugin.so.10"),
        "{}",
        supervisor.log()
    );

    // Back on slot b, committed, and sorting again on a fresh daemon.
    let state = test_box.state();
    assert_eq!(state.committed.slot, SlotName::B);
    assert_eq!(state.committed.version, Version::new(1, 1, 0));
    assert!(state.trial.is_none());
    let last = state.history.last().unwrap();
    assert_eq!(
        (last.event.as_str(), &last.version),
        ("rolled_back", &Version::new(1, 2, 0))
    );
    assert_eq!(test_box.ota.current_slot(), Some(SlotName::B));
    let resumed = test_box.await_running(&new_model, 20);
    assert!(
        resumed.uptime_s < started.elapsed().as_secs_f64(),
        "the daemon was not restarted onto slot b"
    );
    eprintln!(
        "ota: model update committed; {sorted_during_build} frames sorted during the 4 s \
         engine build by the same daemon (uptime {uptime_before:.1} -> {uptime_after:.1} s); \
         {} frames on 1.1.0 before the broken update; the broken 1.2.0 rolled back after \
         {:.1} s: {reason}",
        on_new.frames.processed,
        started.elapsed().as_secs_f64()
    );
}

/// The installer is killed (SIGKILL) at random moments, 200 times: while
/// it verifies, stages, switches, waits for the restart or the health
/// check, or commits. After each kill the box recovers as at its next
/// start; it must find exactly one consistent committed slot, the `current`
/// link on it, nothing half-written, and the line running on it.
#[test]
fn fault_injection_kills_of_the_installer_always_leave_one_committed_slot_that_runs() {
    if let (Ok(package), Ok(root)) = (std::env::var(CHILD_PACKAGE), std::env::var(CHILD_BOX)) {
        return install_as_child(Path::new(&root), Path::new(&package));
    }
    const KILLS: usize = 200;
    let _alone = ONE_LINE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let scratch = tempfile::tempdir().unwrap();
    let test_box = TestBox::create(scratch.path());
    let supervisor = Supervisor::start(&test_box);
    let model = test_box.ota.slot_manifest(SlotName::A).unwrap().files["model/detector.onnx"]
        .sha256
        .clone();
    test_box.await_running(&model, 1);

    // Each package is a release of new configuration defaults, newer than
    // any before it, so none is refused as a downgrade.
    let package_for = |release: usize| {
        let source = scratch.path().join(format!("release-{release}"));
        std::fs::create_dir_all(source.join("config")).unwrap();
        std::fs::write(
            source.join("config/defaults.toml"),
            format!("# release 1.{release}.0\n"),
        )
        .unwrap();
        let package = scratch.path().join(format!("edgesort-1.{release}.0.esu"));
        test_box.package(&source, Version::new(1, release as u64, 0), &package);
        std::fs::remove_dir_all(&source).unwrap();
        package
    };
    let installer = |package: &Path| {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "fault_injection_kills_of_the_installer_always_leave_one_committed_slot_that_runs",
                "--nocapture",
            ])
            .env(CHILD_PACKAGE, package)
            .env(CHILD_BOX, scratch.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    };
    // How long one whole install takes, and how long until it asks for the
    // restart, to spread the kills over them; measured again every 25
    // kills as the machine's load changes.
    let measure_windows = |release: usize| {
        let package = package_for(release);
        let started = Instant::now();
        let output = installer(&package).output().unwrap();
        assert!(
            output.status.success(),
            "an uninterrupted install failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            test_box.state().committed.version,
            Version::new(1, release as u64, 0)
        );
        let restart_asked = supervisor.last_request().unwrap() - started;
        (started.elapsed(), restart_asked)
    };
    let mut release = 1;
    let (mut whole, mut until_restart) = measure_windows(release);

    let mut seed: u64 = 0x07a_2026_1129;
    let mut killed_mid_way = 0;
    let mut restarts_needed = 0;
    let mut committed_by_killed = 0;
    let mut repairs_seen = std::collections::BTreeMap::<&str, usize>::new();
    for kill in 0..KILLS {
        if kill > 0 && kill % 25 == 0 {
            release += 1;
            (whole, until_restart) = measure_windows(release);
        }
        release += 1;
        let package = package_for(release);
        let committed_before = test_box.state().committed.clone();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Four kills in five land before the restart, where the files
        // change (verify, stage, seal, switch); the rest anywhere, the
        // health check and the commit included. A margin of 5 % for runs
        // that got faster since the window was measured.
        let window = if kill % 5 < 4 { until_restart } else { whole };
        let delay = window.mul_f64(0.95 * (seed >> 11) as f64 / (1u64 << 53) as f64);
        let mut child = installer(&package).spawn().unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed_mid_way += 1;
        }
        child.kill().ok();
        child.wait().unwrap();

        // The next start: recovery, as the unit's ExecStartPre runs it.
        // A restart the installer asked for completes first, as systemd
        // finishes a job whose client went away.
        let mut daemon = supervisor.daemon.lock().unwrap();
        let lock = test_box.ota.lock().unwrap_or_else(|error| {
            panic!("kill {kill} after {delay:?}: the lock outlived its installer: {error}")
        });
        let recovery = test_box.ota.recover(&lock).unwrap();
        drop(lock);
        for repair in &recovery.repairs {
            let kind = if repair.contains("removed the unfinished") {
                "removed a half-staged or half-removed slot"
            } else if repair.contains("stopped before it proved healthy") {
                "rolled back an orphaned trial"
            } else {
                "pointed current back at the committed slot"
            };
            *repairs_seen.entry(kind).or_default() += 1;
        }
        let state = recovery.state;
        assert!(
            state.trial.is_none(),
            "kill {kill}: a trial survived recovery"
        );
        let committed = state.committed.slot;
        assert!(
            state.committed == committed_before
                || state.committed.version == Version::new(1, release as u64, 0),
            "kill {kill}: committed {:?}, neither the old {committed_before:?} nor the new",
            state.committed
        );
        if state.committed != committed_before {
            committed_by_killed += 1;
        }
        assert_eq!(test_box.ota.current_slot(), Some(committed), "kill {kill}");
        let manifest = test_box
            .ota
            .verify_slot(committed)
            .unwrap_or_else(|error| panic!("kill {kill} after {delay:?}: {error}"));
        assert_eq!(manifest.version, state.committed.version);
        let slots = std::fs::read_dir(test_box.ota.root().join("slots"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains('.'))
            .collect::<Vec<_>>();
        assert!(slots.is_empty(), "kill {kill}: leftovers {slots:?}");

        // It runs: a daemon started on another slot (the killed trial's)
        // is restarted on the committed one.
        let restart = daemon.started_on != Some(committed)
            || daemon
                .child
                .as_mut()
                .is_none_or(|child| child.try_wait().unwrap().is_some());
        if restart {
            restarts_needed += 1;
            daemon.restart();
        }
        drop(daemon);
        let before = test_box.await_running(&model, 1);
        test_box.await_running(&model, before.frames.processed + 2);
    }
    assert!(
        killed_mid_way >= KILLS * 3 / 4,
        "only {killed_mid_way} kills landed mid-way"
    );
    eprintln!(
        "ota fault injection: {KILLS} kills over a {whole:?} install ({until_restart:?} until \
         it asks for the restart), {killed_mid_way} mid-way; \
         {committed_by_killed} had already committed, {restarts_needed} left the daemon on the \
         trial slot (restarted on the committed one); recovery repairs: {repairs_seen:?}"
    );
}

/// The installer process the fault-injection test kills.
fn install_as_child(root: &Path, package: &Path) {
    let test_box = TestBox::reopen(root);
    let mut line = TestLine {
        test_box: &test_box,
        socket: root.join("supervisor.sock"),
    };
    let mut engines = DoubleEngines {
        test_box: &test_box,
        build_time: Duration::ZERO,
        data: root.join("data"),
        during_build: Vec::new(),
        state_after_build: Vec::new(),
    };
    let mut progress = |_: &Event| {};
    let outcome = Installer {
        ota: &test_box.ota,
        keys: &test_box.keys,
        board: BOARD.into(),
        criteria: criteria(Duration::from_secs(60), 3),
        reserve_bytes: 0,
        os_update_command: Vec::new(),
        line: &mut line,
        engine: &mut engines,
        progress: &mut progress,
    }
    .install(package, None)
    .unwrap();
    assert!(matches!(outcome, Outcome::Committed { .. }), "{outcome:?}");
}
