//! `edgesort gpio`: the board's pins, and ejectors fired and inputs watched
//! by hand during commissioning.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use edgesort_actuate::{
    BeltMotion, EdgeInput, EjectorBank, EjectorScheduler, EjectorSpec, FailSafe, Limits, Outcome,
    PulseRequest, SchedulerOptions, on_termination_signals,
};
use edgesort_gpio::{CdevInput, CdevOutput, Edges, check, chips, resolve};
use edgesort_types::board::board_maps_in;
use edgesort_types::config::{ActiveLevel, Config};
use edgesort_types::{Clock, MonotonicClock};

use crate::BUNDLED_CONFIG;

#[derive(clap::Subcommand)]
pub enum GpioCommand {
    /// The board's header pins, what they map to and what the config wires
    /// to them; `--check` compares the map with the running kernel.
    List(ListArgs),
    /// Fire one pin's output once, e.g. to test an ejector's wiring.
    Pulse(PulseArgs),
    /// Print a pin's edges with their kernel timestamps until interrupted.
    Watch(WatchArgs),
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Configuration naming the board map and the wiring.
    #[arg(long, default_value = BUNDLED_CONFIG)]
    pub config: PathBuf,
    /// Look every pin's chip and line up in the running kernel.
    #[arg(long)]
    pub check: bool,
}

#[derive(clap::Args)]
pub struct PulseArgs {
    /// Header pin.
    #[arg(long)]
    pub pin: u32,
    /// Pulse length; at most `safety.max_pulse_ms`.
    #[arg(long)]
    pub ms: u32,
    /// Configuration naming the board map, the limits and the e-stop.
    #[arg(long, default_value = BUNDLED_CONFIG)]
    pub config: PathBuf,
}

#[derive(clap::Args)]
pub struct WatchArgs {
    /// Header pin.
    #[arg(long)]
    pub pin: u32,
    /// Stop after this many edges.
    #[arg(long)]
    pub count: Option<usize>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Configuration naming the board map.
    #[arg(long, default_value = BUNDLED_CONFIG)]
    pub config: PathBuf,
}

pub fn run_gpio_command(command: GpioCommand) -> Result<()> {
    match command {
        GpioCommand::List(args) => list(&args),
        GpioCommand::Pulse(args) => pulse(&args),
        GpioCommand::Watch(args) => watch(&args),
    }
}

fn load(path: &Path) -> Result<Config> {
    Config::load(path).with_context(|| format!("loading {}", path.display()))
}

/// What the configuration wires to `pin`.
fn wiring(config: &Config, pin: u32) -> Option<String> {
    let ejector = config
        .ejectors
        .iter()
        .find(|ejector| ejector.pin == pin)
        .map(|ejector| format!("ejector {:?}", ejector.lane));
    let estop = config
        .gpio
        .estop
        .as_ref()
        .filter(|estop| estop.pin == pin)
        .map(|_| "e-stop input".to_string());
    let encoder = config
        .gpio
        .encoder
        .as_ref()
        .filter(|encoder| encoder.pin == pin)
        .map(|_| "encoder input".to_string());
    ejector.or(estop).or(encoder)
}

fn list(args: &ListArgs) -> Result<()> {
    let config = load(&args.config)?;
    let map = &config.gpio.map;
    println!("{} ({})", map.name, config.gpio.board.display());
    if let Some(detected) = detected_board(&config.gpio.board)? {
        println!("{detected}");
    }
    let checks = if args.check { Some(check(map)?) } else { None };
    println!(
        "{:>4}  {:<20} {:>5}  {:<12} {:<8} {:<22} {}",
        "pin",
        "chip",
        "line",
        "signal",
        "pad",
        "wired to",
        if args.check { "kernel" } else { "" }
    );
    let mut problems = 0;
    for (index, mapping) in map.pins.iter().enumerate() {
        let kernel = match checks.as_ref().map(|checks| &checks[index].found) {
            None => String::new(),
            Some(Ok(line)) => format!(
                "{} {}{}{}",
                line.chip.display(),
                if line.name.is_empty() {
                    "unnamed"
                } else {
                    &line.name
                },
                if line.output { ", output" } else { ", input" },
                line.consumer
                    .as_ref()
                    .map_or(String::new(), |consumer| format!(", held by {consumer:?}"))
            ),
            Some(Err(error)) => {
                problems += 1;
                format!("MISSING: {error}")
            }
        };
        println!(
            "{:>4}  {:<20} {:>5}  {:<12} {:<8} {:<22} {}",
            mapping.pin,
            mapping.chip,
            mapping.line,
            mapping.signal,
            mapping.pad,
            wiring(&config, mapping.pin).unwrap_or_default(),
            kernel
        );
    }
    if problems > 0 {
        bail!(
            "{problems} of {} pins of {} are not on this machine: wrong board map, or a map entry to correct",
            map.pins.len(),
            config.gpio.board.display()
        );
    }
    Ok(())
}

