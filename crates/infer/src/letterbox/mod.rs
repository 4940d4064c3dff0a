use crate::InferError;

#[cfg(target_arch = "x86_64")]
mod halve_avx2;

/// The grey the model was trained to see as "nothing", 114/255.
pub const PAD_VALUE: f32 = 114.0 / 255.0;

/// What input sizes the model accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputShape {
    /// Exactly this width and height.
    Fixed {
        /// Input width.
        width: u32,
        /// Input height.
        height: u32,
    },
    /// Any size that is a multiple of `stride`, up to `max_side` on either axis.
    Dynamic {
        /// The model's largest downsampling factor.
        stride: u32,
        /// The longest side the frame is scaled to.
        max_side: u32,
    },
}

/// Where a frame lands inside the model input: scale, resized size and padding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    /// Frame width.
    pub frame_width: u32,
    /// Frame height.
    pub frame_height: u32,
    /// Model input width.
    pub input_width: u32,
    /// Model input height.
    pub input_height: u32,
    /// Input pixels per frame pixel.
    pub scale: f32,
    /// Width of the scaled frame inside the input.
    pub resized_width: u32,
    /// Height of the scaled frame inside the input.
    pub resized_height: u32,
    /// Columns of padding left of the frame.
    pub pad_left: u32,
    /// Rows of padding above the frame.
    pub pad_top: u32,
}

impl Letterbox {
    /// Plans the letterbox the way Ultralytics' `LetterBox` does for this
    /// shape: scale to fit, round the scaled size, split the padding evenly
    /// (the odd pixel goes right and bottom).
    pub fn plan(
        frame_width: u32,
        frame_height: u32,
        shape: InputShape,
    ) -> Result<Self, InferError> {
        if frame_width == 0 || frame_height == 0 {
            return Err(InferError::FrameGeometry {
                width: frame_width,
                height: frame_height,
                reason: "the frame is empty".into(),
            });
        }
        let (target_width, target_height) = match shape {
            InputShape::Fixed { width, height } => (width, height),
            InputShape::Dynamic { max_side, .. } => (max_side, max_side),
        };
        let scale = (target_width as f32 / frame_width as f32)
            .min(target_height as f32 / frame_height as f32);
        let resized_width = ((frame_width as f32 * scale).round() as u32).clamp(1, target_width);
        let resized_height = ((frame_height as f32 * scale).round() as u32).clamp(1, target_height);
        let (input_width, input_height) = match shape {
            InputShape::Fixed { width, height } => (width, height),
            InputShape::Dynamic { stride, .. } => (
                resized_width.div_ceil(stride) * stride,
                resized_height.div_ceil(stride) * stride,
            ),
        };
        let half_pad = |total: u32| ((total as f32 / 2.0) - 0.1).round() as u32;
        Ok(Letterbox {
            frame_width,
            frame_height,
            input_width,
            input_height,
            scale,
            resized_width,
            resized_height,
            pad_left: half_pad(input_width - resized_width),
            pad_top: half_pad(input_height - resized_height),
        })
    }

    /// Number of f32 values in the planar RGB input tensor.
    pub fn tensor_len(&self) -> usize {
        3 * self.input_width as usize * self.input_height as usize
    }

    /// Maps an input-tensor x coordinate back to frame pixels.
    pub fn to_frame_x(&self, x: f32) -> f32 {
        (x - self.pad_left as f32) / self.scale
    }

    /// Maps an input-tensor y coordinate back to frame pixels.
    pub fn to_frame_y(&self, y: f32) -> f32 {
        (y - self.pad_top as f32) / self.scale
    }

    /// A decoded candidate, from input-tensor to frame pixels, clamped to
    /// the frame.
    pub fn to_detection(&self, candidate: &crate::Candidate) -> edgesort_types::Detection {
        let (width, height) = (self.frame_width as f32, self.frame_height as f32);
        let bbox = &candidate.bbox;
        edgesort_types::Detection {
            bbox: edgesort_types::BoundingBox {
                x1: self.to_frame_x(bbox.x1).clamp(0.0, width),
                y1: self.to_frame_y(bbox.y1).clamp(0.0, height),
                x2: self.to_frame_x(bbox.x2).clamp(0.0, width),
                y2: self.to_frame_y(bbox.y2).clamp(0.0, height),
            },
            class: candidate.class,
            confidence: candidate.score,
        }
    }

