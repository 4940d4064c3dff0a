//! Ejector actuation: pulses fired at the moment each part passes its
//! ejector, with the interlocks that keep the machinery safe.
//!
//! In: [`PulseRequest`]s, each planned by distance (the part was so many mm
//! upstream of its ejector at a given time), heartbeats from the pipeline,
//! and inputs: an e-stop and, optionally, a belt encoder. Out: edges on
//! embedded-hal [`OutputPin`](embedded_hal::digital::OutputPin)s and a
//! [`PulseReport`] for every request, fired or not, with the reason.
//!
//! - [`BeltMotion`] turns distance into time, from the configured speed or
//!   from encoder edge timestamps, so a belt that slows down delays its
//!   pulses by as much as it delays the parts.
//! - [`EjectorBank`] is the state machine, driven with the current time:
//!   replays and tests run it on a manual clock.
//! - [`EjectorScheduler`] runs a bank on a thread of its own, real-time where
//!   permitted, at absolute deadlines with a short spin before each edge.
//!
//! The safety rules, which hold in every mode:
//! 1. Outputs start low and go low on every exit: drop, panic
//!    ([`FailSafe`]) and termination signals ([`on_termination_signals`]).
//! 2. The first active edge of the e-stop drives every output low and drops
//!    every pending pulse; new pulses are refused until the input has been
//!    released for its debounce time and [`EjectorScheduler::reset_estop`]
//!    re-arms (from a reset button, the CLI or the API). An e-stop input
//!    that cannot be read counts as pressed.
//! 3. When the pipeline has sent no heartbeat within the stall timeout,
//!    outputs go low and pending pulses are dropped.
//! 4. No output stays high longer than the maximum pulse, however many
//!    pulses merge; pulses closer than the valve's re-arm gap merge; and a
//!    valve is open for at most its duty share of any second.
//!
//! [`SimulatedPin`] and [`SimulatedInput`] stand in for GPIO lines on machines
//! without them; the GPIO character-device backend lives in `edgesort-gpio`.
#![deny(missing_docs)]

use std::time::Duration;

mod bank;
mod belt;
mod error;
mod estop;
mod failsafe;
mod inputs;
mod realtime;
mod scheduler;
mod simulated;
mod wakeup;

pub use bank::{EjectorBank, Outcome, PulseReport, PulseRequest};
pub use belt::{BeltMotion, Odometer, SilentEncoder};
pub use error::ActuateError;
pub use estop::{EstopState, ResetDone, ResetRefused};
pub use failsafe::{FailSafe, ForceLow, force_all_low, on_termination_signals};
pub use inputs::{EdgeInput, InputEdge};
pub use realtime::RealtimeStatus;
pub use scheduler::{BeltStatus, EjectorScheduler, EstopStatus, SchedulerOptions};
pub use simulated::{Edge, SimulatedInput, SimulatedPin, simulated_bank};

/// One ejector's identity and valve limits.
#[derive(Clone, Debug, PartialEq)]
pub struct EjectorSpec {
    /// The lane it serves, for messages.
    pub lane: String,
    /// Its header pin, for messages.
    pub pin: u32,
    /// Share of any second (0..=1) the valve may be open.
    pub max_duty: f64,
}

/// Limits that hold for every ejector of a bank.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// No output stays high longer.
    pub max_pulse: Duration,
    /// Pulses on one ejector closer than this merge.
    pub min_gap: Duration,
    /// Without a heartbeat for this long, outputs go low.
    pub stall_timeout: Duration,
    /// A released e-stop must stay released this long before a reset.
    pub estop_debounce: Duration,
}

impl Limits {
    /// The limits a configuration sets.
    pub fn from_config(config: &edgesort_types::config::Config) -> Limits {
        Limits {
            max_pulse: Duration::from_millis(config.safety.max_pulse_ms.into()),
            min_gap: Duration::from_millis(config.safety.min_gap_ms.into()),
            stall_timeout: config.stall_timeout(),
            estop_debounce: Duration::from_millis(
                config
                    .gpio
                    .estop
                    .as_ref()
                    .map_or(0, |estop| estop.debounce_ms)
                    .into(),
            ),
        }
    }
}

/// The ejectors a configuration lists, in order, without their pins.
pub fn ejector_specs(config: &edgesort_types::config::Config) -> Vec<EjectorSpec> {
    config
        .ejectors
        .iter()
        .map(|ejector| EjectorSpec {
            lane: ejector.lane.clone(),
            pin: ejector.pin,
            max_duty: ejector
                .max_duty_percent
                .unwrap_or(config.safety.max_duty_percent)
                / 100.0,
        })
        .collect()
}

/// The belt motion a configuration describes: its encoder when it has one,
/// otherwise its nominal speed. With an encoder, pulses fire only once the
/// encoder is watched ([`EjectorScheduler::watch_encoder`]) and gives edges.
pub fn belt_motion(config: &edgesort_types::config::Config) -> BeltMotion {
    match &config.gpio.encoder {
        Some(encoder) => BeltMotion::Encoder(Odometer::new(encoder.mm_per_count)),
        None => BeltMotion::Constant {
            mm_per_s: config.belt.speed_mm_s,
        },
    }
}
