use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use edgesort_types::Clock;
use embedded_hal::digital::{InputPin, OutputPin};

use crate::{ActuateError, EjectorBank, Outcome, PulseReport, PulseRequest};

/// Without a deadline, the thread still wakes this often to check the e-stop.
const IDLE_POLL: Duration = Duration::from_millis(5);

struct State<P: OutputPin, E: InputPin> {
    bank: EjectorBank<P, E>,
    reports: Vec<PulseReport>,
    error: Option<ActuateError>,
    stop: Option<Stop>,
}

/// How the servicing thread should end.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Fire what is pending, then end.
    Drain,
    /// Drive everything low now and end.
    Abort,
}

type Shared<P, E> = Arc<(Mutex<State<P, E>>, Condvar)>;

/// An [`EjectorBank`] serviced by its own thread on a live clock.
///
/// The pipeline thread only queues requests and heartbeats; edges are driven
/// from this thread, which sleeps until the next deadline. Reports collect
/// here until [`RealtimeEjectors::take_reports`] so that a slow consumer can
/// never block the thread that drives the outputs.
pub struct RealtimeEjectors<P: OutputPin, E: InputPin> {
    shared: Shared<P, E>,
    clock: Arc<dyn Clock>,
    thread: Option<JoinHandle<()>>,
}

impl<P, E> RealtimeEjectors<P, E>
where
    P: OutputPin + Send + 'static,
    E: InputPin + Send + 'static,
{
    /// Starts the servicing thread.
    pub fn spawn(bank: EjectorBank<P, E>, clock: Arc<dyn Clock>) -> Self {
        let shared: Shared<P, E> = Arc::new((
            Mutex::new(State {
                bank,
                reports: Vec::new(),
                error: None,
                stop: None,
            }),
            Condvar::new(),
        ));
        let thread_shared = shared.clone();
        let thread_clock = clock.clone();
        let thread = std::thread::Builder::new()
            .name("ejectors".into())
            .spawn(move || service_loop(&thread_shared, thread_clock.as_ref()))
            .expect("spawning the ejector thread");
        RealtimeEjectors {
            shared,
            clock,
            thread: Some(thread),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<P, E>> {
        self.shared.0.lock().expect("ejector state poisoned")
    }

    /// Queues a pulse; a refusal is reported through [`RealtimeEjectors::take_reports`].
    pub fn schedule(&self, request: PulseRequest) -> Result<(), ActuateError> {
        let mut state = self.lock();
        if let Some(error) = state.error.take() {
            return Err(error);
        }
        let now = self.clock.now();
        if let Some(report) = state.bank.schedule(request, now)? {
            state.reports.push(report);
        }
        self.shared.1.notify_one();
        Ok(())
    }

    /// The pipeline is alive.
    pub fn heartbeat(&self) {
        let now = self.clock.now();
        self.lock().bank.heartbeat(now);
        self.shared.1.notify_one();
    }

    /// Reports gathered since the last call.
    pub fn take_reports(&self) -> Vec<PulseReport> {
        std::mem::take(&mut self.lock().reports)
    }

    /// Ends input, waits for pending pulses to fire, stops the thread and
    /// returns the last reports. Outputs are low afterwards.
    pub fn finish(mut self) -> Result<Vec<PulseReport>, ActuateError> {
        {
            let mut state = self.lock();
            state.bank.end_input();
            state.stop = Some(Stop::Drain);
        }
        self.shared.1.notify_one();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("ejector thread panicked");
        }
        let mut state = self.lock();
        let mut reports = std::mem::take(&mut state.reports);
        reports.extend(state.bank.safe_state(Outcome::Stalled)?);
        match state.error.take() {
            Some(error) => Err(error),
            None => Ok(reports),
        }
    }
}

/// Dropped without [`RealtimeEjectors::finish`] (an error path): nothing
/// pending may fire any more.
impl<P: OutputPin, E: InputPin> Drop for RealtimeEjectors<P, E> {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            if let Ok(mut state) = self.shared.0.lock() {
                state.stop = Some(Stop::Abort);
            }
            self.shared.1.notify_one();
            let _ = thread.join();
        }
    }
}

fn service_loop<P: OutputPin, E: InputPin>(shared: &Shared<P, E>, clock: &dyn Clock) {
    let (lock, wake) = &**shared;
    let mut state = lock.lock().expect("ejector state poisoned");
    loop {
        let now = clock.now();
        match state.bank.service(now) {
            Ok(reports) => state.reports.extend(reports),
            Err(error) => {
                tracing::error!(%error, "ejector fault: outputs driven low");
                state.error = Some(error);
            }
        }
        match state.stop {
            Some(Stop::Abort) => {
                if let Err(error) = state.bank.safe_state(Outcome::Stalled) {
                    tracing::error!(%error, "cannot drive ejectors low on abort");
                }
                return;
            }
            Some(Stop::Drain) if state.bank.pending_pulses() == 0 && !state.bank.any_high() => {
                return;
            }
            _ => {}
        }
        let deadline = state.bank.next_deadline();
        let wait = deadline
            .map(|deadline| deadline.saturating_since(clock.now()))
            .unwrap_or(IDLE_POLL)
            .min(IDLE_POLL);
        if !wait.is_zero() {
            state = wake
                .wait_timeout(state, wait)
                .expect("ejector state poisoned")
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use edgesort_types::{MonotonicClock, Timestamp};

    use super::*;
    use crate::{SimulatedInput, SimulatedPin};

    #[test]
    fn pulses_fire_no_earlier_than_planned_and_finish_drains() {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
        let pin = SimulatedPin::new(clock.clone());
        let bank = EjectorBank::<_, SimulatedInput>::new(
            vec![("lane".into(), 4, pin.clone())],
            None,
            Duration::from_millis(50),
            Duration::from_millis(500),
        )
        .unwrap();
        let ejectors = RealtimeEjectors::spawn(bank, clock.clone());
        let fire_at = clock.now().saturating_add(Duration::from_millis(20));
        ejectors.heartbeat();
        ejectors
            .schedule(PulseRequest {
                part_id: 9,
                ejector: 0,
                fire_at,
                duration: Duration::from_millis(5),
            })
            .unwrap();
        let reports = ejectors.finish().unwrap();
        assert_eq!(reports.len(), 1);
        let Outcome::Fired { actual } = reports[0].outcome else {
            panic!("{reports:?}");
        };
        let edges = pin.edges();
        assert_eq!(edges.len(), 2);
        assert!(edges[0].high && !edges[1].high);
        assert!(actual >= fire_at && edges[0].at >= fire_at);
        assert!(edges[1].at.saturating_since(edges[0].at) >= Duration::from_millis(5));
        assert!(edges[1].at > Timestamp::ZERO && !pin.is_set_high());
    }
}
