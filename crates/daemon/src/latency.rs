use std::collections::VecDeque;
use std::time::{Duration, Instant};

use edgesort_pipeline::StageHistogram;

use crate::Percentiles;

/// Stages timed per frame, in the order [`LatencyWindow::record`] takes them.
/// `convert` is the frame's JPEG decode or colour conversion to RGB;
/// `capture_to_decision` runs from the frame's capture time (the driver's
/// timestamp for a camera) to its decisions made, so it holds every queue
/// wait too, not just the sum of the stages.
pub(crate) const TIMED_STAGES: [&str; 6] = [
    "convert",
    "preprocess",
    "inference",
    "postprocess",
    "track_decide",
    "capture_to_decision",
];

/// Frames the percentiles are taken over: the last 512 to 1024, some
/// seconds of a saturated line, in bounded memory whatever the uptime.
const WINDOW: u64 = 512;

/// Totals kept for the status page's sparkline.
const HISTORY: usize = 120;

/// Recent per-frame stage times.
pub(crate) struct LatencyWindow {
    stages: [StageHistogram; 6],
    history: VecDeque<f32>,
}

impl Default for LatencyWindow {
    fn default() -> Self {
        LatencyWindow {
            stages: TIMED_STAGES.map(|name| StageHistogram::windowed(name, WINDOW)),
            history: VecDeque::with_capacity(HISTORY),
        }
    }
}

impl LatencyWindow {
    /// Records one frame's times, in [`TIMED_STAGES`] order.
    pub fn record(&mut self, stages: [Duration; 6]) {
        for (stage, duration) in self.stages.iter_mut().zip(stages) {
            stage.record(duration);
        }
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(stages[5].as_secs_f32() * 1e3);
    }

    /// p50, p99 and max of each stage in ms, in [`TIMED_STAGES`] order.
    pub fn percentiles(&self) -> Vec<Percentiles> {
        let ms = |us: u64| us as f64 / 1e3;
        self.stages
            .iter()
            .map(|stage| {
                let summary = stage.summary();
                Percentiles {
                    p50: ms(summary.p50_us),
                    p99: ms(summary.p99_us),
                    max: ms(summary.max_us),
                }
            })
            .collect()
    }

    /// The newest capture-to-decision times in ms, oldest first.
    pub fn history(&self) -> Vec<f64> {
        self.history.iter().map(|&ms| f64::from(ms)).collect()
    }
}

/// Events per second over the last couple of seconds.
#[derive(Default)]
pub(crate) struct RateMeter {
    events: VecDeque<Instant>,
}

/// Events older than this no longer count towards the rate.
const RATE_SPAN: Duration = Duration::from_secs(2);

impl RateMeter {
    pub fn tick(&mut self, now: Instant) {
        self.events.push_back(now);
        self.forget_before(now);
    }

    pub fn per_second(&mut self, now: Instant) -> f64 {
        self.forget_before(now);
        match (self.events.front(), self.events.back()) {
            (Some(first), Some(last)) if self.events.len() > 1 => {
                (self.events.len() - 1) as f64 / last.duration_since(*first).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    fn forget_before(&mut self, now: Instant) {
        while self
            .events
            .front()
            .is_some_and(|first| now.duration_since(*first) > RATE_SPAN)
        {
            self.events.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_per_stage_in_ms_over_recent_frames() {
        let mut window = LatencyWindow::default();
        for ms in 1..=100u64 {
            let stage = Duration::from_millis(ms);
            let zero = Duration::ZERO;
            window.record([stage, zero, stage, zero, zero, stage * 3]);
        }
        let close = |found: f64, wanted: f64| (found / wanted - 1.0).abs() < 1e-3;
        let convert = window.percentiles()[0];
        assert!(
            close(convert.p50, 50.0) && close(convert.p99, 99.0) && close(convert.max, 100.0),
            "{convert:?}"
        );
        let capture_to_decision = window.percentiles()[5];
        assert!(
            close(capture_to_decision.max, 300.0),
            "{capture_to_decision:?}"
        );
        assert_eq!(window.history().len(), 100);
        assert_eq!(window.history().last(), Some(&300.0));
        for _ in 0..2 * WINDOW {
            window.record([Duration::from_millis(1); 6]);
        }
        assert!(
            close(window.percentiles()[0].max, 1.0),
            "old frames leave the window"
        );
        assert_eq!(window.history().len(), HISTORY);
    }

    #[test]
    fn the_rate_counts_recent_events_only() {
        let mut meter = RateMeter::default();
        let start = Instant::now();
        for frame in 0..=60 {
            meter.tick(start + Duration::from_millis(frame * 1000 / 60));
        }
        let fps = meter.per_second(start + Duration::from_secs(1));
        assert!((fps - 60.0).abs() < 0.5, "{fps}");
        assert_eq!(meter.per_second(start + Duration::from_secs(10)), 0.0);
    }
}
