use std::sync::Arc;

use edgesort_infer::Detect;
use edgesort_infer_cuda::{Gpu, GpuDetector};
use edgesort_infer_tensorrt::{TensorRtBackendError, TensorRtEngine};
use edgesort_types::config::ModelConfig;
use tensorrt_sys::TensorRt;

/// Why a runtime could not load an engine, in its own words.
pub type RuntimeError = Box<dyn std::error::Error + Send + Sync>;

/// What turns a serialized engine into the line's detector: TensorRT on a
/// box ([`TensorRtRuntime`], with the GPU letterbox and decode around it);
/// a double in tests.
pub trait EngineRuntime: Send + Sync {
    /// Its name and version for the status, e.g. `TensorRT 10.3.0`.
    fn name(&self) -> String;

    /// Deserializes `plan` (for DLA core `dla_core`, if any) into a
    /// detector for `model`'s classes and thresholds. An engine whose
    /// inputs or outputs do not fit is an [`edgesort_infer::InferError::NotYolo`].
    fn detector(
        &self,
        plan: &[u8],
        dla_core: Option<u32>,
        model: &ModelConfig,
    ) -> Result<Box<dyn Detect>, RuntimeError>;
}

/// TensorRT's libraries and the GPU's kernels, loaded once and shared by
/// every detector the line builds (a restarted inference stage
/// deserializes again).
pub struct TensorRtRuntime {
    library: TensorRt,
    gpu: Arc<Gpu>,
    cuda_graph: bool,
}

impl TensorRtRuntime {
    /// Loads TensorRT and compiles the pre- and post-processing kernels for
    /// GPU 0; `cuda_graph` replays each frame's work (letterbox, engine,
    /// decode and NMS) as one captured graph where the engine allows it
    /// (`engine.cuda_graph`).
    pub fn load(cuda_graph: bool) -> Result<Arc<dyn EngineRuntime>, RuntimeError> {
        let log = Arc::new(|severity, message: &str| {
            tracing::info!(target: "tensorrt", ?severity, "{message}");
        });
        let library = TensorRt::load(log)?;
        let gpu = Gpu::open(0)?;
        Ok(Arc::new(TensorRtRuntime {
            library,
            gpu,
            cuda_graph,
        }))
    }
}

impl EngineRuntime for TensorRtRuntime {
    fn name(&self) -> String {
        format!("TensorRT {}", self.library.version())
    }

    fn detector(
        &self,
        plan: &[u8],
        dla_core: Option<u32>,
        model: &ModelConfig,
    ) -> Result<Box<dyn Detect>, RuntimeError> {
        let engine = match TensorRtEngine::deserialize(&self.library, plan, dla_core) {
            // The detector captures the engine in the frame's graph.
            Ok(engine) => engine,
            // Tensors the line cannot feed or read: the wrong I/O, not a
            // load failure.
            Err(
                error @ (TensorRtBackendError::NotADetector { .. }
                | TensorRtBackendError::TensorType { .. }),
            ) => {
                return Err(Box::new(edgesort_infer::InferError::NotYolo {
                    model: "TensorRT engine".into(),
                    reason: error.to_string(),
                }));
            }
            Err(error) => return Err(error.into()),
        };
        let memory = self.gpu.default_memory();
        Ok(Box::new(
            GpuDetector::new(&self.gpu, engine, model, memory)?.with_graphs(self.cuda_graph),
        ))
    }
}
