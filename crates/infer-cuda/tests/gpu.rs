//! The GPU kernels against the CPU reference, on the lent GPU machine.
//!
//! Every test here needs an NVIDIA GPU, so each is `#[ignore]`d with that
//! reason: `cargo test` on a machine without one lists them as ignored
//! (never as passed), and `.ci/run` counts them. On the GPU machine run the
//! test binary with `--include-ignored`; there a missing GPU fails them.
//! `EDGESORT_REPO` points at the repository when the binary runs elsewhere.

use std::path::PathBuf;
use std::sync::Arc;

use edgesort_infer::{
    Candidate, DecodeParams, InputShape, LabelsPerBox, Letterbox, decode_yolo, non_max_suppression,
};
use edgesort_infer_cuda::{Gpu, GpuDecoder, GpuLetterbox, MemoryMode, TensorType};
use edgesort_types::{FrameLayout, PixelFormat};
use half::f16;

const NEEDS_GPU: &str = "needs an NVIDIA GPU";

fn gpu() -> Arc<Gpu> {
    Gpu::open(0).unwrap_or_else(|error| panic!("{NEEDS_GPU}: {error}"))
}

fn repo() -> PathBuf {
    std::env::var_os("EDGESORT_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

/// xorshift64*: reproducible noise without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() >> 56) as u8).collect()
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

const MODES: [MemoryMode; 2] = [MemoryMode::Device, MemoryMode::Mapped];

/// Runs the GPU letterbox on `frame` and compares every element with the
/// CPU reference (the frame converted to RGB, then `Resampler::fill`),
/// after poisoning the tensor so that an unwritten element cannot pass.
fn check_letterbox(gpu: &Arc<Gpu>, layout: FrameLayout, frame: &[u8], shape: InputShape) {
    let plan = Letterbox::plan(layout.width, layout.height, shape).unwrap();
    let mut expected = vec![0f32; plan.tensor_len()];
    plan.resampler().fill(&layout.to_rgb(frame), &mut expected);
    for mode in MODES {
        for tensor_type in [TensorType::F32, TensorType::F16] {
            let mut letterbox = GpuLetterbox::new(gpu, layout, plan, tensor_type, mode).unwrap();
            assert_eq!(letterbox.is_zero_copy(), mode == MemoryMode::Mapped);
            letterbox.frame_mut().copy_from_slice(frame);
            letterbox.poison_tensor(0xff).unwrap();
            letterbox.enqueue().unwrap();
            let bytes = letterbox.read_tensor().unwrap();
            let what = format!(
                "{:?} {}x{} stride {} -> {}x{} {tensor_type:?} {mode:?}",
                layout.format,
                layout.width,
                layout.height,
                layout.stride,
                plan.input_width,
                plan.input_height
            );
            match tensor_type {
                TensorType::F32 => {
                    for (index, (chunk, want)) in bytes.chunks_exact(4).zip(&expected).enumerate() {
                        let got = f32::from_ne_bytes(chunk.try_into().unwrap());
                        assert!(
                            got.to_bits() == want.to_bits(),
                            "{what}: element {index} is {got}, the CPU gives {want}"
                        );
                    }
                }
                TensorType::F16 => {
                    for (index, (chunk, want)) in bytes.chunks_exact(2).zip(&expected).enumerate() {
                        let got = f16::from_ne_bytes(chunk.try_into().unwrap());
                        assert!(
                            got.to_bits() == f16::from_f32(*want).to_bits(),
                            "{what}: element {index} is {got}, the CPU gives {want}"
                        );
                    }
                }
            }
        }
    }
}

const SQUARE: InputShape = InputShape::Fixed {
    width: 640,
    height: 640,
};
const RECTANGLE: InputShape = InputShape::Dynamic {
    stride: 32,
    max_side: 640,
};

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn letterbox_matches_the_cpu_on_random_frames_of_every_format_and_size() {
    let gpu = gpu();
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let formats = [
        PixelFormat::Rgb24,
        PixelFormat::Bgr24,
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
    ];
    let sizes = [
        (1, 1),
        (2, 1),
        (3, 5),
        (641, 359),
        (640, 360),
        (1280, 720),
        (1920, 1080),
        (3840, 2160),
    ];
    for format in formats {
        for (width, height) in sizes {
            for shape in [SQUARE, RECTANGLE] {
                let layout = FrameLayout::packed(format, width, height);
                let frame = noise.bytes(layout.byte_len());
                check_letterbox(&gpu, layout, &frame, shape);
            }
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn letterbox_honours_a_padded_row_stride() {
    let gpu = gpu();
    let mut noise = Noise(7);
    for format in [PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::Rgb24] {
        let packed = FrameLayout::packed(format, 1280, 720);
        // V4L2 drivers pad rows to 64 or more bytes.
        let layout = FrameLayout {
            stride: packed.stride + 192,
            ..packed
        };
        let frame = noise.bytes(layout.byte_len());
        check_letterbox(&gpu, layout, &frame, SQUARE);
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn letterbox_matches_the_cpu_on_real_frames() {
    let gpu = gpu();
    let frames = edgesort_capture::clip_frames(&repo().join("tests/data/demo_clip")).unwrap();
    for path in frames.iter().step_by(60) {
        let (width, height, rgb) =
            edgesort_capture::decode_jpeg_rgb(&std::fs::read(path).unwrap()).unwrap();
        let layout = FrameLayout::packed(PixelFormat::Rgb24, width, height);
        check_letterbox(&gpu, layout, &rgb, RECTANGLE);
        check_letterbox(&gpu, layout, &rgb, SQUARE);
        let bgr: Vec<u8> = rgb
            .chunks_exact(3)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
        check_letterbox(
            &gpu,
            FrameLayout {
                format: PixelFormat::Bgr24,
                ..layout
            },
            &bgr,
            SQUARE,
        );
    }
}

fn params(max_detections: usize) -> DecodeParams {
    DecodeParams {
        confidence: 0.25,
        iou: 0.45,
        max_detections,
        labels: LabelsPerBox::Best,
    }
}

/// Runs the GPU decoder and the CPU reference on `output` and requires the
/// same detections: boxes to the bit, classes, anchors, scores within 1e-5.
fn check_decode(gpu: &Arc<Gpu>, output: &[f32], classes: usize, params: DecodeParams) -> usize {
    let anchors = output.len() / (4 + classes);
    let mut candidates: Vec<Candidate> = Vec::new();
    decode_yolo(
        output,
        classes,
        anchors,
        params.confidence,
        params.labels,
        &mut candidates,
    );
    let expected = non_max_suppression(&mut candidates, params.iou, params.max_detections);
    for mode in MODES {
        let mut decoder = GpuDecoder::new(gpu, classes, anchors, params, mode).unwrap();
        decoder.upload_output(output).unwrap();
        decoder.poison_results(0xa5);
        decoder.enqueue().unwrap();
        let found = decoder.results().unwrap();
        assert_eq!(
            found.len(),
            expected.len(),
            "{mode:?}, {classes} classes, {anchors} anchors: {} detections, the CPU keeps {}",
            found.len(),
            expected.len()
        );
        for (rank, (got, want)) in found.iter().zip(&expected).enumerate() {
            assert_eq!(
                (got.anchor, got.class),
                (want.anchor, want.class),
                "{mode:?} #{rank}"
            );
            assert_eq!(got.bbox, want.bbox, "{mode:?} #{rank}");
            assert!((got.score - want.score).abs() <= 1e-5, "{mode:?} #{rank}");
        }
    }
    expected.len()
}

/// A YOLO-shaped output with `parts` parts, each seen by `per_part`
/// neighbouring anchors with jittered boxes and scores, over background
/// noise below the threshold.
fn synthetic_output(
    noise: &mut Noise,
    classes: usize,
    anchors: usize,
    parts: usize,
    per_part: usize,
) -> Vec<f32> {
    let mut output = vec![0f32; (4 + classes) * anchors];
    for anchor in 0..anchors {
        for class in 0..classes {
            output[(4 + class) * anchors + anchor] = noise.unit() * 0.2;
        }
        output[anchor] = noise.unit() * 640.0;
        output[anchors + anchor] = noise.unit() * 640.0;
        output[2 * anchors + anchor] = 8.0 + noise.unit() * 40.0;
        output[3 * anchors + anchor] = 8.0 + noise.unit() * 40.0;
    }
    for part in 0..parts {
        let (cx, cy) = (noise.unit() * 600.0 + 20.0, noise.unit() * 600.0 + 20.0);
        let class = part % classes;
        let first = (part * anchors / parts.max(1)).min(anchors - per_part);
        for anchor in first..first + per_part {
            output[anchor] = cx + noise.unit() * 3.0;
            output[anchors + anchor] = cy + noise.unit() * 3.0;
            output[2 * anchors + anchor] = 30.0 + noise.unit() * 3.0;
            output[3 * anchors + anchor] = 30.0 + noise.unit() * 3.0;
            output[(4 + class) * anchors + anchor] = 0.5 + noise.unit() * 0.5;
        }
    }
    output
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn decode_and_nms_match_the_cpu_on_random_outputs() {
    let gpu = gpu();
    let mut noise = Noise(42);
    for classes in [5, 80] {
        for (parts, per_part) in [(0, 0), (1, 1), (100, 12), (300, 20)] {
            let output = synthetic_output(&mut noise, classes, 8400, parts, per_part);
            let kept = check_decode(&gpu, &output, classes, params(300));
            assert!(
                kept <= 300 && (parts == 0) == (kept == 0),
                "{parts} parts, {kept} kept"
            );
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn decode_and_nms_with_zero_and_thousands_of_detections() {
    let gpu = gpu();
    let mut noise = Noise(3);
    // Nothing reaches the threshold.
    let empty = synthetic_output(&mut noise, 5, 8400, 0, 0);
    assert_eq!(check_decode(&gpu, &empty, 5, params(300)), 0);
    // Every anchor a separate, confident part: 8400 candidates, thousands
    // kept when the cap allows, the cap when it does not.
    let mut crowded = vec![0f32; 9 * 8400];
    for anchor in 0..8400 {
        crowded[anchor] = (anchor % 100) as f32 * 10.0;
        crowded[8400 + anchor] = (anchor / 100) as f32 * 10.0;
        crowded[2 * 8400 + anchor] = 4.0;
        crowded[3 * 8400 + anchor] = 4.0;
        crowded[(4 + anchor % 5) * 8400 + anchor] = 0.3 + noise.unit() * 0.7;
    }
    assert_eq!(check_decode(&gpu, &crowded, 5, params(8400)), 8400);
    assert_eq!(check_decode(&gpu, &crowded, 5, params(300)), 300);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn equal_scores_are_broken_by_anchor_as_on_the_cpu() {
    let gpu = gpu();
    let anchors = 256;
    let mut output = vec![0f32; 9 * anchors];
    for anchor in 0..anchors {
        // Overlapping pairs with one score: the lower anchor must win.
        output[anchor] = (anchor / 2) as f32 * 50.0 + (anchor % 2) as f32;
        output[anchors + anchor] = 100.0;
        output[2 * anchors + anchor] = 20.0;
        output[3 * anchors + anchor] = 20.0;
        output[(4 + 2) * anchors + anchor] = 0.75;
    }
    let kept = check_decode(&gpu, &output, 5, params(300));
    assert_eq!(kept, anchors / 2);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn decode_and_nms_match_the_cpu_on_a_real_model_output() {
    let gpu = gpu();
    let bytes = std::fs::read(repo().join("tests/data/reference/output_1x9x5040.f32")).unwrap();
    let output: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap()))
        .collect();
    assert!(check_decode(&gpu, &output, 5, params(300)) > 0);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn the_jetson_memory_path_is_the_default_only_on_an_integrated_gpu() {
    let gpu = gpu();
    let expected = if gpu.is_integrated() {
        MemoryMode::Mapped
    } else {
        MemoryMode::Device
    };
    assert_eq!(gpu.default_memory(), expected);
    eprintln!(
        "GPU tests ran on {} (compute capability {:?}, integrated: {})",
        gpu.name(),
        gpu.compute_capability(),
        gpu.is_integrated()
    );
}

/// Runs everywhere: without a driver the error says so plainly (what the
/// line and `edgesort bench gpu` print); with one the GPU opens.
#[test]
fn opening_the_gpu_works_or_says_plainly_why_not() {
    match Gpu::open(0) {
        Ok(gpu) => assert!(!gpu.name().is_empty()),
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.starts_with("no CUDA driver") || message.starts_with("no NVRTC"),
                "{message}"
            );
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn the_frame_pool_lends_a_bounded_number_of_buffers_and_takes_them_back() {
    use edgesort_infer_cuda::GpuFramePool;
    use edgesort_types::FramePool;
    let gpu = gpu();
    for memory in [MemoryMode::Device, MemoryMode::Mapped] {
        let pool = GpuFramePool::new(&gpu, memory);
        let small = FrameLayout::packed(PixelFormat::Yuyv, 64, 32);
        assert!(!pool.accepts(FrameLayout::packed(PixelFormat::Grey, 64, 32)));
        assert!(
            pool.take(FrameLayout::packed(PixelFormat::Grey, 64, 32))
                .is_none()
        );
        let mut held: Vec<_> = std::iter::from_fn(|| pool.take(small)).take(20).collect();
        assert_eq!(held.len(), 12, "{memory:?}: at most twelve in flight");
        for (index, buffer) in held.iter_mut().enumerate() {
            assert_eq!(buffer.bytes().len(), small.byte_len());
            buffer.bytes_mut().fill(index as u8);
        }
        drop(held.pop());
        let again = pool.take(small).expect("the dropped buffer came back");
        assert_eq!(again.bytes().len(), small.byte_len());
        drop(held);
        // A larger frame replaces smaller buffers rather than failing.
        let large = FrameLayout::packed(PixelFormat::Nv12, 1280, 720);
        let big = pool.take(large).expect("a buffer for the larger size");
        assert_eq!(big.bytes().len(), large.byte_len());
        assert!(pool.describe().contains("pinned host memory"));
    }
}

/// TEST DOUBLE: an engine that writes a fixed output (a real model output,
/// 5 classes at 640x384) and then waits for its stream on the host, as an
/// engine with a host step does. That works on a running stream, but a
/// stream capture refuses it (a capturing stream cannot be waited on), as
/// TensorRT refuses to capture some engines. (A synchronous copy alone is
/// not enough: it runs at once, outside the capture, and the capture
/// succeeds without it.)
struct UncapturableEngine {
    input: edgesort_infer_cuda::EngineTensor,
    output: edgesort_infer_cuda::EngineTensor,
    values: Vec<f32>,
}

impl edgesort_infer_cuda::DeviceEngine for UncapturableEngine {
    fn name(&self) -> String {
        "uncapturable engine (test double)".into()
    }

    fn input(&self) -> &edgesort_infer_cuda::EngineTensor {
        &self.input
    }

    fn output(&self) -> &edgesort_infer_cuda::EngineTensor {
        &self.output
    }

    fn set_input_shape(
        &mut self,
        shape: [usize; 4],
    ) -> Result<Vec<usize>, edgesort_infer_cuda::EngineError> {
        assert_eq!(shape, [1, 3, 384, 640]);
        Ok(vec![1, 9, 5040])
    }

    unsafe fn enqueue(
        &mut self,
        _input: cudarc::driver::sys::CUdeviceptr,
        output: cudarc::driver::sys::CUdeviceptr,
        stream: &Arc<cudarc::driver::CudaStream>,
    ) -> Result<(), edgesort_infer_cuda::EngineError> {
        // SAFETY: the output binding holds 9 x 5040 floats.
        unsafe { cudarc::driver::result::memcpy_htod_sync(output, &self.values) }?;
        stream.synchronize()?;
        Ok(())
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn an_engine_that_cannot_be_captured_runs_as_plain_launches_with_the_reason() {
    use edgesort_infer::Detect;
    use edgesort_infer_cuda::{EngineTensor, GpuDetector};
    use edgesort_types::Frame;
    use edgesort_types::config::ModelConfig;

    let gpu = gpu();
    let bytes = std::fs::read(repo().join("tests/data/reference/output_1x9x5040.f32")).unwrap();
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap()))
        .collect();
    let model = ModelConfig {
        path: PathBuf::from("unused.onnx"),
        classes: ["bolt", "nut", "washer", "spring", "foreign"]
            .map(String::from)
            .to_vec(),
        confidence: 0.25,
        iou: 0.45,
        input_size: 640,
    };
    let engine = || UncapturableEngine {
        input: EngineTensor {
            name: "images".into(),
            element: TensorType::F32,
            shape: vec![Some(1), Some(3), None, None],
        },
        output: EngineTensor {
            name: "output0".into(),
            element: TensorType::F32,
            shape: vec![Some(1), Some(9), None],
        },
        values: values.clone(),
    };
    let frame = Frame::grey(1280, 720);
    let mut plain = GpuDetector::new(&gpu, engine(), &model, MemoryMode::Device)
        .unwrap()
        .with_graphs(false);
    let (expected, _) = plain.detect(&frame).unwrap();
    assert!(!expected.is_empty());
    assert!(
        plain
            .graph_fallback()
            .unwrap()
            .contains("cuda_graph = false")
    );

    for memory in MODES {
        let mut detector = GpuDetector::new(&gpu, engine(), &model, memory).unwrap();
        for run in 0..4 {
            let (found, _) = detector.detect(&frame).unwrap();
            assert_eq!(found, expected, "{memory:?}, run {run}");
            assert!(!detector.last_times().graph, "{memory:?}, run {run}");
        }
        let reason = detector
            .graph_fallback()
            .expect("the failed capture is reported");
        assert!(reason.contains("capturing a CUDA graph"), "{reason}");
        eprintln!("{memory:?}: {reason}");
    }
}
