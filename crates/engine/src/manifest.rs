use std::path::PathBuf;

use edgesort_types::config::Precision;
use serde::{Deserialize, Serialize};

use crate::{EngineKey, KeyInputs, ValidationReport};

/// The human-readable record beside each engine: what it was built from,
/// on what, how, and whether it passed validation. It is written after the
/// engine and is what makes an entry count; an engine without one is a
/// leftover of an interrupted build.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The engine's key.
    pub key: EngineKey,
    /// Everything the key was derived from.
    pub inputs: KeyInputs,
    /// The model file built from.
    pub model: PathBuf,
    /// The board, from the device tree.
    pub board: String,
    /// The L4T release, where there is one.
    pub l4t: Option<String>,
    /// The precision actually built.
    pub precision: Precision,
    /// Why each higher precision was given up, in order.
    pub fallback: Vec<String>,
    /// The workspace limit the build succeeded with.
    pub workspace_bytes: u64,
    /// Seconds the build took.
    pub build_seconds: f64,
    /// When the build finished, RFC 3339.
    pub built_at: String,
    /// SHA-256 of the engine file; a mismatch means the file is damaged.
    pub engine_sha256: String,
    /// Size of the engine file.
    pub engine_bytes: u64,
    /// The check against the CPU reference; `None` until it has run.
    pub validation: Option<ValidationReport>,
    /// The edgesort version that built it.
    pub edgesort_version: String,
}
