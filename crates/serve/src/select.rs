use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use edgesort_engine::{EngineCache, Entry};
use edgesort_infer::{Detect, Detector, InferError};
use edgesort_infer_tract::TractBackend;
use edgesort_provision::{BoxFacts, DataPaths, SystemFiles, probe, read_active};
use edgesort_types::Frame;
use edgesort_types::config::{BackendChoice, Config, ModelConfig};
use serde::Serialize;

use crate::{EngineRuntime, Fallback, RuntimeError, ServeError, TensorRtRuntime};

/// Which backend serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServedBackend {
    /// A TensorRT engine on the GPU.
    Tensorrt,
    /// tract on the CPU.
    Cpu,
}

/// What serves the line, for the status, the metrics, the page and the log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServedInfo {
    /// Which backend.
    pub backend: ServedBackend,
    /// The backend for people, e.g. `TensorRT 10.3.0 (GPU)` or `tract (CPU)`.
    pub label: String,
    /// `int8`, `fp16` or `fp32`.
    pub precision: String,
    /// The configured model file.
    pub model: PathBuf,
    /// Its sha256, where it could be read.
    pub model_sha256: Option<String>,
    /// The engine's cache key, when an engine serves.
    pub engine_key: Option<String>,
    /// The engine file, when an engine serves.
    pub engine: Option<PathBuf>,
    /// The GPU it runs on, when an engine serves.
    pub gpu: Option<String>,
    /// Why `auto` fell back to the CPU.
    pub fallback: Option<Fallback>,
}

/// The chosen backend: builds detectors for the line (a restarted
/// inference stage asks for a fresh one).
pub struct Served {
    /// What serves.
    pub info: ServedInfo,
    source: Source,
}

enum Source {
    Cpu {
        model: PathBuf,
        threads: usize,
    },
    Engine {
        runtime: Arc<dyn EngineRuntime>,
        plan: Arc<[u8]>,
        dla_core: Option<u32>,
        /// The detector made while checking the engine's I/O, handed out
        /// first so that the engine is not deserialized twice.
        checked: Mutex<Option<Box<dyn Detect>>>,
    },
}

impl Served {
    /// tract on `threads` threads for `model`; `fallback` says why, where
    /// the engine was wanted.
    pub fn cpu(model: &Path, threads: usize, fallback: Option<Fallback>) -> Served {
        // Resolved once: the model may sit behind the update slots'
        // `current` link, and a restarted inference stage must load the
        // model this line started with, not one an update has just
        // switched to.
        let resolved = model.canonicalize().unwrap_or_else(|_| model.to_owned());
        let model_sha256 = edgesort_types::sha256_file(&resolved).ok();
        Served::cpu_with_digest(model, resolved, model_sha256, threads, fallback)
    }

    /// [`Served::cpu`] for a model whose digest is already known.
    fn cpu_with_digest(
        model: &Path,
        resolved: PathBuf,
        model_sha256: Option<String>,
        threads: usize,
        fallback: Option<Fallback>,
    ) -> Served {
        Served {
            info: ServedInfo {
                backend: ServedBackend::Cpu,
                label: "tract (CPU)".into(),
                precision: "fp32".into(),
                model: model.to_owned(),
                model_sha256,
                engine_key: None,
                engine: None,
                gpu: None,
                fallback,
            },
            source: Source::Cpu {
                model: resolved,
                threads,
            },
        }
    }

    /// The engine's serialized plan and DLA core, when an engine serves:
    /// for tools that drive the engine themselves (`bench pipeline`).
    pub fn engine_plan(&self) -> Option<(&[u8], Option<u32>)> {
        match &self.source {
            Source::Engine { plan, dla_core, .. } => Some((plan, *dla_core)),
            Source::Cpu { .. } => None,
        }
    }

    /// A detector for `model`'s classes and thresholds: the one [`select`]
    /// checked the engine with the first time, a freshly loaded one after
    /// (a restarted inference stage asks again).
    pub fn detector(&self, model: &ModelConfig) -> Result<Box<dyn Detect>, ServeError> {
        match &self.source {
            Source::Cpu {
                model: path,
                threads,
            } => {
                let backend = TractBackend::load(path)
                    .map_err(|source| ServeError::LoadCpuModel {
                        path: path.clone(),
                        source,
                    })?
                    .with_threads(*threads);
                let detector = Detector::for_model(backend, model).map_err(|source| {
                    ServeError::SetUpDetector {
                        what: self.info.label.clone(),
                        source,
                    }
                })?;
                Ok(Box::new(detector))
            }
            Source::Engine {
                runtime,
                plan,
                dla_core,
                checked,
            } => {
                if let Some(detector) = checked.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    return Ok(detector);
                }
                runtime
                    .detector(plan, *dla_core, model)
                    .map_err(|source| ServeError::LoadEngine {
                        path: self.info.engine.clone().unwrap_or_default(),
                        source,
                    })
            }
        }
    }
}

/// [`select`] with this box's facts ([`probe`]), TensorRT loaded from the
/// system, and tract on every core.
pub fn select_on_this_box(config: &Config, choice: BackendChoice) -> Result<Served, ServeError> {
    let threads = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let cuda_graph = config.engine.cuda_graph;
    select(
        config,
        choice,
        &probe(&SystemFiles::default()),
        &|| TensorRtRuntime::load(cuda_graph),
        threads,
    )
}

