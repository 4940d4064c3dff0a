//! System tests: the bundled model and clip through the real crates.

mod backend;
mod common;
mod eval;
mod replay;
