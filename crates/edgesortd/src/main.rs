//! `edgesortd`: the sorting line as a systemd service.
//!
//! Starts the supervised line ([`edgesort_daemon::Daemon`]) and the local API
//! and status page ([`edgesort_api`]), tells systemd it is ready
//! (`Type=notify`) and keeps its watchdog fed while the supervisor lives. On
//! SIGTERM or SIGINT it stops the line upstream first, lets the pulses already
//! planned fire, writes every row, and exits with the outputs low.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use edgesort_actuate::{EjectorScheduler, FailSafe, SimulatedPin};
use edgesort_api::Token;
use edgesort_daemon::{Daemon, DaemonSetup, WireInputs, cpu_detector};
use edgesort_gpio::{CdevInput, CdevOutput, Edges, chips, resolve};
use edgesort_types::config::{ActiveLevel, Config};
use embedded_hal::digital::OutputPin;
use sd_notify::NotifyState;

#[derive(Parser)]
#[command(name = "edgesortd", version, about = "The edgesort appliance daemon")]
struct Args {
    /// Configuration file; `PUT /config` saves changes here.
    #[arg(long, default_value = "/etc/edgesort/edgesort.toml")]
    config: PathBuf,
    /// Drive simulated outputs instead of the GPIO character device (a PC
    /// without GPIO, a demonstration, a soak run).
    #[arg(long)]
    simulate_gpio: bool,
    /// Listen here instead of at `api.bind`.
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Keep the data partition's files (event store, API token, engine
    /// cache) here instead of where the configuration says: a PC trying the
    /// daemon out without /var/lib/edgesort.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    init_logging();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("edgesortd: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Under systemd the journal stamps and colours lines itself; colour codes
/// go to a terminal only.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.init();
    }
}

fn run(args: Args) -> Result<()> {
    let mut config =
        Config::load(&args.config).with_context(|| format!("loading {}", args.config.display()))?;
    if let Some(data) = &args.data_dir {
        std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
        config.store.path = data.join("events.sqlite");
        config.api.token_file = data.join("api-token");
        config.engine.data_dir = data.clone();
        config.ota.dir = data.join("ota");
    }
    hand_over_to_slot(&config.ota.dir)?;
    let token = Token::load_or_create(&config.api.token_file)?;
    let bind = args.bind.unwrap_or(config.api.bind);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(bind))
        .with_context(|| format!("listening on {bind} (api.bind)"))?;
    let updates = edgesort_api::Updates {
        ota: edgesort_ota::OtaDir::new(&config.ota.dir),
        trusted_keys: config.ota.trusted_keys.clone(),
    };
    let (daemon, _failsafes) = start_line(&args, config)?;
    let daemon = Arc::new(daemon);
    let listening = listener.local_addr().unwrap_or(bind);
    tracing::info!(%listening, "API listening");

    let router = edgesort_api::router(daemon.clone(), token, updates);
    let served = runtime.block_on(async {
        let _ = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status("sorting")]);
        let watchdog = tokio::spawn(feed_watchdog(Arc::downgrade(&daemon)));
        let served = edgesort_api::serve(listener, router, termination()).await;
        watchdog.abort();
        let _ = watchdog.await;
        served
    });
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
    tracing::info!("stopping the line");
    // Connection tasks the server spawned may still hold the router, and so
    // the line, after a graceful stop; shutting the runtime down drops them.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match Arc::try_unwrap(daemon) {
        Ok(daemon) => {
            let last = daemon.shutdown();
            tracing::info!(parts = last.counts.parts, "line stopped");
        }
        Err(_) => tracing::error!("API calls still hold the line; it stops as the process exits"),
    }
    served.context("serving the API")
}

/// Set in the environment of a slot's edgesortd, so that it runs
/// instead of handing over again.
const HANDED_OVER: &str = "EDGESORTD_FROM_SLOT";

