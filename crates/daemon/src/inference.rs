use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use edgesort_infer::DetectorTimes;
use edgesort_pipeline::handoff::{CapturedFrame, FrameReceiver};
use edgesort_types::{Detection, Frame};

use crate::stage::{Shared, StageBody, StageName, lock};

/// A frame with what the detector found in it.
pub(crate) struct DetectedFrame {
    pub frame: Arc<Frame>,
    pub detections: Vec<Detection>,
    pub times: DetectorTimes,
    pub decode: Duration,
}

/// What flows from inference to sorting.
pub(crate) enum Detected {
    Frame(Box<DetectedFrame>),
    /// The replay clip has ended: decide what is still in view.
    End,
}

/// Builds a detector (a restart builds a fresh one), then runs it on the
/// newest frame until the camera stops. Between two frames it takes a
/// detector swapped in ([`crate::Daemon::swap_detector`]): the frames and
/// the sorting stage's tracks go on as they were.
pub(crate) fn inference_stage(
    shared: Arc<Shared>,
    frames: Arc<FrameReceiver>,
    detected: Sender<Detected>,
) -> StageBody {
    Box::new(move || {
        let config = shared.config();
        let factory = lock(&shared.engine).1.clone();
        let mut detector = factory(&config)?;
        *lock(&shared.frame_pool) = detector.frame_pool();
        while let Some(CapturedFrame { frame, decode }) = frames.recv() {
            shared.check_fault(StageName::Inference);
            if let Some(swap) = lock(&shared.swap).take() {
                detector = swap.detector;
                *lock(&shared.frame_pool) = detector.frame_pool();
                tracing::info!(backend = %swap.engine.backend, "detector swapped in between two frames");
                *lock(&shared.engine) = (swap.engine, swap.factory);
            }
            let (detections, times) = detector
                .detect(&frame)
                .map_err(|error| format!("detector failed: {error}"))?;
            let message = Detected::Frame(Box::new(DetectedFrame {
                frame: Arc::new(frame),
                detections,
                times,
                decode,
            }));
            if detected.send(message).is_err() {
                return Ok(());
            }
        }
        if !shared.stopping() {
            let _ = detected.send(Detected::End);
        }
        Ok(())
    })
}
