use std::path::Path;

use edgesort_capture::{clip_frames, decode_jpeg_rgb};

use crate::BenchError;

/// A clip's JPEG frames, read into memory so that disk speed is not timed.
#[derive(Clone, Debug)]
pub struct Clip {
    /// Name for the report.
    pub name: String,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// The encoded frames, in order.
    pub jpegs: Vec<Vec<u8>>,
}

impl Clip {
    /// Reads `dir/frames/*.jpg` (or `dir/*.jpg`), in name order.
    pub fn load(dir: &Path) -> Result<Self, BenchError> {
        let jpegs: Vec<Vec<u8>> = clip_frames(dir)?
            .iter()
            .map(|path| {
                std::fs::read(path).map_err(|source| BenchError::ReadClip {
                    path: path.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        let name = dir
            .file_name()
            .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
        // `clip_frames` refuses an empty clip, so there is a first frame.
        let (width, height, _) =
            decode_jpeg_rgb(&jpegs[0]).map_err(|reason| BenchError::DecodeFrame {
                clip: name.clone(),
                index: 0,
                reason,
            })?;
        Ok(Clip {
            name,
            width,
            height,
            jpegs,
        })
    }
}

/// A clip at twice the size of `source` (each pixel doubled, re-encoded at
/// quality 90): 1280x720 frames with real belt content for machines that do
/// not have the full-size recordings.
pub fn generate_from(source: &Clip) -> Result<Clip, BenchError> {
    let (width, height) = (source.width as usize * 2, source.height as usize * 2);
    let jpegs = source
        .jpegs
        .iter()
        .enumerate()
        .map(|(index, jpeg)| {
            let (small_width, _, rgb) =
                decode_jpeg_rgb(jpeg).map_err(|reason| BenchError::DecodeFrame {
                    clip: source.name.clone(),
                    index,
                    reason,
                })?;
            let small_width = small_width as usize;
            let mut large = Vec::with_capacity(width * height * 3);
            for row in rgb.chunks_exact(small_width * 3) {
                let doubled: Vec<u8> = row
                    .chunks_exact(3)
                    .flat_map(|pixel| [pixel, pixel].concat())
                    .collect();
                large.extend_from_slice(&doubled);
                large.extend_from_slice(&doubled);
            }
            let mut encoded = Vec::new();
            jpeg_encoder::Encoder::new(&mut encoded, 90)
                .encode(
                    &large,
                    width as u16,
                    height as u16,
                    jpeg_encoder::ColorType::Rgb,
                )
                .map_err(|error| BenchError::EncodeFrame(error.to_string()))?;
            Ok(encoded)
        })
        .collect::<Result<_, BenchError>>()?;
    Ok(Clip {
        name: format!("{} doubled to {width}x{height}", source.name),
        width: width as u32,
        height: height as u32,
        jpegs,
    })
}
