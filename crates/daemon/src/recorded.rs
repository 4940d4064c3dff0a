//! A test double for the detector: detections recorded from the real CPU
//! detector on a clip, replayed frame by frame, with no model run.
//!
//! A VM test under qemu's TCG runs the real daemon on a real GPIO chip, and
//! the CPU detector takes seconds per frame there: the line could never
//! track a part. The detector is not what that test examines, so it runs
//! this double instead. `edgesort replay --fast --record-detections` writes
//! the recording (one [`FrameDetections`] JSON line per frame of the clip,
//! in order); frame `n` of a looped clip gets line `n % lines`. The status
//! names the double and raises an `engine_fallback` alarm about it.

use std::path::Path;
use std::sync::Arc;

use edgesort_infer::{DetectorTimes, InferError};
use edgesort_types::config::Config;
use edgesort_types::{Detection, Frame, FrameDetections};

use crate::{DaemonError, Detect, DetectorFactory, EngineInfo};

/// A detector that returns, for each frame, the detections recorded in
/// `path` for its frame of the clip (`sequence % frames recorded`), and
/// its description for the status.
pub fn recorded_detector(path: &Path) -> Result<(DetectorFactory, EngineInfo), DaemonError> {
    let bytes = std::fs::read(path).map_err(|source| DaemonError::ReadRecording {
        path: path.to_owned(),
        source,
    })?;
    let frames: Arc<[Vec<Detection>]> = parse_recording(path, &bytes)?.into();
    let factory: DetectorFactory = Arc::new(move |_: &Config| {
        Ok(Box::new(RecordedDetector {
            frames: frames.clone(),
        }) as Box<dyn Detect>)
    });
    let engine = EngineInfo {
        backend: "recorded detections (test double)".into(),
        model: path.display().to_string(),
        model_sha256: Some(edgesort_types::sha256_hex(&bytes)),
        precision: "recorded".into(),
        engine_key: None,
        engine: None,
        gpu: None,
        fallback: Some(format!(
            "test double: detections replayed from {}, no model runs",
            path.display()
        )),
        fallback_check: Some("test_double".into()),
    };
    Ok((factory, engine))
}

/// The detections of each frame, by frame index: line `n` (from 0) must
/// hold frame `n`.
fn parse_recording(path: &Path, bytes: &[u8]) -> Result<Vec<Vec<Detection>>, DaemonError> {
    let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if text.is_empty() {
        return Err(DaemonError::EmptyRecording {
            path: path.to_owned(),
        });
    }
    let mut frames = Vec::new();
    for (index, line) in text.split(|&byte| byte == b'\n').enumerate() {
        let recorded: FrameDetections =
            serde_json::from_slice(line).map_err(|source| DaemonError::ParseRecording {
                path: path.to_owned(),
                line: index + 1,
                source,
            })?;
        if recorded.sequence != index as u64 {
            return Err(DaemonError::RecordingOrder {
                path: path.to_owned(),
                line: index + 1,
                expected: index as u64,
                found: recorded.sequence,
            });
        }
        frames.push(recorded.detections);
    }
    Ok(frames)
}

/// Replays the recording; never fails.
struct RecordedDetector {
    frames: Arc<[Vec<Detection>]>,
}

