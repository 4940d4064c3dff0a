use std::sync::Arc;

use edgesort_types::{Clock, ManualClock};
use proptest::prelude::*;

use super::*;
use crate::{Edge, SimulatedPin};

const MS: u64 = 1_000_000;

/// A belt at 1000 mm/s: one mm of distance is one ms of time.
const BELT: BeltMotion = BeltMotion::Constant { mm_per_s: 1000.0 };

fn limits() -> Limits {
    Limits {
        max_pulse: Duration::from_millis(50),
        min_gap: Duration::from_millis(5),
        stall_timeout: Duration::from_millis(100),
        estop_debounce: Duration::from_millis(20),
    }
}

struct Rig {
    clock: ManualClock,
    pins: Vec<SimulatedPin>,
    bank: EjectorBank<SimulatedPin>,
    belt: BeltMotion,
}

fn rig_with(ejectors: usize, limits: Limits, max_duty: f64) -> Rig {
    let clock = ManualClock::new();
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let pins: Vec<_> = (0..ejectors)
        .map(|_| SimulatedPin::new(shared.clone()))
        .collect();
    let bank = EjectorBank::new(
        pins.iter()
            .enumerate()
            .map(|(i, pin)| {
                let spec = EjectorSpec {
                    lane: format!("lane{i}"),
                    pin: i as u32,
                    max_duty,
                };
                (spec, pin.clone())
            })
            .collect(),
        limits,
    )
    .unwrap();
    Rig {
        clock,
        pins,
        bank,
        belt: BELT,
    }
}

fn rig(ejectors: usize) -> Rig {
    rig_with(ejectors, limits(), 1.0)
}

impl Rig {
    /// Services every deadline up to `until`, as the replay driver does.
    fn run_until(&mut self, until: u64) -> Vec<PulseReport> {
        self.bank
            .advance_to(&self.clock, Timestamp::from_nanos(until), &self.belt)
            .unwrap()
    }

    /// A part seen now, due at `at_ms` on the 1000 mm/s belt.
    fn request(
        &mut self,
        part_id: u64,
        ejector: usize,
        at_ms: u64,
        ms: u64,
    ) -> Option<PulseReport> {
        let now = self.clock.now();
        let request = PulseRequest {
            part_id,
            ejector,
            seen_at: now,
            distance_mm: at_ms as f64 - now.as_nanos() as f64 / MS as f64,
            duration: Duration::from_millis(ms),
        };
        self.bank.schedule(request, now, &self.belt)
    }

    fn estop(&mut self, active: bool, at_ms: u64) -> Vec<PulseReport> {
        let at = Timestamp::from_nanos(at_ms * MS);
        self.clock.advance_to(at);
        self.bank.estop_edge(active, at).unwrap()
    }
}

fn edge(at_ms: u64, high: bool) -> Edge {
    Edge {
        at: Timestamp::from_nanos(at_ms * MS),
        high,
    }
}

#[test]
fn pulses_fire_on_time_for_their_length() {
    let mut rig = rig(2);
    rig.bank.end_input();
    assert!(rig.request(1, 0, 10, 20).is_none());
    assert!(rig.request(2, 1, 15, 5).is_none());
    let reports = rig.run_until(100 * MS);
    assert_eq!(rig.pins[0].edges(), [edge(10, true), edge(30, false)]);
    assert_eq!(rig.pins[1].edges(), [edge(15, true), edge(20, false)]);
    assert_eq!(
        reports[0].outcome,
        Outcome::Fired {
            actual: Timestamp::from_nanos(10 * MS)
        }
    );
    assert!(!rig.bank.any_high());
}

