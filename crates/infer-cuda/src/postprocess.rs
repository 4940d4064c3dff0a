use std::sync::Arc;

use cudarc::driver::{LaunchConfig, PushKernelArg, result};
use edgesort_infer::{Candidate, DecodeParams, LabelsPerBox};
use edgesort_types::{BoundingBox, ClassId};

use crate::error::driver;
use crate::memory::{DeviceBuffer, SharedBuffer};
use crate::{Gpu, GpuError, MemoryMode, TensorType};

/// A candidate as the kernels write it (`struct Candidate` in
/// `kernels/prepost.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RawCandidate {
    x1: f32,
    y1: f32,
    x2: f32,
    y2: f32,
    score: f32,
    class: i32,
    anchor: i32,
}

const CANDIDATE_BYTES: usize = std::mem::size_of::<RawCandidate>();

/// The suppression kernel keeps a byte per candidate in shared memory,
/// beside 4 KiB of its own, within the 48 KiB every GPU grants: 33600
/// anchors (a 1280x1280 input) fit.
const MAX_ANCHORS: usize = 44 * 1024;

/// Threads of the suppression kernel's one block (SUPPRESS_THREADS).
const SUPPRESS_THREADS: u32 = 1024;

/// The post-processing kernels, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PostStep {
    /// Reset the count, decode above the confidence.
    Decode,
    /// Rank sort.
    Sort,
    /// The overlap bitmask.
    Overlaps,
    /// The greedy pass.
    Suppress,
}

pub(crate) const POST_STEPS: [PostStep; 4] = [
    PostStep::Decode,
    PostStep::Sort,
    PostStep::Overlaps,
    PostStep::Suppress,
];

/// Blocks for the grid-stride kernels: enough to fill any GPU we ship to
/// and then some, without launching a block per possible candidate.
const STRIDED_BLOCKS: u32 = 256;

/// YOLOv8 output to detections on the GPU: decode above the confidence,
/// sort as the CPU does (score, then anchor), suppress overlaps of the same
/// class, keep at most `max_detections`. Equals `decode_yolo` plus
/// `non_max_suppression` of the CPU reference, box for box.
pub struct GpuDecoder {
    gpu: Arc<Gpu>,
    classes: usize,
    anchors: usize,
    params: DecodeParams,
    output_type: TensorType,
    output: DeviceBuffer,
    candidates: DeviceBuffer,
    positions: DeviceBuffer,
    sorted: DeviceBuffer,
    mask: DeviceBuffer,
    words: usize,
    /// Per candidate, which words of its mask row are not zero.
    summaries: DeviceBuffer,
    summary_words: usize,
    /// The count of candidates, then the count kept, as two i32.
    counts: SharedBuffer,
    kept: SharedBuffer,
}

impl GpuDecoder {
    /// Readies buffers for outputs of `classes` classes over `anchors`
    /// anchors. Only [`LabelsPerBox::Best`] runs on the GPU: it is what the
    /// line acts on.
    pub fn new(
        gpu: &Arc<Gpu>,
        classes: usize,
        anchors: usize,
        params: DecodeParams,
        memory: MemoryMode,
    ) -> Result<Self, GpuError> {
        if params.labels != LabelsPerBox::Best {
            return Err(GpuError::Geometry(
                "the GPU decoder keeps the best class per anchor only".into(),
            ));
        }
        if classes == 0 || anchors == 0 || anchors > MAX_ANCHORS {
            return Err(GpuError::Geometry(format!(
                "cannot decode {classes} classes over {anchors} anchors"
            )));
        }
        let words = anchors.div_ceil(64);
        let context = &gpu.context;
        let positions = DeviceBuffer::new(context, 4 * anchors)?;
        // Zeroed once here; `scatter` zeroes what it used for the next frame.
        // SAFETY: the buffer holds one i32 per anchor.
        unsafe { result::memset_d8_sync(positions.pointer(), 0, positions.len()) }
            .map_err(driver("zero the positions"))?;
        Ok(GpuDecoder {
            positions,
            output: DeviceBuffer::new(context, 4 * (4 + classes) * anchors)?,
            candidates: DeviceBuffer::new(context, CANDIDATE_BYTES * anchors)?,
            sorted: DeviceBuffer::new(context, CANDIDATE_BYTES * anchors)?,
            mask: DeviceBuffer::new(context, 8 * words * anchors)?,
            summaries: DeviceBuffer::new(context, 8 * words.div_ceil(64) * anchors)?,
            summary_words: words.div_ceil(64),
            counts: SharedBuffer::new(context, 8, memory)?,
            kept: SharedBuffer::new(
                context,
                CANDIDATE_BYTES * params.max_detections.max(1),
                memory,
            )?,
            gpu: gpu.clone(),
            classes,
            anchors,
            params,
            output_type: TensorType::F32,
            words,
        })
    }

