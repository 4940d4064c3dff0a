use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use edgesort_actuate::{
    EjectorBank, EjectorScheduler, EstopState, Limits, PulseRequest, ResetDone, ResetRefused,
    SchedulerOptions,
};
use edgesort_actuate::{belt_motion, ejector_specs};
use edgesort_pipeline::handoff::{FrameReceiver, latest_frame};
use edgesort_store::{RetentionPolicy, Store};
use edgesort_types::config::Config;
use edgesort_types::{BoundingBox, Frame, write_atomically};
use embedded_hal::digital::OutputPin;
use serde::Serialize;

use crate::capture::capture_stage;
use crate::config_change::{changed_sections, check_editable, field_changes, split};
use crate::inference::inference_stage;
use crate::sorting::sorting_stage;
use crate::stage::{Shared, StageName, Swap, lock, supervise};
use crate::status::{
    Alarm, BeltView, Board, CameraStatus, Drops, EstopView, Fps, Frames, GpioStatus, LineState,
    OutputStatus, Status, StoreStatus, ago, database_size, disk_free, disk_low, recently,
};
use crate::store_stage::store_stage;
use crate::{ConfigApplied, ConfigRejected, DaemonError};
use edgesort_infer::Detect;

/// Builds a detector for the configuration; called again on every restart
/// of the inference stage.
pub type DetectorFactory = Arc<dyn Fn(&Config) -> Result<Box<dyn Detect>, String> + Send + Sync>;

/// Wires inputs (the e-stop, its reset button, an encoder) into the ejector
/// thread once it runs. A reset button reports each press's result to the
/// [`ResetLog`], which writes it to the audit log.
pub type WireInputs = Box<dyn FnOnce(&mut EjectorScheduler, ResetLog) + Send>;

/// Records an e-stop reset attempt: who asked, and what became of it.
pub type ResetLog = Arc<dyn Fn(&str, &Result<ResetDone, ResetRefused>) + Send + Sync>;

/// Decisions queued for the store at most; a full queue makes the sorting
/// stage wait rather than lose a row.
const STORE_QUEUE: usize = 4096;

/// The line counts as running while it has processed a frame this recently.
const RUNNING_WINDOW: Duration = Duration::from_secs(1);

/// How long a stopping daemon lets pulses already on run out.
const WIND_DOWN: Duration = Duration::from_secs(1);

/// How long a test pulse's outcome is waited for.
const TEST_PULSE_WAIT: Duration = Duration::from_secs(1);

/// The inference engine in service, for the status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EngineInfo {
    /// E.g. `tract (CPU)` or `TensorRT 10.3 (int8)`.
    pub backend: String,
    /// The model or engine file.
    pub model: String,
    /// sha256 of the model file the detector was built from: tells an
    /// update's health check which model is really in service.
    pub model_sha256: Option<String>,
    /// `fp32`, `fp16` or `int8`.
    pub precision: String,
    /// The TensorRT engine's cache key, when one serves.
    pub engine_key: Option<String>,
    /// The TensorRT engine file, when one serves.
    pub engine: Option<String>,
    /// The GPU the engine runs on, when one serves.
    pub gpu: Option<String>,
    /// Why a less preferred engine is in service, if one is.
    pub fallback: Option<String>,
    /// Which check sent the line to it (`no_active_record`, `other_gpu`,
    /// ...; see `edgesort_serve::Fallback::check`).
    pub fallback_check: Option<String>,
}

/// What the daemon is built from.
pub struct DaemonSetup<P> {
    /// The validated configuration.
    pub config: Config,
    /// The file it came from; configuration changes are saved there.
    pub config_path: PathBuf,
    /// Builds the detector.
    pub detector: DetectorFactory,
    /// Describes it.
    pub engine: EngineInfo,
    /// One output per ejector, in configuration order.
    pub pins: Vec<P>,
    /// Wires the e-stop (and an encoder) into the ejector thread.
    pub inputs: Option<WireInputs>,
}

/// A box drawn on the live snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlay {
    /// Where, in frame pixels.
    pub bbox: BoundingBox,
    /// Its text.
    pub label: String,
    /// Lane index for its colour; `u32::MAX` for a raw detection.
    pub lane: u32,
}

/// The newest processed frame with what the line made of it.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The frame.
    pub frame: Arc<Frame>,
    /// Raw detections.
    pub detections: Vec<Overlay>,
    /// Tracks seen in this frame, with id, class and lane.
    pub tracks: Vec<Overlay>,
}

