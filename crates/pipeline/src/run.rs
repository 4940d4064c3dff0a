use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use edgesort_actuate::{
    EjectorBank, EjectorScheduler, Limits, PulseReport, SchedulerOptions, belt_motion,
    ejector_specs,
};
use edgesort_capture::ReplaySource;
use edgesort_infer::Detect;
use edgesort_store::{StageLatencies, Store, StoreError, StoreWrite};
use edgesort_types::config::{Config, EjectorConfig};
use edgesort_types::{Clock, Detection, Frame, ManualClock, MonotonicClock, Timestamp};
use embedded_hal::digital::OutputPin;

use crate::ejectors::Ejectors;
use crate::handoff::{CapturedFrame, FrameReceiver, latest_frame, lossless};
use crate::sorting::{DecidedPart, SortingCore, fire_update, fired_at, latencies};
use crate::stats::StageHistogram;
use crate::{DecisionRecord, PipelineError, RunReport};

/// How the clip is played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// At the camera's frame rate, on the monotonic clock, dropping frames
    /// the pipeline is too slow for.
    RealTime,
    /// Every frame, as fast as the machine goes, on a clock that follows the
    /// frame timestamps.
    AsFastAsPossible,
}

/// The first frame of a real-time replay is stamped this far in the future,
/// so the camera thread's first sleep is never negative.
const REALTIME_LEAD: Duration = Duration::from_millis(50);

/// Store rows queued at most; a full queue makes the detector wait rather
/// than lose a row.
const STORE_QUEUE: usize = 1024;

/// Rows per SQLite transaction at most.
const STORE_BATCH: usize = 256;

/// Plays `config.camera.replay` through `detector`, the tracker, the rules
/// and the ejectors, recording every part in the store. Pins come from
/// `make_pin`, which is handed the clock their edges must be stamped with.
pub fn run_replay<D, P>(
    config: &Config,
    detector: &mut D,
    make_pin: impl FnMut(&EjectorConfig, Arc<dyn Clock>) -> P,
    pacing: Pacing,
) -> Result<RunReport, PipelineError>
where
    D: Detect + ?Sized,
    P: OutputPin + Send + 'static,
{
    run_replay_observed(config, detector, make_pin, pacing, |_, _| {})
}

/// [`run_replay`], handing `observe` each processed frame of the clip with
/// the detections the detector found in it, before tracking.
pub fn run_replay_observed<D, P>(
    config: &Config,
    detector: &mut D,
    mut make_pin: impl FnMut(&EjectorConfig, Arc<dyn Clock>) -> P,
    pacing: Pacing,
    mut observe: impl FnMut(&Frame, &[Detection]),
) -> Result<RunReport, PipelineError>
where
    D: Detect + ?Sized,
    P: OutputPin + Send + 'static,
{
    let started = Instant::now();
    let camera = &config.camera;
    let clip = camera.replay.as_ref().ok_or(PipelineError::NoReplay)?;

    // Build the inference plan before the camera starts, so the first real
    // frame is not late and a model that is not YOLO-shaped fails up front.
    detector.detect(&Frame::grey(camera.width, camera.height))?;

    let manual_clock = ManualClock::new();
    let clock: Arc<dyn Clock> = match pacing {
        Pacing::RealTime => Arc::new(MonotonicClock),
        Pacing::AsFastAsPossible => Arc::new(manual_clock.clone()),
    };
    let origin = match pacing {
        Pacing::RealTime => clock.now().saturating_add(REALTIME_LEAD),
        Pacing::AsFastAsPossible => Timestamp::ZERO,
    };
    let source = ReplaySource::open(clip, camera.fps, camera.width, camera.height, origin)?;
    let frames_in_clip = source.len() as u64;

    let mut store = Store::open(&config.store.path)?;
    store.begin_run()?;
    let (store_queue, store_thread) = spawn_store(store);

    let pins = ejector_specs(config)
        .into_iter()
        .zip(&config.ejectors)
        .map(|(spec, ejector)| (spec, make_pin(ejector, clock.clone())))
        .collect();
    let bank = EjectorBank::new(pins, Limits::from_config(config))?;
    let belt = belt_motion(config);
    let mut ejectors = match pacing {
        Pacing::RealTime => Ejectors::Realtime(EjectorScheduler::spawn(
            bank,
            belt,
            clock.clone(),
            SchedulerOptions {
                realtime_priority: config.gpio.realtime_priority,
                spin: Duration::from_micros(config.gpio.spin_us.into()),
                ..SchedulerOptions::default()
            },
        )),
        Pacing::AsFastAsPossible => Ejectors::Replay {
            bank,
            belt,
            clock: manual_clock,
            reports: Vec::new(),
        },
    };

    let (sender, receiver) = match pacing {
        Pacing::RealTime => latest_frame(),
        Pacing::AsFastAsPossible => lossless(),
    };
    let camera_clock = clock.clone();
    let camera_thread = std::thread::Builder::new()
        .name("camera".into())
        .spawn(move || {
            let mut source = source;
            let mut corrupt = 0u64;
            loop {
                let decode_started = Instant::now();
                let Some(next) = source.next_frame() else {
                    break;
                };
                let decode = decode_started.elapsed();
                match next {
                    Ok(frame) => {
                        if pacing == Pacing::RealTime {
                            std::thread::sleep(
                                frame.captured_at.saturating_since(camera_clock.now()),
                            );
                        }
                        if !sender.send(CapturedFrame { frame, decode }) {
                            break;
                        }
                    }
                    Err(error) => {
                        corrupt += 1;
                        tracing::warn!(%error, "skipping frame");
                    }
                }
            }
            corrupt
        })
        .expect("spawning the camera thread");

    let mut line = Line {
        config,
        clock,
        origin,
        core: SortingCore::new(config),
        store_queue,
        store_failed: false,
        decisions: Vec::new(),
        decision_index: HashMap::new(),
        ejections_per_lane: BTreeMap::new(),
        pulses_not_fired: BTreeMap::new(),
        stages: Stages::new(pacing),
        frames_processed: 0,
    };
    let outcome = line.process(detector, &receiver, &mut ejectors, &mut observe);
    let frames_dropped = receiver.dropped();
    drop(receiver);
    let frames_corrupt = camera_thread
        .join()
        .map_err(|_| PipelineError::ThreadPanicked { thread: "camera" })?;
    let finished = outcome.and_then(|last_frame| line.finish(last_frame, ejectors));

    let Line {
        store_queue,
        decisions,
        ejections_per_lane,
        pulses_not_fired,
        stages,
        frames_processed,
        ..
    } = line;
    drop(store_queue);
    let stored = store_thread
        .join()
        .map_err(|_| PipelineError::ThreadPanicked { thread: "store" })?;
    finished?;
    stored?;

    let mut parts_per_class = BTreeMap::new();
    for decision in &decisions {
        *parts_per_class.entry(decision.class.clone()).or_insert(0) += 1;
    }
    Ok(RunReport {
        frames_in_clip,
        frames_processed,
        frames_dropped,
        frames_corrupt,
        decisions,
        parts_per_class,
        ejections_per_lane,
        pulses_not_fired,
        latency: stages.summaries(),
        wall_s: started.elapsed().as_secs_f64(),
    })
}

