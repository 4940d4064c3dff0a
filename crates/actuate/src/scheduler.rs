use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use edgesort_types::{Clock, Timestamp};
use embedded_hal::digital::OutputPin;

use crate::belt::BeltMotion;
use crate::estop::ResetRefused;
use crate::inputs::{EdgeInput, watch_encoder, watch_estop};
use crate::realtime::{RealtimeStatus, make_realtime, set_fifo};
use crate::wakeup::{Wakeup, no_timer_slack};
use crate::{ActuateError, EjectorBank, Outcome, PulseReport, PulseRequest};

/// With nothing due, the thread still wakes this often.
const IDLE_WAKE: Duration = Duration::from_millis(50);

/// Reports held for the pipeline at most; a slower reader loses the excess,
/// with a log line for each, and never holds up an edge.
const REPORT_QUEUE: usize = 8192;

/// How the ejector thread runs.
#[derive(Clone, Copy, Debug)]
pub struct SchedulerOptions {
    /// `SCHED_FIFO` priority; 0 for an ordinary thread.
    pub realtime_priority: u8,
    /// The last stretch before an edge is spun rather than slept.
    pub spin: Duration,
    /// Requests and heartbeats queued at most.
    pub queue: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            realtime_priority: 0,
            spin: Duration::from_micros(200),
            queue: 1024,
        }
    }
}

enum Command {
    Schedule(PulseRequest),
    Heartbeat(Timestamp),
    Hold,
    EndInput,
    ResetEstop(SyncSender<Result<(), ResetRefused>>),
    Finish,
}

#[derive(Clone, Copy, Default)]
struct EstopLevel {
    active: bool,
    changed_at: Timestamp,
    trips: u64,
}

/// What the input watchers and the handle share with the ejector thread.
pub(crate) struct Shared {
    pub(crate) belt: Mutex<BeltMotion>,
    estop: Mutex<EstopLevel>,
    estop_generation: AtomicU64,
    wakeup: Wakeup,
    pub(crate) stop: AtomicBool,
    abort: AtomicBool,
    fault: Mutex<Option<ActuateError>>,
    /// Which outputs are high, for status displays.
    outputs_high: AtomicU64,
    /// Each output's activations, for status displays.
    activations: Vec<AtomicU64>,
}

impl Shared {
    /// The e-stop input changed: the ejector thread acts on it at once.
    pub(crate) fn estop_edge(&self, active: bool, at: Timestamp) {
        {
            let mut level = lock(&self.estop);
            level.active = active;
            level.changed_at = at;
            if active {
                level.trips += 1;
            }
        }
        self.estop_generation.fetch_add(1, Ordering::SeqCst);
        self.wake();
    }

    /// Asks the ejector thread to look again.
    pub(crate) fn wake(&self) {
        self.wakeup.notify();
    }
}

/// An [`EjectorBank`] fired by a thread of its own at absolute deadlines on
/// the clock: it sleeps until shortly before each edge and spins the rest.
///
/// The pipeline only queues requests and heartbeats through a bounded
/// queue, and never waits for the thread; the thread never waits for the
/// pipeline. Inputs (e-stop, encoder) are watched by threads of their own
/// that wake it. Dropped without [`EjectorScheduler::finish`], it drives every
/// output low and drops what is pending.
pub struct EjectorScheduler {
    commands: SyncSender<Command>,
    /// Behind a lock so the handle can be shared between the pipeline's
    /// stages and its control plane.
    reports: Mutex<Receiver<PulseReport>>,
    /// Requests the full queue turned away, reported by the handle itself.
    refused: Mutex<Vec<PulseReport>>,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    thread: Option<JoinHandle<()>>,
    watchers: Vec<JoinHandle<()>>,
    realtime: RealtimeStatus,
    /// Input watchers run one step below the ejector thread: an e-stop edge
    /// must reach it ahead of ordinary work.
    watcher_priority: u8,
}

