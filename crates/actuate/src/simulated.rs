use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use edgesort_types::{Clock, Timestamp};
use embedded_hal::digital::{ErrorType, InputPin, OutputPin};

use crate::{ActuateError, EdgeInput, EjectorBank, EjectorSpec, ForceLow, InputEdge, Limits};

/// Edges a simulated input holds for its reader at most.
const INPUT_EDGE_QUEUE: usize = 4096;

/// One level change on a simulated pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// When, on the pin's clock.
    pub at: Timestamp,
    /// The new level.
    pub high: bool,
}

/// An output pin that records its edges instead of driving hardware.
///
/// Clones share the record, so a test or a report can read what the bank did.
/// It starts low, as a GPIO line requested as an output does.
#[derive(Clone)]
pub struct SimulatedPin {
    clock: Arc<dyn Clock>,
    edges: Arc<Mutex<Vec<Edge>>>,
    high: Arc<AtomicBool>,
}

impl SimulatedPin {
    /// A low pin that stamps edges with `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        SimulatedPin {
            clock,
            edges: Arc::default(),
            high: Arc::default(),
        }
    }

    /// One pin per ejector of `config`, stamped on the monotonic clock: a
    /// line without GPIO.
    pub fn for_ejectors(config: &edgesort_types::config::Config) -> Vec<SimulatedPin> {
        let clock: Arc<dyn Clock> = Arc::new(edgesort_types::MonotonicClock);
        config
            .ejectors
            .iter()
            .map(|_| SimulatedPin::new(clock.clone()))
            .collect()
    }

    /// Every level change so far (repeated writes of the same level are not edges).
    pub fn edges(&self) -> Vec<Edge> {
        self.edges.lock().expect("edge record poisoned").clone()
    }

    /// The current level.
    pub fn is_set_high(&self) -> bool {
        self.high.load(Ordering::SeqCst)
    }

    fn set(&self, high: bool) {
        // Stamp before taking the lock, so the time is when the level changed.
        let at = self.clock.now();
        if self.high.swap(high, Ordering::SeqCst) != high {
            self.edges
                .lock()
                .expect("edge record poisoned")
                .push(Edge { at, high });
        }
    }
}

impl ErrorType for SimulatedPin {
    type Error = Infallible;
}

impl OutputPin for SimulatedPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.set(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.set(true);
        Ok(())
    }
}

impl ForceLow for SimulatedPin {
    fn force_low(&self) {
        self.set(false);
    }
}

#[derive(Default)]
struct InputState {
    active: bool,
    edges: VecDeque<InputEdge>,
}

/// An input whose level is set by hand: a simulated e-stop button or encoder.
/// Each change is an edge, stamped with the clock, that
/// [`EdgeInput::wait_edge`] delivers as the GPIO character device would.
#[derive(Clone)]
pub struct SimulatedInput {
    clock: Arc<dyn Clock>,
    state: Arc<(Mutex<InputState>, Condvar)>,
}

impl SimulatedInput {
    /// An inactive input that stamps edges with `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        SimulatedInput {
            clock,
            state: Arc::default(),
        }
    }

    /// Sets the logical level now; returns the edge's time.
    pub fn set(&self, active: bool) -> Timestamp {
        let at = self.clock.now();
        self.set_at(active, at);
        at
    }

    /// Sets the logical level, stamping the edge `at`.
    pub fn set_at(&self, active: bool, at: Timestamp) {
        let (state, changed) = &*self.state;
        let mut state = state.lock().expect("input state poisoned");
        if state.active == active {
            return;
        }
        state.active = active;
        if state.edges.len() == INPUT_EDGE_QUEUE {
            state.edges.pop_front();
        }
        state.edges.push_back(InputEdge { at, active });
        changed.notify_all();
    }
}

impl ErrorType for SimulatedInput {
    type Error = Infallible;
}

impl InputPin for SimulatedInput {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.state.0.lock().expect("input state poisoned").active)
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        self.is_high().map(|high| !high)
    }
}

impl EdgeInput for SimulatedInput {
    fn wait_edge(&mut self, timeout: Duration) -> Result<Option<InputEdge>, Infallible> {
        let (state, changed) = &*self.state;
        let give_up = Instant::now() + timeout;
        let mut state = state.lock().expect("input state poisoned");
        loop {
            if let Some(edge) = state.edges.pop_front() {
                return Ok(Some(edge));
            }
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            state = changed
                .wait_timeout(state, left)
                .expect("input state poisoned")
                .0;
        }
    }
}

/// A bank over simulated pins: ejector `i` serves lane `lane{i}` on pin `i`,
/// with no duty-cycle limit. For tests and benchmarks.
pub fn simulated_bank(
    pins: &[SimulatedPin],
    limits: Limits,
) -> Result<EjectorBank<SimulatedPin>, ActuateError> {
    let outputs = pins
        .iter()
        .enumerate()
        .map(|(index, pin)| {
            let spec = EjectorSpec {
                lane: format!("lane{index}"),
                pin: index as u32,
                max_duty: 1.0,
            };
            (spec, pin.clone())
        })
        .collect();
    EjectorBank::new(outputs, limits)
}
