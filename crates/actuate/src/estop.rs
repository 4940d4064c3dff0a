use std::time::Duration;

use edgesort_types::Timestamp;
use serde::Serialize;

/// Why an e-stop reset was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResetRefused {
    /// The e-stop input is still active.
    #[error("the e-stop is still pressed")]
    StillPressed,
    /// The input was released too recently to trust.
    #[error(
        "the e-stop was released only {released_for:?} ago; it must stay released for {debounce:?}"
    )]
    NotSettled {
        /// How long it has been released.
        released_for: Duration,
        /// How long it must be.
        debounce: Duration,
    },
    /// The e-stop input cannot be read, so nobody can tell it is released.
    #[error("the e-stop input cannot be read: it counts as pressed until it reads released")]
    InputFault,
    /// The ejector thread is gone (the line is shutting down).
    #[error("the ejector thread has stopped")]
    EjectorsStopped,
}

/// Where the e-stop latch stands, as a technician needs to know it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EstopState {
    /// Not tripped: the ejectors are armed (as far as the e-stop goes).
    #[default]
    Clear,
    /// The input is active, or cannot be read: outputs held low.
    Pressed,
    /// The input has been released but nobody has reset the latch yet:
    /// outputs still held low, pulses refused.
    ReleasedAwaitingReset,
}

impl EstopState {
    /// The name status and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            EstopState::Clear => "clear",
            EstopState::Pressed => "pressed",
            EstopState::ReleasedAwaitingReset => "released_awaiting_reset",
        }
    }

    pub(crate) fn from_u8(value: u8) -> EstopState {
        match value {
            1 => EstopState::Pressed,
            2 => EstopState::ReleasedAwaitingReset,
            _ => EstopState::Clear,
        }
    }

    pub(crate) fn as_u8(self) -> u8 {
        match self {
            EstopState::Clear => 0,
            EstopState::Pressed => 1,
            EstopState::ReleasedAwaitingReset => 2,
        }
    }
}

/// What a reset did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetDone {
    /// The latch was tripped and is now clear: the ejectors are armed again.
    Rearmed,
    /// The latch was not tripped; nothing changed.
    WasClear,
}

/// The e-stop's latch: the first active edge trips it, with no debounce,
/// because a contact that bounces while being pressed must stop the machine
/// on its first bounce. Only the release is debounced: the line must stay
/// released for the debounce time before a reset re-arms the ejectors. An
/// input that cannot be read trips it the same way and counts as pressed
/// until it is read released again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EstopLatch {
    tripped: bool,
    line_active: bool,
    /// The input could not be read at its last look.
    fault: bool,
    /// The trip came from (or met) an unreadable input; cleared by a reset.
    tripped_by_fault: bool,
    released_at: Timestamp,
    debounce: Duration,
}

impl EstopLatch {
    pub(crate) fn new(debounce: Duration) -> Self {
        EstopLatch {
            tripped: false,
            line_active: false,
            fault: false,
            tripped_by_fault: false,
            released_at: Timestamp::ZERO,
            debounce,
        }
    }

    pub(crate) fn tripped(&self) -> bool {
        self.tripped
    }

    pub(crate) fn state(&self) -> EstopState {
        match (self.tripped, self.line_active || self.fault) {
            (false, _) => EstopState::Clear,
            (true, true) => EstopState::Pressed,
            (true, false) => EstopState::ReleasedAwaitingReset,
        }
    }

    /// Whether an unreadable input tripped the latch (or is unreadable now).
    pub(crate) fn input_fault(&self) -> bool {
        self.fault || (self.tripped && self.tripped_by_fault)
    }

    /// The input read `active` at `at` (an edge, or a good read after a
    /// fault). Returns whether this tripped the latch.
    pub(crate) fn edge(&mut self, active: bool, at: Timestamp) -> bool {
        self.fault = false;
        self.line_active = active;
        if !active {
            self.released_at = at;
            return false;
        }
        !std::mem::replace(&mut self.tripped, true)
    }

    /// The input could not be read at `at`: it counts as pressed. Returns
    /// whether this tripped the latch.
    pub(crate) fn fault(&mut self, at: Timestamp) -> bool {
        self.fault = true;
        self.tripped_by_fault = true;
        self.released_at = at;
        !std::mem::replace(&mut self.tripped, true)
    }

