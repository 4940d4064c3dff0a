//! Helpers shared by the system tests: paths to the bundled assets and a
//! detector on the bundled model.

use std::path::{Path, PathBuf};

use edgesort_infer::Detector;
use edgesort_infer_tract::TractBackend;
use edgesort_types::config::Config;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn demo_clip() -> PathBuf {
    repo().join("tests/data/demo_clip")
}

/// The bundled configuration, writing its database into `scratch`.
pub fn demo_config(scratch: &Path) -> Config {
    let mut config =
        Config::load(&repo().join("board/edgesort.toml")).expect("bundled config loads");
    config.store.path = scratch.join("events.sqlite");
    config
}

pub fn detector(config: &Config) -> Detector<TractBackend> {
    let backend = TractBackend::load(&config.model.path).expect("bundled model loads");
    Detector::for_model(backend, &config.model).expect("bundled model is a YOLOv8 detector")
}
