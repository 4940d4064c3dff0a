//! `edgesort`: the technician's command line.
//!
//! `edgesort demo` replays the bundled clip as a 60 fps camera through the
//! whole line (CPU inference, tracking, rules, simulated ejectors, SQLite);
//! `edgesort replay` does the same for any clip and scores it against its
//! `tracks.json` when there is one.

mod bench;
mod calibrate;
mod camera;
mod client;
mod eval;
mod gpio;
mod gpu_line;
mod ota;
mod provision;
mod replay;
mod soak;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edgesort_types::config::BackendChoice;

use crate::bench::{BenchCommand, run_bench_command};
use crate::calibrate::{CalibrateArgs, run_calibrate_command};
use crate::camera::{CameraCommand, run_camera_command};
use crate::client::{
    ConfigCommand, EstopCommand, EventsArgs, run_config_command, run_estop_command,
    run_events_command,
};
use crate::eval::{EvalArgs, run_eval_command};
use crate::gpio::{GpioCommand, run_gpio_command};
use crate::ota::{OtaCommand, run_ota_command};
use crate::provision::{
    NotProvisioned, ProvisionArgs, StatusArgs, run_provision_command, run_status_command,
};
use crate::replay::{ReplayArgs, run_replay_command};

/// The configuration used when none is given: the example in the source
/// tree, or in a packaged build (`EDGESORT_PACKAGED` set by
/// scripts/cross-build.sh and the Yocto recipe) the box's own. A packaged
/// build names no folder of the machine that built it, so two checkouts in
/// different places build the same bytes.
const BUNDLED_CONFIG: &str = match option_env!("EDGESORT_PACKAGED") {
    Some(_) => "/etc/edgesort/line/edgesort.toml",
    None => concat!(env!("CARGO_MANIFEST_DIR"), "/../../board/edgesort.toml"),
};

/// The demo clip: in the source tree, or where a box would keep one.
const BUNDLED_CLIP: &str = match option_env!("EDGESORT_PACKAGED") {
    Some(_) => "/usr/share/edgesort/demo_clip",
    None => concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/demo_clip"),
};

#[derive(Parser)]
#[command(
    name = "edgesort",
    version,
    about = "Vision sorting firmware for Jetson Orin: camera, detector, ejectors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay the bundled clip as a live 60 fps camera through the whole line.
    Demo {
        /// Run every frame as fast as possible instead of at the camera's pace.
        #[arg(long)]
        fast: bool,
        /// Where to leave the event database.
        #[arg(long, default_value = "edgesort-demo.sqlite")]
        db: PathBuf,
        /// Which detector: auto, tensorrt (or gpu) or cpu. Default: the
        /// configuration's engine.backend.
        #[arg(long)]
        backend: Option<BackendChoice>,
    },
    /// Replay any clip (a folder with frames/*.jpg and optionally tracks.json).
    Replay(ReplayArgs),
    /// Measure a model's detection accuracy (mAP) on a YOLO-format dataset.
    Eval(EvalArgs),
    /// Quantize a model to INT8 (Q/DQ ONNX) from calibration images, with an
    /// accuracy check against the FP32 model.
    Calibrate(CalibrateArgs),
    /// Measure where the time goes.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// First boot: probe the box, calibrate, build, validate and activate its
    /// TensorRT engine (resumes after a power cut; `--dry-run` explains).
    Provision(ProvisionArgs),
    /// Show the running line (through edgesortd's API), then the
    /// provisioning state and the engine in service.
    Status(StatusArgs),
    /// The parts the running line has decided, from edgesortd's event store.
    Events(EventsArgs),
    /// Read or change the running daemon's configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The e-stop latch of the running daemon: reset it, or show it.
    #[command(subcommand)]
    Estop(EstopCommand),
    /// The board's GPIO pins: list and check them, fire an ejector by hand,
    /// watch an input.
    #[command(subcommand)]
    Gpio(GpioCommand),
    /// The V4L2 cameras: list what they offer, save a frame for focusing,
    /// stream and count drops.
    #[command(subcommand)]
    Camera(CameraCommand),
    /// Signed updates: keys, packing and signing; on a box, verify,
    /// install into the other slot with a health-checked commit, status,
    /// rollback, and recovery after an interrupted update.
    #[command(subcommand)]
    Ota(OtaCommand),
}

/// Exit codes a technician's script can act on.
#[derive(Clone, Copy)]
enum Failure {
    /// The configuration is invalid.
    Config = 2,
    /// The model or clip is missing or unusable, or `--backend tensorrt`
    /// has no engine that can serve.
    Input = 3,
    /// Anything else: the run itself failed.
    Run = 1,
    /// No engine is in service: TensorRT or the GPU is missing, or every
    /// build failed.
    NotProvisioned = 4,
}

fn classify(error: &anyhow::Error) -> Failure {
    for cause in error.chain() {
        if cause.is::<NotProvisioned>() {
            return Failure::NotProvisioned;
        }
        if cause.is::<edgesort_types::config::ConfigError>() {
            return Failure::Config;
        }
        if let Some(infer) = cause.downcast_ref::<edgesort_infer::InferError>() {
            use edgesort_infer::InferError::*;
            if matches!(
                infer,
                ModelNotFound { .. } | LoadModel { .. } | NotYolo { .. }
            ) {
                return Failure::Input;
            }
        }
        if cause.is::<edgesort_capture::CaptureError>()
            || cause.is::<edgesort_capture::CameraError>()
            || cause.is::<edgesort_eval::EvalError>()
            || cause.is::<edgesort_bench::BenchError>()
            || cause.is::<edgesort_calibrate::CalibrateError>()
            || cause.is::<edgesort_gpio::GpioError>()
            || cause.is::<edgesort_ota::OtaError>()
            || cause.is::<edgesort_serve::ServeError>()
        {
            return Failure::Input;
        }
    }
    Failure::Run
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { fast, db, backend } => run_replay_command(ReplayArgs {
            clip: PathBuf::from(BUNDLED_CLIP),
            config: PathBuf::from(BUNDLED_CONFIG),
            fast,
            decisions: None,
            record_detections: None,
            json: false,
            fps: None,
            speed_px_per_frame: None,
            mm_per_px: None,
            db,
            backend,
        }),
        Command::Replay(args) => run_replay_command(args),
        Command::Eval(args) => run_eval_command(args),
        Command::Calibrate(args) => run_calibrate_command(args),
        Command::Bench(command) => run_bench_command(command),
        Command::Provision(args) => run_provision_command(args),
        Command::Status(args) => run_status_command(args),
        Command::Gpio(command) => run_gpio_command(command),
        Command::Camera(command) => run_camera_command(command),
        Command::Events(args) => run_events_command(args),
        Command::Config(command) => run_config_command(command),
        Command::Estop(command) => run_estop_command(command),
        Command::Ota(command) => run_ota_command(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(classify(&error) as u8)
        }
    }
}
