use std::path::Path;
use std::sync::Arc;

use edgesort_infer::Detector;
use edgesort_infer_tract::TractBackend;
use edgesort_types::config::Config;

use crate::{Detect, DetectorFactory, EngineInfo};

/// The CPU backend (tract) on `threads` threads, for the model of whatever
/// configuration it is handed, and its description for the status.
pub fn cpu_detector(model: &Path, threads: usize) -> (DetectorFactory, EngineInfo) {
    let factory: DetectorFactory = Arc::new(move |config: &Config| {
        let backend = TractBackend::load(&config.model.path)
            .map_err(|error| error.to_string())?
            .with_threads(threads);
        let detector =
            Detector::for_model(backend, &config.model).map_err(|error| error.to_string())?;
        Ok(Box::new(detector) as Box<dyn Detect>)
    });
    let engine = EngineInfo {
        backend: "tract (CPU)".into(),
        model: model.display().to_string(),
        precision: "fp32".into(),
        fallback: None,
    };
    (factory, engine)
}
