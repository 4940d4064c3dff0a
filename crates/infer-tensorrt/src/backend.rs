use std::sync::Arc;

use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaContext, CudaGraph, CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use edgesort_infer::{Backend, InferError, ModelIo, TensorInfo};
use tensorrt_sys::{Context, Engine, TensorRt};

/// A deserialized engine running on its own CUDA stream.
pub struct TensorRtBackend {
    // Field order is drop order: the graph and the context go before the
    // engine they were made from, which the boxed engine outlives.
    graph: Option<CapturedGraph>,
    use_graph: bool,
    context: Context<'static>,
    _engine: Box<Engine>,
    stream: Arc<CudaStream>,
    io: ModelIo,
    input_name: String,
    output_name: String,
    input_shape: Vec<usize>,
    host_input: Vec<f32>,
    host_output: Vec<f32>,
    output_shape: Vec<usize>,
    device_input: Option<CudaSlice<f32>>,
    device_output: Option<CudaSlice<f32>>,
}

/// A captured inference.
struct CapturedGraph(CudaGraph);

// SAFETY: CUDA graphs are not tied to a thread; they only must not be used
// from two threads at once, and the backend reaches its graph through
// `&mut self` alone.
unsafe impl Send for CapturedGraph {}

/// Why the backend cannot be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum TensorRtBackendError {
    /// TensorRT refused the plan or the context.
    #[error(transparent)]
    TensorRt(#[from] tensorrt_sys::TensorRtError),
    /// The CUDA driver failed.
    #[error("CUDA: {0:?}")]
    Cuda(cudarc::driver::DriverError),
    /// libcuda could not be loaded.
    #[error("no CUDA driver: libcuda.so could not be loaded")]
    NoCudaDriver,
    /// Stream capture produced no graph.
    #[error("CUDA graph capture produced no graph")]
    EmptyGraph,
    /// The engine is not one image in, one detection tensor out.
    #[error("the engine has {inputs} inputs and {outputs} outputs; a detector has 1 and 1")]
    NotADetector {
        /// Inputs found.
        inputs: usize,
        /// Outputs found.
        outputs: usize,
    },
}

