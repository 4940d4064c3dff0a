use edgesort_types::{BoundingBox, ClassId, Detection};
use serde::Serialize;

/// IoU thresholds of mAP50-95: 0.50, 0.55, … 0.95.
pub const IOU_THRESHOLDS: [f64; 10] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/// Recall points at which precision is sampled: 0.00, 0.01, … 1.00.
const RECALL_POINTS: usize = 101;

/// One image's labels and detections, both in image pixels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageResult {
    /// Labelled objects.
    pub truths: Vec<(ClassId, BoundingBox)>,
    /// What the detector found.
    pub detections: Vec<Detection>,
}

/// Accuracy for one class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassAccuracy {
    /// Class name.
    pub class: String,
    /// Labelled objects of this class.
    pub instances: usize,
    /// Detections of this class (at any confidence).
    pub detections: usize,
    /// Of the detections scoring at least the report confidence, the share
    /// that match an object at IoU 0.5; `None` when there are none.
    pub precision: Option<f64>,
    /// Share of the objects matched at IoU 0.5 by a detection scoring at
    /// least the report confidence; `None` without objects.
    pub recall: Option<f64>,
    /// AP at IoU 0.5; `None` without objects, as COCO leaves such a class
    /// out of every mean.
    pub ap50: Option<f64>,
    /// AP averaged over IoU 0.50:0.05:0.95; `None` without objects.
    pub ap50_95: Option<f64>,
}

/// The result of an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// Mean AP at IoU 0.5 over the classes that have objects.
    pub map50: f64,
    /// Mean AP over IoU 0.50:0.05:0.95 and the classes that have objects.
    pub map50_95: f64,
    /// Mean precision over the classes that have objects.
    pub precision: f64,
    /// Mean recall over the classes that have objects.
    pub recall: f64,
    /// Confidence at which precision and recall are counted.
    pub report_confidence: f32,
    /// Whose matching and AP rules these figures follow.
    pub protocol: Protocol,
    /// Images scored.
    pub images: usize,
    /// Labelled objects.
    pub instances: usize,
    /// Per class, in class order.
    pub per_class: Vec<ClassAccuracy>,
}

/// Whose rules turn matches into AP. Both sample precision at 101 recall
/// points over IoU 0.50:0.05:0.95 and average over the classes that have
/// objects; they differ in two details that move mAP50-95 by about 0.01 on
/// the demo model, so every figure says which it follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Ultralytics 8.3's `val`, the figure people quote for YOLO models:
    /// each detection takes the object it overlaps most, and each object
    /// keeps the best-scoring detection that chose it; precision is
    /// interpolated linearly between recall points, with end points (0, 1)
    /// and (1, 0), and integrated with the trapezoid rule. A perfect detector
    /// scores 0.995 there (the last point falls on the (1, 0) end).
    #[default]
    Ultralytics,
    /// pycocotools' COCOeval: detections best first, each takes the unmatched
    /// object it overlaps most; precision is a step function, 0 beyond the
    /// last recall reached, and AP is the mean of the 101 samples. A perfect
    /// detector scores 1.
    Coco,
}

/// One detection's verdict at every IoU threshold.
struct Verdict {
    score: f32,
    true_positive: [bool; IOU_THRESHOLDS.len()],
}

