use std::time::Duration;

use hdrhistogram::Histogram;

use crate::StageSummary;

/// Latency distribution of one stage, in microseconds, in bounded memory:
/// the one latency statistic of every line (a replay's report, the
/// daemon's status).
///
/// Over a whole run, or, [`StageHistogram::windowed`], over the recent
/// frames only: two histograms take turns, so the figures cover the last
/// `window` to `2 * window` frames.
pub struct StageHistogram {
    name: &'static str,
    current: Histogram<u64>,
    previous: Option<Histogram<u64>>,
    window: Option<u64>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 1 h at 3 significant digits: under 200 KB.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl StageHistogram {
    /// Every frame of a run.
    pub fn new(name: &'static str) -> Self {
        StageHistogram {
            name,
            current: histogram(),
            previous: None,
            window: None,
        }
    }

    /// The last `window` to `2 * window` frames.
    pub fn windowed(name: &'static str, window: u64) -> Self {
        StageHistogram {
            window: Some(window.max(1)),
            previous: Some(histogram()),
            ..StageHistogram::new(name)
        }
    }

    /// Records one frame's time.
    pub fn record(&mut self, duration: Duration) {
        if let (Some(window), Some(previous)) = (self.window, self.previous.as_mut())
            && self.current.len() >= window
        {
            std::mem::swap(previous, &mut self.current);
            self.current.reset();
        }
        self.current
            .saturating_record((duration.as_micros() as u64).max(1));
    }

    /// Median, 99th percentile and largest.
    pub fn summary(&self) -> StageSummary {
        let mut merged;
        let histogram = match &self.previous {
            Some(previous) if !previous.is_empty() => {
                merged = previous.clone();
                merged
                    .add(&self.current)
                    .expect("histograms of equal bounds add");
                &merged
            }
            _ => &self.current,
        };
        let at = |quantile| {
            if histogram.is_empty() {
                0
            } else {
                histogram.value_at_quantile(quantile)
            }
        };
        StageSummary {
            stage: self.name.to_string(),
            samples: histogram.len(),
            p50_us: at(0.5),
            p99_us: at(0.99),
            max_us: if histogram.is_empty() {
                0
            } else {
                histogram.max()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_forgets_frames_two_windows_old() {
        let mut stage = StageHistogram::windowed("convert", 100);
        for ms in 1..=100u64 {
            stage.record(Duration::from_millis(ms));
        }
        let summary = stage.summary();
        assert_eq!(summary.samples, 100);
        // Three significant digits: within 0.1 %.
        assert!(
            (summary.p50_us as f64 / 50_000.0 - 1.0).abs() < 1e-3,
            "{summary:?}"
        );
        assert!(
            (summary.p99_us as f64 / 99_000.0 - 1.0).abs() < 1e-3,
            "{summary:?}"
        );
        assert!(
            (summary.max_us as f64 / 100_000.0 - 1.0).abs() < 1e-3,
            "{summary:?}"
        );
        for _ in 0..100 {
            stage.record(Duration::from_millis(1));
        }
        assert_eq!(stage.summary().samples, 200, "one window back is kept");
        for _ in 0..100 {
            stage.record(Duration::from_millis(1));
        }
        let summary = stage.summary();
        assert!(
            summary.max_us < 1_002,
            "frames two windows old are gone: {summary:?}"
        );
    }

    #[test]
    fn a_run_keeps_every_frame() {
        let mut stage = StageHistogram::new("inference");
        for _ in 0..10_000 {
            stage.record(Duration::from_micros(300));
        }
        stage.record(Duration::from_secs(2));
        let summary = stage.summary();
        assert_eq!(summary.samples, 10_001);
        assert!(summary.max_us >= 2_000_000, "{summary:?}");
    }
}
