//! Deserializing engines and running them.

use std::ffi::c_void;
use std::marker::PhantomData;

use crate::{TensorRt, TensorRtError};

/// The element type of an engine's tensor (TensorRT's `DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// 32-bit float.
    Float,
    /// 16-bit float.
    Half,
    /// Quantised 8-bit integer.
    Int8,
    /// 32-bit integer.
    Int32,
    /// Boolean, one byte.
    Bool,
    /// Unsigned 8-bit integer, e.g. raw image bytes.
    Uint8,
    /// 8-bit float (E4M3).
    Fp8,
    /// bfloat16 (TensorRT 10).
    Bf16,
    /// 64-bit integer (TensorRT 10).
    Int64,
    /// 4-bit integer (TensorRT 10).
    Int4,
    /// A type newer than this crate; TensorRT's number for it.
    Other(i32),
}

impl DataType {
    /// Maps TensorRT's `DataType` numbering, which 8.x and 10.x share.
    #[cfg_attr(
        not(any(tensorrt_shim, test)),
        expect(dead_code, reason = "only the shim reads engines")
    )]
    fn from_raw(raw: i32) -> Self {
        match raw {
            0 => Self::Float,
            1 => Self::Half,
            2 => Self::Int8,
            3 => Self::Int32,
            4 => Self::Bool,
            5 => Self::Uint8,
            6 => Self::Fp8,
            7 => Self::Bf16,
            8 => Self::Int64,
            9 => Self::Int4,
            other => Self::Other(other),
        }
    }
}

/// One of an engine's named input or output tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoTensor {
    /// The name, as in the ONNX model.
    pub name: String,
    /// Whether the engine reads it (else it writes it).
    pub is_input: bool,
    /// The element type.
    pub data_type: DataType,
    /// The shape; -1 for a dimension fixed only by the input shape.
    pub dims: Vec<i64>,
}

/// A deserialized engine; it keeps TensorRT loaded while it lives.
pub struct Engine {
    #[cfg(tensorrt_shim)]
    inner: imp::EngineInner,
    #[cfg(not(tensorrt_shim))]
    never: std::convert::Infallible,
}

/// An execution context: per-inference state of an [`Engine`]. Use one per
/// thread or CUDA stream.
pub struct Context<'engine> {
    #[cfg(tensorrt_shim)]
    raw: std::ptr::NonNull<crate::ffi::ContextHandle>,
    #[cfg(not(tensorrt_shim))]
    never: std::convert::Infallible,
    engine: PhantomData<&'engine Engine>,
}

// SAFETY: TensorRT lets a context be used from any thread, one at a time,
// which `&mut self` on every call guarantees.
unsafe impl Send for Context<'_> {}

impl TensorRt {
    /// Deserializes a plan from [`TensorRt::build`], on the given DLA core
    /// when it was built for one.
    pub fn deserialize(&self, plan: &[u8], dla_core: Option<u32>) -> Result<Engine, TensorRtError> {
        #[cfg(tensorrt_shim)]
        {
            imp::EngineInner::deserialize(&self.loaded, plan, dla_core)
                .map(|inner| Engine { inner })
        }
        #[cfg(not(tensorrt_shim))]
        {
            let _ = (plan, dla_core);
            match self.never {}
        }
    }
}

impl Engine {
    /// The engine's inputs and outputs, in TensorRT's order.
    pub fn io_tensors(&self) -> Vec<IoTensor> {
        #[cfg(tensorrt_shim)]
        {
            self.inner.io.clone()
        }
        #[cfg(not(tensorrt_shim))]
        {
            match self.never {}
        }
    }

    /// Creates an execution context, which allocates the engine's
    /// activation memory on the device.
    pub fn create_context(&self) -> Result<Context<'_>, TensorRtError> {
        #[cfg(tensorrt_shim)]
        {
            self.inner.create_context().map(|raw| Context {
                raw,
                engine: PhantomData,
            })
        }
        #[cfg(not(tensorrt_shim))]
        {
            match self.never {}
        }
    }
}

