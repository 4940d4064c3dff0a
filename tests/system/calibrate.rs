//! INT8 calibration of the bundled model on the bundled calibration stills.

use std::path::{Path, PathBuf};

use edgesort_calibrate::{
    CalibrateError, FolderCalibration, Method, OnnxModel, Settings, calibrate_folder,
    layer_sensitivity, write_atomically,
};
use edgesort_infer::{Backend, InputShape};
use edgesort_infer_tract::TractBackend;

use crate::common;

const DYNAMIC: InputShape = InputShape::Dynamic {
    stride: 32,
    max_side: 640,
};

fn model() -> PathBuf {
    common::repo().join("models/sorter_yolov8n_dynamic.onnx")
}

fn settings(images: usize) -> Settings {
    Settings {
        method: Method::Percentile(99.99),
        max_images: Some(images),
        min_images: images,
        float_nodes: Vec::new(),
        float_decode: true,
        threads: 2,
    }
}

fn calibrate(images: &Path, settings: &Settings) -> Result<FolderCalibration, CalibrateError> {
    calibrate_folder(&model(), DYNAMIC, images, settings, |_, _| {})
}

#[test]
fn the_same_images_give_the_same_scales_and_the_same_model() {
    let images = common::repo().join("calibration/images");
    let first = calibrate(&images, &settings(3)).unwrap();
    let second = calibrate(&images, &settings(3)).unwrap();
    assert_eq!(first.images_used, 3);
    assert_eq!(first.ranges.shared, second.ranges.shared);
    assert_eq!(first.qdq_bytes(), second.qdq_bytes());
    // Every planned tensor got a real range from the images.
    assert!(
        first
            .ranges
            .measured
            .values()
            .all(|&amax| amax > 0.0 && amax.is_finite()),
        "{:?}",
        first.ranges.measured
    );
    assert_eq!(
        first.plan.float_convs.len(),
        1,
        "the decode's Conv stays in float"
    );
    assert_eq!(first.plan.quantized_convs.len(), 63);
}

#[test]
fn the_qdq_model_runs_and_finds_what_the_fp32_model_finds() {
    let scratch = tempfile::tempdir().unwrap();
    let calibration = calibrate(&common::repo().join("calibration/images"), &settings(4)).unwrap();
    let path = scratch.path().join("sorter.qdq.onnx");
    write_atomically(&path, &calibration.qdq_bytes()).unwrap();

    // Reading it back: a Q/DQ model is not calibrated twice.
    let refused = OnnxModel::load(&path).unwrap_err();
    assert!(
        refused.to_string().contains("already quantized"),
        "{refused}"
    );

    let config = common::demo_config(scratch.path());
    let mut fp32 = common::detector(&config);
    let backend = TractBackend::load(&path).expect("tract loads the Q/DQ model");
    assert_eq!(backend.io().inputs[0].name, "images");
    let mut int8 = edgesort_infer::Detector::for_model(backend, &config.model).unwrap();
    // Four calibration images make a rough INT8 model, so a marginal part
    // may come or go; nearly every FP32 detection must be found again, with
    // its class and nearly its box.
    let (mut expected_total, mut found_total, mut matched) = (0, 0, 0);
    for frame in edgesort_capture::clip_frames(&common::demo_clip())
        .unwrap()
        .iter()
        .step_by(40)
    {
        let (width, height, rgb) =
            edgesort_capture::decode_jpeg_rgb(&std::fs::read(frame).unwrap()).unwrap();
        let frame = edgesort_types::Frame::from_rgb(
            0,
            edgesort_types::Timestamp::default(),
            width,
            height,
            rgb,
        );
        let (expected, _) = fp32.detect(&frame).unwrap();
        let (found, _) = int8.detect(&frame).unwrap();
        expected_total += expected.len();
        found_total += found.len();
        matched += expected
            .iter()
            .filter(|detection| {
                found.iter().any(|other| {
                    other.class == detection.class && detection.bbox.iou(&other.bbox) > 0.8
                })
            })
            .count();
    }
    assert!(expected_total >= 20, "{expected_total} FP32 detections");
    assert!(
        matched * 10 >= expected_total * 9
            && found_total.abs_diff(expected_total) * 10 <= expected_total,
        "{matched} of {expected_total} FP32 detections found again; {found_total} INT8 detections"
    );
}

#[test]
fn unreadable_images_are_skipped_counted_and_too_few_is_an_error() {
    let scratch = tempfile::tempdir().unwrap();
    let images = scratch.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let bundled = common::repo().join("calibration/images");
    for name in ["calib_00000.jpg", "calib_00001.jpg"] {
        std::fs::copy(bundled.join(name), images.join(name)).unwrap();
    }
    std::fs::write(images.join("calib_00002.jpg"), b"not a jpeg").unwrap();

    let mut lenient = settings(3);
    lenient.min_images = 2;
    let calibration = calibrate(&images, &lenient).unwrap();
    assert_eq!(calibration.images_used, 2);
    assert_eq!(calibration.images_skipped.len(), 1);
    assert!(calibration.images_skipped[0].0.ends_with("calib_00002.jpg"));

    match calibrate(&images, &settings(3)) {
        Err(CalibrateError::TooFewImages {
            usable: 2,
            skipped: 1,
            minimum: 3,
            ..
        }) => {}
        other => panic!(
            "expected too few images, got {:?}",
            other.map(|c| c.images_used)
        ),
    }
}

#[test]
fn sensitivity_ranks_a_badly_quantized_layer_first() {
    let images = common::repo().join("calibration/images");
    let calibration = calibrate(&images, &settings(2)).unwrap();
    let all = calibration.plan.quantized_convs.clone();
    let only = |keep: &[&str]| -> FolderCalibration {
        let float: Vec<String> = all
            .iter()
            .filter(|conv| !keep.contains(&conv.as_str()))
            .cloned()
            .collect();
        calibration.with_float(&float)
    };
    // The head Conv is the first of the stride-8 box branch, which every
    // small part on the belt goes through.
    let (backbone, head) = ("node_conv2d_20", "node_conv2d_45");
    let both = only(&[backbone, head]);
    assert_eq!(both.plan.quantized_convs, [backbone, head]);
    let head_tensors = only(&[head]).plan.tensors;
    // Alone, the head Conv moves the output more than the backbone one. Give
    // the backbone Conv's own inputs a range 100 times too wide, so that
    // almost every value there rounds to zero, and it must rank first.
    let mut ranges = both.ranges.measured.clone();
    for tensor in only(&[backbone]).plan.tensors {
        if !head_tensors.contains(&tensor) {
            *ranges.get_mut(&tensor).unwrap() *= 100.0;
        }
    }
    let frame =
        edgesort_capture::decode_jpeg_rgb(&std::fs::read(images.join("calib_00000.jpg")).unwrap())
            .unwrap();
    let mut progress = Vec::new();
    let ranking = layer_sensitivity(
        &model(),
        &calibration.model,
        &both.plan,
        &ranges,
        &[frame],
        DYNAMIC,
        2,
        |done, all| progress.push((done, all)),
    )
    .unwrap();
    assert_eq!(progress, [(1, 2), (2, 2)]);
    assert_eq!(ranking[0].conv, backbone, "{ranking:?}");
    assert!(
        ranking[0].output_error > 3.0 * ranking[1].output_error && ranking[1].output_error > 0.0,
        "{ranking:?}"
    );
}
