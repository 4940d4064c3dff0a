use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use edgesort_pipeline::sorting::{DecidedPart, SortingCore, fire_update, fired_at, latencies};
use edgesort_store::{StageLatencies, StoreWrite};
use edgesort_types::config::Config;

use crate::control::{Overlay, Snapshot};
use crate::inference::{Detected, DetectedFrame};
use crate::stage::{MANUAL_PULSE_IDS, Shared, StageBody, StageName, lock};

/// How often the stage looks for pulse reports and rule changes when no
/// frame comes.
const IDLE_POLL: Duration = Duration::from_millis(20);

/// After its input closes, the stage waits this long at most for the
/// ejectors to report on the pulses already planned.
const SETTLE_GRACE: Duration = Duration::from_secs(3);

/// Tracks parts, decides their lanes, plans their pulses, and records all
/// of it. A restart starts with no track open: parts in view then go
/// undecided to the default lane, which the log says.
pub(crate) fn sorting_stage(
    shared: Arc<Shared>,
    detected: Receiver<Detected>,
    store: Sender<StoreWrite>,
) -> StageBody {
    Box::new(move || {
        let config = shared.config();
        let mut sorter = Sorter {
            core: SortingCore::new(&config),
            config,
            shared: &shared,
            store: &store,
        };
        loop {
            shared.check_fault(StageName::Sorting);
            sorter.pick_up_new_rules();
            match detected.recv_timeout(IDLE_POLL) {
                Ok(Detected::Frame(frame)) => sorter.frame(*frame)?,
                Ok(Detected::End) => sorter.end_of_input()?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    sorter.settle();
                    return Ok(());
                }
            }
            sorter.record_reports();
        }
    })
}

struct Sorter<'a> {
    core: SortingCore,
    config: Arc<Config>,
    shared: &'a Shared,
    store: &'a Sender<StoreWrite>,
}

