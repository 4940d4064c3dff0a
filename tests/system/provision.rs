//! First-boot provisioning through every transition, with the builder
//! double standing in for TensorRT, and the fault-injection run that kills
//! the build/activate path at random moments.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use edgesort_engine::{EngineCache, Entry};
use edgesort_provision::{
    DataPaths, EntryFacts, MAX_QUARANTINES, Provisioner, Step, ValidationFacts, read_active,
    read_status,
};
use edgesort_types::config::{Config, Precision};

use crate::engine_double::{
    DoubleBuilder, decode_plan, double_config, scene_inputs, scene_reference,
};

fn model_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("model {name}")).unwrap();
    path
}

/// Runs provisioning to the end and returns every step taken.
fn provision(config: &Config, builder: &mut DoubleBuilder) -> Vec<Step> {
    let inputs = scene_inputs(config, builder);
    let reference = scene_reference(config, &inputs);
    let mut provisioner = Provisioner::new(config, builder, inputs, reference).unwrap();
    let mut steps = Vec::new();
    loop {
        let step = provisioner.step().unwrap();
        steps.push(step.clone());
        if matches!(step, Step::Done | Step::Failed { .. }) {
            return steps;
        }
        assert!(steps.len() < 20, "provisioning does not end: {steps:?}");
    }
}

fn names(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|step| match step {
            Step::Build { precision, .. } => format!("build {precision}"),
            other => serde_json::to_value(other).unwrap()["step"]
                .as_str()
                .unwrap()
                .to_owned(),
        })
        .collect()
}

#[test]
fn first_boot_builds_validates_activates_then_stays_done() {
    let scratch = tempfile::tempdir().unwrap();
    let config = double_config(scratch.path(), &model_file(scratch.path(), "a.onnx"));
    let mut builder = DoubleBuilder::new();
    let steps = provision(&config, &mut builder);
    assert_eq!(
        names(&steps),
        ["build fp16", "validate", "activate", "done"]
    );

    let paths = DataPaths::new(scratch.path());
    let active = read_active(&paths).expect("provisioned stamp written");
    assert_eq!(active.precision, Precision::Fp16);
    let cache = EngineCache::open(&paths.engines).unwrap();
    let Entry::Ready { manifest, plan } = cache.entry(&active.key) else {
        panic!("the active engine is in the cache");
    };
    assert_eq!(decode_plan(&plan), Ok(Precision::Fp16));
    let report = manifest.validation.expect("validation recorded");
    assert!(report.passed, "{}", report.verdict);
    assert_eq!(report.matched, 8, "four parts on each of two stills");
    let status = read_status(&paths.status()).unwrap();
    assert_eq!(status.state, "active");
    assert!(
        status.history.iter().any(|line| line.contains("building")),
        "{:?}",
        status.history
    );

    // The next boot (or an update that changes nothing in the key) builds nothing.
    builder.builds.clear();
    assert_eq!(names(&provision(&config, &mut builder)), ["done"]);
    assert!(builder.builds.is_empty());
}

#[test]
fn power_lost_after_the_build_resumes_at_validation() {
    let scratch = tempfile::tempdir().unwrap();
    let config = double_config(scratch.path(), &model_file(scratch.path(), "a.onnx"));
    let mut builder = DoubleBuilder::new();
    {
        let inputs = scene_inputs(&config, &builder);
        let reference = scene_reference(&config, &inputs);
        let mut provisioner = Provisioner::new(&config, &mut builder, inputs, reference).unwrap();
        assert!(matches!(provisioner.step().unwrap(), Step::Build { .. }));
        assert!(matches!(
            provisioner.facts().entry,
            EntryFacts::Stored {
                validation: ValidationFacts::Pending,
                ..
            }
        ));
        // The power goes here: the provisioner is dropped mid-way.
    }
    builder.builds.clear();
    let steps = provision(&config, &mut builder);
    assert_eq!(names(&steps), ["validate", "activate", "done"]);
    assert!(
        builder.builds.is_empty(),
        "the engine built before the cut is reused"
    );
}

