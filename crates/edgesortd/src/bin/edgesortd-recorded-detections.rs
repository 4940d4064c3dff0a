//! edgesortd with a TEST DOUBLE in place of its detector: every frame gets
//! the detections the CPU detector gave for it, recorded in the replayed
//! clip's `detections.jsonl` (`edgesort replay --record-detections`).
//! Everything else is edgesortd's own code: GPIO wiring, e-stop, reset and
//! encoder inputs, signals, API and store.
//!
//! It exists for the gpio-sim VM test (`scripts/gpio-sim/test.sh`), where
//! the real detector, under CPU emulation, takes seconds per frame and no
//! part could be tracked. No package ships it: the status names the double
//! in `engine.backend` and raises `engine_fallback` for it.

use anyhow::{Context, Result};
use edgesort_daemon::{DetectorFactory, EngineInfo, recorded_detector};
use edgesort_types::config::Config;

fn main() -> std::process::ExitCode {
    edgesortd::main(recorded)
}

fn recorded(config: &Config) -> Result<(DetectorFactory, EngineInfo)> {
    let clip = config
        .camera
        .replay
        .as_ref()
        .context("the recorded-detections double needs a replayed clip (camera.replay)")?;
    Ok(recorded_detector(&clip.join("detections.jsonl"))?)
}
