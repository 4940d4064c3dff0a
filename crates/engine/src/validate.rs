use edgesort_infer::{Backend, Detector};
use edgesort_types::config::ModelConfig;
use edgesort_types::{Detection, Frame};
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// How closely a new engine must agree with the CPU reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Share of the reference's detections the engine must find.
    pub min_recall: f64,
    /// Largest share of the engine's detections the reference lacks.
    pub max_extra: f64,
    /// IoU at which two boxes are the same part.
    pub iou: f32,
}

/// The outcome of checking an engine against the CPU reference, kept in
/// the engine's manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ValidationReport {
    /// Images compared.
    pub images: usize,
    /// Detections the reference made.
    pub reference_detections: usize,
    /// Detections the engine made.
    pub engine_detections: usize,
    /// Reference detections the engine found with the same class.
    pub matched: usize,
    /// Boxes both found whose classes differ.
    pub class_disagreements: usize,
    /// Mean IoU of the matched boxes.
    pub mean_iou: f64,
    /// `matched / reference_detections`.
    pub recall: f64,
    /// Share of the engine's detections matching no reference box.
    pub extra: f64,
    /// Whether the engine may be used.
    pub passed: bool,
    /// One line a technician can read.
    pub verdict: String,
}

/// Matches the engine's detections to the reference's, image by image:
/// pairs are taken greedily by IoU (at least `thresholds.iou`), whatever
/// their classes, so that a box found with the wrong class counts as a class
/// disagreement rather than as one miss and one extra.
pub fn compare_detections(
    reference: &[Vec<Detection>],
    engine: &[Vec<Detection>],
    thresholds: Thresholds,
) -> ValidationReport {
    let mut matched = 0;
    let mut class_disagreements = 0;
    let mut paired = 0;
    let mut iou_sum = 0.0;
    for (reference_boxes, engine_boxes) in reference.iter().zip(engine) {
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (r, reference_box) in reference_boxes.iter().enumerate() {
            for (e, engine_box) in engine_boxes.iter().enumerate() {
                let iou = reference_box.bbox.iou(&engine_box.bbox);
                if iou >= thresholds.iou {
                    pairs.push((iou, r, e));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut reference_taken = vec![false; reference_boxes.len()];
        let mut engine_taken = vec![false; engine_boxes.len()];
        for (iou, r, e) in pairs {
            if reference_taken[r] || engine_taken[e] {
                continue;
            }
            reference_taken[r] = true;
            engine_taken[e] = true;
            paired += 1;
            if reference_boxes[r].class == engine_boxes[e].class {
                matched += 1;
                iou_sum += f64::from(iou);
            } else {
                class_disagreements += 1;
            }
        }
    }
    let reference_detections: usize = reference.iter().map(Vec::len).sum();
    let engine_detections: usize = engine.iter().map(Vec::len).sum();
    let share = |part: usize, whole: usize| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    let recall = share(matched, reference_detections);
    let extra = share(engine_detections - paired, engine_detections);
    let mean_iou = if matched == 0 {
        0.0
    } else {
        iou_sum / matched as f64
    };
    let (passed, verdict) = if reference.len() != engine.len() {
        (
            false,
            format!(
                "the engine answered {} images of {}",
                engine.len(),
                reference.len()
            ),
        )
    } else if reference_detections == 0 {
        (
            false,
            "the CPU reference found no parts on the validation images, so they prove nothing; \
             point engine.validation_images at stills with parts"
                .to_owned(),
        )
    } else if recall < thresholds.min_recall {
        (
            false,
            format!(
                "the engine found {matched} of {reference_detections} reference parts \
                 (recall {recall:.3} < {}; {class_disagreements} with another class)",
                thresholds.min_recall
            ),
        )
    } else if extra > thresholds.max_extra {
        (
            false,
            format!(
                "{} of the engine's {engine_detections} detections are not in the reference \
                 ({extra:.3} > {})",
                engine_detections - paired,
                thresholds.max_extra
            ),
        )
    } else {
        (
            true,
            format!(
                "recall {recall:.3}, extra {extra:.3}, mean IoU {mean_iou:.3} over {} images",
                reference.len()
            ),
        )
    };
    ValidationReport {
        images: reference.len(),
        reference_detections,
        engine_detections,
        matched,
        class_disagreements,
        mean_iou,
        recall,
        extra,
        passed,
        verdict,
    }
}

/// Validation images with the CPU reference's detections on them, computed
/// once and compared with every engine built.
pub struct ReferenceDetections {
    frames: Vec<Frame>,
    detections: Vec<Vec<Detection>>,
    model: ModelConfig,
    fixed_input: Option<(u32, u32)>,
    thresholds: Thresholds,
}

impl ReferenceDetections {
    /// Runs `reference` (the CPU backend on the FP32 model) over `frames`.
    /// `fixed_input` pins the letterbox shape, for engines built for one.
    pub fn compute(
        reference: Box<dyn Backend>,
        frames: Vec<Frame>,
        model: &ModelConfig,
        fixed_input: Option<(u32, u32)>,
        thresholds: Thresholds,
    ) -> Result<Self, EngineError> {
        let detections = detect_all(reference, &frames, model, fixed_input, "the CPU reference")?;
        Ok(ReferenceDetections {
            frames,
            detections,
            model: model.clone(),
            fixed_input,
            thresholds,
        })
    }

    /// Runs `engine` over the same frames and compares.
    pub fn validate(&self, engine: Box<dyn Backend>) -> Result<ValidationReport, EngineError> {
        let detections = detect_all(
            engine,
            &self.frames,
            &self.model,
            self.fixed_input,
            "the new engine",
        )?;
        Ok(compare_detections(
            &self.detections,
            &detections,
            self.thresholds,
        ))
    }
}

fn detect_all(
    backend: Box<dyn Backend>,
    frames: &[Frame],
    model: &ModelConfig,
    fixed_input: Option<(u32, u32)>,
    what: &str,
) -> Result<Vec<Vec<Detection>>, EngineError> {
    let failed = |source| EngineError::RunValidation {
        what: what.to_owned(),
        source,
    };
    let mut detector = Detector::for_model(backend, model).map_err(failed)?;
    if let Some((width, height)) = fixed_input {
        detector = detector.with_fixed_input(width, height).map_err(failed)?;
    }
    frames
        .iter()
        .map(|frame| {
            detector
                .detect(frame)
                .map(|(found, _)| found)
                .map_err(failed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgesort_types::{BoundingBox, ClassId};

    const THRESHOLDS: Thresholds = Thresholds {
        min_recall: 0.95,
        max_extra: 0.05,
        iou: 0.5,
    };

    fn part(x: f32, class: u16) -> Detection {
        Detection {
            bbox: BoundingBox {
                x1: x,
                y1: 10.0,
                x2: x + 40.0,
                y2: 50.0,
            },
            class: ClassId(class),
            confidence: 0.9,
        }
    }

    fn belt() -> Vec<Vec<Detection>> {
        (0..10)
            .map(|image| {
                (0..4)
                    .map(|n| part(100.0 * n as f32 + image as f32, n))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn an_engine_that_agrees_passes() {
        let nudged: Vec<Vec<Detection>> = belt()
            .into_iter()
            .map(|boxes| {
                boxes
                    .into_iter()
                    .map(|d| part(d.bbox.x1 + 2.0, d.class.0))
                    .collect()
            })
            .collect();
        let report = compare_detections(&belt(), &nudged, THRESHOLDS);
        assert!(report.passed, "{}", report.verdict);
        assert_eq!((report.matched, report.reference_detections), (40, 40));
        assert!(report.mean_iou > 0.85 && report.mean_iou < 1.0);
    }

    #[test]
    fn wrong_classes_fail_as_disagreements() {
        let mut swapped = belt();
        for boxes in swapped.iter_mut().take(3) {
            boxes[0].class = ClassId(4);
        }
        let report = compare_detections(&belt(), &swapped, THRESHOLDS);
        assert!(!report.passed);
        assert_eq!(report.class_disagreements, 3);
        assert_eq!(report.matched, 37);
        assert_eq!(
            report.extra, 0.0,
            "a box with the wrong class is not an extra"
        );
        assert!(report.verdict.contains("37 of 40"), "{}", report.verdict);
    }

    #[test]
    fn missed_and_invented_parts_fail() {
        let mut missing = belt();
        missing[0].clear();
        let report = compare_detections(&belt(), &missing, THRESHOLDS);
        assert!(!report.passed);
        assert_eq!(report.recall, 36.0 / 40.0);

        let mut invented = belt();
        for boxes in invented.iter_mut().take(4) {
            boxes.push(part(900.0, 1));
        }
        let report = compare_detections(&belt(), &invented, THRESHOLDS);
        assert!(!report.passed);
        assert!(
            report.verdict.contains("not in the reference"),
            "{}",
            report.verdict
        );
    }

    #[test]
    fn an_empty_reference_proves_nothing() {
        let empty = vec![Vec::new(); 5];
        let report = compare_detections(&empty, &empty, THRESHOLDS);
        assert!(!report.passed);
        assert!(report.verdict.contains("no parts"), "{}", report.verdict);
    }
}
