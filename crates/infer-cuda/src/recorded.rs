//! TEST DOUBLES for the engine seam, so that the GPU line can be checked
//! against the CPU line without TensorRT: [`OutputRecorder`] keeps what a
//! CPU backend computed on each run, and [`RecordedOutputEngine`] writes it
//! back, run for run, into the GPU detector's output binding.

use std::sync::Arc;

use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{CudaFunction, CudaStream, LaunchConfig, PushKernelArg, result};
use edgesort_infer::{Backend, InferError, ModelIo};

use crate::error::driver;
use crate::memory::DeviceBuffer;
use crate::{DeviceEngine, EngineError, EngineTensor, Gpu, GpuError, TensorType};

/// TEST DOUBLE (a recorder): a CPU backend that keeps a copy of its output
/// after every run, with the input shape it ran on.
pub struct OutputRecorder<B> {
    backend: B,
    input_shape: Vec<usize>,
    runs: Vec<RecordedRun>,
}

/// One recorded run.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRun {
    /// The input shape, NCHW.
    pub input_shape: Vec<usize>,
    /// The output's shape.
    pub output_shape: Vec<usize>,
    /// The output, FP32.
    pub output: Vec<f32>,
}

impl<B: Backend> OutputRecorder<B> {
    /// Records `backend`'s runs.
    pub fn new(backend: B) -> Self {
        OutputRecorder {
            backend,
            input_shape: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// The runs so far, in order.
    pub fn runs(&self) -> &[RecordedRun] {
        &self.runs
    }
}

impl<B: Backend> Backend for OutputRecorder<B> {
    fn io(&self) -> &ModelIo {
        self.backend.io()
    }

    fn input_mut(&mut self, name: &str, shape: &[usize]) -> Result<&mut [f32], InferError> {
        self.input_shape = shape.to_vec();
        self.backend.input_mut(name, shape)
    }

    fn run(&mut self) -> Result<(), InferError> {
        self.backend.run()?;
        let name = self.backend.io().outputs[0].name.clone();
        let (output, shape) = self.backend.output(&name)?;
        self.runs.push(RecordedRun {
            input_shape: self.input_shape.clone(),
            output_shape: shape.to_vec(),
            output: output.to_vec(),
        });
        Ok(())
    }

    fn output(&self, name: &str) -> Result<(&[f32], &[usize]), InferError> {
        self.backend.output(name)
    }
}

/// TEST DOUBLE for an inference engine (it is no TensorRT): its n-th run
/// writes the n-th recorded output into the output binding, a copy on the
/// GPU from outputs uploaded once, and reads nothing. Which run comes next
/// is counted on the GPU, by its own two kernels, so that the double can be
/// captured into a CUDA graph and replayed as a real engine can. A GPU line over it
/// must decide exactly as the CPU line the outputs were recorded from. Past
/// the last recording it starts over (a benchmark feeding frames for a
/// minute).
pub struct RecordedOutputEngine {
    input: EngineTensor,
    output: EngineTensor,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    outputs: DeviceBuffer,
    values: usize,
    count: usize,
    /// The index of the next run, one u32 on the GPU.
    next: DeviceBuffer,
    replay: CudaFunction,
    advance: CudaFunction,
}

/// The double's kernels: `replay` copies run `*next` into the output,
/// `advance` moves `*next` on, after it in stream order.
const REPLAY_KERNELS: &str = r#"
extern "C" __global__ void replay(const float* runs, unsigned int values,
                                  const unsigned int* next, float* output) {
    const float* run = runs + (unsigned long long)(*next) * values;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < values;
         i += gridDim.x * blockDim.x) {
        output[i] = run[i];
    }
}

extern "C" __global__ void advance(unsigned int* next, unsigned int count) {
    *next = (*next + 1) % count;
}
"#;

impl RecordedOutputEngine {
    /// Uploads `runs` (one input shape, one output shape) for the tensors
    /// named `input` and `output`, FP32.
    pub fn new(
        gpu: &Arc<Gpu>,
        input: &str,
        output: &str,
        runs: &[RecordedRun],
    ) -> Result<Self, GpuError> {
        let first = runs
            .first()
            .ok_or_else(|| GpuError::Geometry("no recorded run to replay".into()))?;
        if let Some(other) = runs.iter().find(|run| {
            run.input_shape != first.input_shape || run.output_shape != first.output_shape
        }) {
            return Err(GpuError::Geometry(format!(
                "the recording mixes input shapes {:?} and {:?}",
                first.input_shape, other.input_shape
            )));
        }
        let values = first.output.len();
        let outputs = DeviceBuffer::new(&gpu.context, 4 * values * runs.len())?;
        let all: Vec<f32> = runs
            .iter()
            .flat_map(|run| run.output.iter().copied())
            .collect();
        // SAFETY: the buffer holds exactly these values.
        unsafe { result::memcpy_htod_sync(outputs.pointer(), &all) }
            .map_err(driver("upload the recorded outputs"))?;
        let next = DeviceBuffer::new(&gpu.context, 4)?;
        // SAFETY: the buffer holds one u32.
        unsafe { result::memset_d8_sync(next.pointer(), 0, 4) }
            .map_err(driver("reset the run counter"))?;
        let [replay, advance]: [CudaFunction; 2] = gpu
            .compile(REPLAY_KERNELS, &["replay", "advance"])?
            .try_into()
            .map_err(|_| GpuError::Geometry("two kernels asked for".into()))?;
        let dynamic = |shape: &[usize], fixed: usize| {
            shape
                .iter()
                .enumerate()
                .map(|(axis, &size)| (axis < fixed).then_some(size))
                .collect()
        };
        Ok(RecordedOutputEngine {
            input: EngineTensor {
                name: input.to_owned(),
                element: TensorType::F32,
                shape: dynamic(&first.input_shape, 2),
            },
            output: EngineTensor {
                name: output.to_owned(),
                element: TensorType::F32,
                shape: dynamic(&first.output_shape, 2),
            },
            input_shape: first.input_shape.clone(),
            output_shape: first.output_shape.clone(),
            outputs,
            values,
            count: runs.len(),
            next,
            replay,
            advance,
        })
    }
}

impl DeviceEngine for RecordedOutputEngine {
    fn name(&self) -> String {
        "recorded CPU outputs (engine test double)".into()
    }