    /// Precomputes the interpolation taps for this plan, so that filling a
    /// frame does no allocation and no index arithmetic beyond table reads.
    pub fn resampler(&self) -> Resampler {
        let columns = axis_taps(self.frame_width, self.resized_width);
        let rows = axis_taps(self.frame_height, self.resized_height);
        let whole_pixels = BoxTaps::detect(&columns).zip(BoxTaps::detect(&rows));
        Resampler {
            plan: *self,
            whole_pixels,
            columns,
            rows,
            blended_row: vec![0.0; 3 * self.frame_width as usize],
            summed_row: match whole_pixels {
                Some(_) => vec![0; 3 * self.frame_width as usize],
                None => Vec::new(),
            },
            #[cfg(target_arch = "x86_64")]
            simd_halving: true,
        }
    }
}

/// Multiplying by this instead of dividing by 255 keeps the hot loop free of
/// divisions; both the fast path and the reference use it, so they agree bit
/// for bit.
const INV_255: f32 = 1.0 / 255.0;

/// One output sample's two source samples and their weights.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tap {
    low: usize,
    high: usize,
    low_weight: f32,
    high_weight: f32,
}

/// A [`Letterbox`] with its interpolation tables, ready to fill frames.
///
/// Each value is `((top[low]·wy0 + bottom[low]·wy1)·wx0 + (top[high]·wy0 +
/// bottom[high]·wy1)·wx1) / 255`, evaluated in exactly that order: the rows
/// are blended first over the whole frame width (a loop the compiler
/// vectorises), then each output column reads its two blended samples.
/// Integer downscales, the common camera-to-model case, take a path in
/// integers that gives the same bits (see [`BoxTaps`]). The padding is written
/// once per fill and only where it shows.
#[derive(Clone, Debug)]
pub struct Resampler {
    plan: Letterbox,
    columns: Vec<Tap>,
    rows: Vec<Tap>,
    /// Column and row patterns when both axes take whole source pixels.
    whole_pixels: Option<(BoxTaps, BoxTaps)>,
    /// One source row of blended samples, planar.
    blended_row: Vec<f32>,
    /// One source row of summed pixels, planar, for the whole-pixel path.
    summed_row: Vec<u16>,
    /// Whether 2:1 downscales may take the AVX2 kernel where the CPU has
    /// it; the tests turn it off to compare it with the portable path.
    #[cfg(target_arch = "x86_64")]
    simd_halving: bool,
}

/// An axis on which output sample `i` is source sample `first + step·i`
/// (weights 1 and 0) or the mean of it and the next one (0.5 and 0.5). Every
/// integer downscale has this form: 1:1, and 2:1 and 3:1 from 1280- and
/// 1920-wide cameras to a 640-wide model.
///
/// There the bilinear formula is exact arithmetic up to its last step: every
/// product and sum is a multiple of 1/4 below 1024, which f32 holds exactly,
/// so the value is `(sum of the 1, 2 or 4 pixels) / count / 255` rounded
/// once. Summing in integers and multiplying by `1 / count / 255` (dividing
/// by a power of two is exact too) rounds the same real number, so it gives
/// the same bits with a quarter of the arithmetic.
#[derive(Clone, Copy, Debug, PartialEq)]
struct BoxTaps {
    first: usize,
    step: usize,
    samples: usize,
}

impl BoxTaps {
    fn detect(taps: &[Tap]) -> Option<Self> {
        let head = taps.first()?;
        let step = taps
            .get(1)
            .map_or(1, |next| next.low.wrapping_sub(head.low));
        let samples = match (head.low_weight, head.high_weight) {
            (1.0, 0.0) => 1,
            (0.5, 0.5) => 2,
            _ => return None,
        };
        let pattern = BoxTaps {
            first: head.low,
            step,
            samples,
        };
        let regular = taps.iter().enumerate().all(|(index, tap)| {
            tap.low == pattern.first + pattern.step * index
                && tap.low_weight == head.low_weight
                && tap.high_weight == head.high_weight
                && (samples == 1 || tap.high == tap.low + 1)
        });
        (regular && step >= 1).then_some(pattern)
    }
}

impl Resampler {
    /// The plan these tables were built for.
    pub fn plan(&self) -> &Letterbox {
        &self.plan
    }

