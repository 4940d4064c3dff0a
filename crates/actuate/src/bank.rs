use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Duration;

use edgesort_types::{Clock, ManualClock, Timestamp};
use embedded_hal::digital::OutputPin;

use crate::belt::BeltMotion;
use crate::estop::{EstopLatch, EstopState, ResetDone, ResetRefused};
use crate::{ActuateError, EjectorSpec, Limits};

/// A pulse to fire for one part, planned by distance: the part's centre was
/// `distance_mm` upstream of the ejector at `seen_at`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PulseRequest {
    /// The part it is for.
    pub part_id: u64,
    /// Index of the ejector.
    pub ejector: usize,
    /// When the part was last seen.
    pub seen_at: Timestamp,
    /// How far it then was from the ejector, along the belt.
    pub distance_mm: f64,
    /// How long the output stays high.
    pub duration: Duration,
}

/// What became of a pulse request. Every request gets exactly one outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The output was driven high for the part at `actual` (or already was,
    /// for a pulse merged into its neighbour).
    Fired {
        /// When.
        actual: Timestamp,
    },
    /// The request came after its part had passed the ejector.
    Late,
    /// Dropped because the pipeline stalled.
    Stalled,
    /// Dropped or refused because the e-stop was active.
    EmergencyStop,
    /// Refused because the valve had used its duty cycle.
    DutyLimit,
    /// Refused because the scheduler's queue was full.
    QueueFull,
    /// Dropped because the ejectors were shut down first.
    Shutdown,
    /// Dropped or refused because the belt's position is unknown: the
    /// encoder gives no edges while the camera sees parts moving.
    NoBeltPosition,
}

impl Outcome {
    /// A short lower-case name for logs and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Fired { .. } => "fired",
            Outcome::Late => "late",
            Outcome::Stalled => "stalled",
            Outcome::EmergencyStop => "estop",
            Outcome::DutyLimit => "duty_limit",
            Outcome::QueueFull => "queue_full",
            Outcome::Shutdown => "shutdown",
            Outcome::NoBeltPosition => "no_belt_position",
        }
    }
}

/// The outcome of one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PulseReport {
    /// The request.
    pub request: PulseRequest,
    /// What happened to it.
    pub outcome: Outcome,
}

/// A queued rising edge, due when the belt reaches `target_mm`.
#[derive(Clone, Copy, Debug)]
struct Rise {
    target_mm: f64,
    order: u64,
    request: PulseRequest,
}

impl Ord for Rise {
    fn cmp(&self, other: &Self) -> Ordering {
        self.target_mm
            .total_cmp(&other.target_mm)
            .then(self.order.cmp(&other.order))
    }
}

impl PartialOrd for Rise {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Rise {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Rise {}

/// A falling edge due at `at` for the high period that began at `since`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Fall {
    at: Timestamp,
    ejector: usize,
    since: Timestamp,
}

/// Open-valve time a valve may still spend: refills at its duty share of
/// real time, up to one second's worth.
#[derive(Clone, Copy, Debug)]
struct DutyBudget {
    share: f64,
    available_ns: f64,
    updated: Timestamp,
}

impl DutyBudget {
    const WINDOW_NS: f64 = 1e9;

    fn new(share: f64) -> Self {
        DutyBudget {
            share,
            available_ns: share * Self::WINDOW_NS,
            updated: Timestamp::ZERO,
        }
    }

    fn take(&mut self, on_time: Duration, now: Timestamp) -> bool {
        let refill = now.saturating_since(self.updated).as_nanos() as f64 * self.share;
        self.available_ns = (self.available_ns + refill).min(self.share * Self::WINDOW_NS);
        self.updated = self.updated.max(now);
        let wanted = on_time.as_nanos() as f64;
        if wanted > self.available_ns {
            return false;
        }
        self.available_ns -= wanted;
        true
    }

