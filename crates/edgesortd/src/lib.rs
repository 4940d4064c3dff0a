//! `edgesortd`: the sorting line as a systemd service.
//!
//! Starts the supervised line ([`edgesort_daemon::Daemon`]) and the local API
//! and status page ([`edgesort_api`]), tells systemd it is ready
//! (`Type=notify`) and keeps its watchdog fed while the supervisor lives.
//!
//! Signals:
//! - SIGTERM, SIGINT: it stops the line upstream first, lets the pulses
//!   already planned fire, writes every row, and exits with the outputs low;
//! - SIGQUIT: every output is driven low at once and no pulse fires after
//!   it; then the same orderly stop;
//! - SIGHUP: the configuration file is read again and applied as `PUT
//!   /config` applies it (`systemctl reload edgesortd`); the line runs on.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use edgesort_actuate::{EjectorScheduler, FailSafe, ForceLow, SimulatedPin, force_all_low};
use edgesort_api::Access;
use edgesort_daemon::{
    Daemon, DaemonSetup, DetectorFactory, EngineInfo, ResetLog, WireInputs, served_detector,
};
use edgesort_gpio::{CdevInput, CdevOutput, Edges, chips, resolve};
use edgesort_tls::ServerTls;
use edgesort_types::config::{ActiveLevel, Config, SYSTEM_CONFIG_PATH, SystemConfig};
use embedded_hal::digital::OutputPin;
use sd_notify::NotifyState;

#[derive(Parser)]
#[command(name = "edgesortd", version, about = "The edgesort appliance daemon")]
struct Args {
    /// Configuration file; `PUT /config` saves changes here.
    #[arg(long, default_value = "/etc/edgesort/line/edgesort.toml")]
    config: PathBuf,
    /// Root's settings: where uploaded update packages go and which keys
    /// they must be signed with. Without the file, the defaults on the
    /// configuration's `engine.data_dir`.
    #[arg(long, default_value = SYSTEM_CONFIG_PATH)]
    system: PathBuf,
    /// Drive simulated outputs instead of the GPIO character device (a PC
    /// without GPIO, a demonstration, a soak run).
    #[arg(long)]
    simulate_gpio: bool,
    /// Listen here instead of at `api.bind`.
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Keep the data partition's files (event store, API tokens, the
    /// self-signed API certificate, engine cache) here instead of where the
    /// configuration says: a PC trying the daemon out without
    /// /var/lib/edgesort.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// What builds the line's detector: [`served`] in the product; a test
/// binary may pass a double.
pub type ChooseDetector = fn(&Config) -> Result<(DetectorFactory, EngineInfo)>;

/// The exit status when `engine.backend = "tensorrt"` and the engine
/// cannot serve. The unit keeps restarting, as after any failure, so the
/// line comes up once provisioning has an engine in service.
pub const EXIT_NO_ENGINE: u8 = 3;

/// edgesortd's whole life, with the detector `choose` builds.
pub fn main(choose: ChooseDetector) -> ExitCode {
    init_logging();
    match run(Args::parse(), choose) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("edgesortd: {error:#}");
            let refused = error.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<edgesort_serve::ServeError>(),
                    Some(edgesort_serve::ServeError::TensorRtRefused { .. })
                )
            });
            if refused {
                ExitCode::from(EXIT_NO_ENGINE)
            } else {
                ExitCode::FAILURE
            }
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

