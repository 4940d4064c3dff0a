use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgesort_actuate::{
    BeltMotion, EjectorScheduler, Limits, Outcome, SchedulerOptions, SimulatedInput, SimulatedPin,
    simulated_bank,
};
use edgesort_types::{Clock, MonotonicClock, Timestamp};
use serde::Serialize;

use crate::samples::nearest_rank;

/// Simulated ejectors the pulses are spread over, so that none merge.
const EJECTORS: usize = 16;

/// A request every this often.
const REQUEST_INTERVAL: Duration = Duration::from_millis(1);

const PULSE: Duration = Duration::from_millis(2);

/// Pulses the e-stop presses interrupt: the longest the bench bank allows.
const ESTOP_PULSE: Duration = Duration::from_millis(100);

/// Requests are planned this far ahead, uniformly.
const MIN_AHEAD_NS: u64 = 1_000_000;
const MAX_AHEAD_NS: u64 = 50_000_000;

/// The bench belt: 1000 mm/s, so a part 1 mm upstream is due in 1 ms.
const BELT_MM_S: f64 = 1000.0;

/// How the actuation benchmark runs.
#[derive(Clone, Copy, Debug)]
pub struct ActuationOptions {
    /// Pulses to fire.
    pub pulses: usize,
    /// E-stop presses to time.
    pub estop_trips: usize,
    /// `SCHED_FIFO` priority of the ejector thread; 0 for none.
    pub realtime_priority: u8,
    /// Spin before each edge.
    pub spin: Duration,
    /// Seed of the planned times.
    pub seed: u64,
}

/// Error distribution, in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorSpread {
    /// Samples.
    pub samples: usize,
    /// Earliest (negative: before the plan).
    pub min_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Latest.
    pub max_us: f64,
}

impl ErrorSpread {
    fn of(mut nanos: Vec<i64>) -> ErrorSpread {
        nanos.sort_unstable();
        let rank = |quantile: f64| nearest_rank(&nanos, quantile).map_or(0.0, |n| n as f64 / 1e3);
        ErrorSpread {
            samples: nanos.len(),
            min_us: nanos.first().map_or(0.0, |&n| n as f64 / 1e3),
            p50_us: rank(0.5),
            p99_us: rank(0.99),
            p999_us: rank(0.999),
            max_us: rank(1.0),
        }
    }
}

/// What `edgesort bench actuation` measured.
#[derive(Clone, Debug, Serialize)]
pub struct ActuationReport {
    /// Pulses requested.
    pub pulses: usize,
    /// Pulses whose rising edge was seen.
    pub fired: usize,
    /// Pulses the scheduler reached so late that they merged into the pulse
    /// before them on the same valve (none when it keeps time).
    pub merged: usize,
    /// Pulses not fired, by reason.
    pub not_fired: BTreeMap<String, usize>,
    /// `SCHED_FIFO` priority, or why not.
    pub realtime: String,
    /// Whether memory was locked, or why not.
    pub memory_locked: String,
    /// Spin before each edge, µs.
    pub spin_us: f64,
    /// Rising edge minus planned time.
    pub rise_error: ErrorSpread,
    /// High time minus planned pulse length.
    pub length_error: ErrorSpread,
    /// E-stop input edge to the output's falling edge.
    pub estop_latency: ErrorSpread,
    /// Presses that gave no sample: the pulse had ended before the press.
    pub estop_skipped: usize,
    /// Wall time of the run, s.
    pub seconds: f64,
}

struct Plan {
    ejector: usize,
    due: Timestamp,
}

