//! The loaded libraries and the initialised shim behind [`crate::TensorRt`].

use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::library::{self, Opened};
use crate::{LogCallback, Severity, TensorRtError, Version, builder, ffi};

/// The headers the shim was compiled against, from build.rs.
pub(crate) const HEADERS: Version = Version {
    major: parse(env!("EDGESORT_TRT_HEADERS_MAJOR")),
    minor: parse(env!("EDGESORT_TRT_HEADERS_MINOR")),
    patch: parse(env!("EDGESORT_TRT_HEADERS_PATCH")),
};

const fn parse(digits: &str) -> u32 {
    match u32::from_str_radix(digits, 10) {
        Ok(value) => value,
        Err(_) => panic!("build.rs wrote a non-numeric TensorRT version"),
    }
}

/// Where TensorRT's log messages go. Boxed so that its address, which the
/// shim's logger keeps, does not move.
struct LogSink {
    log: LogCallback,
    /// Messages that said memory ran out; some arrive as warnings, which
    /// the shim does not put into its error messages.
    out_of_memory: AtomicU64,
}

/// The shim's `es_trt_lib` and what it depends on.
pub(crate) struct Loaded {
    lib: NonNull<ffi::Lib>,
    pub(crate) version: Version,
    /// `Err` holds the message for builds when libnvonnxparser is missing;
    /// deserializing does not need it.
    parser: Result<(), (String, String)>,
    sink: Box<LogSink>,
}

// SAFETY: the shim's es_trt_lib is immutable after init except for its
// logger, which locks; every TensorRT object is created per call.
unsafe impl Send for Loaded {}
// SAFETY: as above.
unsafe impl Sync for Loaded {}

impl Loaded {
    pub(crate) fn load(log: LogCallback) -> Result<Self, TensorRtError> {
        let major = HEADERS.major;
        let nvinfer = library::open_first(
            "TensorRT",
            &[format!("libnvinfer.so.{major}"), "libnvinfer.so".to_owned()],
        );
        let nvinfer = match nvinfer {
            Ok(opened) => opened,
            // Another major version installed says more than "not found".
            Err(not_found) => {
                return Err(match library::probe() {
                    Ok(other) => TensorRtError::VersionMismatch {
                        headers: HEADERS,
                        library: other.version,
                        path: other.path,
                    },
                    Err(_) => not_found,
                });
            }
        };
        let info = library::library_info(&nvinfer)?;
        if info.version.major != major || info.version.minor < HEADERS.minor {
            return Err(TensorRtError::VersionMismatch {
                headers: HEADERS,
                library: info.version,
                path: info.path,
            });
        }
        let create_builder: ffi::CreateFn =
            library::symbol(&nvinfer, "createInferBuilder_INTERNAL")?;
        let create_runtime: ffi::CreateFn =
            library::symbol(&nvinfer, "createInferRuntime_INTERNAL")?;
        let parser = library::open_first(
            "TensorRT's ONNX parser",
            &[
                format!("libnvonnxparser.so.{major}"),
                "libnvonnxparser.so".to_owned(),
            ],
        )
        .and_then(|opened: Opened| {
            library::symbol::<ffi::CreateParserFn>(&opened, "createNvOnnxParser_INTERNAL")
        });
        let (create_parser, parser) = match parser {
            Ok(create) => (Some(create), Ok(())),
            Err(TensorRtError::LoadLibrary { library, message }) => (None, Err((library, message))),
            Err(other) => return Err(other),
        };

        let sink = Box::new(LogSink {
            log,
            out_of_memory: AtomicU64::new(0),
        });
        let mut lib = ptr::null_mut();
        call(|error| unsafe {
            // SAFETY: the factories have the signatures shim.h names; the
            // sink outlives the lib, which is freed first in Drop.
            ffi::es_trt_init(
                create_builder,
                create_runtime,
                create_parser,
                forward_log,
                ptr::from_ref::<LogSink>(&sink).cast_mut().cast(),
                &mut lib,
                error,
            )
        })
        .map_err(|(_, message)| TensorRtError::LoadLibrary {
            library: nvinfer.name.clone(),
            message: format!("cannot initialise the TensorRT shim: {message}"),
        })?;
        Ok(Self {
            lib: NonNull::new(lib).expect("es_trt_init succeeded without a lib"),
            version: info.version,
            parser,
            sink,
        })
    }

