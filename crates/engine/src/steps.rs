use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use edgesort_types::config::Precision;

use crate::{
    BuildFailure, BuildJob, BuildProgress, CacheLock, EngineBuilder, EngineCache, EngineError,
    EngineKey, Entry, KeyInputs, Manifest, ReferenceDetections, ValidationReport, sha256_hex,
};

/// A build below this workspace is not worth trying: TensorRT would pick
/// kernels so slow the line could not keep up.
pub const MIN_WORKSPACE_BYTES: u64 = 64 << 20;

/// Everything about the engine a box wants, bar the precision tried.
#[derive(Clone, Debug)]
pub struct EngineSpec {
    /// The key inputs; `inputs.precision` is the precision asked for.
    pub inputs: KeyInputs,
    /// The FP32 ONNX model.
    pub model: PathBuf,
    /// The calibrated Q/DQ model, for INT8.
    pub int8_model: Option<PathBuf>,
    /// The board, for the manifest.
    pub board: String,
    /// The L4T release, for the manifest.
    pub l4t: Option<String>,
    /// The workspace limit tried first.
    pub workspace_bytes: u64,
}

impl EngineSpec {
    /// The cache key.
    pub fn key(&self) -> EngineKey {
        EngineKey::of(&self.inputs)
    }
}

/// Builds `precision`, halving the workspace when the builder runs out of
/// memory, and stores the engine unvalidated with the reasons higher
/// precisions were given up (`fallback`).
pub fn build_and_store(
    cache: &EngineCache,
    lock: &CacheLock,
    builder: &mut dyn EngineBuilder,
    spec: &EngineSpec,
    precision: Precision,
    fallback: Vec<String>,
    progress: &mut dyn FnMut(&BuildProgress),
) -> Result<Result<Manifest, BuildFailure>, EngineError> {
    let onnx = match precision {
        Precision::Int8 => match &spec.int8_model {
            Some(model) => model,
            None => {
                return Ok(Err(BuildFailure {
                    message: "INT8 needs the calibrated Q/DQ model, and there is none".into(),
                    out_of_memory: false,
                }));
            }
        },
        Precision::Fp16 | Precision::Fp32 => &spec.model,
    };
    let timing_cache = cache.timing_cache(&spec.inputs.tensorrt, &spec.inputs.gpu);
    let mut workspace_bytes = spec.workspace_bytes;
    let started = Instant::now();
    let output = loop {
        let job = BuildJob {
            onnx,
            precision,
            profile: spec.inputs.profile.as_ref(),
            workspace_bytes,
            dla_core: spec.inputs.dla_core,
            gpu_fallback: spec.inputs.builder.gpu_fallback,
            timing_cache: &timing_cache,
        };
        tracing::info!(%precision, workspace_mib = workspace_bytes >> 20, "building engine");
        match builder.build(&job, progress) {
            Ok(output) => break output,
            Err(failure) if failure.out_of_memory && workspace_bytes / 2 >= MIN_WORKSPACE_BYTES => {
                tracing::warn!(
                    workspace_mib = workspace_bytes >> 20,
                    "build ran out of memory; retrying with half the workspace"
                );
                workspace_bytes /= 2;
            }
            Err(failure) => return Ok(Err(failure)),
        }
    };
    if !output.timing_cache.is_empty() {
        cache.save_timing_cache(
            lock,
            &spec.inputs.tensorrt,
            &spec.inputs.gpu,
            &output.timing_cache,
        )?;
    }
    let manifest = Manifest {
        key: spec.key(),
        inputs: spec.inputs.clone(),
        model: onnx.clone(),
        board: spec.board.clone(),
        l4t: spec.l4t.clone(),
        precision,
        fallback,
        workspace_bytes,
        build_seconds: started.elapsed().as_secs_f64(),
        built_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        engine_sha256: sha256_hex(&output.plan),
        engine_bytes: output.plan.len() as u64,
        validation: None,
        edgesort_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    cache.store(lock, &manifest, &output.plan)?;
    Ok(Ok(manifest))
}

/// What checking a stored engine found.
#[derive(Debug)]
pub enum Validation {
    /// It agrees with the CPU reference; recorded in its manifest.
    Passed(ValidationReport),
    /// It disagrees; recorded in its manifest.
    Rejected(ValidationReport),
    /// It could not be used at all and went to quarantine.
    Quarantined(String),
}

/// Loads `key`'s engine and checks it against the reference, recording the
/// outcome in its manifest; an engine that is damaged or does not
/// deserialize is quarantined.
pub fn validate_stored(
    cache: &EngineCache,
    lock: &CacheLock,
    builder: &mut dyn EngineBuilder,
    reference: &ReferenceDetections,
    key: &EngineKey,
) -> Result<Validation, EngineError> {
    let (mut manifest, plan) = match cache.entry(key) {
        Entry::Ready { manifest, plan } => (*manifest, plan),
        Entry::Missing => {
            let reason = "the engine vanished before validation".to_owned();
            return Ok(Validation::Quarantined(reason));
        }
        Entry::Damaged { reason } => {
            cache.quarantine(lock, key, &reason)?;
            return Ok(Validation::Quarantined(reason));
        }
    };
    let backend = match builder.load(&plan, manifest.inputs.dla_core) {
        Ok(backend) => backend,
        Err(error) => {
            let reason = format!("the engine does not load: {error}");
            cache.quarantine(lock, key, &reason)?;
            return Ok(Validation::Quarantined(reason));
        }
    };
    let report = reference.validate(backend)?;
    manifest.validation = Some(report.clone());
    cache.update_manifest(lock, &manifest)?;
    Ok(if report.passed {
        Validation::Passed(report)
    } else {
        Validation::Rejected(report)
    })
}
