use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use edgesort_bench::{Clip, ClipReport, TargetReport, bench_clip, bench_targets, generate_from};
use edgesort_infer::Detector;
use edgesort_infer_tract::TractBackend;
use edgesort_serve::{ServedBackend, select_on_this_box};
use edgesort_types::config::{BackendChoice, Config};

use crate::{BUNDLED_CLIP, BUNDLED_CONFIG};

/// The full-size recording, beside the checkout on development machines.
pub(crate) const SHARED_WIDE_CLIP: &str = match option_env!("EDGESORT_PACKAGED") {
    Some(_) => "/usr/share/edgesort/clip_a",
    None => concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/clip_a"),
};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Time every pipeline stage per frame (p50, p99, max) on recorded clips.
    Pipeline(PipelineArgs),
    /// Time the GPU pre- and post-processing kernels with CUDA events, against
    /// their floors and the CPU path (needs an NVIDIA GPU).
    Gpu(GpuArgs),
    /// Time ejector pulses against their planned times, and e-stop latency,
    /// on simulated pins stamped with CLOCK_MONOTONIC. Run it idle and under
    /// load (e.g. `stress-ng --cpu 0 --vm 1 --io 1` beside it).
    Actuation(ActuationArgs),
    /// Run the appliance daemon's line on the looped clip for a long time
    /// (30 min by default) and sample memory and database size.
    Soak(crate::soak::SoakArgs),
}