/// Why a manual test pulse was not fired.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PulseRefused {
    /// No ejector serves that lane.
    #[error("no ejector serves lane {lane:?}; lanes with ejectors: {lanes}")]
    NoSuchLane {
        /// What was asked for.
        lane: String,
        /// What exists.
        lanes: String,
    },
    /// Parts are being sorted; a test pulse could knock the wrong part.
    #[error(
        "the line is running: a test pulse could eject the wrong part (force it to fire anyway)"
    )]
    LineRunning,
    /// The e-stop latch holds every output low.
    #[error("the e-stop is latched ({state}): reset it first")]
    Estop {
        /// `pressed` or `released_awaiting_reset`.
        state: &'static str,
    },
}

/// Why an e-stop reset asked for through [`Daemon::reset_estop`] was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EstopResetRefused {
    /// The call came from another machine and the box does not allow that.
    #[error(
        "remote e-stop resets are off on this box: reset at the box (reset button or \
         `edgesort estop reset`), or set gpio.estop.remote_reset = true there"
    )]
    RemoteResetOff,
    /// The latch refused it.
    #[error(transparent)]
    Latch(#[from] ResetRefused),
}

/// The running appliance: a supervised line and its control plane.
pub struct Daemon {
    shared: Arc<Shared>,
    frames: Arc<FrameReceiver>,
    supervisor: Option<JoinHandle<()>>,
    config_path: PathBuf,
    store_path: PathBuf,
    /// A connection of its own for the API's reads and audit rows: SQLite's
    /// WAL lets it read while the store stage writes.
    reader: Arc<Mutex<Store>>,
    reset_log: ResetLog,
}

