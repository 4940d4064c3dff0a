use std::path::{Path, PathBuf};
use std::time::SystemTime;

use edgesort_calibrate::{Method, Settings, calibrate_folder, first_frames};
use edgesort_capture::list_jpegs;
use edgesort_engine::{
    BUILDER_REVISION, BuildProgress, BuildTarget, BuilderOptions, EngineBuilder, EngineCache,
    EngineKey, EngineSpec, Entry, KeyInputs, ProfileShapes, ReferenceDetections, Thresholds,
    Validation, build_and_store, sha256_file, sha256_hex, validate_stored,
};
use edgesort_infer::{Backend, Detector, InputShape, Letterbox};
use edgesort_infer_tract::TractBackend;
use edgesort_types::config::{Config, DlaUse, Precision};
use edgesort_types::{Frame, Timestamp, write_atomically};
use serde::{Deserialize, Serialize};

use crate::ProvisionError;
use crate::plan::{EntryFacts, Facts, Step, ValidationFacts, next_precision, next_step};
use crate::status::{StatusFile, StatusObserver};

/// Where provisioning keeps its files on the data partition.
#[derive(Clone, Debug)]
pub struct DataPaths {
    /// The engine cache.
    pub engines: PathBuf,
    /// Calibrated Q/DQ models.
    pub calibration: PathBuf,
    /// The provisioned stamp, build-failure record and status file.
    pub provision: PathBuf,
}

impl DataPaths {
    /// The layout under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        DataPaths {
            engines: data_dir.join("engines"),
            calibration: data_dir.join("calibration"),
            provision: data_dir.join("provision"),
        }
    }

    /// The provisioned stamp: which engine is in service.
    pub fn active(&self) -> PathBuf {
        self.provision.join("active.json")
    }

    /// The status file technicians read.
    pub fn status(&self) -> PathBuf {
        self.provision.join("status.json")
    }

    /// The stamp of a box that cannot build an engine: which key it
    /// settled on the CPU backend.
    pub fn cpu_backend(&self) -> PathBuf {
        self.provision.join("cpu-backend.json")
    }

    fn build_failed(&self) -> PathBuf {
        self.provision.join("build-failed.json")
    }
}

/// The provisioned stamp. It lives on the data partition, not the rootfs,
/// so an A/B update re-provisions only when the key changes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ActiveEngine {
    /// The engine's key.
    pub key: EngineKey,
    /// Its precision.
    pub precision: Precision,
    /// The engine file.
    pub engine: PathBuf,
    /// When it went into service, RFC 3339.
    pub activated_at: String,
}

/// Reads the provisioned stamp; `None` when absent or unreadable.
pub fn read_active(paths: &DataPaths) -> Option<ActiveEngine> {
    serde_json::from_slice(&std::fs::read(paths.active()).ok()?).ok()
}

/// The stamp of a box without a GPU or TensorRT. Its key covers the model
/// and what the probe found missing, so a new model, an installed TensorRT
/// or a GPU that appears provisions again; otherwise every boot after the
/// first ends at this stamp.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CpuBackend {
    /// The key the box was settled for.
    pub key: EngineKey,
    /// Why no engine can be built.
    pub reason: String,
    /// When it was settled, RFC 3339.
    pub settled_at: String,
}

impl CpuBackend {
    /// Settles `key` on the CPU backend, stamping it atomically.
    pub fn settle(paths: &DataPaths, key: EngineKey, reason: &str) -> Result<Self, ProvisionError> {
        let stamp = CpuBackend {
            key,
            reason: reason.to_owned(),
            settled_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        };
        let path = paths.cpu_backend();
        let text = serde_json::to_vec_pretty(&stamp).expect("the stamp serializes");
        write_atomically(&path, &text).map_err(|source| ProvisionError::Write { path, source })?;
        Ok(stamp)
    }
}

/// Reads the CPU-backend stamp; `None` when absent or unreadable.
pub fn read_cpu_backend(paths: &DataPaths) -> Option<CpuBackend> {
    serde_json::from_slice(&std::fs::read(paths.cpu_backend()).ok()?).ok()
}