    /// Reads the output as FP16 instead (an engine with half-precision
    /// outputs); the buffer is sized for FP32 either way.
    pub fn with_output_type(mut self, output_type: TensorType) -> Self {
        self.output_type = output_type;
        self
    }

    /// The model output buffer (`(4 + classes) x anchors` f32) the engine
    /// writes into.
    pub fn output(&self) -> &DeviceBuffer {
        &self.output
    }

    /// Copies an FP32 model output in (tests and benchmarks; on the line
    /// the engine writes it).
    pub fn upload_output(&self, output: &[f32]) -> Result<(), GpuError> {
        if output.len() != (4 + self.classes) * self.anchors {
            return Err(GpuError::Geometry(format!(
                "the output has {} values, expected {}",
                output.len(),
                (4 + self.classes) * self.anchors
            )));
        }
        // SAFETY: the buffer holds exactly this many values.
        unsafe { result::memcpy_htod_sync(self.output.pointer(), output) }
            .map_err(driver("copy the output in"))
    }

    /// Fills the results with `byte` (to show unwritten entries in tests).
    pub fn poison_results(&mut self, byte: u8) {
        self.counts.host_mut().fill(byte);
        self.kept.host_mut().fill(byte);
    }

    /// Enqueues decode, sort, overlap mask and suppression, and the copy of
    /// the results to the host on a discrete GPU.
    pub fn enqueue(&mut self) -> Result<(), GpuError> {
        self.launch()?;
        self.download()
    }

    /// Enqueues the copy of the results to the host (none when mapped).
    pub(crate) fn download(&mut self) -> Result<(), GpuError> {
        let stream = self.gpu.stream.cu_stream();
        self.counts.download(stream)?;
        self.kept.download(stream)
    }

    /// Enqueues the kernels alone.
    pub(crate) fn launch(&self) -> Result<(), GpuError> {
        POST_STEPS
            .iter()
            .try_for_each(|&step| self.launch_step(step))
    }

