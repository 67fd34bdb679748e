//! The `wasm(node)` column: tern-runtime compiled to wasm, in Node (runtime-wasm/node/run_package.mjs on the build
//! in runtime-wasm/pkg). When node or that build is missing its cells are not run, with a note
//! ([`Cell::not_run`]): scripts/setup-web.sh builds it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use tern_tests::repo_root;

use super::{Column, Job};
use crate::compare::Cell;

/// The wasm(node) column, with whether node and the build are there, looked up on its first cell.
#[derive(Default)]
pub struct WasmNode {
    runner: OnceLock<Option<PathBuf>>,
}

impl Column for WasmNode {
    fn name(&self) -> &'static str {
        "wasm(node)"
    }

    fn ignored_as(&self) -> &'static str {
        "x86_64"
    }

    fn run(&self, job: &Job) -> Cell {
        let Some(script) = self.runner.get_or_init(runner) else {
            return Cell::not_run("node or runtime-wasm/pkg is missing (scripts/setup-web.sh)");
        };
        let output = job.output_file(self.name());
        let mut command = Command::new("node");
        command
            .arg(script)
            .arg(job.package)
            .arg(job.features_file)
            .arg(job.rows.to_string())
            .arg(&output);
        job.check(job.run_runner(command, &output))
    }
}

/// The runner script when node and the wasm build (runtime-wasm/pkg, from scripts/build-wasm.sh) are there.
fn runner() -> Option<PathBuf> {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let built = repo_root()
        .join("runtime-wasm/pkg/node/tern_wasm.js")
        .exists();
    (node && built).then(|| repo_root().join("runtime-wasm/node/run_package.mjs"))
}
