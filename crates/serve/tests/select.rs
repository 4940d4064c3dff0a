//! Issue 24, acceptance 3: the backend is chosen in one place, and every
//! reason `auto` falls back to the CPU is named. Runs without a GPU: the
//! box is described by hand (`BoxFacts`), and TensorRT's deserialization is
//! a TEST DOUBLE, `TractStandIn`, which checks it was handed the engine's
//! exact bytes and serves the repository's ONNX model through tract.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use edgesort_engine::{
    BUILDER_REVISION, BuilderOptions, EngineCache, EngineKey, KeyInputs, Manifest,
};
use edgesort_infer::{Detect, Detector};
use edgesort_infer_tract::TractBackend;
use edgesort_provision::{ActiveEngine, BoxFacts, DataPaths, GpuInfo, TensorRtInfo};
use edgesort_serve::{
    EngineRuntime, Fallback, RuntimeError, ServeError, Served, ServedBackend, select,
};
use edgesort_types::Frame;
use edgesort_types::config::{BackendChoice, Config, ModelConfig, Precision};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const PLAN: &[u8] = b"a serialized engine, as far as this test is concerned";

/// TEST DOUBLE for TensorRT: "deserializes" a plan by checking that it is
/// the stored engine's bytes, then serves `model` through tract's CPU
/// detector.
struct TractStandIn {
    model: PathBuf,
    loads: AtomicUsize,
}

impl EngineRuntime for TractStandIn {
    fn name(&self) -> String {
        "TensorRT 10.3.0 (test double: tract)".into()
    }

    fn detector(
        &self,
        plan: &[u8],
        dla_core: Option<u32>,
        model: &ModelConfig,
    ) -> Result<Box<dyn Detect>, RuntimeError> {
        assert_eq!(plan, PLAN, "the runtime gets the checked bytes");
        assert_eq!(dla_core, None);
        self.loads.fetch_add(1, Ordering::SeqCst);
        let backend = TractBackend::load(&self.model)?.with_threads(1);
        Ok(Box::new(Detector::for_model(backend, model)?))
    }
}

struct Bench {
    _dir: tempfile::TempDir,
    config: Config,
    facts: BoxFacts,
    runtime: Arc<TractStandIn>,
    engine: PathBuf,
}