fn run(args: Args, choose: ChooseDetector) -> Result<()> {
    let mut config =
        Config::load(&args.config).with_context(|| format!("loading {}", args.config.display()))?;
    if let Some(data) = &args.data_dir {
        std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
        config.store.path = data.join("events.sqlite");
        config.api.token_file = data.join("api-token");
        config.api.read_token_file = data.join("api-read-token");
        config.engine.data_dir = data.clone();
    }
    if config.ignored_ota.is_some() {
        tracing::warn!(
            config = %args.config.display(),
            system = %args.system.display(),
            "the configuration's [ota] section is ignored: update settings are root's and live in the system file"
        );
    }
    let system = system_settings(&args, &config);
    hand_over_to_slot(&system.ota.dir)?;
    let access = Access::load_or_create(&config.api)?;
    let bind = args.bind.unwrap_or(config.api.bind);
    config.api.check_bind(bind).context("--bind")?;
    let certificate = config.api.tls.certificate(&config.engine.data_dir);
    let tls = (config.api.tls.enabled)
        .then(|| ServerTls::load_or_create(&certificate))
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(bind))
        .with_context(|| format!("listening on {bind} (api.bind)"))?;
    let updates = edgesort_api::Updates::from(&system.ota);
    let api = config.api.clone();
    let active = edgesort_provision::DataPaths::new(&config.engine.data_dir).active();
    let (daemon, _failsafes) = start_line(&args, config, choose)?;
    let daemon = Arc::new(daemon);
    let listening = listener.local_addr().unwrap_or(bind);
    match &tls {
        Some(tls) => tracing::info!(
            %listening,
            certificate_sha256 = %tls.fingerprint(),
            "API listening over HTTPS; clients pin this certificate fingerprint"
        ),
        None => tracing::info!(%listening, "API listening over plain HTTP (loopback only)"),
    }

    let router = edgesort_api::router(daemon.clone(), access, updates, &api);
    let served = runtime.block_on(async {
        // The handlers first: systemd may send SIGTERM the moment it reads
        // READY=1, and before them its default action would end the process
        // without the orderly stop.
        let shutdown = signals(daemon.clone());
        let _ = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status("sorting")]);
        let watchdog = tokio::spawn(feed_watchdog(Arc::downgrade(&daemon)));
        let follower = tokio::spawn(follow_provisioning(Arc::downgrade(&daemon), active, choose));
        let limits = edgesort_api::Limits::from(&api);
        let served = edgesort_api::serve(listener, router, limits, tls, shutdown).await;
        watchdog.abort();
        follower.abort();
        let _ = watchdog.await;
        let _ = follower.await;
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
            let high: Vec<&str> = last
                .gpio
                .outputs
                .iter()
                .filter(|output| output.high)
                .map(|output| output.lane.as_str())
                .collect();
            tracing::info!(
                parts = last.counts.parts,
                outputs_high = high.len(),
                "line stopped"
            );
        }
        Err(_) => tracing::error!("API calls still hold the line; it stops as the process exits"),
    }
    served.context("serving the API")
}

/// Set in the environment of a slot's edgesortd, so that it runs
/// instead of handing over again.
const HANDED_OVER: &str = "EDGESORTD_FROM_SLOT";

