//! The sorting step, one implementation for every line: `demo` and `replay`
//! ([`crate::run_replay`]) and the appliance's sorting stage
//! (`edgesort-daemon`) both feed it frames' detections and act on what it
//! returns, so a replay's score is a score of the appliance's own code.

use std::time::{Duration, Instant};

use edgesort_actuate::{Outcome, PulseReport, PulseRequest};
use edgesort_decide::{Decider, Decision};
use edgesort_infer::DetectorTimes;
use edgesort_store::{FireUpdate, PartRecord, StageLatencies};
use edgesort_track::{CloseReason, ClosedTrack, Tracker, TrackerParams};
use edgesort_types::config::Config;
use edgesort_types::{Detection, Timestamp};

/// Tracks parts across frames, decides each one's lane when it leaves the
/// view, and plans its pulse.
pub struct SortingCore {
    tracker: Tracker,
    decider: Decider,
    classes: Vec<String>,
}

/// One decided part.
pub struct DecidedPart {
    /// Its track, closed.
    pub track: ClosedTrack,
    /// The lane and pulse chosen for it.
    pub decision: Decision,
    /// The voted class's name.
    pub class: String,
    /// The lane's name.
    pub lane: String,
}

/// What one frame did.
pub struct Step {
    /// The parts that left the view (or were lost) and were decided.
    pub parts: Vec<DecidedPart>,
    /// The newest last sighting of a part that left the view downstream:
    /// the belt moved at least until then (the encoder's silence rule
    /// weighs it).
    pub moved: Option<Timestamp>,
    /// Time spent tracking and deciding.
    pub track_decide: Duration,
}

impl SortingCore {
    /// An empty line for `config`'s tracking and rules.
    pub fn new(config: &Config) -> Self {
        SortingCore {
            tracker: Tracker::new(TrackerParams::from_config(config)),
            decider: Decider::new(config),
            classes: config.model.classes.clone(),
        }
    }

    /// New rules from now on; the parts in view keep their tracks.
    pub fn change_rules(&mut self, config: &Config) {
        self.decider = Decider::new(config);
        self.classes = config.model.classes.clone();
    }

    /// The tracker, for overlays of the parts in view.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The rules in force.
    pub fn decider(&self) -> &Decider {
        &self.decider
    }

    /// One frame's detections: the parts it closed, decided.
    pub fn step(&mut self, captured_at: Timestamp, detections: &[Detection]) -> Step {
        let started = Instant::now();
        let closed = self.tracker.update(captured_at, detections);
        let moved = closed
            .iter()
            .filter(|track| track.reason == CloseReason::LeftView)
            .map(|track| track.last_seen)
            .max();
        let parts = closed.into_iter().map(|track| self.decide(track)).collect();
        Step {
            parts,
            moved,
            track_decide: started.elapsed(),
        }
    }

    /// The input ended: every part still in view, decided.
    pub fn finish(&mut self) -> Vec<DecidedPart> {
        self.tracker
            .finish()
            .into_iter()
            .map(|track| self.decide(track))
            .collect()
    }

    fn decide(&self, track: ClosedTrack) -> DecidedPart {
        let decision = self.decider.decide(&track);
        DecidedPart {
            class: self.classes[decision.class.0 as usize].clone(),
            lane: self.decider.lanes()[decision.lane].clone(),
            track,
            decision,
        }
    }
}

impl DecidedPart {
    /// Its row in the event store, as part `part_id`, decided at `now`.
    pub fn record(&self, part_id: u64, now: Timestamp, latencies: StageLatencies) -> PartRecord {
        PartRecord {
            part_id,
            class: self.class.clone(),
            confidence: self.decision.confidence,
            lane: self.lane.clone(),
            reason: self.decision.reason.as_str().to_string(),
            decided_at_ns: now.as_nanos(),
            decided_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis() as i64),
            seen_at_ns: Some(self.track.last_seen.as_nanos()),
            planned_fire_ns: self.decision.fire.map(|plan| plan.fire_at.as_nanos()),
            latencies,
        }
    }

    /// Its pulse, as part `part_id`, when its lane has an ejector.
    pub fn pulse(&self, part_id: u64) -> Option<PulseRequest> {
        self.decision.fire.map(|plan| PulseRequest {
            part_id,
            ejector: plan.ejector,
            seen_at: plan.seen_at,
            distance_mm: plan.distance_mm,
            duration: plan.pulse,
        })
    }
}

/// The stage times a part's row keeps.
pub fn latencies(
    decode: Duration,
    times: &DetectorTimes,
    track_decide: Duration,
) -> StageLatencies {
    StageLatencies {
        decode_us: decode.as_micros() as u64,
        preprocess_us: times.preprocess.as_micros() as u64,
        inference_us: times.inference.as_micros() as u64,
        postprocess_us: times.postprocess.as_micros() as u64,
        track_decide_us: track_decide.as_micros() as u64,
    }
}

/// When the pulse rose, where it fired.
pub fn fired_at(report: &PulseReport) -> Option<Timestamp> {
    match report.outcome {
        Outcome::Fired { actual } => Some(actual),
        _ => None,
    }
}

/// The store's update for a pulse's outcome.
pub fn fire_update(report: &PulseReport) -> FireUpdate {
    FireUpdate {
        part_id: report.request.part_id,
        outcome: report.outcome.as_str().to_string(),
        actual_fire_ns: fired_at(report).map(Timestamp::as_nanos),
    }
}