impl Bench {
    /// An Orin with TensorRT 10.3.0, and an FP16 engine in service built
    /// there for the configured model.
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::load(Path::new(&format!("{REPO}/board/edgesort.toml"))).unwrap();
        config.engine.data_dir = dir.path().to_owned();
        let facts = BoxFacts {
            board: Some("NVIDIA Jetson Orin Nano Developer Kit".into()),
            l4t: Some("R36.4.0".into()),
            gpu: Ok(GpuInfo {
                name: "Orin".into(),
                compute_capability: "8.7".into(),
                memory_bytes: 8 << 30,
                driver: "12.6".into(),
            }),
            tensorrt: Ok(TensorRtInfo {
                version: "10.3.0".into(),
                library: PathBuf::from("/usr/lib/aarch64-linux-gnu/libnvinfer.so.10"),
            }),
            tensorrt_headers: Some("10.3.0".into()),
            memory: None,
            dla_cores: 0,
        };
        let inputs = KeyInputs {
            model_sha256: edgesort_types::sha256_file(&config.model.path).unwrap(),
            tensorrt: "10.3.0".into(),
            gpu: "Orin".into(),
            compute_capability: "8.7".into(),
            dla_core: None,
            precision: Precision::Fp16,
            profile: None,
            calibration_sha256: None,
            builder: BuilderOptions {
                gpu_fallback: false,
                revision: BUILDER_REVISION,
            },
        };
        let key = EngineKey::of(&inputs);
        let paths = DataPaths::new(dir.path());
        let cache = EngineCache::open(&paths.engines).unwrap();
        let lock = cache.lock().unwrap();
        let manifest = Manifest {
            key: key.clone(),
            inputs,
            model: config.model.path.clone(),
            board: "NVIDIA Jetson Orin Nano Developer Kit".into(),
            l4t: Some("R36.4.0".into()),
            precision: Precision::Fp16,
            fallback: vec!["int8: test".into()],
            workspace_bytes: 1 << 30,
            build_seconds: 1.0,
            built_at: "2026-12-05T00:00:00Z".into(),
            engine_sha256: edgesort_types::sha256_hex(PLAN),
            engine_bytes: PLAN.len() as u64,
            validation: None,
            edgesort_version: "test".into(),
        };
        cache.store(&lock, &manifest, PLAN).unwrap();
        let engine = cache.engine_path(&key);
        std::fs::create_dir_all(&paths.provision).unwrap();
        let active = ActiveEngine {
            key,
            precision: Precision::Fp16,
            engine: engine.clone(),
            activated_at: "2026-12-05T00:00:00Z".into(),
        };
        std::fs::write(paths.active(), serde_json::to_vec(&active).unwrap()).unwrap();
        let runtime = Arc::new(TractStandIn {
            model: config.model.path.clone(),
            loads: AtomicUsize::new(0),
        });
        Bench {
            _dir: dir,
            config,
            facts,
            runtime,
            engine,
        }
    }

    fn select(&self, choice: BackendChoice) -> Result<Served, ServeError> {
        let runtime = self.runtime.clone();
        select(
            &self.config,
            choice,
            &self.facts,
            &move || Ok(runtime.clone() as Arc<dyn EngineRuntime>),
            1,
        )
    }

    /// `auto` falls back for `check`, naming `words`; `tensorrt` refuses
    /// for the same reason.
    fn falls_back(&self, check: &str, words: &str) {
        let served = self.select(BackendChoice::Auto).unwrap();
        assert_eq!(served.info.backend, ServedBackend::Cpu);
        assert_eq!(served.info.label, "tract (CPU)");
        let reason = served.info.fallback.clone().expect("a fallback reason");
        assert_eq!(reason.check(), check, "{reason}");
        assert!(reason.to_string().contains(words), "{reason}");
        // The CPU line does serve.
        served.detector(&self.config.model).unwrap();

        match self.select(BackendChoice::Tensorrt) {
            Err(ServeError::TensorRtRefused { reason: refused }) => assert_eq!(refused, reason),
            Err(other) => panic!("{other}"),
            Ok(served) => panic!("served {:?}", served.info),
        }
    }
}

#[test]
fn auto_serves_the_engine_when_every_check_passes() {
    let bench = Bench::new();
    let served = bench.select(BackendChoice::Auto).unwrap();
    let info = &served.info;
    assert_eq!(info.backend, ServedBackend::Tensorrt);
    assert_eq!(info.label, "TensorRT 10.3.0 (test double: tract) (GPU)");
    assert_eq!(info.precision, "fp16");
    assert_eq!(info.gpu.as_deref(), Some("Orin (compute 8.7)"));
    assert_eq!(info.engine.as_deref(), Some(bench.engine.as_path()));
    assert!(
        info.engine_key
            .as_deref()
            .is_some_and(|key| key.len() == 32)
    );
    assert_eq!(info.fallback, None);
    // Checked once while selecting; that detector is the first one served,
    // and a restarted stage loads the engine again.
    assert_eq!(bench.runtime.loads.load(Ordering::SeqCst), 1);
    let mut first = served.detector(&bench.config.model).unwrap();
    assert_eq!(bench.runtime.loads.load(Ordering::SeqCst), 1);
    first.detect(&Frame::grey(640, 360)).unwrap();
    served.detector(&bench.config.model).unwrap();
    assert_eq!(bench.runtime.loads.load(Ordering::SeqCst), 2);
    // `tensorrt` serves the same engine.
    let forced = bench.select(BackendChoice::Tensorrt).unwrap();
    assert_eq!(forced.info, served.info);
}

