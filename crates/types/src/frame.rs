use std::any::Any;
use std::borrow::Cow;
use std::fmt;

use crate::{FrameLayout, PixelFormat, Timestamp};

/// One camera image and where its pixels are.
#[derive(Debug)]
pub struct Frame {
    /// The camera's frame counter; a gap means frames were lost before us.
    pub sequence: u64,
    /// When the sensor captured the frame.
    pub captured_at: Timestamp,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The pixels.
    pub pixels: Pixels,
}

/// A frame's pixels: packed RGB for the CPU path, or the camera's own
/// layout in memory a detector lent ([`FramePool`]), which its GPU reads
/// where the camera wrote it.
pub enum Pixels {
    /// `width * height * 3` bytes, row-major RGB, rows without padding.
    Rgb(Vec<u8>),
    /// The camera's bytes as its driver laid them out.
    Camera {
        /// Format, size and stride.
        layout: FrameLayout,
        /// `layout.byte_len()` bytes or more, from a [`FramePool`].
        buffer: Box<dyn PixelBuffer>,
    },
}

impl fmt::Debug for Pixels {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pixels::Rgb(rgb) => write!(formatter, "Rgb({} bytes)", rgb.len()),
            Pixels::Camera { layout, .. } => write!(formatter, "Camera({layout:?})"),
        }
    }
}

/// Memory lent by a [`FramePool`] for one frame. Dropping it gives it back.
pub trait PixelBuffer: Send + Sync {
    /// The bytes.
    fn bytes(&self) -> &[u8];
    /// The bytes, to write.
    fn bytes_mut(&mut self) -> &mut [u8];
    /// For the pool's owner to find its own buffer type.
    fn as_any(&self) -> &dyn Any;
}

/// Frame buffers a detector lends to the camera so the camera's bytes land
/// where the detector reads them (CUDA-mapped memory on a Jetson, pinned
/// memory uploaded on the stream on a discrete GPU): the camera copies once,
/// and the CPU never converts the pixels.
pub trait FramePool: Send + Sync {
    /// Whether the detector reads frames of `layout` from these buffers.
    fn accepts(&self, layout: FrameLayout) -> bool;
    /// A buffer for one frame of `layout`, or `None` when the pool does not
    /// accept the layout or every buffer is in use (the camera then takes
    /// the CPU path for that frame).
    fn take(&self, layout: FrameLayout) -> Option<Box<dyn PixelBuffer>>;
    /// The memory, in words, for the camera's path report.
    fn describe(&self) -> String;
}

impl Frame {
    /// A frame of packed RGB.
    pub fn from_rgb(
        sequence: u64,
        captured_at: Timestamp,
        width: u32,
        height: u32,
        rgb: Vec<u8>,
    ) -> Frame {
        Frame {
            sequence,
            captured_at,
            width,
            height,
            pixels: Pixels::Rgb(rgb),
        }
    }

    /// A frame of the letterbox's grey (114) at time zero: what warms a
    /// detector up for a frame size before the first real frame.
    pub fn grey(width: u32, height: u32) -> Frame {
        let rgb = vec![114; 3 * width as usize * height as usize];
        Frame::from_rgb(0, Timestamp::ZERO, width, height, rgb)
    }

    /// The pixels' layout and bytes, as they are.
    pub fn layout_and_bytes(&self) -> (FrameLayout, &[u8]) {
        match &self.pixels {
            Pixels::Rgb(rgb) => (
                FrameLayout::packed(PixelFormat::Rgb24, self.width, self.height),
                rgb,
            ),
            Pixels::Camera { layout, buffer } => (*layout, buffer.bytes()),
        }
    }

    /// The pixels as packed RGB: borrowed on the CPU path, converted (by the
    /// reference, [`FrameLayout::rgb_at`]) from the camera's layout.
    pub fn rgb(&self) -> Cow<'_, [u8]> {
        match &self.pixels {
            Pixels::Rgb(rgb) => Cow::Borrowed(rgb),
            Pixels::Camera { layout, buffer } => Cow::Owned(layout.to_rgb(buffer.bytes())),
        }
    }

    /// The RGB buffer back, for reuse, when the frame holds one.
    pub fn into_rgb(self) -> Option<Vec<u8>> {
        match self.pixels {
            Pixels::Rgb(rgb) => Some(rgb),
            Pixels::Camera { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Lent(Vec<u8>);

    impl PixelBuffer for Lent {
        fn bytes(&self) -> &[u8] {
            &self.0
        }
        fn bytes_mut(&mut self) -> &mut [u8] {
            &mut self.0
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    #[test]
    fn a_camera_layout_frame_reads_as_the_same_rgb() {
        // 2x1 YUYV: one pixel pair, white then black.
        let layout = FrameLayout::packed(PixelFormat::Yuyv, 2, 1);
        let frame = Frame {
            sequence: 3,
            captured_at: Timestamp::ZERO,
            width: 2,
            height: 1,
            pixels: Pixels::Camera {
                layout,
                buffer: Box::new(Lent(vec![235, 128, 16, 128])),
            },
        };
        assert_eq!(&*frame.rgb(), &[255, 255, 255, 0, 0, 0]);
        assert_eq!(frame.layout_and_bytes().0, layout);
        assert!(frame.into_rgb().is_none());

        let grey = Frame::grey(2, 1);
        assert_eq!(grey.layout_and_bytes().0.format, PixelFormat::Rgb24);
        assert!(matches!(grey.rgb(), Cow::Borrowed(_)));
        assert_eq!(grey.into_rgb(), Some(vec![114; 6]));
    }
}