fn spawn_store(mut store: Store) -> (Sender<StoreWrite>, JoinHandle<Result<(), StoreError>>) {
    let (queue, incoming) = crossbeam_channel::bounded::<StoreWrite>(STORE_QUEUE);
    let thread = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(STORE_BATCH);
            while let Ok(first) = incoming.recv() {
                batch.push(first);
                batch.extend(incoming.try_iter().take(STORE_BATCH - 1));
                store.write_batch(&batch)?;
                batch.clear();
            }
            Ok(())
        })
        .expect("spawning the store thread");
    (queue, thread)
}

/// Per-stage latency histograms.
struct Stages {
    decode: StageHistogram,
    preprocess: StageHistogram,
    inference: StageHistogram,
    postprocess: StageHistogram,
    track_decide: StageHistogram,
    /// Capture to decision, only meaningful on a live clock.
    frame_age: Option<StageHistogram>,
}

impl Stages {
    fn new(pacing: Pacing) -> Self {
        Stages {
            decode: StageHistogram::new("decode"),
            preprocess: StageHistogram::new("preprocess"),
            inference: StageHistogram::new("inference"),
            postprocess: StageHistogram::new("postprocess"),
            track_decide: StageHistogram::new("track+decide"),
            frame_age: (pacing == Pacing::RealTime)
                .then(|| StageHistogram::new("capture-to-decision")),
        }
    }

    fn summaries(&self) -> Vec<crate::StageSummary> {
        [
            Some(&self.decode),
            Some(&self.preprocess),
            Some(&self.inference),
            Some(&self.postprocess),
            Some(&self.track_decide),
            self.frame_age.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(StageHistogram::summary)
        .collect()
    }
}

/// The detection thread's state: everything after the frame handoff.
struct Line<'a> {
    config: &'a Config,
    clock: Arc<dyn Clock>,
    origin: Timestamp,
    core: SortingCore,
    store_queue: Sender<StoreWrite>,
    store_failed: bool,
    decisions: Vec<DecisionRecord>,
    decision_index: HashMap<u64, usize>,
    ejections_per_lane: BTreeMap<String, u64>,
    pulses_not_fired: BTreeMap<String, u64>,
    stages: Stages,
    frames_processed: u64,
}

