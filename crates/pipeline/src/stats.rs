use std::time::Duration;

use hdrhistogram::Histogram;

use crate::StageSummary;

/// Latency distribution of one stage, in microseconds, in bounded memory.
pub(crate) struct StageHistogram {
    name: &'static str,
    histogram: Histogram<u64>,
}

impl StageHistogram {
    pub fn new(name: &'static str) -> Self {
        StageHistogram {
            name,
            // 1 µs to 1 h at 3 significant digits: a few tens of KB.
            histogram: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }

    pub fn record(&mut self, duration: Duration) {
        self.histogram
            .saturating_record((duration.as_micros() as u64).max(1));
    }

    pub fn summary(&self) -> StageSummary {
        let at = |quantile| {
            if self.histogram.is_empty() {
                0
            } else {
                self.histogram.value_at_quantile(quantile)
            }
        };
        StageSummary {
            stage: self.name.to_string(),
            samples: self.histogram.len(),
            p50_us: at(0.5),
            p99_us: at(0.99),
            max_us: if self.histogram.is_empty() {
                0
            } else {
                self.histogram.max()
            },
        }
    }
}
