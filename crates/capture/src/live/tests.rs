//! The capture thread's bookkeeping, driven by scripted cameras; the real
//! V4L2 path runs against the kernel's vivid driver in `tests/vivid.rs`.

use std::collections::VecDeque;

use edgesort_types::Timestamp;

use super::*;
use crate::negotiate::StreamMode;

enum Event {
    Frame {
        sequence: u32,
        bytes: Vec<u8>,
        damaged: bool,
    },
    Fail(CameraError),
    /// Nothing for this long (under the stall time).
    Wait(Duration),
}

struct ScriptedCamera {
    mode: StreamMode,
    events: VecDeque<Event>,
    current: Vec<u8>,
}

impl FrameDevice for ScriptedCamera {
    fn mode(&self) -> StreamMode {
        self.mode
    }

    fn next(&mut self, timeout: Duration) -> Result<RawFrame<'_>, CameraError> {
        match self.events.pop_front() {
            Some(Event::Frame {
                sequence,
                bytes,
                damaged,
            }) => {
                self.current = bytes;
                Ok(RawFrame {
                    data: RawBytes::Driver(&self.current),
                    sequence,
                    driver_time: Some(Timestamp::from_nanos(1_000_000 * u64::from(sequence))),
                    damaged,
                })
            }
            Some(Event::Fail(error)) => Err(error),
            Some(Event::Wait(pause)) => {
                std::thread::sleep(pause);
                Err(CameraError::Timeout {
                    device: "/dev/video9".into(),
                    waited_ms: pause.as_millis() as u64,
                })
            }
            None => {
                std::thread::sleep(timeout);
                Err(CameraError::Timeout {
                    device: "/dev/video9".into(),
                    waited_ms: timeout.as_millis() as u64,
                })
            }
        }
    }
}

fn jpeg() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/demo_clip/frames/000100.jpg"),
    )
    .unwrap()
}

fn mjpeg_mode() -> StreamMode {
    StreamMode {
        format: CaptureFormat::Mjpeg,
        width: 640,
        height: 360,
        stride: 0,
        fps: Some(60.0),
    }
}

fn frame(sequence: u32, bytes: Vec<u8>) -> Event {
    Event::Frame {
        sequence,
        bytes,
        damaged: false,
    }
}

fn camera(events: Vec<Event>) -> ScriptedCamera {
    ScriptedCamera {
        mode: mjpeg_mode(),
        events: events.into(),
        current: Vec::new(),
    }
}

fn report() -> OpenReport {
    OpenReport {
        card: "scripted".into(),
        driver: "test".into(),
        mode: mjpeg_mode(),
        deviations: Vec::new(),
        control_notes: Vec::new(),
    }
}

/// An opener that hands out `results` in order, then keeps failing.
fn opener(results: Vec<Result<ScriptedCamera, CameraError>>) -> Opener {
    let mut results: VecDeque<_> = results.into();
    Box::new(move || match results.pop_front() {
        Some(Ok(camera)) => Ok((Box::new(camera) as Box<dyn FrameDevice>, report())),
        Some(Err(error)) => Err(error),
        None => Err(CameraError::NoDevice {
            device: "/dev/video9".into(),
        }),
    })
}

fn gone() -> CameraError {
    CameraError::NoDevice {
        device: "/dev/video9".into(),
    }
}

