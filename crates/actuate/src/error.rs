/// Why the ejectors could not be driven.
#[derive(Debug, thiserror::Error)]
pub enum ActuateError {
    /// Setting an output failed; the bank then tries to drive all others low.
    #[error("cannot drive ejector {lane:?} (pin {pin}): {reason}")]
    DrivePin {
        /// The ejector's lane.
        lane: String,
        /// The header pin.
        pin: u32,
        /// The HAL's error.
        reason: String,
    },
}