#[test]
fn power_lost_mid_build_leaves_nothing_that_is_served() {
    let scratch = tempfile::tempdir().unwrap();
    let config = double_config(scratch.path(), &model_file(scratch.path(), "a.onnx"));
    let mut builder = DoubleBuilder::new();
    let inputs = scene_inputs(&config, &builder);
    let key = inputs.spec.key();
    let paths = DataPaths::new(scratch.path());
    let cache = EngineCache::open(&paths.engines).unwrap();
    // What a cut during the engine write leaves: a temporary file, or the
    // renamed engine whose manifest never came.
    std::fs::write(
        paths.engines.join(".partial-k9Xy"),
        b"EDGESORT-DOUBLE-PLAN/1\nh half",
    )
    .unwrap();
    std::fs::write(cache.engine_path(&key), b"EDGESORT-DOUBLE-PLAN/1\nh half").unwrap();
    assert!(matches!(cache.entry(&key), Entry::Missing));

    let steps = provision(&config, &mut builder);
    assert_eq!(
        names(&steps),
        ["build fp16", "validate", "activate", "done"]
    );
    assert!(!paths.engines.join(".partial-k9Xy").exists());
    let Entry::Ready { plan, .. } = cache.entry(&key) else {
        panic!("rebuilt");
    };
    assert!(decode_plan(&plan).is_ok());
}

#[test]
fn a_new_model_after_an_update_reprovisions_and_a_rollback_finds_its_engine() {
    let scratch = tempfile::tempdir().unwrap();
    let model_a = model_file(scratch.path(), "a.onnx");
    let model_b = model_file(scratch.path(), "b.onnx");
    let mut builder = DoubleBuilder::new();
    provision(&double_config(scratch.path(), &model_a), &mut builder);
    let paths = DataPaths::new(scratch.path());
    let key_a = read_active(&paths).unwrap().key;

    let steps = provision(&double_config(scratch.path(), &model_b), &mut builder);
    assert_eq!(
        names(&steps),
        ["build fp16", "validate", "activate", "done"]
    );
    let key_b = read_active(&paths).unwrap().key;
    assert_ne!(key_a, key_b);

    // Rolled back to model A: its engine is still built and validated.
    builder.builds.clear();
    let steps = provision(&double_config(scratch.path(), &model_a), &mut builder);
    assert_eq!(names(&steps), ["activate", "done"]);
    assert!(builder.builds.is_empty());

    // A TensorRT upgrade changes the key too.
    let mut upgraded = DoubleBuilder::new().with_tensorrt("10.3.1-double");
    let steps = provision(&double_config(scratch.path(), &model_a), &mut upgraded);
    assert_eq!(
        names(&steps),
        ["build fp16", "validate", "activate", "done"]
    );
}

#[test]
fn a_disagreeing_engine_falls_back_a_precision_with_the_reason_kept() {
    let scratch = tempfile::tempdir().unwrap();
    let mut config = double_config(scratch.path(), &model_file(scratch.path(), "a.onnx"));
    config.engine.precision = Precision::Fp16;
    let mut builder = DoubleBuilder::new();
    builder.disagreeing = vec![Precision::Fp16];
    let steps = provision(&config, &mut builder);
    assert_eq!(
        names(&steps),
        [
            "build fp16",
            "validate",
            "build fp32",
            "validate",
            "activate",
            "done"
        ]
    );
    let paths = DataPaths::new(scratch.path());
    let active = read_active(&paths).unwrap();
    assert_eq!(active.precision, Precision::Fp32);
    let manifest = EngineCache::open(&paths.engines)
        .unwrap()
        .manifest(&active.key)
        .unwrap()
        .unwrap();
    assert_eq!(manifest.fallback.len(), 1);
    assert!(
        manifest.fallback[0].starts_with("fp16 rejected: the engine found 0 of 8"),
        "{:?}",
        manifest.fallback
    );
}

