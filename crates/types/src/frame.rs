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
