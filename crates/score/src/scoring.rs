use serde::Serialize;

use crate::GroundTruth;

/// Fire times within this of the truth count as on time.
const ON_TIME_MS: f64 = 5.0;

/// What the scorer needs to know of one decision.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredDecision {
    /// Part (track) id.
    pub part_id: u64,
    /// Decided class name.
    pub class: String,
    /// Seconds after the first frame at which the part's fitted centre
    /// crosses the image column `crossing_x`.
    pub crossing_s: f64,
    /// The column used for `crossing_s`.
    pub crossing_x: f64,
    /// Centre y.
    pub center_y: f64,
    /// Planned fire time, seconds after the first frame, and the ejector's
    /// image column; `None` for lanes without an ejector.
    pub fire: Option<(f64, f64)>,
}

/// One ejection compared with the truth.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FireError {
    /// Ground-truth part.
    pub truth_id: u64,
    /// Decision's part id.
    pub part_id: u64,
    /// Planned minus true time the part's centre reaches the ejector, ms.
    pub error_ms: f64,
    /// The same against the centre of the part's visible box, ms.
    pub visible_error_ms: Option<f64>,
}

/// How a replay's decisions compare with the ground truth.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Score {
    /// Parts whose centre crosses the whole field of view.
    pub parts_crossing: usize,
    /// Of those, parts with exactly one decision.
    pub decided_once: usize,
    /// Crossing parts with no decision (ground-truth ids).
    pub missed: Vec<u64>,
    /// Crossing parts with more than one decision (ground-truth ids).
    pub duplicated: Vec<u64>,
    /// Decisions near no ground-truth part (decision part ids).
    pub unmatched_decisions: Vec<u64>,
    /// Crossing parts whose (first) decision has the right class.
    pub class_correct: usize,
    /// `class_correct / parts_crossing`; a missed part counts as wrong.
    pub class_accuracy: f64,
    /// Every ejection of a crossing part, compared with the truth.
    pub fire_errors: Vec<FireError>,
    /// Largest |error| over `fire_errors`, ms.
    pub max_abs_fire_error_ms: f64,
    /// Ejections within ±5 ms.
    pub fires_within_5ms: usize,
    /// Largest |error| against the visible box centre, ms.
    pub max_abs_visible_fire_error_ms: f64,
    /// Ejections within ±5 ms of the visible box centre.
    pub visible_fires_within_5ms: usize,
}