/// Scores detections against labels, COCO-style (see the crate docs).
/// `class_names` gives the number of classes and their names for the report.
pub fn score(
    images: &[ImageResult],
    class_names: &[String],
    report_confidence: f32,
    protocol: Protocol,
) -> Evaluation {
    let classes = class_names.len();
    let mut verdicts: Vec<Vec<Verdict>> = (0..classes).map(|_| Vec::new()).collect();
    let mut instances = vec![0usize; classes];
    for image in images {
        for class in 0..classes {
            let id = ClassId(class as u16);
            let truths: Vec<&BoundingBox> = image
                .truths
                .iter()
                .filter(|(truth_class, _)| *truth_class == id)
                .map(|(_, bbox)| bbox)
                .collect();
            instances[class] += truths.len();
            let mut detections: Vec<&Detection> = image
                .detections
                .iter()
                .filter(|detection| detection.class == id)
                .collect();
            detections.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
            match protocol {
                Protocol::Coco => match_best_first(&truths, &detections, &mut verdicts[class]),
                Protocol::Ultralytics => {
                    match_by_overlap(&truths, &detections, &mut verdicts[class])
                }
            }
        }
    }

    let per_class: Vec<ClassAccuracy> = class_names
        .iter()
        .zip(&mut verdicts)
        .zip(&instances)
        .map(|((name, verdicts), &instances)| {
            // Stable, so equal scores keep image order, as COCO's mergesort.
            verdicts.sort_by(|a, b| b.score.total_cmp(&a.score));
            class_accuracy(name, verdicts, instances, report_confidence, protocol)
        })
        .collect();
    let labelled: Vec<&ClassAccuracy> = per_class.iter().filter(|c| c.instances > 0).collect();
    let mean = |value: fn(&ClassAccuracy) -> Option<f64>| {
        if labelled.is_empty() {
            0.0
        } else {
            labelled
                .iter()
                .map(|c| value(c).unwrap_or(0.0))
                .sum::<f64>()
                / labelled.len() as f64
        }
    };
    Evaluation {
        map50: mean(|c| c.ap50),
        map50_95: mean(|c| c.ap50_95),
        precision: mean(|c| c.precision),
        recall: mean(|c| c.recall),
        report_confidence,
        protocol,
        images: images.len(),
        instances: instances.iter().sum(),
        per_class,
    }
}

/// COCO's per-image matching: at each threshold, detections best first, each
/// takes the still unmatched object it overlaps most, if by at least the
/// threshold.
fn match_best_first(truths: &[&BoundingBox], detections: &[&Detection], out: &mut Vec<Verdict>) {
    let mut matched = vec![[false; IOU_THRESHOLDS.len()]; truths.len()];
    for detection in detections {
        let overlaps: Vec<f64> = truths
            .iter()
            .map(|truth| iou(truth, &detection.bbox))
            .collect();
        let mut true_positive = [false; IOU_THRESHOLDS.len()];
        for (level, &threshold) in IOU_THRESHOLDS.iter().enumerate() {
            let mut best: Option<(usize, f64)> = None;
            for (index, &overlap) in overlaps.iter().enumerate() {
                let floor = best.map_or(threshold, |(_, best_overlap)| best_overlap);
                if !matched[index][level] && overlap >= floor {
                    best = Some((index, overlap));
                }
            }
            if let Some((index, _)) = best {
                matched[index][level] = true;
                true_positive[level] = true;
            }
        }
        out.push(Verdict {
            score: detection.confidence,
            true_positive,
        });
    }
}

/// Ultralytics' `match_predictions`: at each threshold every detection picks
/// the object it overlaps most (if by at least the threshold), then each
/// object keeps, of the detections that picked it, the best-scoring one. A
/// detection whose object went to another does not fall back to its second
/// choice.
fn match_by_overlap(truths: &[&BoundingBox], detections: &[&Detection], out: &mut Vec<Verdict>) {
    let overlaps: Vec<Vec<f64>> = detections
        .iter()
        .map(|detection| {
            truths
                .iter()
                .map(|truth| iou_with_epsilon(truth, &detection.bbox))
                .collect()
        })
        .collect();
    let mut verdicts: Vec<Verdict> = detections
        .iter()
        .map(|detection| Verdict {
            score: detection.confidence,
            true_positive: [false; IOU_THRESHOLDS.len()],
        })
        .collect();
    for (level, &threshold) in IOU_THRESHOLDS.iter().enumerate() {
        let mut taken = vec![false; truths.len()];
        // Detections arrive best first, so the first to claim an object keeps it.
        for (verdict, overlaps) in verdicts.iter_mut().zip(&overlaps) {
            let choice = overlaps
                .iter()
                .enumerate()
                .filter(|(_, overlap)| **overlap >= threshold)
                .max_by(|a, b| a.1.total_cmp(b.1));
            if let Some((index, _)) = choice
                && !taken[index]
            {
                taken[index] = true;
                verdict.true_positive[level] = true;
            }
        }
    }
    out.extend(verdicts);
}

