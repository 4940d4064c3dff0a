use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use edgesort_types::{Clock, Timestamp};
use embedded_hal::digital::OutputPin;

use crate::belt::{BeltMotion, SilentEncoder};
use crate::estop::{EstopState, ResetDone, ResetRefused};
use crate::inputs::{EdgeInput, watch_encoder, watch_estop, watch_reset};
use crate::realtime::{RealtimeStatus, make_realtime, set_fifo};
use crate::wakeup::{Wakeup, no_timer_slack};
use crate::{ActuateError, EjectorBank, ForceLow, Outcome, PulseReport, PulseRequest};

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
    ResetEstop(SyncSender<Result<ResetDone, ResetRefused>>),
    Finish,
}

/// The e-stop input as its watcher last saw it.
#[derive(Clone, Copy, Default)]
struct EstopLevel {
    active: bool,
    /// The input could not be read at the last look.
    fault: bool,
    changed_at: Timestamp,
    /// Presses and read errors seen, so that a press released before the
    /// ejector thread looked still trips the latch.
    trips: u64,
    /// When the latest press or read error happened.
    tripped_at: Timestamp,
}

/// The e-stop as the status shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EstopStatus {
    /// Where the latch stands.
    pub state: EstopState,
    /// The input could not be read (now, or when it tripped the latch).
    pub input_fault: bool,
    /// Presses and read errors since start.
    pub trips: u64,
    /// From the latest trip's input edge (the kernel's timestamp for a GPIO
    /// line) to every output driven low.
    pub last_response: Option<Duration>,
    /// The part of it in edgesort's hands: from the e-stop watcher reading
    /// the press to every output driven low, where the watcher drives them
    /// itself ([`EjectorScheduler::drive_low_on_estop`]). The rest is the
    /// kernel's delivery of the edge and the scheduler's wake-up.
    pub last_reaction: Option<Duration>,
}

/// The belt as the status shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BeltStatus {
    /// Speed now, mm/s: measured by the encoder, or the configured one.
    pub speed_mm_s: f64,
    /// An encoder drives the belt's position.
    pub encoder: bool,
    /// Encoder edges since start.
    pub encoder_edges: u64,
    /// The encoder gives no edges while the camera sees parts moving.
    pub encoder_silent: bool,
}

/// The encoder's silence watch: set up by [`EjectorScheduler::watch_encoder`].
#[derive(Clone, Copy)]
struct EncoderWatch {
    rule: SilentEncoder,
    since: Timestamp,
}

/// What the input watchers and the handle share with the ejector thread.
pub(crate) struct Shared {
    pub(crate) belt: Mutex<BeltMotion>,
    estop: Mutex<EstopLevel>,
    estop_generation: AtomicU64,
    /// The latch's state, published by the ejector thread.
    estop_state: AtomicU8,
    estop_fault: AtomicBool,
    /// ns; `u64::MAX` until the first trip.
    estop_response_ns: AtomicU64,
    /// From the watcher reading the latest press to the outputs driven low
    /// by it, ns; `u64::MAX` until then.
    estop_reaction_ns: AtomicU64,
    /// Presses and read errors, for status readers: they never take a lock
    /// that the real-time threads take, or a reader preempted while holding
    /// it would hold them up (priority inversion).
    estop_trips: AtomicU64,
    /// The belt's speed (f64 bits, mm/s) and encoder edges, published by
    /// the ejector thread for the same reason.
    belt_speed_bits: AtomicU64,
    encoder_edges: AtomicU64,
    encoder: Mutex<Option<EncoderWatch>>,
    encoder_silent: AtomicBool,
    /// When the pipeline last saw parts move along the belt, ns; 0 never.
    motion_seen_ns: AtomicU64,
    /// The outputs, for the e-stop watcher to drive low itself.
    direct_low: OnceLock<Arc<dyn ForceLow>>,
    wakeup: Wakeup,
    pub(crate) stop: AtomicBool,
    abort: AtomicBool,
    /// The ejector thread has returned, its outputs low.
    ended: AtomicBool,
    fault: Mutex<Option<ActuateError>>,
    /// Which outputs are high, for status displays.
    outputs_high: AtomicU64,
    /// Each output's activations, for status displays.
    activations: Vec<AtomicU64>,
}

