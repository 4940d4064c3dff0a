use std::sync::Arc;

use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use edgesort_infer::{Letterbox, PAD_VALUE};
use edgesort_types::{FrameLayout, PixelFormat};

use crate::error::driver;
use crate::memory::{DeviceBuffer, HostBuffer, SharedBuffer};
use crate::{Gpu, GpuError, MemoryMode};

/// Element type of the engine's input tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorType {
    /// 32-bit float.
    F32,
    /// 16-bit float, rounded to nearest even.
    F16,
}

impl TensorType {
    fn bytes(self) -> usize {
        match self {
            TensorType::F32 => 4,
            TensorType::F16 => 2,
        }
    }
}

/// The kernel's view of a letterbox; laid out as `struct Letterbox` in
/// `kernels/prepost.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct LetterboxParams {
    format: i32,
    frame_width: i32,
    frame_height: i32,
    stride: i32,
    input_width: i32,
    input_height: i32,
    resized_width: i32,
    resized_height: i32,
    pad_left: i32,
    pad_top: i32,
    ratio_x: f32,
    ratio_y: f32,
    pad_value: f32,
    inv_255: f32,
    half_output: i32,
}

// SAFETY: plain old data with the C layout the kernel declares.
unsafe impl DeviceRepr for LetterboxParams {}

/// Camera frame to engine input in one kernel: any [`PixelFormat`],
/// bilinear resize with the CPU reference's taps and rounding, grey
/// padding, planar FP32 or FP16.
pub struct GpuLetterbox {
    gpu: Arc<Gpu>,
    plan: Letterbox,
    params: LetterboxParams,
    frame: SharedBuffer,
    tensor: DeviceBuffer,
}

impl GpuLetterbox {
    /// Readies buffers for frames of `layout` letterboxed as `plan`.
    /// With [`MemoryMode::Mapped`] the camera writes where the kernel reads.
    pub fn new(
        gpu: &Arc<Gpu>,
        layout: FrameLayout,
        plan: Letterbox,
        tensor_type: TensorType,
        memory: MemoryMode,
    ) -> Result<Self, GpuError> {
        if (layout.width, layout.height) != (plan.frame_width, plan.frame_height) {
            return Err(GpuError::Geometry(format!(
                "the letterbox is planned for {}x{} frames, the camera gives {}x{}",
                plan.frame_width, plan.frame_height, layout.width, layout.height
            )));
        }
        let minimum_stride = FrameLayout::packed(layout.format, layout.width, layout.height).stride;
        if layout.stride < minimum_stride {
            return Err(GpuError::Geometry(format!(
                "a row of {:?} at width {} needs {minimum_stride} bytes, the stride is {}",
                layout.format, layout.width, layout.stride
            )));
        }
        let format = match layout.format {
            PixelFormat::Rgb24 => 0,
            PixelFormat::Bgr24 => 1,
            PixelFormat::Yuyv => 2,
            PixelFormat::Nv12 => 3,
            PixelFormat::Grey => {
                return Err(GpuError::Geometry(
                    "GREY frames are expanded to RGB on the CPU; the GPU letterbox reads \
                     RGB, BGR, YUYV and NV12"
                        .into(),
                ));
            }
        };
        let params = LetterboxParams {
            format,
            frame_width: layout.width as i32,
            frame_height: layout.height as i32,
            stride: layout.stride as i32,
            input_width: plan.input_width as i32,
            input_height: plan.input_height as i32,
            resized_width: plan.resized_width as i32,
            resized_height: plan.resized_height as i32,
            pad_left: plan.pad_left as i32,
            pad_top: plan.pad_top as i32,
            // The CPU's axis_taps computes these ratios in f32 the same way.
            ratio_x: layout.width as f32 / plan.resized_width as f32,
            ratio_y: layout.height as f32 / plan.resized_height as f32,
            pad_value: PAD_VALUE,
            inv_255: 1.0 / 255.0,
            half_output: i32::from(tensor_type == TensorType::F16),
        };
        Ok(GpuLetterbox {
            frame: SharedBuffer::new(&gpu.context, layout.byte_len(), memory)?,
            tensor: DeviceBuffer::new(&gpu.context, plan.tensor_len() * tensor_type.bytes())?,
            gpu: gpu.clone(),
            plan,
            params,
        })
    }

