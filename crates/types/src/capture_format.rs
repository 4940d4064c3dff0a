use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::PixelFormat;

/// What a camera streams: a raw layout edgesort reads in place, or MJPEG,
/// which is decoded on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaptureFormat {
    /// Uncompressed pixels.
    Raw(PixelFormat),
    /// Motion JPEG: every buffer is one JPEG image.
    Mjpeg,
}

impl CaptureFormat {
    /// Every format edgesort can stream, in the order it prefers them when the
    /// configuration does not say: raw layouts first (no decode, and the GPU
    /// letterbox reads YUYV and NV12 directly), MJPEG last.
    pub const ALL: [CaptureFormat; 6] = [
        CaptureFormat::Raw(PixelFormat::Yuyv),
        CaptureFormat::Raw(PixelFormat::Nv12),
        CaptureFormat::Raw(PixelFormat::Rgb24),
        CaptureFormat::Raw(PixelFormat::Bgr24),
        CaptureFormat::Raw(PixelFormat::Grey),
        CaptureFormat::Mjpeg,
    ];

    /// The V4L2 four-character code.
    pub fn fourcc(self) -> [u8; 4] {
        *match self {
            CaptureFormat::Raw(PixelFormat::Yuyv) => b"YUYV",
            CaptureFormat::Raw(PixelFormat::Nv12) => b"NV12",
            CaptureFormat::Raw(PixelFormat::Rgb24) => b"RGB3",
            CaptureFormat::Raw(PixelFormat::Bgr24) => b"BGR3",
            CaptureFormat::Raw(PixelFormat::Grey) => b"GREY",
            CaptureFormat::Mjpeg => b"MJPG",
        }
    }

    /// The format of a V4L2 four-character code; `JPEG` is MJPEG under the
    /// name some older drivers use.
    pub fn from_fourcc(code: [u8; 4]) -> Option<Self> {
        if &code == b"JPEG" {
            return Some(CaptureFormat::Mjpeg);
        }
        Self::ALL.into_iter().find(|format| format.fourcc() == code)
    }

    /// The format a configuration names by its four-character code
    /// (case-insensitive), or `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        let code: [u8; 4] = name.to_ascii_uppercase().as_bytes().try_into().ok()?;
        Self::from_fourcc(code)
    }
}

impl fmt::Display for CaptureFormat {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&fourcc_text(self.fourcc()))
    }
}

impl Serialize for CaptureFormat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for CaptureFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        CaptureFormat::from_name(&name).ok_or_else(|| {
            let known: Vec<String> = CaptureFormat::ALL.iter().map(ToString::to_string).collect();
            serde::de::Error::custom(format!(
                "unknown camera format {name:?}; edgesort reads {}",
                known.join(", ")
            ))
        })
    }
}

/// A four-character code as text, with anything unprintable escaped.
pub fn fourcc_text(code: [u8; 4]) -> String {
    code.iter()
        .flat_map(|&byte| std::ascii::escape_default(byte))
        .map(char::from)
        .collect::<String>()
        .trim_end()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for format in CaptureFormat::ALL {
            assert_eq!(CaptureFormat::from_fourcc(format.fourcc()), Some(format));
            assert_eq!(
                CaptureFormat::from_name(&format.to_string().to_lowercase()),
                Some(format)
            );
        }
        assert_eq!(CaptureFormat::from_name("jpeg"), Some(CaptureFormat::Mjpeg));
        assert_eq!(CaptureFormat::from_name("H264"), None);
        assert_eq!(CaptureFormat::from_name("YU12X"), None);
        assert_eq!(fourcc_text(*b"Y10 "), "Y10");
        assert_eq!(fourcc_text([0x59, 0, 0x01, 0x32]), "Y\\x00\\x012");
    }
}