impl TensorRtBackend {
    /// Deserializes `plan` and readies a context on a new stream of GPU 0.
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
        let info = |tensor: &tensorrt_sys::IoTensor| TensorInfo {
            name: tensor.name.clone(),
            shape: Some(
                tensor
                    .dims
                    .iter()
                    .map(|&dim| usize::try_from(dim).ok())
                    .collect(),
            ),
        };
        let io = ModelIo {
            model: "TensorRT engine".to_owned(),
            inputs: vec![info(input)],
            outputs: vec![info(output)],
        };
        let context = engine.create_context()?;
        // SAFETY: the context borrows the engine, which is boxed (its
        // address never moves) and dropped after the context (field order).
        let context: Context<'static> = unsafe { std::mem::transmute(context) };
        // cudarc panics when it cannot load libcuda; ask first.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(TensorRtBackendError::NoCudaDriver);
        }
        let stream = CudaContext::new(0)
            .and_then(|cuda| cuda.new_stream())
            .map_err(TensorRtBackendError::Cuda)?;
        Ok(TensorRtBackend {
            graph: None,
            use_graph: false,
            context,
            _engine: engine,
            stream,
            input_name: input.name.clone(),
            output_name: output.name.clone(),
            io,
            input_shape: Vec::new(),
            host_input: Vec::new(),
            host_output: Vec::new(),
            output_shape: Vec::new(),
            device_input: None,
            device_output: None,
        })
    }

    /// Replays each inference as a CUDA graph captured on the first run of
    /// a shape: one launch instead of one per kernel, which matters for a
    /// small model on Orin. Engines that cannot be captured (DLA ones, for
    /// instance) fall back to plain enqueues with a warning.
    pub fn with_cuda_graph(mut self, enabled: bool) -> Self {
        self.use_graph = enabled;
        self
    }

    fn resize(&mut self, shape: &[usize]) -> Result<(), TensorRtBackendError> {
        self.graph = None;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        self.context.set_input_shape(&self.input_name, &dims)?;
        let output_dims = self.context.tensor_shape(&self.output_name)?;
        self.output_shape = output_dims.iter().map(|&d| d.max(0) as usize).collect();
        let input_len = shape.iter().product();
        let output_len = self.output_shape.iter().product();
        let cuda = |error| TensorRtBackendError::Cuda(error);
        self.device_input = Some(self.stream.alloc_zeros::<f32>(input_len).map_err(cuda)?);
        self.device_output = Some(self.stream.alloc_zeros::<f32>(output_len).map_err(cuda)?);
        self.host_input = vec![0.0; input_len];
        self.host_output = vec![0.0; output_len];
        self.input_shape = shape.to_vec();
        let (Some(device_input), Some(device_output)) =
            (self.device_input.as_mut(), self.device_output.as_mut())
        else {
            unreachable!("allocated above");
        };
        let (input_ptr, _input_sync) = device_input.device_ptr(&self.stream);
        let (output_ptr, _output_sync) = device_output.device_ptr_mut(&self.stream);
        // SAFETY: both buffers are sized for this shape and live as long as
        // the context uses them: until the next resize replaces them, or
        // the backend drops, after the last run has been waited for.
        unsafe {
            self.context
                .set_tensor_address(&self.input_name, input_ptr as *mut _)?;
            self.context
                .set_tensor_address(&self.output_name, output_ptr as *mut _)?;
        }
        Ok(())
    }

    fn enqueue(&mut self) -> Result<(), TensorRtBackendError> {
        let stream = self.stream.cu_stream() as *mut _;
        if let Some(graph) = &self.graph {
            return graph.0.launch().map_err(TensorRtBackendError::Cuda);
        }
        // SAFETY: every tensor address was set in `resize`; the caller
        // waits for the stream before touching the buffers.
        unsafe { self.context.enqueue(stream)? };
        if self.use_graph {
            // TensorRT sets itself up on the first enqueue of a shape, which
            // must not be captured; the second is.
            match self.capture(stream) {
                Ok(graph) => self.graph = Some(CapturedGraph(graph)),
                Err(error) => {
                    tracing::warn!(%error, "CUDA graph capture failed; enqueueing directly");
                    self.use_graph = false;
                }
            }
        }
        Ok(())
    }

    fn capture(
        &mut self,
        stream: *mut std::ffi::c_void,
    ) -> Result<CudaGraph, TensorRtBackendError> {
        let cuda = TensorRtBackendError::Cuda;
        self.stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(cuda)?;
        // SAFETY: as in `enqueue`; during capture nothing runs yet.
        let enqueued = unsafe { self.context.enqueue(stream) };
        let graph = self
            .stream
            .end_capture(CUgraphInstantiate_flags(0))
            .map_err(cuda)?;
        enqueued?;
        graph.ok_or(TensorRtBackendError::EmptyGraph)
    }

    fn infer(&mut self) -> Result<(), TensorRtBackendError> {
        let cuda = |error| TensorRtBackendError::Cuda(error);
        let Some(device_input) = self.device_input.as_mut() else {
            // No input shape was ever set, so there is nothing to run.
            return Ok(());
        };
        self.stream
            .memcpy_htod(&self.host_input, device_input)
            .map_err(cuda)?;
        self.enqueue()?;
        let Some(device_output) = self.device_output.as_ref() else {
            unreachable!("allocated with the input");
        };
        self.stream
            .memcpy_dtoh(device_output, &mut self.host_output)
            .map_err(cuda)?;
        self.stream.synchronize().map_err(cuda)
    }
}

impl Backend for TensorRtBackend {
    fn io(&self) -> &ModelIo {
        &self.io
    }

    fn input_mut(&mut self, name: &str, shape: &[usize]) -> Result<&mut [f32], InferError> {
        if name != self.input_name {
            return Err(InferError::UnknownTensor {
                name: name.to_owned(),
            });
        }
        if shape != self.input_shape {
            self.resize(shape)
                .map_err(|error| InferError::PrepareShape {
                    shape: shape.to_vec(),
                    reason: error.to_string(),
                })?;
        }
        Ok(&mut self.host_input)
    }

    fn run(&mut self) -> Result<(), InferError> {
        self.infer().map_err(|error| InferError::Run {
            reason: error.to_string(),
        })
    }

    fn output(&self, name: &str) -> Result<(&[f32], &[usize]), InferError> {
        if name != self.output_name {
            return Err(InferError::UnknownTensor {
                name: name.to_owned(),
            });
        }
        Ok((&self.host_output, &self.output_shape))
    }
}
