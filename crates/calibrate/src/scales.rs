//! From a histogram to the largest magnitude an INT8 tensor represents
//! (`amax`; scale = amax / 127).

use edgesort_types::config::{CalibrationConfig, CalibrationMethod};
use serde::Serialize;

use crate::histogram::Histogram;

/// INT8 levels on one side of zero, the target of the entropy search.
pub const INT8_LEVELS: usize = 128;

/// How an activation's range is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The threshold whose INT8 rendering loses the least information:
    /// minimum KL divergence, as TensorRT's EntropyCalibration2.
    Entropy,
    /// The magnitude below which this percentage of values falls.
    Percentile(f64),
    /// The largest magnitude seen.
    Max,
}

impl Method {
    /// The method `[calibration]` in the configuration names.
    pub fn configured(config: &CalibrationConfig) -> Method {
        match config.method {
            CalibrationMethod::Entropy => Method::Entropy,
            CalibrationMethod::Percentile => Method::Percentile(config.percentile),
            CalibrationMethod::Max => Method::Max,
        }
    }

    /// The range this method picks for `histogram`; 0 when every value was 0.
    pub fn amax(&self, histogram: &Histogram) -> f32 {
        let width = histogram.bin_width();
        if width == 0.0 {
            return 0.0;
        }
        match *self {
            Method::Max => histogram.max_magnitude(),
            Method::Percentile(percent) => {
                percentile_bins(histogram.counts(), percent) as f32 * width
            }
            Method::Entropy => entropy_bins(histogram.counts(), INT8_LEVELS) as f32 * width,
        }
    }
}

/// How many leading bins hold `percent` % of all counts.
pub fn percentile_bins(counts: &[u64], percent: f64) -> usize {
    let total: u64 = counts.iter().sum();
    let wanted = (total as f64 * percent / 100.0).ceil() as u64;
    let mut seen = 0;
    for (bin, &count) in counts.iter().enumerate() {
        seen += count;
        if seen >= wanted {
            return bin + 1;
        }
    }
    counts.len()
}

/// How many leading bins to keep so that rendering them with `levels` levels
/// diverges least from the whole distribution (TensorRT's entropy
/// calibration, after Migacz, "8-bit Inference with TensorRT", 2017).
///
/// For each candidate `kept` from `levels` to the last non-empty bin:
/// - `P` is the first `kept` bins, with every count beyond them added to the
///   last one (values past the threshold saturate to it);
/// - `Q` splits those `kept` bins (without the saturated counts) into
///   `levels` runs as equal as integers allow, and spreads each run's total
///   evenly over its non-empty bins; empty bins stay empty;
/// - the divergence is `KL(P‖Q) = Σ p·ln(p/q)` over normalised `P` and `Q`,
///   infinite where `Q` is empty but `P` is not.
///
/// The smallest divergence wins, ties going to the wider range (less
/// clipping). Returns the number of bins kept; the threshold is their upper
/// edge. A histogram whose data fits in `levels` bins is kept whole.
pub fn entropy_bins(counts: &[u64], levels: usize) -> usize {
    let used = counts
        .iter()
        .rposition(|&count| count > 0)
        .map_or(0, |last| last + 1);
    if used <= levels {
        return used.max(1);
    }
    let mut best = (f64::INFINITY, used);
    let mut reference = Vec::with_capacity(used);
    let mut candidate = Vec::with_capacity(used);
    for kept in levels..=used {
        let outliers: u64 = counts[kept..].iter().sum();
        reference.clear();
        reference.extend(counts[..kept].iter().map(|&count| count as f64));
        reference[kept - 1] += outliers as f64;

        candidate.clear();
        candidate.resize(kept, 0.0);
        for level in 0..levels {
            let run = level * kept / levels..(level + 1) * kept / levels;
            let bins = &counts[run.clone()];
            let total: u64 = bins.iter().sum();
            let non_empty = bins.iter().filter(|&&count| count > 0).count();
            if non_empty == 0 {
                continue;
            }
            let share = total as f64 / non_empty as f64;
            for (slot, &count) in candidate[run].iter_mut().zip(bins) {
                if count > 0 {
                    *slot = share;
                }
            }
        }
        let divergence = kl_divergence(&reference, &candidate);
        if divergence <= best.0 {
            best = (divergence, kept);
        }
    }
    best.1
}