    pub(crate) fn reset(&mut self, now: Timestamp) -> Result<ResetDone, ResetRefused> {
        if !self.tripped {
            return Ok(ResetDone::WasClear);
        }
        if self.fault {
            return Err(ResetRefused::InputFault);
        }
        if self.line_active {
            return Err(ResetRefused::StillPressed);
        }
        let released_for = now.saturating_since(self.released_at);
        if released_for < self.debounce {
            return Err(ResetRefused::NotSettled {
                released_for,
                debounce: self.debounce,
            });
        }
        self.tripped = false;
        self.tripped_by_fault = false;
        Ok(ResetDone::Rearmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_nanos(ms * MS)
    }

    fn latch() -> EstopLatch {
        EstopLatch::new(Duration::from_millis(20))
    }

    #[test]
    fn a_press_trips_at_once_and_shows_pressed() {
        let mut latch = latch();
        assert_eq!(latch.state(), EstopState::Clear);
        assert!(latch.edge(true, at(5)), "the first press trips");
        assert!(!latch.edge(true, at(6)), "a bounce does not trip again");
        assert_eq!(latch.state(), EstopState::Pressed);
        assert!(!latch.input_fault());
    }

    #[test]
    fn a_release_waits_for_a_reset() {
        let mut latch = latch();
        latch.edge(true, at(5));
        latch.edge(false, at(10));
        assert_eq!(latch.state(), EstopState::ReleasedAwaitingReset);
        assert!(latch.tripped(), "releasing alone never re-arms");
    }

    #[test]
    fn a_reset_is_refused_while_pressed() {
        let mut latch = latch();
        latch.edge(true, at(5));
        assert_eq!(latch.reset(at(1000)), Err(ResetRefused::StillPressed));
        assert_eq!(latch.state(), EstopState::Pressed);
    }

    #[test]
    fn a_reset_is_refused_until_the_release_has_settled() {
        let mut latch = latch();
        latch.edge(true, at(5));
        latch.edge(false, at(10));
        assert_eq!(
            latch.reset(at(25)),
            Err(ResetRefused::NotSettled {
                released_for: Duration::from_millis(15),
                debounce: Duration::from_millis(20),
            })
        );
        // A bounce on release starts the debounce over.
        latch.edge(true, at(26));
        latch.edge(false, at(27));
        assert!(matches!(
            latch.reset(at(40)),
            Err(ResetRefused::NotSettled { .. })
        ));
        assert_eq!(latch.reset(at(47)), Ok(ResetDone::Rearmed));
        assert_eq!(latch.state(), EstopState::Clear);
        assert_eq!(latch.reset(at(48)), Ok(ResetDone::WasClear));
    }

    #[test]
    fn a_read_error_latches_and_blocks_resets_until_the_input_reads_released() {
        let mut latch = latch();
        assert!(latch.fault(at(5)), "an unreadable e-stop trips the latch");
        assert_eq!(latch.state(), EstopState::Pressed);
        assert!(latch.input_fault());
        assert_eq!(latch.reset(at(1000)), Err(ResetRefused::InputFault));
        // Readable again and released: the usual debounce, then a reset.
        latch.edge(false, at(1000));
        assert_eq!(latch.state(), EstopState::ReleasedAwaitingReset);
        assert!(latch.input_fault(), "the fault is shown until the reset");
        assert!(matches!(
            latch.reset(at(1010)),
            Err(ResetRefused::NotSettled { .. })
        ));
        assert_eq!(latch.reset(at(1020)), Ok(ResetDone::Rearmed));
        assert!(!latch.input_fault());
        assert_eq!(latch.state(), EstopState::Clear);
    }

    #[test]
    fn a_read_error_while_clear_and_a_later_press_both_hold() {
        let mut latch = latch();
        latch.fault(at(5));
        // The input reads pressed once it can be read: still tripped.
        assert!(!latch.edge(true, at(6)));
        assert_eq!(latch.state(), EstopState::Pressed);
        assert_eq!(latch.reset(at(100)), Err(ResetRefused::StillPressed));
    }
}
