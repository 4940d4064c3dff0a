//! The process the fault-injection test kills: provisions an engine with
//! the builder double into a data folder, as `edgesort provision` would.
//!
//! Usage: `engine-fault-target DATA_DIR MODEL`. Prints the last step as
//! JSON; exits 0 when the engine is in service.

// Shared with the system tests, which use the parts this binary does not.
#[allow(dead_code)]
#[path = "mod.rs"]
mod engine_double;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use edgesort_provision::{Provisioner, Step};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(data_dir), Some(model)) = (args.next(), args.next()) else {
        eprintln!("usage: engine-fault-target DATA_DIR MODEL");
        return ExitCode::from(64);
    };
    let config = engine_double::double_config(&data_dir, &model);
    let mut builder = engine_double::DoubleBuilder::new();
    builder.build_time = Duration::from_millis(20);
    builder.plan_bytes = 1 << 20;
    let inputs = engine_double::scene_inputs(&config, &builder);
    let reference = engine_double::scene_reference(&config, &inputs);
    let mut provisioner =
        Provisioner::new(&config, &mut builder, inputs, reference).expect("provisioner");
    let step = provisioner.run().expect("provisioning runs");
    println!("{}", serde_json::to_string(&step).expect("step serializes"));
    match step {
        Step::Done => ExitCode::SUCCESS,
        _ => ExitCode::from(2),
    }
}
