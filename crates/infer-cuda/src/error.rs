/// What went wrong on the GPU.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No CUDA driver could be loaded.
    #[error(
        "no CUDA driver: libcuda.so could not be loaded (no NVIDIA GPU driver on this machine)"
    )]
    NoDriver,
    /// The driver has no GPU of that number.
    #[error("the CUDA driver reports {count} GPUs, so there is no GPU {ordinal}")]
    NoDevice {
        /// The GPU asked for.
        ordinal: usize,
        /// GPUs the driver knows.
        count: i32,
    },
    /// No NVRTC library could be loaded to compile the kernels.
    #[error(
        "no NVRTC: libnvrtc.so could not be loaded (install the CUDA toolkit's NVRTC, or add /usr/local/cuda/lib64 to LD_LIBRARY_PATH)"
    )]
    NoNvrtc,
    /// A CUDA driver call failed.
    #[error("CUDA {action}: {source:?}")]
    Driver {
        /// What was being done.
        action: &'static str,
        /// The driver's error.
        source: cudarc::driver::DriverError,
    },
    /// NVRTC refused the kernels.
    #[error("compiling the kernels for {arch}: {message}")]
    Compile {
        /// The target architecture.
        arch: String,
        /// NVRTC's log.
        message: String,
    },
    /// A frame or tensor shape the kernels cannot serve.
    #[error("{0}")]
    Geometry(String),
    /// The inference engine failed.
    #[error("the engine could not {action}")]
    Engine {
        /// What it was asked to do.
        action: &'static str,
        /// Its error.
        source: crate::EngineError,
    },
    /// Work enqueued during a stream capture failed, so no graph was made.
    #[error("capturing a CUDA graph: the captured work failed: {source}")]
    CaptureWork {
        /// The work's own error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The capture ended with no work in it.
    #[error("capturing a CUDA graph: nothing was enqueued")]
    CaptureEmpty,
}

/// Wraps a driver error with what was being done.
pub(crate) fn driver(action: &'static str) -> impl Fn(cudarc::driver::DriverError) -> GpuError {
    move |source| GpuError::Driver { action, source }
}