#[test]
fn a_build_out_of_memory_retries_with_a_smaller_workspace() {
    let scratch = tempfile::tempdir().unwrap();
    let config = double_config(scratch.path(), &model_file(scratch.path(), "a.onnx"));
    let mut builder = DoubleBuilder::new();
    builder.memory_bytes = Some(300 << 20);
    provision(&config, &mut builder);
    let workspaces: Vec<u64> = builder
        .builds
        .iter()
        .map(|(_, bytes)| bytes >> 20)
        .collect();
    assert_eq!(workspaces, [1024, 512, 256]);
    let paths = DataPaths::new(scratch.path());
    let key = read_active(&paths).unwrap().key;
    let manifest = EngineCache::open(&paths.engines)
        .unwrap()
        .manifest(&key)
        .unwrap()
        .unwrap();
    assert_eq!(manifest.workspace_bytes, 256 << 20);
}

#[test]
fn an_engine_damaged_on_disk_is_quarantined_and_rebuilt() {
    let scratch = tempfile::tempdir().unwrap();
    let config = double_config(scratch.path(), &model_file(scratch.path(), "a.onnx"));
    let mut builder = DoubleBuilder::new();
    provision(&config, &mut builder);
    let paths = DataPaths::new(scratch.path());
    let cache = EngineCache::open(&paths.engines).unwrap();
    let key = read_active(&paths).unwrap().key;
    let engine = cache.engine_path(&key);
    let bytes = std::fs::read(&engine).unwrap();
    std::fs::write(&engine, &bytes[..bytes.len() / 2]).unwrap();

    let steps = provision(&config, &mut builder);
    assert_eq!(
        names(&steps),
        ["quarantine", "build fp16", "validate", "done"],
        "the stamp already names this key; the rebuilt engine takes its place"
    );
    assert_eq!(cache.quarantined(&key), 1);
}

#[test]
fn an_engine_that_never_loads_is_not_rebuilt_forever() {
    let scratch = tempfile::tempdir().unwrap();
    let config = double_config(scratch.path(), &model_file(scratch.path(), "a.onnx"));
    let mut builder = DoubleBuilder::new();
    builder.refuse_to_load = true;
    let steps = provision(&config, &mut builder);
    assert_eq!(
        names(&steps),
        ["build fp16", "validate", "build fp16", "validate", "failed"]
    );
    let Some(Step::Failed { reason }) = steps.last() else {
        unreachable!()
    };
    assert!(
        reason.contains(&format!("failed to load {MAX_QUARANTINES} times")),
        "{reason}"
    );
    // The next boot does not try again either.
    builder.builds.clear();
    assert_eq!(names(&provision(&config, &mut builder)), ["failed"]);
    assert!(builder.builds.is_empty());
    assert_eq!(
        read_status(&DataPaths::new(scratch.path()).status())
            .unwrap()
            .state,
        "failed"
    );
}

#[test]
fn a_model_no_precision_can_build_fails_once_and_says_why() {
    let scratch = tempfile::tempdir().unwrap();
    let config = double_config(scratch.path(), &model_file(scratch.path(), "a.onnx"));
    let mut builder = DoubleBuilder::new();
    builder.unbuildable = vec![Precision::Fp16, Precision::Fp32];
    let steps = provision(&config, &mut builder);
    assert_eq!(names(&steps), ["build fp16", "failed"]);
    let Some(Step::Failed { reason }) = steps.last() else {
        unreachable!()
    };
    assert!(
        reason.contains("fp16 failed to build") && reason.contains("fp32 failed to build"),
        "{reason}"
    );
    builder.builds.clear();
    assert_eq!(names(&provision(&config, &mut builder)), ["failed"]);
    assert!(
        builder.builds.is_empty(),
        "a failed build is not retried at every boot"
    );
}