/// Pairs `decisions` with `truth` and scores them; `gate_px` is how far (in
/// px, along and across the belt) a decision may be from a part and still be
/// about it.
pub fn score(truth: &GroundTruth, decisions: &[ScoredDecision], gate_px: f64) -> Score {
    let mut claims: Vec<Vec<&ScoredDecision>> = vec![Vec::new(); truth.objects.len()];
    let mut unmatched_decisions = Vec::new();
    for decision in decisions {
        let nearest = truth
            .objects
            .iter()
            .enumerate()
            .filter_map(|(index, part)| {
                let crossing = truth.time_at_x(part, decision.crossing_x)?;
                let along = (crossing - decision.crossing_s) * truth.speed_px_s();
                let across = part.y - decision.center_y;
                (along.abs() <= gate_px && across.abs() <= gate_px)
                    .then_some((along * along + across * across, index))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0));
        match nearest {
            Some((_, index)) => claims[index].push(decision),
            None => unmatched_decisions.push(decision.part_id),
        }
    }

    let mut result = Score {
        parts_crossing: 0,
        decided_once: 0,
        missed: Vec::new(),
        duplicated: Vec::new(),
        unmatched_decisions,
        class_correct: 0,
        class_accuracy: 0.0,
        fire_errors: Vec::new(),
        max_abs_fire_error_ms: 0.0,
        fires_within_5ms: 0,
        max_abs_visible_fire_error_ms: 0.0,
        visible_fires_within_5ms: 0,
    };
    for (part, claimed) in truth.objects.iter().zip(&claims) {
        if !truth.crosses_whole_view(part) {
            continue;
        }
        result.parts_crossing += 1;
        match claimed.len() {
            0 => result.missed.push(part.id),
            1 => result.decided_once += 1,
            _ => result.duplicated.push(part.id),
        }
        if claimed
            .first()
            .is_some_and(|decision| decision.class == part.cls)
        {
            result.class_correct += 1;
        }
        let visible_offset = truth.visible_center_offset(part);
        for decision in claimed {
            let Some((planned_s, ejector_x)) = decision.fire else {
                continue;
            };
            let Some(true_s) = truth.time_at_x(part, ejector_x) else {
                continue;
            };
            let visible_error_ms = visible_offset
                .and_then(|offset| truth.time_at_x(part, ejector_x - offset))
                .map(|visible_s| (planned_s - visible_s) * 1e3);
            result.fire_errors.push(FireError {
                truth_id: part.id,
                part_id: decision.part_id,
                error_ms: (planned_s - true_s) * 1e3,
                visible_error_ms,
            });
        }
    }
    if result.parts_crossing > 0 {
        result.class_accuracy = result.class_correct as f64 / result.parts_crossing as f64;
    }
    for error in &result.fire_errors {
        result.max_abs_fire_error_ms = result.max_abs_fire_error_ms.max(error.error_ms.abs());
        result.fires_within_5ms += usize::from(error.error_ms.abs() <= ON_TIME_MS);
        if let Some(visible) = error.visible_error_ms {
            result.max_abs_visible_fire_error_ms =
                result.max_abs_visible_fire_error_ms.max(visible.abs());
            result.visible_fires_within_5ms += usize::from(visible.abs() <= ON_TIME_MS);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GroundTruthFrame, GroundTruthPart};

    /// Two parts cross a 100 px view at 10 px/frame and 10 fps; a third is
    /// still entering when the clip ends.
    fn truth() -> GroundTruth {
        let part = |id: u64, cls: &str, y: f64, first_cx: f64, frames: std::ops::Range<u64>| {
            GroundTruthPart {
                id,
                cls: cls.into(),
                y,
                frames: frames
                    .clone()
                    .map(|frame| {
                        let cx = first_cx + 10.0 * (frame - frames.start) as f64;
                        GroundTruthFrame {
                            frame,
                            cx,
                            bbox: [(cx - 4.0).max(0.0), y - 4.0, (cx + 6.0).min(100.0), y + 4.0],
                        }
                    })
                    .collect(),
            }
        };
        GroundTruth {
            width: 100,
            height: 50,
            fps: 10.0,
            frames: 20,
            speed_px_per_frame: 10.0,
            classes: vec!["bolt".into(), "nut".into()],
            objects: vec![
                part(0, "bolt", 10.0, -5.0, 0..12),
                part(1, "nut", 30.0, -5.0, 5..17),
                part(2, "nut", 20.0, -5.0, 17..20),
            ],
        }
    }

    fn decision(
        part_id: u64,
        class: &str,
        crossing_s: f64,
        y: f64,
        fire: Option<(f64, f64)>,
    ) -> ScoredDecision {
        ScoredDecision {
            part_id,
            class: class.into(),
            crossing_s,
            crossing_x: 50.0,
            center_y: y,
            fire,
        }
    }

    #[test]
    fn perfect_decisions_score_perfectly() {
        let truth = truth();
        // Part 0 is at x = 50 at frame 5.5, part 1 at frame 10.5; the ejector
        // at x = 150 is reached 1 s later.
        let decisions = [
            decision(1, "bolt", 0.55, 10.0, Some((1.55, 150.0))),
            decision(2, "nut", 1.05, 30.0, Some((2.05, 150.0))),
        ];
        let score = score(&truth, &decisions, 20.0);
        assert_eq!(
            (
                score.parts_crossing,
                score.decided_once,
                score.class_correct
            ),
            (2, 2, 2)
        );
        assert_eq!(score.fires_within_5ms, 2);
        assert!(score.max_abs_fire_error_ms < 1e-9);
        // The visible box is centred 1 px right of the part's centre: 10 ms early.
        assert!((score.fire_errors[0].visible_error_ms.unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn misses_duplicates_strays_and_wrong_classes_are_counted() {
        let truth = truth();
        let decisions = [
            decision(1, "nut", 0.55, 10.0, Some((1.56, 150.0))),
            decision(2, "bolt", 0.57, 11.0, None),
            decision(3, "nut", 3.0, 45.0, None),
        ];
        let score = score(&truth, &decisions, 20.0);
        assert_eq!(score.duplicated, [0]);
        assert_eq!(score.missed, [1]);
        assert_eq!(score.unmatched_decisions, [3]);
        assert_eq!(score.class_correct, 0);
        assert_eq!(score.fire_errors.len(), 1);
        assert!((score.fire_errors[0].error_ms - 10.0).abs() < 1e-9);
        assert_eq!(score.fires_within_5ms, 0);
    }
}
