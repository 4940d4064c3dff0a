//! A V4L2 camera streaming through mmap buffers, or into buffers a
//! detector lends (user pointers) where the driver takes them.
//!
//! Opening negotiates the mode (see [`crate::negotiate`]), applies the fixed
//! controls, and reads back what the driver really set. Each frame is lent
//! straight out of the driver's mapped buffer until the next one is asked
//! for, with the driver's own capture time and sequence number; or, once
//! [`V4l2Camera::write_into`] gave it a pool, it arrives in a pool buffer
//! the driver wrote, and leaves with it.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use edgesort_types::{FrameLayout, FramePool, PixelBuffer, Timestamp};
use v4l::buffer::{Flags, Type};
use v4l::capability::{Capabilities, Flags as CapabilityFlags};
use v4l::control::{Control, Description, Flags as ControlFlags, Type as ControlType, Value};
use v4l::format::FourCC;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::video::capture::Parameters;
use v4l::{Device, Fraction};

use crate::negotiate::{
    CameraRequest, FormatOffer, Interval, RateOffer, SizeOffer, StreamMode, choose_format,
    choose_rate, choose_size, deviations,
};
use crate::userptr::{DequeuedBytes, UserStream};
use crate::{CameraControls, CameraError, CaptureFormat, ControlInfo, NegotiationError};

/// What to open and how.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraSettings {
    /// The device node, e.g. `/dev/video0`.
    pub device: PathBuf,
    /// The wanted mode.
    pub request: CameraRequest,
    /// Fixed image settings.
    pub controls: CameraControls,
    /// Driver buffers to stream through; more ride out longer pipeline stalls
    /// at the cost of latency.
    pub buffers: u32,
}

/// What opening a camera found and did, for the log and `camera snap`.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenReport {
    /// The driver's card name.
    pub card: String,
    /// The driver.
    pub driver: String,
    /// The mode the stream runs in.
    pub mode: StreamMode,
    /// Where that mode differs from the request.
    pub deviations: Vec<String>,
    /// Controls the camera lacks, refused or changed.
    pub control_notes: Vec<String>,
}

/// One frame from the camera.
#[derive(Debug)]
pub struct RawFrame<'a> {
    /// Where the driver wrote it.
    pub data: RawBytes<'a>,
    /// The driver's sequence number; gaps are frames the driver dropped.
    pub sequence: u32,
    /// The driver's capture time on `CLOCK_MONOTONIC`, when it gives one.
    pub driver_time: Option<Timestamp>,
    /// The driver flagged the buffer as damaged (`V4L2_BUF_FLAG_ERROR`).
    pub damaged: bool,
}

/// Where a frame's bytes are.
pub enum RawBytes<'a> {
    /// In the driver's (or the stream's) buffer, lent until the next frame.
    Driver(&'a [u8]),
    /// In a buffer of the pool given to [`V4l2Camera::write_into`], which
    /// the driver wrote and which leaves with the frame: `used` bytes.
    Lent {
        /// The buffer.
        buffer: Box<dyn PixelBuffer>,
        /// Bytes the driver wrote.
        used: usize,
    },
}

impl std::fmt::Debug for RawBytes<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawBytes::Driver(bytes) => write!(formatter, "Driver({} bytes)", bytes.len()),
            RawBytes::Lent { used, .. } => write!(formatter, "Lent({used} bytes)"),
        }
    }
}

impl RawFrame<'_> {
    /// The frame's bytes, wherever they are.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            RawBytes::Driver(bytes) => bytes,
            RawBytes::Lent { buffer, used } => &buffer.bytes()[..*used],
        }
    }
}

/// An open, streaming V4L2 camera.
pub struct V4l2Camera {
    device: PathBuf,
    /// Kept to set the mmap stream up again.
    handle: Device,
    buffers: Buffers,
    count: u32,
    mode: StreamMode,
    report: OpenReport,
}

