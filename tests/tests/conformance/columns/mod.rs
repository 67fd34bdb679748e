//! The matrix's columns: one runtime each, behind [`Column`]. A column gets one compiled package and the case's
//! held-out rows ([`Job`]), runs them its own way (in process, a runner under qemu, a script in another language, a
//! browser) and judges the result with [`Job::check`], the comparison every column shares.
//!
//! A column's expensive resources (the cross-built aarch64 runner, the GPU adapter, the one Chromium) are created on
//! its first cell and kept for the rest of the process; trials run on several threads, so a resource that serves one
//! job at a time sits behind a `Mutex`.

mod aarch64;
mod chromium;
mod native;
mod onnxruntime;
mod wasm_node;
mod wgpu;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tern_runtime::{EngineKind, Manifest, Precision, ResponseShape};
use tern_trainer::Predictions;

use crate::compare::{compare, Cell, RuntimePredictions};

/// One runtime of the matrix.
pub trait Column: Send + Sync {
    /// The column's heading, as the matrix and [`crate::cases::IGNORED`] spell it.
    fn name(&self) -> &'static str;

    /// The column whose [`crate::cases::IGNORED`] entries apply here: the columns that run x86_64's package with
    /// another engine share its entries.
    fn ignored_as(&self) -> &'static str {
        self.name()
    }

    /// Runs `job`'s package on its rows and judges the outputs ([`Job::check`]); a column that cannot run here
    /// answers [`Cell::not_run`], one whose backend refuses the graph [`Cell::fallback`].
    fn run(&self, job: &Job) -> Cell;

    /// A line for under the matrix once every cell has run (e.g. which adapter served the column), if any.
    fn footnote(&self) -> Option<String> {
        None
    }
}

/// Every column, in the matrix's order. `work` is the folder every package, feature file and output file of the run
/// lies in (the Chromium columns serve it to the browser).
pub fn all(work: &Path) -> Vec<Box<dyn Column>> {
    let browser = Arc::new(chromium::Browser::new(work));
    vec![
        Box::new(native::Native::new("x86_64", EngineKind::Tract)),
        Box::new(native::Native::new("interpreter", EngineKind::Interpreter)),
        Box::new(aarch64::Aarch64::default()),
        Box::new(onnxruntime::OnnxRuntime),
        Box::new(wasm_node::WasmNode::default()),
        Box::new(wgpu::NativeWgpu::default()),
        Box::new(chromium::ChromiumColumn::new(
            "chromium-wasm",
            "wasm",
            browser.clone(),
        )),
        Box::new(chromium::ChromiumColumn::new(
            "chromium-webgpu",
            "webgpu",
            browser,
        )),
    ]
}

/// One cell's work: a compiled package and the held-out rows it runs on, with the trainer's predictions for them.
pub struct Job<'a> {
    /// The package folder (manifest.json, model.onnx).
    pub package: &'a Path,
    pub manifest: &'a Manifest,
    /// The rows, row-major.
    pub features: &'a [f32],
    /// The same rows as little-endian float32, for runners in other processes.
    pub features_file: &'a Path,
    pub rows: usize,
    pub precision: Precision,
    /// The trainer's predictions for the rows.
    pub expected: &'a Predictions,
    /// The prefix of the files runners write their outputs to (one per column: [`Job::output_file`]).
    pub output_prefix: String,
}

impl Job<'_> {
    /// Where `column`'s runner writes this job's outputs.
    pub fn output_file(&self, column: &str) -> PathBuf {
        PathBuf::from(format!("{}-{column}.json", self.output_prefix))
    }

    /// The cell for a run: its predictions judged against the trainer's, or its error as a failure.
    pub fn check(&self, run: Result<RuntimePredictions, String>) -> Cell {
        match run {
            Ok(predictions) => compare(
                self.expected,
                &predictions,
                self.precision,
                &self.manifest.tolerance,
                self.rows,
            ),
            Err(error) => Cell::failed(error),
        }
    }

    /// Runs a runner process that writes `output` in the `{"outputs":[…]}` contract of
    /// runtime-core/examples/run_package.rs, and reads its predictions.
    pub fn run_runner(
        &self,
        command: Command,
        output: &Path,
    ) -> Result<RuntimePredictions, String> {
        run_command(command).and_then(|()| from_runner_file(output, self.manifest))
    }
}

/// The score output's name and the label output's, from the manifest's response shape.
pub fn output_names(manifest: &Manifest) -> (String, Option<String>) {
    match &manifest.response {
        ResponseShape::Supervised {
            score,
            predicted_label,
            ..
        } => (score.clone(), predicted_label.clone()),
        ResponseShape::Xgboost { output, .. } => (output.clone(), None),
        ResponseShape::Clustering {
            closest_cluster,
            distance_to_cluster,
        } => (distance_to_cluster.clone(), Some(closest_cluster.clone())),
        ResponseShape::Projection { projection } => (projection.clone(), None),
        ResponseShape::AnomalyScore { score } => (score.clone(), None),
        ResponseShape::NearestNeighbors { score, .. } => (score.clone(), None),
        ResponseShape::Fields { fields, .. } => (
            fields
                .first()
                .map(|field| field.output.clone())
                .unwrap_or_default(),
            None,
        ),
    }
}

fn run_command(mut command: Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Reads a runner's `{"outputs":[{"name","shape","values"}]}` file: the manifest's score and label outputs.
fn from_runner_file(path: &Path, manifest: &Manifest) -> Result<RuntimePredictions, String> {
    let outputs = read_outputs(path);
    let (score, label) = output_names(manifest);
    let (_, scores) = outputs
        .get(&score)
        .ok_or_else(|| format!("no output {score}"))?;
    let labels = match label {
        Some(name) => Some(
            outputs
                .get(&name)
                .ok_or_else(|| format!("no output {name}"))?
                .1
                .iter()
                .map(|&v| v as i64)
                .collect(),
        ),
        None => None,
    };
    Ok(RuntimePredictions {
        scores: scores.iter().map(|&v| v as f32).collect(),
        labels,
    })
}

/// Reads the runner's / onnxruntime's `{"outputs":[{"name","shape","values"}]}` into a name → values map.
fn read_outputs(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    document["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let shape = o["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let values = o["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap_or(f64::NAN))
                .collect();
            (o["name"].as_str().unwrap().to_string(), (shape, values))
        })
        .collect()
}