impl Daemon {
    /// Opens the store (moving a corrupt one aside), starts the ejector
    /// thread and every stage.
    pub fn start<P: OutputPin + Send + 'static>(
        setup: DaemonSetup<P>,
    ) -> Result<Daemon, DaemonError> {
        let DaemonSetup {
            config,
            config_path,
            detector,
            engine,
            pins,
            inputs,
        } = setup;
        if pins.len() != config.ejectors.len() {
            return Err(DaemonError::PinCount {
                pins: pins.len(),
                ejectors: config.ejectors.len(),
            });
        }
        let source = match (&config.camera.device, &config.camera.replay) {
            (Some(device), _) => device.display().to_string(),
            (None, Some(clip)) => format!("replay: {}", clip.display()),
            (None, None) => return Err(DaemonError::NoSource),
        };

        let store_path = config.store.path.clone();
        let (mut store, reset) = Store::open_checked(&store_path)?;
        let run_id = store.begin_run()?;
        let reader = Arc::new(Mutex::new(Store::open(&store_path)?));
        let reset_log = reset_log(reader.clone());

        let outputs = ejector_specs(&config).into_iter().zip(pins).collect();
        let bank = EjectorBank::new(outputs, Limits::from_config(&config))?;
        let mut ejectors = EjectorScheduler::spawn(
            bank,
            belt_motion(&config),
            Arc::new(edgesort_types::MonotonicClock),
            SchedulerOptions {
                realtime_priority: config.gpio.realtime_priority,
                spin: Duration::from_micros(config.gpio.spin_us.into()),
                ..SchedulerOptions::default()
            },
        );
        if let Some(wire) = inputs {
            wire(&mut ejectors, reset_log.clone());
        }

        let mut board = Board::new(CameraStatus {
            source,
            state: "opening".into(),
            detail: None,
            width: config.camera.width,
            height: config.camera.height,
            path: None,
        });
        board.store_reset = reset.map(|reset| reset.to_string());
        let (frame_sender, frame_receiver) = latest_frame();
        let frames = Arc::new(frame_receiver);
        let policy = RetentionPolicy::from_config(&config.store);
        let shared = Arc::new(Shared::new(
            config.clone(),
            board,
            frame_sender,
            ejectors,
            engine,
            detector,
        ));

        let (detected_sender, detected_receiver) = crossbeam_channel::bounded(2);
        let (store_sender, store_receiver) = crossbeam_channel::bounded(STORE_QUEUE);
        let stages = vec![
            (
                StageName::Capture,
                capture_stage(shared.clone(), &config.camera),
            ),
            (
                StageName::Inference,
                inference_stage(shared.clone(), frames.clone(), detected_sender),
            ),
            (
                StageName::Sorting,
                sorting_stage(shared.clone(), detected_receiver, store_sender),
            ),
            (
                StageName::Store,
                store_stage(
                    shared.clone(),
                    store_path.clone(),
                    run_id,
                    store,
                    store_receiver,
                    policy,
                ),
            ),
        ];
        let supervisor = supervise(shared.clone(), stages);
        tracing::info!(run = run_id, "line started");
        Ok(Daemon {
            shared,
            frames,
            supervisor: Some(supervisor),
            config_path,
            store_path,
            reader,
            reset_log,
        })
    }

    /// The line's state, counters, latencies and alarms now.
    pub fn status(&self) -> Status {
        let now = Instant::now();
        let config = self.shared.config();
        let outputs_high = self.shared.ejectors.outputs_high();
        let activations = self.shared.ejectors.activations();
        let estop = self.shared.ejectors.estop();
        let belt = self.shared.ejectors.belt();
        let estop_latched = estop.state != EstopState::Clear;
        let stages = lock(&self.shared.stages).clone();
        let stage_down = stages.iter().any(|stage| stage.state == "down");
        let mut board = self.shared.board();
        let stall_window = config.stall_timeout();
        let stalled = board.last_processed.is_some()
            && !board.input_ended
            && !recently(board.last_processed, now, stall_window);
        let camera_lost = board.camera.state == "lost";
        let state = if self.shared.stopping() {
            LineState::Stopped
        } else if board.input_ended && board.settled() && !stage_down {
            LineState::Finished
        } else if stage_down || camera_lost || estop_latched || belt.encoder_silent || stalled {
            LineState::Degraded
        } else if board.frames_processed == 0 {
            LineState::Starting
        } else {
            LineState::Running
        };

        let store_size = database_size(&self.store_path);
        let free = disk_free(&self.store_path);
        let mut alarms = Vec::new();
        let mut alarm = |kind: &str, message: String| {
            alarms.push(Alarm {
                kind: kind.into(),
                message,
            })
        };
        if camera_lost {
            alarm(
                "camera_lost",
                format!(
                    "camera {} lost: {}",
                    board.camera.source,
                    board.camera.detail.as_deref().unwrap_or("no frames")
                ),
            );
        }
        match estop.state {
            EstopState::Clear => {}
            EstopState::Pressed => alarm(
                "estop_latched",
                "e-stop pressed: every ejector output is held low; release it, then reset".into(),
            ),
            EstopState::ReleasedAwaitingReset => alarm(
                "estop_latched",
                format!(
                    "e-stop released, awaiting reset: outputs stay low until a reset ({})",
                    reset_ways(&config)
                ),
            ),
        }
        if estop.input_fault {
            alarm(
                "estop_input_fault",
                "the e-stop input could not be read: it counts as pressed; check its wiring, \
                 then reset"
                    .into(),
            );
        }
        if belt.encoder_silent {
            let silent_ms = config.gpio.encoder.as_ref().map_or(0, |e| e.silent_ms);
            alarm(
                "encoder_silent",
                format!(
                    "the belt encoder gave no edge for {silent_ms} ms while parts moved: the \
                     belt position is unknown, pulses are refused (no_belt_position)"
                ),
            );
        }
        let engine = lock(&self.shared.engine).0.clone();
        if let Some(fallback) = &engine.fallback {
            alarm("engine_fallback", fallback.clone());
        }
        if disk_low(free) {
            alarm(
                "disk_low",
                format!("{} MiB free on the event store's disk", free >> 20),
            );
        }
        if let Some(reset) = &board.store_reset {
            alarm("store_reset", reset.clone());
        }
        for stage in stages.iter().filter(|stage| stage.state == "down") {
            alarm(
                "stage_down",
                format!(
                    "{} stage down ({}); restarting",
                    stage.name,
                    stage.last_error.as_deref().unwrap_or("failed")
                ),
            );
        }
        if stalled && !stage_down {
            let since = board.last_processed.expect("stalled implies a frame");
            alarm(
                "stalled",
                format!(
                    "no frame processed for {}; outputs held low",
                    ago(since, now)
                ),
            );
        }

        let capture_fps = board.capture_rate.per_second(now);
        let processed_fps = board.processed_rate.per_second(now);
        let outputs = config
            .ejectors
            .iter()
            .enumerate()
            .map(|(index, ejector)| OutputStatus {
                lane: ejector.lane.clone(),
                pin: ejector.pin,
                high: index < 64 && outputs_high & (1 << index) != 0,
                activations: activations.get(index).copied().unwrap_or(0),
            })
            .collect();
        Status {
            state,
            healthy: state == LineState::Running,
            uptime_s: self.shared.started.elapsed().as_secs_f64(),
            fps: Fps {
                camera: capture_fps,
                processed: processed_fps,
            },
            frames: Frames {
                captured: board.frames_captured,
                processed: board.frames_processed,
            },
            drops: Drops {
                pipeline: self.frames.dropped(),
                corrupt: board.corrupt,
                driver: board.driver_drops,
            },
            latency_ms: board.latency_by_stage(),
            latency_history_ms: board.latency.history(),
            stages,
            engine,
            camera: board.camera.clone(),
            gpio: GpioStatus {
                estop: EstopView {
                    wired: config.gpio.estop.is_some(),
                    state: estop.state,
                    input_fault: estop.input_fault,
                    trips: estop.trips,
                    last_response_ms: estop
                        .last_response
                        .map(|response| response.as_secs_f64() * 1e3),
                    last_reaction_ms: estop
                        .last_reaction
                        .map(|reaction| reaction.as_secs_f64() * 1e3),
                    reset_input: config.gpio.reset.as_ref().map(|reset| reset.pin),
                    remote_reset: config
                        .gpio
                        .estop
                        .as_ref()
                        .is_some_and(|estop| estop.remote_reset),
                },
                safe: state != LineState::Running,
                outputs,
            },
            belt: BeltView {
                speed_mm_s: belt.speed_mm_s,
                encoder: belt.encoder,
                encoder_edges: belt.encoder_edges,
                encoder_silent: belt.encoder_silent,
            },
            counts: board.counts.clone(),
            alarms,
            store: StoreStatus {
                path: self.store_path.display().to_string(),
                size_bytes: store_size,
                disk_free_bytes: free,
                queued: board.writes_sent.saturating_sub(board.writes_committed),
            },
            outages: board.outages.iter().cloned().collect(),
        }
    }

    /// The newest processed frame and its overlays.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        lock(&self.shared.snapshot).clone()
    }

    /// The configuration file as saved, and the sections saved but not yet
    /// in force (they wait for a restart).
    pub fn config_text(&self) -> Result<(String, Vec<String>), DaemonError> {
        let text = std::fs::read_to_string(&self.config_path).map_err(|source| {
            DaemonError::ConfigFile {
                path: self.config_path.clone(),
                source,
            }
        })?;
        Ok((text, lock(&self.shared.pending_restart).clone()))
    }

    /// Checks `text` as a whole configuration, saves it (atomically) and
    /// applies what is safe to apply live; `actor` goes into the audit log.
    /// An invalid one changes nothing, and so does one that changes more
    /// than the API may (`NotEditable`, audited as `config.put.refused`).
    pub fn put_config(&self, text: &str, actor: &str) -> Result<ConfigApplied, ConfigRejected> {
        let new = Config::from_file_text(text, &self.config_path)?;
        // The file as saved, which is what the caller edited; the running
        // configuration where the file cannot be read back.
        let saved = std::fs::read_to_string(&self.config_path)
            .ok()
            .and_then(|text| Config::from_file_text(&text, &self.config_path).ok())
            .unwrap_or_else(|| (*self.shared.config()).clone());
        if let Err(refused) = check_editable(&saved, &new) {
            let detail = serde_json::json!({
                "file": self.config_path.display().to_string(),
                "refused": refused.to_string(),
                "changes": field_changes(&saved, &new),
            });
            self.audit(actor, "config.put.refused", &detail.to_string());
            tracing::warn!(actor, "{refused}");
            return Err(refused);
        }
        write_atomically(&self.config_path, text.as_bytes()).map_err(|source| {
            ConfigRejected::Save {
                path: self.config_path.clone(),
                source,
            }
        })?;
        Ok(self.apply_config(&new, &saved, actor, "config.put"))
    }

    /// Reads the configuration file again (a technician edited it; SIGHUP,
    /// `systemctl reload edgesortd`) and applies it as [`Daemon::put_config`]
    /// does, without writing it. An invalid file changes nothing, and the
    /// line goes on with what it runs.
    pub fn reload_config(&self, actor: &str) -> Result<ConfigApplied, ConfigRejected> {
        let text =
            std::fs::read_to_string(&self.config_path).map_err(|source| ConfigRejected::Read {
                path: self.config_path.clone(),
                source,
            })?;
        let new = Config::from_file_text(&text, &self.config_path)?;
        let running = (*self.shared.config()).clone();
        Ok(self.apply_config(&new, &running, actor, "config.reload"))
    }

    /// Puts the live sections of `new` in force, notes the rest as waiting
    /// for a restart, and audits the change as `action`, field by field
    /// against `before`.
    fn apply_config(
        &self,
        new: &Config,
        before: &Config,
        actor: &str,
        action: &str,
    ) -> ConfigApplied {
        let running = self.shared.config();
        let changed = changed_sections(&running, new);
        let applied = split(&changed);
        if !applied.live.is_empty() {
            let mut merged = (*running).clone();
            merged.rules = new.rules.clone();
            let merged = Arc::new(merged);
            *lock(&self.shared.config) = merged.clone();
            *lock(&self.shared.new_rules) = Some(merged);
        }
        *lock(&self.shared.pending_restart) = applied.on_restart.clone();
        let detail = serde_json::json!({
            "file": self.config_path.display().to_string(),
            "live": applied.live,
            "on_restart": applied.on_restart,
            "changes": field_changes(before, new),
        });
        self.audit(actor, action, &detail.to_string());
        tracing::info!(actor, live = ?applied.live, on_restart = ?applied.on_restart, "configuration changed");
        applied
    }

    /// Fires lane `lane`'s ejector once by hand. Refused while parts are
    /// being sorted unless `force`. Returns the pulse's outcome (`fired`,
    /// `stalled`, ...), or `pending` if the ejector thread has not reported yet.
    pub fn test_pulse(&self, lane: &str, force: bool, actor: &str) -> Result<String, PulseRefused> {
        let config = self.shared.config();
        let Some(index) = config.ejectors.iter().position(|e| e.lane == lane) else {
            let lanes: Vec<_> = config.ejectors.iter().map(|e| e.lane.as_str()).collect();
            return Err(PulseRefused::NoSuchLane {
                lane: lane.into(),
                lanes: lanes.join(", "),
            });
        };
        let estop = self.shared.ejectors.estop().state;
        if estop != EstopState::Clear {
            return Err(PulseRefused::Estop {
                state: estop.as_str(),
            });
        }
        let running = {
            let board = self.shared.board();
            recently(board.last_processed, Instant::now(), RUNNING_WINDOW)
        };
        if running && !force {
            return Err(PulseRefused::LineRunning);
        }
        let id = self.shared.next_manual_id.fetch_add(1, Ordering::Relaxed);
        let ejector = &config.ejectors[index];
        let request = PulseRequest {
            part_id: id,
            ejector: index,
            seen_at: self.shared.clock.now(),
            distance_mm: 0.0,
            duration: Duration::from_millis(ejector.pulse_ms.into()),
        };
        if let Err(error) = self.shared.ejectors.schedule(request) {
            return Ok(format!("failed: {error}"));
        }
        self.audit(
            actor,
            "ejector.test",
            &serde_json::json!({"lane": lane, "pin": ejector.pin, "forced": force}).to_string(),
        );
        let deadline = Instant::now() + TEST_PULSE_WAIT;
        while Instant::now() < deadline {
            if let Some(outcome) = lock(&self.shared.manual).remove(&id) {
                return Ok(outcome);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok("pending".into())
    }

    /// Puts another detector in service without stopping the line: it is
    /// built and loaded here while the running one serves, and the inference
    /// stage takes it between two frames. Tracks, planned pulses and the
    /// frame stream go on as they were; a later restart of the inference
    /// stage builds from `factory`. Audited as `engine.swap` for `actor`,
    /// whether it worked or not.
    pub fn swap_detector(
        &self,
        factory: DetectorFactory,
        engine: EngineInfo,
        actor: &str,
    ) -> Result<(), DaemonError> {
        let from = lock(&self.shared.engine).0.clone();
        let detail = |result: &str| {
            serde_json::json!({
                "result": result,
                "from": {"backend": from.backend, "model": from.model, "engine_key": from.engine_key},
                "to": {"backend": engine.backend, "model": engine.model, "engine_key": engine.engine_key},
            })
            .to_string()
        };
        let detector = match factory(&self.shared.config()) {
            Ok(detector) => detector,
            Err(reason) => {
                self.audit(actor, "engine.swap", &detail(&format!("refused: {reason}")));
                return Err(DaemonError::BuildSwappedDetector {
                    backend: engine.backend,
                    reason,
                });
            }
        };
        self.audit(actor, "engine.swap", &detail("swapped"));
        tracing::info!(from = %from.backend, to = %engine.backend, actor, "detector ready; it serves from the next frame");
        *lock(&self.shared.swap) = Some(Swap {
            detector,
            engine,
            factory,
        });
        Ok(())
    }

    /// Resets the e-stop latch for `actor`, audited whatever the result. A
    /// `remote` caller (another machine, through the API) is refused unless
    /// the box allows remote resets (`gpio.estop.remote_reset`).
    pub fn reset_estop(&self, actor: &str, remote: bool) -> Result<ResetDone, EstopResetRefused> {
        let allowed = self
            .shared
            .config()
            .gpio
            .estop
            .as_ref()
            .is_some_and(|estop| estop.remote_reset);
        if remote && !allowed {
            self.audit(
                actor,
                "estop.reset",
                &serde_json::json!({"result": "refused", "reason": "remote resets are off"})
                    .to_string(),
            );
            tracing::warn!(actor, "remote e-stop reset refused: remote resets are off");
            return Err(EstopResetRefused::RemoteResetOff);
        }
        let result = self.shared.ejectors.reset_estop();
        (self.reset_log)(actor, &result);
        Ok(result?)
    }

    /// Drives every output low now and fires nothing more until the daemon
    /// restarts (SIGQUIT); the rest of the line stops in order as usual.
    pub fn disarm(&self) {
        self.shared.ejectors.disarm();
        tracing::warn!("ejectors disarmed: outputs low, no pulse fires until restart");
    }

    /// Runs `read` on the daemon's reading connection to the event store.
    pub fn with_store<T>(&self, read: impl FnOnce(&Store) -> T) -> T {
        read(&lock(&self.reader))
    }

    /// Makes `stage` fail at its next step, as a crash would: for chaos tests
    /// of the supervision.
    pub fn inject_fault(&self, stage: StageName) {
        self.shared.inject_fault(stage);
    }

    /// The configuration the line runs with now, live changes included.
    pub fn config(&self) -> Arc<Config> {
        self.shared.config()
    }

    /// The configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Stops the stages upstream first, lets planned pulses fire, writes
    /// every row, and drives the outputs low; the status at the end.
    pub fn shutdown(mut self) -> Status {
        self.stop();
        self.status()
    }

    fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.join();
            tracing::info!("every stage stopped");
            // A pulse that fired as the sorting stage settled may still be
            // on; the outputs end low once it is over.
            self.shared.ejectors.wind_down(WIND_DOWN);
        }
    }

    fn audit(&self, actor: &str, action: &str, detail: &str) {
        if let Err(error) = lock(&self.reader).audit(actor, action, detail) {
            tracing::error!(%error, action, "cannot write the audit log");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The audit log's writer for e-stop resets, shared by the reset button's
/// thread and [`Daemon::reset_estop`].
fn reset_log(store: Arc<Mutex<Store>>) -> ResetLog {
    Arc::new(move |actor, result| {
        let detail = match result {
            Ok(ResetDone::Rearmed) => serde_json::json!({"result": "rearmed"}),
            Ok(ResetDone::WasClear) => serde_json::json!({"result": "was_clear"}),
            Err(refused) => {
                serde_json::json!({"result": "refused", "reason": refused.to_string()})
            }
        };
        match result {
            Ok(ResetDone::Rearmed) => tracing::warn!(actor, "e-stop reset: ejectors armed again"),
            Ok(ResetDone::WasClear) => tracing::info!(actor, "e-stop reset: it was not latched"),
            Err(refused) => tracing::warn!(actor, %refused, "e-stop reset refused"),
        }
        if let Err(error) = lock(&store).audit(actor, "estop.reset", &detail.to_string()) {
            tracing::error!(%error, "cannot write the audit log");
        }
    })
}

/// How this box's e-stop can be reset, for the alarm's text.
fn reset_ways(config: &Config) -> String {
    let mut ways = Vec::new();
    if let Some(reset) = &config.gpio.reset {
        ways.push(format!("the reset button on pin {}", reset.pin));
    }
    ways.push("`edgesort estop reset` on the box".to_string());
    if config
        .gpio
        .estop
        .as_ref()
        .is_some_and(|estop| estop.remote_reset)
    {
        ways.push("the API".to_string());
    }
    ways.join(", ")
}