    /// Enqueues one step (the benchmark times each alone: each reads only
    /// what the steps before it left, so it can be repeated).
    pub(crate) fn launch_step(&self, step: PostStep) -> Result<(), GpuError> {
        let gpu = &self.gpu;
        let stream = &gpu.stream;
        let counts = self.counts.device_pointer();
        let kept_count = counts + 4;

        let (output, candidates, sorted, mask, kept) = (
            self.output.pointer(),
            self.candidates.pointer(),
            self.sorted.pointer(),
            self.mask.pointer(),
            self.kept.device_pointer(),
        );
        let (classes, anchors) = (self.classes as i32, self.anchors as i32);
        let (confidence, iou) = (self.params.confidence, self.params.iou);
        let (words, max_detections) = (self.words as i32, self.params.max_detections as i32);
        let (summaries, summary_words) = (self.summaries.pointer(), self.summary_words as i32);
        // `rank` needs exactly RANK_TILE (256) threads a block.
        let strided = LaunchConfig {
            grid_dim: (STRIDED_BLOCKS, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let failed = driver("launch a post-processing kernel");
        // SAFETY (every launch below): the arguments are those the kernel
        // declares, in order; every buffer is sized for `anchors`
        // candidates and outlives the stream's work.
        match step {
            PostStep::Decode => {
                // SAFETY: the count is one i32 at the start of `counts`.
                unsafe { result::memset_d8_async(counts, 0, 4, stream.cu_stream()) }
                    .map_err(driver("reset the count"))?;
                let half_output = i32::from(self.output_type == TensorType::F16);
                let mut decode = stream.launch_builder(&gpu.decode);
                decode
                    .arg(&output)
                    .arg(&half_output)
                    .arg(&classes)
                    .arg(&anchors)
                    .arg(&confidence)
                    .arg(&candidates)
                    .arg(&counts);
                unsafe { decode.launch(LaunchConfig::for_num_elems(self.anchors as u32)) }
                    .map_err(&failed)?;
            }
            PostStep::Sort => {
                let positions = self.positions.pointer();
                let mut rank = stream.launch_builder(&gpu.rank);
                rank.arg(&candidates).arg(&counts).arg(&positions);
                unsafe { rank.launch(strided) }.map_err(&failed)?;
                let mut scatter = stream.launch_builder(&gpu.scatter);
                scatter
                    .arg(&candidates)
                    .arg(&counts)
                    .arg(&positions)
                    .arg(&sorted)
                    .arg(&summaries)
                    .arg(&summary_words);
                unsafe { scatter.launch(strided) }.map_err(&failed)?;
            }
            PostStep::Overlaps => {
                let tiles = LaunchConfig {
                    grid_dim: (STRIDED_BLOCKS, 1, 1),
                    // OVERLAP_THREADS
                    block_dim: (256, 1, 1),
                    shared_mem_bytes: 0,
                };
                let mut overlaps = stream.launch_builder(&gpu.overlaps);
                overlaps
                    .arg(&sorted)
                    .arg(&counts)
                    .arg(&iou)
                    .arg(&mask)
                    .arg(&words)
                    .arg(&summaries)
                    .arg(&summary_words);
                unsafe { overlaps.launch(tiles) }.map_err(&failed)?;
            }
            PostStep::Suppress => {
                let mut suppress = stream.launch_builder(&gpu.suppress);
                suppress
                    .arg(&sorted)
                    .arg(&counts)
                    .arg(&mask)
                    .arg(&words)
                    .arg(&summaries)
                    .arg(&summary_words)
                    .arg(&max_detections)
                    .arg(&kept)
                    .arg(&kept_count);
                let one_block = LaunchConfig {
                    grid_dim: (1, 1, 1),
                    block_dim: (SUPPRESS_THREADS, 1, 1),
                    shared_mem_bytes: self.anchors as u32,
                };
                unsafe { suppress.launch(one_block) }.map_err(&failed)?;
            }
        }
        Ok(())
    }

    /// The detections of the last [`GpuDecoder::enqueue`], in input-tensor
    /// pixels, best first; waits for the GPU.
    pub fn results(&self) -> Result<Vec<Candidate>, GpuError> {
        self.gpu.synchronize()?;
        let counts = self.counts.host();
        let kept = i32::from_ne_bytes(counts[4..8].try_into().expect("4 bytes"));
        let kept = usize::try_from(kept)
            .ok()
            .filter(|&kept| kept <= self.params.max_detections)
            .ok_or_else(|| GpuError::Geometry(format!("the GPU reported {kept} detections")))?;
        Ok(self.kept.host()[..kept * CANDIDATE_BYTES]
            .chunks_exact(CANDIDATE_BYTES)
            .map(|bytes| {
                let field = |index: usize| {
                    <[u8; 4]>::try_from(&bytes[4 * index..4 * index + 4]).expect("4 bytes")
                };
                let raw = RawCandidate {
                    x1: f32::from_ne_bytes(field(0)),
                    y1: f32::from_ne_bytes(field(1)),
                    x2: f32::from_ne_bytes(field(2)),
                    y2: f32::from_ne_bytes(field(3)),
                    score: f32::from_ne_bytes(field(4)),
                    class: i32::from_ne_bytes(field(5)),
                    anchor: i32::from_ne_bytes(field(6)),
                };
                Candidate {
                    bbox: BoundingBox {
                        x1: raw.x1,
                        y1: raw.y1,
                        x2: raw.x2,
                        y2: raw.y2,
                    },
                    class: ClassId(raw.class as u16),
                    score: raw.score,
                    anchor: raw.anchor as usize,
                }
            })
            .collect())
    }
}
