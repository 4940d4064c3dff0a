use std::time::Duration;

use edgesort_types::Timestamp;

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
}

/// The e-stop's latch: the first active edge trips it, with no debounce,
/// because a contact that bounces while being pressed must stop the machine
/// on its first bounce. Only the release is debounced: the line must stay
/// released for the debounce time before a reset re-arms the ejectors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EstopLatch {
    tripped: bool,
    line_active: bool,
    released_at: Timestamp,
    debounce: Duration,
}

impl EstopLatch {
    pub(crate) fn new(debounce: Duration) -> Self {
        EstopLatch {
            tripped: false,
            line_active: false,
            released_at: Timestamp::ZERO,
            debounce,
        }
    }

    pub(crate) fn tripped(&self) -> bool {
        self.tripped
    }

    /// Returns whether this edge tripped the latch.
    pub(crate) fn edge(&mut self, active: bool, at: Timestamp) -> bool {
        self.line_active = active;
        if !active {
            self.released_at = at;
            return false;
        }
        !std::mem::replace(&mut self.tripped, true)
    }

    pub(crate) fn reset(&mut self, now: Timestamp) -> Result<(), ResetRefused> {
        if !self.tripped {
            return Ok(());
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
        Ok(())
    }
}
