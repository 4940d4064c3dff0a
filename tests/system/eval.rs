//! The accuracy evaluator against the tools people quote: Ultralytics 8.3.150
//! `val` and pycocotools' COCOeval.

use crate::common;

use edgesort_eval::{Dataset, EVALUATION_PARAMS, ImageResult, Protocol, evaluate, score};
use edgesort_infer::Detector;
use edgesort_infer_tract::TractBackend;
use edgesort_types::{BoundingBox, ClassId, Detection};

const CLASSES: [&str; 5] = ["bolt", "nut", "washer", "spring", "foreign"];

fn class_names() -> Vec<String> {
    CLASSES.map(String::from).to_vec()
}

/// Figures for `sorter_yolov8n_640.onnx` on `tests/data/val_small` (the 40
/// stills at 640x360, square 640x640 input), see `scripts/make-eval-reference.py`.
const ULTRALYTICS_MAP50: f64 = 0.981_243;
const ULTRALYTICS_MAP50_95: f64 = 0.878_759;
/// pycocotools 2.0 on Ultralytics' own predictions.json of that run.
const PYCOCOTOOLS_MAP50: f64 = 0.980_499;
const PYCOCOTOOLS_MAP50_95: f64 = 0.868_606;

fn val_small() -> Dataset {
    Dataset::open(&common::repo().join("tests/data/val_small"), CLASSES.len())
        .expect("bundled validation set opens")
}

/// Ultralytics' predictions.json of the reference run, as image results.
fn ultralytics_predictions(dataset: &Dataset) -> Vec<ImageResult> {
    let path = common::repo().join("tests/data/eval/ultralytics_640_val_small_predictions.json");
    let predictions: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    dataset
        .images
        .iter()
        .map(|image| {
            let stem = image.image.file_stem().unwrap().to_str().unwrap();
            let detections = predictions
                .iter()
                .filter(|p| p["image_id"] == stem)
                .map(|p| {
                    let number = |v: &serde_json::Value| v.as_f64().unwrap() as f32;
                    let bbox = p["bbox"].as_array().unwrap();
                    let (x, y, w, h) = (
                        number(&bbox[0]),
                        number(&bbox[1]),
                        number(&bbox[2]),
                        number(&bbox[3]),
                    );
                    Detection {
                        bbox: BoundingBox {
                            x1: x,
                            y1: y,
                            x2: x + w,
                            y2: y + h,
                        },
                        class: ClassId(p["category_id"].as_u64().unwrap() as u16 - 1),
                        confidence: number(&p["score"]),
                    }
                })
                .collect();
            let truths = image
                .objects
                .iter()
                .map(|object| (object.class, object.bbox(640.0, 360.0)))
                .collect();
            ImageResult { truths, detections }
        })
        .collect()
}

/// The metric code alone: the same detections must give each tool's own
/// figures under its own rules.
#[test]
fn scoring_reproduces_ultralytics_and_pycocotools_on_their_predictions() {
    let dataset = val_small();
    let results = ultralytics_predictions(&dataset);
    assert_eq!(
        results.iter().map(|r| r.detections.len()).sum::<usize>(),
        737
    );
    let ultralytics = score(&results, &class_names(), 0.25, Protocol::Ultralytics);
    let coco = score(&results, &class_names(), 0.25, Protocol::Coco);
    println!(
        "ultralytics rules: mAP50 {:.6} mAP50-95 {:.6}; coco rules: mAP50 {:.6} mAP50-95 {:.6}",
        ultralytics.map50, ultralytics.map50_95, coco.map50, coco.map50_95
    );
    assert!((ultralytics.map50 - ULTRALYTICS_MAP50).abs() < 2e-4);
    assert!((ultralytics.map50_95 - ULTRALYTICS_MAP50_95).abs() < 2e-4);
    assert!((coco.map50 - PYCOCOTOOLS_MAP50).abs() < 2e-4);
    assert!((coco.map50_95 - PYCOCOTOOLS_MAP50_95).abs() < 2e-4);
}

/// The whole evaluator, detector included, on the bundled model at the
/// reference run's square input: within the tolerance of the issue (0.004).
#[test]
fn evaluator_agrees_with_ultralytics_on_the_bundled_validation_set() {
    let backend = TractBackend::load(&common::repo().join("models/sorter_yolov8n_dynamic.onnx"))
        .expect("bundled model loads");
    let mut detector = Detector::new(backend, CLASSES.len(), 640, EVALUATION_PARAMS)
        .unwrap()
        .with_fixed_input(640, 640)
        .unwrap();
    let dataset = val_small();
    let mut done = 0;
    let evaluation = evaluate(
        &mut detector,
        &dataset,
        &class_names(),
        0.25,
        Protocol::Ultralytics,
        |count| done = count,
    )
    .unwrap();
    println!(
        "mAP50 {:.4} (Ultralytics {ULTRALYTICS_MAP50}), mAP50-95 {:.4} (Ultralytics {ULTRALYTICS_MAP50_95})",
        evaluation.map50, evaluation.map50_95
    );
    assert_eq!(
        (done, evaluation.images, evaluation.instances),
        (40, 40, 184)
    );
    assert!((evaluation.map50 - ULTRALYTICS_MAP50).abs() <= 0.004);
    assert!((evaluation.map50_95 - ULTRALYTICS_MAP50_95).abs() <= 0.004);
}
