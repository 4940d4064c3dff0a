//! `edgesort bench pipeline --backend gpu`: the GPU line fed camera frames
//! at the camera's pace, timed frame by frame. Frames are 1280x720 YUYV (the
//! shared `clip_a` where present, else the demo clip doubled in size), fed
//! by a camera thread at `--fps` for `--seconds` through a one-frame slot,
//! and detected by the GPU detector. As the live capture thread does with
//! the driver's buffer, the camera thread copies each frame once into a
//! buffer the detector lent (pinned memory, mapped on a Jetson); the
//! letterbox kernel reads the YUYV there and writes the engine's input
//! binding, the engine runs, the decode kernels read its output binding.
//! The engine is the one in service, or, with `--engine-double`, a TEST
//! DOUBLE that writes the CPU backend's output recorded for each frame.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use edgesort_bench::{Clip, generate_from};
use edgesort_capture::decode_jpeg_rgb;
use edgesort_infer::{Backend, Detect, Detector};
use edgesort_infer_cuda::{
    DeviceEngine, Gpu, GpuDetector, MemoryMode, OutputRecorder, RecordedOutputEngine,
};
use edgesort_infer_tract::TractBackend;
use edgesort_pipeline::{StageHistogram, StageSummary};
use edgesort_types::config::Config;
use edgesort_types::{Frame, FrameLayout, PixelFormat, Pixels, Timestamp};
use serde::Serialize;

use crate::BUNDLED_CLIP;
use crate::bench::{GpuMemory, PipelineArgs, SHARED_WIDE_CLIP};

/// What one run of the GPU line measured.
#[derive(Serialize)]
struct GpuLineReport {
    gpu: String,
    engine: String,
    memory: &'static str,
    frame: String,
    input: String,
    fps: f64,
    seconds: f64,
    frames_fed: u64,
    frames_processed: u64,
    frames_dropped: u64,
    /// Frames that found no lent buffer free and were copied by the
    /// detector instead.
    frames_not_in_lent_buffers: u64,
    /// Frames whose GPU work ran as one CUDA graph launch.
    frames_as_graphs: u64,
    /// Why frames ran as a launch per step instead, if they did.
    graph_fallback: Option<String>,
    /// The camera thread's one copy of each frame into a lent buffer (the
    /// live capture thread's copy out of the driver's buffer).
    camera_copy: StageSummary,
    /// Host time from the frame ready to its detections ready, less the
    /// engine's own GPU time: what edgesort adds to the engine.
    host_overhead: StageSummary,
    /// The same, the engine included.
    host_total: StageSummary,
    /// Copying the frame into the buffer the GPU reads, on the detecting
    /// thread: zero for frames in lent buffers.
    frame_copy: StageSummary,
    /// GPU time per stage, from events.
    gpu_letterbox: StageSummary,
    gpu_engine: StageSummary,
    gpu_decode_nms: StageSummary,
    /// CPU time the detecting thread spent per frame (it waits for the GPU
    /// by spinning, as the CUDA driver does by default).
    cpu_per_frame: StageSummary,
}

