//! The engine cache: TensorRT engines built on this box, kept until the
//! model, TensorRT or the GPU changes.
//!
//! A TensorRT engine runs only on the GPU and TensorRT version that built
//! it. [`EngineKey::of`] hashes everything an engine depends on ([`KeyInputs`]:
//! model bytes, TensorRT version, GPU and compute capability, DLA core,
//! precision, profile shapes, calibration and builder options), so a new
//! model from an update, a JetPack upgrade or a swapped module all mean a new
//! key and a rebuild, while a reboot or an update that changes none of them
//! finds its engine built.
//!
//! The steps of one engine's life, each safe to interrupt at any point:
//! 1. [`build_and_store`] runs an [`EngineBuilder`] (TensorRT on the box) and
//!    stores the engine with its [`Manifest`] in the [`EngineCache`]: atomic
//!    writes, manifest last, under a lock.
//! 2. [`validate_stored`] loads it and compares its detections on validation
//!    stills with the CPU reference's ([`ReferenceDetections`]); the verdict
//!    goes into the manifest. An engine that does not load is quarantined.
//! 3. A rejected engine makes way for the next precision of
//!    [`Precision::fallback_chain`](edgesort_types::config::Precision::fallback_chain);
//!    the reasons stay in the manifest.
//!
//! Which step comes next is the provisioning crate's decision.
#![deny(missing_docs)]

mod builder;
mod cache;
mod error;
mod key;
mod manifest;
mod steps;
mod validate;

pub use builder::{BuildFailure, BuildJob, BuildOutput, BuildProgress, BuildTarget, EngineBuilder};
pub use cache::{CacheLock, EngineCache, Entry};
pub use edgesort_types::{sha256_file, sha256_hex};
pub use error::EngineError;
pub use key::{BUILDER_REVISION, BuilderOptions, EngineKey, KeyInputs, ProfileShapes};
pub use manifest::Manifest;
pub use steps::{EngineSpec, MIN_WORKSPACE_BYTES, Validation, build_and_store, validate_stored};
pub use validate::{ReferenceDetections, Thresholds, ValidationReport, compare_detections};
