use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use edgesort_infer::{Backend, InferError, ModelIo, TensorInfo};
use edgesort_infer_cuda::{DeviceEngine, TensorType};
use tensorrt_sys::TensorRt;

use crate::TensorRtEngine;

/// A deserialized engine behind the CPU detector's [`Backend`] seam: host
/// tensors copied in and out around each run, on a stream of its own. The
/// line serves engines through the GPU detector instead
/// (`edgesort_infer_cuda::GpuDetector` over [`TensorRtEngine`]); this one
/// checks a new engine against the CPU reference at provisioning, where
/// the detector's CPU decode is the reference's own.
pub struct TensorRtBackend {
    engine: TensorRtEngine,
    stream: Arc<CudaStream>,
    io: ModelIo,
    input_shape: Vec<usize>,
    host_input: Vec<f32>,
    host_output: Vec<f32>,
    output_shape: Vec<usize>,
    device_input: Option<CudaSlice<f32>>,
    device_output: Option<CudaSlice<f32>>,
}

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
    /// The engine failed to take a shape or to run.
    #[error("TensorRT engine: {0}")]
    Engine(edgesort_infer_cuda::EngineError),
    /// An input or output has an element type the line cannot feed or read.
    #[error("engine tensor {name:?} is {found}; the line feeds and reads FP32 or FP16")]
    TensorType {
        /// The tensor.
        name: String,
        /// Its type.
        found: String,
    },
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
        let engine = TensorRtEngine::deserialize(tensorrt, plan, dla_core)?;
        for tensor in [engine.input(), engine.output()] {
            if tensor.element != TensorType::F32 {
                return Err(TensorRtBackendError::TensorType {
                    name: tensor.name.clone(),
                    found: "FP16 (the host-copy backend takes FP32 only)".into(),
                });
            }
        }
        let info = |tensor: &edgesort_infer_cuda::EngineTensor| TensorInfo {
            name: tensor.name.clone(),
            shape: Some(tensor.shape.clone()),
        };
        let io = ModelIo {
            model: "TensorRT engine".to_owned(),
            inputs: vec![info(engine.input())],
            outputs: vec![info(engine.output())],
        };
        // cudarc panics when it cannot load libcuda; ask first.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(TensorRtBackendError::NoCudaDriver);
        }
        let stream = CudaContext::new(0)
            .and_then(|cuda| cuda.new_stream())
            .map_err(TensorRtBackendError::Cuda)?;
        Ok(TensorRtBackend {
            engine,
            stream,
            io,
            input_shape: Vec::new(),
            host_input: Vec::new(),
            host_output: Vec::new(),
            output_shape: Vec::new(),
            device_input: None,
            device_output: None,
        })
    }

    /// Replays each inference as a CUDA graph ([`TensorRtEngine::with_cuda_graph`]).
    pub fn with_cuda_graph(mut self, enabled: bool) -> Self {
        self.engine = self.engine.with_cuda_graph(enabled);
        self
    }

    fn resize(&mut self, shape: &[usize]) -> Result<(), TensorRtBackendError> {
        let nchw: [usize; 4] = shape.try_into().map_err(|_| {
            TensorRtBackendError::Engine(format!("input shape {shape:?} is not NCHW").into())
        })?;
        self.output_shape = self
            .engine
            .set_input_shape(nchw)
            .map_err(TensorRtBackendError::Engine)?;
        let input_len = shape.iter().product();
        let output_len = self.output_shape.iter().product();
        let cuda = TensorRtBackendError::Cuda;
        self.device_input = Some(self.stream.alloc_zeros::<f32>(input_len).map_err(cuda)?);
        self.device_output = Some(self.stream.alloc_zeros::<f32>(output_len).map_err(cuda)?);
        self.host_input = vec![0.0; input_len];
        self.host_output = vec![0.0; output_len];
        self.input_shape = shape.to_vec();
        Ok(())
    }

    fn infer(&mut self) -> Result<(), TensorRtBackendError> {
        let cuda = TensorRtBackendError::Cuda;
        let (Some(device_input), Some(device_output)) =
            (self.device_input.as_mut(), self.device_output.as_mut())
        else {
            // No input shape was ever set, so there is nothing to run.
            return Ok(());
        };
        self.stream
            .memcpy_htod(&self.host_input, device_input)
            .map_err(cuda)?;
        {
            let (input, _input_sync) = device_input.device_ptr(&self.stream);
            let (output, _output_sync) = device_output.device_ptr_mut(&self.stream);
            // SAFETY: both buffers are sized for this shape and live until
            // the next resize; the stream is waited for below.
            unsafe { self.engine.enqueue(input, output, &self.stream) }
                .map_err(TensorRtBackendError::Engine)?;
        }
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
        if name != self.engine.input().name {
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
        if name != self.engine.output().name {
            return Err(InferError::UnknownTensor {
                name: name.to_owned(),
            });
        }
        Ok((&self.host_output, &self.output_shape))
    }
}
