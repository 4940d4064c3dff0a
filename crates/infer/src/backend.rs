use crate::InferError;

/// Name and shape of one model input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name in the model graph.
    pub name: String,
    /// Axis sizes, `None` where the model leaves the size open; the whole
    /// shape is `None` when even the rank is only known once the model runs.
    pub shape: Option<Vec<Option<usize>>>,
}

/// A model's named inputs and outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelIo {
    /// Model name for messages (usually its file path).
    pub model: String,
    /// Inputs in graph order.
    pub inputs: Vec<TensorInfo>,
    /// Outputs in graph order.
    pub outputs: Vec<TensorInfo>,
}

/// An inference engine that runs one model.
///
/// The backend owns its input and output memory and lends it out by tensor
/// name, the way TensorRT binds named tensors to addresses: the preprocessor
/// writes straight into the input tensor and the decoder reads straight from
/// the output, so no frame-sized copy happens between stages. A TensorRT
/// backend lends host-mapped memory on Jetson (one physical memory for CPU and
/// GPU) and a pinned staging buffer on a discrete GPU. Shapes are full
/// NCHW shapes, batch included.
pub trait Backend: Send {
    /// The model's inputs and outputs.
    fn io(&self) -> &ModelIo;

    /// Readies input `name` for `shape` and lends its memory for writing.
    /// The first call for a new shape may be slow (plan optimisation).
    fn input_mut(&mut self, name: &str, shape: &[usize]) -> Result<&mut [f32], InferError>;

    /// Runs the model on the inputs written since the last run.
    fn run(&mut self) -> Result<(), InferError>;

    /// Lends output `name` of the last run, with its shape.
    fn output(&self, name: &str) -> Result<(&[f32], &[usize]), InferError>;
}

/// A backend chosen at run time (tract or TensorRT) is still a backend.
impl<B: Backend + ?Sized> Backend for Box<B> {
    fn io(&self) -> &ModelIo {
        (**self).io()
    }

    fn input_mut(&mut self, name: &str, shape: &[usize]) -> Result<&mut [f32], InferError> {
        (**self).input_mut(name, shape)
    }

    fn run(&mut self) -> Result<(), InferError> {
        (**self).run()
    }

    fn output(&self, name: &str) -> Result<(&[f32], &[usize]), InferError> {
        (**self).output(name)
    }
}