    fn refund(&mut self, unused: Duration) {
        self.available_ns =
            (self.available_ns + unused.as_nanos() as f64).min(self.share * Self::WINDOW_NS);
    }
}

struct Output<P> {
    spec: EjectorSpec,
    pin: P,
    high_since: Option<Timestamp>,
    high_until: Timestamp,
    duty: DutyBudget,
    /// Times driven from low to high; fewer than pulses fired when pulses merge.
    activations: u64,
}

/// Ejector outputs and their pulse queue: a state machine driven with the
/// current time, free of threads and clocks, so that replays and tests drive
/// it deterministically and [`crate::EjectorScheduler`] drives it live.
/// Dropping the bank drives every output low.
pub struct EjectorBank<P: OutputPin> {
    outputs: Vec<Output<P>>,
    limits: Limits,
    rises: BinaryHeap<Reverse<Rise>>,
    falls: BinaryHeap<Reverse<Fall>>,
    next_order: u64,
    estop: EstopLatch,
    last_heartbeat: Option<Timestamp>,
    stalled: bool,
    /// Set by [`EjectorBank::hold`]: the pipeline is known to be down, so no
    /// edge waits for the stall timeout to find out.
    held: bool,
    input_ended: bool,
    /// The belt's position is unknown (a silent encoder): pulses cannot be
    /// timed, so none is kept or accepted.
    belt_lost: bool,
}

impl<P: OutputPin> EjectorBank<P> {
    /// Takes the outputs and drives them all low.
    pub fn new(outputs: Vec<(EjectorSpec, P)>, limits: Limits) -> Result<Self, ActuateError> {
        let mut bank = EjectorBank {
            outputs: outputs
                .into_iter()
                .map(|(spec, pin)| Output {
                    duty: DutyBudget::new(spec.max_duty),
                    spec,
                    pin,
                    high_since: None,
                    high_until: Timestamp::ZERO,
                    activations: 0,
                })
                .collect(),
            estop: EstopLatch::new(limits.estop_debounce),
            limits,
            rises: BinaryHeap::new(),
            falls: BinaryHeap::new(),
            next_order: 0,
            last_heartbeat: None,
            stalled: false,
            held: false,
            input_ended: false,
            belt_lost: false,
        };
        bank.all_low()?;
        Ok(bank)
    }

    /// Number of outputs.
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    /// Whether the bank has no outputs.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// Whether any output is high.
    pub fn any_high(&self) -> bool {
        self.outputs
            .iter()
            .any(|output| output.high_since.is_some())
    }

    /// Whether output `ejector` is high.
    pub fn is_high(&self, ejector: usize) -> bool {
        self.outputs[ejector].high_since.is_some()
    }

    /// How many times output `ejector` has been driven from low to high:
    /// one per pulse fired, less one per pulse merged into its neighbour.
    pub fn activations(&self, ejector: usize) -> u64 {
        self.outputs[ejector].activations
    }