/// Whose memory the driver writes frames into.
enum Buffers {
    /// Its own, mapped into this process.
    Mapped(Stream<'static>),
    /// A detector's pool's, by user pointer.
    User(UserStream),
    /// None, while switching.
    Closed,
}

impl std::fmt::Debug for V4l2Camera {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("V4l2Camera")
            .field("device", &self.device)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn fourcc(format: CaptureFormat) -> FourCC {
    FourCC::new(&format.fourcc())
}

impl V4l2Camera {
    /// Opens the camera, sets its mode and controls, and starts streaming.
    pub fn open(settings: &CameraSettings) -> Result<Self, CameraError> {
        let path = &settings.device;
        let fail = |operation| move |source| CameraError::from_io(path, operation, source);
        let (device, caps) = open_capture_device(path)?;

        let offered = format_offers(&device).map_err(fail("VIDIOC_ENUM_FMT"))?;
        let negotiation = |source| CameraError::Negotiation {
            device: path.clone(),
            source,
        };
        let request = &settings.request;
        let format = choose_format(&request.formats, &offered).map_err(negotiation)?;
        let sizes = size_offers(&device, format).map_err(fail("VIDIOC_ENUM_FRAMESIZES"))?;
        let (width, height) = choose_size(request.width, request.height, &sizes);

        let mut wanted = device.format().map_err(fail("VIDIOC_G_FMT"))?;
        wanted.width = width;
        wanted.height = height;
        wanted.fourcc = fourcc(format);
        // Zero lets the driver choose the tightest row and image size for the new
        // format; the old ones would keep the previous mode's padding.
        wanted.stride = 0;
        wanted.size = 0;
        let got = device.set_format(&wanted).map_err(fail("VIDIOC_S_FMT"))?;
        let got_format = CaptureFormat::from_fourcc(got.fourcc.repr).ok_or_else(|| {
            negotiation(NegotiationError::UnreadableFormat {
                asked: format,
                got: got.fourcc.repr,
                offered: offered.clone(),
            })
        })?;

        let rates = rate_offers(&device, got_format, got.width, got.height)
            .map_err(fail("VIDIOC_ENUM_FRAMEINTERVALS"))?;
        let interval = choose_rate(request.fps, &rates).unwrap_or(Interval::from_fps(request.fps));
        let fps = set_rate(&device, interval);

        let mode = StreamMode {
            format: got_format,
            width: got.width,
            height: got.height,
            stride: got.stride,
            fps,
        };
        if let CaptureFormat::Raw(pixels) = got_format {
            let needed = FrameLayout::packed(pixels, got.width, got.height).stride;
            if got.stride < needed {
                return Err(CameraError::UnusableMode {
                    device: path.clone(),
                    reason: format!(
                        "the driver reports {} bytes per row, a {}x{} {got_format} row needs \
                         {needed}",
                        got.stride, got.width, got.height
                    ),
                });
            }
        }

        let control_notes = apply_controls(&device, path, &settings.controls)?;
        // Allocating buffers is where a camera another process streams from
        // answers EBUSY; the first `next` queues them all and starts streaming.
        let stream = Stream::with_buffers(&device, Type::VideoCapture, settings.buffers.max(2))
            .map_err(fail("VIDIOC_REQBUFS"))?;
        let report = OpenReport {
            card: caps.card,
            driver: caps.driver,
            mode,
            deviations: deviations(request, &mode),
            control_notes,
        };
        Ok(V4l2Camera {
            device: path.clone(),
            handle: device,
            buffers: Buffers::Mapped(stream),
            count: settings.buffers.max(2),
            mode,
            report,
        })
    }

    /// The mode the stream runs in.
    pub fn mode(&self) -> StreamMode {
        self.mode
    }

    /// What opening found and did.
    pub fn report(&self) -> &OpenReport {
        &self.report
    }

    /// The device node.
    pub fn device(&self) -> &Path {
        &self.device
    }

    /// Whose memory frames arrive in, in words.
    pub fn memory(&self) -> &'static str {
        match self.buffers {
            Buffers::User(_) => {
                "written by the driver straight into buffers the detector lent (V4L2 USERPTR)"
            }
            Buffers::Mapped(_) | Buffers::Closed => {
                "in the driver's memory-mapped buffers (V4L2 MMAP)"
            }
        }
    }

