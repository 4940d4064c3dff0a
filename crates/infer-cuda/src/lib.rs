//! GPU pre- and post-processing with cudarc, so that frame-to-detections
//! costs the engine's time plus tens of microseconds.
//!
//! - [`Gpu::open`] compiles the kernels (`kernels/prepost.cu`) for the
//!   device with NVRTC at start, with fused multiply-adds off so that every
//!   result matches the CPU reference bit for bit.
//! - [`GpuLetterbox`] goes from a camera frame (RGB, BGR, YUYV or NV12, any
//!   row stride) to the engine's planar input tensor (FP32 or FP16) in one
//!   kernel: format conversion, bilinear resize with half-pixel centres,
//!   grey padding.
//! - [`GpuDecoder`] turns the `(4 + classes) x anchors` output into the
//!   detections `decode_yolo` and `non_max_suppression` give on the CPU:
//!   decode, a rank sort, a bitmask of which earlier box overlaps which, and
//!   greedy suppression settled in parallel rounds.
//! - [`MemoryMode::Mapped`] (the default on Jetson, whose GPU shares DRAM)
//!   has the camera write and the CPU read pinned host memory the GPU maps:
//!   no copies. [`MemoryMode::Device`] (discrete GPUs) copies on the stream.
//!
//! Everything runs in order on the [`Gpu`]'s one stream.
#![deny(missing_docs)]

mod bench;
mod detector;
mod engine;
mod error;
mod gpu;
mod graph;
mod memory;
mod pool;
mod postprocess;
mod preprocess;
mod recorded;

pub use bench::{GpuBenchReport, StageTiming, bench_gpu};
pub use detector::{GpuDetector, GpuTimes};
pub use engine::{DeviceEngine, EngineError, EngineTensor};
pub use error::GpuError;
pub use gpu::{DeviceInfo, Gpu, MemoryMode, probe_device};
pub use graph::{Graph, capture_graph};
pub use memory::DeviceBuffer;
pub use pool::GpuFramePool;
pub use postprocess::GpuDecoder;
pub use preprocess::{GpuLetterbox, TensorType};
pub use recorded::{OutputRecorder, RecordedOutputEngine, RecordedRun};