/// On a Jetson, which bundled map the device tree names, and whether it is
/// the configured one.
fn detected_board(configured: &Path) -> Result<Option<String>> {
    let Ok(raw) = std::fs::read("/proc/device-tree/compatible") else {
        return Ok(None);
    };
    let compatible: Vec<String> = raw
        .split(|&byte| byte == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| String::from_utf8_lossy(entry).into_owned())
        .collect();
    let Some(folder) = configured.parent() else {
        return Ok(None);
    };
    for path in board_maps_in(folder).unwrap_or_default() {
        let Ok(map) = edgesort_types::board::BoardMap::load(&path) else {
            continue;
        };
        if map.matches(&compatible) {
            let same = path.file_name() == configured.file_name();
            return Ok(Some(if same {
                format!("device tree: this is a {}: the map matches", map.name)
            } else {
                format!(
                    "WARNING: the device tree says this is a {} ({}), not the configured map",
                    map.name,
                    path.display()
                )
            }));
        }
    }
    Ok(Some(format!(
        "device tree {compatible:?} matches no map in {}",
        folder.display()
    )))
}

fn pulse(args: &PulseArgs) -> Result<()> {
    let config = load(&args.config)?;
    if args.ms == 0 || args.ms > config.safety.max_pulse_ms {
        bail!(
            "--ms {} is outside 1..={} ms (safety.max_pulse_ms)",
            args.ms,
            config.safety.max_pulse_ms
        );
    }
    if let Some(input) = wiring(&config, args.pin).filter(|wired| !wired.starts_with("ejector")) {
        bail!("pin {} is the {input}; it is never driven", args.pin);
    }
    let present = chips()?;
    let pin = resolve(&config.gpio.map, args.pin, &present)?;
    let output = CdevOutput::request(&pin)?;
    let _failsafe = FailSafe::register(Arc::new(output.clone()));
    let _signals = on_termination_signals().context("installing signal handlers")?;
    let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
    let spec = EjectorSpec {
        lane: format!("pin {}", args.pin),
        pin: args.pin,
        max_duty: 1.0,
    };
    let bank = EjectorBank::new(vec![(spec, output)], Limits::from_config(&config))?;
    let mut scheduler = EjectorScheduler::spawn(
        bank,
        BeltMotion::Constant { mm_per_s: 1000.0 },
        clock.clone(),
        SchedulerOptions {
            realtime_priority: config.gpio.realtime_priority,
            ..SchedulerOptions::default()
        },
    );
    if let Some(estop) = &config.gpio.estop {
        let line = resolve(&config.gpio.map, estop.pin, &present)?;
        scheduler.watch_estop(CdevInput::request(
            &line,
            estop.active == ActiveLevel::Low,
            Edges::Both,
        )?);
    }
    scheduler.heartbeat();
    scheduler.schedule(PulseRequest {
        part_id: 0,
        ejector: 0,
        seen_at: clock.now(),
        distance_mm: 0.0,
        duration: Duration::from_millis(args.ms.into()),
    })?;
    let reports = scheduler.finish()?;
    match reports.first().map(|report| report.outcome) {
        Some(Outcome::Fired { .. }) => {
            println!(
                "pin {} ({} line {}) high for {} ms",
                args.pin,
                pin.chip.display(),
                pin.line,
                args.ms
            );
            Ok(())
        }
        Some(Outcome::EmergencyStop) => bail!("the e-stop is pressed: no pulse"),
        other => bail!("the pulse was not fired: {other:?}"),
    }
}

fn watch(args: &WatchArgs) -> Result<()> {
    let config = load(&args.config)?;
    let pin = resolve(&config.gpio.map, args.pin, &chips()?)?;
    let mut input = CdevInput::request(&pin, false, Edges::Both)?;
    let stop = on_termination_signals().context("installing signal handlers")?;
    let level = embedded_hal::digital::InputPin::is_high(&mut input)?;
    println!(
        "pin {} ({} line {}) reads {}; edges follow (CLOCK_MONOTONIC seconds)",
        args.pin,
        pin.chip.display(),
        pin.line,
        if level { "high" } else { "low" }
    );
    let started = Instant::now();
    let deadline = args.seconds.map(Duration::from_secs_f64);
    let mut previous = None;
    let mut seen = 0;
    while !stop.load(Ordering::SeqCst)
        && args.count.is_none_or(|count| seen < count)
        && deadline.is_none_or(|deadline| started.elapsed() < deadline)
    {
        let Some(edge) = input.wait_edge(Duration::from_millis(100))? else {
            continue;
        };
        seen += 1;
        let since = previous.map_or(String::new(), |previous: edgesort_types::Timestamp| {
            format!(
                "  (+{:.3} ms)",
                edge.at.saturating_since(previous).as_secs_f64() * 1e3
            )
        });
        println!(
            "{:.6}  {}{since}",
            edge.at.as_secs_f64(),
            if edge.active { "rising " } else { "falling" }
        );
        previous = Some(edge.at);
    }
    Ok(())
}
