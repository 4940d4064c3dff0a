/// Why the ejectors could not be driven.
#[derive(Debug, thiserror::Error)]
pub enum ActuateError {
    /// Setting an output failed; the bank then tries to drive all others low.
    #[error("cannot drive ejector {lane:?} (pin {pin}): {reason}")]
    DrivePin {
        /// The ejector's lane.
        lane: String,
        /// The pin.
        pin: u32,
        /// The HAL's error.
        reason: String,
    },
    /// Reading the e-stop input failed; treated as an active e-stop.
    #[error("cannot read the e-stop input: {reason}")]
    ReadEstop {
        /// The HAL's error.
        reason: String,
    },
}