    /// Writes `rgb` (packed, `frame_width x frame_height`) into `tensor` as
    /// planar RGB in 0..1, resized bilinearly with half-pixel centres (as
    /// OpenCV's `INTER_LINEAR`), padded with [`PAD_VALUE`].
    pub fn fill(&mut self, rgb: &[u8], tensor: &mut [f32]) {
        let plan = self.plan;
        assert_eq!(
            rgb.len(),
            3 * plan.frame_width as usize * plan.frame_height as usize
        );
        assert_eq!(tensor.len(), plan.tensor_len());
        let width = plan.input_width as usize;
        let plane = width * plan.input_height as usize;
        let (pad_left, pad_top) = (plan.pad_left as usize, plan.pad_top as usize);
        let content_width = plan.resized_width as usize;
        let content_rows = pad_top..pad_top + plan.resized_height as usize;
        let (red, rest) = tensor.split_at_mut(plane);
        let (green, blue) = rest.split_at_mut(plane);
        for channel in [&mut *red, &mut *green, &mut *blue] {
            channel[..content_rows.start * width].fill(PAD_VALUE);
            channel[content_rows.end * width..].fill(PAD_VALUE);
            for y in content_rows.clone() {
                let line = &mut channel[y * width..(y + 1) * width];
                line[..pad_left].fill(PAD_VALUE);
                line[pad_left + content_width..].fill(PAD_VALUE);
            }
        }
        let first = pad_top * width + pad_left;
        let planes = [&mut red[first..], &mut green[first..], &mut blue[first..]];
        let content = ContentRows {
            rgb,
            stride: 3 * plan.frame_width as usize,
            width,
            content_width,
            content_height: plan.resized_height as usize,
        };
        match self.whole_pixels {
            #[cfg(target_arch = "x86_64")]
            Some((columns, rows)) if self.simd_halving && halve_avx2::applies(columns, rows) => {
                halve_avx2::halve(&content, columns, rows, planes)
            }
            Some((columns, rows)) => {
                sum_whole_pixels(&content, columns, rows, &mut self.summed_row, planes)
            }
            None => blend_rows(
                &content,
                &self.columns,
                &self.rows,
                &mut self.blended_row,
                planes,
            ),
        }
    }
}

/// The frame and where its resized content goes: `planes` start at the
/// first content pixel of each channel and advance `width` per row.
struct ContentRows<'a> {
    rgb: &'a [u8],
    stride: usize,
    width: usize,
    content_width: usize,
    content_height: usize,
}

/// Splits a planar row buffer into its three channels.
fn channels<T>(row: &mut [T]) -> [&mut [T]; 3] {
    let plane_len = row.len() / 3;
    let (red, rest) = row.split_at_mut(plane_len);
    let (green, blue) = rest.split_at_mut(plane_len);
    [red, green, blue]
}

/// Pairs each channel of a planar row buffer with that channel's content
/// columns in output row `index`.
fn output_rows<'a, T>(
    row: &'a [&mut [T]; 3],
    planes: &'a mut [&mut [f32]; 3],
    content: &ContentRows<'_>,
    index: usize,
) -> impl Iterator<Item = (&'a [T], &'a mut [f32])> {
    let start = index * content.width;
    let end = start + content.content_width;
    row.iter()
        .map(|channel| &**channel)
        .zip(planes.iter_mut().map(move |plane| &mut plane[start..end]))
}

/// The general path: each output row blends two source rows in f32 over the
/// whole frame width, then each output column blends two of those samples.
//
// AVX2 doubles the speed of both passes on x86_64 machines that have it; the
// arithmetic is the same (Rust never fuses a multiply and an add), so every
// version produces the same bits. aarch64 always has NEON.
#[multiversion::multiversion(targets("x86_64+avx2"))]
fn blend_rows(
    content: &ContentRows<'_>,
    columns: &[Tap],
    rows: &[Tap],
    blended_row: &mut [f32],
    planes: [&mut [f32]; 3],
) {
    let stride = content.stride;
    let mut blended_row = channels(blended_row);
    let mut planes = planes;
    for (index, row) in rows.iter().enumerate() {
        let [blended_red, blended_green, blended_blue] = &mut blended_row;
        let top = &content.rgb[row.low * stride..(row.low + 1) * stride];
        let bottom = &content.rgb[row.high * stride..(row.high + 1) * stride];
        let blended = blended_red
            .iter_mut()
            .zip(blended_green.iter_mut())
            .zip(blended_blue.iter_mut());
        let sources = top.chunks_exact(3).zip(bottom.chunks_exact(3));
        for (((red, green), blue), (upper, lower)) in blended.zip(sources) {
            *red = upper[0] as f32 * row.low_weight + lower[0] as f32 * row.high_weight;
            *green = upper[1] as f32 * row.low_weight + lower[1] as f32 * row.high_weight;
            *blue = upper[2] as f32 * row.low_weight + lower[2] as f32 * row.high_weight;
        }
        for (blended, output) in output_rows(&blended_row, &mut planes, content, index) {
            for (column, value) in columns.iter().zip(output) {
                *value = (blended[column.low] * column.low_weight
                    + blended[column.high] * column.high_weight)
                    * INV_255;
            }
        }
    }
}

