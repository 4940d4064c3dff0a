//! `edgesort provision` and `edgesort status`: the first-boot engine build
//! a oneshot systemd unit runs, and what a technician reads about it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use edgesort_engine::{BuildTarget, EngineBuilder};
use edgesort_infer_tensorrt::TensorRtBuilder;
use edgesort_provision::{
    BoxFacts, CpuBackend, DataPaths, Inputs, Provisioner, StatusFile, Step, SystemFiles,
    engine_inputs, mib, model_input, probe, read_active, read_cpu_backend, read_status,
    steps_ahead, tract_reference, workspace_for,
};
use edgesort_types::config::{Config, Precision};
use indicatif::{ProgressBar, ProgressStyle};

use crate::BUNDLED_CONFIG;

/// Arguments of `edgesort provision`.
#[derive(Args)]
pub struct ProvisionArgs {
    /// The configuration.
    #[arg(long, default_value = BUNDLED_CONFIG)]
    config: PathBuf,
    /// Explain every step that would be taken, and take none.
    #[arg(long)]
    dry_run: bool,
    /// Use this data partition instead of the configured one.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Forget an earlier failure to build and try again.
    #[arg(long)]
    retry: bool,
}

/// Arguments of `edgesort status`.
#[derive(Args)]
pub struct StatusArgs {
    /// The configuration.
    #[arg(long, default_value = BUNDLED_CONFIG)]
    config: PathBuf,
    /// Use this data partition instead of the configured one.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The daemon's address instead of `api.bind`, e.g. `https://10.0.0.7:8080`.
    #[arg(long)]
    url: Option<String>,
    /// The API token instead of `api.token_file` (also `EDGESORT_TOKEN`).
    #[arg(long, env = "EDGESORT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The SHA-256 fingerprint of the daemon's certificate (also
    /// `EDGESORT_FINGERPRINT`); needed over https unless the certificate
    /// file can be read here.
    #[arg(long, env = "EDGESORT_FINGERPRINT")]
    fingerprint: Option<edgesort_tls::Fingerprint>,
    /// Print the daemon's whole status as JSON, and nothing else.
    #[arg(long)]
    json: bool,
}

/// Provisioning ended without an engine in service.
#[derive(Debug, thiserror::Error)]
pub enum NotProvisioned {
    /// TensorRT or the GPU is missing here.
    #[error("no engine can be built on this machine: {0}")]
    CannotBuild(String),
    /// Every attempt failed.
    #[error("provisioning failed: {0}")]
    Failed(String),
}

fn load_config(path: &Path, data_dir: &Option<PathBuf>) -> anyhow::Result<Config> {
    let mut config = Config::load(path)?;
    if let Some(data_dir) = data_dir {
        config.engine.data_dir = data_dir.clone();
    }
    Ok(config)
}

