//! Issue 24, acceptance 1: the GPU line (letterbox kernel into the engine's
//! input binding, the engine, decode and NMS kernels on its output binding,
//! all on one stream) decides exactly as the CPU line. The engine is a TEST
//! DOUBLE, `RecordedOutputEngine`, that writes the CPU backend's output
//! recorded for each run: what differs between the two lines is then the
//! GPU's own pre- and post-processing, and the decisions must agree part
//! for part, whether each frame's work runs as one CUDA graph (the line's
//! default) or as a launch per step. Needs an NVIDIA GPU.

use crate::common;

use edgesort_actuate::SimulatedPin;
use edgesort_infer::{Backend, Detect, Detector, DetectorTimes, InferError};
use edgesort_infer_cuda::{Gpu, GpuDetector, MemoryMode, OutputRecorder, RecordedOutputEngine};
use edgesort_infer_tract::TractBackend;
use edgesort_pipeline::{Pacing, run_replay_observed};
use edgesort_score::{GroundTruth, score};
use edgesort_types::{Detection, Frame, FrameLayout, PixelFormat, Pixels};

#[test]
#[ignore = "needs an NVIDIA GPU: run on one with --include-ignored"]
fn the_gpu_line_decides_as_the_cpu_line_part_for_part() {
    let scratch = tempfile::tempdir().unwrap();
    let config = common::demo_config(scratch.path());

    // The CPU line, recording its backend's output on every run.
    let threads = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let backend = OutputRecorder::new(
        TractBackend::load(&config.model.path)
            .unwrap()
            .with_threads(threads),
    );
    let mut cpu = Detector::for_model(backend, &config.model).unwrap();
    let mut cpu_frames: Vec<Vec<Detection>> = Vec::new();
    let cpu_report = run_replay_observed(
        &config,
        &mut cpu,
        |_, clock| SimulatedPin::new(clock),
        Pacing::AsFastAsPossible,
        |_, detections| cpu_frames.push(detections.to_vec()),
    )
    .unwrap();
    let runs = cpu.backend().runs().to_vec();
    let io = cpu.backend().io().clone();
    assert_eq!(
        runs.len(),
        cpu_frames.len() + 1,
        "every frame and the warm-up"
    );

    let truth = GroundTruth::load(&common::demo_clip().join("tracks.json")).unwrap();
    let cpu_score = score(&truth, &common::scored(&config, &cpu_report), 48.0);
    let gpu = Gpu::open(0).expect("a GPU");
    for (memory, lent, graphs) in [
        (MemoryMode::Device, false, false),
        (MemoryMode::Device, false, true),
        (MemoryMode::Mapped, false, true),
        (MemoryMode::Device, true, true),
        (MemoryMode::Mapped, true, true),
    ] {
        let engine =
            RecordedOutputEngine::new(&gpu, &io.inputs[0].name, &io.outputs[0].name, &runs)
                .unwrap();
        let detector = GpuDetector::new(&gpu, engine, &config.model, memory)
            .unwrap()
            .with_graphs(graphs);
        let mut detector = Lending {
            detector,
            lent,
            frames_lent: 0,
            frames_as_graphs: 0,
        };
        let mut gpu_frames: Vec<Vec<Detection>> = Vec::new();
        let gpu_report = run_replay_observed(
            &config,
            &mut detector,
            |_, clock| SimulatedPin::new(clock),
            Pacing::AsFastAsPossible,
            |_, detections| gpu_frames.push(detections.to_vec()),
        )
        .unwrap();

        let memory = format!(
            "{memory:?}{}, {}",
            if lent { " lent" } else { "" },
            if graphs {
                "one CUDA graph a frame"
            } else {
                "a launch per step"
            }
        );
        if lent {
            // The warm-up and every frame, each in a buffer the detector lent.
            assert_eq!(detector.frames_lent, cpu_frames.len() + 1, "{memory}");
        }
        // The warm-up runs as plain launches (TensorRT settles a shape on
        // its first enqueue); every frame after it as a graph.
        let expected_graphs = if graphs { cpu_frames.len() } else { 0 };
        assert_eq!(detector.frames_as_graphs, expected_graphs, "{memory}");
        if graphs {
            assert_eq!(detector.detector.graph_fallback(), None, "{memory}");
        }
        // Every frame's detections, bit for bit.
        assert_eq!(gpu_frames.len(), cpu_frames.len(), "{memory:?}");
        for (frame, (gpu, cpu)) in gpu_frames.iter().zip(&cpu_frames).enumerate() {
            assert_eq!(gpu, cpu, "{memory:?}: frame {frame}");
        }
        // Every decision: part, class, lane, and the planned fire time
        // within 1 µs.
        assert_eq!(gpu_report.decisions.len(), cpu_report.decisions.len());
        for (gpu, cpu) in gpu_report.decisions.iter().zip(&cpu_report.decisions) {
            assert_eq!(
                (gpu.part_id, &gpu.class, &gpu.lane, &gpu.reason),
                (cpu.part_id, &cpu.class, &cpu.lane, &cpu.reason),
                "{memory:?}"
            );
            match (gpu.planned_fire_s, cpu.planned_fire_s) {
                (Some(gpu), Some(cpu)) => assert!((gpu - cpu).abs() < 1e-6, "{gpu} vs {cpu}"),
                (gpu, cpu) => assert_eq!(gpu, cpu),
            }
        }
        assert_eq!(gpu_report.ejections_per_lane, cpu_report.ejections_per_lane);
        let gpu_score = score(&truth, &common::scored(&config, &gpu_report), 48.0);
        assert_eq!(
            serde_json::to_value(&gpu_score).unwrap(),
            serde_json::to_value(&cpu_score).unwrap()
        );
        println!(
            "FIGURE {memory}: {} frames, {} decisions identical to the CPU line; score {}",
            gpu_frames.len(),
            gpu_report.decisions.len(),
            serde_json::to_string(&gpu_score).unwrap()
        );
    }
}

/// The GPU detector as the daemon's camera feeds it when `lent`: each frame
/// written into a buffer the detector lent (the capture thread's one copy),
/// which the letterbox kernel then reads in place.
struct Lending {
    detector: GpuDetector<RecordedOutputEngine>,
    lent: bool,
    frames_lent: usize,
    /// Frames whose work ran as one CUDA graph launch.
    frames_as_graphs: usize,
}

impl Detect for Lending {
    fn detect(&mut self, frame: &Frame) -> Result<(Vec<Detection>, DetectorTimes), InferError> {
        let found = self.feed(frame)?;
        self.frames_as_graphs += usize::from(self.detector.last_times().graph);
        Ok(found)
    }
}

impl Lending {
    fn feed(&mut self, frame: &Frame) -> Result<(Vec<Detection>, DetectorTimes), InferError> {
        if !self.lent {
            return self.detector.detect(frame);
        }
        let pool = self
            .detector
            .frame_pool()
            .expect("the GPU detector lends buffers");
        let layout = FrameLayout::packed(PixelFormat::Rgb24, frame.width, frame.height);
        let mut buffer = pool.take(layout).expect("a free buffer");
        buffer.bytes_mut().copy_from_slice(&frame.rgb());
        self.frames_lent += 1;
        let found = self.detector.detect(&Frame {
            sequence: frame.sequence,
            captured_at: frame.captured_at,
            width: frame.width,
            height: frame.height,
            pixels: Pixels::Camera { layout, buffer },
        })?;
        assert!(
            self.detector.last_times().in_place,
            "the kernel read the lent buffer in place"
        );
        Ok(found)
    }
}