fn wait_for(camera: &LiveCamera, done: impl Fn(&CaptureCounters) -> bool) -> CaptureCounters {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counters = camera.counters();
        if done(&counters) {
            return counters;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {counters:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A TEST DOUBLE of a detector's frame pool: plain heap buffers, at most
/// `limit` lent at once.
struct HeapPool {
    lent: Arc<AtomicU64>,
    limit: u64,
}

struct HeapBuffer {
    bytes: Vec<u8>,
    lent: Arc<AtomicU64>,
}

impl edgesort_types::PixelBuffer for HeapBuffer {
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

impl Drop for HeapBuffer {
    fn drop(&mut self) {
        self.lent.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FramePool for HeapPool {
    fn accepts(&self, layout: FrameLayout) -> bool {
        layout.format != edgesort_types::PixelFormat::Grey
    }
    fn take(&self, layout: FrameLayout) -> Option<Box<dyn edgesort_types::PixelBuffer>> {
        if !self.accepts(layout) || self.lent.load(Ordering::SeqCst) >= self.limit {
            return None;
        }
        self.lent.fetch_add(1, Ordering::SeqCst);
        Some(Box::new(HeapBuffer {
            bytes: vec![0; layout.byte_len()],
            lent: self.lent.clone(),
        }))
    }
    fn describe(&self) -> String {
        "heap buffers (test double)".into()
    }
}

#[test]
fn raw_frames_land_in_lent_buffers_unconverted_and_fall_back_to_rgb_when_none_is_free() {
    use edgesort_types::{PixelFormat, Pixels};
    let mode = StreamMode {
        format: CaptureFormat::Raw(PixelFormat::Yuyv),
        width: 4,
        height: 2,
        stride: 8,
        fps: Some(60.0),
    };
    let layout = FrameLayout::packed(PixelFormat::Yuyv, 4, 2);
    let first: Vec<u8> = (0..16).map(|i| 40 + 10 * i).collect();
    let second: Vec<u8> = (0..16).map(|i| 200 - 9 * i).collect();
    let script = ScriptedCamera {
        mode,
        events: vec![
            Event::Wait(Duration::from_millis(100)),
            frame(0, first.clone()),
            Event::Wait(Duration::from_millis(100)),
            frame(1, second.clone()),
        ]
        .into(),
        current: Vec::new(),
    };
    let (live, _) = LiveCamera::with_opener(
        "/dev/video9".into(),
        opener(vec![Ok(script)]),
        LiveOptions::default(),
    )
    .unwrap();
    assert!(
        live.frame_path().ends_with("converted to RGB on the CPU"),
        "{}",
        live.frame_path()
    );
    let lent = Arc::new(AtomicU64::new(0));
    live.lend_buffers(Some(Arc::new(HeapPool {
        lent: lent.clone(),
        limit: 1,
    })));
    let path = live.frame_path();
    assert!(
        path.starts_with("YUYV 4x2 in the camera's own buffers")
            && path
                .contains("copied once (memcpy, timed per frame) into heap buffers (test double)"),
        "{path}"
    );

    // The camera's bytes, as the driver laid them out, in the lent buffer.
    let held = live.next_frame(Duration::from_secs(5)).unwrap();
    match &held.pixels {
        Pixels::Camera {
            layout: seen,
            buffer,
        } => {
            assert_eq!(*seen, layout);
            assert_eq!(buffer.bytes(), &first[..]);
        }
        Pixels::Rgb(_) => panic!("the frame was converted on the CPU"),
    }
    assert_eq!(&*held.rgb(), &layout.to_rgb(&first)[..]);
    assert_eq!(lent.load(Ordering::SeqCst), 1);

    // The one buffer is held: the next frame takes the CPU path, whole.
    let converted = live.next_frame(Duration::from_secs(5)).unwrap();
    assert_eq!(converted.sequence, 1);
    assert!(matches!(converted.pixels, Pixels::Rgb(_)));
    assert_eq!(&*converted.rgb(), &layout.to_rgb(&second)[..]);
    drop(held);
    assert_eq!(lent.load(Ordering::SeqCst), 0, "the buffer went back");

    live.lend_buffers(None);
    assert!(live.frame_path().ends_with("converted to RGB on the CPU"));
}

#[test]
fn gaps_corrupt_and_damaged_frames_are_counted_and_the_stream_goes_on() {
    let whole = jpeg();
    let truncated = whole[..whole.len() / 2].to_vec();
    let script = camera(vec![
        frame(0, whole.clone()),
        frame(1, truncated),
        frame(4, whole.clone()),
        Event::Frame {
            sequence: 5,
            bytes: whole.clone(),
            damaged: true,
        },
        frame(6, whole),
    ]);
    let (live, _) = LiveCamera::with_opener(
        "/dev/video9".into(),
        opener(vec![Ok(script)]),
        LiveOptions::default(),
    )
    .unwrap();
    let counters = wait_for(&live, |c| c.frames + c.corrupt == 5);
    assert_eq!(
        (counters.frames, counters.corrupt, counters.driver_drops),
        (3, 2, 2)
    );
    // Nobody took frames 0 and 4 before the next one replaced them.
    assert_eq!(counters.pipeline_drops, 2);
    let newest = live.next_frame(Duration::from_secs(1)).unwrap();
    assert_eq!(newest.sequence, 6);
    assert_eq!(newest.captured_at, Timestamp::from_nanos(6_000_000));
    assert_eq!(
        (newest.width, newest.height, newest.rgb().len()),
        (640, 360, 640 * 360 * 3)
    );
    assert_eq!(live.health(), CameraHealth::Streaming);
    assert!(live.next_frame(Duration::from_millis(20)).is_none());
}

#[test]
fn a_disconnect_reopens_and_the_sequence_runs_on() {
    let first = camera(vec![
        frame(10, jpeg()),
        Event::Fail(CameraError::Disconnected {
            device: "/dev/video9".into(),
        }),
    ]);
    let second = camera(vec![frame(0, jpeg()), frame(1, jpeg())]);
    let (live, _) = LiveCamera::with_opener(
        "/dev/video9".into(),
        opener(vec![Ok(first), Err(gone()), Err(gone()), Ok(second)]),
        LiveOptions::default(),
    )
    .unwrap();
    let counters = wait_for(&live, |c| c.frames == 3);
    assert_eq!(counters.reconnects, 1);
    assert_eq!(counters.driver_drops, 0);
    assert!(counters.last_outage_us > 0);
    // Two failed reopen attempts waited 10 and 20 ms.
    assert!(counters.last_outage_us >= 30_000, "{counters:?}");
    assert_eq!(live.next_frame(Duration::from_secs(1)).unwrap().sequence, 2);
    assert_eq!(live.health(), CameraHealth::Streaming);
}

#[test]
fn a_camera_that_delivers_nothing_is_reported_and_reopened() {
    let silent = camera(Vec::new());
    let working = camera(vec![frame(0, jpeg())]);
    let options = LiveOptions {
        stall_after: Duration::from_millis(120),
        ..LiveOptions::default()
    };
    let (live, _) = LiveCamera::with_opener(
        "/dev/video9".into(),
        opener(vec![Ok(silent), Ok(working)]),
        options,
    )
    .unwrap();
    let counters = wait_for(&live, |c| c.frames == 1);
    assert!(counters.stalls >= 1, "{counters:?}");
    assert_eq!(counters.reconnects, 1);
    let frame = live.next_frame(Duration::from_secs(1)).unwrap();
    live.recycle(frame);
    // The working camera falls silent too, and nothing else comes back.
    wait_for(&live, |c| c.stalls == 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !matches!(live.health(), CameraHealth::Reconnecting(_)) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let CameraHealth::Reconnecting(reason) = live.health() else {
        unreachable!()
    };
    assert!(reason.starts_with("no frame for"), "{reason}");
}

#[test]
fn a_failure_at_the_first_open_is_returned_naming_the_device() {
    let busy = CameraError::Busy {
        device: "/dev/video9".into(),
    };
    let error = LiveCamera::with_opener(
        "/dev/video9".into(),
        opener(vec![Err(busy)]),
        LiveOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "camera /dev/video9 is busy: another process is streaming from it (`fuser /dev/video9` \
         names it)"
    );
}

#[test]
fn sequence_gaps_survive_wrapping_and_restarts() {
    let mut last = None;
    assert_eq!(count_gap(&mut last, u32::MAX - 1), 0);
    assert_eq!(count_gap(&mut last, u32::MAX), 0);
    assert_eq!(count_gap(&mut last, 2), 2);
    assert_eq!(count_gap(&mut last, 2), 0);
    assert_eq!(count_gap(&mut last, 0), 0);
    assert_eq!(count_gap(&mut last, 5), 4);
}
