use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// Decodes a JPEG into packed RGB, returning `(width, height, pixels)`.
///
/// A truncated or damaged stream is an error, never a half-grey image that
/// the detector would happily run on: the decoder runs in strict mode, and
/// since it still fills in a stream cut short inside the scan, the stream must
/// also carry its end-of-image marker after the last scan.
pub fn decode_jpeg_rgb(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
    let mut pixels = Vec::new();
    let (width, height) = decode_jpeg_rgb_into(bytes, &mut pixels)?;
    Ok((width, height, pixels))
}

/// [`decode_jpeg_rgb`] into a buffer the caller reuses from frame to frame,
/// returning `(width, height)`; `rgb` is resized to fit.
pub fn decode_jpeg_rgb_into(bytes: &[u8], rgb: &mut Vec<u8>) -> Result<(u32, u32), String> {
    if !ends_after_last_scan(bytes) {
        return Err("truncated: no end-of-image marker after the last scan".into());
    }
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = JpegDecoder::new_with_options(bytes, options);
    decoder
        .decode_headers()
        .map_err(|error| error.to_string())?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| "decoder reported no dimensions".to_string())?;
    let size = decoder
        .output_buffer_size()
        .ok_or_else(|| "decoder reported no output size".to_string())?;
    if size != width * height * 3 {
        return Err(format!(
            "decodes to {size} bytes, not a {width}x{height} RGB image"
        ));
    }
    rgb.resize(size, 0);
    decoder
        .decode_into(rgb)
        .map_err(|error| error.to_string())?;
    Ok((width as u32, height as u32))
}

/// Whether an EOI marker (FF D9) follows the last start-of-scan (FF DA).
/// Entropy-coded data stuffs every FF with 00, so neither marker can appear
/// inside a scan by accident.
fn ends_after_last_scan(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|pair| pair == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(scan), Some(end)) => end > scan,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_cut_anywhere_is_refused() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/demo_clip/frames/000100.jpg");
        let whole = std::fs::read(path).unwrap();
        let (width, height, pixels) = decode_jpeg_rgb(&whole).unwrap();
        assert_eq!((width, height, pixels.len()), (640, 360, 640 * 360 * 3));
        for keep in [10, 200, whole.len() / 2, whole.len() - 2] {
            assert!(
                decode_jpeg_rgb(&whole[..keep]).is_err(),
                "{keep} of {} bytes accepted",
                whole.len()
            );
        }
    }
}
