//! A live camera on its own thread: frames converted as they arrive, the
//! newest one handed to the pipeline, every lost frame counted by cause, and
//! the camera reopened whenever it goes away.
//!
//! The pipeline must never see a stale frame, so the hand-over holds one
//! frame: a new one replaces one the pipeline has not taken yet (a pipeline
//! drop). Frames the driver lost show as gaps in its sequence numbers (driver
//! drops). A frame that cannot be decoded is counted and skipped; the stream
//! goes on. A camera that disconnects, or delivers nothing for the stall
//! time, is closed and reopened with a short capped backoff, so it streams
//! again well within a second of coming back, without restarting the process.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use edgesort_types::{Clock, Frame, FrameLayout, FramePool, MonotonicClock, Pixels};

use crate::v4l2::{CameraSettings, OpenReport, RawBytes, RawFrame, V4l2Camera};
use crate::{CameraError, CaptureFormat, StreamMode, decode_jpeg_rgb_into, raw_to_rgb};

/// A camera the capture thread reads.
pub trait FrameDevice: Send {
    /// The mode it streams in.
    fn mode(&self) -> StreamMode;
    /// The next frame, waiting at most `timeout`.
    fn next(&mut self, timeout: Duration) -> Result<RawFrame<'_>, CameraError>;
    /// Writes raw frames straight into `pool`'s buffers from now on (`None`:
    /// into its own), or says why it cannot.
    fn write_into(&mut self, pool: Option<Arc<dyn FramePool>>) -> Result<(), String> {
        match pool {
            None => Ok(()),
            Some(_) => Err("this camera writes only into its own buffers".into()),
        }
    }
    /// Whose memory frames arrive in, in words.
    fn memory(&self) -> &'static str {
        "in the camera's own buffers"
    }
}

impl FrameDevice for V4l2Camera {
    fn mode(&self) -> StreamMode {
        V4l2Camera::mode(self)
    }

    fn next(&mut self, timeout: Duration) -> Result<RawFrame<'_>, CameraError> {
        V4l2Camera::next(self, timeout)
    }

    fn write_into(&mut self, pool: Option<Arc<dyn FramePool>>) -> Result<(), String> {
        V4l2Camera::write_into(self, pool)
    }

    fn memory(&self) -> &'static str {
        V4l2Camera::memory(self)
    }
}

/// Opens (and reopens) the camera.
pub type Opener =
    Box<dyn FnMut() -> Result<(Box<dyn FrameDevice>, OpenReport), CameraError> + Send>;

/// How patient the capture thread is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiveOptions {
    /// A camera that delivers nothing this long is reported and reopened.
    pub stall_after: Duration,
    /// The longest wait between two attempts to reopen a camera that went
    /// away; it bounds how late a returning camera is noticed.
    pub max_backoff: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            stall_after: Duration::from_secs(1),
            max_backoff: Duration::from_millis(200),
        }
    }
}

/// How the configuration's `[camera]` section asks for `device` to be
/// opened and watched.
pub fn live_settings(
    camera: &edgesort_types::config::CameraConfig,
    device: std::path::PathBuf,
) -> (crate::CameraSettings, LiveOptions) {
    let options = LiveOptions {
        stall_after: Duration::from_millis(camera.stall_ms),
        ..LiveOptions::default()
    };
    let settings = crate::CameraSettings {
        device,
        request: crate::CameraRequest {
            formats: camera.formats.clone(),
            width: camera.width,
            height: camera.height,
            fps: camera.fps,
        },
        controls: camera.controls.clone(),
        buffers: camera.buffers,
    };
    (settings, options)
}

/// What the capture thread has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureCounters {
    /// Frames handed over.
    pub frames: u64,
    /// Frames the driver lost (gaps in its sequence numbers).
    pub driver_drops: u64,
    /// Frames replaced before the pipeline took them.
    pub pipeline_drops: u64,
    /// Frames skipped as undecodable or flagged damaged by the driver.
    pub corrupt: u64,
    /// Times the camera was reopened after a disconnect or stall.
    pub reconnects: u64,
    /// Times the camera delivered nothing for the stall time.
    pub stalls: u64,
    /// Frames stamped on arrival because the driver gave no monotonic time.
    pub untimed: u64,
    /// From losing the camera to its next frame, for the latest outage (µs).
    pub last_outage_us: u64,
    /// Times the frames' memory changed (the driver began or stopped
    /// writing into lent buffers): the frame path is worth describing again.
    pub path_changes: u64,
}

