//! edgesort's own binding to NVIDIA TensorRT, for the Jetson Orin boxes:
//! TensorRT 8.5/8.6 (JetPack 5.1 and 6.0) and 10.x (JetPack 6.1 and 6.2).
//!
//! What goes in is an ONNX model and build settings ([`BuildRequest`]); what
//! comes out is a serialized engine plan and an updated timing cache
//! ([`BuiltEngine`]), and later an [`Engine`] deserialized from such a plan,
//! whose [`Context`] runs inference on CUDA device buffers. The steps are
//! [`probe`] (is TensorRT installed, which version), [`TensorRt::load`],
//! [`TensorRt::build`] or [`TensorRt::deserialize`], [`Engine::create_context`],
//! then [`Context::set_input_shape`], [`Context::set_tensor_address`] and
//! [`Context::enqueue`] per frame.
//!
//! TensorRT's API is C++, so a small C++ shim (`shim/shim.cpp`) turns it into
//! a C ABI. The shim is compiled only when TensorRT headers are found at build
//! time (`TENSORRT_INCLUDE_DIR`, else JetPack's `/usr/include/aarch64-linux-gnu`;
//! CUDA headers from `CUDA_INCLUDE_DIR`, else `/usr/local/cuda/include`).
//! Without them the crate still builds, and every entry point that needs the
//! shim returns [`TensorRtError::NotBuiltWithTensorRt`]; the
//! `require-tensorrt` feature turns a missing header set into a build error
//! instead. Even with the shim, nothing links against libnvinfer:
//! `libnvinfer` and `libnvonnxparser` are opened at run time and their four
//! factory functions handed to the shim, so the same binary starts on a box
//! without TensorRT and says what to install. Headers older than 8.5 are
//! refused: named I/O tensors and `enqueueV3` arrived in 8.5.
//!
//! Differences the shim covers: 8.x needs the explicit-batch network flag,
//! 10.x implies it and deprecates the flag; tensor dimensions are `int32` on
//! 8.x and `int64` on 10.x (always `i64` here); 10.x reports build progress
//! and can cancel a build, while on 8.x progress is read from the builder's
//! log lines; a legacy INT8 calibration cache is accepted on 8.x only (10.x
//! deprecates calibrators). A shim is only used with a library of the same
//! major version and at least its minor version ([`TensorRtError::VersionMismatch`]).
//!
//! TensorRT 11 will build strongly typed networks only and drops the FP16
//! and INT8 builder flags and calibrators: precision then comes from the
//! model itself (FP16 weights, Q/DQ nodes). The shim's C ABI already has a
//! strongly-typed option for 10.x; [`Precision`] will then describe the
//! model rather than ask the builder.
#![deny(missing_docs)]

mod builder;
mod error;
#[cfg(tensorrt_shim)]
mod ffi;
mod library;
mod runtime;
#[cfg(tensorrt_shim)]
mod shim;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use builder::{BuildRequest, BuiltEngine, Flow, Precision, ProfileShapes, ProgressEvent};
pub use error::TensorRtError;
pub use library::probe;
pub use runtime::{Context, DataType, Engine, IoTensor};

/// A TensorRT version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major version: 8 or 10 on the boxes we ship.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The TensorRT library found at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryInfo {
    /// The version libnvinfer reports.
    pub version: Version,
    /// The file the dynamic loader opened.
    pub path: PathBuf,
}

/// How serious a TensorRT log message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// TensorRT hit a bug or an unrecoverable state.
    InternalError,
    /// An operation failed.
    Error,
    /// Something works, but maybe not as intended.
    Warning,
    /// Informational.
    Info,
    /// Debugging detail.
    Verbose,
}

impl Severity {
    /// Maps `ILogger::Severity`; unknown values are treated as verbose.
    #[cfg_attr(
        not(any(tensorrt_shim, test)),
        expect(dead_code, reason = "only the shim logs")
    )]
    fn from_raw(raw: i32) -> Self {
        match raw {
            i32::MIN..=0 => Self::InternalError,
            1 => Self::Error,
            2 => Self::Warning,
            3 => Self::Info,
            _ => Self::Verbose,
        }
    }
}

/// The TensorRT headers the shim was compiled against; `None` when this
/// build has no shim.
pub fn shim_headers() -> Option<Version> {
    #[cfg(tensorrt_shim)]
    {
        Some(shim::HEADERS)
    }
    #[cfg(not(tensorrt_shim))]
    {
        None
    }
}

