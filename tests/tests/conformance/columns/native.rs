//! The in-process columns: tern-runtime on tract (`x86_64`) and on tern's own interpreter (`interpreter`, the engine
//! of the browser build).

use std::path::Path;

use tern_runtime::{EngineKind, Manifest, Outputs, Package};

use super::{output_names, Column, Job};
use crate::compare::{Cell, RuntimePredictions};

/// tern-runtime in this process, on one engine.
pub struct Native {
    name: &'static str,
    engine: EngineKind,
}

impl Native {
    pub fn new(name: &'static str, engine: EngineKind) -> Native {
        Native { name, engine }
    }
}

impl Column for Native {
    fn name(&self) -> &'static str {
        self.name
    }

    fn ignored_as(&self) -> &'static str {
        "x86_64"
    }

    fn run(&self, job: &Job) -> Cell {
        job.check(run_native(job.package, job.features, job.rows, self.engine))
    }
}

fn run_native(
    dir: &Path,
    features: &[f32],
    rows: usize,
    engine: EngineKind,
) -> Result<RuntimePredictions, String> {
    let package = Package::load_with(dir, engine).map_err(|e| e.to_string())?;
    let outputs = package.run(features, rows).map_err(|e| e.to_string())?;
    predictions(&outputs, package.manifest(), rows)
}

/// The manifest's score and label outputs out of an in-process run's `outputs`.
pub fn predictions(
    outputs: &Outputs,
    manifest: &Manifest,
    rows: usize,
) -> Result<RuntimePredictions, String> {
    let (score, label) = output_names(manifest);
    let scores = outputs.require(&score).map_err(|e| e.to_string())?.to_f32();
    let labels = match label {
        Some(name) => {
            let output = outputs.require(&name).map_err(|e| e.to_string())?;
            Some((0..rows).map(|r| output.row_label(r)).collect())
        }
        None => None,
    };
    Ok(RuntimePredictions { scores, labels })
}
