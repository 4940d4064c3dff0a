use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::sys::{CUevent_flags, CUevent_record_flags};
use cudarc::driver::{CudaEvent, CudaStream};
use edgesort_infer::{
    DecodeParams, Detect, DetectorTimes, InferError, InputShape, Letterbox, ModelIo, TensorInfo,
    yolo_anchors, yolo_io,
};
use edgesort_types::config::ModelConfig;
use edgesort_types::{Detection, Frame, FrameLayout, FramePool, PixelBuffer, Pixels};

use crate::error::driver;
use crate::pool::{GpuFrame, GpuFramePool};
use crate::{
    DeviceEngine, Gpu, GpuDecoder, GpuError, GpuLetterbox, Graph, MemoryMode, capture_graph,
};

/// Where one frame's time went, beyond [`DetectorTimes`] (which holds the
/// GPU's time per stage, from events).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GpuTimes {
    /// Host time from the call to the detections in hand, the GPU's wait
    /// included.
    pub host: Duration,
    /// Of that, copying the frame into the GPU's frame buffer (mapped
    /// memory on Jetson, pinned staging memory on a discrete GPU); zero for
    /// a frame the camera wrote into a buffer of the detector's pool.
    pub frame_copy: Duration,
    /// The engine's own GPU time.
    pub engine: Duration,
    /// Whether the kernel read the frame where the camera wrote it (a
    /// buffer this detector lent), with no copy on this thread.
    pub in_place: bool,
    /// Whether the frame ran as one CUDA graph launch (letterbox, engine,
    /// decode and NMS, the copies), not as a launch per step.
    pub graph: bool,
}

/// Frame buffers whose graphs are kept, at most: the pool's twelve and the
/// letterbox's own frame, with room for a pool that reallocated.
const GRAPHS_KEPT: usize = 16;

/// A YOLOv8 detector on the GPU: the frame is letterboxed by a kernel
/// straight into the engine's input binding, in the engine's input type;
/// the engine runs; decode and NMS kernels read its output binding, in its
/// output type; only the frame goes up and the detections come down. All of
/// it in order on the [`Gpu`]'s one stream.
pub struct GpuDetector<E> {
    gpu: Arc<Gpu>,
    engine: E,
    memory: MemoryMode,
    classes: usize,
    input_shape: InputShape,
    params: DecodeParams,
    prepared: Option<Prepared>,
    events: [CudaEvent; 4],
    last: GpuTimes,
    pool: GpuFramePool,
    /// Why frames run as plain launches, once capturing a graph failed
    /// (the engine could not be captured, or the driver refused).
    graphs_off: Option<String>,
}

/// Where a frame's bytes are.
enum Source<'a> {
    /// Anywhere: copied into the letterbox's own frame buffer.
    Copy(&'a [u8]),
    /// In a buffer of this detector's pool, read in place.
    Lent(&'a GpuFrame),
}

impl Source<'_> {
    /// Which frame buffer the GPU's work reads: a captured graph holds its
    /// address, so each buffer has its own graph.
    fn key(&self) -> usize {
        match self {
            Source::Copy(_) => 0,
            Source::Lent(frame) => frame.bytes().as_ptr() as usize,
        }
    }
}

/// The buffers for one frame layout, and the CUDA graphs over them.
struct Prepared {
    layout: FrameLayout,
    plan: Letterbox,
    letterbox: GpuLetterbox,
    decoder: GpuDecoder,
    /// Frames run since this layout was prepared: the first runs as plain
    /// launches (TensorRT settles a new shape on its first enqueue, before
    /// it can be captured).
    frames: u64,
    /// One graph per frame buffer read, by [`Source::key`].
    graphs: Vec<(usize, Graph)>,
}

impl<E: DeviceEngine> GpuDetector<E> {
    /// Wraps `engine`, checking that it looks like a YOLOv8 detector for
    /// `model`'s classes (an [`InferError::NotYolo`] where not).
    pub fn new(
        gpu: &Arc<Gpu>,
        engine: E,
        model: &ModelConfig,
        memory: MemoryMode,
    ) -> Result<Self, InferError> {
        let info = |tensor: &crate::EngineTensor| TensorInfo {
            name: tensor.name.clone(),
            shape: Some(tensor.shape.clone()),
        };
        let io = ModelIo {
            model: engine.name(),
            inputs: vec![info(engine.input())],
            outputs: vec![info(engine.output())],
        };
        let classes = model.classes.len();
        let yolo = yolo_io(&io, classes, model.input_size)?;
        let event = || {
            gpu.context
                .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(driver("create an event"))
                .map_err(run_failed)
        };
        let events = [event()?, event()?, event()?, event()?];
        Ok(GpuDetector {
            gpu: gpu.clone(),
            engine,
            memory,
            classes,
            input_shape: yolo.input_shape,
            params: DecodeParams::for_model(model),
            prepared: None,
            events,
            last: GpuTimes::default(),
            pool: GpuFramePool::new(gpu, memory),
            graphs_off: None,
        })
    }