/// Whether frames are flowing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraHealth {
    /// Frames arrive.
    Streaming,
    /// The camera went away or stalled; reopening, with the reason.
    Reconnecting(String),
}

#[derive(Default)]
struct Counters {
    frames: AtomicU64,
    driver_drops: AtomicU64,
    pipeline_drops: AtomicU64,
    corrupt: AtomicU64,
    reconnects: AtomicU64,
    stalls: AtomicU64,
    untimed: AtomicU64,
    last_outage_us: AtomicU64,
    path_changes: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

struct Slot {
    frame: Option<Frame>,
    /// How long converting `frame` (colour conversion or JPEG decode) took.
    convert: Duration,
    spare: Vec<Vec<u8>>,
    health: CameraHealth,
    mode: StreamMode,
    /// Whose memory the driver writes frames into, in words.
    memory: &'static str,
    /// Why the driver does not write into the lent buffers, when it was
    /// asked to and could not.
    lending_refused: Option<String>,
}

struct Shared {
    device: PathBuf,
    slot: Mutex<Slot>,
    /// Buffers lent by the detector for frames in the camera's layout.
    pool: Mutex<Option<Arc<dyn FramePool>>>,
    arrived: Condvar,
    counters: Counters,
    stop: AtomicBool,
}

impl Shared {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        // The slot holds plain data that no panic leaves half-written.
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn pool(&self) -> Option<Arc<dyn FramePool>> {
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Two spare buffers cover one frame being filled while one waits.
const MAX_SPARE_BUFFERS: usize = 2;

/// A camera streaming on its own thread.
pub struct LiveCamera {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LiveCamera {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LiveCamera")
            .field("device", &self.shared.device)
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl LiveCamera {
    /// Opens the V4L2 camera `settings` names and starts streaming. Errors at
    /// this first open (no such device, busy, no usable format) are returned;
    /// later ones are reported and recovered from.
    pub fn start(
        settings: CameraSettings,
        options: LiveOptions,
    ) -> Result<(Self, OpenReport), CameraError> {
        let device = settings.device.clone();
        let opener: Opener = Box::new(move || {
            let camera = V4l2Camera::open(&settings)?;
            let report = camera.report().clone();
            Ok((Box::new(camera) as Box<dyn FrameDevice>, report))
        });
        Self::with_opener(device, opener, options)
    }

    /// [`LiveCamera::start`] with any way of opening the camera.
    pub fn with_opener(
        device: PathBuf,
        mut opener: Opener,
        options: LiveOptions,
    ) -> Result<(Self, OpenReport), CameraError> {
        let (camera, report) = opener()?;
        let shared = Arc::new(Shared {
            device,
            slot: Mutex::new(Slot {
                frame: None,
                convert: Duration::ZERO,
                spare: Vec::new(),
                health: CameraHealth::Streaming,
                mode: camera.mode(),
                memory: camera.memory(),
                lending_refused: None,
            }),
            pool: Mutex::new(None),
            arrived: Condvar::new(),
            counters: Counters::default(),
            stop: AtomicBool::new(false),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("camera".into())
            .spawn(move || capture_loop(&thread_shared, camera, opener, options))
            .map_err(|source| CameraError::Device {
                device: shared.device.clone(),
                operation: "spawning the capture thread",
                source,
            })?;
        Ok((
            LiveCamera {
                shared,
                thread: Some(thread),
            },
            report,
        ))
    }

    /// The newest frame, waiting at most `timeout` for one; `None` if none
    /// arrived (the camera's health says why).
    pub fn next_frame(&self, timeout: Duration) -> Option<Frame> {
        self.next_frame_timed(timeout).map(|(frame, _)| frame)
    }

    /// As [`LiveCamera::next_frame`], with the time the capture thread spent
    /// on it: the conversion to RGB (colour conversion, or JPEG decode for
    /// MJPG), or the one copy into a lent buffer.
    pub fn next_frame_timed(&self, timeout: Duration) -> Option<(Frame, Duration)> {
        let slot = self.shared.slot();
        let (mut slot, _) = self
            .shared
            .arrived
            .wait_timeout_while(slot, timeout, |slot| slot.frame.is_none())
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let convert = slot.convert;
        slot.frame.take().map(|frame| (frame, convert))
    }

    /// Gives a frame's buffer back for the next conversion (a lent buffer
    /// goes back to its pool when the frame is dropped).
    pub fn recycle(&self, frame: Frame) {
        let Some(rgb) = frame.into_rgb() else { return };
        let mut slot = self.shared.slot();
        if slot.spare.len() < MAX_SPARE_BUFFERS {
            slot.spare.push(rgb);
        }
    }

    /// Lends the camera buffers in memory the detector reads in place: from
    /// the next frame on, frames in a raw format the pool takes are copied
    /// once into them, in the camera's layout, and not converted on the CPU.
    /// `None` returns to RGB frames.
    pub fn lend_buffers(&self, pool: Option<Arc<dyn FramePool>>) {
        *self
            .shared
            .pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = pool;
    }

    /// The path a frame takes from the driver to the detector, in words.
    pub fn frame_path(&self) -> String {
        let (mode, memory, refused) = {
            let slot = self.shared.slot();
            (slot.mode, slot.memory, slot.lending_refused.clone())
        };
        let source = format!("{} {}x{} {memory}", mode.format, mode.width, mode.height);
        if memory.contains("USERPTR") {
            return format!("{source}; the GPU reads them, no copy");
        }
        let lent = mode
            .raw_layout()
            .and_then(|layout| self.shared.pool().filter(|pool| pool.accepts(layout)));
        let refused = refused
            .map(|why| format!(" (no user pointers: {why})"))
            .unwrap_or_default();
        match (mode.format, lent) {
            (CaptureFormat::Mjpeg, _) => format!("{source}, decoded to RGB on the CPU"),
            (CaptureFormat::Raw(_), Some(pool)) => format!(
                "{source}, copied once (memcpy, timed per frame) into {}{refused}; the GPU \
                 converts the pixels",
                pool.describe()
            ),
            (CaptureFormat::Raw(_), None) => format!("{source}, converted to RGB on the CPU"),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> CaptureCounters {
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CaptureCounters {
            frames: get(&c.frames),
            driver_drops: get(&c.driver_drops),
            pipeline_drops: get(&c.pipeline_drops),
            corrupt: get(&c.corrupt),
            reconnects: get(&c.reconnects),
            stalls: get(&c.stalls),
            untimed: get(&c.untimed),
            last_outage_us: get(&c.last_outage_us),
            path_changes: get(&c.path_changes),
        }
    }

    /// Whether frames are flowing.
    pub fn health(&self) -> CameraHealth {
        self.shared.slot().health.clone()
    }

    /// The mode of the current stream (it may change on a reconnect).
    pub fn mode(&self) -> StreamMode {
        self.shared.slot().mode
    }

    /// The device node.
    pub fn device(&self) -> &Path {
        &self.shared.device
    }
}

impl Drop for LiveCamera {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Per-stream bookkeeping, reset at each (re)open.
struct Session {
    camera: Box<dyn FrameDevice>,
    last_driver_sequence: Option<u32>,
    last_frame: Instant,
    /// The pool last offered to the camera (by identity), if any.
    offered: Option<Arc<dyn FramePool>>,
}

impl Session {
    fn new(camera: Box<dyn FrameDevice>) -> Session {
        Session {
            camera,
            last_driver_sequence: None,
            last_frame: Instant::now(),
            offered: None,
        }
    }

    /// Offers the camera the lent pool when it changed: a raw stream is
    /// then written straight into its buffers where the driver allows.
    fn offer(&mut self, shared: &Shared, device: &str) {
        let pool = shared.pool();
        let same = match (&pool, &self.offered) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        self.offered = pool.clone();
        if matches!(self.camera.mode().format, CaptureFormat::Mjpeg) {
            return;
        }
        let refused = match self.camera.write_into(pool) {
            Ok(()) => None,
            Err(reason) => {
                tracing::warn!(device, reason, "frames are copied into the lent buffers");
                Some(reason)
            }
        };
        let memory = self.camera.memory();
        tracing::info!(device, memory, "camera frames");
        let mut slot = shared.slot();
        slot.memory = memory;
        slot.lending_refused = refused;
        drop(slot);
        bump(&shared.counters.path_changes, 1);
    }
}

/// How long one wait for a frame lasts, so that a stop request is noticed.
const POLL_SLICE: Duration = Duration::from_millis(50);

fn capture_loop(
    shared: &Shared,
    first: Box<dyn FrameDevice>,
    mut opener: Opener,
    options: LiveOptions,
) {
    let device = shared.device.display().to_string();
    let mut session = Some(Session::new(first));
    let mut next_sequence: u64 = 0;
    let mut outage_since: Option<Instant> = None;
    let mut backoff = Duration::ZERO;
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(current) = session.as_mut() else {
            std::thread::sleep(backoff);
            match opener() {
                Ok((camera, report)) => {
                    tracing::info!(device, mode = ?report.mode, "camera reopened");
                    bump(&shared.counters.reconnects, 1);
                    {
                        let mut slot = shared.slot();
                        slot.mode = camera.mode();
                        slot.memory = camera.memory();
                        slot.lending_refused = None;
                    }
                    session = Some(Session::new(camera));
                    backoff = Duration::ZERO;
                }
                Err(error) => {
                    tracing::debug!(device, %error, "camera not back yet");
                    backoff = (backoff * 2)
                        .max(Duration::from_millis(10))
                        .min(options.max_backoff);
                }
            }
            continue;
        };
        current.offer(shared, &device);
        let mode = current.camera.mode();
        let failure = match current.camera.next(POLL_SLICE) {
            Ok(raw) => {
                current.last_frame = Instant::now();
                let driver_sequence = raw.sequence;
                let gap = count_gap(&mut current.last_driver_sequence, driver_sequence);
                bump(&shared.counters.driver_drops, gap);
                next_sequence += gap;
                let sequence = next_sequence;
                next_sequence += 1;
                match publish(shared, raw, mode, sequence) {
                    Ok(()) => {
                        if let Some(since) = outage_since.take() {
                            let outage = since.elapsed();
                            shared
                                .counters
                                .last_outage_us
                                .store(outage.as_micros() as u64, Ordering::Relaxed);
                            tracing::info!(device, ?outage, "camera streaming again");
                            shared.slot().health = CameraHealth::Streaming;
                        }
                    }
                    Err(reason) => {
                        bump(&shared.counters.corrupt, 1);
                        tracing::warn!(device, sequence = driver_sequence, reason, "frame skipped");
                    }
                }
                None
            }
            Err(CameraError::Timeout { .. })
                if current.last_frame.elapsed() < options.stall_after =>
            {
                None
            }
            Err(CameraError::Timeout { .. }) => {
                bump(&shared.counters.stalls, 1);
                Some(format!(
                    "no frame for {} ms",
                    current.last_frame.elapsed().as_millis()
                ))
            }
            Err(error) => Some(error.to_string()),
        };
        if let Some(reason) = failure {
            tracing::warn!(device, reason, "camera lost; reopening");
            close(session.take());
            outage_since.get_or_insert_with(Instant::now);
            shared.slot().health = CameraHealth::Reconnecting(reason);
        }
    }
    close(session);
}

/// Drops a stream. The `v4l` crate panics when tearing down a stream fails
/// with anything but ENODEV; that must not take the capture thread with it.
fn close(session: Option<Session>) {
    if std::panic::catch_unwind(AssertUnwindSafe(|| drop(session))).is_err() {
        tracing::warn!("closing the camera failed; its buffers are left to the kernel");
    }
}

/// Frames the driver skipped between the previous sequence number and this
/// one (wrapping at 2^32); a sequence that goes backwards restarts the count.
fn count_gap(last: &mut Option<u32>, sequence: u32) -> u64 {
    let gap = match *last {
        Some(previous) => {
            let step = sequence.wrapping_sub(previous);
            if step == 0 || step > u32::MAX / 2 {
                0
            } else {
                u64::from(step - 1)
            }
        }
        None => 0,
    };
    *last = Some(sequence);
    gap
}

/// Converts the frame into a spare buffer and hands it over, replacing (and
/// counting) a frame the pipeline has not taken.
fn publish(
    shared: &Shared,
    raw: RawFrame<'_>,
    mode: StreamMode,
    sequence: u64,
) -> Result<(), String> {
    if raw.damaged {
        return Err("the driver flagged the buffer as damaged".into());
    }
    let captured_at = raw.driver_time.unwrap_or_else(|| {
        bump(&shared.counters.untimed, 1);
        MonotonicClock.now()
    });
    let layout = mode.raw_layout();
    let in_buffer = |layout: FrameLayout, buffer| Frame {
        sequence,
        captured_at,
        width: mode.width,
        height: mode.height,
        pixels: Pixels::Camera { layout, buffer },
    };
    let bytes = match (raw.data, layout) {
        (RawBytes::Lent { buffer, used }, Some(layout)) => {
            // The driver wrote it where the detector reads it: no copy.
            if used < layout.byte_len() {
                return Err(format!(
                    "{:?} {}x{} with stride {} needs {} bytes, the driver wrote {used}",
                    layout.format,
                    layout.width,
                    layout.height,
                    layout.stride,
                    layout.byte_len()
                ));
            }
            hand_over(shared, in_buffer(layout, buffer), Duration::ZERO);
            return Ok(());
        }
        (RawBytes::Lent { .. }, None) => {
            return Err("a compressed frame in a lent buffer".into());
        }
        (RawBytes::Driver(bytes), _) => bytes,
    };
    if let Some(layout) = layout
        && let Some(mut buffer) = shared.pool().and_then(|pool| pool.take(layout))
    {
        let started = Instant::now();
        let needed = layout.byte_len();
        if bytes.len() < needed || buffer.bytes().len() < needed {
            return Err(format!(
                "{:?} {}x{} with stride {} needs {needed} bytes, the driver's buffer holds {} \
                 and the lent one {}",
                layout.format,
                layout.width,
                layout.height,
                layout.stride,
                bytes.len(),
                buffer.bytes().len()
            ));
        }
        buffer.bytes_mut()[..needed].copy_from_slice(&bytes[..needed]);
        hand_over(shared, in_buffer(layout, buffer), started.elapsed());
        return Ok(());
    }
    let mut rgb = shared.slot().spare.pop().unwrap_or_default();
    let started = Instant::now();
    let converted = match layout {
        Some(layout) => raw_to_rgb(&layout, bytes, &mut rgb),
        None => decode_jpeg_rgb_into(bytes, &mut rgb).and_then(|size| {
            if size == (mode.width, mode.height) {
                Ok(())
            } else {
                Err(format!(
                    "JPEG is {}x{}, the stream is {}x{}",
                    size.0, size.1, mode.width, mode.height
                ))
            }
        }),
    };
    if let Err(reason) = converted {
        let mut slot = shared.slot();
        if slot.spare.len() < MAX_SPARE_BUFFERS {
            slot.spare.push(rgb);
        }
        return Err(reason);
    }
    let frame = Frame::from_rgb(sequence, captured_at, mode.width, mode.height, rgb);
    hand_over(shared, frame, started.elapsed());
    Ok(())
}

/// Puts `frame` in the slot, replacing (and counting) one the pipeline has
/// not taken.
fn hand_over(shared: &Shared, frame: Frame, convert: Duration) {
    let mut slot = shared.slot();
    slot.convert = convert;
    if let Some(unread) = slot.frame.replace(frame) {
        bump(&shared.counters.pipeline_drops, 1);
        if let Some(rgb) = unread.into_rgb()
            && slot.spare.len() < MAX_SPARE_BUFFERS
        {
            slot.spare.push(rgb);
        }
    }
    drop(slot);
    bump(&shared.counters.frames, 1);
    shared.arrived.notify_one();
}

#[cfg(test)]
mod tests;
