//! System tests: the bundled model and clip through the real crates.

mod backend;
mod calibrate;
mod common;
mod eval;
mod replay;