#[test]
fn cpu_serves_tract_whatever_is_provisioned() {
    let bench = Bench::new();
    let served = bench.select(BackendChoice::Cpu).unwrap();
    assert_eq!(served.info.backend, ServedBackend::Cpu);
    assert_eq!(served.info.fallback, None, "asked for, so no alarm");
    assert_eq!(bench.runtime.loads.load(Ordering::SeqCst), 0);
    served.detector(&bench.config.model).unwrap();
}

#[test]
fn no_active_record() {
    let bench = Bench::new();
    std::fs::remove_file(DataPaths::new(&bench.config.engine.data_dir).active()).unwrap();
    bench.falls_back("no_active_record", "active.json is missing or unreadable");
}

#[test]
fn an_engine_whose_bytes_do_not_match_its_manifest() {
    let bench = Bench::new();
    let mut bytes = PLAN.to_vec();
    bytes[0] ^= 1;
    std::fs::write(&bench.engine, bytes).unwrap();
    bench.falls_back("engine_damaged", "do not match its manifest");
}

#[test]
fn a_missing_engine() {
    let bench = Bench::new();
    std::fs::remove_file(&bench.engine).unwrap();
    bench.falls_back("engine_damaged", "cannot read");
}

#[test]
fn another_gpu() {
    let mut bench = Bench::new();
    if let Ok(gpu) = &mut bench.facts.gpu {
        gpu.name = "NVIDIA H200".into();
        gpu.compute_capability = "9.0".into();
    }
    bench.falls_back(
        "other_gpu",
        "built for Orin (compute 8.7), this box has NVIDIA H200 (compute 9.0)",
    );
}

#[test]
fn another_tensorrt() {
    let mut bench = Bench::new();
    if let Ok(tensorrt) = &mut bench.facts.tensorrt {
        tensorrt.version = "10.4.0".into();
    }
    bench.falls_back(
        "other_tensorrt",
        "built with TensorRT 10.3.0, this box has 10.4.0",
    );
}

#[test]
fn shim_not_compiled() {
    let mut bench = Bench::new();
    bench.facts.tensorrt_headers = None;
    bench.falls_back("shim_not_compiled", "built without TensorRT's headers");
}

#[test]
fn no_gpu_and_no_tensorrt() {
    let mut bench = Bench::new();
    bench.facts.gpu = Err("libcuda.so could not be loaded".into());
    bench.falls_back("no_gpu", "libcuda.so could not be loaded");
    let mut bench = Bench::new();
    bench.facts.tensorrt = Err("libnvinfer.so.10 not found".into());
    bench.falls_back("no_tensorrt", "libnvinfer.so.10 not found");
}

#[test]
fn another_model() {
    // The manifest says the engine came from another model's bytes (the
    // model was updated and the engine not yet rebuilt).
    let bench = Bench::new();
    let path = bench.engine.with_extension("json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["inputs"]["model_sha256"] = "0".repeat(64).into();
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    bench.falls_back(
        "other_model",
        &format!("built from a model with sha256 {}", "0".repeat(64)),
    );
}

#[test]
fn an_engine_tensorrt_refuses() {
    let bench = Bench::new();
    let served = select(
        &bench.config,
        BackendChoice::Auto,
        &bench.facts,
        &|| Err("libnvinfer.so.10: cannot open shared object file".into()),
        1,
    )
    .unwrap();
    let reason = served.info.fallback.unwrap();
    assert_eq!(reason.check(), "load_failed");
    assert!(
        reason.to_string().contains("cannot open shared object"),
        "{reason}"
    );
}

#[test]
fn wrong_engine_io() {
    // The engine has 5 classes; the configuration 3.
    let mut bench = Bench::new();
    bench.config.model.classes.truncate(3);
    bench.falls_back("wrong_io", "expected [1, 7, ");
}

#[test]
fn the_fallback_names_its_check_in_json() {
    let reason = Fallback::OtherTensorRt {
        built_with: "10.3.0".into(),
        here: "10.4.0".into(),
    };
    assert_eq!(
        serde_json::to_value(&reason).unwrap(),
        serde_json::json!({"check": "other_tensorrt", "built_with": "10.3.0", "here": "10.4.0"})
    );
}