impl EjectorScheduler {
    /// Starts the ejector thread.
    pub fn spawn<P: OutputPin + Send + 'static>(
        bank: EjectorBank<P>,
        belt: BeltMotion,
        clock: Arc<dyn Clock>,
        options: SchedulerOptions,
    ) -> Self {
        let (commands, inbox) = std::sync::mpsc::sync_channel(options.queue);
        let (report_sender, reports) = std::sync::mpsc::sync_channel(REPORT_QUEUE);
        let shared = Arc::new(Shared {
            belt: Mutex::new(belt),
            estop: Mutex::default(),
            estop_generation: AtomicU64::new(0),
            wakeup: Wakeup::new().expect("creating the ejector thread's eventfd"),
            stop: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            fault: Mutex::new(None),
            outputs_high: AtomicU64::new(0),
            activations: (0..bank.len()).map(|_| AtomicU64::new(0)).collect(),
        });
        let (status_sender, status) = std::sync::mpsc::sync_channel(1);
        let thread_shared = shared.clone();
        let thread_clock = clock.clone();
        let thread = std::thread::Builder::new()
            .name("ejectors".into())
            .spawn(move || {
                no_timer_slack();
                let _ = status_sender.send(make_realtime(options.realtime_priority));
                let mut worker = Worker {
                    bank,
                    inbox,
                    reports: report_sender,
                    shared: thread_shared,
                    clock: thread_clock,
                    spin: options.spin,
                    estop_generation: 0,
                    trips_seen: 0,
                    finishing: false,
                };
                worker.run();
            })
            .expect("spawning the ejector thread");
        let realtime = status.recv().unwrap_or(RealtimeStatus {
            fifo: Err("the ejector thread ended at once".into()),
            memory_locked: Err("the ejector thread ended at once".into()),
        });
        EjectorScheduler {
            commands,
            reports: Mutex::new(reports),
            refused: Mutex::new(Vec::new()),
            shared,
            clock,
            thread: Some(thread),
            watchers: Vec::new(),
            realtime,
            watcher_priority: options.realtime_priority.saturating_sub(1),
        }
    }

    /// The real-time setup the thread got.
    pub fn realtime(&self) -> &RealtimeStatus {
        &self.realtime
    }

    /// Watches an e-stop input: its first active edge drives every output low.
    /// The level when this is called counts as an edge, so a box started with
    /// the e-stop pressed starts stopped, and refuses any pulse queued after.
    pub fn watch_estop<I: EdgeInput>(&mut self, mut input: I) {
        // Read here, not on the watcher thread: a pulse queued right after
        // this call must already find a pressed e-stop.
        let active = input.is_high().unwrap_or_else(|error| {
            tracing::error!(?error, "cannot read the e-stop input: treated as pressed");
            true
        });
        self.shared.estop_edge(active, self.clock.now());
        let shared = self.shared.clone();
        let clock = self.clock.clone();
        let priority = self.watcher_priority;
        self.watchers.push(
            std::thread::Builder::new()
                .name("estop".into())
                .spawn(move || {
                    let _ = set_fifo(priority);
                    watch_estop(input, &shared, clock.as_ref())
                })
                .expect("spawning the e-stop thread"),
        );
    }

    /// Watches a belt encoder: each rising edge is belt travel.
    pub fn watch_encoder<I: EdgeInput>(&mut self, input: I) {
        let shared = self.shared.clone();
        let priority = self.watcher_priority;
        self.watchers.push(
            std::thread::Builder::new()
                .name("encoder".into())
                .spawn(move || {
                    let _ = set_fifo(priority);
                    watch_encoder(input, &shared)
                })
                .expect("spawning the encoder thread"),
        );
    }

    /// Queues a pulse. A refusal comes back through [`EjectorScheduler::take_reports`];
    /// a fault of the ejector thread comes back here.
    pub fn schedule(&self, request: PulseRequest) -> Result<(), ActuateError> {
        if let Some(error) = lock(&self.shared.fault).take() {
            return Err(error);
        }
        let sent = self.commands.try_send(Command::Schedule(request));
        self.shared.wake();
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = sent {
            tracing::error!(part = request.part_id, "ejector queue full: pulse refused");
            lock(&self.refused).push(PulseReport {
                request,
                outcome: Outcome::QueueFull,
            });
        }
        Ok(())
    }

    /// The pipeline is alive. A full queue is already proof of life.
    pub fn heartbeat(&self) {
        let _ = self.commands.try_send(Command::Heartbeat(self.clock.now()));
        self.shared.wake();
    }

    /// The pipeline is down: outputs low and pending pulses dropped now, and
    /// every pulse scheduled before the next heartbeat dropped too. Unlike a
    /// heartbeat this must not be lost, so it waits for room in the queue.
    pub fn hold(&self) {
        let _ = self.commands.send(Command::Hold);
        self.shared.wake();
    }

    /// No more parts will come (a replay ended) but the thread stays up for
    /// manual pulses: pending pulses still fire, and the stall watchdog
    /// stands down.
    pub fn end_input(&self) {
        let _ = self.commands.send(Command::EndInput);
        self.shared.wake();
    }

    /// Whether the e-stop input is active now.
    pub fn estop_active(&self) -> bool {
        lock(&self.shared.estop).active
    }

    /// Times each output has been driven from low to high, at the thread's
    /// last step.
    pub fn activations(&self) -> Vec<u64> {
        self.shared
            .activations
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }

    /// Bit `i` set when output `i` was high at the thread's last step.
    pub fn outputs_high(&self) -> u64 {
        self.shared.outputs_high.load(Ordering::Relaxed)
    }

    /// Re-arms after an e-stop, once its input is released and settled.
    pub fn reset_estop(&self) -> Result<(), ResetRefused> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        if self.commands.send(Command::ResetEstop(reply)).is_err() {
            return Err(ResetRefused::StillPressed);
        }
        self.shared.wake();
        answer.recv().unwrap_or(Err(ResetRefused::StillPressed))
    }

    /// The belt's speed now, mm/s.
    pub fn belt_speed_mm_s(&self) -> f64 {
        lock(&self.shared.belt).speed_mm_s(self.clock.now())
    }

    /// Reports gathered since the last call.
    pub fn take_reports(&self) -> Vec<PulseReport> {
        let mut reports = std::mem::take(&mut *lock(&self.refused));
        reports.extend(lock(&self.reports).try_iter());
        reports
    }

    /// Ends input, waits for pending pulses to fire, stops the threads and
    /// returns the last reports. Outputs are low afterwards.
    pub fn finish(mut self) -> Result<Vec<PulseReport>, ActuateError> {
        let _ = self.commands.send(Command::Finish);
        self.shared.wake();
        self.join();
        let reports = self.take_reports();
        match lock(&self.shared.fault).take() {
            Some(error) => Err(error),
            None => Ok(reports),
        }
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the ejector thread panicked");
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        for watcher in self.watchers.drain(..) {
            let _ = watcher.join();
        }
    }
}