/// `KL(P‖Q)` of two unnormalised distributions over the same bins.
fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    let p_total: f64 = p.iter().sum();
    let q_total: f64 = q.iter().sum();
    if p_total == 0.0 || q_total == 0.0 {
        return f64::INFINITY;
    }
    let mut divergence = 0.0;
    for (&p, &q) in p.iter().zip(q) {
        if p > 0.0 {
            if q == 0.0 {
                return f64::INFINITY;
            }
            let (p, q) = (p / p_total, q / q_total);
            divergence += p * (p / q).ln();
        }
    }
    divergence
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_counts_leading_bins() {
        let counts = [50, 30, 15, 4, 1];
        assert_eq!(percentile_bins(&counts, 50.0), 1);
        assert_eq!(percentile_bins(&counts, 80.0), 2);
        assert_eq!(percentile_bins(&counts, 99.0), 4);
        assert_eq!(percentile_bins(&counts, 99.5), 5);
        assert_eq!(percentile_bins(&counts, 100.0), 5);
    }

    /// Worked by hand, with 2 levels over the histogram `[4, 0, 2, 2, 1, 1]`:
    /// - keep 2: P = [4, 6] (6 saturated into bin 1); Q = [4, 0] (each level
    ///   is one bin, bin 1 is empty) → Q empty where P is not: infinite.
    /// - keep 3: P = [4, 0, 6]; runs [0..1) and [1..3) hold 4 and 2 (one
    ///   non-empty bin) → Q = [4, 0, 2]. Normalised P = [0.4, 0, 0.6],
    ///   Q = [2/3, 0, 1/3]: KL = 0.4·ln(0.6) + 0.6·ln(1.8) = 0.148342.
    /// - keep 4: P = [4, 0, 2, 4]; runs [0..2) and [2..4) hold 4 (one
    ///   non-empty bin) and 4 (two) → Q = [4, 0, 2, 2]. P = [.4, 0, .2, .4],
    ///   Q = [.5, 0, .25, .25]: KL = .4·ln(.8) + .2·ln(.8) + .4·ln(1.6)
    ///   = 0.054115.
    /// - keep 5: P = [4, 0, 2, 2, 2]; runs [0..2) and [2..5) hold 4 and 5
    ///   over three bins → Q = [4, 0, 5/3, 5/3, 5/3], total 9. P/10 against
    ///   Q/9: KL = .4·ln(.4/(4/9)) + 3·(.2·ln(.2/(5/27))) = 0.004032.
    /// - keep 6 (everything): P = [4, 0, 2, 2, 1, 1]; runs [0..3) and [3..6)
    ///   hold 6 over two bins and 4 over three → Q = [3, 0, 3, 4/3, 4/3,
    ///   4/3], total 10: KL = .4·ln(4/3) + .2·ln(2/3) + .2·ln(1.5)
    ///   + 2·(.1·ln(.75)) = 0.057536.
    ///
    /// Keeping 5 bins diverges least.
    #[test]
    fn entropy_search_matches_the_hand_computed_divergences() {
        let counts = [4, 0, 2, 2, 1, 1];
        assert_eq!(entropy_bins(&counts, 2), 5);
        let divergence = |p: &[f64], q: &[f64]| kl_divergence(p, q);
        assert!(divergence(&[4.0, 6.0], &[4.0, 0.0]).is_infinite());
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(
            divergence(&[4.0, 0.0, 6.0], &[4.0, 0.0, 2.0]),
            0.148342
        ));
        assert!(close(
            divergence(&[4.0, 0.0, 2.0, 4.0], &[4.0, 0.0, 2.0, 2.0]),
            0.054115
        ));
        let third = 5.0 / 3.0;
        assert!(close(
            divergence(&[4.0, 0.0, 2.0, 2.0, 2.0], &[4.0, 0.0, third, third, third]),
            0.004032
        ));
        let four_thirds = 4.0 / 3.0;
        assert!(close(
            divergence(
                &[4.0, 0.0, 2.0, 2.0, 1.0, 1.0],
                &[3.0, 0.0, 3.0, four_thirds, four_thirds, four_thirds]
            ),
            0.057536
        ));
    }

    #[test]
    fn entropy_clips_a_long_thin_tail() {
        // A bell of values with a few far outliers: the threshold lands near
        // the bell's edge, not at the outliers, and never below the levels.
        let mut counts = vec![0u64; 2048];
        for (bin, count) in counts.iter_mut().enumerate().take(400) {
            *count = 10_000 - (bin as u64 * 25);
        }
        counts[2000] = 3;
        let kept = entropy_bins(&counts, 128);
        assert!((300..=600).contains(&kept), "kept {kept}");
    }

    #[test]
    fn data_within_the_levels_is_kept_whole() {
        assert_eq!(entropy_bins(&[5, 0, 3], 128), 3);
        assert_eq!(entropy_bins(&[0, 0, 0], 128), 1);
    }

    #[test]
    fn every_method_maps_bins_to_magnitudes() {
        let mut histogram = Histogram::default();
        let values: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        histogram.add(&values);
        histogram.add(&[-8.0]);
        assert_eq!(Method::Max.amax(&histogram), 8.0);
        let percentile = Method::Percentile(99.0).amax(&histogram);
        assert!((0.98..=1.0).contains(&percentile), "{percentile}");
        let entropy = Method::Entropy.amax(&histogram);
        assert!((0.5..=1.1).contains(&entropy), "{entropy}");
    }
}