    /// Bit `i` set when output `i` is high (the first 64 outputs).
    pub fn high_mask(&self) -> u64 {
        self.outputs
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, output)| output.high_since.is_some())
            .fold(0, |mask, (index, _)| mask | 1 << index)
    }

    /// Pulses queued and not yet fired.
    pub fn pending_pulses(&self) -> usize {
        self.rises.len()
    }

    /// Whether the e-stop holds the outputs low.
    pub fn estop_tripped(&self) -> bool {
        self.estop.tripped()
    }

    /// Where the e-stop latch stands.
    pub fn estop_state(&self) -> EstopState {
        self.estop.state()
    }

    /// Whether an unreadable e-stop input tripped the latch (or the input
    /// cannot be read now).
    pub fn estop_input_fault(&self) -> bool {
        self.estop.input_fault()
    }

    /// Queues `request`, or returns its report at once when it is refused:
    /// the e-stop holds, or the part passed the ejector more than half a
    /// pulse ago. A request a little late fires at the next service.
    pub fn schedule(
        &mut self,
        request: PulseRequest,
        now: Timestamp,
        belt: &BeltMotion,
    ) -> Option<PulseReport> {
        assert!(
            request.ejector < self.outputs.len(),
            "no ejector {}",
            request.ejector
        );
        let target_mm = belt.position_at(request.seen_at) + request.distance_mm;
        let late = belt
            .time_at(target_mm, now)
            .is_some_and(|due| due.saturating_add(request.duration / 2) < now);
        let refusal = if self.estop.tripped() {
            Some(Outcome::EmergencyStop)
        } else if self.belt_lost {
            Some(Outcome::NoBeltPosition)
        } else if late {
            Some(Outcome::Late)
        } else {
            None
        };
        if let Some(outcome) = refusal {
            return Some(PulseReport { request, outcome });
        }
        self.rises.push(Reverse(Rise {
            target_mm,
            order: self.next_order,
            request,
        }));
        self.next_order += 1;
        None
    }

    /// The pipeline is alive at `now`; clears a stall and a hold.
    pub fn heartbeat(&mut self, now: Timestamp) {
        self.last_heartbeat = Some(now);
        self.held = false;
        if self.stalled {
            tracing::info!("pipeline resumed; ejectors armed again");
            self.stalled = false;
        }
    }

    /// The pipeline is down (a stage failed): drives every output low and
    /// drops every pending pulse now rather than at the stall timeout, and
    /// drops whatever is scheduled until the next heartbeat.
    pub fn hold(&mut self, now: Timestamp) -> Result<Vec<PulseReport>, ActuateError> {
        if !self.held {
            tracing::warn!("pipeline down: ejector outputs driven low, pending pulses dropped");
        }
        self.held = true;
        self.stalled = true;
        self.safe_state(Outcome::Stalled, now)
    }

    /// No more requests or heartbeats will come (the stream ended cleanly):
    /// pending pulses still fire, and the stall watchdog stands down.
    pub fn end_input(&mut self) {
        self.input_ended = true;
    }

    /// The e-stop input changed at `at`. Going active drives every output
    /// low and drops every pending pulse at once; the returned reports say so.
    pub fn estop_edge(
        &mut self,
        active: bool,
        at: Timestamp,
    ) -> Result<Vec<PulseReport>, ActuateError> {
        let mut reports = Vec::new();
        if self.estop.edge(active, at) {
            tracing::warn!("e-stop pressed: ejector outputs driven low, pending pulses dropped");
            self.drop_all(Outcome::EmergencyStop, at, &mut reports)?;
        }
        Ok(reports)
    }

    /// The e-stop input could not be read at `at`: it counts as pressed,
    /// with the same effect as a press.
    pub fn estop_fault(&mut self, at: Timestamp) -> Result<Vec<PulseReport>, ActuateError> {
        let mut reports = Vec::new();
        if self.estop.fault(at) {
            tracing::error!(
                "e-stop input unreadable: ejector outputs driven low, pending pulses dropped"
            );
            self.drop_all(Outcome::EmergencyStop, at, &mut reports)?;
        }
        Ok(reports)
    }

    /// Re-arms after an e-stop once its input has been released and has
    /// settled.
    pub fn reset_estop(&mut self, now: Timestamp) -> Result<ResetDone, ResetRefused> {
        let done = self.estop.reset(now)?;
        if done == ResetDone::Rearmed {
            tracing::info!("e-stop reset; ejectors armed again");
        }
        Ok(done)
    }

    /// Whether the belt's position is known. While it is not (an encoder
    /// that has gone silent while parts move), every pending pulse is
    /// dropped and new ones are refused, as `no_belt_position`: a pulse timed
    /// on a guessed position could knock the wrong part.
    pub fn set_belt_lost(&mut self, lost: bool) -> Vec<PulseReport> {
        let mut reports = Vec::new();
        if lost && !self.belt_lost {
            tracing::error!("belt position lost: pending pulses dropped");
            reports.extend(self.rises.drain().map(|Reverse(rise)| PulseReport {
                request: rise.request,
                outcome: Outcome::NoBeltPosition,
            }));
            reports.sort_by_key(|report| report.request.part_id);
        } else if !lost && self.belt_lost {
            tracing::info!("belt position known again; pulses accepted");
        }
        self.belt_lost = lost;
        reports
    }

    /// When [`EjectorBank::service`] must next be called, as the belt
    /// predicts at `now`.
    pub fn next_deadline(&self, now: Timestamp, belt: &BeltMotion) -> Option<Timestamp> {
        if self.estop.tripped() {
            // Nothing is pending and nothing may fire until a reset.
            return None;
        }
        let rise = self
            .rises
            .peek()
            .and_then(|Reverse(rise)| belt.time_at(rise.target_mm, now));
        let fall = self.falls.peek().map(|Reverse(fall)| fall.at);
        let stall = match self.last_heartbeat {
            Some(heartbeat) if !self.stalled && !self.input_ended => {
                Some(heartbeat.saturating_add(self.limits.stall_timeout))
            }
            _ => None,
        };
        [rise, fall, stall].into_iter().flatten().min()
    }

    /// Applies everything due at `now`: the stall watchdog first, then edges
    /// in time order. Returns the reports of pulses fired or dropped.
    pub fn service(
        &mut self,
        now: Timestamp,
        belt: &BeltMotion,
    ) -> Result<Vec<PulseReport>, ActuateError> {
        let mut reports = Vec::new();
        if self.estop.tripped() {
            return Ok(reports);
        }
        let stall = self.held
            || match self.last_heartbeat {
                Some(heartbeat) if !self.input_ended => {
                    now.saturating_since(heartbeat) >= self.limits.stall_timeout
                }
                _ => false,
            };
        if stall {
            if !self.stalled {
                tracing::warn!(
                    timeout_ms = self.limits.stall_timeout.as_millis() as u64,
                    "pipeline stalled: ejector outputs driven low, pending pulses dropped"
                );
            }
            self.stalled = true;
            self.drop_all(Outcome::Stalled, now, &mut reports)?;
            return Ok(reports);
        }
        loop {
            let rise_due = self
                .rises
                .peek()
                .and_then(|Reverse(rise)| belt.time_at(rise.target_mm, now))
                .filter(|due| *due <= now);
            let fall_due = self
                .falls
                .peek()
                .map(|Reverse(fall)| fall.at)
                .filter(|due| *due <= now);
            // A rise goes first on a tie, so that a bridged fall finds the
            // valve's next pulse already fired.
            let take_rise = match (rise_due, fall_due) {
                (None, None) => break,
                (Some(rise), Some(fall)) => rise <= fall,
                (rise, _) => rise.is_some(),
            };
            if take_rise {
                let Some(Reverse(rise)) = self.rises.pop() else {
                    break;
                };
                let outcome = self.rise(rise.request, now)?;
                reports.push(PulseReport {
                    request: rise.request,
                    outcome,
                });
            } else {
                let Some(Reverse(fall)) = self.falls.pop() else {
                    break;
                };
                self.fall(fall, now, belt)?;
            }
        }
        Ok(reports)
    }

    /// Replays time up to `until` on a manual clock: services every deadline
    /// on the way at its own instant, so edges land exactly when planned
    /// whatever the machine's speed.
    pub fn advance_to(
        &mut self,
        clock: &ManualClock,
        until: Timestamp,
        belt: &BeltMotion,
    ) -> Result<Vec<PulseReport>, ActuateError> {
        let mut reports = Vec::new();
        while let Some(deadline) = self
            .next_deadline(clock.now(), belt)
            .filter(|deadline| *deadline <= until)
        {
            clock.advance_to(deadline);
            reports.extend(self.service(deadline, belt)?);
        }
        clock.advance_to(until);
        reports.extend(self.service(until, belt)?);
        Ok(reports)
    }

    /// Drives every output low and drops all pending pulses.
    pub fn safe_state(
        &mut self,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<Vec<PulseReport>, ActuateError> {
        let mut reports = Vec::new();
        self.drop_all(outcome, now, &mut reports)?;
        Ok(reports)
    }

    fn rise(&mut self, request: PulseRequest, now: Timestamp) -> Result<Outcome, ActuateError> {
        let max_pulse = self.limits.max_pulse;
        let output = &mut self.outputs[request.ejector];
        let since = output.high_since.unwrap_or(now);
        let until = now
            .saturating_add(request.duration.min(max_pulse))
            .min(since.saturating_add(max_pulse));
        let extension = until.saturating_since(output.high_until.max(now));
        if output.high_since.is_none() || !extension.is_zero() {
            let on_time = if output.high_since.is_none() {
                until.saturating_since(now)
            } else {
                extension
            };
            if !output.duty.take(on_time, now) {
                tracing::warn!(
                    part = request.part_id,
                    lane = %output.spec.lane,
                    "pulse refused: the valve has used its duty cycle"
                );
                return Ok(Outcome::DutyLimit);
            }
        }
        if output.high_since.is_none() {
            if let Err(error) = output.pin.set_high() {
                let error = drive_error(output, error);
                self.all_low()?;
                return Err(error);
            }
            output.high_since = Some(now);
            output.high_until = until;
            output.activations += 1;
            // The hard limit: whatever merges follow, this period ends here.
            self.falls.push(Reverse(Fall {
                at: now.saturating_add(max_pulse),
                ejector: request.ejector,
                since: now,
            }));
        } else {
            output.high_until = output.high_until.max(until);
        }
        let fall = Fall {
            at: self.outputs[request.ejector].high_until,
            ejector: request.ejector,
            since,
        };
        self.falls.push(Reverse(fall));
        Ok(Outcome::Fired { actual: now })
    }

    fn fall(&mut self, fall: Fall, now: Timestamp, belt: &BeltMotion) -> Result<(), ActuateError> {
        let max_pulse = self.limits.max_pulse;
        let min_gap = self.limits.min_gap;
        let output = &self.outputs[fall.ejector];
        if output.high_since != Some(fall.since) {
            return Ok(());
        }
        let hard_limit = fall.since.saturating_add(max_pulse);
        if now < hard_limit {
            if now < output.high_until {
                return Ok(());
            }
            // A pulse for this valve due within the re-arm gap is merged:
            // the valve stays open until it, if the maximum allows.
            let bridge = self
                .rises
                .iter()
                .filter(|Reverse(rise)| rise.request.ejector == fall.ejector)
                .filter_map(|Reverse(rise)| belt.time_at(rise.target_mm, now))
                .min()
                .filter(|due| due.saturating_since(now) < min_gap && *due < hard_limit);
            if let Some(due) = bridge {
                self.falls.push(Reverse(Fall { at: due, ..fall }));
                return Ok(());
            }
        }
        let output = &mut self.outputs[fall.ejector];
        output.high_since = None;
        output
            .pin
            .set_low()
            .map_err(|error| drive_error(output, error))
    }

    fn drop_all(
        &mut self,
        outcome: Outcome,
        now: Timestamp,
        reports: &mut Vec<PulseReport>,
    ) -> Result<(), ActuateError> {
        // A pulse cut short gives its valve back the time it did not use.
        for output in &mut self.outputs {
            if output.high_since.is_some() {
                output.duty.refund(output.high_until.saturating_since(now));
            }
        }
        let first = reports.len();
        reports.extend(self.rises.drain().map(|Reverse(rise)| PulseReport {
            request: rise.request,
            outcome,
        }));
        reports[first..].sort_by_key(|report| report.request.part_id);
        self.falls.clear();
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
}

impl<P: OutputPin> Drop for EjectorBank<P> {
    fn drop(&mut self) {
        if let Err(error) = self.all_low() {
            tracing::error!(%error, "cannot drive ejectors low on shutdown");
        }
    }
}

fn drive_error<P: OutputPin>(output: &Output<P>, error: P::Error) -> ActuateError {
    ActuateError::DrivePin {
        lane: output.spec.lane.clone(),
        pin: output.spec.pin,
        reason: format!("{error:?}"),
    }
}

#[cfg(test)]
mod tests;
