use crate::InferError;

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

    /// Writes `rgb` (packed, `frame_width x frame_height`) into `tensor` as
    /// planar RGB in 0..1, resized bilinearly with half-pixel centres (as
    /// OpenCV's `INTER_LINEAR`), padded with [`PAD_VALUE`].
    pub fn fill(&self, rgb: &[u8], tensor: &mut [f32]) {
        assert_eq!(
            rgb.len(),
            3 * self.frame_width as usize * self.frame_height as usize
        );
        assert_eq!(tensor.len(), self.tensor_len());
        let plane = self.input_width as usize * self.input_height as usize;
        tensor.fill(PAD_VALUE);
        let columns = axis_taps(self.frame_width, self.resized_width);
        let rows = axis_taps(self.frame_height, self.resized_height);
        let stride = 3 * self.frame_width as usize;
        for (out_y, row) in rows.iter().enumerate() {
            let top = &rgb[row.low * stride..(row.low + 1) * stride];
            let bottom = &rgb[row.high * stride..(row.high + 1) * stride];
            let offset = (out_y + self.pad_top as usize) * self.input_width as usize
                + self.pad_left as usize;
            for (out_x, column) in columns.iter().enumerate() {
                for channel in 0..3 {
                    let at = |line: &[u8], x: usize| line[3 * x + channel] as f32;
                    let upper = at(top, column.low) * (1.0 - column.weight)
                        + at(top, column.high) * column.weight;
                    let lower = at(bottom, column.low) * (1.0 - column.weight)
                        + at(bottom, column.high) * column.weight;
                    let value = upper * (1.0 - row.weight) + lower * row.weight;
                    tensor[channel * plane + offset + out_x] = value / 255.0;
                }
            }
        }
    }
}

/// The two source samples and the weight of the second for one output sample.
#[derive(Clone, Copy, Debug)]
struct Tap {
    low: usize,
    high: usize,
    weight: f32,
}

fn axis_taps(source: u32, resized: u32) -> Vec<Tap> {
    let ratio = source as f32 / resized as f32;
    (0..resized)
        .map(|out| {
            let position = ((out as f32 + 0.5) * ratio - 0.5).max(0.0);
            let low = (position.floor() as usize).min(source as usize - 1);
            let high = (low + 1).min(source as usize - 1);
            Tap {
                low,
                high,
                weight: if high == low {
                    0.0
                } else {
                    position - low as f32
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        plan.fill(&rgb, &mut tensor);
        let plane = 64 * 64;
        assert_eq!(tensor[0], PAD_VALUE);
        assert_eq!(tensor[2 * plane + 63 * 64 + 63], PAD_VALUE);
        for (x, y, channel) in [(0, 0, 0), (5, 7, 1), (63, 35, 2)] {
            let expected = rgb[3 * (y * width + x) + channel] as f32 / 255.0;
            assert_eq!(tensor[channel * plane + (y + 14) * 64 + x], expected);
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
        plan.fill(&rgb, &mut tensor);
        assert!(
            (tensor[0] * 255.0 - 25.0).abs() < 1e-4,
            "{}",
            tensor[0] * 255.0
        );
    }
}
