use std::time::{Duration, Instant};

use edgesort_capture::decode_jpeg_rgb;
use edgesort_decide::Decider;
use edgesort_infer::{
    Backend, Detector, InputShape, LabelsPerBox, Letterbox, decode_yolo, non_max_suppression,
};
use edgesort_track::{Tracker, TrackerParams};
use edgesort_types::config::Config;
use edgesort_types::{BoundingBox, ClassId, Detection, Frame, Timestamp};
use serde::Serialize;

use crate::{BenchError, Clip, Samples, StageTiming};

/// Frames decoded up front for the letterbox target: enough for varied
/// content, few enough to keep memory modest (2.7 MB each at 1280x720).
const LETTERBOX_FRAMES: usize = 30;
/// Timed runs per pass over those frames, so that p99 is a percentile of
/// hundreds of samples rather than the slowest of a few dozen.
const LETTERBOX_REPEATS: usize = 10;
/// Model outputs recorded for the decode target.
const RECORDED_OUTPUTS: usize = 12;
/// Parts in view for the tracking target, and how many frames it runs.
const PARTS_IN_VIEW: usize = 20;
const TRACKING_FRAMES: usize = 1_200;
/// Untimed runs of each target before timing starts.
const WARM_UP: usize = 20;

/// A clip's per-stage times.
#[derive(Clone, Debug, Serialize)]
pub struct ClipReport {
    /// Clip name.
    pub clip: String,
    /// Frame size.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Model input the frames were letterboxed to, WIDTHxHEIGHT.
    pub input: String,
    /// Frames per pass.
    pub frames: usize,
    /// Timed passes (after one warm-up pass).
    pub passes: usize,
    /// One entry per stage, in pipeline order.
    pub stages: Vec<StageTiming>,
}

/// One speed target and what was measured for it.
#[derive(Clone, Debug, Serialize)]
pub struct TargetReport {
    /// The measured time.
    pub timing: StageTiming,
    /// The target for p99, ms.
    pub target_p99_ms: f64,
    /// Whether p99 is within the target.
    pub met: bool,
}

fn tracker_for(config: &Config, width: u32, height: u32) -> Tracker {
    // The configured belt speed is in the configured camera's pixels.
    let scale = f64::from(width) / f64::from(config.camera.width);
    Tracker::new(TrackerParams {
        velocity_px_s: config.belt_velocity_px_s() * scale,
        frame_width: width.into(),
        frame_height: height.into(),
        gate_px: config.tracking.gate_px * scale,
        max_unseen: Duration::from_secs_f64(config.tracking.max_unseen_ms / 1e3),
        min_hits: config.tracking.min_hits,
        classes: config.model.classes.len(),
    })
}

fn decode(clip: &Clip, index: usize) -> Result<(u32, u32, Vec<u8>), BenchError> {
    decode_jpeg_rgb(&clip.jpegs[index]).map_err(|reason| BenchError::DecodeFrame {
        clip: clip.name.clone(),
        index,
        reason,
    })
}

/// Runs `clip` through every stage once untimed, then `passes` times timed.
pub fn bench_clip<B: Backend>(
    clip: &Clip,
    detector: &mut Detector<B>,
    config: &Config,
    passes: usize,
) -> Result<ClipReport, BenchError> {
    let decider = Decider::new(config);
    let mut stages: [Samples; 5] = Default::default();
    for pass in 0..=passes {
        let timed = pass > 0;
        let mut tracker = tracker_for(config, clip.width, clip.height);
        for index in 0..clip.jpegs.len() {
            let started = Instant::now();
            let (width, height, rgb) = decode(clip, index)?;
            let decoded = started.elapsed();
            let captured_at = Timestamp::from_secs_f64(index as f64 / config.camera.fps);
            let frame = Frame::from_rgb(index as u64, captured_at, width, height, rgb);
            let (detections, times) = detector.detect(&frame)?;
            let started = Instant::now();
            for track in tracker.update(captured_at, &detections) {
                std::hint::black_box(decider.decide(&track));
            }
            let tracked = started.elapsed();
            if timed {
                for (samples, time) in stages.iter_mut().zip([
                    decoded,
                    times.preprocess,
                    times.inference,
                    times.postprocess,
                    tracked,
                ]) {
                    samples.record(time);
                }
            }
        }
    }
    let plan = detector.letterbox(clip.width, clip.height)?;
    let names = [
        "JPEG decode",
        "letterbox + normalise",
        "inference",
        "decode + NMS",
        "tracking + decision",
    ];
    Ok(ClipReport {
        clip: clip.name.clone(),
        width: clip.width,
        height: clip.height,
        input: format!("{}x{}", plan.input_width, plan.input_height),
        frames: clip.jpegs.len(),
        passes,
        stages: names
            .iter()
            .zip(&stages)
            .map(|(name, samples)| samples.timing(name))
            .collect(),
    })
}