/// Root's settings as the daemon reads them. The daemon acts on nothing as
/// root, so a missing or unreadable file does not stop the line: it falls
/// back to the defaults on `engine.data_dir` and says so.
fn system_settings(args: &Args, config: &Config) -> SystemConfig {
    let mut system = SystemConfig::load(&args.system).unwrap_or_else(|error| {
        if error.is_not_found() {
            tracing::info!(system = %args.system.display(), "no system file: updates use the defaults");
        } else {
            tracing::error!("{error}; updates use the defaults");
        }
        SystemConfig::defaults_on(&config.engine.data_dir)
    });
    // A PC trying the daemon out keeps its update folder with the rest.
    if let Some(data) = &args.data_dir {
        system.data_dir = data.clone();
        system.ota.dir = data.join("ota");
    }
    system
}

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
fn start_line(
    args: &Args,
    mut config: Config,
    choose: ChooseDetector,
) -> Result<(Daemon, Vec<FailSafe>)> {
    if args.simulate_gpio {
        if config.gpio.encoder.take().is_some() {
            tracing::warn!("simulated GPIO has no belt encoder: the belt runs at belt.speed_mm_s");
        }
        let pins = SimulatedPin::for_ejectors(&config);
        return Ok((start(args, config, choose, pins, None)?, Vec::new()));
    }
    let present = chips()?;
    let lines = config
        .ejectors
        .iter()
        .map(|ejector| {
            resolve(&config.gpio.map, ejector.pin, &present)
                .with_context(|| format!("ejector {}", ejector.lane))
        })
        .collect::<Result<Vec<_>>>()?;
    let (pins, all_low) = CdevOutput::request_all(&lines).context("the ejector outputs")?;
    let failsafes: Vec<FailSafe> = pins
        .iter()
        .map(|pin| FailSafe::register(Arc::new(pin.clone())))
        .collect();
    let input = |pin: u32, active: ActiveLevel, edges: Edges, what: &str| {
        let line = resolve(&config.gpio.map, pin, &present)?;
        CdevInput::request(&line, active == ActiveLevel::Low, edges)
            .with_context(|| format!("{what} (pin {pin})"))
    };
    let estop = match &config.gpio.estop {
        Some(estop) => Some(input(estop.pin, estop.active, Edges::Both, "the e-stop")?),
        None => None,
    };
    let reset = match &config.gpio.reset {
        Some(reset) => Some((
            reset.pin,
            input(reset.pin, reset.active, Edges::Rising, "the e-stop reset")?,
        )),
        None => None,
    };
    let encoder = match &config.gpio.encoder {
        Some(encoder) => Some((
            Duration::from_millis(encoder.silent_ms.into()),
            input(
                encoder.pin,
                ActiveLevel::High,
                Edges::Rising,
                "the belt encoder",
            )?,
        )),
        None => None,
    };
    let direct: Arc<dyn ForceLow> = Arc::new(all_low);
    let inputs: WireInputs = Box::new(move |scheduler: &mut EjectorScheduler, log: ResetLog| {
        if let Some(estop) = estop {
            scheduler.drive_low_on_estop(direct);
            scheduler.watch_estop(estop);
        }
        if let Some((pin, reset)) = reset {
            let actor = format!("reset button (pin {pin})");
            scheduler.watch_reset(reset, move |result| log(&actor, &result));
        }
        if let Some((silent_after, encoder)) = encoder {
            scheduler.watch_encoder(encoder, silent_after);
        }
    });
    Ok((start(args, config, choose, pins, Some(inputs))?, failsafes))
}

/// The backend `engine.backend` asks for, as [`edgesort_serve::select`]
/// decides on this box: the provisioned TensorRT engine, or tract on the
/// CPU with the `engine_fallback` alarm naming the check that failed.
/// Chosen again whenever provisioning's record changes, and swapped in
/// without stopping the line when the choice differs.
pub fn served(config: &Config) -> Result<(DetectorFactory, EngineInfo)> {
    let served = edgesort_serve::select_on_this_box(config, config.engine.backend)?;
    Ok(served_detector(served))
}

/// Starts the line with the chosen detector and these outputs.
fn start<P: OutputPin + Send + 'static>(
    args: &Args,
    config: Config,
    choose: ChooseDetector,
    pins: Vec<P>,
    inputs: Option<WireInputs>,
) -> Result<Daemon> {
    let (detector, engine) = choose(&config)?;
    Ok(Daemon::start(DaemonSetup {
        config,
        config_path: args.config.clone(),
        detector,
        engine,
        pins,
        inputs,
    })?)
}

/// How often the provisioning record is looked at.
const FOLLOW_PERIOD: Duration = Duration::from_secs(5);