impl Context<'_> {
    /// Sets the shape of a dynamic input for the next inference.
    pub fn set_input_shape(&mut self, name: &str, dims: &[i64]) -> Result<(), TensorRtError> {
        #[cfg(tensorrt_shim)]
        {
            imp::set_input_shape(self.raw, name, dims)
        }
        #[cfg(not(tensorrt_shim))]
        {
            let _ = (name, dims, self.engine);
            match self.never {}
        }
    }

    /// The shape of tensor `name` for the input shapes set: how large an
    /// output buffer must be.
    pub fn tensor_shape(&self, name: &str) -> Result<Vec<i64>, TensorRtError> {
        #[cfg(tensorrt_shim)]
        {
            imp::tensor_shape(self.raw, name)
        }
        #[cfg(not(tensorrt_shim))]
        {
            let _ = name;
            match self.never {}
        }
    }

    /// Binds a tensor to device memory.
    ///
    /// # Safety
    /// `device_ptr` must point to device memory large enough for the
    /// tensor's current shape and type, and stay valid until every
    /// inference enqueued with it has finished.
    pub unsafe fn set_tensor_address(
        &mut self,
        name: &str,
        device_ptr: *mut c_void,
    ) -> Result<(), TensorRtError> {
        #[cfg(tensorrt_shim)]
        {
            imp::set_tensor_address(self.raw, name, device_ptr)
        }
        #[cfg(not(tensorrt_shim))]
        {
            let _ = (name, device_ptr);
            match self.never {}
        }
    }

    /// Enqueues one inference on a CUDA stream; it runs asynchronously.
    ///
    /// # Safety
    /// `stream` must be a live `cudaStream_t` of the current device (null
    /// for the default stream), every tensor's address must be set, and the
    /// caller must synchronise the stream before reading outputs or reusing
    /// the buffers.
    pub unsafe fn enqueue(&mut self, stream: *mut c_void) -> Result<(), TensorRtError> {
        #[cfg(tensorrt_shim)]
        {
            imp::enqueue(self.raw, stream)
        }
        #[cfg(not(tensorrt_shim))]
        {
            let _ = stream;
            match self.never {}
        }
    }
}

#[cfg(tensorrt_shim)]
impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: created by es_trt_context_create and freed once; the
        // borrow of the engine keeps the engine alive until now.
        unsafe { crate::ffi::es_trt_context_free(self.raw.as_ptr()) };
    }
}

#[cfg(tensorrt_shim)]
mod imp {
    use std::ffi::{CStr, CString, c_char, c_void};
    use std::ptr::{self, NonNull};
    use std::sync::Arc;

    use super::{DataType, IoTensor};
    use crate::shim::{Loaded, call};
    use crate::{TensorRtError, ffi};

    /// The runtime and engine; the runtime must outlive the engine, and the
    /// libraries both.
    pub(super) struct EngineInner {
        engine: NonNull<ffi::Engine>,
        runtime: NonNull<ffi::Runtime>,
        pub(super) io: Vec<IoTensor>,
        _loaded: Arc<Loaded>,
    }

    // SAFETY: TensorRT engines are immutable once deserialized and may be
    // shared by threads that each create their own context.
    unsafe impl Send for EngineInner {}
    // SAFETY: as above.
    unsafe impl Sync for EngineInner {}

    impl EngineInner {
        pub(super) fn deserialize(
            loaded: &Arc<Loaded>,
            plan: &[u8],
            dla_core: Option<u32>,
        ) -> Result<Self, TensorRtError> {
            let failed = |message: String| TensorRtError::Deserialize { message };
            let dla_core = match dla_core {
                Some(core) => {
                    i32::try_from(core).map_err(|_| failed(format!("no DLA core {core}")))?
                }
                None => -1,
            };
            let mut runtime = ptr::null_mut();
            // SAFETY: lib is live; runtime is written on success only.
            call(|error| unsafe {
                ffi::es_trt_runtime_create(loaded.lib(), dla_core, &mut runtime, error)
            })
            .map_err(|(_, message)| failed(message))?;
            let runtime =
                NonNull::new(runtime).expect("es_trt_runtime_create succeeded without a runtime");
            let mut engine = ptr::null_mut();
            // SAFETY: runtime is live; TensorRT copies what it needs of plan.
            let result = call(|error| unsafe {
                ffi::es_trt_deserialize(
                    runtime.as_ptr(),
                    plan.as_ptr().cast(),
                    plan.len(),
                    &mut engine,
                    error,
                )
            });
            let engine = match result {
                Ok(()) => {
                    NonNull::new(engine).expect("es_trt_deserialize succeeded without an engine")
                }
                Err((_, message)) => {
                    // SAFETY: created above and not used again.
                    unsafe { ffi::es_trt_runtime_free(runtime.as_ptr()) };
                    return Err(failed(message));
                }
            };
            let mut inner = Self {
                engine,
                runtime,
                io: Vec::new(),
                _loaded: Arc::clone(loaded),
            };
            inner.io = inner.read_io().map_err(failed)?;
            Ok(inner)
        }

        fn read_io(&self) -> Result<Vec<IoTensor>, String> {
            // SAFETY: engine is live.
            let count = unsafe { ffi::es_trt_engine_io_count(self.engine.as_ptr()) };
            (0..count)
                .map(|index| {
                    let mut name: *const c_char = ptr::null();
                    let (mut is_input, mut data_type, mut rank) = (0, 0, 0);
                    let mut dims = [0_i64; ffi::MAX_DIMS];
                    // SAFETY: engine is live; dims has MAX_DIMS entries.
                    call(|error| unsafe {
                        ffi::es_trt_engine_io_tensor(
                            self.engine.as_ptr(),
                            index,
                            &mut name,
                            &mut is_input,
                            &mut data_type,
                            &mut rank,
                            dims.as_mut_ptr(),
                            error,
                        )
                    })
                    .map_err(|(_, message)| message)?;
                    let rank = usize::try_from(rank).unwrap_or(0).min(ffi::MAX_DIMS);
                    Ok(IoTensor {
                        // SAFETY: on success name is the engine's C string.
                        name: unsafe { CStr::from_ptr(name) }
                            .to_string_lossy()
                            .into_owned(),
                        is_input: is_input != 0,
                        data_type: DataType::from_raw(data_type),
                        dims: dims[..rank].to_vec(),
                    })
                })
                .collect()
        }

