use std::path::PathBuf;

use crate::Version;

/// Why a TensorRT operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TensorRtError {
    /// A TensorRT library could not be opened or lacks a function we need.
    #[error("{message}")]
    LoadLibrary {
        /// The library names tried, e.g. `libnvinfer.so.10, libnvinfer.so`.
        library: String,
        /// The whole explanation, including what to install.
        message: String,
    },
    /// This build has no shim: TensorRT headers were not found when it was
    /// compiled.
    #[error("not built with TensorRT headers (set TENSORRT_INCLUDE_DIR when building)")]
    NotBuiltWithTensorRt,
    /// The installed library does not match the headers the shim was
    /// compiled against.
    #[error(
        "the TensorRT shim was compiled against TensorRT {headers} headers, but {} is TensorRT \
         {library}; rebuild with the installed TensorRT's headers (TENSORRT_INCLUDE_DIR)",
        path.display()
    )]
    VersionMismatch {
        /// The headers' version.
        headers: Version,
        /// The library's version.
        library: Version,
        /// The library file.
        path: PathBuf,
    },
    /// The ONNX parser rejected the model.
    #[error("cannot parse ONNX model {}: {}", path.display(), errors.join("; "))]
    ParseOnnx {
        /// The model file.
        path: PathBuf,
        /// The parser's errors, one per entry.
        errors: Vec<String>,
    },
    /// The builder could not build an engine.
    #[error("cannot build engine: {message}")]
    Build {
        /// TensorRT's errors.
        message: String,
        /// Whether the builder ran out of memory; a smaller workspace may
        /// succeed.
        out_of_memory: bool,
    },
    /// The progress callback cancelled the build.
    #[error("engine build cancelled")]
    BuildCancelled,
    /// The runtime could not be created or rejected the plan.
    #[error("cannot deserialize engine: {message}")]
    Deserialize {
        /// TensorRT's errors.
        message: String,
    },
    /// The engine could not create an execution context.
    #[error("cannot create execution context: {message}")]
    CreateContext {
        /// TensorRT's errors.
        message: String,
    },
    /// The context rejected an input shape.
    #[error("cannot set shape {dims:?} of input {name:?}: {message}")]
    SetInputShape {
        /// The input tensor.
        name: String,
        /// The shape asked for.
        dims: Vec<i64>,
        /// TensorRT's errors.
        message: String,
    },
    /// The context rejected a tensor address.
    #[error("cannot set address of tensor {name:?}: {message}")]
    SetTensorAddress {
        /// The tensor.
        name: String,
        /// TensorRT's errors.
        message: String,
    },
    /// Inference could not be enqueued.
    #[error("cannot enqueue inference: {message}")]
    Enqueue {
        /// TensorRT's errors.
        message: String,
    },
}

/// Phrases with which TensorRT, CUDA and the C++ runtime report running out
/// of host or device memory.
/// Compared case-insensitively.
const OUT_OF_MEMORY: [&str; 5] = [
    "out of memory",
    "outofmemory",
    "bad_alloc",
    "cudaerrormemoryallocation",
    "requested amount of gpu memory",
];

/// Whether a TensorRT message says memory ran out, so that a build may be
/// retried with a smaller workspace.
#[cfg_attr(
    not(any(tensorrt_shim, test)),
    expect(dead_code, reason = "only the shim builds")
)]
pub(crate) fn mentions_out_of_memory(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    OUT_OF_MEMORY.iter().any(|phrase| message.contains(phrase))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_is_recognised_in_tensorrt_logs() {
        for message in [
            "1: [defaultAllocator.cpp::allocate::20] Error Code 1: Cuda Runtime (out of memory)",
            "Error Code 2: OutOfMemory (no further information)",
            "out of memory (std::bad_alloc)",
            "Cuda error in allocate: 2 (cudaErrorMemoryAllocation)",
            "Requested amount of GPU memory (4294967296 bytes) could not be allocated. \
             There may not be enough free memory for allocation to succeed.",
        ] {
            assert!(mentions_out_of_memory(message), "{message}");
        }
    }

    #[test]
    fn other_failures_are_not_out_of_memory() {
        for message in [
            "Some tactics do not have sufficient workspace memory to run. \
             Increasing workspace size will enable more tactics, please check verbose output.",
            "Network has dynamic or shape inputs, but no optimization profile has been defined.",
            "4: [network.cpp::validate::3062] Error Code 4: Internal Error (DLA does not support Softmax)",
        ] {
            assert!(!mentions_out_of_memory(message), "{message}");
        }
    }
}