#[test]
fn overlapping_and_close_pulses_merge_within_the_maximum() {
    let mut rig = rig(1);
    rig.bank.end_input();
    // 10..30, then 33..43 starts within the 5 ms re-arm gap: one pulse 10..43.
    rig.request(1, 0, 10, 20);
    rig.request(2, 0, 33, 10);
    // 60..80 and 70..90 overlap, 90..110 would make it 50+ ms: capped at 110.
    rig.request(3, 0, 60, 20);
    rig.request(4, 0, 70, 20);
    rig.request(5, 0, 88, 40);
    // Far enough apart to stay separate.
    rig.request(6, 0, 200, 10);
    let reports = rig.run_until(400 * MS);
    assert_eq!(
        rig.pins[0].edges(),
        [
            edge(10, true),
            edge(43, false),
            edge(60, true),
            edge(110, false),
            edge(200, true),
            edge(210, false),
        ]
    );
    assert_eq!(reports.len(), 6);
    assert_eq!(rig.bank.activations(0), 3, "six pulses, three activations");
    assert!(
        reports
            .iter()
            .all(|report| matches!(report.outcome, Outcome::Fired { .. }))
    );
}

#[test]
fn a_valve_over_its_duty_cycle_refuses_pulses() {
    // 10% duty: 100 ms of opening per second.
    let mut rig = rig_with(1, limits(), 0.1);
    rig.bank.end_input();
    for part in 0..4 {
        rig.request(part, 0, 10 + part * 60, 40);
    }
    let reports = rig.run_until(400 * MS);
    let outcomes: Vec<_> = reports
        .iter()
        .map(|report| report.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["fired", "fired", "duty_limit", "duty_limit"]);
    // After a second the budget is back.
    rig.request(9, 0, 1500, 40);
    let reports = rig.run_until(2000 * MS);
    assert_eq!(reports[0].outcome.as_str(), "fired");
}

#[test]
fn estop_drops_everything_and_holds_until_released_and_reset() {
    let mut rig = rig(2);
    rig.bank.heartbeat(Timestamp::ZERO);
    rig.request(1, 0, 10, 40);
    rig.request(2, 1, 60, 10);
    rig.run_until(20 * MS);
    assert!(rig.pins[0].is_set_high());

    let dropped = rig.estop(true, 21);
    assert!(!rig.pins[0].is_set_high() && !rig.pins[1].is_set_high());
    assert_eq!(rig.pins[0].edges(), [edge(10, true), edge(21, false)]);
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].outcome, Outcome::EmergencyStop);
    assert_eq!(
        rig.request(3, 0, 70, 10).unwrap().outcome,
        Outcome::EmergencyStop
    );

    // Pressed: no reset. Released 10 ms ago: not settled. Then it re-arms.
    let now = Timestamp::from_nanos(30 * MS);
    assert_eq!(rig.bank.reset_estop(now), Err(ResetRefused::StillPressed));
    rig.estop(false, 40);
    rig.bank.heartbeat(Timestamp::from_nanos(40 * MS));
    assert!(matches!(
        rig.bank.reset_estop(Timestamp::from_nanos(50 * MS)),
        Err(ResetRefused::NotSettled { .. })
    ));
    assert!(rig.bank.estop_tripped());
    // A bounce of the button resets the debounce.
    rig.estop(true, 55);
    rig.estop(false, 56);
    assert!(
        rig.bank
            .reset_estop(Timestamp::from_nanos(66 * MS))
            .is_err()
    );
    rig.clock.advance_to(Timestamp::from_nanos(80 * MS));
    rig.bank.heartbeat(Timestamp::from_nanos(80 * MS));
    rig.bank
        .reset_estop(Timestamp::from_nanos(80 * MS))
        .unwrap();
    assert!(rig.request(4, 0, 90, 10).is_none());
    rig.run_until(150 * MS);
    assert_eq!(rig.pins[0].edges()[2..], [edge(90, true), edge(100, false)]);
}

#[test]
fn a_stalled_pipeline_drives_outputs_low() {
    let mut rig = rig(1);
    rig.bank.heartbeat(Timestamp::ZERO);
    rig.request(1, 0, 90, 40);
    rig.request(2, 0, 300, 10);
    let reports = rig.run_until(200 * MS);
    // High at 90 ms; the stall is noticed at 100 ms, 100 ms after the heartbeat.
    assert_eq!(rig.pins[0].edges(), [edge(90, true), edge(100, false)]);
    assert_eq!(reports.last().unwrap().outcome, Outcome::Stalled);
    assert_eq!(rig.bank.pending_pulses(), 0);
}