impl Sorter<'_> {
    fn pick_up_new_rules(&mut self) {
        if let Some(config) = lock(&self.shared.new_rules).take() {
            tracing::info!("sorting rules changed");
            self.core.change_rules(&config);
            self.config = config;
        }
    }

    fn frame(&mut self, detected: DetectedFrame) -> Result<(), String> {
        let DetectedFrame {
            frame,
            detections,
            times,
            decode,
        } = detected;
        let step = self.core.step(frame.captured_at, &detections);
        if let Some(moved) = step.moved {
            self.shared.ejectors.parts_moving(moved);
        }
        let latencies = latencies(decode, &times, step.track_decide);
        for part in &step.parts {
            self.act(part, latencies)?;
        }
        let track_decide = step.track_decide;

        let now = Instant::now();
        let decided_at = self.shared.clock.now();
        let capture_to_decision = decided_at.saturating_since(frame.captured_at);
        let now_ns = decided_at.as_nanos();
        {
            let mut board = self.shared.board();
            // A frame from before a failure proves nothing about the line
            // now: the ejectors stay held until a newer one comes through.
            if !board.predates_outage(frame.captured_at.as_nanos()) {
                self.shared.ejectors.heartbeat();
                board.line_up(now_ns);
            }
            board.frames_processed += 1;
            board.processed_rate.tick(now);
            board.last_processed = Some(now);
            board.latency.record([
                decode,
                times.preprocess,
                times.inference,
                times.postprocess,
                track_decide,
                capture_to_decision,
            ]);
        }
        self.publish_snapshot(frame, &detections);
        Ok(())
    }

    fn publish_snapshot(
        &self,
        frame: Arc<edgesort_types::Frame>,
        detections: &[edgesort_types::Detection],
    ) {
        let classes = &self.config.model.classes;
        let class_name = |class: edgesort_types::ClassId| {
            classes
                .get(class.0 as usize)
                .cloned()
                .unwrap_or_else(|| format!("class {}", class.0))
        };
        let decider = self.core.decider();
        let lanes = decider.lanes();
        let tracks = self
            .core
            .tracker()
            .open_views()
            .into_iter()
            .filter(|view| view.last_seen == frame.captured_at)
            .map(|view| {
                let (lane, _) = decider.route(view.class, view.confidence);
                Overlay {
                    bbox: view.bbox,
                    label: format!("#{} {} > {}", view.id, class_name(view.class), lanes[lane]),
                    lane: lane as u32,
                }
            })
            .collect();
        let boxes = detections
            .iter()
            .map(|detection| Overlay {
                bbox: detection.bbox,
                label: format!(
                    "{} {:.2}",
                    class_name(detection.class),
                    detection.confidence
                ),
                lane: u32::MAX,
            })
            .collect();
        *lock(&self.shared.snapshot) = Some(Arc::new(Snapshot {
            frame,
            detections: boxes,
            tracks,
        }));
    }

    fn end_of_input(&mut self) -> Result<(), String> {
        for part in self.core.finish() {
            self.act(&part, StageLatencies::default())?;
        }
        self.shared.ejectors.end_input();
        self.shared.board().input_ended = true;
        tracing::info!("replay ended; every part in view decided");
        Ok(())
    }

    fn act(&mut self, part: &DecidedPart, latencies: StageLatencies) -> Result<(), String> {
        // Numbered by the daemon, not the tracker: a restarted stage starts
        // a new tracker, and part ids stay unique for the store.
        let part_id = self.shared.next_part_id.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(part = part_id, track = part.track.id, class = %part.class, lane = %part.lane, "decided");
        self.write(StoreWrite::Part(part.record(
            part_id,
            self.shared.clock.now(),
            latencies,
        )))?;
        {
            let mut board = self.shared.board();
            board.counts.parts += 1;
            *board
                .counts
                .per_class
                .entry(part.class.clone())
                .or_insert(0) += 1;
            if part.decision.fire.is_some() {
                board.pulses_scheduled += 1;
            }
        }
        if let Some(pulse) = part.pulse(part_id) {
            self.shared
                .ejectors
                .schedule(pulse)
                .map_err(|error| format!("ejectors failed: {error}"))?;
        }
        Ok(())
    }

    /// Queues a row, waiting for room: a decision is never dropped.
    fn write(&self, write: StoreWrite) -> Result<(), String> {
        self.shared.board().writes_sent += 1;
        self.store
            .send(write)
            .map_err(|_| "the store stage is gone".to_string())
    }

    fn record_reports(&mut self) {
        for report in self.shared.ejectors.take_reports() {
            let request = report.request;
            if request.part_id >= MANUAL_PULSE_IDS {
                lock(&self.shared.manual).insert(request.part_id, report.outcome.as_str().into());
                continue;
            }
            let actual = fired_at(&report);
            {
                let lane = &self.config.ejectors[request.ejector].lane;
                let mut board = self.shared.board();
                board.pulses_reported += 1;
                match actual {
                    Some(_) => {
                        board.counts.ejections += 1;
                        *board.counts.per_lane.entry(lane.clone()).or_insert(0) += 1;
                    }
                    None => {
                        *board
                            .counts
                            .not_fired
                            .entry(report.outcome.as_str().to_string())
                            .or_insert(0) += 1;
                    }
                }
            }
            // The store outlives this stage on shutdown, so this only fails
            // when the store is already gone and then nothing can be kept.
            let _ = self.write(StoreWrite::Fire(fire_update(&report)));
        }
    }

    /// Lets the pulses already planned fire and records their outcomes.
    fn settle(&mut self) {
        self.shared.ejectors.end_input();
        let deadline = Instant::now() + SETTLE_GRACE;
        loop {
            self.record_reports();
            let board = self.shared.board();
            if board.pulses_reported >= board.pulses_scheduled || Instant::now() >= deadline {
                return;
            }
            drop(board);
            std::thread::sleep(IDLE_POLL);
        }
    }
}