    /// Where the camera writes the next frame (`layout.byte_len()` bytes).
    pub fn frame_mut(&mut self) -> &mut [u8] {
        self.frame.host_mut()
    }

    /// Whether the kernel reads the frame in place (no copy).
    pub fn is_zero_copy(&self) -> bool {
        self.frame.is_mapped()
    }

    /// The engine input tensor the kernel writes, on the device.
    pub fn tensor(&self) -> &DeviceBuffer {
        &self.tensor
    }

    /// Enqueues the frame's upload (discrete GPUs) and the kernel.
    pub fn enqueue(&self) -> Result<(), GpuError> {
        self.frame.upload(self.gpu.stream.cu_stream())?;
        self.launch()
    }

    /// As [`GpuLetterbox::enqueue`], on a frame the camera wrote into pinned
    /// memory of its own (from the detector's frame pool): read in place
    /// where the GPU maps it, else uploaded from it into this letterbox's
    /// device frame; no copy on the host either way. `frame` must stay
    /// untouched until the stream has run.
    pub(crate) fn enqueue_from(&self, frame: &HostBuffer) -> Result<(), GpuError> {
        if frame.bytes().len() < self.frame.len() {
            return Err(GpuError::Geometry(format!(
                "a lent frame buffer holds {} bytes, the frame needs {}",
                frame.bytes().len(),
                self.frame.len()
            )));
        }
        match (frame.device_pointer(), self.frame.is_mapped()) {
            (Some(mapped), _) => self.launch_on(mapped),
            (None, false) => {
                self.frame.upload_from(frame, self.gpu.stream.cu_stream())?;
                self.launch()
            }
            (None, true) => Err(GpuError::Geometry(
                "a lent frame buffer the GPU does not map, for a letterbox in mapped memory".into(),
            )),
        }
    }

    /// Enqueues the kernel alone, on the frame already on the device (or
    /// mapped).
    pub(crate) fn launch(&self) -> Result<(), GpuError> {
        self.launch_on(self.frame.device_pointer())
    }

    fn launch_on(&self, frame: cudarc::driver::sys::CUdeviceptr) -> Result<(), GpuError> {
        let stream = &self.gpu.stream;
        let tensor = self.tensor.pointer();
        let block = (32, 8, 1);
        let config = LaunchConfig {
            grid_dim: (
                self.plan.input_width.div_ceil(block.0),
                self.plan.input_height.div_ceil(block.1),
                1,
            ),
            block_dim: block,
            shared_mem_bytes: 0,
        };
        let mut launch = stream.launch_builder(&self.gpu.letterbox);
        launch.arg(&frame).arg(&tensor).arg(&self.params);
        // SAFETY: the arguments match the kernel's signature; both buffers
        // hold what the plan needs and outlive the stream's work.
        unsafe { launch.launch(config) }
            .map(|_| ())
            .map_err(driver("launch the letterbox"))
    }

    /// Enqueues the frame's copy to the device alone (none when mapped).
    pub(crate) fn upload(&self) -> Result<(), GpuError> {
        self.frame.upload(self.gpu.stream.cu_stream())
    }

    /// Copies the tensor back as bytes (tests and benchmarks; the engine
    /// reads it on the device).
    pub fn read_tensor(&self) -> Result<Vec<u8>, GpuError> {
        self.gpu.synchronize()?;
        let mut bytes = vec![0u8; self.tensor.len()];
        // SAFETY: both sides hold `len` bytes.
        unsafe { cudarc::driver::result::memcpy_dtoh_sync(&mut bytes, self.tensor.pointer()) }
            .map_err(driver("copy the tensor back"))?;
        Ok(bytes)
    }

    /// Fills the tensor with `byte` (to show unwritten elements in tests).
    pub fn poison_tensor(&self, byte: u8) -> Result<(), GpuError> {
        // SAFETY: the buffer holds `len` bytes.
        unsafe {
            cudarc::driver::result::memset_d8_async(
                self.tensor.pointer(),
                byte,
                self.tensor.len(),
                self.gpu.stream.cu_stream(),
            )
        }
        .map_err(driver("poison the tensor"))
    }
}
