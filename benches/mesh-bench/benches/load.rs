//! `cargo bench -p mesh-bench --bench load`: runs the `mesh-bench` binary's
//! `run` subcommand (the orchestrator), writing into the workspace's
//! `target/bench/`. Extra arguments after `--` go to `run` (for example
//! `-- --runs 1 --duration-ms 1000`); cargo's own `--bench` flag is dropped.

use std::path::Path;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let exe = env!("CARGO_BIN_EXE_mesh-bench");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    let extra = std::env::args().skip(1).filter(|a| a != "--bench");
    let status = Command::new(exe)
        .arg("run")
        .arg("--out")
        .arg(out)
        .args(extra)
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("mesh-bench run failed: {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot start {exe}: {e}");
            ExitCode::FAILURE
        }
    }
}