impl Shared {
    /// The e-stop input changed (or was read after a fault): the ejector
    /// thread acts on it at once.
    pub(crate) fn estop_edge(&self, active: bool, at: Timestamp) {
        {
            let mut level = lock(&self.estop);
            level.active = active;
            level.fault = false;
            level.changed_at = at;
            if active {
                level.trips += 1;
                level.tripped_at = at;
            }
            self.estop_trips.store(level.trips, Ordering::SeqCst);
        }
        self.estop_generation.fetch_add(1, Ordering::SeqCst);
        self.wake();
    }

    /// The e-stop input could not be read at `at`: it counts as pressed.
    pub(crate) fn estop_fault(&self, at: Timestamp) {
        self.force_low();
        {
            let mut level = lock(&self.estop);
            if !level.fault {
                level.trips += 1;
                level.tripped_at = at;
                self.estop_trips.store(level.trips, Ordering::SeqCst);
            }
            level.fault = true;
            level.changed_at = at;
        }
        self.estop_generation.fetch_add(1, Ordering::SeqCst);
        self.wake();
    }

    /// Drives the outputs low from the calling thread, where they were
    /// handed over for it ([`EjectorScheduler::drive_low_on_estop`]).
    /// Returns whether it did.
    pub(crate) fn force_low(&self) -> bool {
        let Some(outputs) = self.direct_low.get() else {
            return false;
        };
        outputs.force_low();
        true
    }

