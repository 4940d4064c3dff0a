//! Frame buffers the camera fills for the GPU line: pinned host memory,
//! mapped into the GPU on a Jetson (the letterbox kernel reads it where the
//! camera wrote it) or uploaded on the stream, into the letterbox's one
//! device frame, on a discrete GPU. The camera
//! copies a frame into one once; the CPU never converts its pixels.

use std::any::Any;
use std::sync::{Arc, Mutex, Weak};

use edgesort_types::{FrameLayout, FramePool, PixelBuffer, PixelFormat};

use crate::memory::HostBuffer;
use crate::{Gpu, MemoryMode};

/// Buffers in flight at most. In the daemon: the camera driver's queue
/// (four by default, `camera.buffers`, when it writes into them by user
/// pointer; one the capture thread fills otherwise), one in the camera's
/// slot, one in the line's hand-over, one the detector reads, two queued
/// for sorting, one sorting, one in the status page's snapshot. Past that
/// a frame takes the CPU path rather than wait.
const BUFFERS: usize = 12;

/// The pool a [`crate::GpuDetector`] lends the camera.
pub struct GpuFramePool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    gpu: Arc<Gpu>,
    memory: MemoryMode,
    state: Mutex<PoolState>,
}

struct PoolState {
    free: Vec<HostBuffer>,
    allocated: usize,
}

/// One lent frame buffer; dropping it gives the buffer back.
pub struct GpuFrame {
    buffer: Option<HostBuffer>,
    len: usize,
    pool: Weak<PoolInner>,
}

impl GpuFramePool {
    /// An empty pool; buffers are allocated as the camera first asks.
    pub fn new(gpu: &Arc<Gpu>, memory: MemoryMode) -> Self {
        GpuFramePool {
            inner: Arc::new(PoolInner {
                gpu: gpu.clone(),
                memory,
                state: Mutex::new(PoolState {
                    free: Vec::new(),
                    allocated: 0,
                }),
            }),
        }
    }

    /// Whether `frame` came from this pool.
    pub(crate) fn owns(&self, frame: &GpuFrame) -> bool {
        frame
            .pool
            .upgrade()
            .is_some_and(|pool| Arc::ptr_eq(&pool, &self.inner))
    }

    /// A handle for the camera.
    pub(crate) fn share(&self) -> Arc<dyn FramePool> {
        Arc::new(GpuFramePool {
            inner: self.inner.clone(),
        })
    }
}

impl PoolInner {
    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // Plain bookkeeping that no panic leaves half-written.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl FramePool for GpuFramePool {
    fn accepts(&self, layout: FrameLayout) -> bool {
        // GREY is expanded on the CPU: the letterbox kernel reads RGB, BGR,
        // YUYV and NV12.
        layout.format != PixelFormat::Grey && layout.byte_len() > 0
    }

    fn take(&self, layout: FrameLayout) -> Option<Box<dyn PixelBuffer>> {
        if !self.accepts(layout) {
            return None;
        }
        let len = layout.byte_len();
        let mut state = self.inner.state();
        let buffer = match state
            .free
            .iter()
            .position(|buffer| buffer.bytes().len() >= len)
        {
            Some(at) => state.free.swap_remove(at),
            None if state.allocated < BUFFERS || !state.free.is_empty() => {
                // Buffers of another (smaller) size go; the new size stays.
                if let Some(small) = state.free.pop() {
                    drop(small);
                } else {
                    state.allocated += 1;
                }
                drop(state);
                let mapped = self.inner.memory == MemoryMode::Mapped;
                match HostBuffer::new(&self.inner.gpu.context, len, mapped) {
                    Ok(buffer) => buffer,
                    Err(error) => {
                        tracing::warn!(%error, "no pinned frame buffer; this frame takes the CPU path");
                        self.inner.state().allocated -= 1;
                        return None;
                    }
                }
            }
            None => return None,
        };
        Some(Box::new(GpuFrame {
            buffer: Some(buffer),
            len,
            pool: Arc::downgrade(&self.inner),
        }))
    }

    fn describe(&self) -> String {
        match self.inner.memory {
            MemoryMode::Mapped => "pinned host memory the GPU maps (CUDA-mapped, read in place)",
            MemoryMode::Device => "pinned host memory, uploaded to the GPU on its stream",
        }
        .to_owned()
    }
}

impl GpuFrame {
    /// The pinned memory the kernel reads (mapped) or the upload copies.
    pub(crate) fn buffer(&self) -> &HostBuffer {
        self.buffer.as_ref().expect("held until dropped")
    }
}

impl PixelBuffer for GpuFrame {
    fn bytes(&self) -> &[u8] {
        &self.buffer().bytes()[..self.len]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self
            .buffer
            .as_mut()
            .expect("held until dropped")
            .bytes_mut()[..len]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Drop for GpuFrame {
    fn drop(&mut self) {
        if let (Some(buffer), Some(pool)) = (self.buffer.take(), self.pool.upgrade()) {
            pool.state().free.push(buffer);
        }
    }
}
