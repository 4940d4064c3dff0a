//! Streaming statistics of one activation tensor.

/// Bins of every activation histogram, as in TensorRT's entropy calibrator.
pub const HISTOGRAM_BINS: usize = 2048;

/// Magnitudes `|x|` of every value seen so far, in [`HISTOGRAM_BINS`] bins of
/// equal width, plus the exact extremes.
///
/// The range is not known before the first image, and a second pass over the
/// images to learn it would double the forward passes. So the first values
/// set the bin width, and when a later value falls past the last bin the
/// width doubles by merging neighbouring bins pairwise: an exact operation on
/// counts, so the histogram stays what a fixed-width histogram with the final
/// width would have counted. Memory is constant in the number of images.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    counts: Vec<u64>,
    bin_width: f32,
    min: f32,
    max: f32,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; HISTOGRAM_BINS],
            bin_width: 0.0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        }
    }
}

impl Histogram {
    /// Counts `values`. Non-finite values are left out of the bins;
    /// infinities still show in the extremes, so that they are noticed.
    pub fn add(&mut self, values: &[f32]) {
        let (mut low, mut high, mut largest) = (f32::INFINITY, f32::NEG_INFINITY, 0.0f32);
        for &value in values {
            low = low.min(value);
            high = high.max(value);
            if value.is_finite() {
                largest = largest.max(value.abs());
            }
        }
        self.min = self.min.min(low);
        self.max = self.max.max(high);
        if largest == 0.0 {
            // All zeros so far: nothing sets a width yet, but the zeros count.
            if self.bin_width == 0.0 {
                self.counts[0] += values.len() as u64;
                return;
            }
        } else if self.bin_width == 0.0 {
            // The largest value lands inside the last bin, not on its upper
            // edge, so that bins stay half-open through every doubling.
            self.bin_width = largest / (HISTOGRAM_BINS - 1) as f32;
        }
        while largest >= self.bin_width * HISTOGRAM_BINS as f32 {
            self.double_width();
        }
        let per_bin = 1.0 / self.bin_width;
        let last = HISTOGRAM_BINS - 1;
        for &value in values {
            if value.is_finite() {
                let bin = ((value.abs() * per_bin) as usize).min(last);
                self.counts[bin] += 1;
            }
        }
    }

    fn double_width(&mut self) {
        for bin in 0..HISTOGRAM_BINS / 2 {
            self.counts[bin] = self.counts[2 * bin] + self.counts[2 * bin + 1];
        }
        self.counts[HISTOGRAM_BINS / 2..].fill(0);
        self.bin_width *= 2.0;
    }

    /// Counts per bin.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Width of one bin (0 while every value seen was zero).
    pub fn bin_width(&self) -> f32 {
        self.bin_width
    }

    /// Smallest value seen.
    pub fn min(&self) -> f32 {
        self.min
    }

    /// Largest value seen.
    pub fn max(&self) -> f32 {
        self.max
    }

    /// Largest magnitude seen.
    pub fn max_magnitude(&self) -> f32 {
        self.min.abs().max(self.max.abs())
    }

    /// Values counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_values_set_the_width_and_extremes_are_exact() {
        let mut histogram = Histogram::default();
        histogram.add(&[-2.048, 1.0, 0.0005]);
        assert_eq!(histogram.bin_width(), 2.048 / 2047.0);
        assert_eq!((histogram.min(), histogram.max()), (-2.048, 1.0));
        assert_eq!(
            histogram.counts()[2047],
            1,
            "|-2.048| lands in the last bin"
        );
        assert_eq!(histogram.counts()[999], 1, "1.0 / (2.048 / 2047) = 999.5");
        assert_eq!(histogram.counts()[0], 1);
        assert_eq!(histogram.total(), 3);
    }

    #[test]
    fn a_wider_range_merges_bins_pairwise_without_losing_counts() {
        let mut widened = Histogram::default();
        widened.add(&[1.0, 0.25, 0.5]);
        widened.add(&[3.9]);
        // Doubling twice: width 4/2047, as if the histogram had started there.
        assert_eq!(widened.bin_width(), 4.0 / 2047.0);
        let mut direct = vec![0u64; HISTOGRAM_BINS];
        for value in [1.0f32, 0.25, 0.5, 3.9] {
            direct[(value / (4.0 / 2047.0)) as usize] += 1;
        }
        assert_eq!(widened.counts(), &direct[..]);
    }

    #[test]
    fn zeros_before_any_signal_still_count() {
        let mut histogram = Histogram::default();
        histogram.add(&[0.0; 5]);
        histogram.add(&[0.0, 2.0]);
        assert_eq!(histogram.counts()[0], 6);
        assert_eq!(histogram.total(), 7);
        assert_eq!(histogram.max_magnitude(), 2.0);
    }
}
