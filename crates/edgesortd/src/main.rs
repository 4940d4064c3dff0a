//! `edgesortd`: the sorting line as a systemd service (see the library).

fn main() -> std::process::ExitCode {
    edgesortd::main(edgesortd::served)
}