#[test]
fn int8_calibrates_on_the_box_first_and_falls_back_when_it_disagrees() {
    let scratch = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = repo.join("models/sorter_yolov8n_dynamic.onnx");
    let mut config = double_config(scratch.path(), &model);
    config.engine.precision = Precision::Int8;
    // Four stills keep the real calibration quick.
    let stills = scratch.path().join("stills");
    std::fs::create_dir(&stills).unwrap();
    for name in [
        "calib_00000.jpg",
        "calib_00001.jpg",
        "calib_00002.jpg",
        "calib_00003.jpg",
    ] {
        std::fs::copy(
            repo.join("calibration/images").join(name),
            stills.join(name),
        )
        .unwrap();
    }
    config.engine.calibration_images = stills;
    config.calibration.min_images = 4;
    let mut builder = DoubleBuilder::new();
    builder.disagreeing = vec![Precision::Int8];
    let steps = provision(&config, &mut builder);
    assert_eq!(
        names(&steps),
        [
            "calibrate",
            "build int8",
            "validate",
            "build fp16",
            "validate",
            "activate",
            "done"
        ]
    );
    let qdq: Vec<_> = std::fs::read_dir(DataPaths::new(scratch.path()).calibration)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(qdq.len(), 1);
    assert!(qdq[0].ends_with(".qdq.onnx"), "{qdq:?}");
}

/// Provisioning is killed (SIGKILL) at random moments, 200 times, each time
/// for a new model so that every run builds; after each kill the cache is
/// checked and provisioning run again to the end.
#[test]
fn fault_injection_random_kills_never_serve_a_damaged_engine_nor_stick() {
    const KILLS: usize = 200;
    let target = env!("CARGO_BIN_EXE_engine-fault-target");
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let paths = DataPaths::new(&data);
    let run = |model: &Path| {
        let mut command = Command::new(target);
        command
            .arg(&data)
            .arg(model)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    // How long one fresh provisioning takes, to spread the kills over it.
    // Measured again every few kills: the machine's load changes while this
    // test runs, and a window from a slower moment would let kills land
    // after provisioning has finished.
    let measure_window = |name: &str| {
        let started = Instant::now();
        let output = run(&model_file(scratch.path(), name)).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        started.elapsed()
    };
    let mut window = measure_window("model-warmup.onnx");

    let mut seed: u64 = 0x5eed_2026_1121;
    let mut killed_mid_way = 0;
    let mut killed_while = std::collections::BTreeMap::<String, usize>::new();
    for kill in 0..KILLS {
        if kill > 0 && kill % 25 == 0 {
            window = measure_window(&format!("model-window-{kill}.onnx"));
        }
        let model = model_file(scratch.path(), &format!("model-{kill}.onnx"));
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Over the first 90 % of the window: a margin for runs that got
        // faster since it was measured.
        let delay = window.mul_f64(0.9 * (seed >> 11) as f64 / (1u64 << 53) as f64);
        let mut child = run(&model).spawn().unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed_mid_way += 1;
        }
        child.kill().ok();
        child.wait().unwrap();
        let state = read_status(&paths.status()).map_or("starting".to_owned(), |s| s.state);
        *killed_while.entry(state).or_default() += 1;

        let cache = EngineCache::open(&paths.engines).unwrap();
        for manifest in cache.manifests().unwrap() {
            if let Entry::Ready { plan, .. } = cache.entry(&manifest.key) {
                assert!(
                    decode_plan(&plan).is_ok(),
                    "kill {kill} after {delay:?}: the cache serves a damaged engine"
                );
            }
        }
        if let Some(active) = read_active(&paths) {
            match cache.entry(&active.key) {
                Entry::Ready { plan, .. } => assert!(decode_plan(&plan).is_ok()),
                other => panic!("kill {kill}: the active engine is {other:?}"),
            }
        }

        let output = run(&model).output().unwrap();
        assert!(
            output.status.success(),
            "kill {kill} after {delay:?}: the next start did not finish: {} {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let active = read_active(&paths).expect("active after recovery");
        assert!(matches!(
            EngineCache::open(&paths.engines)
                .unwrap()
                .entry(&active.key),
            Entry::Ready { .. }
        ));
    }
    // Most kills must land while provisioning runs, or the test proves little.
    assert!(
        killed_mid_way >= KILLS * 3 / 4,
        "only {killed_mid_way} kills landed mid-way"
    );
    eprintln!(
        "fault injection: {KILLS} kills, {killed_mid_way} mid-way, window {window:?}, \
         0 damaged engines served, 0 stuck; state at each kill: {killed_while:?}"
    );
}