    /// Has the driver write frames straight into `pool`'s buffers (user
    /// pointers) from now on, or, with `None`, into its own again. A stream
    /// on user pointers takes a new pool without stopping. Switching from
    /// mmap buffers restarts the stream; where the driver, the format or
    /// the pool refuses, the mmap stream comes back and the reason is
    /// returned.
    pub fn write_into(&mut self, pool: Option<Arc<dyn FramePool>>) -> Result<(), String> {
        let layout = self.mode.raw_layout();
        let pool = match (pool, layout) {
            (None, _) => {
                if matches!(self.buffers, Buffers::User(_)) {
                    self.restart_mapped()?;
                }
                return Ok(());
            }
            (Some(_), None) => {
                return Err(format!(
                    "{} frames are decoded on the CPU, not written into the detector's buffers",
                    self.mode.format
                ));
            }
            (Some(pool), Some(layout)) if !pool.accepts(layout) => {
                return Err(format!(
                    "the detector's buffers do not take {} frames",
                    self.mode.format
                ));
            }
            (Some(pool), Some(_)) => pool,
        };
        if let Buffers::User(stream) = &mut self.buffers {
            stream.set_pool(pool);
            return Ok(());
        }
        let layout = layout.expect("a raw format");
        self.close_buffers();
        match UserStream::start(self.handle.handle(), pool, layout, self.count) {
            Ok(stream) => {
                self.buffers = Buffers::User(stream);
                Ok(())
            }
            Err(refused) => {
                let reason = format!("the driver refused user pointers at {refused}");
                self.restart_mapped()?;
                Err(reason)
            }
        }
    }

    /// Stops streaming and gives the driver's buffers back. The `v4l` crate
    /// panics when tearing down an mmap stream fails with anything but
    /// ENODEV; that must not take the capture thread with it.
    fn close_buffers(&mut self) {
        let buffers = std::mem::replace(&mut self.buffers, Buffers::Closed);
        if std::panic::catch_unwind(AssertUnwindSafe(|| drop(buffers))).is_err() {
            tracing::warn!(device = %self.device.display(), "stopping the stream failed");
        }
    }

    fn restart_mapped(&mut self) -> Result<(), String> {
        self.close_buffers();
        let stream = Stream::with_buffers(&self.handle, Type::VideoCapture, self.count)
            .map_err(|error| format!("setting the mmap buffers up again: {error}"))?;
        self.buffers = Buffers::Mapped(stream);
        Ok(())
    }

    /// The next frame, waiting at most `timeout`; a frame in the driver's
    /// buffer is lent until the next call.
    pub fn next(&mut self, timeout: Duration) -> Result<RawFrame<'_>, CameraError> {
        let device = &self.device;
        let failed = |error: std::io::Error| {
            if error.kind() == std::io::ErrorKind::TimedOut {
                CameraError::Timeout {
                    device: device.clone(),
                    waited_ms: timeout.as_millis() as u64,
                }
            } else {
                CameraError::from_io(device, "VIDIOC_DQBUF", error)
            }
        };
        let (data, sequence, flags, timestamp) = match &mut self.buffers {
            Buffers::Mapped(stream) => {
                stream.set_timeout(timeout.max(Duration::from_millis(1)));
                let (buffer, meta) = stream.next().map_err(failed)?;
                let used = match meta.bytesused as usize {
                    0 => buffer.len(),
                    used => used.min(buffer.len()),
                };
                (
                    RawBytes::Driver(&buffer[..used]),
                    meta.sequence,
                    meta.flags,
                    (meta.timestamp.sec as u64, meta.timestamp.usec as u64),
                )
            }
            Buffers::User(stream) => {
                let frame = stream.next(timeout).map_err(failed)?;
                let data = match frame.bytes {
                    DequeuedBytes::Taken(buffer) => RawBytes::Lent {
                        buffer,
                        used: frame.used,
                    },
                    DequeuedBytes::Kept(bytes) => RawBytes::Driver(&bytes[..frame.used]),
                };
                (
                    data,
                    frame.sequence,
                    Flags::from(frame.flags),
                    (
                        frame.timestamp.tv_sec as u64,
                        frame.timestamp.tv_usec as u64,
                    ),
                )
            }
            Buffers::Closed => {
                return Err(CameraError::from_io(
                    device,
                    "VIDIOC_DQBUF",
                    std::io::Error::other("the stream is closed"),
                ));
            }
        };
        let monotonic = flags & Flags::TIMESTAMP_MASK == Flags::TIMESTAMP_MONOTONIC;
        let driver_time = monotonic
            .then(|| Timestamp::from_nanos(timestamp.0 * 1_000_000_000 + timestamp.1 * 1000));
        Ok(RawFrame {
            data,
            sequence,
            driver_time,
            damaged: flags.contains(Flags::ERROR),
        })
    }
}

