//! The command line as a technician meets it: exit codes and messages for bad
//! input, and the replay's output files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The bundled config with its relative paths made absolute, edited by `edit`.
fn write_config(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("board/edgesort.toml"))
        .unwrap()
        .replace("\"../", &format!("\"{}/", repo().display()))
        .replace("\"pins/", &format!("\"{}/board/pins/", repo().display()));
    let path = dir.join("edgesort.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// A clip of the first `frames` demo frames, without tracks.json.
fn short_clip(dir: &Path, frames: usize) -> PathBuf {
    let clip = dir.join("clip");
    std::fs::create_dir_all(clip.join("frames")).unwrap();
    for index in 0..frames {
        let name = format!("{index:06}.jpg");
        std::fs::copy(
            repo().join("tests/data/demo_clip/frames").join(&name),
            clip.join("frames").join(&name),
        )
        .unwrap();
    }
    clip
}

fn edgesort(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgesort"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn replay(config: &Path, clip: &Path, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "replay",
        "--fast",
        "--config",
        config.to_str().unwrap(),
        "--clip",
        clip.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    edgesort(&args, dir)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_invalid_config_exits_2_and_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let clip = short_clip(dir.path(), 1);
    for (edit, field) in [
        (("pulse_ms = 20", "pulse_ms = 400"), "ejectors[0].pulse_ms"),
        (("mm_per_px = 0.5", "mm_per_px = -0.5"), "belt.mm_per_px"),
        (
            ("lane = \"reject\"\n# Set", "lane = \"shredder\"\n# Set"),
            "rules.class[4].lane",
        ),
        (("min_hits = 3", "min_hits = 3\nmin_hit = 4"), "min_hit"),
        (
            ("max_drop_points = 1.0", "max_drop_points = -1.0"),
            "calibration.max_drop_points",
        ),
    ] {
        let config = write_config(dir.path(), |text| {
            assert!(text.contains(edit.0), "{}", edit.0);
            text.replacen(edit.0, edit.1, 1)
        });
        let output = replay(&config, &clip, dir.path(), &[]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(
            stderr(&output).contains(field),
            "{field}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn a_missing_model_exits_3_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let clip = short_clip(dir.path(), 1);
    let config = write_config(dir.path(), |text| {
        text.replace("sorter_yolov8n_dynamic.onnx", "gone.onnx")
    });
    let output = replay(&config, &clip, dir.path(), &[]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("model file not found")
            && stderr(&output).contains("models/gone.onnx"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_model_that_is_not_a_detector_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let clip = short_clip(dir.path(), 1);
    let config = write_config(dir.path(), |text| {
        text.replace(
            "models/sorter_yolov8n_dynamic.onnx",
            "tests/data/not_yolo.onnx",
        )
    });
    let output = replay(&config, &clip, dir.path(), &[]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is not a YOLOv8 detector"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn replay_skips_corrupt_frames_and_writes_decisions_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let clip = short_clip(dir.path(), 60);
    let truncated = clip.join("frames/000010.jpg");
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(
        clip.join("frames/000020.jpg"),
        b"\xff\xd8 definitely not a jpeg",
    )
    .unwrap();
    let config = write_config(dir.path(), |text| text);
    let decisions = dir.path().join("decisions.jsonl");
    let detections = dir.path().join("detections.jsonl");
    let output = replay(
        &config,
        &clip,
        dir.path(),
        &[
            "--json",
            "--decisions",
            decisions.to_str().unwrap(),
            "--record-detections",
            detections.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("000010.jpg"),
        "the skipped frame is named: {}",
        stderr(&output)
    );

    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["run"]["frames_in_clip"], 60);
    assert_eq!(report["run"]["frames_corrupt"], 2);
    assert_eq!(report["run"]["frames_processed"], 58);
    assert!(report["score"].is_null(), "no tracks.json, no score");
    assert!(dir.path().join("edgesort-replay.sqlite").is_file());

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&decisions)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        report["run"]["decisions"].as_array().unwrap().len()
    );
    assert!(
        !lines.is_empty(),
        "60 frames at 7 px/frame show whole parts"
    );
    for line in &lines {
        for field in ["part_id", "class", "confidence", "lane", "planned_fire_s"] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
    }

    let recorded: Vec<edgesort_types::FrameDetections> = std::fs::read_to_string(&detections)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let sequences: Vec<u64> = recorded.iter().map(|frame| frame.sequence).collect();
    let decodable: Vec<u64> = (0..60).filter(|frame| ![10, 20].contains(frame)).collect();
    assert_eq!(
        sequences, decodable,
        "one line per frame detected, numbered by its place in the clip"
    );
    assert!(recorded.iter().any(|frame| !frame.detections.is_empty()));
}

#[test]
fn recording_detections_needs_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let output = edgesort(
        &[
            "replay",
            "--clip",
            "clip",
            "--record-detections",
            "out.jsonl",
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--fast"), "{}", stderr(&output));
    assert!(!dir.path().join("out.jsonl").exists());
}

/// The first `images` of the bundled validation set, labels included.
fn small_dataset(dir: &Path, images: usize) -> PathBuf {
    let data = dir.join("data");
    for folder in ["images", "labels"] {
        std::fs::create_dir_all(data.join(folder)).unwrap();
    }
    for index in 0..images {
        for (folder, extension) in [("images", "jpg"), ("labels", "txt")] {
            let name = format!("val_{index:05}.{extension}");
            std::fs::copy(
                repo().join("tests/data/val_small").join(folder).join(&name),
                data.join(folder).join(&name),
            )
            .unwrap();
        }
    }
    data
}

#[test]
fn eval_prints_machine_readable_accuracy_and_names_a_broken_image() {
    let scratch = tempfile::tempdir().unwrap();
    let data = small_dataset(scratch.path(), 3);
    let output = edgesort(
        &["eval", "--data", data.to_str().unwrap(), "--json"],
        scratch.path(),
    );
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["images"], 3);
    assert_eq!(report["protocol"], "ultralytics");
    let map50 = report["map50"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&map50), "{map50}");
    for class in ["bolt", "nut", "washer", "spring", "foreign"] {
        assert!(report["per_class"][class]["instances"].is_u64(), "{class}");
    }

    let broken = data.join("images/val_00001.jpg");
    let bytes = std::fs::read(&broken).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let output = edgesort(&["eval", "--data", data.to_str().unwrap()], scratch.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("val_00001.jpg"), "{stderr}");
}

/// `edgesort calibrate` with the bundled config (made absolute) in `dir`.
fn calibrate(dir: &Path, images: &Path, out: &Path, extra: &[&str]) -> Output {
    let config = write_config(dir, |text| text);
    let mut args = vec![
        "calibrate",
        "--config",
        config.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    edgesort(&args, dir)
}

#[test]
fn calibrating_a_model_that_is_not_yolo_exits_3_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let model = repo().join("tests/data/not_yolo.onnx");
    let images = repo().join("calibration/images");
    let out = dir.path().join("model.qdq.onnx");
    let output = calibrate(
        dir.path(),
        &images,
        &out,
        &["--model", model.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not a YOLOv8 detector"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());
}

#[test]
fn calibrating_on_too_few_images_exits_3_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::copy(
        repo().join("calibration/images/calib_00000.jpg"),
        images.join("calib_00000.jpg"),
    )
    .unwrap();
    std::fs::write(images.join("broken.jpg"), b"\xff\xd8 truncated").unwrap();
    let out = dir.path().join("model.qdq.onnx");
    let output = calibrate(dir.path(), &images, &out, &[]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("only 1 usable calibration images")
            && stderr(&output).contains("(1 unreadable), at least 32 needed"),
        "{}",
        stderr(&output)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(
        left.iter()
            .all(|name| !name.to_string_lossy().contains("qdq")
                && !name.to_string_lossy().starts_with(".partial")),
        "{left:?}"
    );
}

#[test]
fn an_interrupted_calibration_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let images = repo().join("calibration/images");
    let out = dir.path().join("model.qdq.onnx");
    let config = write_config(dir.path(), |text| text);
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgesort"))
        .args(["calibrate", "--config", config.to_str().unwrap()])
        .args(["--images", images.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // A hundred images take far longer than this to calibrate.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        child.try_wait().unwrap().is_none(),
        "calibration ended early"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["edgesort.toml"]);
}

/// Without a GPU or TensorRT (this machine, CI), provisioning explains what
/// it found and why it stops; the dry run succeeds, the real run exits 4,
/// leaves the reason in the status file and stamps the CPU backend; the next
/// run ends at that stamp, and a removed stamp or another model provisions
/// again.
#[test]
fn provision_explains_why_no_engine_can_be_built_here() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), |text| text);
    let data = dir.path().join("data");
    let args = |extra: &[&'static str]| {
        let mut args = vec![
            "provision",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        edgesort(&args, dir.path())
    };

    let dry = run(args(&["--dry-run"]));
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        stdout.contains("TensorRT:  absent: TensorRT not found: could not load libnvinfer"),
        "this test expects a machine without TensorRT (CI); found:\n{stdout}"
    );
    assert!(
        stdout.contains("Plan:\n  1. stop: no GPU")
            || stdout.contains("Plan:\n  1. stop: TensorRT is absent"),
        "{stdout}"
    );
    for expected in [
        "GPU:       ",
        "profile:   images min [1, 3, 384, 640] opt [1, 3, 384, 640] max [1, 3, 640, 640]",
        "precision: int8 (falls back int8 -> fp16 -> fp32)",
        "the line runs on the CPU backend (tract)",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(!data.exists(), "a dry run writes nothing");

    let real = run(args(&[]));
    assert_eq!(
        real.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&real.stderr)
    );
    let status = edgesort(
        &[
            "status",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
    );
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("state:    blocked"), "{status}");
    assert!(
        status.contains("no GPU") || status.contains("TensorRT is absent"),
        "{status}"
    );

    // The next boot ends at the stamp: nothing is written again.
    let stamp = data.join("provision/cpu-backend.json");
    let stamped = std::fs::read(&stamp).expect("the first run stamps the data partition");
    let status_file = std::fs::read(data.join("provision/status.json")).unwrap();
    let again = run(args(&[]));
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert_eq!(again.status.code(), Some(4), "{stdout}");
    assert!(
        stdout.contains("1. nothing to do: settled on the CPU backend (tract) at "),
        "{stdout}"
    );
    assert_eq!(std::fs::read(&stamp).unwrap(), stamped);
    assert_eq!(
        std::fs::read(data.join("provision/status.json")).unwrap(),
        status_file
    );

    // Without the stamp, or with another model, it provisions again.
    std::fs::remove_file(&stamp).unwrap();
    let unstamped = run(args(&[]));
    let stdout = String::from_utf8_lossy(&unstamped.stdout);
    assert!(stdout.contains("Plan:\n  1. stop: "), "{stdout}");
    assert_eq!(std::fs::read(&stamp).unwrap().len(), stamped.len());
    let mut model = std::fs::read(repo().join("models/sorter_yolov8n_dynamic.onnx")).unwrap();
    // ModelProto's doc_string (field 6) appended: the same network in other
    // bytes, as a re-exported model would be.
    model.extend([0x32, 10]);
    model.extend(b"retrained!");
    std::fs::write(dir.path().join("retrained.onnx"), model).unwrap();
    write_config(dir.path(), |text| {
        text.replace(
            &format!("{}/models/sorter_yolov8n_dynamic.onnx", repo().display()),
            &dir.path().join("retrained.onnx").display().to_string(),
        )
    });
    let retrained = run(args(&[]));
    let stdout = String::from_utf8_lossy(&retrained.stdout);
    assert_eq!(retrained.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("Plan:\n  1. stop: "), "{stdout}");
    assert!(stdout.contains("retrained.onnx"), "{stdout}");
    assert_ne!(std::fs::read(&stamp).unwrap(), stamped);
}

/// Issue 7's bad-input acceptance through the technician's command: a pin
/// off the board map, two ejectors on one line, a pulse over the maximum.
#[test]
fn gpio_config_errors_exit_2_and_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for (edit, field) in [
        (
            ("pin = 29\n", "pin = 8\n"),
            "ejectors[0].pin: pin 8 is not a GPIO of the board map",
        ),
        (
            ("pin = 31\n", "pin = 29\n"),
            "ejectors[1].pin: pin 29 drives two ejectors",
        ),
        (
            ("pin = 37\n", "pin = 33\n"),
            "gpio.estop.pin: pin 33 (tegra234-gpio line 43) is already used by ejectors[3].pin",
        ),
        (
            ("pulse_ms = 30\n", "pulse_ms = 400\n"),
            "ejectors[4].pulse_ms: 400 ms is outside 1..=100 ms",
        ),
    ] {
        let config = write_config(dir.path(), |text| text.replacen(edit.0, edit.1, 1));
        let output = edgesort(
            &["gpio", "list", "--config", config.to_str().unwrap()],
            dir.path(),
        );
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains(field), "{}", stderr(&output));
    }
    let config = write_config(dir.path(), |text| text);
    let output = edgesort(
        &["gpio", "list", "--config", config.to_str().unwrap()],
        dir.path(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(
        listing.contains("Jetson Orin Nano Developer Kit"),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|line| line.contains("105") && line.contains("ejector \"bolts\"")),
        "{listing}"
    );
}
