//! The CPU inference backend, on tract.
//!
//! [`TractBackend`] loads an ONNX model, reports its named inputs and outputs
//! (dynamic axes as `None`), and implements [`edgesort_infer::Backend`]. A
//! dynamic model is specialised and optimised for each new input shape the
//! first time it is asked for (about a second for YOLOv8n); the plan for the
//! last shape is kept, since a camera's frame size does not change.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use edgesort_infer::{Backend, InferError, ModelIo, TensorInfo};
use tract_linalg::multithread::{Executor, multithread_tract_scope};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

/// A model run by tract on the CPU.
pub struct TractBackend {
    path: PathBuf,
    io: ModelIo,
    model: InferenceModel,
    plan: Option<(Vec<usize>, TypedSimpleState)>,
    /// Kept across runs: tract only borrows it, so the next frame is written
    /// into the same memory instead of a freshly zeroed tensor.
    input: Option<Arc<Tensor>>,
    /// Whether `input` was lent out for writing since the last run.
    input_written: bool,
    /// The last run's outputs, in the order of `io.outputs`.
    outputs: Vec<(Tensor, Vec<usize>)>,
    executor: Executor,
}

impl TractBackend {
    /// Loads the ONNX model at `path`.
    pub fn load(path: &Path) -> Result<Self, InferError> {
        if !path.is_file() {
            return Err(InferError::ModelNotFound {
                path: path.to_owned(),
            });
        }
        let load_error = |error: TractError| InferError::LoadModel {
            path: path.to_owned(),
            reason: format!("{error:#}"),
        };
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(load_error)?;
        // Propagate shapes through a copy of the graph so that outputs the
        // file leaves unannotated get a rank and, where fixed, sizes. The copy
        // only describes: its symbolic facts would clash with the concrete
        // input shapes plans are built for. A model that cannot be analysed
        // without concrete sizes is still fine: its first run checks it.
        let mut analysed = model.clone();
        if let Err(error) = analysed.analyse(false) {
            tracing::debug!(model = %path.display(), "shape analysis incomplete: {error:#}");
        }
        let describe = |outlets: &[OutletId], role: &str| -> Result<Vec<TensorInfo>, InferError> {
            outlets
                .iter()
                .map(|&outlet| {
                    let fact = analysed.outlet_fact(outlet).map_err(load_error)?;
                    let name = analysed
                        .outlet_label(outlet)
                        .unwrap_or(&analysed.node(outlet.node).name)
                        .to_owned();
                    if fact
                        .datum_type
                        .concretize()
                        .is_some_and(|datum| datum != f32::datum_type())
                    {
                        return Err(InferError::NotYolo {
                            model: path.display().to_string(),
                            reason: format!(
                                "{role} {name:?} is {:?}, expected f32",
                                fact.datum_type.concretize().unwrap_or(DatumType::F32)
                            ),
                        });
                    }
                    let shape = (!fact.shape.is_open()).then(|| {
                        fact.shape
                            .dims()
                            .map(|dim| dim.concretize().and_then(|dim| dim.to_usize().ok()))
                            .collect()
                    });
                    Ok(TensorInfo { name, shape })
                })
                .collect()
        };
        let io = ModelIo {
            model: path.display().to_string(),
            inputs: describe(analysed.input_outlets().map_err(load_error)?, "input")?,
            outputs: describe(analysed.output_outlets().map_err(load_error)?, "output")?,
        };
        Ok(TractBackend {
            path: path.to_owned(),
            io,
            model,
            plan: None,
            input: None,
            input_written: false,
            outputs: Vec::new(),
            executor: Executor::SingleThread,
        })
    }

    /// Also lends the intermediate tensors `names` after each run, as extra
    /// outputs: what calibration measures. Tract keeps every output it is
    /// asked for through its optimisations, so the model's own output is
    /// computed as before.
    pub fn observing(mut self, names: &[String]) -> Result<Self, InferError> {
        let mut outputs: Vec<String> = self
            .io
            .outputs
            .iter()
            .map(|info| info.name.clone())
            .collect();
        outputs.extend(names.iter().cloned());
        self.model
            .select_outputs_by_name(&outputs)
            .map_err(|error| InferError::LoadModel {
                path: self.path.clone(),
                reason: format!("cannot observe {names:?}: {error:#}"),
            })?;
        self.io.outputs.extend(names.iter().map(|name| TensorInfo {
            name: name.clone(),
            shape: None,
        }));
        self.plan = None;
        Ok(self)
    }

