use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use edgesort_actuate::SimulatedPin;
use edgesort_capture::probe_frame_size;
use edgesort_pipeline::{Pacing, RunReport, run_replay_observed};
use edgesort_score::{GroundTruth, Score, ScoredDecision, score};
use edgesort_serve::{ServedInfo, select_on_this_box};
use edgesort_types::FrameDetections;
use edgesort_types::config::{BackendChoice, BeltDirection, Config};

use crate::BUNDLED_CONFIG;

/// How far (px at 640 px width) a decision may sit from a ground-truth part.
const SCORE_GATE_PX_AT_640: f64 = 48.0;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Clip folder: frames/*.jpg (or the JPEGs themselves), optional tracks.json.
    #[arg(long)]
    pub clip: PathBuf,
    /// Configuration file.
    #[arg(long, default_value = BUNDLED_CONFIG)]
    pub config: PathBuf,
    /// Every frame, as fast as possible, on a clock that follows frame timestamps.
    #[arg(long)]
    pub fast: bool,
    /// Write one JSON line per decision here.
    #[arg(long, value_name = "OUT.jsonl")]
    pub decisions: Option<PathBuf>,
    /// Write one JSON line per frame here: its sequence number and what the
    /// detector found in it (the daemon's recorded-detections test double
    /// replays these). Needs --fast, so that every frame is detected.
    #[arg(long, value_name = "OUT.jsonl", requires = "fast")]
    pub record_detections: Option<PathBuf>,
    /// Print the run report (and scoring) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Camera frame rate (default: tracks.json, else the config).
    #[arg(long)]
    pub fps: Option<f64>,
    /// Belt motion in px per frame (default: tracks.json, else the config's speed).
    #[arg(long)]
    pub speed_px_per_frame: Option<f64>,
    /// Belt mm per image pixel (default: the config's, rescaled to the clip's width).
    #[arg(long)]
    pub mm_per_px: Option<f64>,
    /// Event database. The config's `store.path` is the appliance's; a
    /// replay writes beside you.
    #[arg(long, default_value = "edgesort-replay.sqlite")]
    pub db: PathBuf,
    /// Which detector: auto, tensorrt (or gpu) or cpu, chosen as edgesortd
    /// chooses. Default: the configuration's engine.backend.
    #[arg(long)]
    pub backend: Option<BackendChoice>,
}

pub fn run_replay_command(args: ReplayArgs) -> Result<()> {
    let mut config = Config::load(&args.config)?;
    let tracks = args.clip.join("tracks.json");
    let truth = if tracks.is_file() {
        Some(GroundTruth::load(&tracks)?)
    } else {
        None
    };
    fit_config_to_clip(&mut config, &args, truth.as_ref())?;

    let served = select_on_this_box(&config, args.backend.unwrap_or(config.engine.backend))?;
    eprintln!("{}", describe(&served.info));
    let mut detector = served.detector(&config.model)?;
    let pacing = if args.fast {
        Pacing::AsFastAsPossible
    } else {
        Pacing::RealTime
    };
    let mut recorded = Vec::new();
    let report = run_replay_observed(
        &config,
        &mut detector,
        |_, clock| SimulatedPin::new(clock),
        pacing,
        |frame, detections| {
            if args.record_detections.is_some() {
                recorded.push(FrameDetections {
                    sequence: frame.sequence,
                    detections: detections.to_vec(),
                });
            }
        },
    )
    .with_context(|| format!("replaying {}", args.clip.display()))?;

    if let Some(path) = &args.decisions {
        write_json_lines(path, &report.decisions)?;
    }
    if let Some(path) = &args.record_detections {
        write_json_lines(path, &recorded)?;
    }
    let scored = truth
        .as_ref()
        .map(|truth| score_run(truth, &config, &report));
    if args.json {
        let document =
            serde_json::json!({ "backend": served.info, "run": report, "score": scored });
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print_summary(&report, &config.store.path);
        if let Some(scored) = &scored {
            print_score(scored);
        }
    }
    Ok(())
}

/// One line on what serves the run, and why not the engine where it fell
/// back.
pub fn describe(served: &ServedInfo) -> String {
    let mut line = format!("detector: {}, {}", served.label, served.precision);
    if let Some(key) = &served.engine_key {
        line += &format!(", engine {key}");
    }
    if let Some(gpu) = &served.gpu {
        line += &format!(" on {gpu}");
    }
    if let Some(reason) = &served.fallback {
        line += &format!(" (not the TensorRT engine: {reason})");
    }
    line
}

/// Applies the clip's frame size, frame rate and belt speed to the config.
/// A clip of another resolution than the configured camera is taken to show
/// the same field of view, so the scale in mm per px follows the width.
fn fit_config_to_clip(
    config: &mut Config,
    args: &ReplayArgs,
    truth: Option<&GroundTruth>,
) -> Result<()> {
    let (width, height) = probe_frame_size(&args.clip)?;
    if width != config.camera.width {
        let ratio = config.camera.width as f64 / width as f64;
        config.belt.mm_per_px *= ratio;
        config.belt.reference_line_px = config.belt.reference_line_px.map(|line| line / ratio);
    }
    config.camera.replay = Some(args.clip.clone());
    config.camera.width = width;
    config.camera.height = height;
    if let Some(mm_per_px) = args.mm_per_px {
        config.belt.mm_per_px = mm_per_px;
    }
    if let Some(fps) = args.fps.or(truth.map(|truth| truth.fps)) {
        config.camera.fps = fps;
    }
    if let Some(speed) = args
        .speed_px_per_frame
        .or(truth.map(|truth| truth.speed_px_per_frame))
    {
        config.belt.speed_mm_s = speed.abs() * config.camera.fps * config.belt.mm_per_px;
        config.belt.direction = if speed >= 0.0 {
            BeltDirection::LeftToRight
        } else {
            BeltDirection::RightToLeft
        };
    }
    config.store.path = args.db.clone();
    config.validate().with_context(|| {
        format!(
            "{} does not fit clip {}",
            args.config.display(),
            args.clip.display()
        )
    })?;
    Ok(())
}

fn write_json_lines<T: serde::Serialize>(path: &Path, lines: &[T]) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut out = BufWriter::new(File::create(path)?);
        for line in lines {
            serde_json::to_writer(&mut out, line)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

fn score_run(truth: &GroundTruth, config: &Config, report: &RunReport) -> Score {
    let decisions: Vec<ScoredDecision> = report
        .decisions
        .iter()
        .filter_map(|decision| {
            Some(ScoredDecision {
                part_id: decision.part_id,
                class: decision.class.clone(),
                crossing_s: decision.reference_crossing_s?,
                crossing_x: config.reference_line_px(),
                center_y: decision.center_y,
                fire: decision.planned_fire_s.zip(decision.ejector_x_px),
            })
        })
        .collect();
    let gate = SCORE_GATE_PX_AT_640 * truth.width as f64 / 640.0;
    score(truth, &decisions, gate)
}

fn print_summary(report: &RunReport, database: &Path) {
    println!(
        "{} frames: {} processed, {} dropped (latest-frame policy), {} corrupt, in {:.1} s",
        report.frames_in_clip,
        report.frames_processed,
        report.frames_dropped,
        report.frames_corrupt,
        report.wall_s
    );
    println!("\nparts per class");
    for (class, count) in &report.parts_per_class {
        println!("  {class:<12} {count:>5}");
    }
    println!("\nejections per lane");
    for (lane, count) in &report.ejections_per_lane {
        println!("  {lane:<12} {count:>5}");
    }
    for (reason, count) in &report.pulses_not_fired {
        println!("  not fired ({reason}): {count}");
    }
    println!(
        "\nlatency per frame   {:>9} {:>9} {:>9}",
        "p50 ms", "p99 ms", "max ms"
    );
    for stage in &report.latency {
        println!(
            "  {:<18}{:>9.2} {:>9.2} {:>9.2}",
            stage.stage,
            stage.p50_us as f64 / 1e3,
            stage.p99_us as f64 / 1e3,
            stage.max_us as f64 / 1e3
        );
    }
    println!("\nevents database: {}", database.display());
}

fn print_score(score: &Score) {
    println!("\nscore against tracks.json");
    println!(
        "  parts crossing the whole view: {}; decided exactly once: {}; missed: {:?}; duplicated: {:?}; stray decisions: {}",
        score.parts_crossing,
        score.decided_once,
        score.missed,
        score.duplicated,
        score.unmatched_decisions.len()
    );
    println!(
        "  right class: {}/{} ({:.1}%)",
        score.class_correct,
        score.parts_crossing,
        score.class_accuracy * 100.0
    );
    println!(
        "  fire time vs part centre: {} ejections, {} within ±5 ms, max |error| {:.2} ms",
        score.fire_errors.len(),
        score.fires_within_5ms,
        score.max_abs_fire_error_ms
    );
    println!(
        "  fire time vs visible box centre: {} within ±5 ms, max |error| {:.2} ms",
        score.visible_fires_within_5ms, score.max_abs_visible_fire_error_ms
    );
}
