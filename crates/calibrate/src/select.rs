//! Choosing calibration frames from a live camera: keep a bounded set of
//! frames that differ from each other, not the first N (a belt often shows
//! the same empty scene for minutes).

/// Cells per side of the coarse colour layout that tells frames apart.
const GRID: usize = 4;
/// Length of a frame's signature: the mean colour of each cell.
const SIGNATURE: usize = GRID * GRID * 3;

/// A frame as the camera delivered it: width, height, packed RGB.
pub type RgbFrame = (u32, u32, Vec<u8>);

/// Up to `capacity` frames, chosen from everything offered so that the
/// closest two kept frames are as different as the stream allows.
///
/// Each frame is summarised by the mean colour of a 4x4 grid of cells. Once
/// full, a new frame replaces the kept frame that has the nearest neighbour
/// among the others, when the new frame's own nearest neighbour is farther.
/// Memory is `capacity` frames whatever the stream's length.
pub struct DiverseFrames {
    capacity: usize,
    kept: Vec<([f32; SIGNATURE], RgbFrame)>,
}

impl DiverseFrames {
    /// An empty selection that keeps at most `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        DiverseFrames {
            capacity,
            kept: Vec::with_capacity(capacity),
        }
    }

    /// Considers one frame; returns whether it was kept.
    pub fn offer(&mut self, frame: RgbFrame) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let signature = signature(&frame);
        if self.kept.len() < self.capacity {
            self.kept.push((signature, frame));
            return true;
        }
        let candidate = self.nearest(&signature, None);
        let (redundant, closest) = (0..self.kept.len())
            .map(|index| (index, self.nearest(&self.kept[index].0, Some(index))))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("capacity is at least 1");
        if candidate > closest {
            self.kept[redundant] = (signature, frame);
            true
        } else {
            false
        }
    }

    /// Distance from `signature` to the nearest kept frame other than `skip`.
    fn nearest(&self, signature: &[f32; SIGNATURE], skip: Option<usize>) -> f32 {
        self.kept
            .iter()
            .enumerate()
            .filter(|(index, _)| Some(*index) != skip)
            .map(|(_, (other, _))| distance(signature, other))
            .fold(f32::INFINITY, f32::min)
    }

    /// Frames kept so far.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The kept frames, to feed a [`crate::Collector`].
    pub fn into_frames(self) -> Vec<RgbFrame> {
        self.kept.into_iter().map(|(_, frame)| frame).collect()
    }
}

fn signature((width, height, rgb): &RgbFrame) -> [f32; SIGNATURE] {
    let (width, height) = (*width as usize, *height as usize);
    let mut sums = [0.0f64; SIGNATURE];
    let mut counts = [0u32; GRID * GRID];
    for y in 0..height {
        let row = (y * GRID / height.max(1)).min(GRID - 1);
        for x in 0..width {
            let cell = row * GRID + (x * GRID / width.max(1)).min(GRID - 1);
            let pixel = &rgb[3 * (y * width + x)..3 * (y * width + x) + 3];
            for channel in 0..3 {
                sums[3 * cell + channel] += f64::from(pixel[channel]);
            }
            counts[cell] += 1;
        }
    }
    let mut signature = [0.0f32; SIGNATURE];
    for (index, value) in signature.iter_mut().enumerate() {
        let count = counts[index / 3].max(1);
        *value = (sums[index] / f64::from(count) / 255.0) as f32;
    }
    signature
}

fn distance(a: &[f32; SIGNATURE], b: &[f32; SIGNATURE]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(value: u8) -> RgbFrame {
        (8, 8, vec![value; 8 * 8 * 3])
    }

    #[test]
    fn a_long_empty_stretch_does_not_crowd_out_rare_scenes() {
        let mut selection = DiverseFrames::new(4);
        for _ in 0..3 {
            selection.offer(uniform(100));
        }
        // Three different scenes arrive after the belt sat empty.
        for value in [10, 180, 250] {
            assert!(selection.offer(uniform(value)), "scene {value} kept");
        }
        for _ in 0..20 {
            assert!(
                !selection.offer(uniform(100)),
                "another empty frame adds nothing"
            );
        }
        let mut kept: Vec<u8> = selection
            .into_frames()
            .iter()
            .map(|frame| frame.2[0])
            .collect();
        kept.sort();
        assert_eq!(kept, [10, 100, 180, 250]);
    }

    #[test]
    fn the_layout_of_colour_matters_not_only_its_mean() {
        let mut left_dark = uniform(200);
        let mut right_dark = uniform(200);
        for y in 0..8 {
            for x in 0..4 {
                left_dark.2[3 * (y * 8 + x)..3 * (y * 8 + x) + 3].fill(0);
                right_dark.2[3 * (y * 8 + x + 4)..3 * (y * 8 + x + 4) + 3].fill(0);
            }
        }
        assert!(distance(&signature(&left_dark), &signature(&right_dark)) > 1.0);
    }

    #[test]
    fn capacity_bounds_what_is_kept() {
        let mut selection = DiverseFrames::new(2);
        for value in 0..50 {
            selection.offer(uniform(value * 5));
        }
        assert_eq!(selection.len(), 2);
        assert!(!DiverseFrames::new(0).offer(uniform(1)));
    }
}