impl Drop for EjectorScheduler {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shared.abort.store(true, Ordering::SeqCst);
            self.shared.wake();
            self.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A watcher that panicked holding the lock left consistent data behind:
    // every critical section is a handful of plain stores.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Worker<P: OutputPin> {
    bank: EjectorBank<P>,
    inbox: Receiver<Command>,
    reports: SyncSender<PulseReport>,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    spin: Duration,
    estop_generation: u64,
    trips_seen: u64,
    finishing: bool,
}

impl<P: OutputPin> Worker<P> {
    fn run(&mut self) {
        loop {
            self.apply_estop();
            while let Ok(command) = self.inbox.try_recv() {
                self.handle(command);
                self.apply_estop();
            }
            if self.shared.abort.load(Ordering::SeqCst) {
                let reports = self.bank.safe_state(Outcome::Shutdown, self.clock.now());
                self.emit(reports);
                return;
            }
            let now = self.clock.now();
            let deadline = {
                let belt = lock(&self.shared.belt);
                let reports = self.bank.service(now, &belt);
                let deadline = self.bank.next_deadline(now, &belt);
                drop(belt);
                self.emit(reports);
                deadline
            };
            self.publish_outputs();
            if self.finishing && self.bank.pending_pulses() == 0 && !self.bank.any_high() {
                return;
            }
            self.wait_until(deadline);
        }
    }

    fn publish_outputs(&self) {
        self.shared
            .outputs_high
            .store(self.bank.high_mask(), Ordering::Relaxed);
        for (ejector, count) in self.shared.activations.iter().enumerate() {
            count.store(self.bank.activations(ejector), Ordering::Relaxed);
        }
    }

    fn wait_until(&mut self, deadline: Option<Timestamp>) {
        let now = self.clock.now();
        let left = deadline.map(|deadline| deadline.saturating_since(now));
        match left {
            Some(left) if left.is_zero() => {}
            Some(left) if left <= self.spin => {
                let deadline = deadline.unwrap_or(now);
                let generation = self.shared.estop_generation.load(Ordering::SeqCst);
                while self.clock.now() < deadline
                    && self.shared.estop_generation.load(Ordering::SeqCst) == generation
                {
                    std::hint::spin_loop();
                }
            }
            _ => {
                let sleep = left.map_or(IDLE_WAKE, |left| (left - self.spin).min(IDLE_WAKE));
                self.shared.wakeup.wait(sleep);
            }
        }
    }

