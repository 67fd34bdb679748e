//! The `aarch64` column: runtime-core's `run_package` example cross-built for aarch64-unknown-linux-gnu, run under
//! qemu-aarch64. Needs scripts/setup-cross.sh; without the toolchain every cell of the column fails saying so.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use tern_tests::repo_root;

use super::{Column, Job};
use crate::compare::Cell;

/// The aarch64 column, with the runner it cross-builds on its first cell.
#[derive(Default)]
pub struct Aarch64 {
    runner: OnceLock<Result<PathBuf, String>>,
}

impl Column for Aarch64 {
    fn name(&self) -> &'static str {
        "aarch64"
    }

    fn run(&self, job: &Job) -> Cell {
        let runner = match self.runner.get_or_init(build_runner) {
            Ok(runner) => runner,
            Err(why) => return Cell::failed(why.clone()),
        };
        let output = job.output_file(self.name());
        let mut command = Command::new("qemu-aarch64");
        command
            .args(["-L", "/usr/aarch64-linux-gnu"])
            .arg(runner)
            .arg(job.package)
            .arg(job.features_file)
            .arg(job.rows.to_string())
            .arg(&output);
        job.check(job.run_runner(command, &output))
    }
}

/// Cross-builds the runner and returns its path; an error (the toolchain missing, the build failing) says what to do.
fn build_runner() -> Result<PathBuf, String> {
    let missing: Vec<&str> = [
        ("aarch64-linux-gnu-gcc", "--version"),
        ("qemu-aarch64", "--version"),
    ]
    .into_iter()
    .filter(|(tool, flag)| Command::new(tool).arg(flag).output().is_err())
    .map(|(tool, _)| tool)
    .collect();
    let target_installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("aarch64-unknown-linux-gnu"))
        .unwrap_or(false);
    if !missing.is_empty() || !target_installed {
        return Err(format!(
            "the aarch64 column needs the cross toolchain (missing: {missing:?}{}): run scripts/setup-cross.sh",
            if target_installed {
                ""
            } else {
                ", rust target aarch64-unknown-linux-gnu"
            }
        ));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "build",
            "--release",
            "--target",
            "aarch64-unknown-linux-gnu",
            "-p",
            "tern-runtime",
            "--example",
            "run_package",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cross-building the aarch64 runner failed".to_string());
    }
    Ok(target_dir.join("aarch64-unknown-linux-gnu/release/examples/run_package"))
}