    /// The watcher read a press at `read_at` and drove the outputs low by
    /// `low_at`.
    pub(crate) fn estop_reacted(&self, read_at: Timestamp, low_at: Timestamp) {
        self.estop_reaction_ns.store(
            low_at.saturating_since(read_at).as_nanos() as u64,
            Ordering::SeqCst,
        );
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
    /// An encoder drives the belt.
    encoder: bool,
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
        let initial_speed = belt.speed_mm_s(clock.now());
        let encoder = belt.has_encoder();
        let shared = Arc::new(Shared {
            belt: Mutex::new(belt),
            estop: Mutex::default(),
            estop_generation: AtomicU64::new(0),
            estop_state: AtomicU8::new(EstopState::Clear.as_u8()),
            estop_fault: AtomicBool::new(false),
            estop_response_ns: AtomicU64::new(u64::MAX),
            estop_reaction_ns: AtomicU64::new(u64::MAX),
            estop_trips: AtomicU64::new(0),
            belt_speed_bits: AtomicU64::new(initial_speed.to_bits()),
            encoder_edges: AtomicU64::new(0),
            encoder: Mutex::new(None),
            encoder_silent: AtomicBool::new(false),
            motion_seen_ns: AtomicU64::new(0),
            direct_low: OnceLock::new(),
            wakeup: Wakeup::new().expect("creating the ejector thread's eventfd"),
            stop: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            fault: Mutex::new(None),
            outputs_high: AtomicU64::new(0),
            activations: (0..bank.len()).map(|_| AtomicU64::new(0)).collect(),
        });
        let (status_sender, status) = std::sync::mpsc::sync_channel(1);
        let thread_shared = shared.clone();
        let ended = shared.clone();
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
                    belt_lost: false,
                };
                worker.run();
                drop(worker);
                ended.ended.store(true, Ordering::SeqCst);
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
            encoder,
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
        let clock = self.clock.clone();
        self.spawn_watcher("estop", move |shared| {
            watch_estop(input, shared, clock.as_ref())
        });
    }

    /// Runs an input watcher on a thread of its own, one step below the
    /// ejector thread's real-time priority.
    fn spawn_watcher(&mut self, name: &str, watch: impl FnOnce(&Shared) + Send + 'static) {
        let shared = self.shared.clone();
        let priority = self.watcher_priority;
        self.watchers.push(
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let _ = set_fifo(priority);
                    watch(&shared)
                })
                .unwrap_or_else(|error| panic!("spawning the {name} thread: {error}")),
        );
    }

    /// Lets the e-stop watcher drive `outputs` low itself, on the thread that
    /// reads the press, before the ejector thread hears of it: one thread
    /// hand-over less between the button and the valves. `outputs` must
    /// drive the bank's own lines (clones of its pins; a GPIO line request
    /// may be written from any thread). The ejector thread then applies the
    /// press as always, so a rise it was making at that instant ends low too.
    pub fn drive_low_on_estop(&self, outputs: Arc<dyn ForceLow>) {
        let _ = self.shared.direct_low.set(outputs);
    }

    /// Watches a belt encoder: each rising edge is belt travel. When the
    /// pipeline reports parts moving ([`EjectorScheduler::parts_moving`])
    /// while the encoder has given no edge for `silent_after`, the belt's
    /// position counts as lost: pending pulses are dropped and new ones
    /// refused as `no_belt_position` until an edge comes again. No speed is
    /// ever guessed.
    pub fn watch_encoder<I: EdgeInput>(&mut self, input: I, silent_after: Duration) {
        *lock(&self.shared.encoder) = Some(EncoderWatch {
            rule: SilentEncoder {
                after: silent_after,
            },
            since: self.clock.now(),
        });
        self.spawn_watcher("encoder", move |shared| watch_encoder(input, shared));
    }

    /// Watches a reset input (a momentary button): each press asks for an
    /// e-stop reset, exactly as [`EjectorScheduler::reset_estop`] does, and
    /// `on_press` hears what became of it, for the audit log.
    pub fn watch_reset<I: EdgeInput>(
        &mut self,
        input: I,
        on_press: impl Fn(Result<ResetDone, ResetRefused>) + Send + 'static,
    ) {
        let commands = self.commands.clone();
        self.spawn_watcher("estop-reset", move |shared| {
            watch_reset(input, shared, || on_press(request_reset(&commands, shared)))
        });
    }

    /// The pipeline saw parts move along the belt at `at` (a part left the
    /// view downstream): evidence for the encoder's silence rule.
    pub fn parts_moving(&self, at: Timestamp) {
        self.shared
            .motion_seen_ns
            .fetch_max(at.as_nanos(), Ordering::SeqCst);
        self.shared.wake();
    }

    /// Queues a pulse. A refusal comes back through [`EjectorScheduler::take_reports`];
    /// a fault of the ejector thread comes back here.
    pub fn schedule(&self, request: PulseRequest) -> Result<(), ActuateError> {
        if let Some(error) = lock(&self.shared.fault).take() {
            return Err(error);
        }
        let sent = self.commands.try_send(Command::Schedule(request));
        self.shared.wake();
        let outcome = match sent {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(_)) => {
                tracing::error!(part = request.part_id, "ejector queue full: pulse refused");
                Outcome::QueueFull
            }
            Err(TrySendError::Disconnected(_)) => Outcome::Shutdown,
        };
        lock(&self.refused).push(PulseReport { request, outcome });
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

    /// The e-stop latch, its input and its last response time.
    pub fn estop(&self) -> EstopStatus {
        let response = self.shared.estop_response_ns.load(Ordering::SeqCst);
        let reaction = self.shared.estop_reaction_ns.load(Ordering::SeqCst);
        EstopStatus {
            state: EstopState::from_u8(self.shared.estop_state.load(Ordering::SeqCst)),
            input_fault: self.shared.estop_fault.load(Ordering::SeqCst),
            trips: self.shared.estop_trips.load(Ordering::SeqCst),
            last_response: (response != u64::MAX).then(|| Duration::from_nanos(response)),
            last_reaction: (reaction != u64::MAX).then(|| Duration::from_nanos(reaction)),
        }
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
    pub fn reset_estop(&self) -> Result<ResetDone, ResetRefused> {
        request_reset(&self.commands, &self.shared)
    }

    /// The belt's speed and encoder, as of the ejector thread's last step.
    pub fn belt(&self) -> BeltStatus {
        BeltStatus {
            speed_mm_s: f64::from_bits(self.shared.belt_speed_bits.load(Ordering::SeqCst)),
            encoder: self.encoder,
            encoder_edges: self.shared.encoder_edges.load(Ordering::SeqCst),
            encoder_silent: self.shared.encoder_silent.load(Ordering::SeqCst),
        }
    }

    /// Reports gathered since the last call.
    pub fn take_reports(&self) -> Vec<PulseReport> {
        let mut reports = std::mem::take(&mut *lock(&self.refused));
        reports.extend(lock(&self.reports).try_iter());
        reports
    }

    /// Drives every output low now and stops the ejector thread for good:
    /// pending pulses, and every one asked for later, are reported
    /// `shutdown`. For a stop that must not wait for planned pulses.
    pub fn disarm(&self) {
        self.shared.abort.store(true, Ordering::SeqCst);
        self.shared.wake();
    }

    /// Ends input and lets the pulses already planned fire, then stops the
    /// ejector thread with every output low; past `within`, it disarms
    /// instead (outputs low at once). Returns whether the planned pulses
    /// all fired in time. For a daemon's orderly stop.
    pub fn wind_down(&self, within: Duration) -> bool {
        let _ = self.commands.send(Command::Finish);
        self.shared.wake();
        let give_up = std::time::Instant::now() + within;
        while !self.shared.ended.load(Ordering::SeqCst) {
            if std::time::Instant::now() >= give_up {
                tracing::warn!("planned pulses still pending at the stop: ejectors disarmed");
                self.disarm();
                while !self.shared.ended.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
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

/// Asks the ejector thread for a reset and waits for its answer.
fn request_reset(
    commands: &SyncSender<Command>,
    shared: &Shared,
) -> Result<ResetDone, ResetRefused> {
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    if commands.send(Command::ResetEstop(reply)).is_err() {
        return Err(ResetRefused::EjectorsStopped);
    }
    shared.wake();
    answer.recv().unwrap_or(Err(ResetRefused::EjectorsStopped))
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
    belt_lost: bool,
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
            self.watch_belt();
            let deadline = {
                let belt = lock(&self.shared.belt);
                let reports = self.bank.service(now, &belt);
                let deadline = self.bank.next_deadline(now, &belt);
                self.shared
                    .belt_speed_bits
                    .store(belt.speed_mm_s(now).to_bits(), Ordering::SeqCst);
                self.shared
                    .encoder_edges
                    .store(belt.edges_seen(), Ordering::SeqCst);
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

    /// Applies the encoder's silence rule.
    fn watch_belt(&mut self) {
        let Some(watch) = *lock(&self.shared.encoder) else {
            return;
        };
        let last_edge = lock(&self.shared.belt).last_edge();
        let motion = self.shared.motion_seen_ns.load(Ordering::SeqCst);
        let motion = (motion != 0).then(|| Timestamp::from_nanos(motion));
        let silent = watch.rule.is_silent(watch.since, last_edge, motion);
        if silent != self.belt_lost {
            self.belt_lost = silent;
            self.shared.encoder_silent.store(silent, Ordering::SeqCst);
            let reports = self.bank.set_belt_lost(silent);
            self.emit(Ok(reports));
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
                let result = self.bank.reset_estop(now);
                self.publish_estop();
                let _ = reply.send(result);
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
            let reports = if level.fault {
                self.bank.estop_fault(level.tripped_at)
            } else {
                self.bank.estop_edge(true, level.tripped_at)
            };
            // Every output is low now: the response is measured from the
            // input's own edge time.
            let response = self.clock.now().saturating_since(level.tripped_at);
            self.shared
                .estop_response_ns
                .store(response.as_nanos() as u64, Ordering::SeqCst);
            self.emit(reports);
        }
        let reports = if level.fault {
            self.bank.estop_fault(level.changed_at)
        } else {
            self.bank.estop_edge(level.active, level.changed_at)
        };
        self.emit(reports);
        self.publish_estop();
    }

    fn publish_estop(&self) {
        self.shared
            .estop_state
            .store(self.bank.estop_state().as_u8(), Ordering::SeqCst);
        self.shared
            .estop_fault
            .store(self.bank.estop_input_fault(), Ordering::SeqCst);
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
                Ok(_) => break,
                Err(ResetRefused::StillPressed | ResetRefused::NotSettled { .. }) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(refused) => panic!("{refused}"),
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

    /// Issue 22: the latch's three states as the status reads them, a reset
    /// button that re-arms only once the e-stop has settled, and the time
    /// from the press to every output low.
    #[test]
    fn the_latch_is_visible_and_a_reset_button_rearms_it() {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
        let pin = SimulatedPin::new(clock.clone());
        let mut ejectors = scheduler(std::slice::from_ref(&pin), &clock, Duration::from_secs(5));
        let estop = SimulatedInput::new(clock.clone());
        let button = SimulatedInput::new(clock.clone());
        let (pressed, results) = std::sync::mpsc::channel();
        ejectors.watch_estop(estop.clone());
        ejectors.watch_reset(button.clone(), move |result| {
            let _ = pressed.send(result);
        });
        let press_button = || {
            button.set(true);
            button.set(false);
            results
                .recv_timeout(Duration::from_secs(10))
                .expect("the reset button was heard")
        };
        eventually(|| ejectors.estop().state == EstopState::Clear);
        assert_eq!(ejectors.estop().last_response, None);

        ejectors.heartbeat();
        ejectors.schedule(request(1, 0, &clock, 1.0, 150)).unwrap();
        eventually(|| pin.is_set_high());
        estop.set(true);
        eventually(|| ejectors.estop().state == EstopState::Pressed);
        assert!(!pin.is_set_high());
        let status = ejectors.estop();
        assert_eq!(status.trips, 1);
        assert!(status.last_response.is_some(), "{status:?}");
        assert_eq!(press_button(), Err(ResetRefused::StillPressed));

        estop.set(false);
        eventually(|| ejectors.estop().state == EstopState::ReleasedAwaitingReset);
        // Released is not reset: a pulse is still refused.
        ejectors.schedule(request(2, 0, &clock, 1.0, 5)).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert!(!pin.is_set_high());
        assert_eq!(ejectors.estop().state, EstopState::ReleasedAwaitingReset);
        // 30 ms debounce: a press now (40 ms after release) is accepted.
        assert_eq!(press_button(), Ok(ResetDone::Rearmed));
        assert_eq!(ejectors.estop().state, EstopState::Clear);
        assert_eq!(press_button(), Ok(ResetDone::WasClear));
        ejectors.heartbeat();
        ejectors.schedule(request(3, 0, &clock, 1.0, 5)).unwrap();
        let mut reports = ejectors.finish().unwrap();
        reports.sort_by_key(|report| report.request.part_id);
        let outcomes: Vec<_> = reports.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(outcomes, ["fired", "estop", "fired"]);
    }

    /// An e-stop input that cannot be read holds the outputs low like a
    /// press, shows as an input fault, and refuses resets until it reads
    /// released again.
    #[test]
    fn an_unreadable_estop_latches_with_an_input_fault() {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
        let pin = SimulatedPin::new(clock.clone());
        let mut ejectors = scheduler(std::slice::from_ref(&pin), &clock, Duration::from_secs(5));
        let broken = Arc::new(AtomicBool::new(false));
        ejectors.watch_estop(FlakyInput {
            broken: broken.clone(),
        });
        ejectors.heartbeat();
        ejectors.schedule(request(1, 0, &clock, 1.0, 150)).unwrap();
        eventually(|| pin.is_set_high());
        broken.store(true, Ordering::SeqCst);
        eventually(|| ejectors.estop().input_fault);
        assert!(!pin.is_set_high());
        assert_eq!(ejectors.estop().state, EstopState::Pressed);
        assert_eq!(ejectors.reset_estop(), Err(ResetRefused::InputFault));
        broken.store(false, Ordering::SeqCst);
        eventually(|| ejectors.estop().state == EstopState::ReleasedAwaitingReset);
        assert!(ejectors.estop().input_fault, "shown until the reset");
        eventually(|| ejectors.reset_estop() == Ok(ResetDone::Rearmed));
        let status = ejectors.estop();
        assert_eq!(
            (status.state, status.input_fault),
            (EstopState::Clear, false)
        );
        drop(ejectors);
    }

    /// A released e-stop line whose reads fail while `broken` is set.
    struct FlakyInput {
        broken: Arc<AtomicBool>,
    }

    #[derive(Debug)]
    struct ReadFailed;

    impl embedded_hal::digital::Error for ReadFailed {
        fn kind(&self) -> embedded_hal::digital::ErrorKind {
            embedded_hal::digital::ErrorKind::Other
        }
    }

    impl embedded_hal::digital::ErrorType for FlakyInput {
        type Error = ReadFailed;
    }

    impl embedded_hal::digital::InputPin for FlakyInput {
        fn is_high(&mut self) -> Result<bool, ReadFailed> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(ReadFailed);
            }
            Ok(false)
        }

        fn is_low(&mut self) -> Result<bool, ReadFailed> {
            self.is_high().map(|high| !high)
        }
    }

    impl EdgeInput for FlakyInput {
        fn wait_edge(&mut self, timeout: Duration) -> Result<Option<crate::InputEdge>, ReadFailed> {
            std::thread::sleep(timeout.min(Duration::from_millis(5)));
            if self.broken.load(Ordering::SeqCst) {
                return Err(ReadFailed);
            }
            Ok(None)
        }
    }

    /// The `encoder_silent` rule live: edges drive pulses; with parts seen
    /// moving and no edge for the silence time, pending pulses are dropped
    /// and new ones refused as `no_belt_position`; edges bring it back.
    #[test]
    fn a_silent_encoder_refuses_pulses_until_its_edges_return() {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
        let pin = SimulatedPin::new(clock.clone());
        let limits = Limits {
            max_pulse: Duration::from_millis(200),
            min_gap: Duration::from_millis(1),
            stall_timeout: Duration::from_secs(5),
            estop_debounce: Duration::from_millis(30),
        };
        let mut ejectors = EjectorScheduler::spawn(
            crate::simulated_bank(std::slice::from_ref(&pin), limits).unwrap(),
            BeltMotion::Encoder(crate::Odometer::new(1.0)),
            clock.clone(),
            SchedulerOptions::default(),
        );
        let encoder = SimulatedInput::new(clock.clone());
        ejectors.watch_encoder(encoder.clone(), Duration::from_millis(100));
        let running = Arc::new(AtomicBool::new(true));
        // 1 mm per edge, an edge every 2 ms: 500 mm/s.
        let belt = {
            let (encoder, running) = (encoder.clone(), running.clone());
            std::thread::spawn(move || {
                while running.load(Ordering::SeqCst) {
                    encoder.set(true);
                    encoder.set(false);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        eventually(|| ejectors.belt().encoder_edges > 10);
        ejectors.heartbeat();
        ejectors.schedule(request(1, 0, &clock, 5.0, 5)).unwrap();
        eventually(|| pin.edges().len() == 2);
        assert!(!ejectors.belt().encoder_silent);

        // The belt's edges stop while the camera still sees parts move.
        running.store(false, Ordering::SeqCst);
        belt.join().unwrap();
        ejectors.schedule(request(2, 0, &clock, 500.0, 5)).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        ejectors.parts_moving(clock.now());
        eventually(|| ejectors.belt().encoder_silent);
        ejectors.heartbeat();
        ejectors.schedule(request(3, 0, &clock, 1.0, 5)).unwrap();
        // An edge ends the silence.
        encoder.set(true);
        eventually(|| !ejectors.belt().encoder_silent);
        assert_eq!(pin.edges().len(), 2, "nothing fired while silent");
        ejectors.end_input();
        let mut reports = ejectors.take_reports();
        reports.sort_by_key(|report| report.request.part_id);
        let outcomes: Vec<_> = reports.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(outcomes, ["fired", "no_belt_position", "no_belt_position"]);
        drop(ejectors);
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