    /// Runs each frame's work as one CUDA graph (the default) or, with
    /// `false`, as a launch per step (`[engine] cuda_graph = false`).
    pub fn with_graphs(mut self, enabled: bool) -> Self {
        self.graphs_off =
            (!enabled).then(|| "off in the configuration ([engine] cuda_graph = false)".into());
        self
    }

    /// How the last frame was placed in the engine's input.
    pub fn letterbox(&self) -> Option<Letterbox> {
        self.prepared.as_ref().map(|prepared| prepared.plan)
    }

    /// Where the last frame's time went.
    pub fn last_times(&self) -> GpuTimes {
        self.last
    }

    /// Why frames run as a launch per step rather than as one CUDA graph;
    /// `None` while graphs serve (or none was tried yet).
    pub fn graph_fallback(&self) -> Option<&str> {
        self.graphs_off.as_deref()
    }

    /// Whether frames reach the GPU without a copy by the driver (mapped
    /// memory): the frame is written once, where the GPU reads it.
    pub fn is_zero_copy(&self) -> bool {
        self.memory == MemoryMode::Mapped
    }

    /// Buffers for frames of `layout`, and the engine readied for the
    /// letterboxed shape.
    fn prepare(&mut self, layout: FrameLayout) -> Result<&mut Prepared, InferError> {
        let fits = self
            .prepared
            .as_ref()
            .is_some_and(|prepared| prepared.layout == layout);
        if !fits {
            let (width, height) = (layout.width, layout.height);
            let plan = Letterbox::plan(width, height, self.input_shape)?;
            let shape = [1, 3, plan.input_height as usize, plan.input_width as usize];
            let output_shape =
                self.engine
                    .set_input_shape(shape)
                    .map_err(|error| InferError::PrepareShape {
                        shape: shape.to_vec(),
                        reason: error.to_string(),
                    })?;
            let anchors = yolo_anchors(&self.engine.name(), &output_shape, self.classes, &plan)?;
            let letterbox = GpuLetterbox::new(
                &self.gpu,
                layout,
                plan,
                self.engine.input().element,
                self.memory,
            )
            .map_err(run_failed)?;
            let decoder =
                GpuDecoder::new(&self.gpu, self.classes, anchors, self.params, self.memory)
                    .map_err(run_failed)?
                    .with_output_type(self.engine.output().element);
            self.prepared = Some(Prepared {
                layout,
                plan,
                letterbox,
                decoder,
                frames: 0,
                graphs: Vec::new(),
            });
        }
        Ok(self.prepared.as_mut().expect("prepared above"))
    }

    /// Detections in a camera frame of `layout` (RGB, BGR, YUYV or NV12,
    /// any stride) held in `bytes`, which are copied once into the buffer
    /// the GPU reads (mapped memory on Jetson).
    pub fn detect_raw(
        &mut self,
        layout: FrameLayout,
        bytes: &[u8],
    ) -> Result<(Vec<Detection>, DetectorTimes), InferError> {
        self.run(layout, Source::Copy(bytes))
    }

    /// Frame buffers for the camera: a frame written into one (in its own
    /// layout) reaches the letterbox kernel with no further copy.
    pub fn lend_frame_buffers(&self) -> Arc<dyn FramePool> {
        self.pool.share()
    }

