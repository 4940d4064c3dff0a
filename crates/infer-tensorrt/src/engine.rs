use std::sync::Arc;

use cudarc::driver::CudaStream;
use cudarc::driver::sys::CUdeviceptr;
use edgesort_infer_cuda::{
    DeviceEngine, EngineError, EngineTensor, GpuError, Graph, TensorType, capture_graph,
};
use tensorrt_sys::{Context, DataType, Engine, IoTensor, TensorRt};

use crate::TensorRtBackendError;

/// A deserialized engine that runs on the device buffers and the stream it
/// is given: the [`DeviceEngine`] the GPU detector drives, and the core of
/// [`crate::TensorRtBackend`].
pub struct TensorRtEngine {
    // Field order is drop order: the graph and the context go before the
    // engine they were made from, which the boxed engine outlives.
    graph: Option<CapturedGraph>,
    use_graph: bool,
    context: Context<'static>,
    _engine: Box<Engine>,
    input: EngineTensor,
    output: EngineTensor,
    /// The shape set, and the addresses bound for it.
    shape: Option<[usize; 4]>,
    bound: Option<(CUdeviceptr, CUdeviceptr)>,
}

/// A captured inference, for the addresses it was captured with.
struct CapturedGraph {
    graph: Graph,
    bound: (CUdeviceptr, CUdeviceptr),
}

impl TensorRtEngine {
    /// Deserializes `plan` for DLA core `dla_core` (if any): one image in,
    /// one detection tensor out, FP32 or FP16.
    pub fn deserialize(
        tensorrt: &TensorRt,
        plan: &[u8],
        dla_core: Option<u32>,
    ) -> Result<Self, TensorRtBackendError> {
        let engine = Box::new(tensorrt.deserialize(plan, dla_core)?);
        let tensors = engine.io_tensors();
        let (inputs, outputs): (Vec<_>, Vec<_>) = tensors.iter().partition(|t| t.is_input);
        let ([input], [output]) = (inputs.as_slice(), outputs.as_slice()) else {
            return Err(TensorRtBackendError::NotADetector {
                inputs: inputs.len(),
                outputs: outputs.len(),
            });
        };
        let (input, output) = (tensor(input)?, tensor(output)?);
        let context = engine.create_context()?;
        // SAFETY: the context borrows the engine, which is boxed (its
        // address never moves) and dropped after the context (field order).
        let context: Context<'static> = unsafe { std::mem::transmute(context) };
        Ok(TensorRtEngine {
            graph: None,
            use_graph: false,
            context,
            _engine: engine,
            input,
            output,
            shape: None,
            bound: None,
        })
    }

    /// Replays each inference as a CUDA graph captured on the second run
    /// with the same buffers: one launch instead of one per kernel, which
    /// matters for a small model on Orin. Engines that cannot be captured
    /// (DLA ones, for instance) fall back to plain enqueues with a warning.
    /// For [`crate::TensorRtBackend`] (validation); the GPU detector leaves
    /// it off and captures the engine in each frame's graph instead.
    pub fn with_cuda_graph(mut self, enabled: bool) -> Self {
        self.use_graph = enabled;
        self
    }

    fn capture(&mut self, stream: &Arc<CudaStream>) -> Result<Graph, GpuError> {
        // SAFETY: as in `enqueue`; during capture nothing runs yet.
        capture_graph(stream, || unsafe {
            self.context.enqueue(stream.cu_stream() as *mut _)
        })
    }
}

/// An I/O tensor as the GPU detector sees it.
fn tensor(tensor: &IoTensor) -> Result<EngineTensor, TensorRtBackendError> {
    let element = match tensor.data_type {
        DataType::Float => TensorType::F32,
        DataType::Half => TensorType::F16,
        other => {
            return Err(TensorRtBackendError::TensorType {
                name: tensor.name.clone(),
                found: format!("{other:?}"),
            });
        }
    };
    Ok(EngineTensor {
        name: tensor.name.clone(),
        element,
        shape: tensor
            .dims
            .iter()
            .map(|&dim| usize::try_from(dim).ok())
            .collect(),
    })
}

impl DeviceEngine for TensorRtEngine {
    fn name(&self) -> String {
        "TensorRT engine".into()
    }

    fn input(&self) -> &EngineTensor {
        &self.input
    }

    fn output(&self) -> &EngineTensor {
        &self.output
    }

    fn set_input_shape(&mut self, shape: [usize; 4]) -> Result<Vec<usize>, EngineError> {
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        self.context.set_input_shape(&self.input.name, &dims)?;
        let output = self.context.tensor_shape(&self.output.name)?;
        self.shape = Some(shape);
        self.bound = None;
        self.graph = None;
        Ok(output.iter().map(|&d| d.max(0) as usize).collect())
    }

    unsafe fn enqueue(
        &mut self,
        input: CUdeviceptr,
        output: CUdeviceptr,
        stream: &Arc<CudaStream>,
    ) -> Result<(), EngineError> {
        if self.shape.is_none() {
            return Err("no input shape set".into());
        }
        if self.bound != Some((input, output)) {
            // SAFETY: the caller's promise: both buffers hold this shape
            // and outlive the enqueued work.
            unsafe {
                self.context
                    .set_tensor_address(&self.input.name, input as *mut _)?;
                self.context
                    .set_tensor_address(&self.output.name, output as *mut _)?;
            }
            self.bound = Some((input, output));
        }
        if let Some(graph) = &mut self.graph
            && graph.bound == (input, output)
        {
            return Ok(graph.graph.launch()?);
        }
        // SAFETY: every tensor address is set; the caller waits for the
        // stream before touching the buffers.
        unsafe { self.context.enqueue(stream.cu_stream() as *mut _)? };
        if self.use_graph {
            // TensorRT sets itself up on the first enqueue of a shape, which
            // must not be captured; the next one is.
            match self.capture(stream) {
                Ok(graph) => {
                    self.graph = Some(CapturedGraph {
                        graph,
                        bound: (input, output),
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "CUDA graph capture failed; enqueueing directly");
                    self.use_graph = false;
                }
            }
        }
        Ok(())
    }
}
