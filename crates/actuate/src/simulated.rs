use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use edgesort_types::{Clock, Timestamp};
use embedded_hal::digital::{ErrorType, InputPin, OutputPin};

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

    /// Every level change so far (repeated writes of the same level are not edges).
    pub fn edges(&self) -> Vec<Edge> {
        self.edges.lock().expect("edge record poisoned").clone()
    }

    /// The current level.
    pub fn is_set_high(&self) -> bool {
        self.high.load(Ordering::SeqCst)
    }

    fn set(&self, high: bool) {
        if self.high.swap(high, Ordering::SeqCst) != high {
            let at = self.clock.now();
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

/// An input pin whose level is set by hand, e.g. a simulated e-stop button.
#[derive(Clone, Default)]
pub struct SimulatedInput(Arc<AtomicBool>);

impl SimulatedInput {
    /// A low input.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the level.
    pub fn set(&self, high: bool) {
        self.0.store(high, Ordering::SeqCst);
    }
}

impl ErrorType for SimulatedInput {
    type Error = Infallible;
}

impl InputPin for SimulatedInput {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.0.load(Ordering::SeqCst))
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.0.load(Ordering::SeqCst))
    }
}
