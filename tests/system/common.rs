//! Helpers shared by the system tests: paths to the bundled assets and a
//! detector on the bundled model.

use std::path::{Path, PathBuf};

use edgesort_infer::Detector;
use edgesort_infer_tract::TractBackend;
use edgesort_pipeline::RunReport;
use edgesort_score::ScoredDecision;
use edgesort_types::config::Config;

/// The repository: where it was built, or `EDGESORT_REPO` where the test
/// binary runs on another machine (the lent GPU).
pub fn repo() -> PathBuf {
    std::env::var_os("EDGESORT_REPO")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
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

/// A run's decisions as the scorer takes them.
pub fn scored(config: &Config, report: &RunReport) -> Vec<ScoredDecision> {
    report
        .decisions
        .iter()
        .map(|decision| ScoredDecision {
            part_id: decision.part_id,
            class: decision.class.clone(),
            crossing_s: decision.reference_crossing_s.expect("crossing time"),
            crossing_x: config.reference_line_px(),
            center_y: decision.center_y,
            fire: decision.planned_fire_s.zip(decision.ejector_x_px),
        })
        .collect()
}
