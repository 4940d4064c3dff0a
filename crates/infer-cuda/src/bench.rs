use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::sys::{CUevent_flags, CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{LaunchConfig, PushKernelArg, result};
use edgesort_infer::{
    Candidate, DecodeParams, InputShape, LabelsPerBox, Letterbox, decode_yolo, non_max_suppression,
};
use edgesort_types::{FrameLayout, PixelFormat};
use serde::Serialize;

use crate::error::driver;
use crate::memory::DeviceBuffer;
use crate::postprocess::POST_STEPS;
use crate::{Gpu, GpuDecoder, GpuError, GpuLetterbox, MemoryMode, TensorType};

/// One measured stage.
#[derive(Clone, Debug, Serialize)]
pub struct StageTiming {
    /// What ran.
    pub stage: String,
    /// Median GPU time from CUDA events, microseconds.
    pub median_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Bytes moved over the measured bandwidth, plus one launch.
    pub floor_us: Option<f64>,
    /// The same work on this machine's CPU (one thread), median: the
    /// letterbox from RGB (format conversion not counted), or decode + NMS.
    pub cpu_median_us: Option<f64>,
    /// The acceptance target, if the issue set one.
    pub target_us: Option<f64>,
}

/// Everything `edgesort bench gpu` reports.
#[derive(Clone, Debug, Serialize)]
pub struct GpuBenchReport {
    /// The device.
    pub gpu: String,
    /// Runs per stage.
    pub runs: usize,
    /// Device-to-device copy bandwidth, read plus write, GB/s.
    pub bandwidth_gb_s: f64,
    /// One empty kernel launch, microseconds (median).
    pub launch_us: f64,
    /// The stages.
    pub stages: Vec<StageTiming>,
}

fn median_and_p99(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// GPU cycles of spinning before each timed run: longer than the host
/// needs to enqueue any of the stages (a launch costs it a few
/// microseconds), so the events bracket GPU work only, as on a line where
/// the host enqueues ahead of the GPU.
const SPIN_CYCLES: i64 = 1_000_000;

/// Times `work` (which enqueues on the GPU's stream) `runs` times with
/// CUDA events around it, after a warm-up.
fn time_gpu(
    gpu: &Gpu,
    runs: usize,
    mut work: impl FnMut() -> Result<(), GpuError>,
) -> Result<(f64, f64), GpuError> {
    let stream = &gpu.stream;
    let timing = Some(CUevent_flags::CU_EVENT_DEFAULT);
    for _ in 0..runs.min(20) {
        work()?;
    }
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut spin = stream.launch_builder(&gpu.spin);
        spin.arg(&SPIN_CYCLES);
        // SAFETY: the kernel takes one i64.
        unsafe { spin.launch(LaunchConfig::for_num_elems(1)) }.map_err(driver("launch"))?;
        let start = stream
            .record_event(timing)
            .map_err(driver("record an event"))?;
        work()?;
        let end = stream
            .record_event(timing)
            .map_err(driver("record an event"))?;
        let milliseconds = start.elapsed_ms(&end).map_err(driver("time events"))?;
        samples.push(f64::from(milliseconds) * 1000.0);
    }
    Ok(median_and_p99(samples))
}

fn time_cpu(runs: usize, mut work: impl FnMut()) -> f64 {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        work();
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
    median_and_p99(samples).0
}

/// Runs every stage `runs` times and reports medians.
pub fn bench_gpu(gpu: &Arc<Gpu>, runs: usize) -> Result<GpuBenchReport, GpuError> {
    let stream = &gpu.stream;
    // Bandwidth: a 64 MiB device-to-device copy moves 128 MiB.
    let copy_bytes = 64 << 20;
    let (source, target) = (
        DeviceBuffer::new(&gpu.context, copy_bytes)?,
        DeviceBuffer::new(&gpu.context, copy_bytes)?,
    );
    let (copy_us, _) = time_gpu(gpu, runs.min(50), || {
        // SAFETY: both buffers hold `copy_bytes`.
        unsafe {
            result::memcpy_dtod_async(
                target.pointer(),
                source.pointer(),
                copy_bytes,
                stream.cu_stream(),
            )
        }
        .map_err(driver("copy"))
    })?;
    let bandwidth = 2.0 * copy_bytes as f64 / (copy_us * 1e-6);
    let (launch_us, _) = time_gpu(gpu, runs, || {
        let mut noop = stream.launch_builder(&gpu.noop);
        // SAFETY: the kernel takes no arguments.
        unsafe { noop.launch(LaunchConfig::for_num_elems(1)) }
            .map(|_| ())
            .map_err(driver("launch"))
    })?;
    let floor = |bytes: usize| bytes as f64 / bandwidth * 1e6 + launch_us;

    let mut stages = Vec::new();
    let square = InputShape::Fixed {
        width: 640,
        height: 640,
    };
    for (format, width, height, target_us) in [
        (PixelFormat::Yuyv, 1280, 720, Some(20.0)),
        (PixelFormat::Nv12, 1920, 1080, None),
    ] {
        let layout = FrameLayout::packed(format, width, height);
        let plan = Letterbox::plan(width, height, square).expect("valid sizes");
        let frame: Vec<u8> = (0..layout.byte_len())
            .map(|i| (i * 131 % 251) as u8)
            .collect();
        let rgb = layout.to_rgb(&frame);
        let mut resampler = plan.resampler();
        let mut tensor = vec![0f32; plan.tensor_len()];
        // The CPU path's letterbox from RGB; the format conversion (a plain
        // reference implementation) is left out so as not to flatter the GPU.
        let cpu = time_cpu(runs.min(200), || resampler.fill(&rgb, &mut tensor));
        let moved = layout.byte_len() + plan.tensor_len() * 2;
        for mode in [MemoryMode::Device, MemoryMode::Mapped] {
            let mut letterbox = GpuLetterbox::new(gpu, layout, plan, TensorType::F16, mode)?;
            letterbox.frame_mut().copy_from_slice(&frame);
            letterbox.upload()?;
            let (median, p99) = time_gpu(gpu, runs, || letterbox.launch())?;
            let resident = mode == MemoryMode::Device;
            stages.push(StageTiming {
                stage: format!(
                    "{format:?} {width}x{height} -> 640x640 FP16, frame {}",
                    if resident {
                        "in device memory"
                    } else {
                        "in mapped host memory (the Jetson path; over PCIe here)"
                    }
                ),
                median_us: median,
                p99_us: p99,
                floor_us: resident.then(|| floor(moved)),
                cpu_median_us: resident.then_some(cpu),
                target_us: if resident { target_us } else { None },
            });
            if resident {
                let (median, p99) = time_gpu(gpu, runs, || letterbox.upload())?;
                stages.push(StageTiming {
                    stage: format!("{format:?} {width}x{height} frame upload (discrete GPUs only)"),
                    median_us: median,
                    p99_us: p99,
                    floor_us: None,
                    cpu_median_us: None,
                    target_us: None,
                });
            }
        }
    }

    let params = DecodeParams {
        confidence: 0.25,
        iou: 0.45,
        max_detections: 300,
        labels: LabelsPerBox::Best,
    };
    for (classes, target_us) in [(5, Some(40.0)), (80, None)] {
        let anchors = 8400;
        let output = parts_output(classes, anchors, 100, 12);
        let mut decoder = GpuDecoder::new(gpu, classes, anchors, params, MemoryMode::Device)?;
        decoder.upload_output(&output)?;
        decoder.enqueue()?;
        let kept = decoder.results()?.len();
        let mut candidates: Vec<Candidate> = Vec::new();
        let cpu = time_cpu(runs.min(200), || {
            candidates.clear();
            decode_yolo(
                &output,
                classes,
                anchors,
                0.25,
                LabelsPerBox::Best,
                &mut candidates,
            );
            non_max_suppression(&mut candidates, params.iou, params.max_detections);
        });
        let (median, p99) = time_gpu(gpu, runs, || decoder.launch())?;
        let mut steps = Vec::new();
        for step in POST_STEPS {
            let (step_median, _) = time_gpu(gpu, runs, || decoder.launch_step(step))?;
            steps.push(format!("{step:?} {step_median:.1}"));
        }
        stages.push(StageTiming {
            stage: format!(
                "decode + NMS, {anchors} anchors, {classes} classes, {kept} detections ({})",
                steps.join(", ")
            ),
            median_us: median,
            p99_us: p99,
            floor_us: Some(floor(output.len() * 4)),
            cpu_median_us: Some(cpu),
            target_us,
        });
    }

    // Pre and post as one captured graph (the engine joins it on a box).
    let layout = FrameLayout::packed(PixelFormat::Yuyv, 1280, 720);
    let plan = Letterbox::plan(1280, 720, square).expect("valid sizes");
    let mut letterbox = GpuLetterbox::new(gpu, layout, plan, TensorType::F16, MemoryMode::Device)?;
    letterbox.frame_mut().fill(128);
    letterbox.upload()?;
    let decoder = GpuDecoder::new(gpu, 5, 8400, params, MemoryMode::Device)?;
    decoder.upload_output(&parts_output(5, 8400, 100, 12))?;
    let (separate, _) = time_gpu(gpu, runs, || {
        letterbox.launch()?;
        decoder.launch()
    })?;
    stream
        .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        .map_err(driver("begin capture"))?;
    let captured = letterbox.launch().and_then(|()| decoder.launch());
    let graph = stream
        .end_capture(CUgraphInstantiate_flags(0))
        .map_err(driver("end capture"))?;
    captured?;
    let graph = graph.ok_or_else(|| GpuError::Geometry("capture produced no graph".into()))?;
    let (median, p99) = time_gpu(gpu, runs, || graph.launch().map_err(driver("launch graph")))?;
    stages.push(StageTiming {
        stage: format!(
            "YUYV 1280x720 pre + decode/NMS (5 classes) as one CUDA graph (separate launches: {separate:.1} us)"
        ),
        median_us: median,
        p99_us: p99,
        floor_us: None,
        cpu_median_us: None,
        target_us: None,
    });
    drop(graph);
    gpu.synchronize()?;

    Ok(GpuBenchReport {
        gpu: format!(
            "{} (compute capability {}.{}, integrated: {})",
            gpu.name(),
            gpu.compute_capability().0,
            gpu.compute_capability().1,
            gpu.is_integrated()
        ),
        runs,
        bandwidth_gb_s: bandwidth / 1e9,
        launch_us,
        stages,
    })
}

/// A realistic output: `parts` parts each seen by `per_part` anchors,
/// background below the threshold.
fn parts_output(classes: usize, anchors: usize, parts: usize, per_part: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_u64;
    let mut unit = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut output = vec![0f32; (4 + classes) * anchors];
    for anchor in 0..anchors {
        output[anchor] = unit() * 640.0;
        output[anchors + anchor] = unit() * 640.0;
        output[2 * anchors + anchor] = 8.0 + unit() * 40.0;
        output[3 * anchors + anchor] = 8.0 + unit() * 40.0;
        for class in 0..classes {
            output[(4 + class) * anchors + anchor] = unit() * 0.2;
        }
    }
    for part in 0..parts {
        let (x, y) = (
            (part % 10) as f32 * 64.0 + 32.0,
            (part / 10) as f32 * 64.0 + 32.0,
        );
        let first = part * (anchors / parts);
        for anchor in first..first + per_part {
            output[anchor] = x + unit() * 2.0;
            output[anchors + anchor] = y + unit() * 2.0;
            output[2 * anchors + anchor] = 40.0 + unit() * 2.0;
            output[3 * anchors + anchor] = 40.0 + unit() * 2.0;
            output[(4 + part % classes) * anchors + anchor] = 0.5 + unit() * 0.5;
        }
    }
    output
}