    fn run(
        &mut self,
        layout: FrameLayout,
        source: Source<'_>,
    ) -> Result<(Vec<Detection>, DetectorTimes), InferError> {
        // A copied frame must be exactly the layout; a lent buffer may be
        // larger (the pool keeps buffers of an earlier, larger size).
        let (held, fits) = match source {
            Source::Copy(bytes) => (bytes.len(), bytes.len() == layout.byte_len()),
            Source::Lent(frame) => (
                frame.bytes().len(),
                frame.bytes().len() >= layout.byte_len(),
            ),
        };
        if !fits {
            return Err(InferError::FrameGeometry {
                width: layout.width,
                height: layout.height,
                reason: format!(
                    "{held} bytes for a {:?} frame of {}",
                    layout.format,
                    layout.byte_len()
                ),
            });
        }
        let started = Instant::now();
        let gpu = self.gpu.clone();
        // The line runs detectors on its inference thread, not the one that
        // built them: the driver calls below need the context current here.
        gpu.context
            .bind_to_thread()
            .map_err(driver("bind the context"))
            .map_err(run_failed)?;
        let stream = gpu.stream();
        self.prepare(layout)?;
        let Self {
            engine,
            prepared,
            events,
            graphs_off,
            ..
        } = self;
        let prepared = prepared.as_mut().expect("prepared");
        let in_place = matches!(source, Source::Lent(_));
        let copy_started = Instant::now();
        if let Source::Copy(bytes) = source {
            prepared.letterbox.frame_mut().copy_from_slice(bytes);
        }
        let frame_copy = copy_started.elapsed();
        let key = source.key();
        let warm = prepared.frames > 0;
        prepared.frames += 1;
        let graph = if graphs_off.is_some() || !warm {
            None
        } else if let Some(at) = prepared.graphs.iter().position(|(held, _)| *held == key) {
            Some(at)
        } else {
            // One frame's work over this buffer, captured, not run.
            let captured = capture_graph(stream, || {
                enqueue_frame(stream, engine, prepared, events, &source, Record::Captured)
            });
            match captured {
                Ok(graph) => {
                    if prepared.graphs.len() == GRAPHS_KEPT {
                        prepared.graphs.remove(0);
                    }
                    prepared.graphs.push((key, graph));
                    Some(prepared.graphs.len() - 1)
                }
                Err(error) => {
                    tracing::warn!(
                        engine = %engine.name(),
                        %error,
                        "the GPU line cannot run as a CUDA graph: plain launches, one per step"
                    );
                    *graphs_off = Some(error.to_string());
                    None
                }
            }
        };
        match graph {
            Some(at) => prepared.graphs[at].1.launch().map_err(run_failed)?,
            None => enqueue_frame(stream, engine, prepared, events, &source, Record::Plain)
                .map_err(run_failed)?,
        }
        let Prepared { plan, decoder, .. } = prepared;
        let candidates = decoder.results().map_err(run_failed)?;
        let detections = candidates
            .iter()
            .map(|candidate| plan.to_detection(candidate))
            .collect();
        let host = started.elapsed();
        let between = |from: usize, to: usize| {
            events[from]
                .elapsed_ms(&events[to])
                .map(|ms| Duration::from_secs_f64(f64::from(ms.max(0.0)) * 1e-3))
                .map_err(driver("time events"))
                .map_err(run_failed)
        };
        let times = DetectorTimes {
            preprocess: between(0, 1)?,
            inference: between(1, 2)?,
            postprocess: between(2, 3)?,
        };
        self.last = GpuTimes {
            host,
            frame_copy,
            engine: times.inference,
            in_place,
            graph: graph.is_some(),
        };
        Ok((detections, times))
    }
}

impl<E: DeviceEngine> Detect for GpuDetector<E> {
    fn detect(&mut self, frame: &Frame) -> Result<(Vec<Detection>, DetectorTimes), InferError> {
        if let Pixels::Camera { layout, buffer } = &frame.pixels
            && let Some(lent) = buffer.as_any().downcast_ref::<GpuFrame>()
            && self.pool.owns(lent)
        {
            return self.run(*layout, Source::Lent(lent));
        }
        let (layout, bytes) = frame.layout_and_bytes();
        self.run(layout, Source::Copy(bytes))
    }

    fn frame_pool(&self) -> Option<Arc<dyn FramePool>> {
        Some(self.lend_frame_buffers())
    }
}

/// How [`enqueue_frame`] marks the stages with the detector's events.
#[derive(Clone, Copy)]
enum Record {
    /// On the stream, as it runs.
    Plain,
    /// As event-record nodes of the graph being captured.
    Captured,
}

/// Enqueues one frame's work on `stream`: the letterbox (after the frame's
/// upload on a discrete GPU), the engine, decode and NMS, the results'
/// download; an event before and after each stage.
fn enqueue_frame<E: DeviceEngine>(
    stream: &Arc<CudaStream>,
    engine: &mut E,
    prepared: &mut Prepared,
    events: &[CudaEvent; 4],
    source: &Source<'_>,
    record: Record,
) -> Result<(), GpuError> {
    let mark = |event: &CudaEvent| match record {
        Record::Plain => event.record(stream).map_err(driver("record an event")),
        // SAFETY: both handles are live; the flag makes the record a node
        // of the capture instead of a capture dependency.
        Record::Captured => unsafe {
            cudarc::driver::sys::cuEventRecordWithFlags(
                event.cu_event(),
                stream.cu_stream(),
                CUevent_record_flags::CU_EVENT_RECORD_EXTERNAL as u32,
            )
        }
        .result()
        .map_err(driver("record an event into the graph")),
    };
    let Prepared {
        letterbox, decoder, ..
    } = prepared;
    mark(&events[0])?;
    match source {
        Source::Copy(_) => letterbox.enqueue(),
        Source::Lent(frame) => letterbox.enqueue_from(frame.buffer()),
    }?;
    mark(&events[1])?;
    // SAFETY: the tensor and the output live in `prepared` until the next
    // frame size (which drops the graphs too), and the caller waits for
    // the stream before the next frame.
    unsafe {
        engine.enqueue(
            letterbox.tensor().pointer(),
            decoder.output().pointer(),
            stream,
        )
    }
    .map_err(|source| GpuError::Engine {
        action: "run",
        source,
    })?;
    mark(&events[2])?;
    decoder.enqueue()?;
    mark(&events[3])
}

fn run_failed(error: impl std::fmt::Display) -> InferError {
    InferError::Run {
        reason: error.to_string(),
    }
}
