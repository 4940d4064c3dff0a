use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use edgesort_actuate::{Outcome, PulseRequest};
use edgesort_decide::Decider;
use edgesort_store::{FireUpdate, PartRecord, StageLatencies, StoreWrite};
use edgesort_track::{CloseReason, ClosedTrack, Tracker, TrackerParams};
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
            tracker: Tracker::new(TrackerParams::from_config(&config)),
            decider: Decider::new(&config),
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
    tracker: Tracker,
    decider: Decider,
    config: Arc<Config>,
    shared: &'a Shared,
    store: &'a Sender<StoreWrite>,
}

impl Sorter<'_> {
    fn pick_up_new_rules(&mut self) {
        if let Some(config) = lock(&self.shared.new_rules).take() {
            tracing::info!("sorting rules changed");
            self.decider = Decider::new(&config);
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
        let started = Instant::now();
        let closed = self.tracker.update(frame.captured_at, &detections);
        // A part that left the view downstream moved along the belt: the
        // encoder's silence rule weighs that against its edges.
        if let Some(moved) = closed
            .iter()
            .filter(|track| track.reason == CloseReason::LeftView)
            .map(|track| track.last_seen)
            .max()
        {
            self.shared.ejectors.parts_moving(moved);
        }
        let latencies = |track_decide: Duration| StageLatencies {
            decode_us: decode.as_micros() as u64,
            preprocess_us: times.preprocess.as_micros() as u64,
            inference_us: times.inference.as_micros() as u64,
            postprocess_us: times.postprocess.as_micros() as u64,
            track_decide_us: track_decide.as_micros() as u64,
        };
        let decided: Vec<_> = closed
            .iter()
            .map(|track| (track, self.decider.decide(track)))
            .collect();
        let track_decide = started.elapsed();
        for (track, decision) in decided {
            self.act(track, &decision, latencies(track_decide))?;
        }

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
        let lanes = self.decider.lanes();
        let tracks = self
            .tracker
            .open_views()
            .into_iter()
            .filter(|view| view.last_seen == frame.captured_at)
            .map(|view| {
                let (lane, _) = self.decider.route(view.class, view.confidence);
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
        for track in self.tracker.finish() {
            let decision = self.decider.decide(&track);
            self.act(&track, &decision, StageLatencies::default())?;
        }
        self.shared.ejectors.end_input();
        self.shared.board().input_ended = true;
        tracing::info!("replay ended; every part in view decided");
        Ok(())
    }

    fn act(
        &mut self,
        track: &ClosedTrack,
        decision: &edgesort_decide::Decision,
        latencies: StageLatencies,
    ) -> Result<(), String> {
        let part_id = self.shared.next_part_id.fetch_add(1, Ordering::Relaxed);
        let class = self.config.model.classes[decision.class.0 as usize].clone();
        let lane = self.decider.lanes()[decision.lane].clone();
        tracing::debug!(part = part_id, track = track.id, %class, %lane, "decided");
        self.write(StoreWrite::Part(PartRecord {
            part_id,
            class: class.clone(),
            confidence: decision.confidence,
            lane,
            reason: decision.reason.as_str().to_string(),
            decided_at_ns: self.shared.clock.now().as_nanos(),
            decided_unix_ms: unix_ms(),
            seen_at_ns: Some(track.last_seen.as_nanos()),
            planned_fire_ns: decision.fire.map(|plan| plan.fire_at.as_nanos()),
            latencies,
        }))?;
        {
            let mut board = self.shared.board();
            board.counts.parts += 1;
            *board.counts.per_class.entry(class).or_insert(0) += 1;
            if decision.fire.is_some() {
                board.pulses_scheduled += 1;
            }
        }
        if let Some(plan) = decision.fire {
            self.shared
                .ejectors
                .schedule(PulseRequest {
                    part_id,
                    ejector: plan.ejector,
                    seen_at: plan.seen_at,
                    distance_mm: plan.distance_mm,
                    duration: plan.pulse,
                })
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
            let actual = match report.outcome {
                Outcome::Fired { actual } => Some(actual),
                _ => None,
            };
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
            let _ = self.write(StoreWrite::Fire(FireUpdate {
                part_id: request.part_id,
                outcome: report.outcome.as_str().to_string(),
                actual_fire_ns: actual.map(|time| time.as_nanos()),
            }));
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

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
