//! The V4L2 path against a real V4L2 driver: the kernel's `vivid` test
//! driver, in a qemu VM (`scripts/vivid/test.sh` boots it, loads vivid and
//! runs these with `--ignored`, `VIVID_VIDEO` naming the capture node).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use edgesort_capture::{
    CameraControls, CameraError, CameraRequest, CameraSettings, CaptureFormat, LiveCamera,
    LiveOptions, V4l2Camera, control_id, describe_camera, negotiate::SizeOffer, raw_to_rgb,
};
use edgesort_types::{Clock, FrameLayout, MonotonicClock, PixelFormat};
use v4l::control::{Control, Value};

/// vivid's "Disconnect" button (VIVID_CID_VIVID_BASE + 65): as after a USB
/// unplug, opening the node and every call on an open file fail with ENODEV,
/// until the last open file is closed.
const VIVID_DISCONNECT: u32 = 0x00f0_f000 + 65;

fn node() -> PathBuf {
    std::env::var_os("VIVID_VIDEO")
        .expect("VIVID_VIDEO must name vivid's capture node; scripts/vivid/test.sh sets it")
        .into()
}

fn settings(format: PixelFormat, width: u32, height: u32, fps: f64) -> CameraSettings {
    CameraSettings {
        device: node(),
        request: CameraRequest {
            formats: vec![CaptureFormat::Raw(format)],
            width,
            height,
            fps,
        },
        controls: CameraControls::default(),
        buffers: 4,
    }
}

#[test]
#[ignore = "needs the vivid V4L2 driver: scripts/vivid/test.sh runs it in a VM"]
fn lists_formats_sizes_rates_and_controls() {
    let description = describe_camera(&node()).unwrap();
    println!(
        "{} ({}): {} formats, {} controls",
        description.card,
        description.bus,
        description.formats.len(),
        description.controls.len()
    );
    assert_eq!(description.driver, "vivid");
    let yuyv = description
        .formats
        .iter()
        .find(|listing| &listing.offer.fourcc == b"YUYV")
        .expect("vivid offers YUYV");
    assert!(
        description
            .formats
            .iter()
            .any(|listing| &listing.offer.fourcc == b"NV12")
    );
    let at_640x360 = yuyv
        .sizes
        .iter()
        .find(|listing| {
            listing.size
                == SizeOffer::Discrete {
                    width: 640,
                    height: 360,
                }
        })
        .expect("vivid's webcam input offers 640x360");
    assert!(at_640x360.rates.len() >= 10, "{:?}", at_640x360.rates);
    assert!(
        description
            .controls
            .iter()
            .any(|c| c.id == control_id::GAIN)
    );
}

#[test]
#[ignore = "needs the vivid V4L2 driver: scripts/vivid/test.sh runs it in a VM"]
fn yuyv_streams_with_driver_timestamps_and_no_sequence_gaps() {
    let mut camera = V4l2Camera::open(&settings(PixelFormat::Yuyv, 640, 360, 30.0)).unwrap();
    let report = camera.report().clone();
    println!("{report:?}");
    assert!(report.deviations.is_empty(), "{:?}", report.deviations);
    let mode = camera.mode();
    assert_eq!((mode.width, mode.height, mode.fps), (640, 360, Some(30.0)));
    assert!(mode.stride >= 1280);

    let mut times = Vec::new();
    let mut sequences = Vec::new();
    let mut rgb = Vec::new();
    for index in 0..30 {
        let frame = camera.next(Duration::from_secs(2)).unwrap();
        let captured = frame
            .driver_time
            .expect("vivid stamps buffers with CLOCK_MONOTONIC");
        let now = MonotonicClock.now();
        // vivid stamps the end of the frame: the time it generated it plus
        // 0.9 of a period, which can lie ahead of now; a stamp on any other
        // clock would be off by far more.
        let ahead = captured.saturating_since(now);
        let behind = now.saturating_since(captured);
        assert!(
            ahead < Duration::from_millis(70) && behind < Duration::from_secs(1),
            "driver time {captured:?} against CLOCK_MONOTONIC {now:?} is not on that clock"
        );
        assert!(!frame.damaged);
        if index == 29 {
            let layout = FrameLayout {
                format: PixelFormat::Yuyv,
                width: mode.width,
                height: mode.height,
                stride: mode.stride,
            };
            raw_to_rgb(&layout, frame.bytes(), &mut rgb).unwrap();
        }
        times.push(captured);
        sequences.push(frame.sequence);
    }
    for pair in sequences.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "sequence gap: {sequences:?}");
    }
    for pair in times.windows(2) {
        assert!(pair[1] > pair[0], "timestamps not increasing: {times:?}");
    }
    let mean = times[29].saturating_since(times[0]) / 29;
    println!("mean frame interval {mean:?} at 30 fps, sequences {sequences:?}");
    assert!(
        mean > Duration::from_millis(30) && mean < Duration::from_millis(37),
        "mean interval {mean:?}"
    );
    // vivid's default pattern is colour bars.
    let mut colours: Vec<[u8; 3]> = rgb.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() >= 8, "{} distinct colours", colours.len());
}