fn open_capture_device(path: &Path) -> Result<(Device, Capabilities), CameraError> {
    let device =
        Device::with_path(path).map_err(|source| CameraError::from_io(path, "open", source))?;
    let caps = device
        .query_caps()
        .map_err(|source| CameraError::from_io(path, "VIDIOC_QUERYCAP", source))?;
    let needed = CapabilityFlags::VIDEO_CAPTURE | CapabilityFlags::STREAMING;
    if !caps.capabilities.contains(needed) {
        return Err(CameraError::NotCapture {
            device: path.to_owned(),
            card: caps.card,
            driver: caps.driver,
        });
    }
    Ok((device, caps))
}

/// Sets the frame interval and returns the rate the driver took, if it says.
fn set_rate(device: &Device, interval: Interval) -> Option<f64> {
    let wanted = Parameters::new(Fraction::new(interval.numerator, interval.denominator));
    let got = device
        .set_params(&wanted)
        .or_else(|_| device.params())
        .ok()?;
    let fps = Interval {
        numerator: got.interval.numerator,
        denominator: got.interval.denominator,
    }
    .fps();
    (fps > 0.0).then_some(fps)
}

fn format_offers(device: &Device) -> std::io::Result<Vec<FormatOffer>> {
    Ok(device
        .enum_formats()?
        .into_iter()
        .map(|description| FormatOffer {
            fourcc: description.fourcc.repr,
            description: description.description,
        })
        .collect())
}

/// The listed sizes; a driver that cannot list them gives none (it still
/// adjusts whatever is set).
fn size_offers(device: &Device, format: CaptureFormat) -> std::io::Result<Vec<SizeOffer>> {
    let Ok(sizes) = device.enum_framesizes(fourcc(format)) else {
        return Ok(Vec::new());
    };
    Ok(sizes
        .into_iter()
        .map(|size| match size.size {
            FrameSizeEnum::Discrete(size) => SizeOffer::Discrete {
                width: size.width,
                height: size.height,
            },
            FrameSizeEnum::Stepwise(range) => SizeOffer::Stepwise {
                min_width: range.min_width,
                max_width: range.max_width,
                step_width: range.step_width,
                min_height: range.min_height,
                max_height: range.max_height,
                step_height: range.step_height,
            },
        })
        .collect())
}

fn rate_offers(
    device: &Device,
    format: CaptureFormat,
    width: u32,
    height: u32,
) -> std::io::Result<Vec<RateOffer>> {
    let interval = |fraction: Fraction| Interval {
        numerator: fraction.numerator,
        denominator: fraction.denominator,
    };
    let Ok(rates) = device.enum_frameintervals(fourcc(format), width, height) else {
        return Ok(Vec::new());
    };
    Ok(rates
        .into_iter()
        .map(|rate| match rate.interval {
            FrameIntervalEnum::Discrete(fraction) => RateOffer::Discrete(interval(fraction)),
            FrameIntervalEnum::Stepwise(range) => RateOffer::Stepwise {
                min: interval(range.min),
                max: interval(range.max),
            },
        })
        .collect())
}

fn control_info(description: &Description) -> Option<ControlInfo> {
    // INACTIVE only says the value is unused now (its automatic mode is on);
    // writing it is allowed, and switching that mode off is the point.
    let writable = !description
        .flags
        .intersects(ControlFlags::DISABLED | ControlFlags::READ_ONLY);
    let menu = match description.typ {
        ControlType::Integer | ControlType::Boolean | ControlType::Integer64 => None,
        ControlType::Menu | ControlType::IntegerMenu => Some(
            description
                .items
                .iter()
                .flatten()
                .map(|(index, _)| i64::from(*index))
                .collect(),
        ),
        _ => return None,
    };
    Some(ControlInfo {
        id: description.id,
        name: description.name.clone(),
        minimum: description.minimum,
        maximum: description.maximum,
        step: description.step,
        default: description.default,
        menu,
        writable,
    })
}