pub fn run_provision_command(args: ProvisionArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config, &args.data_dir)?;
    let facts = probe(&SystemFiles::default());
    print_box(&facts);
    let workspace = config
        .engine
        .workspace_mib
        .map_or_else(|| workspace_for(facts.memory), |mib| mib << 20);
    let board = facts
        .board
        .clone()
        .unwrap_or_else(|| "not a Jetson".to_owned());
    let model = model_input(&config)?;

    let gpu = match facts.build_target() {
        Ok((gpu, _)) => gpu,
        Err(reason) => {
            let target = BuildTarget {
                tensorrt: "absent".into(),
                gpu: facts
                    .gpu
                    .as_ref()
                    .map_or("absent".into(), |gpu| gpu.name.clone()),
                compute_capability: facts
                    .gpu
                    .as_ref()
                    .map_or("-".into(), |gpu| gpu.compute_capability.clone()),
                dla_cores: facts.dla_cores,
            };
            let inputs = engine_inputs(
                &config,
                model,
                &target,
                &board,
                facts.l4t.as_deref(),
                workspace,
            )?;
            let key = inputs.spec.key();
            let paths = DataPaths::new(&config.engine.data_dir);
            let settled = read_cpu_backend(&paths).filter(|stamp| stamp.key == key);
            print_request(&config, &inputs, None);
            println!("Plan:");
            match &settled {
                Some(stamp) => println!(
                    "  1. nothing to do: settled on the CPU backend (tract) at {} for key {key} ({}).",
                    stamp.settled_at, stamp.reason
                ),
                None => {
                    println!("  1. stop: {reason}.");
                    println!(
                        "     Nothing is calibrated, built or activated; the line runs on the CPU backend (tract)."
                    );
                    println!("  2. stamp key {key} as settled on the CPU backend.");
                }
            }
            if args.dry_run {
                return Ok(());
            }
            if settled.is_none() {
                std::fs::create_dir_all(&paths.provision)
                    .with_context(|| format!("creating {}", paths.provision.display()))?;
                StatusFile::open(&paths.status()).set(
                    "blocked",
                    &reason,
                    Some(&key.to_string()),
                )?;
                CpuBackend::settle(&paths, key, &reason)?;
            }
            return Err(NotProvisioned::CannotBuild(reason).into());
        }
    };

    let log = Arc::new(|severity, message: &str| {
        tracing::info!(target: "tensorrt", ?severity, "{message}");
    });
    let tensorrt = tensorrt_sys::TensorRt::load(log).context("loading TensorRT")?;
    let mut builder = TensorRtBuilder::new(tensorrt, &gpu.name, &gpu.compute_capability)?
        .with_cuda_graph(config.engine.cuda_graph);
    let inputs = engine_inputs(
        &config,
        model,
        builder.target(),
        &board,
        facts.l4t.as_deref(),
        workspace,
    )?;
    let paths = DataPaths::new(&config.engine.data_dir);
    if args.retry && !args.dry_run {
        let _ = std::fs::remove_file(paths.provision.join("build-failed.json"));
    }
    let key = inputs.spec.key();
    print_request(&config, &inputs, Some(&key.to_string()));
    let reference_inputs = inputs.clone();
    let config_ref = &config;
    let reference = Box::new(move || tract_reference(config_ref, &reference_inputs));
    let mut provisioner = Provisioner::new(&config, &mut builder, inputs, reference)?;
    let facts_now = provisioner.facts();
    println!("Plan:");
    for (number, step) in steps_ahead(&facts_now).iter().enumerate() {
        println!("  {}. {}", number + 1, explain(step, &config, &paths));
    }
    if args.dry_run {
        return Ok(());
    }
    // Drawn on stderr, and only on a terminal: the unit's journal gets the
    // status lines through tracing instead.
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let observed = bar.clone();
    provisioner.observe(Box::new(move |line| observed.set_message(line.to_owned())));
    let outcome = provisioner.run();
    bar.finish_and_clear();
    match outcome? {
        Step::Done => {
            let active = read_active(&paths).context("reading the provisioned stamp")?;
            println!("Engine {} ({}) in service.", active.key, active.precision);
            Ok(())
        }
        Step::Failed { reason } => Err(NotProvisioned::Failed(reason).into()),
        other => unreachable!("run ends at done or failed, not {other:?}"),
    }
}

fn print_box(facts: &BoxFacts) {
    println!("Box:");
    println!(
        "  board:     {}",
        facts
            .board
            .as_deref()
            .unwrap_or("not a Jetson (no /proc/device-tree/model)")
    );
    println!(
        "  L4T:       {}",
        facts
            .l4t
            .as_deref()
            .unwrap_or("none (no /etc/nv_tegra_release)")
    );
    match &facts.gpu {
        Ok(gpu) => println!(
            "  GPU:       {} (compute capability {}, {} memory, CUDA driver {})",
            gpu.name,
            gpu.compute_capability,
            mib(gpu.memory_bytes),
            gpu.driver
        ),
        Err(reason) => println!("  GPU:       none: {reason}"),
    }
    match &facts.tensorrt {
        Ok(tensorrt) => println!(
            "  TensorRT:  {} ({})",
            tensorrt.version,
            tensorrt.library.display()
        ),
        Err(reason) => println!("  TensorRT:  absent: {reason}"),
    }
    println!(
        "  shim:      {}",
        facts.tensorrt_headers.as_ref().map_or_else(
            || "not compiled in (built without TensorRT headers)".to_owned(),
            |headers| format!("compiled against TensorRT {headers} headers")
        )
    );
    if let Some(memory) = facts.memory {
        println!(
            "  memory:    {} available of {}",
            mib(memory.available_bytes),
            mib(memory.total_bytes)
        );
    }
    println!("  DLA cores: {}", facts.dla_cores);
}

