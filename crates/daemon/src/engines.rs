use std::sync::Arc;

use edgesort_serve::Served;
use edgesort_types::config::Config;

use crate::{Detect, DetectorFactory, EngineInfo};

/// The line's detector from the backend [`edgesort_serve::select`] chose
/// (a restarted inference stage builds a fresh one), and its description
/// for the status.
pub fn served_detector(served: Served) -> (DetectorFactory, EngineInfo) {
    let info = &served.info;
    let engine = EngineInfo {
        backend: info.label.clone(),
        model: info.model.display().to_string(),
        model_sha256: info.model_sha256.clone(),
        precision: info.precision.clone(),
        engine_key: info.engine_key.clone(),
        engine: info.engine.as_ref().map(|path| path.display().to_string()),
        gpu: info.gpu.clone(),
        fallback: info.fallback.as_ref().map(ToString::to_string),
        fallback_check: info
            .fallback
            .as_ref()
            .map(|reason| reason.check().to_owned()),
    };
    let served = Arc::new(served);
    let factory: DetectorFactory = Arc::new(move |config: &Config| {
        let detector = served
            .detector(&config.model)
            .map_err(|error| error.to_string())?;
        Ok(Box::new(detector) as Box<dyn Detect>)
    });
    (factory, engine)
}
