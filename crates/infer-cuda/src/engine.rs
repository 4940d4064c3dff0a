use std::sync::Arc;

use cudarc::driver::CudaStream;
use cudarc::driver::sys::CUdeviceptr;

use crate::TensorType;

/// An engine's own error, in its own words.
pub type EngineError = Box<dyn std::error::Error + Send + Sync>;

/// One input or output of an engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineTensor {
    /// Its name in the model.
    pub name: String,
    /// Its element type.
    pub element: TensorType,
    /// Its shape; `None` where the input shape decides.
    pub shape: Vec<Option<usize>>,
}

/// The seam between the GPU detector and an inference engine: "run on
/// these device buffers, on this stream". TensorRT implements it on a box
/// (`edgesort_infer_tensorrt::TensorRtEngine`); tests and the benchmark use
/// [`crate::RecordedOutputEngine`], a double.
pub trait DeviceEngine: Send {
    /// What the engine is, for messages.
    fn name(&self) -> String;

    /// The image input.
    fn input(&self) -> &EngineTensor;

    /// The detection output.
    fn output(&self) -> &EngineTensor;

    /// Readies the engine for an input of `shape` (NCHW) and returns the
    /// output's shape for it. Slow the first time for a shape.
    fn set_input_shape(&mut self, shape: [usize; 4]) -> Result<Vec<usize>, EngineError>;

    /// Enqueues one inference on `stream`: it reads `input` and writes
    /// `output`, device buffers sized for the last shape set.
    ///
    /// # Safety
    ///
    /// Both buffers must stay allocated, and nothing else may write them,
    /// until `stream` has run past the enqueued work.
    unsafe fn enqueue(
        &mut self,
        input: CUdeviceptr,
        output: CUdeviceptr,
        stream: &Arc<CudaStream>,
    ) -> Result<(), EngineError>;
}

impl<E: DeviceEngine + ?Sized> DeviceEngine for Box<E> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn input(&self) -> &EngineTensor {
        (**self).input()
    }

    fn output(&self) -> &EngineTensor {
        (**self).output()
    }

    fn set_input_shape(&mut self, shape: [usize; 4]) -> Result<Vec<usize>, EngineError> {
        (**self).set_input_shape(shape)
    }

    unsafe fn enqueue(
        &mut self,
        input: CUdeviceptr,
        output: CUdeviceptr,
        stream: &Arc<CudaStream>,
    ) -> Result<(), EngineError> {
        // SAFETY: the caller's promise, passed on.
        unsafe { (**self).enqueue(input, output, stream) }
    }
}