#[test]
#[ignore = "needs the vivid V4L2 driver: scripts/vivid/test.sh runs it in a VM"]
fn nv12_streams_through_the_live_camera() {
    let (camera, report) = LiveCamera::start(
        settings(PixelFormat::Nv12, 640, 360, 15.0),
        LiveOptions::default(),
    )
    .unwrap();
    println!("{report:?}");
    assert_eq!(report.mode.format, CaptureFormat::Raw(PixelFormat::Nv12));
    let mut last = None;
    let mut colours = Vec::new();
    for _ in 0..10 {
        let frame = camera
            .next_frame(Duration::from_secs(3))
            .expect("a frame within 3 s");
        assert_eq!((frame.width, frame.height), (640, 360));
        assert_eq!(frame.rgb().len(), 640 * 360 * 3);
        if let Some((sequence, time)) = last {
            assert!(frame.sequence > sequence);
            assert!(frame.captured_at > time);
        }
        last = Some((frame.sequence, frame.captured_at));
        colours = frame
            .rgb()
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        camera.recycle(frame);
    }
    let counters = camera.counters();
    println!("{counters:?}");
    assert_eq!(
        (counters.corrupt, counters.untimed, counters.reconnects),
        (0, 0, 0)
    );
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() >= 8, "{} distinct colours", colours.len());
}

#[test]
#[ignore = "needs the vivid V4L2 driver: scripts/vivid/test.sh runs it in a VM"]
fn a_size_the_camera_lacks_is_negotiated_and_reported() {
    let camera = V4l2Camera::open(&settings(PixelFormat::Yuyv, 1000, 700, 30.0)).unwrap();
    assert_eq!((camera.mode().width, camera.mode().height), (1280, 720));
    assert_eq!(
        camera.report().deviations,
        ["size 1280x720 (asked for 1000x700)"]
    );
    drop(camera);

    let mut mjpeg_only = settings(PixelFormat::Yuyv, 640, 360, 30.0);
    mjpeg_only.request.formats = vec![CaptureFormat::Mjpeg];
    let error = V4l2Camera::open(&mjpeg_only).unwrap_err();
    let message = error.to_string();
    println!("{message}");
    assert!(matches!(error, CameraError::Negotiation { .. }));
    assert!(message.starts_with(&format!(
        "camera {}: none of the configured formats (MJPG)",
        node().display()
    )));
    assert!(message.contains("YUYV (YUYV 4:2:2)"), "{message}");
}

#[test]
#[ignore = "needs the vivid V4L2 driver: scripts/vivid/test.sh runs it in a VM"]
fn controls_are_set_and_the_missing_ones_named() {
    let mut with_controls = settings(PixelFormat::Yuyv, 640, 360, 30.0);
    with_controls.controls = CameraControls {
        exposure_us: Some(1000),
        gain: Some(42),
        ..CameraControls::default()
    };
    let camera = V4l2Camera::open(&with_controls).unwrap();
    assert_eq!(
        camera.report().control_notes,
        ["exposure_us: the camera has no such control"]
    );
    let device = v4l::Device::with_path(node()).unwrap();
    assert_eq!(
        device.control(control_id::GAIN).unwrap().value,
        Value::Integer(42)
    );
    assert_eq!(
        device.control(control_id::AUTOGAIN).unwrap().value,
        Value::Boolean(false)
    );
}

