use std::sync::Arc;

use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaGraph, CudaStream};

use crate::GpuError;
use crate::error::driver;

/// A captured CUDA graph, instantiated and uploaded: one launch on the
/// stream it was captured on replays all its work.
pub struct Graph {
    graph: CudaGraph,
}

// SAFETY: a CUDA graph is not tied to a thread; it only must not be used
// from two threads at once, and `launch` takes `&mut self`.
unsafe impl Send for Graph {}

impl Graph {
    /// Replays the captured work on its stream.
    pub fn launch(&mut self) -> Result<(), GpuError> {
        self.graph.launch().map_err(driver("launch a graph"))
    }
}

/// Captures what `work` enqueues on `stream` as a CUDA graph, instantiated
/// and uploaded, ready to launch: one launch replays it all. Nothing runs
/// during the capture. The capture ends whatever `work` returns, so the
/// stream is usable again after an error. Only this thread's calls are
/// captured (thread-local mode).
pub fn capture_graph<E>(
    stream: &Arc<CudaStream>,
    work: impl FnOnce() -> Result<(), E>,
) -> Result<Graph, GpuError>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    stream
        .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        .map_err(driver("begin a stream capture"))?;
    let enqueued = work();
    let ended = stream.end_capture(CUgraphInstantiate_flags(0));
    enqueued.map_err(|error| GpuError::CaptureWork {
        source: error.into(),
    })?;
    let graph = ended
        .map_err(driver("end the capture and instantiate its graph"))?
        .ok_or(GpuError::CaptureEmpty)?;
    graph.upload().map_err(driver("upload the graph"))?;
    Ok(Graph { graph })
}
