//! TensorRT 8.x's implicit-quantization calibration cache.
//!
//! A text file: a header `TRT-<version>-EntropyCalibration2`, then one line
//! per tensor, `name: <scale>`, the scale (amax / 127) written as the eight
//! hex digits of its big-endian IEEE-754 bits. TensorRT 8.5 and 8.6 read it
//! through `IInt8Calibrator::readCalibrationCache` and skip calibration.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The version field for a TensorRT release, as `NV_TENSORRT_VERSION` writes
/// it for 8.x: major·1000 + minor·100 + patch (8.6.1 → 8601).
pub fn trt8_version(major: u32, minor: u32, patch: u32) -> u32 {
    major * 1000 + minor * 100 + patch
}

/// The cache for `amax` per tensor.
pub fn write_cache(version: u32, amax: &BTreeMap<String, f32>) -> String {
    let mut text = format!("TRT-{version}-EntropyCalibration2\n");
    for (tensor, &amax) in amax {
        let scale = amax / 127.0;
        writeln!(text, "{tensor}: {:08x}", scale.to_bits()).expect("writing to a String");
    }
    text
}

/// Why a cache does not parse.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("calibration cache line {line}: {reason}")]
pub struct CacheError {
    /// One-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Reads a cache back: its version and the scale per tensor.
pub fn read_cache(text: &str) -> Result<(u32, BTreeMap<String, f32>), CacheError> {
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, line)| line).unwrap_or_default();
    let version = header
        .strip_prefix("TRT-")
        .and_then(|rest| rest.strip_suffix("-EntropyCalibration2"))
        .and_then(|version| version.parse().ok())
        .ok_or_else(|| CacheError {
            line: 1,
            reason: format!("header {header:?} is not TRT-<version>-EntropyCalibration2"),
        })?;
    let mut scales = BTreeMap::new();
    for (index, line) in lines {
        let error = |reason: String| CacheError {
            line: index + 1,
            reason,
        };
        let (tensor, hex) = line
            .rsplit_once(": ")
            .ok_or_else(|| error(format!("{line:?} is not `name: scale`")))?;
        if hex.len() != 8 {
            return Err(error(format!("scale {hex:?} is not 8 hex digits")));
        }
        let bits = u32::from_str_radix(hex, 16)
            .map_err(|_| error(format!("scale {hex:?} is not 8 hex digits")))?;
        scales.insert(tensor.to_owned(), f32::from_bits(bits));
    }
    Ok((version, scales))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_big_endian_bits_of_amax_over_127() {
        let amax = BTreeMap::from([("images".to_owned(), 1.0f32), ("silu_3".to_owned(), 12.7)]);
        let text = write_cache(trt8_version(8, 6, 1), &amax);
        // 1/127 = 0x3c010204 and 0.1 = 0x3dcccccd in IEEE-754 single precision.
        assert_eq!(
            text,
            "TRT-8601-EntropyCalibration2\nimages: 3c010204\nsilu_3: 3dcccccd\n"
        );
    }

    #[test]
    fn a_written_cache_reads_back() {
        let amax = BTreeMap::from([
            ("a/b:0".to_owned(), 3.25f32),
            ("conv.weight: odd".to_owned(), 0.001),
        ]);
        let (version, scales) = read_cache(&write_cache(trt8_version(8, 5, 2), &amax)).unwrap();
        assert_eq!(version, 8502);
        for (tensor, amax) in &amax {
            assert_eq!(scales[tensor], amax / 127.0);
        }
    }

    #[test]
    fn malformed_caches_name_the_line() {
        assert_eq!(read_cache("TRT-8601-MinMax\n").unwrap_err().line, 1);
        let error = read_cache("TRT-8601-EntropyCalibration2\nx: 3c01\n").unwrap_err();
        assert_eq!(error.line, 2);
    }
}