#[derive(Serialize, Deserialize)]
struct BuildFailed {
    key: EngineKey,
    reason: String,
}

/// The box's side of the engine key and build: what the configuration and
/// files say, before any builder is asked.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// The engine wanted.
    pub spec: EngineSpec,
    /// How the model takes frames.
    pub input_shape: InputShape,
    /// The input size validation runs at (the profile's optimum).
    pub validation_input: Option<(u32, u32)>,
    /// INT8 calibration settings.
    pub calibration: Settings,
}

/// How the model takes frames, and its input's name: read by loading the
/// model on the CPU backend.
pub fn model_input(config: &Config) -> Result<(InputShape, String), ProvisionError> {
    let backend = TractBackend::load(&config.model.path)?;
    let name = backend.io().inputs[0].name.clone();
    let detector = Detector::for_model(backend, &config.model)?;
    Ok((detector.input_shape(), name))
}

/// Works out the engine this box needs: hashes the model and the
/// calibration inputs, and derives the dynamic-shape profile from the
/// camera's letterbox.
pub fn engine_inputs(
    config: &Config,
    (input_shape, input_name): (InputShape, String),
    target: &BuildTarget,
    board: &str,
    l4t: Option<&str>,
    workspace_bytes: u64,
) -> Result<Inputs, ProvisionError> {
    let model = &config.model.path;
    let model_sha256 = sha256_file(model).map_err(|source| ProvisionError::Read {
        path: model.clone(),
        source,
    })?;
    let (profile, validation_input) = match input_shape {
        InputShape::Fixed { .. } => (None, None),
        InputShape::Dynamic { max_side, .. } => {
            let camera = Letterbox::plan(config.camera.width, config.camera.height, input_shape)?;
            let opt = vec![
                1,
                3,
                i64::from(camera.input_height),
                i64::from(camera.input_width),
            ];
            let profile = ProfileShapes {
                input: input_name,
                min: opt.clone(),
                opt,
                max: vec![1, 3, i64::from(max_side), i64::from(max_side)],
            };
            (
                Some(profile),
                Some((camera.input_width, camera.input_height)),
            )
        }
    };
    let calibration = Settings {
        method: Method::configured(&config.calibration),
        max_images: None,
        min_images: config.calibration.min_images,
        float_nodes: config.calibration.float_nodes.clone(),
        float_decode: true,
        threads: 0,
    };
    let precision = config.engine.precision;
    let calibration_sha256 = match precision {
        Precision::Int8 => Some(calibration_fingerprint(config, &calibration)?),
        Precision::Fp16 | Precision::Fp32 => None,
    };
    let dla_core = match config.engine.dla {
        DlaUse::Auto if target.dla_cores > 0 => Some(0),
        DlaUse::Auto | DlaUse::Off => None,
    };
    let inputs = KeyInputs {
        model_sha256,
        tensorrt: target.tensorrt.clone(),
        gpu: target.gpu.clone(),
        compute_capability: target.compute_capability.clone(),
        dla_core,
        precision,
        profile,
        calibration_sha256,
        builder: BuilderOptions {
            gpu_fallback: dla_core.is_some(),
            revision: BUILDER_REVISION,
        },
    };
    Ok(Inputs {
        spec: EngineSpec {
            inputs,
            model: model.clone(),
            int8_model: None,
            board: board.to_owned(),
            l4t: l4t.map(str::to_owned),
            workspace_bytes,
        },
        input_shape,
        validation_input,
        calibration,
    })
}

/// Calibration is deterministic, so its settings and images fix the Q/DQ
/// model: their hash stands for it in the key, known before calibrating.
fn calibration_fingerprint(config: &Config, settings: &Settings) -> Result<String, ProvisionError> {
    let folder = &config.engine.calibration_images;
    let images = list_jpegs(folder).map_err(|error| ProvisionError::Read {
        path: folder.clone(),
        source: std::io::Error::other(error.to_string()),
    })?;
    let mut text = format!(
        "{:?}\n{}\n{:?}\n{}\n",
        settings.method, settings.min_images, settings.float_nodes, settings.float_decode
    );
    for image in images {
        let digest = sha256_file(&image).map_err(|source| ProvisionError::Read {
            path: image.clone(),
            source,
        })?;
        let name = image.file_name().unwrap_or_default().to_string_lossy();
        text.push_str(&format!("{name} {digest}\n"));
    }
    Ok(sha256_hex(text.as_bytes()))
}