#[test]
fn a_hold_drives_outputs_low_at_once_until_the_next_heartbeat() {
    let mut rig = rig(1);
    rig.bank.heartbeat(Timestamp::ZERO);
    rig.request(1, 0, 10, 40);
    rig.request(2, 0, 60, 10);
    rig.run_until(20 * MS);
    let reports = rig.bank.hold(Timestamp::from_nanos(20 * MS)).unwrap();
    assert_eq!(rig.pins[0].edges(), [edge(10, true), edge(20, false)]);
    assert_eq!(
        reports.iter().map(|r| r.outcome).collect::<Vec<_>>(),
        [Outcome::Stalled]
    );
    // Scheduled while held, well within the stall timeout: still dropped.
    rig.request(3, 0, 40, 10);
    let reports = rig.run_until(50 * MS);
    assert_eq!(reports[0].outcome, Outcome::Stalled);
    assert_eq!(rig.pins[0].edges().len(), 2);
    // A heartbeat re-arms.
    rig.bank.heartbeat(Timestamp::from_nanos(50 * MS));
    rig.request(4, 0, 60, 10);
    rig.run_until(80 * MS);
    assert_eq!(rig.pins[0].edges()[2..], [edge(60, true), edge(70, false)]);
    assert_eq!(rig.bank.activations(0), 2);
}

#[test]
fn dropping_the_bank_drives_outputs_low() {
    let mut rig = rig(1);
    rig.bank.end_input();
    rig.request(1, 0, 10, 40);
    rig.run_until(20 * MS);
    assert!(rig.pins[0].is_set_high());
    let pin = rig.pins[0].clone();
    drop(rig);
    assert!(!pin.is_set_high());
}

#[test]
fn late_requests_are_refused() {
    let mut rig = rig(1);
    rig.clock.advance_to(Timestamp::from_nanos(100 * MS));
    assert_eq!(rig.request(1, 0, 80, 20).unwrap().outcome, Outcome::Late);
    assert!(
        rig.request(2, 0, 95, 20).is_none(),
        "within half a pulse it still fires"
    );
}

/// Issue 7's belt-speed acceptance: the belt halves its speed while a part
/// is between camera and ejector; its pulse moves to the later time.
#[test]
fn issue_7_belt_slowdown_delays_the_pulse() {
    let mut rig = rig(1);
    rig.belt = BeltMotion::Encoder(crate::Odometer::new(0.5));
    rig.bank.end_input();
    // 210 mm/s with 0.5 mm per count: an edge every 1/420 s. Half speed
    // from 500 ms on.
    let edge_times: Vec<u64> = (0..700u64)
        .map(|count| match count {
            0..=210 => count * 1_000_000_000 / 420,
            _ => 500 * MS + (count - 210) * 1_000_000_000 / 210,
        })
        .collect();
    let mut edges = edge_times.iter().copied().peekable();
    // Feed the first 100 ms of edges, then plan a part 250 mm upstream.
    while let Some(&at) = edges.peek().filter(|at| **at <= 100 * MS) {
        rig.belt.record_edge(Timestamp::from_nanos(at));
        edges.next();
    }
    let seen_at = Timestamp::from_nanos(100 * MS);
    rig.clock.advance_to(seen_at);
    let request = PulseRequest {
        part_id: 1,
        ejector: 0,
        seen_at,
        distance_mm: 250.0,
        duration: Duration::from_millis(10),
    };
    assert!(rig.bank.schedule(request, seen_at, &rig.belt).is_none());
    // Serve it the way the scheduler does: at every deadline and every edge.
    let mut fired = None;
    while fired.is_none() {
        let next_edge = Timestamp::from_nanos(edges.next().unwrap());
        while let Some(deadline) = rig
            .bank
            .next_deadline(rig.clock.now(), &rig.belt)
            .filter(|deadline| *deadline < next_edge)
        {
            rig.clock.advance_to(deadline);
            let reports = rig.bank.service(deadline, &rig.belt).unwrap();
            fired = fired.or(reports.first().map(|report| report.outcome));
        }
        rig.clock.advance_to(next_edge);
        rig.belt.record_edge(next_edge);
        let reports = rig.bank.service(next_edge, &rig.belt).unwrap();
        fired = fired.or(reports.first().map(|report| report.outcome));
    }
    // Position at 100 ms: 21 mm; 250 mm further is 271 mm. 105 mm by
    // 500 ms, the remaining 166 mm at 105 mm/s take 1.581 s: 2.081 s.
    let expected = 0.5 + 166.0 / 105.0;
    let Some(Outcome::Fired { actual }) = fired else {
        panic!("{fired:?}");
    };
    let error_ms = (actual.as_secs_f64() - expected) * 1e3;
    assert!(
        error_ms.abs() < 1.0,
        "fired {error_ms:+.3} ms off {expected} s"
    );
    // At the nominal speed it would have fired 1.19 s after being seen.
    assert!(actual.as_secs_f64() > 0.1 + 250.0 / 210.0 + 0.5);
}

