//! First-boot provisioning: from a freshly flashed box to a validated
//! TensorRT engine in service, run by a oneshot systemd unit.
//!
//! 1. [`probe`] reads the board (`/proc/device-tree/model`), the L4T release
//!    (`/etc/nv_tegra_release`), memory, the GPU (through cudarc) and
//!    TensorRT (loaded at run time).
//! 2. [`engine_inputs`] works out the engine key: model hash, TensorRT, GPU,
//!    DLA, precision, profile shapes (the camera's letterbox), calibration.
//! 3. [`Provisioner`] takes steps — calibrate INT8, build, validate,
//!    activate — as [`next_step`] decides from what is on disk. Each step's
//!    effect is one atomic write, so a power cut anywhere resumes at the
//!    right step on the next boot; [`steps_ahead`] is the dry run.
//!
//! A box without a GPU or TensorRT is stamped too ([`CpuBackend`]): it runs
//! on the CPU backend, and provisions again only when its key changes.
//!
//! The provisioned stamp ([`ActiveEngine`]) and the technician's status file
//! live on the data partition, so an A/B update re-provisions only when the
//! key changed (a new model, a TensorRT upgrade, another module).
#![deny(missing_docs)]

mod error;
mod plan;
mod probe;
mod run;
mod status;

pub use error::ProvisionError;
pub use plan::{
    EntryFacts, Facts, MAX_QUARANTINES, Step, ValidationFacts, next_precision, next_step,
    steps_ahead,
};
pub use probe::{
    BoxFacts, GpuInfo, MemoryInfo, SystemFiles, TensorRtInfo, dla_cores_of_board, mib,
    parse_device_tree_model, parse_l4t_release, parse_meminfo, probe, probe_gpu, workspace_for,
};
pub use run::{
    ActiveEngine, CpuBackend, DataPaths, Inputs, Provisioner, ReferenceSource, engine_inputs,
    model_input, prepare_engine, read_active, read_cpu_backend, tract_reference,
    validation_thresholds,
};
pub use status::{Status, StatusFile, StatusObserver, read_status};
