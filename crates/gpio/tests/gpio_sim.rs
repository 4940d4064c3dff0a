//! The character-device backend against a real GPIO chip: the kernel's
//! gpio-sim, in the VM that `scripts/gpio-sim/test.sh` boots. There, line 3
//! is pulled up (a released, active-low e-stop) before the test starts, and
//! these variables describe the chip:
//! `GPIO_SIM_LABEL` (its label) and `GPIO_SIM_SYSFS` (its sysfs folder,
//! where `sim_gpioN/pull` drives an input and `sim_gpioN/value` reads an
//! output).
//!
//! Ignored elsewhere, because only that VM has the chip; `.ci/run` counts
//! ignored tests and names this command.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use edgesort_actuate::{
    BeltMotion, EjectorBank, EjectorScheduler, EjectorSpec, Limits, PulseRequest, SchedulerOptions,
};
use edgesort_gpio::{CdevInput, CdevOutput, Edges, check, chips, resolve};
use edgesort_types::{Clock, MonotonicClock};

use common::{Sim, poll};

fn request(part_id: u64, ejector: usize, clock: &Arc<dyn Clock>, ms: u64) -> PulseRequest {
    PulseRequest {
        part_id,
        ejector,
        seen_at: clock.now(),
        distance_mm: 5.0,
        duration: Duration::from_millis(ms),
    }
}

#[test]
#[ignore = "needs the gpio-sim VM: scripts/gpio-sim/test.sh"]
fn ejectors_and_estop_on_a_real_gpio_chip() {
    let sim = Sim::new();
    // Pull-downs on the ejector lines, as integrators fit them: a line let go
    // (the process gone) reads low.
    sim.pull(0, false);
    sim.pull(1, false);
    let present = chips().unwrap();
    println!("chips: {present:?}");

    // Pins are found by the chip's label, whatever its number.
    let ejector_a = resolve(&sim.map, 1, &present).unwrap();
    let ejector_b = resolve(&sim.map, 2, &present).unwrap();
    let estop_line = resolve(&sim.map, 4, &present).unwrap();
    assert!(
        ejector_a
            .chip
            .to_string_lossy()
            .starts_with("/dev/gpiochip")
    );
    let outputs = vec![
        CdevOutput::request(&ejector_a).unwrap(),
        CdevOutput::request(&ejector_b).unwrap(),
    ];
    assert!(
        !sim.output_is_high(0) && !sim.output_is_high(1),
        "outputs start low"
    );
    let held = check(&sim.map).unwrap();
    let consumer = held[0].found.as_ref().unwrap().consumer.clone();
    assert_eq!(consumer.as_deref(), Some("edgesort"));
    assert!(held[0].found.as_ref().unwrap().output);

    let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
    let specs = (0..2).map(|index| EjectorSpec {
        lane: format!("lane{index}"),
        pin: index + 1,
        max_duty: 1.0,
    });
    let limits = Limits {
        max_pulse: Duration::from_millis(300),
        min_gap: Duration::from_millis(2),
        stall_timeout: Duration::from_secs(10),
        estop_debounce: Duration::from_millis(20),
    };
    let bank = EjectorBank::new(specs.zip(outputs).collect(), limits).unwrap();
    let mut ejectors = EjectorScheduler::spawn(
        bank,
        BeltMotion::Constant { mm_per_s: 1000.0 },
        clock.clone(),
        SchedulerOptions::default(),
    );
    // Active low: pulled up is released, pulled down is pressed.
    ejectors.watch_estop(CdevInput::request(&estop_line, true, Edges::Both).unwrap());
    ejectors.heartbeat();

    // A 40 ms pulse, timed on the line itself.
    ejectors.schedule(request(1, 0, &clock, 40)).unwrap();
    let rose = poll(|| sim.output_is_high(0));
    let fell = poll(|| !sim.output_is_high(0));
    let high = fell - rose;
    println!(
        "pulse: 40 ms asked, {:.3} ms seen on the line",
        high.as_secs_f64() * 1e3
    );
    // Polling sysfs in an emulated VM sees each edge a few ms late.
    assert!(
        high >= Duration::from_millis(30) && high <= Duration::from_millis(60),
        "{high:?}"
    );

    // Two long pulses; the e-stop, pressed through a real edge event, ends both.
    ejectors.heartbeat();
    ejectors.schedule(request(2, 0, &clock, 250)).unwrap();
    ejectors.schedule(request(3, 1, &clock, 250)).unwrap();
    let both_high = poll(|| sim.output_is_high(0) && sim.output_is_high(1));
    std::thread::sleep(Duration::from_millis(20));
    let pressed = Instant::now();
    sim.pull(3, false);
    let low = poll(|| !sim.output_is_high(0) && !sim.output_is_high(1));
    println!(
        "e-stop: both outputs low {:.3} ms after the press, {:.1} ms into 250 ms pulses",
        (low - pressed).as_secs_f64() * 1e3,
        (low - both_high).as_secs_f64() * 1e3
    );
    assert!(low - both_high < Duration::from_millis(200));

    // Refused while pressed; re-armed after release, debounce and reset.
    ejectors.schedule(request(4, 0, &clock, 10)).unwrap();
    assert!(ejectors.reset_estop().is_err());
    let released = Instant::now();
    sim.pull(3, true);
    while ejectors.reset_estop().is_err() {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(released.elapsed() >= Duration::from_millis(20));
    ejectors.heartbeat();
    ejectors.schedule(request(5, 1, &clock, 10)).unwrap();
    poll(|| sim.output_is_high(1));
    let mut reports = ejectors.finish().unwrap();
    reports.sort_by_key(|report| report.request.part_id);
    let outcomes: Vec<_> = reports
        .iter()
        .map(|report| report.outcome.as_str())
        .collect();
    println!("outcomes: {outcomes:?}");
    assert_eq!(outcomes, ["fired", "fired", "fired", "estop", "fired"]);
    assert!(!sim.output_is_high(0) && !sim.output_is_high(1));
    let released = check(&sim.map).unwrap();
    assert_eq!(
        released[0].found.as_ref().unwrap().consumer,
        None,
        "lines released"
    );
}

/// Edge events carry `CLOCK_MONOTONIC` timestamps, the clock the scheduler
/// plans on: an edge's time lies between the moments before and after the
/// line was driven.
#[test]
#[ignore = "needs the gpio-sim VM: scripts/gpio-sim/test.sh"]
fn edge_timestamps_are_on_the_monotonic_clock() {
    use edgesort_actuate::EdgeInput;
    let sim = Sim::new();
    let pin = resolve(&sim.map, 6, &chips().unwrap()).unwrap();
    sim.pull(5, false);
    let mut input = CdevInput::request(&pin, false, Edges::Both).unwrap();
    let clock = MonotonicClock;
    for up in [true, false, true] {
        let before = clock.now();
        sim.pull(5, up);
        let after = clock.now();
        let edge = input
            .wait_edge(Duration::from_secs(2))
            .unwrap()
            .expect("an edge");
        println!(
            "edge {up}: {:?} after the write began, write took {:?}",
            edge.at.saturating_since(before),
            after.saturating_since(before)
        );
        assert_eq!(edge.active, up);
        assert!(
            edge.at >= before && edge.at <= after.saturating_add(Duration::from_millis(50)),
            "{edge:?} outside {before:?}..{after:?}"
        );
    }
}