/// Fires `options.pulses` pulses on simulated pins that stamp each edge with
/// `CLOCK_MONOTONIC`, at random times 1–50 ms after each request, through
/// the live scheduler, then presses a simulated e-stop in the middle of
/// pulses; reports how far each edge was from its plan.
pub fn bench_actuation(options: ActuationOptions) -> ActuationReport {
    let started = Instant::now();
    let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
    let pins: Vec<SimulatedPin> = (0..EJECTORS)
        .map(|_| SimulatedPin::new(clock.clone()))
        .collect();
    let scheduler = spawn(&pins, &clock, options);
    let realtime = scheduler.realtime().clone();

    let mut random = options.seed | 1;
    let mut plans: Vec<Plan> = Vec::with_capacity(options.pulses);
    let mut planned: Vec<Vec<Timestamp>> = vec![Vec::new(); EJECTORS];
    let mut reports = Vec::with_capacity(options.pulses);
    let first = clock.now();
    for part in 0..options.pulses {
        reports.extend(scheduler.take_reports());
        let slot = first.saturating_add(REQUEST_INTERVAL * part as u32);
        std::thread::sleep(slot.saturating_since(clock.now()));
        let now = clock.now();
        let ahead = MIN_AHEAD_NS + xorshift(&mut random) % (MAX_AHEAD_NS - MIN_AHEAD_NS);
        let due = now.saturating_add(Duration::from_nanos(ahead));
        // An ejector idle around `due`, so that no two pulses merge.
        let clear = PULSE + Duration::from_millis(3);
        let ejector = (0..EJECTORS)
            .find(|&e| {
                planned[e].iter().all(|other: &Timestamp| {
                    due.saturating_since(*other) > clear || other.saturating_since(due) > clear
                })
            })
            .unwrap_or(part % EJECTORS);
        planned[ejector].retain(|other| other.saturating_add(clear) > now);
        planned[ejector].push(due);
        scheduler.heartbeat();
        let _ = scheduler.schedule(edgesort_actuate::PulseRequest {
            part_id: part as u64,
            ejector,
            seen_at: now,
            distance_mm: ahead as f64 * 1e-9 * BELT_MM_S,
            duration: PULSE,
        });
        plans.push(Plan { ejector, due });
    }
    reports.extend(scheduler.finish().unwrap_or_default());
    let mut not_fired = BTreeMap::new();
    let mut actual = vec![None; plans.len()];
    for report in &reports {
        match report.outcome {
            Outcome::Fired { actual: at } => actual[report.request.part_id as usize] = Some(at),
            other => *not_fired.entry(other.as_str().to_string()).or_insert(0) += 1,
        }
    }

    // Each pulse's rising edge as its pin recorded it. A pulse the scheduler
    // reached late may have merged into its neighbour and have no edge of its
    // own; its error is then the time the scheduler reached it.
    let (mut rise_errors, mut length_errors, mut merged) = (Vec::new(), Vec::new(), 0);
    for (ejector, pin) in pins.iter().enumerate() {
        let mut parts: Vec<usize> = (0..plans.len())
            .filter(|&part| plans[part].ejector == ejector && actual[part].is_some())
            .collect();
        parts.sort_unstable_by_key(|&part| plans[part].due);
        let edges = pin.edges();
        let mut pairs = edges.chunks(2).peekable();
        for (index, &part) in parts.iter().enumerate() {
            let next_due = parts.get(index + 1).map(|&next| plans[next].due);
            let own = pairs
                .peek()
                .filter(|pair| next_due.is_none_or(|next| pair[0].at < next))
                .is_some();
            if own && let Some(pair) = pairs.next() {
                rise_errors.push(signed_ns(pair[0].at, plans[part].due));
                if let Some(fall) = pair.get(1) {
                    length_errors.push(signed_ns(fall.at, pair[0].at) - PULSE.as_nanos() as i64);
                }
            } else if let Some(at) = actual[part] {
                merged += 1;
                rise_errors.push(signed_ns(at, plans[part].due));
            }
        }
    }

    let (estop_latencies, estop_skipped) = time_estops(&clock, options);
    ActuationReport {
        pulses: options.pulses,
        fired: rise_errors.len(),
        merged,
        not_fired,
        realtime: match &realtime.fifo {
            Ok(priority) => format!("SCHED_FIFO priority {priority}"),
            Err(why) => format!("not real-time: {why}"),
        },
        memory_locked: match &realtime.memory_locked {
            Ok(()) => "yes".into(),
            Err(why) => format!("no: {why}"),
        },
        spin_us: options.spin.as_secs_f64() * 1e6,
        rise_error: ErrorSpread::of(rise_errors),
        length_error: ErrorSpread::of(length_errors),
        estop_latency: ErrorSpread::of(estop_latencies),
        estop_skipped,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn spawn(
    pins: &[SimulatedPin],
    clock: &Arc<dyn Clock>,
    options: ActuationOptions,
) -> EjectorScheduler {
    let limits = Limits {
        max_pulse: Duration::from_millis(100),
        min_gap: Duration::from_millis(1),
        stall_timeout: Duration::from_secs(1),
        estop_debounce: Duration::ZERO,
    };
    let bank = simulated_bank(pins, limits).expect("simulated pins cannot fail");
    EjectorScheduler::spawn(
        bank,
        BeltMotion::Constant {
            mm_per_s: BELT_MM_S,
        },
        clock.clone(),
        SchedulerOptions {
            realtime_priority: options.realtime_priority,
            spin: options.spin,
            ..SchedulerOptions::default()
        },
    )
}

/// Presses the e-stop while a pulse is high, `options.estop_trips` times;
/// returns each press's latency to the output's falling edge, and how many
/// presses gave no sample (the pulse was not high in time, or had ended
/// before the press because this thread was held up).
fn time_estops(clock: &Arc<dyn Clock>, options: ActuationOptions) -> (Vec<i64>, usize) {
    let pins = [SimulatedPin::new(clock.clone())];
    let mut scheduler = spawn(&pins, clock, options);
    let estop = SimulatedInput::new(clock.clone());
    scheduler.watch_estop(estop.clone());
    let mut latencies = Vec::new();
    let mut skipped = 0;
    for part in 0..options.estop_trips {
        // Where this pulse's falling edge will be in the record.
        let fall_index = pins[0].edges().len() + 1;
        scheduler.heartbeat();
        let _ = scheduler.schedule(edgesort_actuate::PulseRequest {
            part_id: part as u64,
            ejector: 0,
            seen_at: clock.now(),
            distance_mm: 1.0,
            duration: ESTOP_PULSE,
        });
        let pressed = wait_for(|| pins[0].is_set_high()).then(|| estop.set(true));
        // The press's own falling edge; one the pulse's end made before the
        // press is no sample.
        match pressed {
            Some(pressed)
                if wait_for(|| !pins[0].is_set_high())
                    && pins[0]
                        .edges()
                        .get(fall_index)
                        .is_some_and(|fall| fall.at >= pressed) =>
            {
                latencies.push(signed_ns(pins[0].edges()[fall_index].at, pressed));
            }
            _ => skipped += 1,
        }
        estop.set(false);
        drop(scheduler.take_reports());
        while scheduler.reset_estop().is_err() {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    drop(scheduler.finish());
    (latencies, skipped)
}

fn wait_for(condition: impl Fn() -> bool) -> bool {
    let give_up = Instant::now() + Duration::from_secs(1);
    while Instant::now() < give_up {
        if condition() {
            return true;
        }
        std::hint::spin_loop();
    }
    false
}

fn signed_ns(later: Timestamp, earlier: Timestamp) -> i64 {
    later.as_nanos() as i64 - earlier.as_nanos() as i64
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pulse_is_timed_and_none_fires_early() {
        let report = bench_actuation(ActuationOptions {
            pulses: 200,
            estop_trips: 5,
            realtime_priority: 0,
            spin: Duration::from_micros(200),
            seed: 7,
        });
        // Timing depends on the machine's load; these do not.
        let not_fired: usize = report.not_fired.values().sum();
        assert_eq!(report.fired + not_fired, 200, "{report:?}");
        assert_eq!(report.rise_error.samples, report.fired, "{report:?}");
        // Never early, but for the float rounding of belt positions (ns).
        assert!(report.rise_error.min_us > -0.1, "{report:?}");
        assert_eq!(
            report.estop_latency.samples + report.estop_skipped,
            5,
            "{report:?}"
        );
        assert!(report.estop_latency.min_us >= 0.0, "{report:?}");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let spread = ErrorSpread::of((1..=1000).map(|us| us * 1000).collect());
        assert_eq!(
            (spread.p50_us, spread.p99_us, spread.p999_us, spread.max_us),
            (500.0, 990.0, 999.0, 1000.0)
        );
    }
}
