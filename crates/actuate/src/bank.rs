use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use edgesort_types::Timestamp;
use embedded_hal::digital::{InputPin, OutputPin};

use crate::ActuateError;

/// A pulse to fire for one part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PulseRequest {
    /// The part it is for.
    pub part_id: u64,
    /// Index of the ejector.
    pub ejector: usize,
    /// When the rising edge is due.
    pub fire_at: Timestamp,
    /// How long the output stays high.
    pub duration: Duration,
}

/// What became of a pulse request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The output went high at `actual`.
    Fired {
        /// When the rising edge was driven.
        actual: Timestamp,
    },
    /// The request came after its part had passed the ejector.
    Late,
    /// Dropped because the pipeline stalled.
    Stalled,
    /// Dropped or refused because the e-stop was active.
    EmergencyStop,
}

impl Outcome {
    /// A short lower-case name for logs and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Fired { .. } => "fired",
            Outcome::Late => "late",
            Outcome::Stalled => "stalled",
            Outcome::EmergencyStop => "estop",
        }
    }
}

/// The outcome of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PulseReport {
    /// The request.
    pub request: PulseRequest,
    /// What happened to it.
    pub outcome: Outcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// Drive low if the output's high period has ended.
    Fall,
    /// Drive high for the request.
    Rise(PulseRequest),
}

/// A due edge; events run in time order, ties in the order they were queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Event {
    at: Timestamp,
    order: u64,
    ejector: usize,
    action: Action,
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

struct Output<P> {
    lane: String,
    pin_number: u32,
    pin: P,
    high_since: Option<Timestamp>,
    high_until: Timestamp,
}

/// Ejector outputs and their pulse queue; see the crate docs for the safety
/// rules. Dropping the bank drives every output low.
pub struct EjectorBank<P: OutputPin, E: InputPin> {
    outputs: Vec<Output<P>>,
    estop: Option<E>,
    pending: BinaryHeap<Reverse<Event>>,
    next_order: u64,
    max_pulse: Duration,
    stall_timeout: Duration,
    last_heartbeat: Option<Timestamp>,
    stalled: bool,
    input_ended: bool,
}

impl<P: OutputPin, E: InputPin> EjectorBank<P, E> {
    /// Takes the outputs `(lane, pin number, pin)` and drives them all low.
    pub fn new(
        outputs: Vec<(String, u32, P)>,
        estop: Option<E>,
        max_pulse: Duration,
        stall_timeout: Duration,
    ) -> Result<Self, ActuateError> {
        let mut bank = EjectorBank {
            outputs: outputs
                .into_iter()
                .map(|(lane, pin_number, pin)| Output {
                    lane,
                    pin_number,
                    pin,
                    high_since: None,
                    high_until: Timestamp::ZERO,
                })
                .collect(),
            estop,
            pending: BinaryHeap::new(),
            next_order: 0,
            max_pulse,
            stall_timeout,
            last_heartbeat: None,
            stalled: false,
            input_ended: false,
        };
        bank.all_low()?;
        Ok(bank)
    }

    /// Whether any output is high.
    pub fn any_high(&self) -> bool {
        self.outputs
            .iter()
            .any(|output| output.high_since.is_some())
    }

    /// Pulses queued and not yet fired.
    pub fn pending_pulses(&self) -> usize {
        self.pending
            .iter()
            .filter(|Reverse(event)| matches!(event.action, Action::Rise(_)))
            .count()
    }

    /// Queues `request`. Returns its report at once if it is refused: the
    /// e-stop is active, or the part passed the ejector more than half a pulse
    /// ago. A request a little late fires at the next service.
    pub fn schedule(
        &mut self,
        request: PulseRequest,
        now: Timestamp,
    ) -> Result<Option<PulseReport>, ActuateError> {
        assert!(
            request.ejector < self.outputs.len(),
            "no ejector {}",
            request.ejector
        );
        let refusal = if self.estop_active()? {
            Some(Outcome::EmergencyStop)
        } else if request.fire_at.saturating_add(request.duration / 2) < now {
            Some(Outcome::Late)
        } else {
            None
        };
        if let Some(outcome) = refusal {
            return Ok(Some(PulseReport { request, outcome }));
        }
        self.push(request.fire_at, request.ejector, Action::Rise(request));
        Ok(None)
    }

    /// The pipeline is alive at `now`; clears a stall.
    pub fn heartbeat(&mut self, now: Timestamp) {
        self.last_heartbeat = Some(now);
        if self.stalled {
            tracing::info!("pipeline resumed; ejectors armed again");
            self.stalled = false;
        }
    }