    fn input(&self) -> &EngineTensor {
        &self.input
    }

    fn output(&self) -> &EngineTensor {
        &self.output
    }

    fn set_input_shape(&mut self, shape: [usize; 4]) -> Result<Vec<usize>, EngineError> {
        if shape[..] != self.input_shape[..] {
            return Err(format!(
                "outputs were recorded for input {:?}, not {shape:?}",
                self.input_shape
            )
            .into());
        }
        Ok(self.output_shape.clone())
    }

    unsafe fn enqueue(
        &mut self,
        _input: CUdeviceptr,
        output: CUdeviceptr,
        stream: &Arc<CudaStream>,
    ) -> Result<(), EngineError> {
        let runs = self.outputs.pointer();
        let next = self.next.pointer();
        let (values, count) = (self.values as u32, self.count as u32);
        let mut replay = stream.launch_builder(&self.replay);
        replay.arg(&runs).arg(&values).arg(&next).arg(&output);
        // SAFETY: the arguments are those the kernel declares; `output`
        // holds one output (the caller's promise), `runs` holds `count`.
        unsafe { replay.launch(LaunchConfig::for_num_elems(values)) }?;
        let mut advance = stream.launch_builder(&self.advance);
        advance.arg(&next).arg(&count);
        // SAFETY: as above; one thread moves the counter on.
        unsafe { advance.launch(LaunchConfig::for_num_elems(1)) }?;
        Ok(())
    }
}
