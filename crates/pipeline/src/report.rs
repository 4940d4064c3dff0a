use std::collections::BTreeMap;

use serde::Serialize;

/// Latency percentiles of one stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StageSummary {
    /// Stage name.
    pub stage: String,
    /// Frames measured.
    pub samples: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Largest, µs.
    pub max_us: u64,
}

/// One decided part, as written to `--decisions` files.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecisionRecord {
    /// Part (track) id.
    pub part_id: u64,
    /// Class name.
    pub class: String,
    /// Voted confidence.
    pub confidence: f32,
    /// Lane name.
    pub lane: String,
    /// Why this lane.
    pub reason: String,
    /// Seconds after the first frame at which the decision was taken (clock of
    /// the deciding frame).
    pub decided_s: f64,
    /// Planned rising edge, seconds after the first frame; none without an ejector.
    pub planned_fire_s: Option<f64>,
    /// Image column of the lane's ejector; none without an ejector.
    pub ejector_x_px: Option<f64>,
    /// Seconds after the first frame at which the part's fitted centre crossed
    /// the camera reference line.
    pub reference_crossing_s: Option<f64>,
    /// Mean centre y of the part, px.
    pub center_y: f64,
    /// Matched frames.
    pub hits: u32,
    /// `fired`, `late`, `stalled`, `estop`, `duty_limit`, `queue_full` or
    /// `shutdown`; none without an ejector.
    pub fire_outcome: Option<String>,
    /// When the output actually went high, seconds after the first frame.
    pub actual_fire_s: Option<f64>,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    /// Frames in the clip.
    pub frames_in_clip: u64,
    /// Frames that reached the detector.
    pub frames_processed: u64,
    /// Frames skipped by the latest-frame policy (the pipeline was busy).
    pub frames_dropped: u64,
    /// Frames that could not be read or decoded, skipped.
    pub frames_corrupt: u64,
    /// Every decision, in decision order.
    pub decisions: Vec<DecisionRecord>,
    /// Parts per class.
    pub parts_per_class: BTreeMap<String, u64>,
    /// Pulses fired per lane.
    pub ejections_per_lane: BTreeMap<String, u64>,
    /// Pulses not fired, by reason (`late`, `stalled`, `estop`, ...).
    pub pulses_not_fired: BTreeMap<String, u64>,
    /// Per-stage latency.
    pub latency: Vec<StageSummary>,
    /// Wall-clock duration of the run, s.
    pub wall_s: f64,
}