    pub(crate) fn lib(&self) -> *mut ffi::Lib {
        self.lib.as_ptr()
    }

    /// Fails when libnvonnxparser could not be loaded.
    pub(crate) fn require_parser(&self) -> Result<(), TensorRtError> {
        self.parser
            .clone()
            .map_err(|(library, message)| TensorRtError::LoadLibrary { library, message })
    }

    /// How many out-of-memory messages TensorRT has logged so far.
    pub(crate) fn out_of_memory_messages(&self) -> u64 {
        self.sink.out_of_memory.load(Ordering::Relaxed)
    }

    pub(crate) fn dla_cores(&self) -> Result<u32, TensorRtError> {
        let mut cores = 0;
        // SAFETY: lib is live; cores outlives the call.
        call(|error| unsafe { ffi::es_trt_dla_cores(self.lib(), &mut cores, error) }).map_err(
            |(_, message)| TensorRtError::Build {
                out_of_memory: crate::error::mentions_out_of_memory(&message),
                message: format!("cannot count DLA cores: {message}"),
            },
        )?;
        Ok(u32::try_from(cores).unwrap_or(0))
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // SAFETY: created by es_trt_init; every engine holds an Arc to this,
        // so no TensorRT object that uses the logger is left.
        unsafe { ffi::es_trt_free(self.lib.as_ptr()) };
    }
}

/// Calls a shim function that reports failure through `char** error`, and
/// returns its status and message on failure.
pub(crate) fn call(f: impl FnOnce(*mut *mut c_char) -> i32) -> Result<(), (i32, String)> {
    let mut error: *mut c_char = ptr::null_mut();
    let status = f(&mut error);
    if status == ffi::OK {
        return Ok(());
    }
    let message = if error.is_null() {
        "no details (the shim could not allocate its message)".to_owned()
    } else {
        // SAFETY: the shim wrote a C string it allocated for us to free.
        let message = unsafe { CStr::from_ptr(error) }
            .to_string_lossy()
            .into_owned();
        unsafe { ffi::es_trt_string_free(error) };
        message
    };
    Err((status, message))
}

/// `es_trt_log_fn`: hands TensorRT's messages to the Rust callback.
unsafe extern "C" fn forward_log(user: *mut c_void, severity: i32, message: *const c_char) {
    // A panicking callback must not unwind into C++; the message is lost.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: user is the LogSink given to es_trt_init, alive while the
        // lib is; message is a C string for the duration of the call.
        let sink = unsafe { &*user.cast::<LogSink>() };
        let text = if message.is_null() {
            Default::default()
        } else {
            unsafe { CStr::from_ptr(message) }.to_string_lossy()
        };
        if crate::error::mentions_out_of_memory(&text) {
            sink.out_of_memory.fetch_add(1, Ordering::Relaxed);
        }
        builder::legacy_progress_log(&text);
        (sink.log)(Severity::from_raw(severity), &text);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" {
        /// Only tests need it: the crate takes the version from build.rs.
        fn es_trt_header_version() -> i32;
    }

    #[test]
    fn build_script_and_shim_agree_on_the_headers() {
        // SAFETY: returns a constant.
        let raw = unsafe { es_trt_header_version() };
        assert_eq!(library::decode_version(raw), HEADERS);
    }

    #[test]
    fn headers_are_supported() {
        assert!((HEADERS.major, HEADERS.minor) >= (8, 5), "{HEADERS}");
    }
}
