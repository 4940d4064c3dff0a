use std::collections::VecDeque;
use std::time::{Duration, Instant};

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

/// Frames the percentiles are taken over: some seconds of a saturated line,
/// in bounded memory whatever the uptime.
const WINDOW: usize = 512;

/// Totals kept for the status page's sparkline.
const HISTORY: usize = 120;

/// Recent per-frame stage times.
#[derive(Default)]
pub(crate) struct LatencyWindow {
    frames: VecDeque<[f32; 6]>,
}

impl LatencyWindow {
    /// Records one frame's times, in [`TIMED_STAGES`] order.
    pub fn record(&mut self, stages: [Duration; 6]) {
        let mut row = [0.0f32; 6];
        for (slot, duration) in row.iter_mut().zip(stages) {
            *slot = duration.as_secs_f32() * 1e3;
        }
        if self.frames.len() == WINDOW {
            self.frames.pop_front();
        }
        self.frames.push_back(row);
    }

    /// p50, p99 and max of each stage, in [`TIMED_STAGES`] order.
    pub fn percentiles(&self) -> Vec<Percentiles> {
        (0..TIMED_STAGES.len())
            .map(|stage| {
                let mut values: Vec<f32> = self.frames.iter().map(|row| row[stage]).collect();
                values.sort_by(f32::total_cmp);
                let at = |quantile: f64| {
                    if values.is_empty() {
                        return 0.0;
                    }
                    let rank = (quantile * values.len() as f64).ceil() as usize;
                    f64::from(values[rank.clamp(1, values.len()) - 1])
                };
                Percentiles {
                    p50: at(0.5),
                    p99: at(0.99),
                    max: at(1.0),
                }
            })
            .collect()
    }

    /// The newest capture-to-decision times, oldest first.
    pub fn history(&self) -> Vec<f64> {
        let skip = self.frames.len().saturating_sub(HISTORY);
        self.frames
            .iter()
            .skip(skip)
            .map(|row| f64::from(row[5]))
            .collect()
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
    fn percentiles_are_nearest_rank_over_the_window() {
        let mut window = LatencyWindow::default();
        for ms in 1..=100u64 {
            let stage = Duration::from_millis(ms);
            let zero = Duration::ZERO;
            window.record([stage, zero, stage, zero, zero, stage * 3]);
        }
        let convert = window.percentiles()[0];
        assert_eq!((convert.p50, convert.p99, convert.max), (50.0, 99.0, 100.0));
        let capture_to_decision = window.percentiles()[5];
        assert_eq!(capture_to_decision.max, 300.0);
        assert_eq!(window.history().len(), 100);
        assert_eq!(window.history().last(), Some(&300.0));
        for _ in 0..WINDOW {
            window.record([Duration::from_millis(1); 6]);
        }
        assert_eq!(
            window.percentiles()[0].max,
            1.0,
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