    fn handle(&mut self, command: Command) {
        let now = self.clock.now();
        match command {
            Command::Schedule(request) => {
                let belt = lock(&self.shared.belt);
                let report = self.bank.schedule(request, now, &belt);
                drop(belt);
                self.emit(Ok(report.into_iter().collect()));
            }
            Command::Heartbeat(at) => self.bank.heartbeat(at),
            Command::Hold => {
                let reports = self.bank.hold(now);
                self.emit(reports);
            }
            Command::EndInput => self.bank.end_input(),
            Command::ResetEstop(reply) => {
                self.apply_estop();
                let _ = reply.send(self.bank.reset_estop(now));
            }
            Command::Finish => {
                self.bank.end_input();
                self.finishing = true;
            }
        }
    }

    fn apply_estop(&mut self) {
        let generation = self.shared.estop_generation.load(Ordering::SeqCst);
        if generation == self.estop_generation {
            return;
        }
        self.estop_generation = generation;
        let level = *lock(&self.shared.estop);
        if level.trips != self.trips_seen {
            self.trips_seen = level.trips;
            let reports = self.bank.estop_edge(true, level.changed_at);
            self.emit(reports);
        }
        let reports = self.bank.estop_edge(level.active, level.changed_at);
        self.emit(reports);
    }

