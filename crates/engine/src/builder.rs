use std::path::Path;

use edgesort_infer::Backend;
use edgesort_types::config::Precision;

use crate::ProfileShapes;

/// One engine build.
#[derive(Clone, Debug)]
pub struct BuildJob<'a> {
    /// The ONNX model: the FP32 model, or the Q/DQ model for INT8.
    pub onnx: &'a Path,
    /// Precision to build.
    pub precision: Precision,
    /// Dynamic-shape profile.
    pub profile: Option<&'a ProfileShapes>,
    /// Builder workspace limit.
    pub workspace_bytes: u64,
    /// DLA core, if any.
    pub dla_core: Option<u32>,
    /// Layers the DLA cannot run go to the GPU.
    pub gpu_fallback: bool,
    /// Kernel timings of earlier builds on this box; empty for none.
    pub timing_cache: &'a [u8],
}

/// A finished build.
#[derive(Clone, Debug)]
pub struct BuildOutput {
    /// The serialized engine.
    pub plan: Vec<u8>,
    /// The updated timing cache, to save for the next build.
    pub timing_cache: Vec<u8>,
}

/// Why a build failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct BuildFailure {
    /// The builder's own words.
    pub message: String,
    /// The builder ran out of memory; a smaller workspace may succeed.
    pub out_of_memory: bool,
}

/// A phase of a build, for the technician's progress display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildProgress {
    /// The phase, in the builder's words.
    pub phase: String,
    /// Steps done and in all, where the builder counts them.
    pub step: Option<(u32, u32)>,
}

/// What a builder builds for: the parts of the key it alone knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildTarget {
    /// TensorRT version, e.g. `10.3.0`.
    pub tensorrt: String,
    /// GPU name.
    pub gpu: String,
    /// Compute capability, e.g. `8.7`.
    pub compute_capability: String,
    /// DLA cores the builder can use.
    pub dla_cores: u32,
}

/// Builds engines and loads them. TensorRT implements it on the box; tests
/// implement it with a double that never ships.
pub trait EngineBuilder {
    /// The TensorRT and GPU this builder builds for.
    fn target(&self) -> &BuildTarget;

    /// Builds one engine.
    fn build(
        &mut self,
        job: &BuildJob<'_>,
        progress: &mut dyn FnMut(&BuildProgress),
    ) -> Result<BuildOutput, BuildFailure>;

    /// Deserializes `plan` into a backend; an error means the engine is
    /// unusable (truncated, built elsewhere, or for another version).
    fn load(&mut self, plan: &[u8], dla_core: Option<u32>) -> Result<Box<dyn Backend>, String>;
}
