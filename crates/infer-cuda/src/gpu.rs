use std::sync::Arc;

use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use crate::GpuError;
use crate::error::driver;

const KERNELS: &str = include_str!("../kernels/prepost.cu");

/// Where buffers the CPU also touches (camera frames, results) live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryMode {
    /// Device memory, with asynchronous copies on the stream: discrete GPUs.
    Device,
    /// Pinned host memory mapped into the GPU's address space, read and
    /// written in place with no copy: Jetson, whose CPU and GPU share DRAM.
    Mapped,
}

/// What the driver says about a GPU, without opening a context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device name.
    pub name: String,
    /// Compute capability, e.g. (8, 7) on Orin.
    pub compute_capability: (i32, i32),
    /// Device memory (on Jetson, the memory shared with the CPU).
    pub memory_bytes: u64,
    /// Whether the GPU shares memory with the CPU (Jetson).
    pub integrated: bool,
    /// CUDA driver API version, e.g. 13000 for 13.0.
    pub driver_version: i32,
}

/// Asks the CUDA driver (loaded at run time) about GPU `ordinal`.
pub fn probe_device(ordinal: usize) -> Result<DeviceInfo, GpuError> {
    use cudarc::driver::result;

    // cudarc panics when it cannot load libcuda; ask first.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(GpuError::NoDriver);
    }
    result::init().map_err(driver("initialise the driver"))?;
    let count = result::device::get_count().map_err(driver("count the devices"))?;
    if usize::try_from(count).unwrap_or(0) <= ordinal {
        return Err(GpuError::NoDevice { ordinal, count });
    }
    let device = result::device::get(ordinal as i32).map_err(driver("open the device"))?;
    // SAFETY: `device` is a valid handle from the driver.
    let attribute = |which| unsafe { result::device::get_attribute(device, which) };
    let attribute = |which| attribute(which).map_err(driver("read a device attribute"));
    let mut driver_version = 0;
    // SAFETY: writes one int.
    unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut driver_version) }
        .result()
        .map_err(driver("read the driver version"))?;
    Ok(DeviceInfo {
        name: result::device::get_name(device).map_err(driver("read the device name"))?,
        compute_capability: (
            attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        ),
        memory_bytes: unsafe { result::device::total_mem(device) }
            .map_err(driver("read the device memory"))? as u64,
        integrated: attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_INTEGRATED)? != 0,
        driver_version,
    })
}

/// One GPU: its context, a stream, and the kernels compiled for it.
pub struct Gpu {
    pub(crate) context: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) letterbox: CudaFunction,
    pub(crate) decode: CudaFunction,
    pub(crate) rank: CudaFunction,
    pub(crate) scatter: CudaFunction,
    pub(crate) overlaps: CudaFunction,
    pub(crate) suppress: CudaFunction,
    pub(crate) noop: CudaFunction,
    pub(crate) spin: CudaFunction,
    device: DeviceInfo,
}

impl Gpu {
    /// Opens GPU `ordinal` and compiles the kernels for it with NVRTC.
    pub fn open(ordinal: usize) -> Result<Arc<Self>, GpuError> {
        let device = probe_device(ordinal)?;
        // cudarc panics when NVRTC is missing; ask first.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(GpuError::NoNvrtc);
        }
        let context = CudaContext::new(ordinal).map_err(driver("open the device"))?;
        let module = load_kernels(&context, device.compute_capability, KERNELS)?;
        let function = |name| module.load_function(name).map_err(driver("find a kernel"));
        let stream = context.new_stream().map_err(driver("create a stream"))?;
        Ok(Arc::new(Gpu {
            letterbox: function("letterbox")?,
            decode: function("decode")?,
            rank: function("rank")?,
            scatter: function("scatter")?,
            overlaps: function("overlaps")?,
            suppress: function("suppress")?,
            noop: function("noop")?,
            spin: function("spin")?,
            context,
            stream,
            device,
        }))
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.device.name
    }

    /// Compute capability, e.g. (8, 7) on Orin.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.device.compute_capability
    }

    /// Whether the GPU shares memory with the CPU (Jetson).
    pub fn is_integrated(&self) -> bool {
        self.device.integrated
    }

    /// Mapped memory on an integrated GPU, device memory otherwise.
    pub fn default_memory(&self) -> MemoryMode {
        if self.device.integrated {
            MemoryMode::Mapped
        } else {
            MemoryMode::Device
        }
    }

    /// The stream every kernel and copy of this GPU runs on, in order.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Compiles `source` for this device as [`Gpu::open`] compiles the
    /// line's kernels, and finds `names` in it.
    pub(crate) fn compile(
        &self,
        source: &str,
        names: &[&str],
    ) -> Result<Vec<CudaFunction>, GpuError> {
        let module = load_kernels(&self.context, self.device.compute_capability, source)?;
        names
            .iter()
            .map(|name| module.load_function(name).map_err(driver("find a kernel")))
            .collect()
    }

    /// Waits for everything enqueued so far.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        self.stream
            .synchronize()
            .map_err(driver("wait for the stream"))
    }
}

/// Compiles `source` with NVRTC for `compute_capability` and loads it.
fn load_kernels(
    context: &Arc<CudaContext>,
    compute_capability: (i32, i32),
    source: &str,
) -> Result<Arc<CudaModule>, GpuError> {
    let arch = format!("compute_{}{}", compute_capability.0, compute_capability.1);
    let options = CompileOptions {
        // Fused multiply-adds would round differently from the CPU
        // reference; the kernels are memory-bound, so they cost nothing.
        fmad: Some(false),
        ftz: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        options: vec![format!("--gpu-architecture={arch}")],
        ..Default::default()
    };
    let ptx = compile_ptx_with_opts(source, options).map_err(|error| GpuError::Compile {
        arch,
        message: error.to_string(),
    })?;
    context.load_module(ptx).map_err(driver("load the kernels"))
}
