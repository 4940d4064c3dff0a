use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};

/// Outputs that any thread may force low at any moment: the panic hook and
/// the signal thread use it while the ejector thread may be mid-pulse. The
/// GPIO character device allows this, because a line request is a file
/// descriptor that any thread may write.
pub trait ForceLow: Send + Sync {
    /// Drives every output low, logging (never returning) failures.
    fn force_low(&self);
}

impl<T: ForceLow> ForceLow for Vec<T> {
    fn force_low(&self) {
        for output in self {
            output.force_low();
        }
    }
}

static REGISTERED: Mutex<Vec<(u64, Arc<dyn ForceLow>)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static PANIC_HOOK: Once = Once::new();

/// Keeps outputs in the fail-safe registry until dropped.
#[must_use = "the outputs leave the fail-safe registry when this is dropped"]
pub struct FailSafe {
    id: u64,
}

impl FailSafe {
    /// Registers `outputs` to be forced low on a panic anywhere in the
    /// process, and on SIGINT, SIGTERM, SIGHUP and SIGQUIT once
    /// [`on_termination_signals`] is set up. Installs the panic hook the
    /// first time.
    pub fn register(outputs: Arc<dyn ForceLow>) -> FailSafe {
        PANIC_HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                force_all_low();
                previous(info);
            }));
        });
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        REGISTERED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, outputs));
        FailSafe { id }
    }
}

impl Drop for FailSafe {
    fn drop(&mut self) {
        REGISTERED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(id, _)| *id != self.id);
    }
}

/// Forces every registered output low.
pub fn force_all_low() {
    // try_lock: a panic raised while the registry is held must not deadlock
    // its own hook; the thread holding it is then registering or leaving.
    let registered = match REGISTERED.try_lock() {
        Ok(registered) => registered.clone(),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner().clone(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    for (_, outputs) in registered {
        outputs.force_low();
    }
}

/// On SIGINT, SIGTERM, SIGHUP or SIGQUIT: forces every registered output low
/// and raises the returned flag, so the program winds down through its normal
/// exit; a second signal ends the process at once. The outputs go low from a
/// thread of our own, because a signal handler may not take locks.
pub fn on_termination_signals() -> std::io::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
    let requested = Arc::new(AtomicBool::new(false));
    let flag = requested.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                force_all_low();
                if flag.swap(true, Ordering::SeqCst) {
                    std::process::exit(128 + signal);
                }
                tracing::warn!(signal, "termination signal: ejector outputs driven low");
            }
        })?;
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use edgesort_types::{Clock, MonotonicClock};
    use embedded_hal::digital::OutputPin;

    use super::*;
    use crate::SimulatedPin;

    fn high_pin() -> SimulatedPin {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
        let mut pin = SimulatedPin::new(clock);
        pin.set_high().unwrap();
        pin
    }

    #[test]
    fn a_panic_anywhere_forces_registered_outputs_low() {
        let pin = high_pin();
        let _registered = FailSafe::register(Arc::new(vec![pin.clone()]));
        let result = std::thread::spawn(|| panic!("a stage failed")).join();
        assert!(result.is_err());
        assert!(!pin.is_set_high());
    }

    #[test]
    fn a_termination_signal_forces_outputs_low_and_asks_to_stop() {
        let pin = high_pin();
        let _registered = FailSafe::register(Arc::new(pin.clone()));
        let requested = on_termination_signals().unwrap();
        // SAFETY: raising a signal that the handler above catches.
        unsafe { libc::raise(libc::SIGTERM) };
        let give_up = Instant::now() + Duration::from_secs(10);
        while !requested.load(Ordering::SeqCst) {
            assert!(Instant::now() < give_up, "the signal never arrived");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!pin.is_set_high());
    }

    #[test]
    fn unregistered_outputs_are_left_alone() {
        let pin = high_pin();
        drop(FailSafe::register(Arc::new(pin.clone())));
        force_all_low();
        assert!(pin.is_set_high());
    }
}