/// The whole-pixel path ([`BoxTaps`] on both axes): each output row sums one
/// or two source rows in u16, then each output column sums one or two of
/// those and scales once.
#[multiversion::multiversion(targets("x86_64+avx2"))]
fn sum_whole_pixels(
    content: &ContentRows<'_>,
    columns: BoxTaps,
    rows: BoxTaps,
    summed_row: &mut [u16],
    planes: [&mut [f32]; 3],
) {
    let stride = content.stride;
    let scale = INV_255 / (columns.samples * rows.samples) as f32;
    let mut summed_row = channels(summed_row);
    let mut planes = planes;
    for index in 0..content.content_height {
        let [summed_red, summed_green, summed_blue] = &mut summed_row;
        let source_row = rows.first + rows.step * index;
        let top = &content.rgb[source_row * stride..(source_row + 1) * stride];
        let summed = summed_red
            .iter_mut()
            .zip(summed_green.iter_mut())
            .zip(summed_blue.iter_mut());
        if rows.samples == 2 {
            let bottom = &content.rgb[(source_row + 1) * stride..(source_row + 2) * stride];
            let sources = top.chunks_exact(3).zip(bottom.chunks_exact(3));
            for (((red, green), blue), (upper, lower)) in summed.zip(sources) {
                *red = upper[0] as u16 + lower[0] as u16;
                *green = upper[1] as u16 + lower[1] as u16;
                *blue = upper[2] as u16 + lower[2] as u16;
            }
        } else {
            for (((red, green), blue), pixel) in summed.zip(top.chunks_exact(3)) {
                *red = pixel[0] as u16;
                *green = pixel[1] as u16;
                *blue = pixel[2] as u16;
            }
        }
        for (summed, output) in output_rows(&summed_row, &mut planes, content, index) {
            match (columns.step, columns.samples) {
                (1, 1) => sum_columns::<1, 1>(summed, columns.first, scale, output),
                (2, 2) => sum_columns::<2, 2>(summed, columns.first, scale, output),
                (3, 1) => sum_columns::<3, 1>(summed, columns.first, scale, output),
                _ => {
                    for (x, value) in output.iter_mut().enumerate() {
                        let low = columns.first + columns.step * x;
                        let sum: u16 = summed[low..low + columns.samples].iter().sum();
                        *value = sum as f32 * scale;
                    }
                }
            }
        }
    }
}

/// The column pass of [`sum_whole_pixels`] for the common strides, where a
/// fixed stride lets the compiler vectorise: output `x` sums `SAMPLES`
/// samples from `first + STEP·x`.
#[inline(always)]
fn sum_columns<const STEP: usize, const SAMPLES: usize>(
    summed: &[u16],
    first: usize,
    scale: f32,
    output: &mut [f32],
) {
    let Some(last) = output.len().checked_sub(1) else {
        return;
    };
    let source = &summed[first..first + STEP * last + SAMPLES];
    for (x, value) in output.iter_mut().enumerate() {
        let sum = if SAMPLES == 2 {
            source[STEP * x] + source[STEP * x + 1]
        } else {
            source[STEP * x]
        };
        *value = sum as f32 * scale;
    }
}