/// Times the CPU stages under the conditions of the speed targets:
/// `wide_clip` must be 1280x720 and `square_detector` must take 640x640
/// (its outputs give the decode stage all 8400 anchors).
pub fn bench_targets<B: Backend>(
    wide_clip: &Clip,
    square_detector: &mut Detector<B>,
    config: &Config,
    passes: usize,
) -> Result<Vec<TargetReport>, BenchError> {
    let target = |timing: StageTiming, target_p99_ms: f64| TargetReport {
        met: timing.p99_ms <= target_p99_ms,
        timing,
        target_p99_ms,
    };
    let frames = (0..wide_clip.jpegs.len().min(LETTERBOX_FRAMES))
        .map(|index| decode(wide_clip, index))
        .collect::<Result<Vec<_>, _>>()?;

    let plan = Letterbox::plan(
        wide_clip.width,
        wide_clip.height,
        InputShape::Fixed {
            width: 640,
            height: 640,
        },
    )?;
    let mut resampler = plan.resampler();
    let mut tensor = vec![0.0f32; plan.tensor_len()];
    let mut letterbox = Samples::default();
    for run in 0..WARM_UP + passes * LETTERBOX_REPEATS * frames.len() {
        let (_, _, rgb) = &frames[run % frames.len()];
        let started = Instant::now();
        resampler.fill(rgb, &mut tensor);
        let elapsed = started.elapsed();
        std::hint::black_box(&tensor);
        if run >= WARM_UP {
            letterbox.record(elapsed);
        }
    }

    let mut outputs = Vec::new();
    for (index, (width, height, rgb)) in frames.iter().take(RECORDED_OUTPUTS).enumerate() {
        let frame = Frame::from_rgb(
            index as u64,
            Timestamp::default(),
            *width,
            *height,
            rgb.clone(),
        );
        square_detector.detect(&frame)?;
        let (output, shape) = square_detector.last_output()?;
        outputs.push((output.to_vec(), shape[1] - 4, shape[2]));
    }
    let params = square_detector.params();
    let mut candidates = Vec::new();
    let mut decoding = Samples::default();
    for run in 0..WARM_UP + passes * 100 {
        let (output, classes, anchors) = &outputs[run % outputs.len()];
        let started = Instant::now();
        candidates.clear();
        decode_yolo(
            output,
            *classes,
            *anchors,
            params.confidence,
            LabelsPerBox::Best,
            &mut candidates,
        );
        let kept = non_max_suppression(&mut candidates, params.iou, params.max_detections);
        let elapsed = started.elapsed();
        std::hint::black_box(kept);
        if run >= WARM_UP {
            decoding.record(elapsed);
        }
    }

    let (tracking, most_open) = bench_tracking_crowd(config, wide_clip.width, wide_clip.height);
    let anchors = outputs.first().map_or(0, |(_, _, anchors)| *anchors);
    Ok(vec![
        target(
            letterbox.timing(&format!(
                "letterbox + normalise {}x{} -> 640x640",
                wide_clip.width, wide_clip.height
            )),
            0.5,
        ),
        target(
            decoding.timing(&format!("decode + NMS, {anchors} anchors")),
            0.2,
        ),
        target(
            tracking.timing(&format!(
                "tracking + decision, {PARTS_IN_VIEW} parts in view ({most_open} tracks open at most)"
            )),
            0.05,
        ),
    ])
}

/// A crowded belt: `PARTS_IN_VIEW` parts spread across the view, moving at
/// belt speed, each re-entering upstream as a new part when it leaves.
/// Returns the times and the most tracks open at once, which shows whether
/// the crowd was tracked as one track per part.
fn bench_tracking_crowd(config: &Config, width: u32, height: u32) -> (Samples, usize) {
    let mut tracker = tracker_for(config, width, height);
    let decider = Decider::new(config);
    let scale = f64::from(width) / f64::from(config.camera.width);
    let velocity = config.belt_velocity_px_s() * scale;
    let spacing = f64::from(width) / PARTS_IN_VIEW as f64;
    let size = (spacing * 0.6) as f32;
    let mut samples = Samples::default();
    let mut most_open = 0;
    let mut detections = Vec::with_capacity(PARTS_IN_VIEW);
    for index in 0..TRACKING_FRAMES {
        let seconds = index as f64 / config.camera.fps;
        detections.clear();
        for part in 0..PARTS_IN_VIEW {
            let travelled = part as f64 * spacing + velocity * seconds;
            let center_x = travelled.rem_euclid(f64::from(width)) as f32;
            let center_y = (f64::from(height) * (0.2 + 0.15 * (part % 5) as f64)) as f32;
            detections.push(Detection {
                bbox: BoundingBox {
                    x1: center_x - size / 2.0,
                    y1: center_y - size / 2.0,
                    x2: center_x + size / 2.0,
                    y2: center_y + size / 2.0,
                },
                class: ClassId((part % config.model.classes.len()) as u16),
                confidence: 0.9,
            });
        }
        let captured_at = Timestamp::from_secs_f64(seconds);
        let started = Instant::now();
        for track in tracker.update(captured_at, &detections) {
            std::hint::black_box(decider.decide(&track));
        }
        let elapsed = started.elapsed();
        if index >= WARM_UP {
            samples.record(elapsed);
        }
        most_open = most_open.max(tracker.open_tracks());
    }
    (samples, most_open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crowd_is_tracked_as_one_track_per_part() {
        let config = Config::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../board/edgesort.toml"
        )))
        .unwrap();
        let (samples, most_open) = bench_tracking_crowd(&config, 1280, 720);
        assert_eq!(samples.timing("t").samples, TRACKING_FRAMES - WARM_UP);
        assert!(
            (PARTS_IN_VIEW..=PARTS_IN_VIEW + 1).contains(&most_open),
            "{most_open} tracks open for {PARTS_IN_VIEW} parts"
        );
    }
}
