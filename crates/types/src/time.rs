use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A point on a monotonic clock, in nanoseconds.
///
/// Live cameras stamp frames with `CLOCK_MONOTONIC` (V4L2 driver timestamps use
/// it), and the ejector scheduler compares against the same clock, so a frame's
/// timestamp and a pulse's fire time can be subtracted directly. Replays use a
/// clock that starts at zero on the first frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The clock's origin.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp `nanos` nanoseconds after the clock's origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// Nanoseconds since the clock's origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the clock's origin.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 * 1e-9
    }

    /// A timestamp `secs` seconds after the origin; negative values clamp to zero.
    pub fn from_secs_f64(secs: f64) -> Self {
        Timestamp((secs.max(0.0) * 1e9).round() as u64)
    }

    /// The time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self` moved forward by `duration`.
    pub fn saturating_add(self, duration: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration.as_nanos() as u64))
    }
}

/// A source of the current time, shared between the pipeline and the ejectors.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// `CLOCK_MONOTONIC`, the clock V4L2 stamps frames with.
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now(&self) -> Timestamp {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec, and CLOCK_MONOTONIC
        // exists on every Linux kernel, so the call cannot fail.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        Timestamp(now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64)
    }
}

/// A clock that moves only when told to: replays run on it so that results
/// depend on frame timestamps alone, never on how fast the machine is.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at the origin.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock to `time`. The clock never goes backwards.
    pub fn advance_to(&self, time: Timestamp) {
        self.0.fetch_max(time.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_never_goes_backwards() {
        let clock = ManualClock::new();
        clock.advance_to(Timestamp::from_nanos(50));
        clock.advance_to(Timestamp::from_nanos(20));
        assert_eq!(clock.now(), Timestamp::from_nanos(50));
    }

    #[test]
    fn monotonic_clock_advances() {
        let clock = MonotonicClock;
        let first = clock.now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(clock.now().saturating_since(first) >= Duration::from_millis(2));
    }
}
