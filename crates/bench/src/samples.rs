use std::time::Duration;

use serde::Serialize;

/// Every recorded time of one stage.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    nanos: Vec<u64>,
}

impl Samples {
    /// Records one sample.
    pub fn record(&mut self, duration: Duration) {
        self.nanos.push(duration.as_nanos() as u64);
    }

    /// p50, p99 and max (nearest-rank) of what was recorded.
    pub fn timing(&self, stage: &str) -> StageTiming {
        let mut sorted = self.nanos.clone();
        sorted.sort_unstable();
        let rank = |quantile: f64| nearest_rank(&sorted, quantile).map_or(0.0, |n| n as f64 / 1e6);
        StageTiming {
            stage: stage.to_owned(),
            samples: sorted.len(),
            p50_ms: rank(0.5),
            p99_ms: rank(0.99),
            max_ms: sorted.last().map_or(0.0, |&max| max as f64 / 1e6),
        }
    }
}

/// The nearest-rank `quantile` (0..=1) of `sorted`; `None` when empty.
pub(crate) fn nearest_rank<T: Copy>(sorted: &[T], quantile: f64) -> Option<T> {
    let index = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(index - 1).copied()
}

/// One stage's time per frame.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageTiming {
    /// Stage name.
    pub stage: String,
    /// Frames timed.
    pub samples: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples = Samples::default();
        for micros in 1..=200 {
            samples.record(Duration::from_micros(micros));
        }
        let timing = samples.timing("x");
        assert_eq!(timing.samples, 200);
        assert_eq!(
            (timing.p50_ms, timing.p99_ms, timing.max_ms),
            (0.1, 0.198, 0.2)
        );
        assert_eq!(Samples::default().timing("empty").max_ms, 0.0);
    }
}
