//! Ejector actuation: pulses on GPIO outputs at planned times, safely.
//!
//! [`EjectorBank`] owns one embedded-hal 1.0 [`OutputPin`](embedded_hal::digital::OutputPin)
//! per ejector and an optional e-stop [`InputPin`](embedded_hal::digital::InputPin).
//! It is a scheduler without a thread of its own: callers queue pulses with
//! [`EjectorBank::schedule`] and call [`EjectorBank::service`] with the current
//! time; [`EjectorBank::next_deadline`] says when the next call is due. A
//! replay drives it on a manual clock, frame by frame, so its edges are
//! deterministic; [`RealtimeEjectors`] drives it from a thread on the
//! monotonic clock.
//!
//! Safety rules, in order of precedence:
//! 1. An active e-stop drives every output low, drops all pending pulses and
//!    refuses new ones until it clears.
//! 2. When the pipeline has not called [`EjectorBank::heartbeat`] within the
//!    stall timeout, outputs go low and pending pulses are dropped.
//! 3. Outputs start low, and no output stays high longer than the maximum
//!    pulse, even when pulses for neighbouring parts merge.
//!
//! [`SimulatedPin`] records every edge with its timestamp; it stands in for
//! the GPIO character device on machines without one.
#![deny(missing_docs)]

mod bank;
mod error;
mod realtime;
mod simulated;

pub use bank::{EjectorBank, Outcome, PulseReport, PulseRequest};
pub use error::ActuateError;
pub use realtime::RealtimeEjectors;
pub use simulated::{Edge, SimulatedInput, SimulatedPin};
