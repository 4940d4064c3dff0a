use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use edgesort_actuate::EjectorScheduler;
use edgesort_pipeline::handoff::FrameSender;
use edgesort_types::config::Config;
use edgesort_types::{Clock, FramePool, MonotonicClock};
use serde::Serialize;

use crate::control::{DetectorFactory, EngineInfo, Snapshot};
use crate::status::{Board, StageStatus};
use edgesort_infer::Detect;

/// First wait before restarting a failed stage; it doubles per failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A stage that ran this long before failing starts its backoff afresh.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How often the supervisor looks at its stages.
const SUPERVISE_EVERY: Duration = Duration::from_millis(10);

/// A supervised stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageName {
    /// Frames from the camera or the replay clip.
    Capture,
    /// The detector.
    Inference,
    /// Tracking, decisions and pulse scheduling.
    Sorting,
    /// The event database writer.
    Store,
}

impl StageName {
    /// All of them, upstream first.
    pub const ALL: [StageName; 4] = [
        StageName::Capture,
        StageName::Inference,
        StageName::Sorting,
        StageName::Store,
    ];

    /// Its name in status and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Capture => "capture",
            StageName::Inference => "inference",
            StageName::Sorting => "sorting",
            StageName::Store => "store",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Everything the stages, the supervisor and the control plane share.
pub(crate) struct Shared {
    pub started: Instant,
    pub clock: Arc<dyn Clock>,
    /// The configuration the line runs with (live changes included).
    pub config: Mutex<Arc<Config>>,
    /// Rules changed live, for the sorting stage to pick up.
    pub new_rules: Mutex<Option<Arc<Config>>>,
    pub board: Mutex<Board>,
    pub stages: Mutex<Vec<StageStatus>>,
    pub snapshot: Mutex<Option<Arc<Snapshot>>>,
    pub frames: FrameSender,
    pub ejectors: EjectorScheduler,
    /// The detector in service: what it is, and what builds it again when
    /// the inference stage restarts.
    pub engine: Mutex<(EngineInfo, DetectorFactory)>,
    /// A detector built and loaded beside the running one, for the
    /// inference stage to take between two frames.
    pub swap: Mutex<Option<Swap>>,
    /// Frame buffers the detector in service reads in place, for the camera
    /// to fill in its own layout (the GPU line); `None` on the CPU path.
    pub frame_pool: Mutex<Option<Arc<dyn FramePool>>>,
    /// Faults asked for by a chaos test, one per stage.
    faults: [AtomicBool; 4],
    pub stopping: AtomicBool,
    /// Outcomes of manual test pulses, by request id.
    pub manual: Mutex<HashMap<u64, String>>,
    pub next_part_id: AtomicU64,
    pub next_manual_id: AtomicU64,
    /// Sections changed through the API that take effect on restart.
    pub pending_restart: Mutex<Vec<String>>,
}

/// A detector waiting to go into service.
pub(crate) struct Swap {
    pub detector: Box<dyn Detect>,
    pub engine: EngineInfo,
    pub factory: DetectorFactory,
}

/// Test pulses carry ids from here up, apart from parts.
pub(crate) const MANUAL_PULSE_IDS: u64 = 1 << 62;

/// Locks plain counters that a panicking stage cannot leave inconsistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(
        config: Config,
        board: Board,
        frames: FrameSender,
        ejectors: EjectorScheduler,
        engine: EngineInfo,
        detector: DetectorFactory,
    ) -> Self {
        let stages = StageName::ALL
            .iter()
            .map(|stage| StageStatus {
                name: stage.as_str().to_string(),
                state: "running".into(),
                restarts: 0,
                last_error: None,
            })
            .collect();
        Shared {
            started: Instant::now(),
            clock: Arc::new(MonotonicClock),
            config: Mutex::new(Arc::new(config)),
            new_rules: Mutex::new(None),
            board: Mutex::new(board),
            stages: Mutex::new(stages),
            snapshot: Mutex::new(None),
            frames,
            ejectors,
            engine: Mutex::new((engine, detector)),
            swap: Mutex::new(None),
            frame_pool: Mutex::new(None),
            faults: Default::default(),
            stopping: AtomicBool::new(false),
            manual: Mutex::new(HashMap::new()),
            next_part_id: AtomicU64::new(1),
            next_manual_id: AtomicU64::new(MANUAL_PULSE_IDS),
            pending_restart: Mutex::new(Vec::new()),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        lock(&self.config).clone()
    }

    pub fn board(&self) -> MutexGuard<'_, Board> {
        lock(&self.board)
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn inject_fault(&self, stage: StageName) {
        self.faults[stage.index()].store(true, Ordering::SeqCst);
    }

    /// Fails the calling stage if a fault was injected into it.
    pub fn check_fault(&self, stage: StageName) {
        if self.faults[stage.index()].swap(false, Ordering::SeqCst) {
            panic!("fault injected into the {} stage", stage.as_str());
        }
    }

    /// A stage went down: the outputs go safe at once, not at the stall timeout.
    fn stage_down(&self, stage: StageName, error: &str) {
        self.ejectors.hold();
        let now = self.clock.now().as_nanos();
        tracing::error!(stage = stage.as_str(), error, "stage down; ejectors held");
        self.board().outage_began(stage.as_str(), error, now);
        let mut stages = lock(&self.stages);
        let status = &mut stages[stage.index()];
        status.state = "down".into();
        status.last_error = Some(error.to_string());
    }

    fn set_stage_state(&self, stage: StageName, state: &str) {
        lock(&self.stages)[stage.index()].state = state.to_string();
    }
}