/// Times the GPU line with the engine `served` holds, or with the engine
/// test double where `served` is `None` (`--engine-double`).
pub fn run_gpu_line_bench(
    config: &Config,
    args: &PipelineArgs,
    served: Option<&edgesort_serve::Served>,
) -> Result<()> {
    let clip = match &args.clip {
        Some(dir) => Clip::load(dir)?,
        None if Path::new(SHARED_WIDE_CLIP).is_dir() => Clip::load(Path::new(SHARED_WIDE_CLIP))?,
        None => generate_from(&Clip::load(Path::new(BUNDLED_CLIP))?)?,
    };
    let frames: Vec<Frame> = clip
        .jpegs
        .iter()
        .enumerate()
        .map(|(index, jpeg)| {
            let (width, height, rgb) = decode_jpeg_rgb(jpeg)
                .map_err(|reason| anyhow::anyhow!("frame {index} of {}: {reason}", clip.name))?;
            Ok(Frame::from_rgb(
                index as u64,
                Timestamp::ZERO,
                width,
                height,
                rgb,
            ))
        })
        .collect::<Result<_>>()?;
    let (width, height) = (clip.width, clip.height);
    let layout = FrameLayout::packed(PixelFormat::Yuyv, width, height);
    let yuyv: Vec<Vec<u8>> = frames
        .iter()
        .map(|frame| rgb_to_yuyv(frame, layout))
        .collect();

    let gpu = Gpu::open(0).context("opening the GPU")?;
    let engine: Box<dyn DeviceEngine> = match served.and_then(|served| served.engine_plan()) {
        Some((plan, dla_core)) => {
            let log = Arc::new(|severity, message: &str| {
                tracing::info!(target: "tensorrt", ?severity, "{message}");
            });
            let tensorrt = tensorrt_sys::TensorRt::load(log)?;
            Box::new(edgesort_infer_tensorrt::TensorRtEngine::deserialize(
                &tensorrt, plan, dla_core,
            )?)
        }
        None => {
            eprintln!(
                "recording the CPU backend's output for each of {} frames (the engine test double replays them)...",
                frames.len()
            );
            Box::new(recorded_engine(config, &gpu, &frames)?)
        }
    };
    let engine_name = engine.name();
    let memory = match args.gpu_memory {
        None => gpu.default_memory(),
        Some(GpuMemory::Device) => MemoryMode::Device,
        Some(GpuMemory::Mapped) => MemoryMode::Mapped,
    };
    let mut detector = GpuDetector::new(&gpu, engine, &config.model, memory)?
        .with_graphs(config.engine.cuda_graph);
    // Readies the engine for the shape; not timed.
    detector.detect_raw(layout, &yuyv[0])?;
    let input = detector
        .letterbox()
        .map(|plan| format!("{}x{}", plan.input_width, plan.input_height))
        .unwrap_or_default();
    eprintln!(
        "feeding {width}x{height} YUYV at {} fps for {} s to the GPU line ({engine_name})...",
        args.fps, args.seconds
    );
    let period = Duration::from_secs_f64(1.0 / args.fps);
    let total = (args.seconds * args.fps).round() as u64;
    let (slot, frames_in) = crossbeam_channel::bounded::<(Frame, Instant)>(1);
    let dropped = Arc::new(AtomicU64::new(0));
    let camera_dropped = dropped.clone();
    let pool = detector.lend_frame_buffers();
    let camera_frames = yuyv;
    let camera = std::thread::spawn(move || {
        let mut copies = StageHistogram::new("camera copy");
        let start = Instant::now() + period;
        for index in 0..total {
            let due = start + period * index as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let bytes = &camera_frames[index as usize % camera_frames.len()];
            let copied = Instant::now();
            let pixels = match pool.take(layout) {
                Some(mut buffer) => {
                    buffer.bytes_mut().copy_from_slice(bytes);
                    Pixels::Camera { layout, buffer }
                }
                None => Pixels::Camera {
                    layout,
                    buffer: Box::new(HeapFrame(bytes.clone())),
                },
            };
            copies.record(copied.elapsed());
            let frame = Frame {
                sequence: index,
                captured_at: Timestamp::ZERO,
                width,
                height,
                pixels,
            };
            if slot.try_send((frame, Instant::now())).is_err() {
                camera_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        copies
    });

    let mut overhead = StageHistogram::new("host overhead");
    let mut host_total = StageHistogram::new("host total");
    let mut frame_copy = StageHistogram::new("frame copy");
    let mut letterbox = StageHistogram::new("GPU letterbox");
    let mut engine_time = StageHistogram::new("GPU engine");
    let mut decode = StageHistogram::new("GPU decode+NMS");
    let mut cpu = StageHistogram::new("CPU per frame");
    let mut processed = 0u64;
    let mut not_lent = 0u64;
    let mut as_graphs = 0u64;
    while let Ok((frame, ready)) = frames_in.recv() {
        let cpu_before = thread_cpu_time();
        let (_, times) = detector.detect(&frame)?;
        let done = Instant::now();
        let cpu_after = thread_cpu_time();
        let gpu_times = detector.last_times();
        let total = done - ready;
        host_total.record(total);
        overhead.record(total.saturating_sub(gpu_times.engine));
        frame_copy.record(gpu_times.frame_copy);
        if !gpu_times.in_place {
            not_lent += 1;
        }
        as_graphs += u64::from(gpu_times.graph);
        letterbox.record(times.preprocess);
        engine_time.record(times.inference);
        decode.record(times.postprocess);
        cpu.record(cpu_after.saturating_sub(cpu_before));
        processed += 1;
    }
    let camera_copy = camera
        .join()
        .map_err(|_| anyhow::anyhow!("the camera thread panicked"))?;

    let report = GpuLineReport {
        gpu: gpu.name().to_owned(),
        engine: engine_name,
        memory: if detector.is_zero_copy() {
            "mapped (zero-copy: the frame is written where the GPU reads it)"
        } else {
            "device (the frame is uploaded on the stream)"
        },
        frame: format!("{width}x{height} YUYV"),
        input,
        fps: args.fps,
        seconds: args.seconds,
        frames_fed: total,
        frames_processed: processed,
        frames_dropped: dropped.load(Ordering::Relaxed),
        frames_not_in_lent_buffers: not_lent,
        frames_as_graphs: as_graphs,
        graph_fallback: detector.graph_fallback().map(str::to_owned),
        camera_copy: camera_copy.summary(),
        host_overhead: overhead.summary(),
        host_total: host_total.summary(),
        frame_copy: frame_copy.summary(),
        gpu_letterbox: letterbox.summary(),
        gpu_engine: engine_time.summary(),
        gpu_decode_nms: decode.summary(),
        cpu_per_frame: cpu.summary(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "GPU line on {}: {} -> {}, {}, engine: {}",
            report.gpu, report.frame, report.input, report.memory, report.engine
        );
        println!(
            "frames fed {}, processed {}, dropped {}, not in lent buffers {}, run as one CUDA graph {}",
            report.frames_fed,
            report.frames_processed,
            report.frames_dropped,
            report.frames_not_in_lent_buffers,
            report.frames_as_graphs
        );
        if let Some(reason) = &report.graph_fallback {
            println!("a launch per step, not a CUDA graph: {reason}");
        }
        println!(
            "{:<60} {:>9} {:>9} {:>9}",
            "per frame", "p50 µs", "p99 µs", "max µs"
        );
        for (what, summary) in [
            (
                "host: frame ready -> detections, less the engine",
                &report.host_overhead,
            ),
            ("host: frame ready -> detections", &report.host_total),
            (
                "camera thread: the one copy into a lent buffer",
                &report.camera_copy,
            ),
            ("host: frame copy into the GPU's buffer", &report.frame_copy),
            ("GPU: letterbox", &report.gpu_letterbox),
            ("GPU: engine", &report.gpu_engine),
            ("GPU: decode + NMS", &report.gpu_decode_nms),
            ("CPU time of the detecting thread", &report.cpu_per_frame),
        ] {
            println!(
                "{what:<60} {:>9} {:>9} {:>9}",
                summary.p50_us, summary.p99_us, summary.max_us
            );
        }
    }
    Ok(())
}

/// A frame that found no lent buffer free: the detector copies it.
struct HeapFrame(Vec<u8>);

impl edgesort_types::PixelBuffer for HeapFrame {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The engine double: the CPU backend's output for each frame (RGB, as the
/// CPU line sees it), replayed run for run.
fn recorded_engine(
    config: &Config,
    gpu: &Arc<Gpu>,
    frames: &[Frame],
) -> Result<RecordedOutputEngine> {
    let threads = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let backend =
        OutputRecorder::new(TractBackend::load(&config.model.path)?.with_threads(threads));
    let mut cpu = Detector::for_model(backend, &config.model)?;
    // The warm-up run below consumes the first recording: record it too.
    Detect::detect(&mut cpu, &frames[0])?;
    for frame in frames {
        Detect::detect(&mut cpu, frame)?;
    }
    let io = cpu.backend().io().clone();
    let runs = cpu.backend().runs();
    Ok(RecordedOutputEngine::new(
        gpu,
        &io.inputs[0].name,
        &io.outputs[0].name,
        runs,
    )?)
}

/// A frame as a camera streaming YUYV would deliver it (BT.601, limited
/// range), two pixels per four bytes.
fn rgb_to_yuyv(frame: &Frame, layout: FrameLayout) -> Vec<u8> {
    let rgb = frame.rgb();
    let mut out = vec![0u8; layout.byte_len()];
    let luma = |r: f32, g: f32, b: f32| 16.0 + 0.257 * r + 0.504 * g + 0.098 * b;
    for y in 0..frame.height as usize {
        let row = &rgb[3 * y * frame.width as usize..];
        let target = &mut out[y * layout.stride as usize..];
        for pair in 0..frame.width as usize / 2 {
            let pixel = |i: usize| {
                let at = 3 * (2 * pair + i);
                (
                    f32::from(row[at]),
                    f32::from(row[at + 1]),
                    f32::from(row[at + 2]),
                )
            };
            let ((r0, g0, b0), (r1, g1, b1)) = (pixel(0), pixel(1));
            let (r, g, b) = ((r0 + r1) / 2.0, (g0 + g1) / 2.0, (b0 + b1) / 2.0);
            let u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b;
            let v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b;
            let clamp = |value: f32| value.round().clamp(0.0, 255.0) as u8;
            target[4 * pair..4 * pair + 4].copy_from_slice(&[
                clamp(luma(r0, g0, b0)),
                clamp(u),
                clamp(luma(r1, g1, b1)),
                clamp(v),
            ]);
        }
    }
    out
}

/// CPU time this thread has used.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer for the calling thread's clock.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
