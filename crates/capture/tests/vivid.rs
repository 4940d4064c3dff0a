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
            raw_to_rgb(&layout, frame.bytes, &mut rgb).unwrap();
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
