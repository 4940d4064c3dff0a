use std::sync::atomic::Ordering;
use std::time::Duration;

use edgesort_types::{Clock, Timestamp};
use embedded_hal::digital::InputPin;

use crate::scheduler::Shared;

/// How often an input watcher looks up from waiting to see whether it
/// should stop.
const WATCH_POLL: Duration = Duration::from_millis(50);

/// After a read error the e-stop watcher retries this often; the outputs stay
/// low meanwhile.
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(100);

/// One level change of an input line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputEdge {
    /// When the line changed, on the monotonic clock (the kernel's event
    /// timestamp for a GPIO line).
    pub at: Timestamp,
    /// The line's logical level afterwards: `true` is active.
    pub active: bool,
}

/// An input that reports its edges with timestamps, as the GPIO character
/// device's uAPI v2 does. The embedded-hal level (`is_high`) is the logical
/// level: active-low lines read high when active.
pub trait EdgeInput: InputPin + Send + 'static {
    /// Waits up to `timeout` for the next edge.
    fn wait_edge(&mut self, timeout: Duration) -> Result<Option<InputEdge>, Self::Error>;
}

pub(crate) fn watch_estop<I: EdgeInput>(mut input: I, shared: &Shared, clock: &dyn Clock) {
    let mut faulty = false;
    while !shared.stop.load(Ordering::SeqCst) {
        let waited = input.wait_edge(WATCH_POLL).map(|edge| {
            if let Some(edge) = edge {
                // The outputs first, from this thread where it may; then the
                // ejector thread, which drops the pending pulses.
                let read_at = clock.now();
                if edge.active && shared.force_low() {
                    shared.estop_reacted(read_at, clock.now());
                }
                shared.estop_edge(edge.active, edge.at);
            }
        });
        // After a read error no edge need ever come (the level may not
        // change), so the level is read as soon as the line answers again.
        let read = match waited {
            Ok(()) if faulty => input.is_high().map(|active| {
                tracing::warn!(active, "the e-stop input can be read again");
                shared.estop_edge(active, clock.now());
            }),
            other => other,
        };
        faulty = match read {
            Ok(()) => false,
            Err(error) => {
                // An e-stop we cannot see is a pressed e-stop.
                if !faulty {
                    tracing::error!(?error, "cannot read the e-stop input: treated as pressed");
                }
                shared.estop_fault(clock.now());
                std::thread::sleep(RETRY_AFTER_ERROR);
                true
            }
        };
    }
}

/// Watches a reset button: each active edge calls `pressed`. A read error
/// is logged and retried; it never resets anything.
pub(crate) fn watch_reset<I: EdgeInput>(mut input: I, shared: &Shared, pressed: impl Fn()) {
    while !shared.stop.load(Ordering::SeqCst) {
        match input.wait_edge(WATCH_POLL) {
            Ok(Some(edge)) if edge.active => pressed(),
            Ok(_) => {}
            Err(error) => {
                tracing::error!(?error, "cannot read the e-stop reset input");
                std::thread::sleep(RETRY_AFTER_ERROR);
            }
        }
    }
}

pub(crate) fn watch_encoder<I: EdgeInput>(mut input: I, shared: &Shared) {
    while !shared.stop.load(Ordering::SeqCst) {
        match input.wait_edge(WATCH_POLL) {
            Ok(Some(edge)) if edge.active => {
                shared
                    .belt
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .record_edge(edge.at);
                shared.wake();
            }
            Ok(_) => {}
            Err(error) => {
                // Without edges the belt reads as stopped and pulses wait,
                // which is the safe side.
                tracing::error!(?error, "cannot read the belt encoder");
                std::thread::sleep(RETRY_AFTER_ERROR);
            }
        }
    }
}