#[derive(Clone, Debug)]
enum Step {
    Request { ejector: usize, at_ms: u64, ms: u64 },
    Estop { active: bool },
    Reset,
    Heartbeat,
    Wait { ms: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..3, 0u64..300, 1u64..120)
            .prop_map(|(ejector, at_ms, ms)| Step::Request { ejector, at_ms, ms }),
        1 => any::<bool>().prop_map(|active| Step::Estop { active }),
        1 => Just(Step::Reset),
        3 => Just(Step::Heartbeat),
        4 => (1u64..150).prop_map(|ms| Step::Wait { ms }),
    ]
}

proptest! {
    /// Over random schedules, e-stops, resets and stalls: every request gets
    /// exactly one report, no output is ever high longer than the maximum,
    /// and none is high while the e-stop holds.
    #[test]
    fn no_pulse_exceeds_its_maximum_or_goes_unreported(
        steps in prop::collection::vec(step(), 0..60),
    ) {
        let mut rig = rig_with(3, limits(), 0.4);
        let mut requested = 0usize;
        let mut reports = Vec::new();
        for step in steps {
            let now = rig.clock.now().as_nanos();
            match step {
                Step::Request { ejector, at_ms, ms } => {
                    requested += 1;
                    let at = now / MS + at_ms;
                    reports.extend(rig.request(requested as u64, ejector, at, ms.min(50)));
                }
                Step::Estop { active } => {
                    reports.extend(rig.estop(active, now / MS));
                    if active {
                        prop_assert!(rig.pins.iter().all(|pin| !pin.is_set_high()));
                    }
                }
                Step::Reset => {
                    let _ = rig.bank.reset_estop(rig.clock.now());
                }
                Step::Heartbeat => rig.bank.heartbeat(rig.clock.now()),
                Step::Wait { ms } => reports.extend(rig.run_until(now + ms * MS)),
            }
        }
        rig.bank.end_input();
        let _ = rig.bank.reset_estop(rig.clock.now());
        reports.extend(rig.run_until(rig.clock.now().as_nanos() + 1000 * MS));
        reports.extend(rig.bank.safe_state(Outcome::Shutdown, rig.clock.now()).unwrap());
        prop_assert_eq!(reports.len(), requested);
        let mut parts: Vec<u64> = reports.iter().map(|report| report.request.part_id).collect();
        parts.sort_unstable();
        parts.dedup();
        prop_assert_eq!(parts.len(), requested, "a part reported twice");
        for pin in &rig.pins {
            let edges = pin.edges();
            prop_assert!(edges.len() % 2 == 0);
            for pair in edges.chunks(2) {
                prop_assert!(pair[0].high && !pair[1].high);
                prop_assert!(pair[1].at.saturating_since(pair[0].at) <= Duration::from_millis(50));
            }
        }
    }
}
