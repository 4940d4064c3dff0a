use edgesort_actuate::{
    ActuateError, BeltMotion, EjectorBank, EjectorScheduler, PulseReport, PulseRequest,
};
use edgesort_types::{Clock, ManualClock, Timestamp};
use embedded_hal::digital::OutputPin;

/// The ejector bank, driven the way the pacing needs.
pub(crate) enum Ejectors<P: OutputPin> {
    /// Serviced by the pipeline at each frame's timestamp, on a manual clock:
    /// edges land exactly at their planned times, whatever the machine's speed.
    Replay {
        bank: EjectorBank<P>,
        belt: BeltMotion,
        clock: ManualClock,
        reports: Vec<PulseReport>,
    },
    /// Serviced by a thread of its own on the monotonic clock.
    Realtime(EjectorScheduler),
}

impl<P: OutputPin + Send + 'static> Ejectors<P> {
    /// Fires everything due up to `time` (replay only; a live bank keeps its own time).
    pub fn advance_to(&mut self, time: Timestamp) -> Result<(), ActuateError> {
        if let Ejectors::Replay {
            bank,
            belt,
            clock,
            reports,
        } = self
        {
            reports.extend(bank.advance_to(clock, time, belt)?);
        }
        Ok(())
    }

    pub fn heartbeat(&mut self, now: Timestamp) {
        match self {
            Ejectors::Replay { bank, .. } => bank.heartbeat(now),
            Ejectors::Realtime(ejectors) => ejectors.heartbeat(),
        }
    }

    pub fn schedule(&mut self, request: PulseRequest) -> Result<(), ActuateError> {
        match self {
            Ejectors::Replay {
                bank,
                belt,
                clock,
                reports,
            } => {
                reports.extend(bank.schedule(request, clock.now(), belt));
                Ok(())
            }
            Ejectors::Realtime(ejectors) => ejectors.schedule(request),
        }
    }

    pub fn take_reports(&mut self) -> Vec<PulseReport> {
        match self {
            Ejectors::Replay { reports, .. } => std::mem::take(reports),
            Ejectors::Realtime(ejectors) => ejectors.take_reports(),
        }
    }

    /// Fires every pending pulse and returns the remaining reports.
    pub fn finish(self) -> Result<Vec<PulseReport>, ActuateError> {
        match self {
            Ejectors::Replay {
                mut bank,
                belt,
                clock,
                mut reports,
            } => {
                bank.end_input();
                while let Some(deadline) = bank.next_deadline(clock.now(), &belt) {
                    clock.advance_to(deadline);
                    reports.extend(bank.service(deadline, &belt)?);
                }
                Ok(reports)
            }
            Ejectors::Realtime(ejectors) => ejectors.finish(),
        }
    }
}