        pub(super) fn create_context(&self) -> Result<NonNull<ffi::ContextHandle>, TensorRtError> {
            let mut context = ptr::null_mut();
            // SAFETY: engine is live and outlives the context (Context borrows Engine).
            call(|error| unsafe {
                ffi::es_trt_context_create(self.engine.as_ptr(), &mut context, error)
            })
            .map_err(|(_, message)| TensorRtError::CreateContext { message })?;
            Ok(NonNull::new(context).expect("es_trt_context_create succeeded without a context"))
        }
    }

    impl Drop for EngineInner {
        fn drop(&mut self) {
            // SAFETY: both were created by the shim and are freed once,
            // engine first; contexts borrow the engine, so none is left.
            unsafe {
                ffi::es_trt_engine_free(self.engine.as_ptr());
                ffi::es_trt_runtime_free(self.runtime.as_ptr());
            }
        }
    }

    pub(super) fn set_input_shape(
        context: NonNull<ffi::ContextHandle>,
        name: &str,
        dims: &[i64],
    ) -> Result<(), TensorRtError> {
        let failed = |message: String| TensorRtError::SetInputShape {
            name: name.to_owned(),
            dims: dims.to_vec(),
            message,
        };
        let c_name = CString::new(name).map_err(|_| failed("name contains NUL".to_owned()))?;
        let rank =
            i32::try_from(dims.len()).map_err(|_| failed("too many dimensions".to_owned()))?;
        // SAFETY: context is live; the shim checks rank against MAX_DIMS.
        call(|error| unsafe {
            ffi::es_trt_context_set_input_shape(
                context.as_ptr(),
                c_name.as_ptr(),
                rank,
                dims.as_ptr(),
                error,
            )
        })
        .map_err(|(_, message)| failed(message))
    }

    pub(super) fn tensor_shape(
        context: NonNull<ffi::ContextHandle>,
        name: &str,
    ) -> Result<Vec<i64>, TensorRtError> {
        let failed = |message: String| TensorRtError::SetInputShape {
            name: name.to_owned(),
            dims: Vec::new(),
            message,
        };
        let c_name = CString::new(name).map_err(|_| failed("name contains NUL".to_owned()))?;
        let mut rank = 0;
        let mut dims = [0i64; ffi::MAX_DIMS];
        // SAFETY: context is live; dims holds MAX_DIMS entries, the most
        // the shim writes.
        call(|error| unsafe {
            ffi::es_trt_context_tensor_shape(
                context.as_ptr(),
                c_name.as_ptr(),
                &mut rank,
                dims.as_mut_ptr(),
                error,
            )
        })
        .map_err(|(_, message)| failed(message))?;
        Ok(dims[..rank.clamp(0, ffi::MAX_DIMS as i32) as usize].to_vec())
    }

    pub(super) fn set_tensor_address(
        context: NonNull<ffi::ContextHandle>,
        name: &str,
        device_ptr: *mut c_void,
    ) -> Result<(), TensorRtError> {
        let failed = |message: String| TensorRtError::SetTensorAddress {
            name: name.to_owned(),
            message,
        };
        let c_name = CString::new(name).map_err(|_| failed("name contains NUL".to_owned()))?;
        // SAFETY: context is live; the caller vouches for device_ptr.
        call(|error| unsafe {
            ffi::es_trt_context_set_tensor_address(
                context.as_ptr(),
                c_name.as_ptr(),
                device_ptr,
                error,
            )
        })
        .map_err(|(_, message)| failed(message))
    }

    pub(super) fn enqueue(
        context: NonNull<ffi::ContextHandle>,
        stream: *mut c_void,
    ) -> Result<(), TensorRtError> {
        // SAFETY: context is live; the caller vouches for the stream.
        call(|error| unsafe { ffi::es_trt_context_enqueue(context.as_ptr(), stream, error) })
            .map_err(|(_, message)| TensorRtError::Enqueue { message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_types_follow_tensorrt_numbering() {
        assert_eq!(DataType::from_raw(0), DataType::Float);
        assert_eq!(DataType::from_raw(1), DataType::Half);
        assert_eq!(DataType::from_raw(5), DataType::Uint8);
        assert_eq!(DataType::from_raw(8), DataType::Int64);
        assert_eq!(DataType::from_raw(42), DataType::Other(42));
    }
}