fn class_accuracy(
    name: &str,
    verdicts: &[Verdict],
    instances: usize,
    report_confidence: f32,
    protocol: Protocol,
) -> ClassAccuracy {
    let reported: Vec<&Verdict> = verdicts
        .iter()
        .take_while(|verdict| verdict.score >= report_confidence)
        .collect();
    let hits = reported.iter().filter(|v| v.true_positive[0]).count();
    let precision = (!reported.is_empty()).then(|| hits as f64 / reported.len() as f64);
    let recall = (instances > 0).then(|| hits as f64 / instances as f64);
    let average_precisions: Option<Vec<f64>> = (instances > 0).then(|| {
        (0..IOU_THRESHOLDS.len())
            .map(|level| {
                let (recall, precision) = precision_recall(verdicts, level, instances);
                match protocol {
                    Protocol::Coco => coco_average_precision(&recall, &precision),
                    Protocol::Ultralytics => ultralytics_average_precision(&recall, &precision),
                }
            })
            .collect()
    });
    ClassAccuracy {
        class: name.to_owned(),
        instances,
        detections: verdicts.len(),
        precision,
        recall,
        ap50: average_precisions.as_ref().map(|aps| aps[0]),
        ap50_95: average_precisions
            .as_ref()
            .map(|aps| aps.iter().sum::<f64>() / aps.len() as f64),
    }
}

/// Recall and precision after each detection, best first, at one threshold.
fn precision_recall(verdicts: &[Verdict], level: usize, instances: usize) -> (Vec<f64>, Vec<f64>) {
    let mut recall = Vec::with_capacity(verdicts.len());
    let mut precision = Vec::with_capacity(verdicts.len());
    let mut hits = 0usize;
    for (seen, verdict) in verdicts.iter().enumerate() {
        hits += usize::from(verdict.true_positive[level]);
        recall.push(hits as f64 / instances as f64);
        precision.push(hits as f64 / (seen + 1) as f64);
    }
    (recall, precision)
}

/// Makes precision non-increasing in recall: each point takes the best
/// precision reached at any later point.
fn envelope(precision: &mut [f64]) {
    for index in (1..precision.len()).rev() {
        precision[index - 1] = precision[index - 1].max(precision[index]);
    }
}

/// COCOeval's AP: at each of 101 recall points the envelope's precision at
/// the first detection reaching that recall, 0 beyond the last; the mean.
fn coco_average_precision(recall: &[f64], precision: &[f64]) -> f64 {
    let mut precision = precision.to_vec();
    envelope(&mut precision);
    let mut sum = 0.0;
    let mut cursor = 0;
    for point in 0..RECALL_POINTS {
        let wanted = point as f64 / (RECALL_POINTS - 1) as f64;
        while cursor < recall.len() && recall[cursor] < wanted {
            cursor += 1;
        }
        if cursor == recall.len() {
            break;
        }
        sum += precision[cursor];
    }
    sum / RECALL_POINTS as f64
}

/// Ultralytics' `compute_ap`: the envelope of the curve with end points
/// (0, 1) and (1, 0) added, sampled by linear interpolation (numpy's `interp`)
/// at 101 recall points, integrated with the trapezoid rule.
fn ultralytics_average_precision(recall: &[f64], precision: &[f64]) -> f64 {
    let mut curve_recall = Vec::with_capacity(recall.len() + 2);
    curve_recall.push(0.0);
    curve_recall.extend_from_slice(recall);
    curve_recall.push(1.0);
    let mut curve_precision = Vec::with_capacity(precision.len() + 2);
    curve_precision.push(1.0);
    curve_precision.extend_from_slice(precision);
    curve_precision.push(0.0);
    envelope(&mut curve_precision);
    let samples: Vec<f64> = (0..RECALL_POINTS)
        .map(|point| {
            let at = point as f64 / (RECALL_POINTS - 1) as f64;
            numpy_interp(at, &curve_recall, &curve_precision)
        })
        .collect();
    let step = 1.0 / (RECALL_POINTS - 1) as f64;
    samples
        .windows(2)
        .map(|pair| (pair[0] + pair[1]) * 0.5 * step)
        .sum()
}

/// numpy's `interp` for non-decreasing `xs`: the segment is the one whose
/// left end is the last point at or before `x`; at or past the last point,
/// the last value.
fn numpy_interp(x: f64, xs: &[f64], ys: &[f64]) -> f64 {
    let last = xs.len() - 1;
    if x >= xs[last] {
        return ys[last];
    }
    if x < xs[0] {
        return ys[0];
    }
    let right = xs.partition_point(|&point| point <= x);
    let left = right - 1;
    let slope = (ys[right] - ys[left]) / (xs[right] - xs[left]);
    ys[left] + slope * (x - xs[left])
}

