//! System tests: the bundled model and clip through the real crates.

mod backend;
mod calibrate;
mod common;
#[path = "../engine_double/mod.rs"]
mod engine_double;
mod eval;
mod gpu_line;
mod provision;
mod replay;
mod yocto;