/// Swaps in the detector `choose` picks whenever provisioning's record
/// (`active.json`) changes, as when provisioning or an update activates a
/// new engine: the line sorts on, with the old detector serving until the
/// new one has loaded ([`Daemon::swap_detector`], audited as
/// `engine.swap`).
async fn follow_provisioning(
    daemon: std::sync::Weak<Daemon>,
    active: PathBuf,
    choose: ChooseDetector,
) {
    let stamp = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|meta| (meta.modified().ok(), meta.len()))
    };
    let mut seen = stamp(&active);
    let mut ticks = tokio::time::interval(FOLLOW_PERIOD);
    loop {
        ticks.tick().await;
        let now = stamp(&active);
        if now == seen {
            continue;
        }
        seen = now;
        let Some(daemon) = daemon.upgrade() else {
            return;
        };
        tracing::info!(record = %active.display(), "the engine in service changed; choosing the detector again");
        // Loading an engine blocks for seconds: not on an async worker.
        let _ = tokio::task::spawn_blocking(move || {
            let config = daemon.config();
            let (factory, engine) = match choose(&config) {
                Ok(chosen) => chosen,
                Err(error) => {
                    return tracing::error!("{error:#}; the detector in service serves on");
                }
            };
            if engine == daemon.status().engine {
                return tracing::info!(backend = %engine.backend, "the detector in service is still the one chosen");
            }
            if let Err(error) = daemon.swap_detector(factory, engine, "provisioning") {
                tracing::error!("{error:#}; the detector in service serves on");
            }
        })
        .await;
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

/// Signals whose default action ends the process without a word, and
/// which nothing on a box sends on purpose: each is handled as SIGQUIT is,
/// so that it too leaves the outputs low.
const OTHER_ENDING_SIGNALS: [i32; 8] = [
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGPWR,
];

/// Handles signals until one asks the process to stop: SIGTERM (systemd's
/// stop) and SIGINT stop it in order; SIGQUIT, and every other signal that
/// would end the process ([`OTHER_ENDING_SIGNALS`]), drives the outputs low
/// first and fires nothing after; SIGHUP reloads the configuration file.
/// SIGKILL and the fatal signals of a crash (SIGSEGV, SIGABRT, ...) cannot
/// be handled here: the hardware's pull-downs cover them.
///
/// The handlers are installed when this is called (inside the runtime),
/// not when the returned future is first polled.
fn signals(daemon: Arc<Daemon>) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("installing the SIGHUP handler");
    let (ending, mut ended) = tokio::sync::mpsc::channel::<i32>(1);
    for number in OTHER_ENDING_SIGNALS.into_iter().chain([libc::SIGQUIT]) {
        let mut stream = signal(SignalKind::from_raw(number)).expect("installing a signal handler");
        let ending = ending.clone();
        tokio::spawn(async move {
            if stream.recv().await.is_some() {
                let _ = ending.send(number).await;
            }
        });
    }
    async move {
        loop {
            tokio::select! {
                _ = term.recv() => return tracing::info!("SIGTERM"),
                _ = int.recv() => return tracing::info!("SIGINT"),
                Some(number) = ended.recv() => {
                    // The real lines at once, from here; then the ejector thread
                    // stops for good, so nothing planned fires after.
                    force_all_low();
                    let line = daemon.clone();
                    let _ = tokio::task::spawn_blocking(move || line.disarm()).await;
                    let name = if number == libc::SIGQUIT { "SIGQUIT".to_string() } else { format!("signal {number}") };
                    return tracing::warn!("{name}: every output driven low; stopping");
                }
                _ = hup.recv() => {
                    let _ = sd_notify::notify(false, &[NotifyState::Reloading]);
                    let line = daemon.clone();
                    match tokio::task::spawn_blocking(move || line.reload_config("SIGHUP")).await {
                        Ok(Ok(applied)) => tracing::info!(
                            live = ?applied.live,
                            on_restart = ?applied.on_restart,
                            "SIGHUP: configuration reloaded"
                        ),
                        Ok(Err(error)) => tracing::error!(
                            "SIGHUP: configuration not reloaded, the line runs on as it was: {error}"
                        ),
                        Err(error) => tracing::error!(%error, "SIGHUP: reload failed"),
                    }
                    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
                }
            }
        }
    }
}
