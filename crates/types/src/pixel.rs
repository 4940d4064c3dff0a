/// How a camera lays out a frame's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed 8-bit R, G, B.
    Rgb24,
    /// Packed 8-bit B, G, R.
    Bgr24,
    /// YUV 4:2:2 packed as Y0 U Y1 V per pixel pair (V4L2 `YUYV`).
    Yuyv,
    /// YUV 4:2:0: a Y plane, then one plane of interleaved U, V at half
    /// resolution (V4L2 `NV12`).
    Nv12,
    /// 8-bit luminance only (V4L2 `GREY`), as monochrome industrial cameras give.
    Grey,
}

/// A frame's format, size and row stride: enough to find any pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLayout {
    /// The pixel format.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from one row to the next (V4L2's `bytesperline`; for NV12 the
    /// stride of both planes).
    pub stride: u32,
}

impl FrameLayout {
    /// The tightest layout of `format` at this size.
    pub fn packed(format: PixelFormat, width: u32, height: u32) -> Self {
        let stride = match format {
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => 3 * width,
            PixelFormat::Yuyv => 2 * width.next_multiple_of(2),
            PixelFormat::Nv12 => width.next_multiple_of(2),
            PixelFormat::Grey => width,
        };
        FrameLayout {
            format,
            width,
            height,
            stride,
        }
    }

    /// Bytes the frame occupies.
    pub fn byte_len(&self) -> usize {
        let rows = match self.format {
            PixelFormat::Nv12 => self.height as usize + self.height.div_ceil(2) as usize,
            _ => self.height as usize,
        };
        rows * self.stride as usize
    }

    /// The RGB value of pixel (`x`, `y`). YUV is BT.601 limited range in
    /// integers (as V4L2 cameras deliver it), so every implementation that
    /// follows this function gets the same bytes.
    pub fn rgb_at(&self, bytes: &[u8], x: usize, y: usize) -> [u8; 3] {
        let stride = self.stride as usize;
        match self.format {
            PixelFormat::Rgb24 => {
                let at = y * stride + 3 * x;
                [bytes[at], bytes[at + 1], bytes[at + 2]]
            }
            PixelFormat::Bgr24 => {
                let at = y * stride + 3 * x;
                [bytes[at + 2], bytes[at + 1], bytes[at]]
            }
            PixelFormat::Yuyv => {
                let pair = y * stride + 4 * (x / 2);
                yuv_to_rgb(bytes[pair + 2 * (x % 2)], bytes[pair + 1], bytes[pair + 3])
            }
            PixelFormat::Nv12 => {
                let chroma = (self.height as usize + y / 2) * stride + 2 * (x / 2);
                yuv_to_rgb(bytes[y * stride + x], bytes[chroma], bytes[chroma + 1])
            }
            PixelFormat::Grey => {
                let luma = bytes[y * stride + x];
                [luma, luma, luma]
            }
        }
    }

    /// The whole frame as packed RGB.
    pub fn to_rgb(&self, bytes: &[u8]) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(3 * self.width as usize * self.height as usize);
        for y in 0..self.height as usize {
            for x in 0..self.width as usize {
                rgb.extend_from_slice(&self.rgb_at(bytes, x, y));
            }
        }
        rgb
    }
}

/// BT.601 limited-range YUV to RGB in 8.8 fixed point.
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16);
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clamp = |value: i32| ((value + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_range_black_white_and_red() {
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        assert_eq!(yuv_to_rgb(81, 90, 240), [255, 0, 0]);
    }

    #[test]
    fn every_format_finds_the_same_pixel() {
        // A 4x2 frame whose pixel (3, 1) is mid grey in every format.
        let grey = yuv_to_rgb(126, 128, 128);
        let rgb = FrameLayout::packed(PixelFormat::Rgb24, 4, 2);
        let mut bytes = vec![0; rgb.byte_len()];
        bytes[rgb.stride as usize + 9..rgb.stride as usize + 12].copy_from_slice(&grey);
        assert_eq!(rgb.rgb_at(&bytes, 3, 1), grey);

        let bgr = FrameLayout::packed(PixelFormat::Bgr24, 4, 2);
        let mut bytes = vec![0; bgr.byte_len()];
        bytes[bgr.stride as usize + 9..bgr.stride as usize + 12]
            .copy_from_slice(&[grey[2], grey[1], grey[0]]);
        assert_eq!(bgr.rgb_at(&bytes, 3, 1), grey);

        let yuyv = FrameLayout::packed(PixelFormat::Yuyv, 4, 2);
        assert_eq!(yuyv.stride, 8);
        let mut bytes = vec![0; yuyv.byte_len()];
        bytes[8 + 4..8 + 8].copy_from_slice(&[0, 128, 126, 128]);
        assert_eq!(yuyv.rgb_at(&bytes, 3, 1), grey);

        let nv12 = FrameLayout::packed(PixelFormat::Nv12, 4, 2);
        assert_eq!(nv12.byte_len(), 4 * 3);
        let mut bytes = vec![0; nv12.byte_len()];
        bytes[4 + 3] = 126;
        bytes[8 + 2..8 + 4].copy_from_slice(&[128, 128]);
        assert_eq!(nv12.rgb_at(&bytes, 3, 1), grey);
    }

    #[test]
    fn odd_sizes_have_room_for_their_chroma() {
        let nv12 = FrameLayout::packed(PixelFormat::Nv12, 1, 1);
        assert_eq!((nv12.stride, nv12.byte_len()), (2, 4));
        let yuyv = FrameLayout::packed(PixelFormat::Yuyv, 1, 1);
        assert_eq!(yuyv.byte_len(), 4);
        assert_eq!(yuyv.to_rgb(&[16, 128, 16, 128]), [0, 0, 0]);
    }
}
