use std::cmp::Ordering;

use edgesort_types::{BoundingBox, ClassId};

/// Thresholds for turning raw model output into detections.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeParams {
    /// Minimum class score for a candidate.
    pub confidence: f32,
    /// Boxes of one class overlapping more than this are the same object.
    pub iou: f32,
    /// At most this many detections per image.
    pub max_detections: usize,
    /// Which classes of one anchor become candidates.
    pub labels: LabelsPerBox,
}

/// Detections kept per frame at most; a belt never shows this many parts.
const MAX_DETECTIONS: usize = 300;

impl DecodeParams {
    /// The thresholds of `[model]` in the configuration, the best class per
    /// box.
    pub fn for_model(model: &edgesort_types::config::ModelConfig) -> Self {
        DecodeParams {
            confidence: model.confidence,
            iou: model.iou,
            max_detections: MAX_DETECTIONS,
            labels: LabelsPerBox::Best,
        }
    }
}

/// How many candidates one anchor may give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelsPerBox {
    /// Only its best class: what the line acts on.
    Best,
    /// Every class scoring at least the confidence threshold, each as its own
    /// candidate: how accuracy is measured (Ultralytics' `multi_label`), so a
    /// box the model is unsure about still counts for its runner-up class.
    Every,
}

/// A box in model-input pixels with its best class, before or after NMS.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Box in input-tensor pixels.
    pub bbox: BoundingBox,
    /// Best-scoring class.
    pub class: ClassId,
    /// That class's score.
    pub score: f32,
    /// Anchor index in the model output; breaks score ties deterministically.
    pub anchor: usize,
}

/// Reads one image of a YOLOv8 output laid out `(4 + classes) x anchors`
/// (rows cx, cy, w, h, then one already-sigmoided score per class) and appends
/// to `candidates` every anchor whose best class scores at least
/// `confidence` (or, with [`LabelsPerBox::Every`], every such anchor and
/// class).
pub fn decode_yolo(
    output: &[f32],
    classes: usize,
    anchors: usize,
    confidence: f32,
    labels: LabelsPerBox,
    candidates: &mut Vec<Candidate>,
) {
    assert_eq!(output.len(), (4 + classes) * anchors);
    let row = |index: usize| &output[index * anchors..(index + 1) * anchors];
    let (cx, cy, w, h) = (row(0), row(1), row(2), row(3));
    let bbox = |anchor: usize| {
        let (half_w, half_h) = (w[anchor] * 0.5, h[anchor] * 0.5);
        BoundingBox {
            x1: cx[anchor] - half_w,
            y1: cy[anchor] - half_h,
            x2: cx[anchor] + half_w,
            y2: cy[anchor] + half_h,
        }
    };
    if labels == LabelsPerBox::Every {
        for class in 0..classes {
            for (anchor, &score) in row(4 + class).iter().enumerate() {
                if score >= confidence {
                    candidates.push(Candidate {
                        bbox: bbox(anchor),
                        class: ClassId(class as u16),
                        score,
                        anchor,
                    });
                }
            }
        }
        return;
    }
    for anchor in 0..anchors {
        let mut best_class = 0;
        let mut best_score = f32::NEG_INFINITY;
        for class in 0..classes {
            let score = output[(4 + class) * anchors + anchor];
            if score > best_score {
                best_score = score;
                best_class = class;
            }
        }
        if best_score >= confidence {
            candidates.push(Candidate {
                bbox: bbox(anchor),
                class: ClassId(best_class as u16),
                score: best_score,
                anchor,
            });
        }
    }
}