/// Ultralytics' `box_iou`, whose union carries an epsilon of 1e-7.
fn iou_with_epsilon(a: &BoundingBox, b: &BoundingBox) -> f64 {
    let [ax1, ay1, ax2, ay2] = [a.x1, a.y1, a.x2, a.y2].map(f64::from);
    let [bx1, by1, bx2, by2] = [b.x1, b.y1, b.x2, b.y2].map(f64::from);
    let intersection =
        (ax2.min(bx2) - ax1.max(bx1)).max(0.0) * (ay2.min(by2) - ay1.max(by1)).max(0.0);
    intersection / ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - intersection + 1e-7)
}

fn iou(a: &BoundingBox, b: &BoundingBox) -> f64 {
    let [ax1, ay1, ax2, ay2] = [a.x1, a.y1, a.x2, a.y2].map(f64::from);
    let [bx1, by1, bx2, by2] = [b.x1, b.y1, b.x2, b.y2].map(f64::from);
    let width = (ax2.min(bx2) - ax1.max(bx1)).max(0.0);
    let height = (ay2.min(by2) - ay1.max(by1)).max(0.0);
    let intersection = width * height;
    let union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - intersection;
    if union > 0.0 {
        intersection / union
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["bolt", "nut", "washer"].map(String::from).to_vec()
    }

    fn square(x: f32, y: f32) -> BoundingBox {
        BoundingBox {
            x1: x,
            y1: y,
            x2: x + 10.0,
            y2: y + 10.0,
        }
    }

    fn detection(class: u16, bbox: BoundingBox, confidence: f32) -> Detection {
        Detection {
            bbox,
            class: ClassId(class),
            confidence,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn perfect_predictions_score_one() {
        let image = ImageResult {
            truths: vec![
                (ClassId(0), square(0.0, 0.0)),
                (ClassId(1), square(50.0, 50.0)),
            ],
            detections: vec![
                detection(0, square(0.0, 0.0), 0.9),
                detection(1, square(50.0, 50.0), 0.3),
            ],
        };
        let evaluation = score(&[image.clone(), image], &names(), 0.25, Protocol::Coco);
        assert_eq!((evaluation.map50, evaluation.map50_95), (1.0, 1.0));
        assert_eq!((evaluation.precision, evaluation.recall), (1.0, 1.0));
        assert_eq!(evaluation.instances, 4);
        // Washer has no objects and no detections: out of every mean.
        assert_eq!(evaluation.per_class[2].ap50, None);
    }

    /// Ultralytics' end point (1, 0) is sampled at recall 1, so the last
    /// trapezoid is half a step: a perfect detector scores 0.995 there, as
    /// Ultralytics' `val` reports for a perfectly detected class.
    #[test]
    fn perfect_predictions_score_0_995_under_ultralytics_rules() {
        let image = ImageResult {
            truths: vec![
                (ClassId(0), square(0.0, 0.0)),
                (ClassId(0), square(50.0, 0.0)),
            ],
            detections: vec![
                detection(0, square(0.0, 0.0), 0.9),
                detection(0, square(50.0, 0.0), 0.8),
            ],
        };
        let evaluation = score(&[image], &names(), 0.25, Protocol::Ultralytics);
        assert!(close(evaluation.map50, 0.995), "{}", evaluation.map50);
        assert!(close(evaluation.map50_95, 0.995));
    }

    /// Two bolts; one detection exact (0.9), the other shifted 2 px along x:
    /// IoU = 80 / 120 = 2/3. It matches at 0.50…0.65 (4 thresholds) and is a
    /// false positive at 0.70…0.95 (6), where the envelope is precision 1 up
    /// to recall 0.5 (51 of 101 points) and 0 beyond.
    #[test]
    fn one_shifted_box_gives_the_hand_computed_ap() {
        let truths = vec![
            (ClassId(0), square(0.0, 0.0)),
            (ClassId(0), square(40.0, 0.0)),
        ];
        let exact_first = ImageResult {
            truths: truths.clone(),
            detections: vec![
                detection(0, square(0.0, 0.0), 0.9),
                detection(0, square(42.0, 0.0), 0.8),
            ],
        };
        let evaluation = score(&[exact_first], &names(), 0.25, Protocol::Coco);
        let high_thresholds_ap = 51.0 / 101.0;
        assert_eq!(evaluation.map50, 1.0);
        assert!(close(
            evaluation.map50_95,
            (4.0 + 6.0 * high_thresholds_ap) / 10.0
        ));
        // Shifted box ranked first: at 0.70…0.95 precision is 1/2 at recall
        // 1/2 and the envelope carries it down to recall 0.
        let shifted_first = ImageResult {
            truths,
            detections: vec![
                detection(0, square(0.0, 0.0), 0.8),
                detection(0, square(42.0, 0.0), 0.9),
            ],
        };
        let evaluation = score(&[shifted_first], &names(), 0.25, Protocol::Coco);
        assert_eq!(evaluation.map50, 1.0);
        assert!(close(
            evaluation.map50_95,
            (4.0 + 6.0 * 0.5 * 51.0 / 101.0) / 10.0
        ));
    }

    /// One bolt found exactly (0.9) on image A; image B is empty and gets a
    /// false bolt. Precision at the report confidence goes from 1 to 1/2.
    /// Ranked below the true one, the false positive leaves AP at 1; ranked
    /// above, AP is 1/2 (precision 1/2 over the whole recall range).
    #[test]
    fn an_empty_image_with_a_false_positive_lowers_precision() {
        let found = ImageResult {
            truths: vec![(ClassId(0), square(0.0, 0.0))],
            detections: vec![detection(0, square(0.0, 0.0), 0.9)],
        };
        let baseline = score(std::slice::from_ref(&found), &names(), 0.25, Protocol::Coco);
        assert_eq!((baseline.precision, baseline.map50), (1.0, 1.0));
        for (false_score, expected_ap) in [(0.5, 1.0), (0.95, 0.5)] {
            let empty = ImageResult {
                truths: vec![],
                detections: vec![detection(0, square(20.0, 20.0), false_score)],
            };
            let evaluation = score(&[found.clone(), empty], &names(), 0.25, Protocol::Coco);
            assert_eq!(evaluation.precision, 0.5);
            assert_eq!(evaluation.recall, 1.0);
            assert!(close(evaluation.map50, expected_ap), "{evaluation:?}");
            assert!(close(evaluation.map50_95, expected_ap));
        }
        // Below the report confidence it still costs AP but not precision.
        let faint = ImageResult {
            truths: vec![],
            detections: vec![detection(0, square(20.0, 20.0), 0.95)],
        };
        let evaluation = score(&[found, faint], &names(), 0.99, Protocol::Coco);
        assert_eq!(evaluation.per_class[0].precision, None);
        assert_eq!(evaluation.recall, 0.0);
        assert!(close(evaluation.map50, 0.5));
    }

    /// COCO gives a category without ground truth no AP (-1) and leaves it out
    /// of the mean; its detections cost no other class anything.
    #[test]
    fn a_class_without_ground_truth_is_left_out_as_coco_does() {
        let image = ImageResult {
            truths: vec![(ClassId(0), square(0.0, 0.0))],
            detections: vec![
                detection(0, square(0.0, 0.0), 0.9),
                detection(2, square(0.0, 0.0), 0.95),
                detection(2, square(60.0, 0.0), 0.7),
            ],
        };
        let evaluation = score(&[image], &names(), 0.25, Protocol::Coco);
        assert_eq!((evaluation.map50, evaluation.map50_95), (1.0, 1.0));
        let washer = &evaluation.per_class[2];
        assert_eq!((washer.instances, washer.detections), (0, 2));
        assert_eq!(
            (washer.ap50, washer.ap50_95, washer.recall),
            (None, None, None)
        );
        assert_eq!(washer.precision, Some(0.0));
        assert_eq!(evaluation.precision, 1.0);
    }

    #[test]
    fn each_object_is_matched_once_and_to_the_best_overlap() {
        // Two detections on one object: the better-scoring one takes it, the
        // other is a false positive even though it overlaps more.
        let image = ImageResult {
            truths: vec![(ClassId(0), square(0.0, 0.0))],
            detections: vec![
                detection(0, square(1.0, 0.0), 0.9),
                detection(0, square(0.0, 0.0), 0.8),
            ],
        };
        let evaluation = score(&[image], &names(), 0.25, Protocol::Coco);
        assert_eq!(evaluation.per_class[0].precision, Some(0.5));
        // The first has IoU 90/110 = 0.818: it takes the object at 0.50…0.80
        // (AP 1). At 0.85…0.95 it misses, the exact second one takes the
        // object at precision 1/2 (AP 1/2).
        assert!(close(evaluation.map50_95, (7.0 + 3.0 * 0.5) / 10.0));
    }
}