impl Line<'_> {
    /// Runs until the camera stops; returns the last frame's timestamp.
    fn process<D, P>(
        &mut self,
        detector: &mut D,
        frames: &FrameReceiver,
        ejectors: &mut Ejectors<P>,
        observe: &mut dyn FnMut(&Frame, &[Detection]),
    ) -> Result<Timestamp, PipelineError>
    where
        D: Detect + ?Sized,
        P: OutputPin + Send + 'static,
    {
        let mut last_frame = self.origin;
        while let Some(CapturedFrame { frame, decode }) = frames.recv() {
            last_frame = frame.captured_at;
            ejectors.advance_to(frame.captured_at)?;
            let (detections, times) = detector.detect(&frame)?;
            observe(&frame, &detections);
            let step = self.core.step(frame.captured_at, &detections);
            let latencies = latencies(decode, &times, step.track_decide);
            let now = self.clock.now();
            for part in &step.parts {
                self.act(part, now, latencies, ejectors)?;
            }
            ejectors.heartbeat(now);
            self.record_reports(ejectors.take_reports());

            self.frames_processed += 1;
            self.stages.decode.record(decode);
            self.stages.preprocess.record(times.preprocess);
            self.stages.inference.record(times.inference);
            self.stages.postprocess.record(times.postprocess);
            self.stages.track_decide.record(step.track_decide);
            if let Some(age) = self.stages.frame_age.as_mut() {
                age.record(self.clock.now().saturating_since(frame.captured_at));
            }
        }
        Ok(last_frame)
    }

    /// Decides the parts still in view when the stream ended, fires every
    /// pending pulse and records the outcomes.
    fn finish<P>(
        &mut self,
        last_frame: Timestamp,
        mut ejectors: Ejectors<P>,
    ) -> Result<(), PipelineError>
    where
        P: OutputPin + Send + 'static,
    {
        let now = self.clock.now().max(last_frame);
        for part in self.core.finish() {
            self.act(&part, now, StageLatencies::default(), &mut ejectors)?;
        }
        let reports = ejectors.finish()?;
        self.record_reports(reports);
        Ok(())
    }

    fn act<P>(
        &mut self,
        part: &DecidedPart,
        now: Timestamp,
        latencies: StageLatencies,
        ejectors: &mut Ejectors<P>,
    ) -> Result<(), PipelineError>
    where
        P: OutputPin + Send + 'static,
    {
        let DecidedPart {
            track,
            decision,
            class,
            lane,
        } = part;
        tracing::debug!(part = decision.part_id, %class, %lane, confidence = decision.confidence, "decided");
        self.decision_index
            .insert(decision.part_id, self.decisions.len());
        self.decisions.push(DecisionRecord {
            part_id: decision.part_id,
            class: class.clone(),
            confidence: decision.confidence,
            lane: lane.clone(),
            reason: decision.reason.as_str().to_string(),
            decided_s: self.seconds_since_origin(now),
            planned_fire_s: decision
                .fire
                .map(|plan| self.seconds_since_origin(plan.fire_at)),
            ejector_x_px: decision.fire.map(|plan| plan.ejector_x_px),
            reference_crossing_s: track
                .time_at_x(self.config.reference_line_px())
                .map(|time| self.seconds_since_origin(time)),
            center_y: track.center_y,
            hits: track.hits,
            fire_outcome: None,
            actual_fire_s: None,
        });
        self.store(StoreWrite::Part(part.record(
            decision.part_id,
            now,
            latencies,
        )));
        if let Some(pulse) = part.pulse(decision.part_id) {
            ejectors.schedule(pulse)?;
        }
        Ok(())
    }

    fn record_reports(&mut self, reports: Vec<PulseReport>) {
        for report in reports {
            let request = report.request;
            let actual = fired_at(&report);
            let lane = self.config.ejectors[request.ejector].lane.clone();
            match actual {
                Some(_) => *self.ejections_per_lane.entry(lane).or_insert(0) += 1,
                None => {
                    tracing::warn!(part = request.part_id, %lane, outcome = report.outcome.as_str(), "pulse not fired");
                    *self
                        .pulses_not_fired
                        .entry(report.outcome.as_str().to_string())
                        .or_insert(0) += 1;
                }
            }
            let actual_s = actual.map(|time| self.seconds_since_origin(time));
            if let Some(&index) = self.decision_index.get(&request.part_id) {
                let record = &mut self.decisions[index];
                record.fire_outcome = Some(report.outcome.as_str().to_string());
                record.actual_fire_s = actual_s;
            }
            self.store(StoreWrite::Fire(fire_update(&report)));
        }
    }

    /// Seconds from the clip's first frame to `time`.
    fn seconds_since_origin(&self, time: Timestamp) -> f64 {
        (time.as_nanos() as f64 - self.origin.as_nanos() as f64) * 1e-9
    }

    /// Queues a row; if the store thread has died the line keeps sorting and
    /// the store's error is returned when the run ends.
    fn store(&mut self, write: StoreWrite) {
        if self.store_queue.send(write).is_err() && !self.store_failed {
            self.store_failed = true;
            tracing::error!("event store stopped; sorting continues without recording");
        }
    }
}