/// Class-aware non-maximum suppression: keeps, best score first, each box
/// that overlaps no kept box of the same class by more than `iou`, up to
/// `max_detections`. Sorts `candidates` in place; equal scores are ordered by
/// anchor index so the result never depends on input order.
pub fn non_max_suppression(
    candidates: &mut [Candidate],
    iou: f32,
    max_detections: usize,
) -> Vec<Candidate> {
    candidates.sort_unstable_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(Ordering::Equal)
            .then(a.anchor.cmp(&b.anchor))
            .then(a.class.cmp(&b.class))
    });
    let mut kept: Vec<Candidate> = Vec::new();
    for candidate in candidates.iter() {
        if kept.len() == max_detections {
            break;
        }
        let suppressed = kept
            .iter()
            .any(|k| k.class == candidate.class && k.bbox.iou(&candidate.bbox) > iou);
        if !suppressed {
            kept.push(*candidate);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn candidate(x: f32, class: u16, score: f32, anchor: usize) -> Candidate {
        Candidate {
            bbox: BoundingBox {
                x1: x,
                y1: 0.0,
                x2: x + 10.0,
                y2: 10.0,
            },
            class: ClassId(class),
            score,
            anchor,
        }
    }

    #[test]
    fn decode_picks_the_best_class_above_threshold() {
        // Two anchors, two classes: rows cx, cy, w, h, score0, score1.
        let output = [
            10.0, 50.0, //
            20.0, 60.0, //
            4.0, 8.0, //
            6.0, 2.0, //
            0.1, 0.3, //
            0.9, 0.2,
        ];
        let mut found = Vec::new();
        decode_yolo(&output, 2, 2, 0.25, LabelsPerBox::Best, &mut found);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].class, ClassId(1));
        assert_eq!(
            found[0].bbox,
            BoundingBox {
                x1: 8.0,
                y1: 17.0,
                x2: 12.0,
                y2: 23.0
            }
        );
        assert_eq!((found[1].class, found[1].score), (ClassId(0), 0.3));
        found.clear();
        decode_yolo(&output, 2, 2, 0.5, LabelsPerBox::Best, &mut found);
        assert_eq!(found.len(), 1);
        found.clear();
        decode_yolo(&output, 2, 2, 0.25, LabelsPerBox::Every, &mut found);
        let labels: Vec<_> = found
            .iter()
            .map(|c| (c.anchor, c.class.0, c.score))
            .collect();
        assert_eq!(labels, [(1, 0, 0.3), (0, 1, 0.9)]);
    }

    #[test]
    fn nms_is_class_aware() {
        let mut found = vec![
            candidate(0.0, 0, 0.9, 0),
            candidate(1.0, 0, 0.8, 1),
            candidate(1.0, 1, 0.7, 2),
            candidate(50.0, 0, 0.6, 3),
        ];
        let kept = non_max_suppression(&mut found, 0.5, 300);
        let anchors: Vec<_> = kept.iter().map(|c| c.anchor).collect();
        assert_eq!(anchors, [0, 2, 3]);
        assert_eq!(non_max_suppression(&mut found, 0.5, 2).len(), 2);
    }

    proptest! {
        #[test]
        fn nms_ignores_input_order_and_leaves_no_overlaps(
            boxes in prop::collection::vec((0.0f32..100.0, 0u16..3, 0.0f32..1.0), 0..60),
            seed in any::<u64>(),
        ) {
            let mut found: Vec<_> = boxes
                .iter()
                .enumerate()
                .map(|(anchor, &(x, class, score))| candidate(x, class, score, anchor))
                .collect();
            let mut shuffled = found.clone();
            let len = shuffled.len().max(1);
            for i in 0..shuffled.len() {
                shuffled.swap(i, (seed as usize).wrapping_mul(i + 7) % len);
            }
            let kept = non_max_suppression(&mut found, 0.5, 300);
            prop_assert_eq!(&kept, &non_max_suppression(&mut shuffled, 0.5, 300));
            for (i, a) in kept.iter().enumerate() {
                for b in &kept[i + 1..] {
                    prop_assert!(a.class != b.class || a.bbox.iou(&b.bbox) <= 0.5);
                }
            }
        }
    }
}
