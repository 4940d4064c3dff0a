//! `edgesort bench soak`: the appliance daemon's line, looping the clip for
//! a long time, sampled for memory and database growth. Neither may grow
//! without bound.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use edgesort_actuate::SimulatedPin;
use edgesort_daemon::{Daemon, DaemonSetup, served_detector};
use edgesort_types::config::Config;
use serde::Serialize;

use crate::BUNDLED_CONFIG;

#[derive(clap::Args)]
pub struct SoakArgs {
    /// Configuration; its clip is looped and its pins are simulated.
    #[arg(long, default_value = BUNDLED_CONFIG)]
    pub config: PathBuf,
    /// How long to run.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 30.0)]
    pub sample_s: f64,
    /// Event database (fresh or not; retention keeps it bounded).
    #[arg(long, default_value = "edgesort-soak.sqlite")]
    pub db: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One look at the process and its line.
#[derive(Clone, Debug, Serialize)]
pub struct SoakSample {
    pub elapsed_s: f64,
    pub rss_kib: u64,
    pub db_bytes: u64,
    pub frames_processed: u64,
    pub parts: u64,
    pub ejections: u64,
    pub pipeline_drops: u64,
    pub state: String,
}

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub minutes: f64,
    pub samples: Vec<SoakSample>,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub rss_max_kib: u64,
    pub db_start_bytes: u64,
    pub db_end_bytes: u64,
    pub db_max_bytes: u64,
    pub db_limit_bytes: u64,
    pub frames_processed: u64,
    pub parts: u64,
    pub ejections: u64,
    pub stage_restarts: u64,
}

pub fn run_soak(args: SoakArgs) -> Result<()> {
    let mut config =
        Config::load(&args.config).with_context(|| format!("loading {}", args.config.display()))?;
    config.camera.replay_loop = true;
    config.store.path = args.db.clone();
    let pins = SimulatedPin::for_ejectors(&config);
    let (detector, engine) = served_detector(edgesort_serve::select_on_this_box(
        &config,
        config.engine.backend,
    )?);
    let db_limit_bytes = u64::from(config.store.max_mb) << 20;
    let daemon = Daemon::start(DaemonSetup {
        engine,
        config,
        config_path: args.config.clone(),
        detector,
        pins: pins.clone(),
        inputs: None,
    })?;
    let started = Instant::now();
    let run_for = Duration::from_secs_f64(args.minutes * 60.0);
    let every = Duration::from_secs_f64(args.sample_s);
    let mut samples = Vec::new();
    loop {
        let sample = sample(&daemon, started);
        eprintln!(
            "{:>7.0} s  rss {:>7} KiB  db {:>9} B  frames {:>7}  parts {:>6}  {}",
            sample.elapsed_s,
            sample.rss_kib,
            sample.db_bytes,
            sample.frames_processed,
            sample.parts,
            sample.state
        );
        samples.push(sample);
        if started.elapsed() >= run_for {
            break;
        }
        std::thread::sleep(every.min(run_for.saturating_sub(started.elapsed())));
    }
    let last = daemon.shutdown();
    let first = &samples[0];
    let end = samples.last().expect("at least one sample");
    let report = SoakReport {
        minutes: started.elapsed().as_secs_f64() / 60.0,
        rss_start_kib: first.rss_kib,
        rss_end_kib: end.rss_kib,
        rss_max_kib: samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
        db_start_bytes: first.db_bytes,
        db_end_bytes: end.db_bytes,
        db_max_bytes: samples.iter().map(|s| s.db_bytes).max().unwrap_or(0),
        db_limit_bytes,
        frames_processed: last.frames.processed,
        parts: last.counts.parts,
        ejections: last.counts.ejections,
        stage_restarts: last.stages.iter().map(|stage| stage.restarts).sum(),
        samples,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "soak {:.1} min: RSS {} KiB at start, {} KiB at end (max {}); database {} B at start, {} B at end (max {}, limit {}); {} frames, {} parts, {} ejections, {} stage restarts",
            report.minutes,
            report.rss_start_kib,
            report.rss_end_kib,
            report.rss_max_kib,
            report.db_start_bytes,
            report.db_end_bytes,
            report.db_max_bytes,
            report.db_limit_bytes,
            report.frames_processed,
            report.parts,
            report.ejections,
            report.stage_restarts
        );
    }
    Ok(())
}

fn sample(daemon: &Daemon, started: Instant) -> SoakSample {
    let status = daemon.status();
    SoakSample {
        elapsed_s: started.elapsed().as_secs_f64(),
        rss_kib: resident_kib(),
        db_bytes: status.store.size_bytes,
        frames_processed: status.frames.processed,
        parts: status.counts.parts,
        ejections: status.counts.ejections,
        pipeline_drops: status.drops.pipeline,
        state: format!("{:?}", status.state).to_lowercase(),
    }
}

/// This process's resident set, KiB (0 where /proc is missing).
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
