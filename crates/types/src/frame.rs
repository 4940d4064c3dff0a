use crate::Timestamp;

/// One camera image, packed RGB with 8 bits per channel, rows without padding.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The camera's frame counter; a gap means frames were lost before us.
    pub sequence: u64,
    /// When the sensor captured the frame.
    pub captured_at: Timestamp,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, row-major RGB.
    pub rgb: Vec<u8>,
}

impl Frame {
    /// A frame of the letterbox's grey (114) at time zero: what warms a
    /// detector up for a frame size before the first real frame.
    pub fn grey(width: u32, height: u32) -> Frame {
        Frame {
            sequence: 0,
            captured_at: Timestamp::ZERO,
            width,
            height,
            rgb: vec![114; 3 * width as usize * height as usize],
        }
    }
}