/// The camera's plain controls (integers, booleans, menus).
fn controls_of(device: &Device) -> std::io::Result<Vec<ControlInfo>> {
    Ok(device
        .query_controls()?
        .iter()
        .filter_map(control_info)
        .collect())
}

fn apply_controls(
    device: &Device,
    path: &Path,
    wanted: &CameraControls,
) -> Result<Vec<String>, CameraError> {
    if *wanted == CameraControls::default() {
        return Ok(Vec::new());
    }
    let offered = controls_of(device)
        .map_err(|source| CameraError::from_io(path, "VIDIOC_QUERY_EXT_CTRL", source))?;
    let plan = crate::plan_controls(wanted, &offered);
    let mut notes = plan.notes;
    for write in plan.writes {
        // VIDIOC_S_EXT_CTRLS reads booleans and menus as integers too.
        if let Err(error) = device.set_control(Control {
            id: write.id,
            value: Value::Integer(write.value),
        }) {
            match CameraError::from_io(path, "VIDIOC_S_CTRL", error) {
                CameraError::Device { source, .. } => {
                    notes.push(format!(
                        "{}: the camera refused {}: {source}",
                        write.purpose, write.value
                    ));
                }
                other => return Err(other),
            }
        }
    }
    Ok(notes)
}

/// Everything a camera offers, for `edgesort camera list`.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraDescription {
    /// The device node.
    pub device: PathBuf,
    /// The driver's card name.
    pub card: String,
    /// The driver.
    pub driver: String,
    /// The bus, e.g. `usb-3610000.usb-2`.
    pub bus: String,
    /// Formats, each with its sizes, each with its rates.
    pub formats: Vec<FormatListing>,
    /// Controls with their ranges.
    pub controls: Vec<ControlInfo>,
}

/// One format and the sizes it comes in.
#[derive(Clone, Debug, PartialEq)]
pub struct FormatListing {
    /// The format.
    pub offer: FormatOffer,
    /// Its sizes (none for a format edgesort cannot read).
    pub sizes: Vec<SizeListing>,
}

/// One size and the rates it runs at.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeListing {
    /// The size.
    pub size: SizeOffer,
    /// Its frame rates (none listed for a size range).
    pub rates: Vec<RateOffer>,
}

/// Lists what the camera at `path` offers, without streaming.
pub fn describe_camera(path: &Path) -> Result<CameraDescription, CameraError> {
    let fail = |operation| move |source| CameraError::from_io(path, operation, source);
    let (device, caps) = open_capture_device(path)?;
    let mut formats = Vec::new();
    for offer in format_offers(&device).map_err(fail("VIDIOC_ENUM_FMT"))? {
        let mut sizes = Vec::new();
        if let Some(format) = CaptureFormat::from_fourcc(offer.fourcc) {
            for size in size_offers(&device, format).map_err(fail("VIDIOC_ENUM_FRAMESIZES"))? {
                let rates = match size {
                    SizeOffer::Discrete { width, height } => {
                        rate_offers(&device, format, width, height)
                            .map_err(fail("VIDIOC_ENUM_FRAMEINTERVALS"))?
                    }
                    SizeOffer::Stepwise { .. } => Vec::new(),
                };
                sizes.push(SizeListing { size, rates });
            }
        }
        formats.push(FormatListing { offer, sizes });
    }
    Ok(CameraDescription {
        device: path.to_owned(),
        card: caps.card,
        driver: caps.driver,
        bus: caps.bus,
        formats,
        controls: controls_of(&device).map_err(fail("VIDIOC_QUERY_EXT_CTRL"))?,
    })
}

/// The V4L2 device nodes present, in number order.
pub fn video_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let number = name.strip_prefix("video")?.parse().ok()?;
            Some((number, entry.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, path)| path).collect()
}
