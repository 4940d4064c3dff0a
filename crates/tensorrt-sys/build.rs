//! Compiles the C++ shim when TensorRT headers are found and tells the crate
//! which ones through `cfg(tensorrt_shim)` and `EDGESORT_TRT_HEADERS_*`.
//! Without headers the crate builds its stub; see the crate docs.

use std::path::{Path, PathBuf};
use std::{env, fs, process};

/// Where JetPack's `libnvinfer-dev` puts the headers.
const JETPACK_INCLUDE: &str = "/usr/include/aarch64-linux-gnu";
const CUDA_INCLUDE: &str = "/usr/local/cuda/include";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tensorrt_shim)");
    println!("cargo::rerun-if-env-changed=TENSORRT_INCLUDE_DIR");
    println!("cargo::rerun-if-env-changed=CUDA_INCLUDE_DIR");
    println!("cargo::rerun-if-changed=shim");

    let required = env::var_os("CARGO_FEATURE_REQUIRE_TENSORRT").is_some();
    let tensorrt = match env::var_os("TENSORRT_INCLUDE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(JETPACK_INCLUDE),
    };
    if !tensorrt.join("NvInfer.h").is_file() {
        if required {
            fail(&format!(
                "feature require-tensorrt: no NvInfer.h in {}; install TensorRT's headers \
                 (JetPack's libnvinfer-dev and libnvonnxparsers-dev) or set TENSORRT_INCLUDE_DIR",
                tensorrt.display()
            ));
        }
        return;
    }
    let version_header = tensorrt.join("NvInferVersion.h");
    println!("cargo::rerun-if-changed={}", version_header.display());
    let [major, minor, patch] = header_version(&version_header);
    if (major, minor) < (8, 5) {
        fail(&format!(
            "TensorRT headers in {} are {major}.{minor}.{patch}; edgesort needs 8.5 or newer",
            tensorrt.display()
        ));
    }
    let cuda =
        env::var_os("CUDA_INCLUDE_DIR").map_or_else(|| PathBuf::from(CUDA_INCLUDE), PathBuf::from);
    if !cuda.join("cuda_runtime_api.h").is_file() {
        fail(&format!(
            "TensorRT headers found in {}, but no cuda_runtime_api.h in {}; set CUDA_INCLUDE_DIR",
            tensorrt.display(),
            cuda.display()
        ));
    }

    // -isystem: TensorRT's own headers trip -Wdeprecated and
    // -Wunused-parameter; -Werror is for our code only.
    let mut shim = cc::Build::new();
    shim.cpp(true)
        .std("c++17")
        .file("shim/shim.cpp")
        .include("shim")
        .flag("-isystem")
        .flag(&tensorrt)
        .flag("-isystem")
        .flag(&cuda)
        .flag("-Wall")
        .flag("-Wextra")
        .flag("-Werror");
    shim.compile("edgesort_trt_shim");

    println!("cargo::rustc-cfg=tensorrt_shim");
    println!("cargo::rustc-env=EDGESORT_TRT_HEADERS_MAJOR={major}");
    println!("cargo::rustc-env=EDGESORT_TRT_HEADERS_MINOR={minor}");
    println!("cargo::rustc-env=EDGESORT_TRT_HEADERS_PATCH={patch}");
    // For tests/fake_library.rs, which compiles a stand-in libnvinfer with
    // the shim's own compiler: in a cross-build that is the target's.
    println!(
        "cargo::rustc-env=EDGESORT_SHIM_CXX={}",
        shim.get_compiler().path().display()
    );
    println!(
        "cargo::rustc-env=EDGESORT_TRT_INCLUDE_DIR={}",
        tensorrt.display()
    );
    println!(
        "cargo::rustc-env=EDGESORT_CUDA_INCLUDE_DIR={}",
        cuda.display()
    );
}

/// Reads `NV_TENSORRT_MAJOR`, `_MINOR` and `_PATCH`.
fn header_version(path: &Path) -> [u32; 3] {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|error| fail(&format!("cannot read {}: {error}", path.display())));
    [
        "NV_TENSORRT_MAJOR",
        "NV_TENSORRT_MINOR",
        "NV_TENSORRT_PATCH",
    ]
    .map(|name| {
        text.lines()
            .find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some("#define") && words.next() == Some(name))
                    .then(|| words.next()?.parse().ok())
                    .flatten()
            })
            .unwrap_or_else(|| fail(&format!("no {name} in {}", path.display())))
    })
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    process::exit(1);
}