    fn emit(&mut self, reports: Result<Vec<PulseReport>, ActuateError>) {
        match reports {
            Ok(reports) => {
                for report in reports {
                    if self.reports.try_send(report).is_err() {
                        tracing::error!(
                            part = report.request.part_id,
                            outcome = report.outcome.as_str(),
                            "report queue full: this pulse's report is lost"
                        );
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "ejector fault: outputs driven low");
                lock(&self.shared.fault).get_or_insert(error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use edgesort_types::MonotonicClock;

    use super::*;
    use crate::{Limits, SimulatedInput, SimulatedPin};

    fn scheduler(
        pins: &[SimulatedPin],
        clock: &Arc<dyn Clock>,
        stall: Duration,
    ) -> EjectorScheduler {
        let limits = Limits {
            max_pulse: Duration::from_millis(200),
            min_gap: Duration::from_millis(1),
            stall_timeout: stall,
            estop_debounce: Duration::from_millis(30),
        };
        EjectorScheduler::spawn(
            crate::simulated_bank(pins, limits).unwrap(),
            BeltMotion::Constant { mm_per_s: 1000.0 },
            clock.clone(),
            SchedulerOptions::default(),
        )
    }

    fn request(
        part_id: u64,
        ejector: usize,
        clock: &Arc<dyn Clock>,
        ahead_ms: f64,
        ms: u64,
    ) -> PulseRequest {
        PulseRequest {
            part_id,
            ejector,
            seen_at: clock.now(),
            distance_mm: ahead_ms,
            duration: Duration::from_millis(ms),
        }
    }

    /// Waits (without a time limit that could fail a slow machine's run
    /// early: ten seconds) until `condition` holds.
    fn eventually(condition: impl Fn() -> bool) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < give_up, "condition never held");
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    #[test]
    fn pulses_fire_no_earlier_than_planned_and_finish_drains() {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
        let pin = SimulatedPin::new(clock.clone());
        let ejectors = scheduler(std::slice::from_ref(&pin), &clock, Duration::from_secs(5));
        let planned = clock.now().saturating_add(Duration::from_millis(20));
        ejectors.heartbeat();
        ejectors.schedule(request(9, 0, &clock, 20.0, 5)).unwrap();
        let reports = ejectors.finish().unwrap();
        assert_eq!(reports.len(), 1);
        assert!(matches!(reports[0].outcome, Outcome::Fired { .. }));
        let edges = pin.edges();
        assert_eq!(edges.len(), 2);
        assert!(edges[0].high && !edges[1].high);
        assert!(
            edges[0].at >= planned,
            "{:?} before {planned:?}",
            edges[0].at
        );
        // The pulse's length runs from when the thread drove it high.
        let Outcome::Fired { actual } = reports[0].outcome else {
            unreachable!()
        };
        assert!(edges[1].at >= actual.saturating_add(Duration::from_millis(5)));
        assert!(!pin.is_set_high());
    }

    /// Issue 7: an e-stop edge drives every output low at once, without
    /// waiting for the pulse's end, and pulses stay refused until the input
    /// is released, settled and reset.
    #[test]
    fn estop_edge_drops_outputs_and_blocks_until_reset() {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
        let pins = [
            SimulatedPin::new(clock.clone()),
            SimulatedPin::new(clock.clone()),
        ];
        let mut ejectors = scheduler(&pins, &clock, Duration::from_secs(5));
        let estop = SimulatedInput::new(clock.clone());
        ejectors.watch_estop(estop.clone());
        ejectors.heartbeat();
        ejectors.schedule(request(1, 0, &clock, 1.0, 150)).unwrap();
        ejectors.schedule(request(2, 1, &clock, 1.0, 150)).unwrap();
        ejectors
            .schedule(request(3, 1, &clock, 5000.0, 10))
            .unwrap();
        eventually(|| pins.iter().all(SimulatedPin::is_set_high));
        let pressed = estop.set(true);
        eventually(|| pins.iter().all(|pin| !pin.is_set_high()));
        for pin in &pins {
            let fall = pin.edges()[1];
            assert!(!fall.high && fall.at >= pressed);
            // Long before the 150 ms pulse would have ended.
            assert!(fall.at.saturating_since(pin.edges()[0].at) < Duration::from_millis(150));
        }
        ejectors.schedule(request(4, 0, &clock, 5.0, 10)).unwrap();
        assert_eq!(ejectors.reset_estop(), Err(ResetRefused::StillPressed));
        let released = estop.set(false);
        // The release reaches the ejector thread through the watcher; then
        // resets are refused until it has settled for the debounce time.
        loop {
            match ejectors.reset_estop() {
                Ok(()) => break,
                Err(ResetRefused::StillPressed | ResetRefused::NotSettled { .. }) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        assert!(clock.now().saturating_since(released) >= Duration::from_millis(30));
        ejectors.heartbeat();
        ejectors.schedule(request(5, 0, &clock, 2.0, 5)).unwrap();
        let mut reports = ejectors.finish().unwrap();
        reports.sort_by_key(|report| report.request.part_id);
        let outcomes: Vec<_> = reports.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(outcomes, ["fired", "fired", "estop", "estop", "fired"]);
        assert_eq!(pins[0].edges().len(), 4);
    }

    /// A pulse queued right after the e-stop is attached, while it is pressed,
    /// never reaches the output.
    #[test]
    fn a_pressed_estop_refuses_the_first_pulse() {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
        let pin = SimulatedPin::new(clock.clone());
        let mut ejectors = scheduler(std::slice::from_ref(&pin), &clock, Duration::from_secs(5));
        let estop = SimulatedInput::new(clock.clone());
        estop.set(true);
        ejectors.watch_estop(estop);
        ejectors.heartbeat();
        ejectors.schedule(request(1, 0, &clock, 0.0, 20)).unwrap();
        let reports = ejectors.finish().unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].outcome, Outcome::EmergencyStop);
        assert!(pin.edges().is_empty(), "{:?}", pin.edges());
    }

    #[test]
    fn the_watchdog_drives_outputs_low_when_heartbeats_stop() {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
        let pin = SimulatedPin::new(clock.clone());
        let ejectors = scheduler(
            std::slice::from_ref(&pin),
            &clock,
            Duration::from_millis(50),
        );
        let last_heartbeat = clock.now();
        ejectors.heartbeat();
        ejectors.schedule(request(1, 0, &clock, 1.0, 190)).unwrap();
        eventually(|| pin.is_set_high());
        eventually(|| !pin.is_set_high());
        let edges = pin.edges();
        // Low once the stall timeout passed, long before the pulse's end.
        assert!(edges[1].at >= last_heartbeat.saturating_add(Duration::from_millis(50)));
        assert!(edges[1].at.saturating_since(edges[0].at) < Duration::from_millis(190));
        let reports = ejectors.take_reports();
        assert_eq!(reports[0].outcome.as_str(), "fired");
        drop(ejectors);
        assert!(!pin.is_set_high());
    }

    #[test]
    fn dropping_the_scheduler_mid_pulse_drives_outputs_low() {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
        let pin = SimulatedPin::new(clock.clone());
        let ejectors = scheduler(std::slice::from_ref(&pin), &clock, Duration::from_secs(5));
        ejectors.heartbeat();
        ejectors.schedule(request(1, 0, &clock, 1.0, 190)).unwrap();
        eventually(|| pin.is_set_high());
        drop(ejectors);
        assert!(!pin.is_set_high());
        assert!(pin.edges()[1].at.saturating_since(pin.edges()[0].at) < Duration::from_millis(190));
    }
}
