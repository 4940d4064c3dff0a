use std::sync::Arc;

use edgesort_infer::Backend;
use edgesort_infer_tensorrt::TensorRtBackend;
use tensorrt_sys::TensorRt;

/// Why a runtime could not load an engine, in its own words.
pub type RuntimeError = Box<dyn std::error::Error + Send + Sync>;

/// What turns a serialized engine into a backend: TensorRT on a box
/// ([`TensorRtRuntime`]); a double in tests.
pub trait EngineRuntime: Send + Sync {
    /// Its name and version for the status, e.g. `TensorRT 10.3.0`.
    fn name(&self) -> String;

    /// Deserializes `plan` (for DLA core `dla_core`, if any) into a backend
    /// ready to run.
    fn load(&self, plan: &[u8], dla_core: Option<u32>) -> Result<Box<dyn Backend>, RuntimeError>;
}

/// TensorRT's libraries, loaded once and shared by every detector the line
/// builds (a restarted inference stage deserializes again).
pub struct TensorRtRuntime {
    library: TensorRt,
    cuda_graph: bool,
}

impl TensorRtRuntime {
    /// Loads TensorRT; `cuda_graph` replays each inference as a captured
    /// graph where the engine allows it (`engine.cuda_graph`).
    pub fn load(cuda_graph: bool) -> Result<Arc<dyn EngineRuntime>, RuntimeError> {
        let log = Arc::new(|severity, message: &str| {
            tracing::info!(target: "tensorrt", ?severity, "{message}");
        });
        let library = TensorRt::load(log)?;
        Ok(Arc::new(TensorRtRuntime {
            library,
            cuda_graph,
        }))
    }
}

impl EngineRuntime for TensorRtRuntime {
    fn name(&self) -> String {
        format!("TensorRT {}", self.library.version())
    }

    fn load(&self, plan: &[u8], dla_core: Option<u32>) -> Result<Box<dyn Backend>, RuntimeError> {
        let backend = TensorRtBackend::deserialize(&self.library, plan, dla_core)?
            .with_cuda_graph(self.cuda_graph);
        Ok(Box::new(backend))
    }
}