impl Detect for RecordedDetector {
    fn detect(&mut self, frame: &Frame) -> Result<(Vec<Detection>, DetectorTimes), InferError> {
        let index = frame.sequence % self.frames.len() as u64;
        Ok((
            self.frames[index as usize].clone(),
            DetectorTimes::default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::PathBuf;

    use edgesort_capture::ReplaySource;
    use edgesort_types::{BoundingBox, ClassId, Timestamp};

    use super::*;

    /// Detections may differ from the recording by this much (score, px).
    /// On the machine that recorded it (AVX-512), one thread or two gives
    /// every frame bit for bit; the margin is for CPUs whose tract kernels
    /// round differently.
    const TOLERANCE: f32 = 1e-4;

    /// Every this many frames of the demo clip are run through the CPU
    /// detector and checked against the recording.
    const SAMPLE_EVERY: usize = 30;

    const REGENERATE: &str = "cargo run --release -p edgesort -- replay --clip tests/data/demo_clip \
         --fast --db /tmp/edgesort-record.sqlite \
         --record-detections tests/data/demo_clip/detections.jsonl";

    fn repository() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn demo_config() -> Config {
        Config::load(&repository().join("board/edgesort.toml")).unwrap()
    }

    fn detection(class: u16, x1: f32) -> Detection {
        Detection {
            bbox: BoundingBox {
                x1,
                y1: 10.0,
                x2: x1 + 20.0,
                y2: 30.0,
            },
            class: ClassId(class),
            confidence: 0.5,
        }
    }

    fn frame(sequence: u64) -> Frame {
        Frame::from_rgb(sequence, Timestamp::ZERO, 4, 2, vec![0; 4 * 2 * 3])
    }

    fn recording(lines: &[FrameDetections]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        for line in lines {
            serde_json::to_writer(&mut file, line).unwrap();
            file.write_all(b"\n").unwrap();
        }
        file
    }

    fn file_with(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn three_frames() -> Vec<FrameDetections> {
        vec![
            FrameDetections {
                sequence: 0,
                detections: vec![detection(1, 5.0)],
            },
            FrameDetections {
                sequence: 1,
                detections: vec![],
            },
            FrameDetections {
                sequence: 2,
                detections: vec![detection(0, 1.25), detection(4, 600.1)],
            },
        ]
    }

    fn load_error(text: &str) -> (String, PathBuf) {
        let file = file_with(text);
        let Err(error) = recorded_detector(file.path()) else {
            panic!("{text:?} was accepted");
        };
        (error.to_string(), file.path().to_owned())
    }

    /// The double over a recording of `lines`, which it reads at once.
    fn detector_over(lines: &[FrameDetections]) -> Box<dyn Detect> {
        let file = recording(lines);
        let (factory, _) = recorded_detector(file.path()).unwrap();
        factory(&demo_config()).unwrap()
    }

    #[test]
    fn each_frame_gets_the_detections_recorded_for_its_sequence() {
        let lines = three_frames();
        let mut detector = detector_over(&lines);
        for sequence in [2, 0, 1] {
            let (detections, times) = detector.detect(&frame(sequence)).unwrap();
            assert_eq!(detections, lines[sequence as usize].detections);
            assert_eq!(times, DetectorTimes::default());
        }
    }

    #[test]
    fn a_looped_clip_wraps_around_the_recording() {
        let lines = three_frames();
        let mut detector = detector_over(&lines);
        for (sequence, line) in [(3, 0), (5, 2), (3 * 1000 + 1, 1)] {
            let (detections, _) = detector.detect(&frame(sequence)).unwrap();
            assert_eq!(detections, lines[line].detections, "frame {sequence}");
        }
    }

    #[test]
    fn the_status_says_a_double_runs_and_alarms_about_it() {
        let file = recording(&three_frames());
        let (_, engine) = recorded_detector(file.path()).unwrap();
        let shown = file.path().display().to_string();
        assert_eq!(engine.backend, "recorded detections (test double)");
        assert_eq!(engine.model, shown);
        assert_eq!(engine.precision, "recorded");
        assert_eq!(
            engine.fallback,
            Some(format!(
                "test double: detections replayed from {shown}, no model runs"
            ))
        );
    }

    #[test]
    fn a_missing_recording_is_named() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("absent.jsonl");
        let Err(error) = recorded_detector(&path) else {
            panic!("a missing recording was accepted");
        };
        assert!(
            matches!(error, DaemonError::ReadRecording { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn a_corrupt_line_is_named_by_path_and_number() {
        let (message, path) =
            load_error("{\"sequence\":0,\"detections\":[]}\n{\"sequence\":1,\"detections\":[\n");
        assert_eq!(
            message,
            format!(
                "cannot parse detections recording {}, line 2",
                path.display()
            )
        );
        let (message, path) = load_error("{\"sequence\":0,\"detections\":[]}\n\n");
        assert!(
            message.ends_with(&format!("{}, line 2", path.display())),
            "{message}"
        );
    }

    #[test]
    fn a_skipped_frame_is_named_by_path_and_line() {
        let mut lines = three_frames();
        lines.remove(1);
        let file = recording(&lines);
        let Err(error) = recorded_detector(file.path()) else {
            panic!("a recording without frame 1 was accepted");
        };
        assert!(
            error.to_string().starts_with(&format!(
                "detections recording {}, line 2: frame 2 where frame 1 belongs",
                file.path().display()
            )),
            "{error}"
        );
    }

    #[test]
    fn an_empty_recording_is_refused() {
        let (message, path) = load_error("");
        assert_eq!(
            message,
            format!("detections recording {} holds no frame", path.display())
        );
    }

    /// The bundled recording must stay what the real CPU detector finds in
    /// the demo clip, frames decoded and letterboxed as a replay does, so a
    /// change to the model or to pre- or post-processing cannot leave the
    /// VM test running on stale detections.
    #[test]
    fn the_recording_is_what_the_cpu_detector_gives_now() {
        let repository = repository();
        let recording = repository.join("tests/data/demo_clip/detections.jsonl");
        let (recorded, _) = recorded_detector(&recording).unwrap_or_else(|error| {
            panic!("{error}; regenerate it from the repository root with\n  {REGENERATE}")
        });
        let config = demo_config();
        let mut recorded = recorded(&config).unwrap();
        let (cpu, _) =
            crate::served_detector(edgesort_serve::Served::cpu(&config.model.path, 1, None));
        let mut cpu = cpu(&config).unwrap();

        let camera = &config.camera;
        let clip = camera.replay.as_ref().unwrap();
        let mut source = ReplaySource::open(
            clip,
            camera.fps,
            camera.width,
            camera.height,
            Timestamp::ZERO,
        )
        .unwrap();
        let frames = source.len();
        let recorded_frames = parse_recording(&recording, &std::fs::read(&recording).unwrap())
            .unwrap()
            .len();
        assert_eq!(
            recorded_frames,
            frames,
            "{} records {recorded_frames} frames of the clip's {frames}; regenerate it from \
             the repository root with\n  {REGENERATE}",
            recording.display()
        );
        let mut checked = 0;
        while let Some(frame) = source.next_frame() {
            let frame = frame.unwrap();
            if !frame.sequence.is_multiple_of(SAMPLE_EVERY as u64) {
                continue;
            }
            let (now, _) = cpu.detect(&frame).unwrap();
            let (then, _) = recorded.detect(&frame).unwrap();
            if let Some(difference) = difference(&now, &then) {
                panic!(
                    "frame {}: {difference}\n  the CPU detector now: {now:?}\n  recorded: {then:?}\n\
                     {} no longer holds what the CPU detector finds in the demo clip \
                     (model, letterbox or decoding changed?); regenerate it from the \
                     repository root with\n  {REGENERATE}",
                    frame.sequence,
                    recording.display()
                );
            }
            checked += 1;
        }
        assert_eq!(checked, frames.div_ceil(SAMPLE_EVERY));
    }

    /// How `now` differs from `then` beyond [`TOLERANCE`], if it does.
    fn difference(now: &[Detection], then: &[Detection]) -> Option<String> {
        if now.len() != then.len() {
            return Some(format!("{} detections, {} recorded", now.len(), then.len()));
        }
        for (index, (now, then)) in now.iter().zip(then).enumerate() {
            let close = |a: f32, b: f32| (a - b).abs() <= TOLERANCE;
            let same = now.class == then.class
                && close(now.confidence, then.confidence)
                && close(now.bbox.x1, then.bbox.x1)
                && close(now.bbox.y1, then.bbox.y1)
                && close(now.bbox.x2, then.bbox.x2)
                && close(now.bbox.y2, then.bbox.y2);
            if !same {
                return Some(format!(
                    "detection {index} differs by more than {TOLERANCE}"
                ));
            }
        }
        None
    }
}