/// TensorRT's libraries loaded and the shim initialised.
///
/// Cheap to share: it is `Send + Sync`, and engines keep the libraries
/// alive on their own. Builds and deserializations may run on several
/// threads at once; each creates its own TensorRT builder or runtime.
pub struct TensorRt {
    #[cfg(tensorrt_shim)]
    loaded: Arc<shim::Loaded>,
    #[cfg(not(tensorrt_shim))]
    never: std::convert::Infallible,
}

/// Receives every TensorRT log message.
pub type LogCallback = Arc<dyn Fn(Severity, &str) + Send + Sync>;

impl TensorRt {
    /// Opens libnvinfer (and libnvonnxparser, which only builds need) and
    /// initialises the shim; `log` receives TensorRT's messages, from any
    /// thread.
    pub fn load(log: LogCallback) -> Result<Self, TensorRtError> {
        #[cfg(tensorrt_shim)]
        {
            shim::Loaded::load(log).map(|loaded| Self {
                loaded: Arc::new(loaded),
            })
        }
        #[cfg(not(tensorrt_shim))]
        {
            drop(log);
            Err(TensorRtError::NotBuiltWithTensorRt)
        }
    }

    /// The version of the loaded library.
    pub fn version(&self) -> Version {
        #[cfg(tensorrt_shim)]
        {
            self.loaded.version
        }
        #[cfg(not(tensorrt_shim))]
        {
            match self.never {}
        }
    }

    /// How many DLA cores TensorRT can build for: 2 on Orin AGX and NX, 0
    /// on Orin Nano.
    pub fn dla_cores(&self) -> Result<u32, TensorRtError> {
        #[cfg(tensorrt_shim)]
        {
            self.loaded.dla_cores()
        }
        #[cfg(not(tensorrt_shim))]
        {
            match self.never {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<TensorRt>();
        send_sync::<Engine>();
        send::<Context<'_>>();
    }

    #[test]
    fn version_displays_dotted() {
        let version = Version {
            major: 10,
            minor: 3,
            patch: 0,
        };
        assert_eq!(version.to_string(), "10.3.0");
    }

    #[test]
    fn severity_follows_ilogger_numbering() {
        let mapped: Vec<Severity> = (0..=5).map(Severity::from_raw).collect();
        assert_eq!(
            mapped,
            [
                Severity::InternalError,
                Severity::Error,
                Severity::Warning,
                Severity::Info,
                Severity::Verbose,
                Severity::Verbose
            ]
        );
    }

    #[cfg(not(tensorrt_shim))]
    #[test]
    fn load_without_the_shim_says_how_to_build_one() {
        assert_eq!(shim_headers(), None);
        let error = TensorRt::load(Arc::new(|_, _| {}))
            .err()
            .expect("no shim, no TensorRt");
        assert!(
            matches!(error, TensorRtError::NotBuiltWithTensorRt),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "not built with TensorRT headers (set TENSORRT_INCLUDE_DIR when building)"
        );
    }

    /// On this machine (no TensorRT) load says what to install; on a box
    /// with TensorRT it loads a library that matches the headers.
    #[cfg(tensorrt_shim)]
    #[test]
    fn load_with_the_shim_finds_a_matching_library_or_says_what_to_install() {
        let headers = shim_headers().expect("built with the shim");
        let result = TensorRt::load(Arc::new(|_, _| {}));
        match probe() {
            Err(_) => {
                let error = result.err().expect("load must fail without libnvinfer");
                assert!(
                    matches!(error, TensorRtError::LoadLibrary { .. }),
                    "{error:?}"
                );
                let message = error.to_string();
                let expected = format!(
                    "TensorRT not found: could not load libnvinfer.so.{} or libnvinfer.so (",
                    headers.major
                );
                assert!(message.starts_with(&expected), "{message}");
                assert!(message.contains("Install TensorRT"), "{message}");
            }
            Ok(info)
                if info.version.major == headers.major && info.version.minor >= headers.minor =>
            {
                let tensorrt = result.expect("a matching TensorRT loads");
                assert_eq!(tensorrt.version(), info.version);
            }
            Ok(_) => assert!(matches!(result, Err(TensorRtError::VersionMismatch { .. }))),
        }
    }
}