fn axis_taps(source: u32, resized: u32) -> Vec<Tap> {
    let ratio = source as f32 / resized as f32;
    (0..resized)
        .map(|out| {
            let position = ((out as f32 + 0.5) * ratio - 0.5).max(0.0);
            let low = (position.floor() as usize).min(source as usize - 1);
            let high = (low + 1).min(source as usize - 1);
            let weight = if high == low {
                0.0
            } else {
                position - low as f32
            };
            Tap {
                low,
                high,
                low_weight: 1.0 - weight,
                high_weight: weight,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The letterbox written the plain way: one output value at a time, with
    /// the taps computed on the spot and the whole tensor pre-filled with
    /// padding. The fast path must match it bit for bit.
    fn fill_reference(plan: &Letterbox, rgb: &[u8], tensor: &mut [f32]) {
        let plane = plan.input_width as usize * plan.input_height as usize;
        tensor.fill(PAD_VALUE);
        let columns = axis_taps(plan.frame_width, plan.resized_width);
        let rows = axis_taps(plan.frame_height, plan.resized_height);
        let stride = 3 * plan.frame_width as usize;
        for (out_y, row) in rows.iter().enumerate() {
            for (out_x, column) in columns.iter().enumerate() {
                for channel in 0..3 {
                    let sample = |y: usize, x: usize| rgb[y * stride + 3 * x + channel] as f32;
                    let left = sample(row.low, column.low) * row.low_weight
                        + sample(row.high, column.low) * row.high_weight;
                    let right = sample(row.low, column.high) * row.low_weight
                        + sample(row.high, column.high) * row.high_weight;
                    let y = out_y + plan.pad_top as usize;
                    let x = out_x + plan.pad_left as usize;
                    tensor[channel * plane + y * plan.input_width as usize + x] =
                        (left * column.low_weight + right * column.high_weight) * INV_255;
                }
            }
        }
    }

    /// Whether `fills` fills of a noise frame into a NaN-filled tensor end
    /// bit for bit where [`fill_reference`] does.
    fn fills_like_the_reference(resampler: &mut Resampler, seed: u32, fills: usize) -> bool {
        let plan = *resampler.plan();
        let rgb: Vec<u8> = (0..3 * plan.frame_width * plan.frame_height)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as u8)
            .collect();
        let mut expected = vec![f32::NAN; plan.tensor_len()];
        fill_reference(&plan, &rgb, &mut expected);
        let mut fast = vec![f32::NAN; plan.tensor_len()];
        for _ in 0..fills {
            resampler.fill(&rgb, &mut fast);
        }
        expected
            .iter()
            .zip(&fast)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn fast_fill_matches_the_reference_bit_for_bit(
            frame_width in 1u32..300,
            frame_height in 1u32..300,
            target in prop_oneof![
                (1u32..200, 1u32..200).prop_map(|(width, height)| InputShape::Fixed { width, height }),
                (1u32..5, 32u32..256).prop_map(|(stride, max_side)| InputShape::Dynamic { stride: stride * 8, max_side }),
            ],
            seed in any::<u32>(),
        ) {
            let plan = Letterbox::plan(frame_width, frame_height, target).unwrap();
            // A tensor left over from another frame must not leak through.
            let same = fills_like_the_reference(&mut plan.resampler(), seed, 2);
            prop_assert!(same, "plan {:?}", plan);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn whole_pixel_path_matches_the_reference_bit_for_bit(
            resized_width in 1u32..120,
            resized_height in 1u32..120,
            factor in 1u32..=4,
            extra_rows in 0u32..9,
            seed in any::<u32>(),
        ) {
            let target = InputShape::Fixed { width: resized_width, height: resized_height + extra_rows };
            let (frame_width, frame_height) = (resized_width * factor, resized_height * factor);
            let plan = Letterbox::plan(frame_width, frame_height, target).unwrap();
            let mut resampler = plan.resampler();
            prop_assert!(resampler.whole_pixels.is_some(), "plan {:?}", plan);
            let same = fills_like_the_reference(&mut resampler, seed, 1);
            prop_assert!(same, "plan {:?}", plan);
        }
    }

    #[test]
    fn camera_sizes_to_640_take_the_whole_pixel_path() {
        for (width, height) in [(640, 360), (1280, 720), (1920, 1080)] {
            for shape in [
                DYNAMIC,
                InputShape::Fixed {
                    width: 640,
                    height: 640,
                },
            ] {
                let plan = Letterbox::plan(width, height, shape).unwrap();
                assert!(plan.resampler().whole_pixels.is_some(), "{plan:?}");
            }
        }
        let plan = Letterbox::plan(1024, 768, DYNAMIC).unwrap();
        assert!(plan.resampler().whole_pixels.is_none(), "{plan:?}");
    }

    /// The AVX2 2:1 kernel against the portable whole-pixel path on camera
    /// frames, with widths that leave a tail of less than one block.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn halving_kernel_matches_the_portable_path() {
        assert!(
            std::arch::is_x86_feature_detected!("avx2"),
            "this x86_64 machine lacks AVX2, so the kernel cannot be tested here"
        );
        let square = InputShape::Fixed {
            width: 640,
            height: 640,
        };
        for (width, height, shape) in [
            (1280, 720, square),
            (1280, 720, DYNAMIC),
            (
                1920,
                1080,
                InputShape::Fixed {
                    width: 960,
                    height: 544,
                },
            ),
            (
                1270,
                714,
                InputShape::Fixed {
                    width: 635,
                    height: 640,
                },
            ),
            (
                30,
                18,
                InputShape::Fixed {
                    width: 15,
                    height: 16,
                },
            ),
        ] {
            let plan = Letterbox::plan(width, height, shape).unwrap();
            let mut kernel = plan.resampler();
            let (columns, rows) = kernel.whole_pixels.unwrap_or_else(|| panic!("{plan:?}"));
            assert!(halve_avx2::applies(columns, rows), "{plan:?}");
            let mut portable = plan.resampler();
            portable.simd_halving = false;
            let rgb: Vec<u8> = (0..3 * width * height)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect();
            let mut expected = vec![f32::NAN; plan.tensor_len()];
            portable.fill(&rgb, &mut expected);
            let mut got = vec![f32::NAN; plan.tensor_len()];
            kernel.fill(&rgb, &mut got);
            let first_difference = expected
                .iter()
                .zip(&got)
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(first_difference, None, "{plan:?}");
        }
    }

    const DYNAMIC: InputShape = InputShape::Dynamic {
        stride: 32,
        max_side: 640,
    };

    #[test]
    fn sixteen_by_nine_gets_a_640x384_rectangle() {
        for (width, height) in [(640, 360), (1280, 720), (1920, 1080)] {
            let plan = Letterbox::plan(width, height, DYNAMIC).unwrap();
            assert_eq!((plan.input_width, plan.input_height), (640, 384));
            assert_eq!((plan.resized_width, plan.resized_height), (640, 360));
            assert_eq!((plan.pad_left, plan.pad_top), (0, 12));
        }
    }

    #[test]
    fn fixed_square_pads_evenly() {
        let plan = Letterbox::plan(
            1280,
            720,
            InputShape::Fixed {
                width: 640,
                height: 640,
            },
        )
        .unwrap();
        assert_eq!(
            (plan.resized_width, plan.resized_height, plan.pad_top),
            (640, 360, 140)
        );
        assert_eq!(plan.to_frame_y(140.0), 0.0);
        assert_eq!(plan.to_frame_x(320.0), 640.0);
    }

    #[test]
    fn identity_scale_copies_pixels_and_pads_grey() {
        let (width, height) = (64, 36);
        let rgb: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
        let plan = Letterbox::plan(
            width as u32,
            height as u32,
            InputShape::Dynamic {
                stride: 32,
                max_side: 64,
            },
        )
        .unwrap();
        assert_eq!(
            (plan.input_width, plan.input_height, plan.pad_top),
            (64, 64, 14)
        );
        let mut tensor = vec![f32::NAN; plan.tensor_len()];
        plan.resampler().fill(&rgb, &mut tensor);
        let plane = 64 * 64;
        assert_eq!(tensor[0], PAD_VALUE);
        assert_eq!(tensor[2 * plane + 63 * 64 + 63], PAD_VALUE);
        for (x, y, channel) in [(0, 0, 0), (5, 7, 1), (63, 35, 2)] {
            let expected = rgb[3 * (y * width + x) + channel] as f32 / 255.0;
            let got = tensor[channel * plane + (y + 14) * 64 + x];
            assert!(
                (got - expected).abs() <= f32::EPSILON,
                "{got} vs {expected}"
            );
        }
    }

    #[test]
    fn halving_averages_two_by_two_blocks() {
        let rgb: Vec<u8> = [10u8, 20, 30, 40].iter().flat_map(|&v| [v, v, v]).collect();
        let plan = Letterbox::plan(
            2,
            2,
            InputShape::Fixed {
                width: 1,
                height: 1,
            },
        )
        .unwrap();
        let mut tensor = vec![0.0; 3];
        plan.resampler().fill(&rgb, &mut tensor);
        assert!(
            (tensor[0] * 255.0 - 25.0).abs() < 1e-4,
            "{}",
            tensor[0] * 255.0
        );
    }
}
