use std::sync::Arc;

use cudarc::driver::sys::{CU_MEMHOSTALLOC_DEVICEMAP, CU_MEMHOSTALLOC_PORTABLE, CUdeviceptr};
use cudarc::driver::{CudaContext, result};

use crate::error::driver;
use crate::{GpuError, MemoryMode};

/// Device memory.
pub struct DeviceBuffer {
    context: Arc<CudaContext>,
    pointer: CUdeviceptr,
    bytes: usize,
}

impl DeviceBuffer {
    pub(crate) fn new(context: &Arc<CudaContext>, bytes: usize) -> Result<Self, GpuError> {
        context
            .bind_to_thread()
            .map_err(driver("bind the context"))?;
        // A zero-byte allocation is refused; one byte keeps every buffer real.
        let pointer = unsafe { result::malloc_sync(bytes.max(1)) }.map_err(driver("allocate"))?;
        Ok(DeviceBuffer {
            context: context.clone(),
            pointer,
            bytes,
        })
    }

    /// The device address.
    pub fn pointer(&self) -> CUdeviceptr {
        self.pointer
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if self.context.bind_to_thread().is_ok() {
            // SAFETY: allocated by malloc_sync and freed once; the owner
            // synchronises its stream before dropping.
            let _ = unsafe { result::free_sync(self.pointer) };
        }
    }
}

/// Pinned host memory, mapped into the GPU's address space or not.
pub struct HostBuffer {
    context: Arc<CudaContext>,
    host: *mut u8,
    device: Option<CUdeviceptr>,
    bytes: usize,
}

// SAFETY: the buffer is plain memory owned by this value; access goes
// through &self / &mut self.
unsafe impl Send for HostBuffer {}
// SAFETY: as above: &self gives only shared reads, writes need &mut self.
unsafe impl Sync for HostBuffer {}

impl HostBuffer {
    pub(crate) fn new(
        context: &Arc<CudaContext>,
        bytes: usize,
        mapped: bool,
    ) -> Result<Self, GpuError> {
        context
            .bind_to_thread()
            .map_err(driver("bind the context"))?;
        let flags = if mapped {
            CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE
        } else {
            CU_MEMHOSTALLOC_PORTABLE
        };
        let host = unsafe { result::malloc_host(bytes.max(1), flags) }
            .map_err(driver("allocate pinned host memory"))? as *mut u8;
        let device = if mapped {
            let mut device = 0;
            unsafe {
                cudarc::driver::sys::cuMemHostGetDevicePointer_v2(&mut device, host.cast(), 0)
            }
            .result()
            .map_err(driver("map host memory"))?;
            Some(device)
        } else {
            None
        };
        Ok(HostBuffer {
            context: context.clone(),
            host,
            device,
            bytes,
        })
    }

    /// The bytes, for the CPU.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `bytes` bytes allocated at `host`, alive while self is.
        unsafe { std::slice::from_raw_parts(self.host, self.bytes) }
    }

    /// The bytes, for the CPU to write.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.host, self.bytes) }
    }

    /// The GPU's address of this memory, when mapped.
    pub fn device_pointer(&self) -> Option<CUdeviceptr> {
        self.device
    }
}

impl Drop for HostBuffer {
    fn drop(&mut self) {
        if self.context.bind_to_thread().is_ok() {
            // SAFETY: allocated by malloc_host and freed once.
            let _ = unsafe { result::free_host(self.host.cast()) };
        }
    }
}

/// Memory the CPU fills or reads and a kernel uses: one mapped buffer
/// (nothing copied), or pinned host memory plus device memory with a copy
/// on the stream.
pub struct SharedBuffer {
    host: HostBuffer,
    device: Option<DeviceBuffer>,
}

impl SharedBuffer {
    pub(crate) fn new(
        context: &Arc<CudaContext>,
        bytes: usize,
        mode: MemoryMode,
    ) -> Result<Self, GpuError> {
        Ok(match mode {
            MemoryMode::Mapped => SharedBuffer {
                host: HostBuffer::new(context, bytes, true)?,
                device: None,
            },
            MemoryMode::Device => SharedBuffer {
                host: HostBuffer::new(context, bytes, false)?,
                device: Some(DeviceBuffer::new(context, bytes)?),
            },
        })
    }

    /// Where kernels read or write it.
    pub fn device_pointer(&self) -> CUdeviceptr {
        match &self.device {
            Some(device) => device.pointer(),
            None => self
                .host
                .device_pointer()
                .expect("mapped buffers have a device address"),
        }
    }

    /// Size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.host.bytes
    }

    /// The host side.
    pub fn host(&self) -> &[u8] {
        self.host.bytes()
    }

    /// The host side, to write.
    pub fn host_mut(&mut self) -> &mut [u8] {
        self.host.bytes_mut()
    }

    /// Whether the GPU reads the host memory in place.
    pub fn is_mapped(&self) -> bool {
        self.device.is_none()
    }

    /// Enqueues the host-to-device copy (none when mapped).
    pub(crate) fn upload(&self, stream: cudarc::driver::sys::CUstream) -> Result<(), GpuError> {
        self.upload_from(&self.host, stream)
    }

    /// Enqueues the copy of `host`'s first `len` bytes into the device side
    /// (none when mapped): a frame the camera wrote into another pinned
    /// buffer. `host` must hold `len` bytes at least.
    pub(crate) fn upload_from(
        &self,
        host: &HostBuffer,
        stream: cudarc::driver::sys::CUstream,
    ) -> Result<(), GpuError> {
        if let Some(device) = &self.device {
            let bytes = &host.bytes()[..self.len()];
            // SAFETY: both sides hold `len` bytes; the host side is pinned
            // and outlives the copy, which the owner waits for.
            unsafe { result::memcpy_htod_async(device.pointer(), bytes, stream) }
                .map_err(driver("copy to the device"))?;
        }
        Ok(())
    }

    /// Enqueues the device-to-host copy (none when mapped).
    pub(crate) fn download(
        &mut self,
        stream: cudarc::driver::sys::CUstream,
    ) -> Result<(), GpuError> {
        if let Some(device) = &self.device {
            let pointer = device.pointer();
            // SAFETY: as in `upload`.
            unsafe { result::memcpy_dtoh_async(self.host.bytes_mut(), pointer, stream) }
                .map_err(driver("copy to the host"))?;
        }
        Ok(())
    }
}