/// Chooses the line's backend as `choice` says (see the crate's
/// documentation), on a box described by `facts`; `runtime` loads TensorRT
/// and is called only once every check before loading has passed.
pub fn select(
    config: &Config,
    choice: BackendChoice,
    facts: &BoxFacts,
    runtime: &dyn Fn() -> Result<Arc<dyn EngineRuntime>, RuntimeError>,
    threads: usize,
) -> Result<Served, ServeError> {
    if choice == BackendChoice::Cpu {
        return Ok(Served::cpu(&config.model.path, threads, None));
    }
    // Read once: the engine's check needs it, and so does the CPU's status.
    let model = &config.model.path;
    let resolved = model.canonicalize().unwrap_or_else(|_| model.to_owned());
    let model_sha256 = edgesort_types::sha256_file(&resolved).ok();
    match engine(config, facts, runtime, model_sha256.as_deref()) {
        Ok(served) => {
            tracing::info!(
                backend = %served.info.label,
                precision = %served.info.precision,
                key = served.info.engine_key.as_deref().unwrap_or(""),
                "serving the provisioned engine"
            );
            Ok(served)
        }
        Err(reason) if choice == BackendChoice::Tensorrt => {
            Err(ServeError::TensorRtRefused { reason })
        }
        Err(reason) => {
            tracing::warn!(check = reason.check(), "running on the CPU: {reason}");
            Ok(Served::cpu_with_digest(
                model,
                resolved,
                model_sha256,
                threads,
                Some(reason),
            ))
        }
    }
}

/// The provisioned engine, or the first check it fails.
fn engine(
    config: &Config,
    facts: &BoxFacts,
    runtime: &dyn Fn() -> Result<Arc<dyn EngineRuntime>, RuntimeError>,
    model_sha256: Option<&str>,
) -> Result<Served, Fallback> {
    if facts.tensorrt_headers.is_none() {
        return Err(Fallback::ShimNotCompiled);
    }
    let gpu = facts
        .gpu
        .as_ref()
        .map_err(|why| Fallback::NoGpu { why: why.clone() })?;
    let tensorrt = facts
        .tensorrt
        .as_ref()
        .map_err(|why| Fallback::NoTensorRt { why: why.clone() })?;
    let paths = DataPaths::new(&config.engine.data_dir);
    let active = read_active(&paths).ok_or_else(|| Fallback::NoActiveRecord {
        path: paths.active(),
    })?;
    let (manifest, plan, engine) = ready_entry(&paths.engines, &active.key)?;

    let inputs = &manifest.inputs;
    let here = format!("{} (compute {})", gpu.name, gpu.compute_capability);
    if inputs.gpu != gpu.name || inputs.compute_capability != gpu.compute_capability {
        return Err(Fallback::OtherGpu {
            built_for: format!("{} (compute {})", inputs.gpu, inputs.compute_capability),
            here,
        });
    }
    if inputs.tensorrt != tensorrt.version {
        return Err(Fallback::OtherTensorRt {
            built_with: inputs.tensorrt.clone(),
            here: tensorrt.version.clone(),
        });
    }
    if Some(inputs.model_sha256.as_str()) != model_sha256 {
        return Err(Fallback::OtherModel {
            built_from: inputs.model_sha256.clone(),
            model: config.model.path.clone(),
            here: model_sha256.map_or_else(|| "no readable file".into(), str::to_owned),
        });
    }

    let load_failed = |error: RuntimeError| Fallback::LoadFailed {
        why: error.to_string(),
    };
    let runtime = runtime().map_err(load_failed)?;
    let detector = runtime
        .detector(&plan, inputs.dla_core, &config.model)
        .map_err(|error| match error.downcast_ref::<InferError>() {
            Some(not_yolo @ InferError::NotYolo { .. }) => Fallback::WrongIo {
                why: not_yolo.to_string(),
            },
            _ => load_failed(error),
        })?;
    let detector = first_run(detector, config)?;
    Ok(Served {
        info: ServedInfo {
            backend: ServedBackend::Tensorrt,
            label: format!("{} (GPU)", runtime.name()),
            precision: manifest.precision.to_string(),
            model: config.model.path.clone(),
            model_sha256: model_sha256.map(str::to_owned),
            engine_key: Some(active.key.to_string()),
            engine: Some(engine),
            gpu: Some(here),
            fallback: None,
        },
        source: Source::Engine {
            runtime,
            plan: plan.into(),
            dla_core: inputs.dla_core,
            checked: Mutex::new(Some(Box::new(detector))),
        },
    })
}

/// The cache entry of `key`, its bytes checked against its manifest.
fn ready_entry(
    engines: &Path,
    key: &edgesort_engine::EngineKey,
) -> Result<(edgesort_engine::Manifest, Vec<u8>, PathBuf), Fallback> {
    let damaged = |reason: String| Fallback::EngineDamaged { reason };
    let cache = EngineCache::open(engines).map_err(|error| damaged(format!("{error:#}")))?;
    match cache.entry(key) {
        Entry::Ready { manifest, plan } => Ok((*manifest, plan, cache.engine_path(key))),
        Entry::Missing => Err(damaged(format!(
            "engine {key} is not in the cache {}",
            engines.display()
        ))),
        Entry::Damaged { reason } => Err(damaged(reason)),
    }
}

/// The detector's first run, on a grey frame of the camera's size: it
/// readies the engine for that shape before the first real frame, and an
/// engine whose output is only known once it runs is checked here.
fn first_run(mut detector: Box<dyn Detect>, config: &Config) -> Result<Box<dyn Detect>, Fallback> {
    match detector.detect(&Frame::grey(config.camera.width, config.camera.height)) {
        Ok(_) => Ok(detector),
        Err(error @ InferError::NotYolo { .. }) => Err(Fallback::WrongIo {
            why: error.to_string(),
        }),
        Err(error) => Err(Fallback::LoadFailed {
            why: format!("its first run failed: {error}"),
        }),
    }
}
