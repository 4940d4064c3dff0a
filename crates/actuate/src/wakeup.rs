use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Wakes the ejector thread through an eventfd.
///
/// Why not a condition variable or a blocking channel receive: both park on a
/// user-space lock that the waking thread holds for a moment, and the waking
/// threads (the pipeline) are ordinary ones. Preempted while holding it on a
/// loaded machine, such a thread would hold up the real-time thread for
/// milliseconds (priority inversion). An eventfd is woken by a system call,
/// under the kernel's own locks.
#[derive(Debug)]
pub(crate) struct Wakeup {
    fd: OwnedFd,
}

impl Wakeup {
    pub(crate) fn new() -> io::Result<Wakeup> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new
        // descriptor that nothing else owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by no one else.
        Ok(Wakeup {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub(crate) fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own descriptor. A full
        // counter (EAGAIN) already means "wake up", so the result is moot.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&raw const one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Sleeps until notified or `timeout` has passed, and clears the notice.
    pub(crate) fn wait(&self, timeout: Duration) {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let timeout = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one valid pollfd, a valid timespec and no signal mask.
        unsafe { libc::ppoll(&mut poll, 1, &timeout, std::ptr::null()) };
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN when nothing
        // was pending is fine.
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&raw mut count).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

/// Asks the kernel not to defer this thread's timer wake-ups: the default
/// slack lets a timed sleep end up to 50 µs late.
pub(crate) fn no_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer.
    let _ = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}