    /// Runs the model's matrix products on `threads` threads (1: on the
    /// caller's thread only).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.executor = if threads > 1 {
            Executor::multithread_with_name(threads, "tract-infer")
        } else {
            Executor::SingleThread
        };
        self
    }

    fn prepare(&mut self, shape: &[usize]) -> Result<(), InferError> {
        if self
            .plan
            .as_ref()
            .is_some_and(|(planned, _)| planned == shape)
        {
            return Ok(());
        }
        let shape_error = |error: TractError| InferError::PrepareShape {
            shape: shape.to_vec(),
            reason: format!("{error:#}"),
        };
        let state = self
            .model
            .clone()
            .with_input_fact(0, f32::fact(shape).into())
            .and_then(|model| model.into_optimized())
            .and_then(|model| model.into_runnable())
            .and_then(|plan| plan.spawn())
            .map_err(shape_error)?;
        tracing::info!(model = %self.path.display(), ?shape, "tract plan ready");
        self.plan = Some((shape.to_vec(), state));
        Ok(())
    }
}

impl Backend for TractBackend {
    fn io(&self) -> &ModelIo {
        &self.io
    }

    fn input_mut(&mut self, name: &str, shape: &[usize]) -> Result<&mut [f32], InferError> {
        if name != self.io.inputs[0].name {
            return Err(InferError::UnknownTensor {
                name: name.to_owned(),
            });
        }
        self.prepare(shape)?;
        // Reuse the last input when it has this shape and tract let go of it.
        let reusable = self
            .input
            .as_mut()
            .is_some_and(|input| input.shape() == shape && Arc::get_mut(input).is_some());
        if !reusable {
            let tensor = Tensor::zero::<f32>(shape).map_err(|error| InferError::PrepareShape {
                shape: shape.to_vec(),
                reason: format!("{error:#}"),
            })?;
            self.input = Some(Arc::new(tensor));
        }
        self.input_written = true;
        let input = self
            .input
            .as_mut()
            .and_then(Arc::get_mut)
            .expect("input allocated or found unshared above");
        input
            .to_plain_array_view_mut::<f32>()
            .map_err(|error| InferError::Run {
                reason: format!("{error:#}"),
            })?
            .into_slice()
            .ok_or_else(|| InferError::Run {
                reason: "tract allocated a non-contiguous input tensor".into(),
            })
    }

    fn run(&mut self) -> Result<(), InferError> {
        let run_error = |error: TractError| InferError::Run {
            reason: format!("{error:#}"),
        };
        let (Some((_, state)), Some(input), true) =
            (self.plan.as_mut(), self.input.as_ref(), self.input_written)
        else {
            return Err(InferError::Run {
                reason: "no input was written since the last run".into(),
            });
        };
        self.input_written = false;
        let input = Arc::clone(input);
        let mut outputs = multithread_tract_scope(self.executor.clone(), || {
            state.run(tvec![input.into_tvalue()])
        })
        .map_err(run_error)?;
        if outputs.len() != self.io.outputs.len() {
            return Err(InferError::Run {
                reason: format!(
                    "the model produced {} outputs, expected {}",
                    outputs.len(),
                    self.io.outputs.len()
                ),
            });
        }
        self.outputs = outputs
            .drain(..)
            .map(|output| {
                let output = output.into_tensor();
                let shape = output.shape().to_vec();
                (output, shape)
            })
            .collect();
        Ok(())
    }

    fn output(&self, name: &str) -> Result<(&[f32], &[usize]), InferError> {
        let index = self
            .io
            .outputs
            .iter()
            .position(|info| info.name == name)
            .ok_or_else(|| InferError::UnknownTensor {
                name: name.to_owned(),
            })?;
        let (tensor, shape) = self.outputs.get(index).ok_or_else(|| InferError::Run {
            reason: "the model has not run yet".into(),
        })?;
        let values = tensor
            .try_as_plain_ram()
            .and_then(|view| view.as_slice::<f32>())
            .map_err(|error| InferError::Run {
                reason: format!("{error:#}"),
            })?;
        Ok((values, shape))
    }
}
