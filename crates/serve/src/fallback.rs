use std::path::PathBuf;

use serde::Serialize;

/// Why the provisioned TensorRT engine does not serve the line: the first
/// check that failed, in the order [`crate::select`] makes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Fallback {
    /// This binary was built without TensorRT's headers.
    ShimNotCompiled,
    /// The CUDA driver found no GPU.
    NoGpu {
        /// The driver's answer.
        why: String,
    },
    /// No TensorRT library could be loaded.
    #[serde(rename = "no_tensorrt")]
    NoTensorRt {
        /// The loader's answer.
        why: String,
    },
    /// Provisioning has put no engine in service.
    NoActiveRecord {
        /// The record looked for.
        path: PathBuf,
    },
    /// The record names an engine that is missing, damaged, or whose bytes
    /// do not match its manifest's size and sha256.
    EngineDamaged {
        /// What is wrong.
        reason: String,
    },
    /// The engine was built for another GPU.
    OtherGpu {
        /// The GPU and compute capability in the manifest.
        built_for: String,
        /// This box's.
        here: String,
    },
    /// The engine was built with another TensorRT.
    #[serde(rename = "other_tensorrt")]
    OtherTensorRt {
        /// The version in the manifest.
        built_with: String,
        /// The version loaded here.
        here: String,
    },
    /// The engine was built from another model than the configured one.
    OtherModel {
        /// The model sha256 in the manifest.
        built_from: String,
        /// The configured model file.
        model: PathBuf,
        /// Its sha256, or why it could not be read.
        here: String,
    },
    /// TensorRT refused to load the engine.
    LoadFailed {
        /// TensorRT's or CUDA's message.
        why: String,
    },
    /// The engine's inputs or outputs are not a YOLO detector's for the
    /// configured classes.
    WrongIo {
        /// What does not fit.
        why: String,
    },
}

impl Fallback {
    /// A short, stable name of the check, for logs and tests.
    pub fn check(&self) -> &'static str {
        match self {
            Fallback::ShimNotCompiled => "shim_not_compiled",
            Fallback::NoGpu { .. } => "no_gpu",
            Fallback::NoTensorRt { .. } => "no_tensorrt",
            Fallback::NoActiveRecord { .. } => "no_active_record",
            Fallback::EngineDamaged { .. } => "engine_damaged",
            Fallback::OtherGpu { .. } => "other_gpu",
            Fallback::OtherTensorRt { .. } => "other_tensorrt",
            Fallback::OtherModel { .. } => "other_model",
            Fallback::LoadFailed { .. } => "load_failed",
            Fallback::WrongIo { .. } => "wrong_io",
        }
    }
}

impl std::fmt::Display for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fallback::ShimNotCompiled => write!(
                f,
                "this edgesort was built without TensorRT's headers, so it has no TensorRT shim"
            ),
            Fallback::NoGpu { why } => write!(f, "no GPU: {why}"),
            Fallback::NoTensorRt { why } => write!(f, "no TensorRT: {why}"),
            Fallback::NoActiveRecord { path } => write!(
                f,
                "no engine in service: {} is missing or unreadable (`edgesort provision` builds one)",
                path.display()
            ),
            Fallback::EngineDamaged { reason } => {
                write!(f, "the engine in service is unusable: {reason}")
            }
            Fallback::OtherGpu { built_for, here } => write!(
                f,
                "the engine in service was built for {built_for}, this box has {here} (`edgesort provision` rebuilds it)"
            ),
            Fallback::OtherTensorRt { built_with, here } => write!(
                f,
                "the engine in service was built with TensorRT {built_with}, this box has {here} (`edgesort provision` rebuilds it)"
            ),
            Fallback::OtherModel {
                built_from,
                model,
                here,
            } => write!(
                f,
                "the engine in service was built from a model with sha256 {built_from}, the configured {} has {here} (`edgesort provision` rebuilds it)",
                model.display()
            ),
            Fallback::LoadFailed { why } => {
                write!(f, "TensorRT could not load the engine in service: {why}")
            }
            Fallback::WrongIo { why } => {
                write!(
                    f,
                    "the engine in service is not the configured detector: {why}"
                )
            }
        }
    }
}