/// Marks the stage down from inside its own thread as it unwinds, so that
/// the outputs are safe before the supervisor even notices.
struct DownOnPanic {
    shared: Arc<Shared>,
    stage: StageName,
}

impl Drop for DownOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.stage_down(self.stage, "panicked");
        }
    }
}

/// A stage body: runs until its input ends (`Ok`) or it fails (`Err`).
pub(crate) type StageBody = Box<dyn FnMut() -> Result<(), String> + Send>;

struct Supervised {
    stage: StageName,
    body: Arc<Mutex<StageBody>>,
    thread: Option<JoinHandle<Result<(), String>>>,
    started_at: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
}

fn spawn(
    shared: &Arc<Shared>,
    stage: StageName,
    body: &Arc<Mutex<StageBody>>,
) -> JoinHandle<Result<(), String>> {
    let shared = shared.clone();
    let body = body.clone();
    std::thread::Builder::new()
        .name(stage.as_str().into())
        .spawn(move || {
            let _guard = DownOnPanic {
                shared: shared.clone(),
                stage,
            };
            let result = (lock(&body))();
            if let Err(error) = &result
                && !shared.stopping()
            {
                shared.stage_down(stage, error);
            }
            result
        })
        .expect("spawning a pipeline stage")
}

/// Runs `stages` (upstream first), restarts the ones that fail, and on
/// shutdown stops them upstream first so that every queue drains.
pub(crate) fn supervise(
    shared: Arc<Shared>,
    stages: Vec<(StageName, StageBody)>,
) -> JoinHandle<()> {
    let mut supervised: Vec<Supervised> = stages
        .into_iter()
        .map(|(stage, body)| {
            let body = Arc::new(Mutex::new(body));
            Supervised {
                stage,
                thread: Some(spawn(&shared, stage, &body)),
                body,
                started_at: Instant::now(),
                backoff: FIRST_BACKOFF,
                restart_at: None,
            }
        })
        .collect();
    std::thread::Builder::new()
        .name("supervisor".into())
        .spawn(move || {
            while !shared.stopping() {
                let now = Instant::now();
                for entry in &mut supervised {
                    watch(&shared, entry, now);
                }
                std::thread::sleep(SUPERVISE_EVERY);
            }
            // Upstream first: each stage's end closes the next one's input.
            for mut entry in supervised {
                if entry.stage == StageName::Capture {
                    shared.frames.close();
                }
                if let Some(thread) = entry.thread.take() {
                    let _ = thread.join();
                }
                shared.set_stage_state(entry.stage, "stopped");
                // Dropping the body drops its senders: the next stage sees
                // its input close once it has taken what is queued.
                drop(entry);
            }
        })
        .expect("spawning the supervisor")
}

fn watch(shared: &Arc<Shared>, entry: &mut Supervised, now: Instant) {
    if let Some(thread) = &entry.thread
        && thread.is_finished()
    {
        let thread = entry.thread.take().expect("checked above");
        match thread.join() {
            Ok(Ok(())) => {
                tracing::info!(stage = entry.stage.as_str(), "stage ended with its input");
                shared.set_stage_state(entry.stage, "ended");
                return;
            }
            Ok(Err(_)) => {}
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|text| text.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panicked".into());
                lock(&shared.stages)[entry.stage.index()].last_error =
                    Some(format!("panicked: {message}"));
            }
        }
        if now.duration_since(entry.started_at) >= STABLE_AFTER {
            entry.backoff = FIRST_BACKOFF;
        }
        entry.restart_at = Some(now + entry.backoff);
        tracing::warn!(
            stage = entry.stage.as_str(),
            backoff_ms = entry.backoff.as_millis() as u64,
            "restarting stage"
        );
        entry.backoff = (entry.backoff * 2).min(MAX_BACKOFF);
    }
    if entry.restart_at.is_some_and(|at| at <= now) {
        entry.restart_at = None;
        entry.started_at = now;
        entry.thread = Some(spawn(shared, entry.stage, &entry.body));
        let mut stages = lock(&shared.stages);
        let status = &mut stages[entry.stage.index()];
        status.state = "running".into();
        status.restarts += 1;
    }
}