/// Computes the detections an engine is checked against, once, when the
/// first validation needs them.
pub type ReferenceSource<'a> =
    Box<dyn FnOnce() -> Result<ReferenceDetections, ProvisionError> + 'a>;

/// The CPU reference: the FP32 model on tract over the first
/// `validation_count` validation stills, at the profile's optimum size.
pub fn tract_reference(
    config: &Config,
    inputs: &Inputs,
) -> Result<ReferenceDetections, ProvisionError> {
    let engine = &config.engine;
    let frames: Vec<Frame> = first_frames(&engine.validation_images, engine.validation_count)?
        .into_iter()
        .enumerate()
        .map(|(sequence, (width, height, rgb))| {
            Frame::from_rgb(sequence as u64, Timestamp::default(), width, height, rgb)
        })
        .collect();
    if frames.is_empty() {
        return Err(ProvisionError::ValidationImages {
            path: engine.validation_images.clone(),
        });
    }
    Ok(ReferenceDetections::compute(
        Box::new(TractBackend::load(&config.model.path)?),
        frames,
        &config.model,
        inputs.validation_input,
        validation_thresholds(config),
    )?)
}

/// The agreement `[engine]` asks of a new engine.
pub fn validation_thresholds(config: &Config) -> Thresholds {
    Thresholds {
        min_recall: config.engine.min_recall,
        max_extra: config.engine.max_extra,
        iou: config.engine.validation_iou,
    }
}

/// Builds and validates the engine for `config` (an update's model and
/// calibration set, as its slot has them) without putting it in service;
/// the running line's engine stays active until the update switches.
/// Returns the new engine's key, or why it could not be prepared.
pub fn prepare_engine<'a>(
    config: &'a Config,
    builder: &'a mut dyn EngineBuilder,
    inputs: Inputs,
    reference: ReferenceSource<'a>,
) -> Result<Result<EngineKey, String>, ProvisionError> {
    let mut provisioner = Provisioner::new(config, builder, inputs, reference)?;
    let key = provisioner.key();
    Ok(match provisioner.prepare()? {
        Step::Activate | Step::Done => Ok(key),
        Step::Failed { reason } => Err(reason),
        other => Err(format!("provisioning stopped before {other:?}")),
    })
}

/// Runs provisioning steps until the engine is in service or nothing more
/// can be done. Every step re-reads the disk, so it may be killed at any
/// moment and started again.
pub struct Provisioner<'a> {
    config: &'a Config,
    paths: DataPaths,
    cache: EngineCache,
    builder: &'a mut dyn EngineBuilder,
    inputs: Inputs,
    reference_source: Option<ReferenceSource<'a>>,
    reference: Option<ReferenceDetections>,
    status: StatusFile<'a>,
}

impl<'a> Provisioner<'a> {
    /// Prepares provisioning of `inputs` with `builder`.
    pub fn new(
        config: &'a Config,
        builder: &'a mut dyn EngineBuilder,
        mut inputs: Inputs,
        reference_source: ReferenceSource<'a>,
    ) -> Result<Self, ProvisionError> {
        let paths = DataPaths::new(&config.engine.data_dir);
        for folder in [&paths.calibration, &paths.provision] {
            std::fs::create_dir_all(folder).map_err(|source| ProvisionError::Write {
                path: folder.clone(),
                source,
            })?;
        }
        let cache = EngineCache::open(&paths.engines)?;
        if let Some(fingerprint) = &inputs.spec.inputs.calibration_sha256 {
            inputs.spec.int8_model = Some(
                paths
                    .calibration
                    .join(format!("{}.qdq.onnx", &fingerprint[..16])),
            );
        }
        let status = StatusFile::open(&paths.status());
        Ok(Provisioner {
            config,
            paths,
            cache,
            builder,
            inputs,
            reference_source: Some(reference_source),
            reference: None,
            status,
        })
    }

