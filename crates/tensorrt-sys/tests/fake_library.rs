//! The shim end to end against a stand-in libnvinfer (`data/fake_nvinfer.cpp`)
//! compiled from the same headers: libraries found by name, the version
//! checked, the header's version passed to the factories, TensorRT's log
//! forwarded, and its errors turned into messages. Needs the shim, so it
//! runs in builds with TensorRT headers only.
#![cfg(tensorrt_shim)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use tensorrt_sys::{
    BuildRequest, Flow, Precision, ProgressEvent, Severity, TensorRt, TensorRtError,
};

/// Compiles the stand-in as `soname` in `dir`.
fn compile_fake(dir: &Path, soname: &str, version: u32) -> PathBuf {
    let output = dir.join(soname);
    let compiler = env!("EDGESORT_SHIM_CXX");
    let status = Command::new(compiler)
        .args([
            "-std=c++17",
            "-shared",
            "-fPIC",
            "-Wall",
            "-Wextra",
            "-Werror",
        ])
        .arg(format!("-Wl,-soname,{soname}"))
        .arg(format!("-DFAKE_VERSION={version}"))
        .args(["-isystem", env!("EDGESORT_TRT_INCLUDE_DIR")])
        .args(["-isystem", env!("EDGESORT_CUDA_INCLUDE_DIR")])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fake_nvinfer.cpp"))
        .arg("-o")
        .arg(&output)
        .status()
        .unwrap_or_else(|error| panic!("cannot run {compiler}: {error}"));
    assert!(
        status.success(),
        "{compiler} failed on the stand-in libnvinfer"
    );
    output
}

#[test]
fn shim_reports_what_a_gpu_less_tensorrt_says() {
    let headers = tensorrt_sys::shim_headers().expect("built with the shim");
    // getInferLibVersion's encoding changed in 10.0.
    let encoded = if headers.major >= 10 { 10_000 } else { 1000 } * headers.major
        + headers.minor * 100
        + headers.patch;
    let dir = tempfile::tempdir().expect("temporary directory");
    let nvinfer = compile_fake(
        dir.path(),
        &format!("libnvinfer.so.{}", headers.major),
        encoded,
    );
    compile_fake(
        dir.path(),
        &format!("libnvonnxparser.so.{}", headers.major),
        encoded,
    );
    // Loaded by path first, the stand-ins answer the crate's dlopen by
    // soname, as the real libraries would through the loader's search path.
    // SAFETY: the stand-in has no initialisers.
    let _held = ["libnvinfer", "libnvonnxparser"].map(|name| unsafe {
        libloading::Library::new(dir.path().join(format!("{name}.so.{}", headers.major)))
            .expect("stand-in loads")
    });

    let info = tensorrt_sys::probe().expect("probe finds the stand-in");
    assert_eq!(info.version, headers);
    assert_eq!(info.path, nvinfer);

    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let tensorrt = TensorRt::load(Arc::new(move |severity, message: &str| {
        sink.lock().unwrap().push((severity, message.to_owned()));
    }))
    .expect("the stand-in loads");
    assert_eq!(tensorrt.version(), headers);

    match tensorrt.dla_cores() {
        Err(TensorRtError::Build { message, .. }) => {
            assert_eq!(
                message,
                "cannot count DLA cores: createInferBuilder failed: fake builder: no GPU"
            )
        }
        other => panic!("{other:?}"),
    }
    match tensorrt.deserialize(b"not a plan", None) {
        Err(TensorRtError::Deserialize { message }) => {
            assert_eq!(message, "createInferRuntime failed: fake runtime: no GPU")
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("the stand-in has no runtime"),
    }

    let model = dir.path().join("model.onnx");
    std::fs::write(&model, b"not parsed: the builder fails first").expect("write model");
    let request = BuildRequest {
        onnx: &model,
        precision: Precision::Fp16,
        calibration_cache: None,
        profile: None,
        workspace_bytes: 1 << 30,
        dla_core: None,
        gpu_fallback: false,
        timing_cache: None,
    };
    let mut events = Vec::new();
    match tensorrt.build(&request, &mut |event| {
        events.push(event);
        Flow::Continue
    }) {
        Err(TensorRtError::Build {
            message,
            out_of_memory,
        }) => {
            assert_eq!(message, "createInferBuilder failed: fake builder: no GPU");
            // Said only in a warning, which the message leaves out.
            assert!(out_of_memory);
        }
        other => panic!("{other:?}"),
    }
    if headers.major < 10 {
        let phase = "Building engine".to_owned();
        assert_eq!(
            events,
            [
                ProgressEvent::PhaseStart {
                    name: phase.clone(),
                    parent: None,
                    steps: 3
                },
                ProgressEvent::PhaseFinish { name: phase },
            ]
        );
    } else {
        assert_eq!(events, []);
    }

    let missing = BuildRequest {
        onnx: Path::new("/nonexistent/model.onnx"),
        ..request
    };
    match tensorrt.build(&missing, &mut |_| Flow::Continue) {
        Err(TensorRtError::ParseOnnx { path, errors }) => {
            assert_eq!(path, Path::new("/nonexistent/model.onnx"));
            assert_eq!(errors, ["no such file"]);
        }
        other => panic!("{other:?}"),
    }

    let log = log.lock().unwrap();
    assert!(
        log.contains(&(Severity::Error, "fake runtime: no GPU".to_owned())),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|(severity, message)| *severity == Severity::Warning
                && message.starts_with("Requested amount")),
        "{log:?}"
    );
}
