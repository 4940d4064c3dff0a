use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgesort_capture::{CameraHealth, LiveCamera, ReplaySource, live_settings};
use edgesort_pipeline::handoff::CapturedFrame;
use edgesort_types::config::CameraConfig;
use edgesort_types::{FramePool, Timestamp};

use crate::stage::{Shared, StageBody, StageName, lock};

/// The first replayed frame is stamped this far ahead, so the first sleep is
/// never negative.
const REPLAY_LEAD: Duration = Duration::from_millis(50);

/// How long the camera stage waits for a frame before looking at its
/// camera's health and the stop flag again.
const POLL: Duration = Duration::from_millis(100);

/// The capture stage for the configured source.
pub(crate) fn capture_stage(shared: Arc<Shared>, camera: &CameraConfig) -> StageBody {
    match (&camera.device, &camera.replay) {
        (Some(device), _) => live_stage(shared, device.clone(), camera.clone()),
        (None, Some(clip)) => replay_stage(shared, clip.clone(), camera.clone()),
        (None, None) => unreachable!("validated: the config names a source"),
    }
}

/// Plays the clip at its frame rate on the monotonic clock, once or looped.
/// A restart starts the clip over.
fn replay_stage(shared: Arc<Shared>, clip: PathBuf, camera: CameraConfig) -> StageBody {
    Box::new(move || {
        let mut start = shared.clock.now().saturating_add(REPLAY_LEAD);
        let mut sequence = 0;
        set_camera_state(&shared, "streaming", None);
        loop {
            let frames = play_once(&shared, &clip, &camera, start, &mut sequence)?;
            if shared.stopping() {
                return Ok(());
            }
            if !camera.replay_loop {
                set_camera_state(&shared, "ended", None);
                shared.frames.close();
                return Ok(());
            }
            start = start.saturating_add(Duration::from_secs_f64(frames as f64 / camera.fps));
        }
    })
}

/// Plays the clip once from `start`, numbering frames on from `sequence`
/// as a camera would; returns the clip's frame count.
fn play_once(
    shared: &Shared,
    clip: &Path,
    camera: &CameraConfig,
    start: Timestamp,
    sequence: &mut u64,
) -> Result<usize, String> {
    let mut source = ReplaySource::open(clip, camera.fps, camera.width, camera.height, start)
        .map_err(|error| error.to_string())?;
    let frames = source.len();
    loop {
        shared.check_fault(StageName::Capture);
        let skipped = source.skip_to(shared.clock.now());
        if skipped > 0 {
            *sequence += skipped as u64;
            shared.board().driver_drops += skipped as u64;
        }
        let decode_started = Instant::now();
        let Some(next) = source.next_frame() else {
            return Ok(frames);
        };
        let decode = decode_started.elapsed();
        match next {
            Ok(mut frame) => {
                frame.sequence = *sequence;
                *sequence += 1;
                std::thread::sleep(frame.captured_at.saturating_since(shared.clock.now()));
                if shared.stopping() {
                    return Ok(frames);
                }
                hand_over(shared, CapturedFrame { frame, decode });
            }
            Err(error) => {
                *sequence += 1;
                tracing::warn!(%error, "skipping frame");
                shared.board().corrupt += 1;
            }
        }
    }
}

fn hand_over(shared: &Shared, frame: CapturedFrame) {
    {
        let mut board = shared.board();
        board.frames_captured += 1;
        board.capture_rate.tick(Instant::now());
    }
    shared.frames.send(frame);
}

/// Streams from the V4L2 camera. The camera thread reconnects by itself; a
/// restart of this stage reopens the device from scratch.
fn live_stage(shared: Arc<Shared>, device: PathBuf, camera: CameraConfig) -> StageBody {
    Box::new(move || {
        set_camera_state(&shared, "opening", None);
        let (settings, options) = live_settings(&camera, device.clone());
        let (live, report) = LiveCamera::start(settings, options).map_err(|error| {
            let message = error.to_string();
            set_camera_state(&shared, "lost", Some(message.clone()));
            message
        })?;
        for deviation in &report.deviations {
            tracing::warn!(camera = %device.display(), "{deviation}");
        }
        let mut seen = live.counters();
        let mut lent: Option<Arc<dyn FramePool>> = None;
        let mut reported: Option<String> = None;
        while !shared.stopping() {
            shared.check_fault(StageName::Capture);
            // The detector in service lends buffers (the GPU line) or not;
            // a swap or a restart of the inference stage changes that, the
            // camera thread moves the driver onto the lent buffers where it
            // takes user pointers, and a reopened camera may stream another
            // mode: then the path is described again.
            let pool = lock(&shared.frame_pool).clone();
            let pool_changed = !same_pool(&pool, &lent);
            if pool_changed {
                live.lend_buffers(pool.clone());
                lent = pool;
            }
            let frame = live.next_frame_timed(POLL);
            match live.health() {
                CameraHealth::Streaming => set_camera_state(&shared, "streaming", None),
                CameraHealth::Reconnecting(why) => set_camera_state(&shared, "lost", Some(why)),
            }
            let counters = live.counters();
            if pool_changed
                || reported.is_none()
                || counters.reconnects != seen.reconnects
                || counters.path_changes != seen.path_changes
            {
                let path = live.frame_path();
                if reported.as_ref() != Some(&path) {
                    tracing::info!(camera = %device.display(), path, "frame path");
                    shared.board().camera.path = Some(path.clone());
                    reported = Some(path);
                }
            }
            {
                let mut board = shared.board();
                board.corrupt += counters.corrupt - seen.corrupt;
                board.driver_drops += counters.driver_drops - seen.driver_drops;
            }
            seen = counters;
            if let Some((frame, decode)) = frame {
                hand_over(&shared, CapturedFrame { frame, decode });
            }
        }
        Ok(())
    })
}

fn same_pool(a: &Option<Arc<dyn FramePool>>, b: &Option<Arc<dyn FramePool>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn set_camera_state(shared: &Shared, state: &str, detail: Option<String>) {
    let mut board = shared.board();
    if board.camera.state != state {
        match &detail {
            Some(detail) => tracing::warn!(state, detail, "camera"),
            None => tracing::info!(state, "camera"),
        }
    }
    board.camera.state = state.to_string();
    board.camera.detail = detail;
}