    /// Passes every state change and progress line to `observer` too.
    pub fn observe(&mut self, observer: StatusObserver<'a>) {
        self.status.observe(observer);
    }

    /// The key of the engine this box needs.
    pub fn key(&self) -> EngineKey {
        self.inputs.spec.key()
    }

    /// Reads what is on disk now.
    pub fn facts(&self) -> Facts {
        let key = self.key();
        let entry = match self.cache.entry(&key) {
            Entry::Missing => EntryFacts::Missing,
            Entry::Damaged { reason } => EntryFacts::Damaged(reason),
            Entry::Ready { manifest, .. } => EntryFacts::Stored {
                precision: manifest.precision,
                validation: match &manifest.validation {
                    None => ValidationFacts::Pending,
                    Some(report) if report.passed => ValidationFacts::Passed,
                    Some(report) => ValidationFacts::Rejected(report.verdict.clone()),
                },
                fallback: manifest.fallback.clone(),
            },
        };
        let build_failed = std::fs::read(self.paths.build_failed())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<BuildFailed>(&bytes).ok())
            .filter(|failed| failed.key == key)
            .map(|failed| failed.reason);
        Facts {
            requested: self.inputs.spec.inputs.precision,
            int8_model_ready: self
                .inputs
                .spec
                .int8_model
                .as_ref()
                .is_some_and(|path| path.is_file()),
            quarantined: self.cache.quarantined(&key),
            active: read_active(&self.paths).map(|active| active.key),
            entry,
            build_failed,
            key,
        }
    }

    /// Steps until done or failed; returns the last step.
    pub fn run(&mut self) -> Result<Step, ProvisionError> {
        loop {
            let step = self.step()?;
            if matches!(step, Step::Done | Step::Failed { .. }) {
                return Ok(step);
            }
        }
    }

    /// Steps until the engine is built and validated, short of putting it
    /// in service: an update prepares the engine for its new model while
    /// the line keeps sorting on the old one; provisioning run again after
    /// the switch (the update restarts it before the daemon) activates it.
    /// Returns the step it stopped before (`Activate` when ready, `Done`
    /// when already in service).
    pub fn prepare(&mut self) -> Result<Step, ProvisionError> {
        loop {
            let next = next_step(&self.facts());
            if matches!(next, Step::Activate | Step::Done | Step::Failed { .. }) {
                if let Step::Failed { reason } = &next {
                    self.status
                        .set("failed", reason, Some(self.key().as_str()))?;
                }
                return Ok(next);
            }
            self.step()?;
        }
    }

    /// Takes the next step and returns it.
    pub fn step(&mut self) -> Result<Step, ProvisionError> {
        let step = next_step(&self.facts());
        let key = self.key();
        let key_text = Some(key.as_str());
        match &step {
            Step::Calibrate => {
                self.status.set(
                    "calibrating",
                    "measuring INT8 ranges on the calibration stills",
                    key_text,
                )?;
                self.calibrate()?;
            }
            Step::Build {
                precision,
                fallback,
            } => self.build(*precision, fallback.clone())?,
            Step::Validate => {
                self.status.set(
                    "validating",
                    "comparing the new engine with the CPU reference",
                    key_text,
                )?;
                self.compute_reference()?;
                let reference = self.reference.as_ref().expect("computed above");
                let lock = self.cache.lock()?;
                match validate_stored(&self.cache, &lock, self.builder, reference, &key)? {
                    Validation::Passed(report) | Validation::Rejected(report) => {
                        tracing::info!(passed = report.passed, verdict = %report.verdict, "validated");
                    }
                    Validation::Quarantined(reason) => tracing::warn!(%reason, "quarantined"),
                }
            }
            Step::Quarantine { reason } => {
                self.status.set("quarantining", reason, key_text)?;
                let lock = self.cache.lock()?;
                self.cache.quarantine(&lock, &key, reason)?;
            }
            Step::Activate => self.activate()?,
            Step::Done => {
                let detail = match read_active(&self.paths) {
                    Some(active) => format!("{} engine in service", active.precision),
                    None => "engine in service".to_owned(),
                };
                self.status.set("active", &detail, key_text)?;
            }
            Step::Failed { reason } => self.status.set("failed", reason, key_text)?,
        }
        Ok(step)
    }

    fn calibrate(&mut self) -> Result<(), ProvisionError> {
        let out = self
            .inputs
            .spec
            .int8_model
            .clone()
            .expect("INT8 is configured, so the Q/DQ path is set");
        let status = &mut self.status;
        let calibration = calibrate_folder(
            &self.config.model.path,
            self.inputs.input_shape,
            &self.config.engine.calibration_images,
            &self.inputs.calibration,
            |done, total| {
                let _ = status.progress(format!("calibration image {done}/{total}"));
            },
        )?;
        write_atomically(&out, &calibration.qdq_bytes())
            .map_err(|source| ProvisionError::Write { path: out, source })
    }

    fn build(&mut self, first: Precision, mut fallback: Vec<String>) -> Result<(), ProvisionError> {
        let key = self.key();
        let lock = self.cache.lock()?;
        for swept in self.cache.sweep(&lock)? {
            tracing::info!(path = %swept.display(), "removed what an interrupted build left");
        }
        let mut precision = Some(first);
        while let Some(current) = precision {
            self.status.set(
                "building",
                &format!(
                    "building the {current} engine (TensorRT {})",
                    self.inputs.spec.inputs.tensorrt
                ),
                Some(key.as_str()),
            )?;
            let status = &mut self.status;
            let mut progress = |event: &BuildProgress| {
                let line = match event.step {
                    Some((done, total)) => format!("{} {done}/{total}", event.phase),
                    None => event.phase.clone(),
                };
                let _ = status.progress(line);
            };
            match build_and_store(
                &self.cache,
                &lock,
                self.builder,
                &self.inputs.spec,
                current,
                fallback.clone(),
                &mut progress,
            )? {
                Ok(_) => return Ok(()),
                Err(failure) => {
                    tracing::warn!(%current, %failure, "build failed");
                    fallback.push(format!("{current} failed to build: {failure}"));
                    precision = next_precision(self.inputs.spec.inputs.precision, current);
                }
            }
        }
        let record = BuildFailed {
            key,
            reason: format!("no precision could be built: {}", fallback.join("; ")),
        };
        let path = self.paths.build_failed();
        write_atomically(
            &path,
            &serde_json::to_vec_pretty(&record).expect("serializes"),
        )
        .map_err(|source| ProvisionError::Write { path, source })
    }

    fn activate(&mut self) -> Result<(), ProvisionError> {
        let key = self.key();
        let lock = self.cache.lock()?;
        let manifest = match self.cache.manifest(&key) {
            Ok(Some(manifest)) => manifest,
            // The next step's facts will show what happened to it.
            Ok(None) | Err(_) => return Ok(()),
        };
        let previous = read_active(&self.paths);
        let active = ActiveEngine {
            key: key.clone(),
            precision: manifest.precision,
            engine: self.cache.engine_path(&key),
            activated_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        };
        let path = self.paths.active();
        write_atomically(
            &path,
            &serde_json::to_vec_pretty(&active).expect("serializes"),
        )
        .map_err(|source| ProvisionError::Write { path, source })?;
        // The engine replaced stays, so an update rolled back finds it built.
        let mut keep = vec![key.clone()];
        keep.extend(previous.map(|previous| previous.key));
        for removed in self
            .cache
            .prune(&lock, &keep, self.config.engine.keep_engines)?
        {
            tracing::info!(%removed, "pruned old engine");
        }
        self.status.set(
            "activated",
            &format!("{} engine in service", manifest.precision),
            Some(key.as_str()),
        )
    }

    fn compute_reference(&mut self) -> Result<(), ProvisionError> {
        if let Some(source) = self.reference_source.take() {
            self.reference = Some(source()?);
        }
        Ok(())
    }
}
