use std::sync::atomic::{AtomicBool, Ordering};

/// What real-time setup the ejector thread got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealtimeStatus {
    /// `SCHED_FIFO` at this priority, or why not.
    pub fifo: Result<u8, String>,
    /// Whether `mlockall` succeeded, or why not.
    pub memory_locked: Result<(), String>,
}

static WARNED: AtomicBool = AtomicBool::new(false);

/// Puts the calling thread on `SCHED_FIFO` at `priority` and locks the
/// process's memory, so that neither ordinary threads nor page faults can
/// delay an edge. Where that is not permitted it says so once and goes on.
pub(crate) fn make_realtime(priority: u8) -> RealtimeStatus {
    let fifo = set_fifo(priority);
    if priority == 0 {
        return RealtimeStatus {
            memory_locked: fifo.clone().map(drop),
            fifo,
        };
    }
    // SAFETY: mlockall takes flags only and touches no memory of ours.
    let memory_locked = match unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error().to_string()),
    };
    if (fifo.is_err() || memory_locked.is_err()) && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            fifo = ?fifo,
            mlockall = ?memory_locked,
            "real-time setup of the ejector thread not permitted; continuing without it, \
             so ejector timing may jitter under load (run with CAP_SYS_NICE and CAP_IPC_LOCK, \
             or LimitRTPRIO= and LimitMEMLOCK= in the service unit)"
        );
    }
    RealtimeStatus {
        fifo,
        memory_locked,
    }
}

/// Puts the calling thread on `SCHED_FIFO` at `priority`; 0 leaves it be.
pub(crate) fn set_fifo(priority: u8) -> Result<u8, String> {
    if priority == 0 {
        return Err("off (realtime_priority = 0)".into());
    }
    // SAFETY: sched_param is plain integers, for which zero is valid; musl
    // adds fields that glibc lacks, so it is not built field by field.
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = priority.into();
    // SAFETY: `param` is a valid sched_param and pthread_self() names the
    // calling thread, which outlives the call.
    match unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) } {
        0 => Ok(priority),
        code => Err(std::io::Error::from_raw_os_error(code).to_string()),
    }
}