/// An update slot that carries its own edgesortd runs it in place of the
/// image's: an update can replace the daemon without touching the
/// read-only rootfs. The process (and so systemd's main PID) stays the
/// same. A slot daemon that cannot start fails its update's health check,
/// and the rollback brings this one back.
fn hand_over_to_slot(ota_dir: &Path) -> Result<()> {
    if std::env::var_os(HANDED_OVER).is_some() {
        return Ok(());
    }
    let Ok(slot_daemon) = ota_dir.join("current/bin/edgesortd").canonicalize() else {
        return Ok(());
    };
    let this = std::env::current_exe()
        .and_then(|path| path.canonicalize())
        .context("finding edgesortd's own file")?;
    if slot_daemon == this {
        return Ok(());
    }
    tracing::info!(daemon = %slot_daemon.display(), "handing over to the update slot's edgesortd");
    let error = std::process::Command::new(&slot_daemon)
        .args(std::env::args_os().skip(1))
        .env(HANDED_OVER, "1")
        .exec();
    Err(error).with_context(|| format!("starting the update slot's {}", slot_daemon.display()))
}

/// The line, and the fail-safe registrations that drive its real outputs
/// low on a panic anywhere (kept for the process's life).
fn start_line(args: &Args, config: Config) -> Result<(Daemon, Vec<FailSafe>)> {
    if args.simulate_gpio {
        let pins = SimulatedPin::for_ejectors(&config);
        return Ok((start(args, config, pins, None)?, Vec::new()));
    }
    let present = chips()?;
    let mut pins = Vec::new();
    for ejector in &config.ejectors {
        let line = resolve(&config.gpio.map, ejector.pin, &present)?;
        pins.push(CdevOutput::request(&line).with_context(|| format!("ejector {}", ejector.lane))?);
    }
    let failsafes: Vec<FailSafe> = pins
        .iter()
        .map(|pin| FailSafe::register(Arc::new(pin.clone())))
        .collect();
    let estop = match &config.gpio.estop {
        Some(estop) => {
            let line = resolve(&config.gpio.map, estop.pin, &present)?;
            Some(CdevInput::request(
                &line,
                estop.active == ActiveLevel::Low,
                Edges::Both,
            )?)
        }
        None => None,
    };
    let inputs = estop.map(|input| {
        Box::new(move |scheduler: &mut EjectorScheduler| scheduler.watch_estop(input)) as WireInputs
    });
    Ok((start(args, config, pins, inputs)?, failsafes))
}

/// Starts the line on the CPU backend with these outputs.
fn start<P: OutputPin + Send + 'static>(
    args: &Args,
    config: Config,
    pins: Vec<P>,
    inputs: Option<WireInputs>,
) -> Result<Daemon> {
    let threads = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let (detector, mut engine) = cpu_detector(&config.model.path, threads);
    engine.fallback = Some(cpu_fallback_reason(&config));
    Ok(Daemon::start(DaemonSetup {
        config,
        config_path: args.config.clone(),
        detector,
        engine,
        pins,
        inputs,
    })?)
}

/// Why the line runs on the CPU, for the `engine_fallback` alarm: on a
/// sorting box the detector belongs on the GPU.
fn cpu_fallback_reason(config: &Config) -> String {
    let paths = edgesort_provision::DataPaths::new(&config.engine.data_dir);
    match edgesort_provision::read_active(&paths) {
        Some(active) => format!(
            "running on the CPU: the provisioned {} TensorRT engine ({}) is not served by this edgesortd yet",
            active.precision,
            active.engine.display()
        ),
        None => format!(
            "running on the CPU: no TensorRT engine in service (see `edgesort status`; {} has no provisioned engine)",
            paths.active().display()
        ),
    }
}

/// Pings systemd's watchdog at half its period while the line's supervisor
/// answers; a hung daemon is restarted by systemd.
async fn feed_watchdog(daemon: std::sync::Weak<Daemon>) {
    let mut period_us = 0;
    if !sd_notify::watchdog_enabled(false, &mut period_us) {
        return;
    }
    let mut ticks = tokio::time::interval(Duration::from_micros(period_us / 2));
    loop {
        ticks.tick().await;
        let Some(daemon) = daemon.upgrade() else {
            return;
        };
        // Both calls block (the status takes locks, the notification can
        // wait on a full socket), so neither runs on an async worker.
        let _ = tokio::task::spawn_blocking(move || {
            let status = daemon.status();
            let text = format!("{:?}: {} parts", status.state, status.counts.parts);
            let _ = sd_notify::notify(false, &[NotifyState::Watchdog, NotifyState::Status(&text)]);
        })
        .await;
    }
}

/// Resolves on SIGTERM (systemd's stop) or SIGINT.
async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}
