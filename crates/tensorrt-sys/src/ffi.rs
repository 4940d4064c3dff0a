//! The shim's C ABI, mirroring `shim/shim.h`.

use std::ffi::{c_char, c_int, c_void};

pub(crate) const OK: i32 = 0;
pub(crate) const CANCELLED: i32 = 2;
pub(crate) const PARSE_FAILED: i32 = 3;

pub(crate) const MAX_DIMS: usize = 8;

pub(crate) const PRECISION_FP32: i32 = 0;
pub(crate) const PRECISION_FP16: i32 = 1;
pub(crate) const PRECISION_INT8: i32 = 2;

pub(crate) const PROGRESS_PHASE_START: i32 = 0;
pub(crate) const PROGRESS_STEP: i32 = 1;
pub(crate) const PROGRESS_PHASE_FINISH: i32 = 2;

/// The shim's `es_trt_lib`: factories and logger.
#[repr(C)]
pub(crate) struct Lib {
    _private: [u8; 0],
}

/// An `IRuntime`.
#[repr(C)]
pub(crate) struct Runtime {
    _private: [u8; 0],
}

/// An `ICudaEngine`.
#[repr(C)]
pub(crate) struct Engine {
    _private: [u8; 0],
}

/// An `IExecutionContext`.
#[repr(C)]
pub(crate) struct ContextHandle {
    _private: [u8; 0],
}

/// An `IHostMemory`.
#[repr(C)]
pub(crate) struct Blob {
    _private: [u8; 0],
}

pub(crate) type CreateFn = unsafe extern "C" fn(logger: *mut c_void, version: i32) -> *mut c_void;
pub(crate) type CreateParserFn =
    unsafe extern "C" fn(network: *mut c_void, logger: *mut c_void, version: c_int) -> *mut c_void;
pub(crate) type LogFn =
    unsafe extern "C" fn(user: *mut c_void, severity: i32, message: *const c_char);
pub(crate) type ProgressFn = unsafe extern "C" fn(
    user: *mut c_void,
    event: i32,
    phase: *const c_char,
    parent: *const c_char,
    value: i32,
) -> i32;

#[repr(C)]
pub(crate) struct BuildOptions {
    pub onnx_path: *const c_char,
    pub precision: i32,
    pub calibration_cache: *const c_void,
    pub calibration_cache_size: usize,
    pub profile_input: *const c_char,
    pub profile_rank: i32,
    pub profile_min: *const i64,
    pub profile_opt: *const i64,
    pub profile_max: *const i64,
    pub workspace_bytes: u64,
    pub dla_core: i32,
    pub gpu_fallback: i32,
    pub timing_cache: *const c_void,
    pub timing_cache_size: usize,
    pub strongly_typed: i32,
    pub progress: Option<ProgressFn>,
    pub progress_user: *mut c_void,
}

unsafe extern "C" {
    pub(crate) fn es_trt_init(
        create_builder: CreateFn,
        create_runtime: CreateFn,
        create_parser: Option<CreateParserFn>,
        log: LogFn,
        log_user: *mut c_void,
        out: *mut *mut Lib,
        error: *mut *mut c_char,
    ) -> i32;
    pub(crate) fn es_trt_free(lib: *mut Lib);
    pub(crate) fn es_trt_string_free(string: *mut c_char);
    pub(crate) fn es_trt_dla_cores(lib: *mut Lib, out: *mut i32, error: *mut *mut c_char) -> i32;
    pub(crate) fn es_trt_build(
        lib: *mut Lib,
        options: *const BuildOptions,
        plan: *mut *mut Blob,
        timing_cache: *mut *mut Blob,
        error: *mut *mut c_char,
    ) -> i32;
    pub(crate) fn es_trt_blob_data(blob: *const Blob) -> *const c_void;
    pub(crate) fn es_trt_blob_size(blob: *const Blob) -> usize;
    pub(crate) fn es_trt_blob_free(blob: *mut Blob);
    pub(crate) fn es_trt_runtime_create(
        lib: *mut Lib,
        dla_core: i32,
        out: *mut *mut Runtime,
        error: *mut *mut c_char,
    ) -> i32;
    pub(crate) fn es_trt_runtime_free(runtime: *mut Runtime);
    pub(crate) fn es_trt_deserialize(
        runtime: *mut Runtime,
        plan: *const c_void,
        size: usize,
        out: *mut *mut Engine,
        error: *mut *mut c_char,
    ) -> i32;
    pub(crate) fn es_trt_engine_free(engine: *mut Engine);
    pub(crate) fn es_trt_engine_io_count(engine: *const Engine) -> i32;
    pub(crate) fn es_trt_engine_io_tensor(
        engine: *const Engine,
        index: i32,
        name: *mut *const c_char,
        is_input: *mut i32,
        data_type: *mut i32,
        rank: *mut i32,
        dims: *mut i64,
        error: *mut *mut c_char,
    ) -> i32;
    pub(crate) fn es_trt_context_create(
        engine: *mut Engine,
        out: *mut *mut ContextHandle,
        error: *mut *mut c_char,
    ) -> i32;
    pub(crate) fn es_trt_context_free(context: *mut ContextHandle);
    pub(crate) fn es_trt_context_set_input_shape(
        context: *mut ContextHandle,
        name: *const c_char,
        rank: i32,
        dims: *const i64,
        error: *mut *mut c_char,
    ) -> i32;
    pub(crate) fn es_trt_context_tensor_shape(
        context: *const ContextHandle,
        name: *const c_char,
        rank: *mut i32,
        dims: *mut i64,
        error: *mut *mut c_char,
    ) -> i32;
    pub(crate) fn es_trt_context_set_tensor_address(
        context: *mut ContextHandle,
        name: *const c_char,
        device_ptr: *mut c_void,
        error: *mut *mut c_char,
    ) -> i32;
    pub(crate) fn es_trt_context_enqueue(
        context: *mut ContextHandle,
        stream: *mut c_void,
        error: *mut *mut c_char,
    ) -> i32;
}
