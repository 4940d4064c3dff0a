//! Choosing a camera mode from what the camera says it offers, and telling
//! the technician where what it gave differs from what was asked.
//!
//! Everything here is pure: the V4L2 device code enumerates, calls these, then
//! sets the choice and reads back what the driver really took, because drivers
//! are free to adjust any request (and some ignore it).

use crate::CaptureFormat;
use edgesort_types::fourcc_text;

/// The mode the configuration asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraRequest {
    /// Acceptable formats, most wanted first.
    pub formats: Vec<CaptureFormat>,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: f64,
}

/// One pixel format as the camera lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct FormatOffer {
    /// The V4L2 four-character code.
    pub fourcc: [u8; 4],
    /// The driver's description, e.g. `YUYV 4:2:2`.
    pub description: String,
}

/// Frame sizes a camera lists for a format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeOffer {
    /// Exactly this size.
    Discrete {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// Any size in a range, in steps.
    Stepwise {
        /// Smallest width.
        min_width: u32,
        /// Largest width.
        max_width: u32,
        /// Width granularity.
        step_width: u32,
        /// Smallest height.
        min_height: u32,
        /// Largest height.
        max_height: u32,
        /// Height granularity.
        step_height: u32,
    },
}

impl std::fmt::Display for SizeOffer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            SizeOffer::Discrete { width, height } => write!(formatter, "{width}x{height}"),
            SizeOffer::Stepwise {
                min_width,
                max_width,
                step_width,
                min_height,
                max_height,
                step_height,
            } => write!(
                formatter,
                "{min_width}..={max_width} step {step_width} x {min_height}..={max_height} step \
                 {step_height}"
            ),
        }
    }
}

/// A frame interval in seconds, as V4L2 gives it (`numerator / denominator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Seconds, numerator.
    pub numerator: u32,
    /// Seconds, denominator.
    pub denominator: u32,
}

impl Interval {
    /// The frame rate this interval gives; zero for a degenerate interval.
    pub fn fps(self) -> f64 {
        if self.numerator == 0 {
            0.0
        } else {
            f64::from(self.denominator) / f64::from(self.numerator)
        }
    }

    /// The interval of `fps` frames per second, in milliseconds-of-a-frame
    /// precision that every driver can represent.
    pub fn from_fps(fps: f64) -> Self {
        Interval {
            numerator: 1000,
            denominator: (fps * 1000.0).round().clamp(1.0, f64::from(u32::MAX)) as u32,
        }
    }
}

/// Frame rates a camera lists for a format and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateOffer {
    /// Exactly this interval.
    Discrete(Interval),
    /// Any interval between `min` (fastest) and `max` (slowest).
    Stepwise {
        /// Shortest interval (highest rate).
        min: Interval,
        /// Longest interval (lowest rate).
        max: Interval,
    },
}

/// The mode a stream actually runs in, as the driver reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamMode {
    /// Pixel format.
    pub format: CaptureFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row (0 for compressed formats).
    pub stride: u32,
    /// Frames per second, when the driver reports it.
    pub fps: Option<f64>,
}

impl StreamMode {
    /// Where a frame's pixels are in its bytes; `None` for a compressed
    /// format.
    pub fn raw_layout(&self) -> Option<edgesort_types::FrameLayout> {
        match self.format {
            CaptureFormat::Raw(format) => Some(edgesort_types::FrameLayout {
                format,
                width: self.width,
                height: self.height,
                stride: self.stride,
            }),
            CaptureFormat::Mjpeg => None,
        }
    }
}

/// Why no mode could be chosen.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NegotiationError {
    /// None of the wanted formats is offered.
    #[error(
        "none of the configured formats ({}) is offered; the camera offers {}",
        list(wanted.iter().map(ToString::to_string)),
        describe_offers(offered)
    )]
    NoCommonFormat {
        /// What the configuration accepts.
        wanted: Vec<CaptureFormat>,
        /// What the camera lists.
        offered: Vec<FormatOffer>,
    },
    /// The driver switched to a format edgesort cannot read.
    #[error(
        "the driver set format {} instead of {asked}; the camera offers {}",
        fourcc_text(*got),
        describe_offers(offered)
    )]
    UnreadableFormat {
        /// What was set.
        asked: CaptureFormat,
        /// What the driver took instead.
        got: [u8; 4],
        /// What the camera lists.
        offered: Vec<FormatOffer>,
    },
}