#[derive(clap::Args)]
pub struct ActuationArgs {
    /// Pulses, at random times 1-50 ms after their requests, one request per ms.
    #[arg(long, default_value_t = 10_000)]
    pub pulses: usize,
    /// E-stop presses to time, each during a pulse.
    #[arg(long, default_value_t = 1000)]
    pub estop_trips: usize,
    /// SCHED_FIFO priority of the ejector thread (0: an ordinary thread).
    #[arg(long, default_value_t = 80)]
    pub priority: u8,
    /// Spin before each edge, µs.
    #[arg(long, default_value_t = 200)]
    pub spin_us: u64,
    /// Seed of the random planned times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn run_actuation_bench(args: ActuationArgs) -> Result<()> {
    let report = edgesort_bench::bench_actuation(edgesort_bench::ActuationOptions {
        pulses: args.pulses,
        estop_trips: args.estop_trips,
        realtime_priority: args.priority,
        spin: std::time::Duration::from_micros(args.spin_us),
        seed: args.seed,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} pulses, {} fired ({} merged), not fired: {:?}; {}; memory locked: {}; spin {} us; {:.1} s",
        report.pulses,
        report.fired,
        report.merged,
        report.not_fired,
        report.realtime,
        report.memory_locked,
        report.spin_us,
        report.seconds
    );
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "us", "samples", "min", "p50", "p99", "p99.9", "max"
    );
    for (name, spread) in [
        ("rising edge - planned time", &report.rise_error),
        ("high time - pulse length", &report.length_error),
        ("e-stop edge - outputs low", &report.estop_latency),
    ] {
        println!(
            "{:<34} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            name,
            spread.samples,
            spread.min_us,
            spread.p50_us,
            spread.p99_us,
            spread.p999_us,
            spread.max_us
        );
    }
    println!(
        "e-stop presses without a sample (the pulse ended before the press): {}",
        report.estop_skipped
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct GpuArgs {
    /// Timed runs per stage, after a warm-up.
    #[arg(long, default_value_t = 1000)]
    pub runs: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn run_gpu_bench(args: GpuArgs) -> Result<()> {
    let gpu = edgesort_infer_cuda::Gpu::open(0)?;
    let report = edgesort_infer_cuda::bench_gpu(&gpu, args.runs.max(1))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{}: {} runs per stage", report.gpu, report.runs);
    println!(
        "device copy bandwidth {:.0} GB/s (read + write), one launch {:.1} us",
        report.bandwidth_gb_s, report.launch_us
    );
    println!(
        "{:<100} {:>9} {:>9} {:>9} {:>10} {:>8}",
        "stage", "median us", "p99 us", "floor us", "CPU us", "target"
    );
    let show = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:.1}"));
    for stage in &report.stages {
        println!(
            "{:<100} {:>9.1} {:>9.1} {:>9} {:>10} {:>8}",
            stage.stage,
            stage.median_us,
            stage.p99_us,
            show(stage.floor_us),
            show(stage.cpu_median_us),
            show(stage.target_us)
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct PipelineArgs {
    /// Clip to time (frames/*.jpg). By default: the bundled 640x360 demo clip
    /// and a 1280x720 one (the shared clip_a when present, else the demo clip
    /// doubled in size).
    #[arg(long)]
    pub clip: Option<PathBuf>,
    /// Configuration (model, belt, rules).
    #[arg(long, default_value = BUNDLED_CONFIG)]
    pub config: PathBuf,
    /// Timed passes over each clip, after one warm-up pass.
    #[arg(long, default_value_t = 3)]
    pub passes: usize,
    /// Inference threads (the CPU stages run on one thread).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Which detector: auto, tensorrt (or gpu) or cpu, chosen as edgesortd
    /// chooses. Default: the configuration's engine.backend. Where an
    /// engine serves, the GPU line is timed frame by frame at the camera's
    /// pace; on the CPU, each stage on its own.
    #[arg(long)]
    pub backend: Option<BackendChoice>,
    /// With `--backend gpu`: time the GPU line with a TEST DOUBLE in place
    /// of TensorRT, which writes the CPU backend's output recorded for each
    /// frame (a machine with a GPU but no TensorRT).
    #[arg(long)]
    pub engine_double: bool,
    /// Seconds the GPU line is fed for.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Frame rate the GPU line is fed at.
    #[arg(long, default_value_t = 60.0)]
    pub fps: f64,
    /// With `--backend gpu`: where frames and results live. Default: mapped
    /// on an integrated GPU (Jetson), device memory on a discrete one;
    /// `mapped` on a discrete GPU has its kernels read the frame over PCIe,
    /// the nearest a discrete GPU comes to a Jetson's path.
    #[arg(long, value_enum)]
    pub gpu_memory: Option<GpuMemory>,
}

/// `--gpu-memory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GpuMemory {
    /// Device memory, copies on the stream.
    Device,
    /// Pinned host memory mapped into the GPU.
    Mapped,
}

pub fn run_bench_command(command: BenchCommand) -> Result<()> {
    let args = match command {
        BenchCommand::Pipeline(args) => args,
        BenchCommand::Gpu(args) => return run_gpu_bench(args),
        BenchCommand::Actuation(args) => return run_actuation_bench(args),
        BenchCommand::Soak(args) => return crate::soak::run_soak(args),
    };
    let config = Config::load(&args.config)?;
    let choice = args.backend.unwrap_or(config.engine.backend);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |cores| cores.get()));
    if args.engine_double {
        anyhow::ensure!(
            choice == BackendChoice::Tensorrt,
            "--engine-double stands in for TensorRT: it goes with --backend gpu"
        );
        return crate::gpu_line::run_gpu_line_bench(&config, &args, None);
    }
    let served = select_on_this_box(&config, choice)?;
    eprintln!("{}", crate::replay::describe(&served.info));
    if served.info.backend == ServedBackend::Tensorrt {
        return crate::gpu_line::run_gpu_line_bench(&config, &args, Some(&served));
    }
    // The CPU stages, each timed on its own: tract's detector.
    let load = || -> Result<Detector<TractBackend>> {
        let backend = TractBackend::load(&config.model.path)?.with_threads(threads);
        Ok(Detector::for_model(backend, &config.model)?)
    };

    let clips = match &args.clip {
        Some(dir) => vec![Clip::load(dir)?],
        None => {
            let demo = Clip::load(Path::new(BUNDLED_CLIP))?;
            let wide = if Path::new(SHARED_WIDE_CLIP).is_dir() {
                Clip::load(Path::new(SHARED_WIDE_CLIP))?
            } else {
                generate_from(&demo)?
            };
            vec![wide, demo]
        }
    };
    let mut reports = Vec::new();
    for clip in &clips {
        eprintln!("timing {} ({} frames)...", clip.name, clip.jpegs.len());
        let mut detector = load()?;
        reports.push(
            bench_clip(clip, &mut detector, &config, args.passes)
                .with_context(|| format!("benchmarking {}", clip.name))?,
        );
    }
    let wide = match clips
        .iter()
        .find(|clip| (clip.width, clip.height) == (1280, 720))
    {
        Some(clip) => clip.clone(),
        None => generate_from(&clips[0])?,
    };
    eprintln!("timing the CPU stages against their targets...");
    let mut square = load()?.with_fixed_input(640, 640)?;
    let targets = bench_targets(&wide, &mut square, &config, args.passes)?;

    if args.json {
        let document = serde_json::json!({
            "machine": {
                "cores": std::thread::available_parallelism().map_or(1, |cores| cores.get()),
                "arch": std::env::consts::ARCH,
            },
            "inference_threads": threads,
            "backend": served.info,
            "model": config.model.path,
            "clips": reports,
            "targets": targets,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print_tables(&reports, &targets, threads);
    }
    Ok(())
}

fn print_tables(reports: &[ClipReport], targets: &[TargetReport], threads: usize) {
    for report in reports {
        println!(
            "{}: {}x{} -> {}, {} frames x {} passes (after a warm-up pass); inference on {threads} threads",
            report.clip, report.width, report.height, report.input, report.frames, report.passes
        );
        println!(
            "  {:<24} {:>9} {:>9} {:>9}",
            "stage", "p50 ms", "p99 ms", "max ms"
        );
        for stage in &report.stages {
            println!(
                "  {:<24} {:>9.3} {:>9.3} {:>9.3}",
                stage.stage, stage.p50_ms, stage.p99_ms, stage.max_ms
            );
        }
    }
    println!("speed targets (one thread, after warm-up):");
    println!(
        "  {:<62} {:>8} {:>8} {:>8} {:>9}",
        "stage", "p50 ms", "p99 ms", "max ms", "target"
    );
    for target in targets {
        println!(
            "  {:<62} {:>8.3} {:>8.3} {:>8.3} {:>5} {}",
            target.timing.stage,
            target.timing.p50_ms,
            target.timing.p99_ms,
            target.timing.max_ms,
            target.target_p99_ms,
            if target.met { "met" } else { "MISSED" }
        );
    }
}
