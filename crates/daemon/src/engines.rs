use std::path::Path;
use std::sync::Arc;

use edgesort_infer::Detector;
use edgesort_infer_tract::TractBackend;
use edgesort_types::config::Config;

use crate::{Detect, DetectorFactory, EngineInfo};

/// The CPU backend (tract) on `threads` threads for `model`, and its
/// description for the status, with the model's digest.
pub fn cpu_detector(model: &Path, threads: usize) -> (DetectorFactory, EngineInfo) {
    // Resolved once: the model may sit behind the update slots' `current`
    // link, and a restarted inference stage must load the model this
    // daemon started with, not one an update has just switched to.
    let resolved = model.canonicalize().unwrap_or_else(|_| model.to_owned());
    let loaded = resolved.clone();
    let factory: DetectorFactory = Arc::new(move |config: &Config| {
        let backend = TractBackend::load(&loaded)
            .map_err(|error| error.to_string())?
            .with_threads(threads);
        let detector =
            Detector::for_model(backend, &config.model).map_err(|error| error.to_string())?;
        Ok(Box::new(detector) as Box<dyn Detect>)
    });
    let engine = EngineInfo {
        backend: "tract (CPU)".into(),
        model: model.display().to_string(),
        model_sha256: edgesort_types::sha256_file(&resolved).ok(),
        precision: "fp32".into(),
        fallback: None,
    };
    (factory, engine)
}