fn list(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// The offers as `YUYV (YUYV 4:2:2), MJPG (Motion-JPEG)`, or `nothing`.
pub fn describe_offers(offered: &[FormatOffer]) -> String {
    if offered.is_empty() {
        return "nothing".into();
    }
    list(
        offered
            .iter()
            .map(|offer| format!("{} ({})", fourcc_text(offer.fourcc), offer.description)),
    )
}

/// The first wanted format the camera offers.
pub fn choose_format(
    wanted: &[CaptureFormat],
    offered: &[FormatOffer],
) -> Result<CaptureFormat, NegotiationError> {
    wanted
        .iter()
        .copied()
        .find(|format| {
            offered
                .iter()
                .any(|offer| CaptureFormat::from_fourcc(offer.fourcc) == Some(*format))
        })
        .ok_or_else(|| NegotiationError::NoCommonFormat {
            wanted: wanted.to_vec(),
            offered: offered.to_vec(),
        })
}

/// The size to ask for: the wanted one when offered; otherwise the smallest
/// offered size that covers it (downscaling keeps detail, upscaling invents
/// none), and failing that the largest. With no sizes listed, the wanted size
/// (the driver will adjust it).
pub fn choose_size(width: u32, height: u32, offered: &[SizeOffer]) -> (u32, u32) {
    let candidates = offered.iter().map(|offer| match *offer {
        SizeOffer::Discrete { width, height } => (width, height),
        SizeOffer::Stepwise {
            min_width,
            max_width,
            step_width,
            min_height,
            max_height,
            step_height,
        } => (
            nearest_step(width, min_width, max_width, step_width),
            nearest_step(height, min_height, max_height, step_height),
        ),
    });
    let area = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
    let covering = candidates
        .clone()
        .filter(|&(w, h)| w >= width && h >= height)
        .min_by_key(|&size| area(size));
    covering
        .or_else(|| candidates.max_by_key(|&size| area(size)))
        .unwrap_or((width, height))
}

/// `value` clamped to `min..=max`, on the grid `min + k * step`, rounded up
/// when between two points so that a covering size stays covering.
fn nearest_step(value: u32, min: u32, max: u32, step: u32) -> u32 {
    let clamped = value.clamp(min, max.max(min));
    let step = step.max(1);
    let snapped = min + (clamped - min).div_ceil(step) * step;
    if snapped > max {
        snapped - step
    } else {
        snapped
    }
}

/// The interval to ask for: the offered rate closest to `fps` (the higher of
/// two equally close), or `fps` itself clamped into a stepwise range. `None`
/// when the camera lists no rates, so the caller asks for `fps` directly.
pub fn choose_rate(fps: f64, offered: &[RateOffer]) -> Option<Interval> {
    offered
        .iter()
        .map(|offer| match *offer {
            RateOffer::Discrete(interval) => interval,
            RateOffer::Stepwise { min, max } => {
                let fastest = min.fps();
                let slowest = max.fps();
                if fps > fastest {
                    min
                } else if fps < slowest {
                    max
                } else {
                    Interval::from_fps(fps)
                }
            }
        })
        .min_by(|a, b| {
            let distance = |interval: &Interval| (interval.fps() - fps).abs();
            distance(a)
                .total_cmp(&distance(b))
                .then(b.fps().total_cmp(&a.fps()))
        })
}

/// Where the running mode differs from the request, one sentence each, for
/// the technician; empty when the camera gave what was asked.
pub fn deviations(request: &CameraRequest, got: &StreamMode) -> Vec<String> {
    let mut differences = Vec::new();
    if request.formats.first() != Some(&got.format) {
        differences.push(format!(
            "format {} (asked for {})",
            got.format,
            list(request.formats.iter().map(ToString::to_string))
        ));
    }
    if (got.width, got.height) != (request.width, request.height) {
        differences.push(format!(
            "size {}x{} (asked for {}x{})",
            got.width, got.height, request.width, request.height
        ));
    }
    match got.fps {
        Some(fps) if (fps - request.fps).abs() > request.fps * 0.01 => {
            differences.push(format!("{fps:.2} fps (asked for {:.2})", request.fps));
        }
        Some(_) => {}
        None => differences.push(format!(
            "no frame rate reported (asked for {:.2} fps)",
            request.fps
        )),
    }
    differences
}

#[cfg(test)]
mod tests {
    use edgesort_types::PixelFormat;

    use super::*;

    const YUYV: CaptureFormat = CaptureFormat::Raw(PixelFormat::Yuyv);
    const NV12: CaptureFormat = CaptureFormat::Raw(PixelFormat::Nv12);

    fn offer(code: &[u8; 4], description: &str) -> FormatOffer {
        FormatOffer {
            fourcc: *code,
            description: description.into(),
        }
    }

    fn discrete(width: u32, height: u32) -> SizeOffer {
        SizeOffer::Discrete { width, height }
    }

    fn per_second(frames: u32) -> RateOffer {
        RateOffer::Discrete(Interval {
            numerator: 1,
            denominator: frames,
        })
    }

    #[test]
    fn the_most_wanted_offered_format_wins_whatever_the_camera_lists_first() {
        let offered = [
            offer(b"MJPG", "Motion-JPEG"),
            offer(b"H264", "H.264"),
            offer(b"NV12", "Y/UV 4:2:0"),
        ];
        assert_eq!(
            choose_format(&[YUYV, NV12, CaptureFormat::Mjpeg], &offered),
            Ok(NV12)
        );
        assert_eq!(
            choose_format(&[CaptureFormat::Mjpeg, NV12], &offered),
            Ok(CaptureFormat::Mjpeg)
        );
    }

    #[test]
    fn no_common_format_lists_what_the_camera_offers() {
        let offered = [offer(b"H264", "H.264"), offer(b"Y16 ", "16-bit Greyscale")];
        let error = choose_format(&[YUYV, NV12], &offered).unwrap_err();
        assert_eq!(
            error.to_string(),
            "none of the configured formats (YUYV, NV12) is offered; the camera offers \
             H264 (H.264), Y16 (16-bit Greyscale)"
        );
        let error = choose_format(&[YUYV], &[]).unwrap_err();
        assert!(error.to_string().ends_with("the camera offers nothing"));
    }

    #[test]
    fn sizes_prefer_exact_then_the_smallest_covering_then_the_largest() {
        let offered = [
            discrete(640, 480),
            discrete(1920, 1080),
            discrete(1280, 720),
        ];
        assert_eq!(choose_size(1280, 720, &offered), (1280, 720));
        assert_eq!(choose_size(800, 600, &offered), (1280, 720));
        assert_eq!(choose_size(4096, 2160, &offered), (1920, 1080));
        assert_eq!(choose_size(1280, 720, &[]), (1280, 720));
    }

    #[test]
    fn stepwise_sizes_clamp_and_snap_to_the_grid() {
        let range = SizeOffer::Stepwise {
            min_width: 16,
            max_width: 1920,
            step_width: 16,
            min_height: 16,
            max_height: 1080,
            step_height: 8,
        };
        assert_eq!(choose_size(1280, 720, &[range]), (1280, 720));
        assert_eq!(choose_size(1000, 561, &[range]), (1008, 568));
        assert_eq!(choose_size(4000, 3000, &[range]), (1920, 1080));
        assert_eq!(choose_size(2, 2, &[range]), (16, 16));
        let odd_max = SizeOffer::Stepwise {
            min_width: 2,
            max_width: 101,
            step_width: 4,
            min_height: 2,
            max_height: 101,
            step_height: 4,
        };
        assert_eq!(choose_size(101, 100, &[odd_max]), (98, 98));
    }

    #[test]
    fn rates_pick_the_closest_and_the_faster_of_a_tie() {
        let offered = [per_second(15), per_second(30), per_second(60)];
        assert_eq!(choose_rate(60.0, &offered).unwrap().fps(), 60.0);
        assert_eq!(choose_rate(50.0, &offered).unwrap().fps(), 60.0);
        assert_eq!(choose_rate(45.0, &offered).unwrap().fps(), 60.0);
        assert_eq!(choose_rate(20.0, &offered).unwrap().fps(), 15.0);
        assert_eq!(choose_rate(60.0, &[]), None);
        let ntsc = RateOffer::Discrete(Interval {
            numerator: 1001,
            denominator: 60000,
        });
        assert!((choose_rate(60.0, &[ntsc]).unwrap().fps() - 59.94).abs() < 0.01);
    }

    #[test]
    fn stepwise_rates_take_the_wanted_rate_inside_the_range_and_the_edge_outside() {
        let range = RateOffer::Stepwise {
            min: Interval {
                numerator: 1,
                denominator: 120,
            },
            max: Interval {
                numerator: 1,
                denominator: 1,
            },
        };
        assert_eq!(choose_rate(59.94, &[range]).unwrap().fps(), 59.94);
        assert_eq!(choose_rate(240.0, &[range]).unwrap().fps(), 120.0);
        assert_eq!(choose_rate(0.5, &[range]).unwrap().fps(), 1.0);
    }

    #[test]
    fn a_camera_that_ignores_the_requested_size_is_reported_not_hidden() {
        let request = CameraRequest {
            formats: vec![YUYV],
            width: 1280,
            height: 720,
            fps: 60.0,
        };
        let exact = StreamMode {
            format: YUYV,
            width: 1280,
            height: 720,
            stride: 2560,
            fps: Some(60.0),
        };
        assert!(deviations(&request, &exact).is_empty());
        let ignored = StreamMode {
            width: 640,
            height: 480,
            stride: 1280,
            fps: Some(30.0),
            ..exact
        };
        assert_eq!(
            deviations(&request, &ignored),
            [
                "size 640x480 (asked for 1280x720)",
                "30.00 fps (asked for 60.00)"
            ]
        );
        let second_choice = StreamMode {
            format: CaptureFormat::Mjpeg,
            fps: None,
            ..exact
        };
        let request = CameraRequest {
            formats: vec![YUYV, CaptureFormat::Mjpeg],
            ..request
        };
        assert_eq!(
            deviations(&request, &second_choice),
            [
                "format MJPG (asked for YUYV, MJPG)",
                "no frame rate reported (asked for 60.00 fps)"
            ]
        );
    }
}
