//! The `onnxruntime` column: tests/conformance/run_onnxruntime.py in the oracle virtualenv. Needs
//! scripts/setup-python.sh; without the virtualenv every cell of the column fails saying so.

use std::process::Command;

use tern_tests::repo_root;

use super::{Column, Job};
use crate::compare::Cell;

/// The onnxruntime column.
pub struct OnnxRuntime;

impl Column for OnnxRuntime {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn run(&self, job: &Job) -> Cell {
        let python = repo_root().join(".venv/bin/python");
        if !python.exists() {
            return Cell::failed(format!(
                "{} is missing: run scripts/setup-python.sh (onnxruntime column)",
                python.display()
            ));
        }
        let output = job.output_file(self.name());
        let mut command = Command::new(python);
        command
            .arg(repo_root().join("tests/conformance/run_onnxruntime.py"))
            .arg(job.package)
            .arg(job.features_file)
            .arg(job.rows.to_string())
            .arg(&output);
        job.check(job.run_runner(command, &output))
    }
}