    /// No more requests or heartbeats will come (the stream ended cleanly):
    /// pending pulses still fire, and the stall watchdog stands down.
    pub fn end_input(&mut self) {
        self.input_ended = true;
    }

    /// When [`EjectorBank::service`] must next be called.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let next_event = self.pending.peek().map(|Reverse(event)| event.at);
        let stall_check = match (self.last_heartbeat, self.stalled || self.input_ended) {
            (Some(heartbeat), false) => Some(heartbeat.saturating_add(self.stall_timeout)),
            _ => None,
        };
        match (next_event, stall_check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Applies everything due at `now`: interlocks first, then edges in time
    /// order. Returns the reports of pulses fired or dropped.
    pub fn service(&mut self, now: Timestamp) -> Result<Vec<PulseReport>, ActuateError> {
        let mut reports = Vec::new();
        if self.estop_active()? {
            self.drop_all(Outcome::EmergencyStop, &mut reports)?;
            return Ok(reports);
        }
        let stall = match self.last_heartbeat {
            Some(heartbeat) if !self.input_ended => {
                now.saturating_since(heartbeat) >= self.stall_timeout
            }
            _ => false,
        };
        if stall {
            if !self.stalled {
                tracing::warn!(
                    timeout_ms = self.stall_timeout.as_millis() as u64,
                    "pipeline stalled: ejector outputs driven low, pending pulses dropped"
                );
            }
            self.stalled = true;
            self.drop_all(Outcome::Stalled, &mut reports)?;
            return Ok(reports);
        }
        while let Some(Reverse(event)) = self.pending.peek().copied() {
            if event.at > now {
                break;
            }
            self.pending.pop();
            match event.action {
                Action::Rise(request) => {
                    self.rise(event.ejector, request, now)?;
                    reports.push(PulseReport {
                        request,
                        outcome: Outcome::Fired { actual: now },
                    });
                }
                Action::Fall => self.fall(event.ejector, now)?,
            }
        }
        Ok(reports)
    }

    /// Drives every output low and drops all pending pulses.
    pub fn safe_state(&mut self, outcome: Outcome) -> Result<Vec<PulseReport>, ActuateError> {
        let mut reports = Vec::new();
        self.drop_all(outcome, &mut reports)?;
        Ok(reports)
    }

    fn push(&mut self, at: Timestamp, ejector: usize, action: Action) {
        self.pending.push(Reverse(Event {
            at,
            order: self.next_order,
            ejector,
            action,
        }));
        self.next_order += 1;
    }

    fn rise(
        &mut self,
        ejector: usize,
        request: PulseRequest,
        now: Timestamp,
    ) -> Result<(), ActuateError> {
        let max_pulse = self.max_pulse;
        let output = &mut self.outputs[ejector];
        let since = *output.high_since.get_or_insert(now);
        let wanted = now.saturating_add(request.duration.min(max_pulse));
        output.high_until = output
            .high_until
            .max(wanted)
            .min(since.saturating_add(max_pulse));
        let until = output.high_until;
        if let Err(error) = output.pin.set_high() {
            let error = drive_error(output, error);
            self.all_low()?;
            return Err(error);
        }
        self.push(until, ejector, Action::Fall);
        Ok(())
    }

    fn fall(&mut self, ejector: usize, now: Timestamp) -> Result<(), ActuateError> {
        let output = &mut self.outputs[ejector];
        if output.high_since.is_some() && now >= output.high_until {
            output.high_since = None;
            output
                .pin
                .set_low()
                .map_err(|error| drive_error(output, error))?;
        }
        Ok(())
    }

    fn drop_all(
        &mut self,
        outcome: Outcome,
        reports: &mut Vec<PulseReport>,
    ) -> Result<(), ActuateError> {
        for Reverse(event) in self.pending.drain() {
            if let Action::Rise(request) = event.action {
                reports.push(PulseReport { request, outcome });
            }
        }
        reports.sort_by_key(|report| (report.request.fire_at, report.request.part_id));
        self.all_low()
    }

    /// Tries every output even when one fails, then reports the first failure.
    fn all_low(&mut self) -> Result<(), ActuateError> {
        let mut first_error = None;
        for output in &mut self.outputs {
            output.high_since = None;
            if let Err(error) = output.pin.set_low() {
                first_error.get_or_insert(drive_error(output, error));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn estop_active(&mut self) -> Result<bool, ActuateError> {
        let Some(estop) = self.estop.as_mut() else {
            return Ok(false);
        };
        match estop.is_high() {
            Ok(active) => Ok(active),
            Err(error) => {
                self.all_low()?;
                Err(ActuateError::ReadEstop {
                    reason: format!("{error:?}"),
                })
            }
        }
    }
}

impl<P: OutputPin, E: InputPin> Drop for EjectorBank<P, E> {
    fn drop(&mut self) {
        if let Err(error) = self.all_low() {
            tracing::error!(%error, "cannot drive ejectors low on shutdown");
        }
    }
}

fn drive_error<P: OutputPin>(output: &Output<P>, error: P::Error) -> ActuateError {
    ActuateError::DrivePin {
        lane: output.lane.clone(),
        pin: output.pin_number,
        reason: format!("{error:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use edgesort_types::{Clock, ManualClock};
    use proptest::prelude::*;

    use super::*;
    use crate::{Edge, SimulatedInput, SimulatedPin};

    const MS: u64 = 1_000_000;

    struct Rig {
        clock: ManualClock,
        pins: Vec<SimulatedPin>,
        estop: SimulatedInput,
        bank: EjectorBank<SimulatedPin, SimulatedInput>,
    }

    fn rig(ejectors: usize) -> Rig {
        let clock = ManualClock::new();
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let pins: Vec<_> = (0..ejectors)
            .map(|_| SimulatedPin::new(shared.clone()))
            .collect();
        let estop = SimulatedInput::new();
        let bank = EjectorBank::new(
            pins.iter()
                .enumerate()
                .map(|(i, pin)| (format!("lane{i}"), i as u32, pin.clone()))
                .collect(),
            Some(estop.clone()),
            Duration::from_millis(50),
            Duration::from_millis(100),
        )
        .unwrap();
        Rig {
            clock,
            pins,
            estop,
            bank,
        }
    }

    impl Rig {
        /// Services every deadline up to `until`, as the replay driver does.
        fn run_until(&mut self, until: u64) -> Vec<PulseReport> {
            let mut reports = Vec::new();
            while let Some(deadline) = self.bank.next_deadline().filter(|d| d.as_nanos() <= until) {
                self.clock.advance_to(deadline);
                reports.extend(self.bank.service(deadline).unwrap());
            }
            self.clock.advance_to(Timestamp::from_nanos(until));
            reports.extend(self.bank.service(Timestamp::from_nanos(until)).unwrap());
            reports
        }

        fn request(
            &mut self,
            part_id: u64,
            ejector: usize,
            at_ms: u64,
            ms: u64,
        ) -> Option<PulseReport> {
            let request = PulseRequest {
                part_id,
                ejector,
                fire_at: Timestamp::from_nanos(at_ms * MS),
                duration: Duration::from_millis(ms),
            };
            self.bank.schedule(request, self.clock.now()).unwrap()
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
    fn merged_pulses_never_exceed_the_maximum() {
        let mut rig = rig(1);
        rig.bank.end_input();
        for part in 0..5 {
            rig.request(part, 0, 10 + part * 15, 20);
        }
        rig.run_until(200 * MS);
        let edges = rig.pins[0].edges();
        for pair in edges.chunks(2) {
            assert!(pair[0].high && !pair[1].high);
            assert!(pair[1].at.saturating_since(pair[0].at) <= Duration::from_millis(50));
        }
    }

    #[test]
    fn estop_wins_over_everything() {
        let mut rig = rig(1);
        rig.bank.heartbeat(Timestamp::ZERO);
        rig.request(1, 0, 10, 40);
        rig.run_until(20 * MS);
        assert!(rig.pins[0].is_set_high());
        rig.estop.set(true);
        rig.request(2, 0, 60, 10);
        let reports = rig.run_until(21 * MS);
        assert!(!rig.pins[0].is_set_high());
        assert_eq!(rig.pins[0].edges(), [edge(10, true), edge(21, false)]);
        assert!(
            reports.is_empty(),
            "the new request was refused at schedule time"
        );
        assert_eq!(
            rig.request(3, 0, 70, 10).unwrap().outcome,
            Outcome::EmergencyStop
        );
        rig.bank.heartbeat(Timestamp::from_nanos(21 * MS));
        assert!(rig.run_until(90 * MS).is_empty());
        assert_eq!(rig.pins[0].edges().len(), 2);
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

    proptest! {
        #[test]
        fn outputs_always_end_low_and_pulses_stay_bounded(
            requests in prop::collection::vec((0usize..3, 0u64..500, 1u64..80), 0..40),
        ) {
            let mut rig = rig(3);
            rig.bank.end_input();
            for (part, &(ejector, at, length)) in requests.iter().enumerate() {
                rig.request(part as u64, ejector, at, length.min(50));
            }
            let reports = rig.run_until(1000 * MS);
            prop_assert_eq!(reports.len(), requests.len());
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
}