fn print_request(config: &Config, inputs: &Inputs, key: Option<&str>) {
    let key_inputs = &inputs.spec.inputs;
    println!("Engine:");
    println!(
        "  model:     {} (sha256 {})",
        config.model.path.display(),
        &key_inputs.model_sha256[..16]
    );
    println!(
        "  precision: {} (falls back {})",
        key_inputs.precision,
        key_inputs
            .precision
            .fallback_chain()
            .iter()
            .map(Precision::to_string)
            .collect::<Vec<_>>()
            .join(" -> ")
    );
    match &key_inputs.profile {
        Some(profile) => println!(
            "  profile:   {} min {:?} opt {:?} max {:?}",
            profile.input, profile.min, profile.opt, profile.max
        ),
        None => println!("  profile:   none (fixed input shape)"),
    }
    println!(
        "  DLA:       {}",
        key_inputs
            .dla_core
            .map_or("off (GPU only)".to_owned(), |core| format!(
                "core {core} with GPU fallback"
            ))
    );
    println!("  workspace: {}", mib(inputs.spec.workspace_bytes));
    if let Some(calibration) = &key_inputs.calibration_sha256 {
        println!(
            "  INT8 from: {} ({:?}, {} float layers; fingerprint {})",
            config.engine.calibration_images.display(),
            inputs.calibration.method,
            inputs.calibration.float_nodes.len(),
            &calibration[..16]
        );
    }
    println!("  data:      {}", config.engine.data_dir.display());
    println!(
        "  key:       {}",
        key.unwrap_or("- (needs the TensorRT version and the GPU)")
    );
}

fn explain(step: &Step, config: &Config, paths: &DataPaths) -> String {
    match step {
        Step::Calibrate => format!(
            "calibrate INT8 on the stills in {} and write the Q/DQ model under {}",
            config.engine.calibration_images.display(),
            paths.calibration.display()
        ),
        Step::Build {
            precision,
            fallback,
        } => {
            let mut line = format!(
                "build the {precision} engine into {} (timing cache kept there; on running out of memory, retry with half the workspace; on failure fall back a precision)",
                paths.engines.display()
            );
            if !fallback.is_empty() {
                line.push_str(&format!(" because {}", fallback.join("; ")));
            }
            line
        }
        Step::Validate => format!(
            "validate: run {} stills from {} through the engine and the CPU reference; need recall >= {} and extra <= {}",
            config.engine.validation_count,
            config.engine.validation_images.display(),
            config.engine.min_recall,
            config.engine.max_extra
        ),
        Step::Quarantine { reason } => format!("quarantine the cached engine: {reason}"),
        Step::Activate => format!(
            "activate: write the provisioned stamp {} and prune the cache to {} engines",
            paths.active().display(),
            config.engine.keep_engines
        ),
        Step::Done => "done: the engine in service matches this box".to_owned(),
        Step::Failed { reason } => {
            format!("stop, failed: {reason} (`edgesort provision --retry` tries again)")
        }
    }
}

pub fn run_status_command(args: StatusArgs) -> anyhow::Result<()> {
    let api = crate::client::ApiArgs {
        config: args.config.clone(),
        url: args.url.clone(),
        token: args.token.clone(),
        fingerprint: args.fingerprint,
    };
    if args.json {
        return crate::client::print_line_status(&api, true);
    }
    if let Err(error) = crate::client::print_line_status(&api, false) {
        println!("line:     edgesortd not reachable: {error:#}");
    }
    let config = load_config(&args.config, &args.data_dir)?;
    let paths = DataPaths::new(&config.engine.data_dir);
    match read_status(&paths.status()) {
        Some(status) => {
            println!("state:    {}", status.state);
            println!("detail:   {}", status.detail);
            if let Some(progress) = &status.progress {
                println!("progress: {progress}");
            }
            if let Some(key) = &status.key {
                println!("key:      {key}");
            }
            println!("updated:  {}", status.updated_at);
            for line in status.history.iter().rev().take(5) {
                println!("  earlier: {line}");
            }
        }
        None => println!(
            "state:    not provisioned (no {})",
            paths.status().display()
        ),
    }
    if let Some(active) = read_active(&paths) {
        println!(
            "active:   {} engine {} since {}",
            active.precision, active.key, active.activated_at
        );
    }
    Ok(())
}
