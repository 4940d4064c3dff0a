//! Engine builds for an update run beside a line that is sorting: they get
//! what the line leaves over, never the other way round.

/// Lowest CPU priority (nice 19).
const NICE_LOWEST: libc::c_int = 19;
/// `ioprio_set` class "idle": disk time only when nobody else wants it.
const IOPRIO_CLASS_IDLE: libc::c_int = 3;
const IOPRIO_CLASS_SHIFT: libc::c_int = 13;
const IOPRIO_WHO_PROCESS: libc::c_int = 1;

/// Runs `work` on a thread of its own at nice 19 and idle I/O priority;
/// threads it starts (TensorRT's builder threads) inherit both. The
/// caller's own priority is left as it was, which a process without
/// CAP_SYS_NICE could not restore once lowered.
pub fn at_low_priority<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                lower_this_thread();
                work()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn lower_this_thread() {
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let thread = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, NICE_LOWEST) != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "could not lower the build's CPU priority");
        }
        let idle = IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT;
        if libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, thread, idle) != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "could not lower the build's I/O priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn this_thread_nice() -> libc::c_int {
        // SAFETY: getpriority on the calling thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn the_work_runs_at_nice_19_and_the_caller_keeps_its_priority() {
        let before = this_thread_nice();
        let (inside, in_child_thread) = at_low_priority(|| {
            let child = std::thread::spawn(this_thread_nice).join().unwrap();
            (this_thread_nice(), child)
        });
        assert_eq!(inside, NICE_LOWEST);
        assert_eq!(in_child_thread, NICE_LOWEST);
        assert_eq!(this_thread_nice(), before);
    }
}