#[test]
#[ignore = "needs the vivid V4L2 driver: scripts/vivid/test.sh runs it in a VM"]
fn a_busy_or_missing_camera_names_the_device() {
    let mut streaming = V4l2Camera::open(&settings(PixelFormat::Yuyv, 640, 360, 30.0)).unwrap();
    streaming.next(Duration::from_secs(2)).unwrap();
    let error = V4l2Camera::open(&settings(PixelFormat::Yuyv, 640, 360, 30.0)).unwrap_err();
    println!("{error}");
    assert!(matches!(error, CameraError::Busy { .. }), "{error:?}");
    assert!(error.to_string().contains(&node().display().to_string()));
    drop(streaming);

    let mut missing = settings(PixelFormat::Yuyv, 640, 360, 30.0);
    missing.device = "/dev/video99".into();
    let error = V4l2Camera::open(&missing).unwrap_err();
    println!("{error}");
    assert!(matches!(error, CameraError::NoDevice { .. }), "{error:?}");
    assert!(error.to_string().starts_with("no camera at /dev/video99"));
}

#[test]
#[ignore = "needs the vivid V4L2 driver: scripts/vivid/test.sh runs it in a VM"]
fn a_forced_disconnect_reconnects_within_a_second() {
    let (camera, _) = LiveCamera::start(
        settings(PixelFormat::Yuyv, 640, 360, 30.0),
        LiveOptions::default(),
    )
    .unwrap();
    for _ in 0..5 {
        camera
            .next_frame(Duration::from_secs(3))
            .expect("streaming");
    }
    let before = camera.counters();
    let unplugged_at = Instant::now();
    let mut back_after = None;
    {
        let other = v4l::Device::with_path(node()).unwrap();
        other
            .set_control(Control {
                id: VIVID_DISCONNECT,
                value: Value::None,
            })
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while camera.counters().reconnects == 0 || camera.counters().frames < before.frames + 5 {
        let counters = camera.counters();
        if back_after.is_none() && counters.reconnects == 1 && counters.frames > before.frames {
            back_after = Some(unplugged_at.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "no reconnect: {:?}",
            camera.counters()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let after = camera.counters();
    let back_after = back_after.expect("a frame arrived after the reconnect");
    println!(
        "disconnect to next frame: {} µs by the capture thread, {} ms from the button press \
         (polled every 10 ms); {after:?}",
        after.last_outage_us,
        back_after.as_millis()
    );
    assert_eq!(after.reconnects, 1);
    assert!(after.last_outage_us > 0 && after.last_outage_us < 1_000_000);
    assert!(back_after < Duration::from_secs(1), "{back_after:?}");
    assert!(camera.next_frame(Duration::from_secs(3)).is_some());
}

/// TEST DOUBLE for a detector's frame pool: heap buffers, filled with a
/// marker byte so that a frame the driver did not write shows, at most
/// `limit` lent at once.
struct MarkedPool {
    lent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    limit: u64,
}

const MARKER: u8 = 0xab;

struct MarkedBuffer {
    bytes: Vec<u8>,
    lent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl edgesort_types::PixelBuffer for MarkedBuffer {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl Drop for MarkedBuffer {
    fn drop(&mut self) {
        self.lent.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl edgesort_types::FramePool for MarkedPool {
    fn accepts(&self, layout: FrameLayout) -> bool {
        layout.format == PixelFormat::Yuyv
    }
    fn take(&self, layout: FrameLayout) -> Option<Box<dyn edgesort_types::PixelBuffer>> {
        use std::sync::atomic::Ordering;
        if !self.accepts(layout) || self.lent.load(Ordering::SeqCst) >= self.limit {
            return None;
        }
        self.lent.fetch_add(1, Ordering::SeqCst);
        Some(Box::new(MarkedBuffer {
            bytes: vec![MARKER; layout.byte_len()],
            lent: self.lent.clone(),
        }))
    }
    fn describe(&self) -> String {
        "marked heap buffers (test double)".into()
    }
}

/// Issue 24: where the driver takes user pointers (vivid does), raw frames
/// are written by the driver straight into the buffers a detector lends,
/// with no copy; with every lent buffer held, frames still come (converted
/// on the CPU); taking the pool back returns to the driver's own buffers.
#[test]
#[ignore = "needs the vivid V4L2 driver: scripts/vivid/test.sh runs it in a VM"]
fn the_driver_writes_raw_frames_straight_into_lent_buffers() {
    use edgesort_types::{FramePool, Pixels};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let (camera, report) = LiveCamera::start(
        settings(PixelFormat::Yuyv, 640, 360, 30.0),
        LiveOptions::default(),
    )
    .unwrap();
    let mode = report.mode;
    let layout = FrameLayout {
        format: PixelFormat::Yuyv,
        width: mode.width,
        height: mode.height,
        stride: mode.stride,
    };
    assert!(
        camera.frame_path().contains("V4L2 MMAP"),
        "{}",
        camera.frame_path()
    );
    let lent = Arc::new(AtomicU64::new(0));
    let pool: Arc<dyn FramePool> = Arc::new(MarkedPool {
        lent: lent.clone(),
        limit: 8,
    });
    camera.lend_buffers(Some(pool));

    let is_lent = |frame: &edgesort_types::Frame| match &frame.pixels {
        Pixels::Camera { buffer, .. } => buffer.as_any().is::<MarkedBuffer>(),
        Pixels::Rgb(_) => false,
    };
    // The switch restarts the stream once; then every frame is written by
    // the driver into a lent buffer, and the capture thread copies nothing.
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut written = std::collections::VecDeque::new();
    let mut in_lent = 0;
    let mut since_switch = 0;
    let mut last_sequence = None;
    while in_lent < 10 {
        assert!(
            Instant::now() < give_up,
            "no frames in lent buffers: {}",
            camera.frame_path()
        );
        let Some((frame, copy)) = camera.next_frame_timed(Duration::from_secs(2)) else {
            continue;
        };
        if let Some(last) = last_sequence {
            assert!(frame.sequence > last);
        }
        last_sequence = Some(frame.sequence);
        // Until the capture thread has moved the stream (and for the frame
        // already in the hand-over then), a raw frame is copied into a lent
        // buffer; from then on none is.
        if camera.counters().path_changes == 0 {
            continue;
        }
        since_switch += 1;
        if is_lent(&frame) && copy > Duration::ZERO {
            assert!(
                since_switch <= 1,
                "a frame copied after the switch: {copy:?}"
            );
            continue;
        }
        if is_lent(&frame) {
            in_lent += 1;
            // The last three are checked below; older ones go back.
            written.push_back(frame);
            if written.len() > 3 {
                written.pop_front();
            }
        }
    }
    let path = camera.frame_path();
    println!("frame path: {path}");
    assert!(path.contains("V4L2 USERPTR"), "{path}");
    assert!(camera.counters().path_changes >= 1);
    for frame in &written {
        let (_, bytes) = frame.layout_and_bytes();
        assert_eq!(bytes.len(), layout.byte_len());
        assert!(
            bytes.iter().any(|&byte| byte != MARKER),
            "the driver wrote the lent buffer"
        );
        let mut rgb = Vec::new();
        raw_to_rgb(&layout, bytes, &mut rgb).unwrap();
        let mut colours: Vec<[u8; 3]> = rgb.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(colours.len() >= 8, "colour bars: {} colours", colours.len());
    }

    // Hold every buffer the pool may lend: frames still arrive, converted
    // to RGB, and the stream runs on.
    let mut held: Vec<_> = written.drain(..).collect();
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut converted = 0;
    while converted < 3 {
        assert!(Instant::now() < give_up, "no frames while the pool was dry");
        let Some(frame) = camera.next_frame(Duration::from_secs(2)) else {
            continue;
        };
        if is_lent(&frame) {
            held.push(frame);
        } else {
            assert_eq!(frame.rgb().len(), 640 * 360 * 3);
            converted += 1;
        }
    }
    println!(
        "{} lent buffers held, {} lent in all; {converted} frames converted meanwhile",
        held.len(),
        lent.load(Ordering::SeqCst)
    );
    drop(held);

    // The pool taken back: the driver's own buffers again.
    camera.lend_buffers(None);
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < give_up,
            "still in lent buffers: {}",
            camera.frame_path()
        );
        if let Some(frame) = camera.next_frame(Duration::from_secs(2))
            && !is_lent(&frame)
            && camera.frame_path().contains("V4L2 MMAP")
        {
            break;
        }
    }
    let counters = camera.counters();
    println!("{counters:?}");
    assert_eq!((counters.corrupt, counters.reconnects), (0, 0));
    drop(camera);
    assert_eq!(
        lent.load(Ordering::SeqCst),
        0,
        "every lent buffer came back"
    );
}
