//! A loaded, verified package: its manifest and the graph as an optimised tract plan, built once.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

use crate::error::RuntimeError;
use crate::manifest::{Manifest, ResponseShape, MANIFEST_VERSION};

mod row_ops;
mod small_matmul;

/// The largest number of rows one graph run takes; [`Package::run`] splits larger inputs into batches of this size.
pub const BATCH_ROWS: usize = 1024;

/// The package's file names inside its folder.
pub const MANIFEST_FILE: &str = "manifest.json";
pub const GRAPH_FILE: &str = "model.onnx";

/// A package ready to run: manifest checked against its schema and the graph, the graph's sha256 verified, and the
/// graph parsed, typed for `[N, feature_dim]` float32 input and optimised once. Cheap to share across threads.
#[derive(Debug, Clone)]
pub struct Package {
    manifest: Manifest,
    plan: Arc<TypedRunnableModel>,
    /// The graph's output names, in the plan's output order.
    output_names: Vec<String>,
}

/// One graph output over every row of a [`Package::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The ONNX value name.
    pub name: String,
    /// The shape; `shape[0]` is the number of rows.
    pub shape: Vec<usize>,
    pub values: OutputValues,
}

/// An output's values, row-major. Floating outputs (float16/64 included) arrive as float32, integer ones as int64.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputValues {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Output {
    /// Values per row (1 for a `[N]` output).
    pub fn columns(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The values as float32 (int64 converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.values {
            OutputValues::F32(values) => values.clone(),
            OutputValues::I64(values) => values.iter().map(|&v| v as f32).collect(),
        }
    }

    /// Row `row`'s values as float32.
    pub fn row_f32(&self, row: usize) -> Vec<f32> {
        let columns = self.columns();
        let range = row * columns..(row + 1) * columns;
        match &self.values {
            OutputValues::F32(values) => values[range].to_vec(),
            OutputValues::I64(values) => values[range].iter().map(|&v| v as f32).collect(),
        }
    }

    /// Row `row`'s first value as an integer label (a float output is rounded).
    pub fn row_label(&self, row: usize) -> i64 {
        let at = row * self.columns();
        match &self.values {
            OutputValues::F32(values) => values[at].round() as i64,
            OutputValues::I64(values) => values[at],
        }
    }
}

/// Every graph output of a [`Package::run`], in graph order.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    pub rows: usize,
    pub outputs: Vec<Output>,
}

impl Outputs {
    /// The output named `name`.
    pub fn get(&self, name: &str) -> Option<&Output> {
        self.outputs.iter().find(|o| o.name == name)
    }

    /// The output named `name`, or an error naming it.
    pub fn require(&self, name: &str) -> Result<&Output, RuntimeError> {
        self.get(name).ok_or_else(|| RuntimeError::Output {
            output: name.to_string(),
            message: "the graph did not return it".to_string(),
        })
    }
}

impl Package {
    /// Loads `dir/manifest.json` and `dir/model.onnx` and verifies them (see [`Package::from_bytes`]).
    pub fn load(dir: &Path) -> Result<Package, RuntimeError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|error| RuntimeError::Read {
                path: path.display().to_string(),
                error,
            })
        };
        let manifest = read(MANIFEST_FILE)?;
        let graph = read(GRAPH_FILE)?;
        Self::from_parts(
            &manifest,
            &dir.join(MANIFEST_FILE).display().to_string(),
            &graph,
            &dir.join(GRAPH_FILE).display().to_string(),
        )
    }

    /// Verifies and prepares a package from the bytes of `manifest.json` and `model.onnx`: the manifest parses and
    /// has [`MANIFEST_VERSION`]; the graph's sha256 equals `graph_sha256` (so modified or truncated bytes are
    /// refused); the graph parses; the manifest's single input and its outputs exist in the graph, and the
    /// response shape names declared outputs; the plan is typed for float32 `[N, feature_dim]` and optimised.
    pub fn from_bytes(manifest: &[u8], onnx: &[u8]) -> Result<Package, RuntimeError> {
        Self::from_parts(manifest, MANIFEST_FILE, onnx, GRAPH_FILE)
    }

    fn from_parts(
        manifest_bytes: &[u8],
        manifest_file: &str,
        onnx: &[u8],
        graph_file: &str,
    ) -> Result<Package, RuntimeError> {
        let manifest = parse_manifest(manifest_bytes, manifest_file)?;
        let actual = hex(&Sha256::digest(onnx));
        if !actual.eq_ignore_ascii_case(&manifest.graph_sha256) {
            return Err(RuntimeError::GraphDigest {
                file: graph_file.to_string(),
                expected: manifest.graph_sha256.clone(),
                actual,
                bytes: onnx.len(),
            });
        }
        check_manifest(&manifest, manifest_file)?;

        let graph_error = |message: String| RuntimeError::Graph {
            file: graph_file.to_string(),
            message,
        };
        let framework = crate::ops::onnx();
        let proto = framework
            .proto_model_for_read(&mut &onnx[..])
            .map_err(|e| graph_error(format!("not a valid ONNX model: {e:#}")))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| graph_error("the model has no graph".to_string()))?;
        let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let graph_inputs: Vec<&str> = graph
            .input
            .iter()
            .map(|v| v.name.as_str())
            .filter(|name| !initializers.contains(name))
            .collect();
        let output_names: Vec<String> = graph.output.iter().map(|v| v.name.clone()).collect();
        let input = &manifest.inputs[0];
        if graph_inputs != [input.name.as_str()] {
            return Err(RuntimeError::Schema {
                file: manifest_file.to_string(),
                field: "inputs[0].name".to_string(),
                message: format!(
                    "the graph's inputs are {graph_inputs:?}, the manifest declares {:?}",
                    input.name
                ),
            });
        }
        for (i, output) in manifest.outputs.iter().enumerate() {
            if !output_names.contains(&output.name) {
                return Err(RuntimeError::Schema {
                    file: manifest_file.to_string(),
                    field: format!("outputs[{i}].name"),
                    message: format!(
                        "{:?} is not a graph output (the graph returns {output_names:?})",
                        output.name
                    ),
                });
            }
        }

        let mut model = framework
            .model_for_proto_model(&proto)
            .map_err(|e| graph_error(format!("{e:#}")))?;
        let batch = model.symbols.sym("N");
        model
            .set_input_fact(
                0,
                f32::fact([batch.to_dim(), manifest.feature_dim.to_dim()]).into(),
            )
            .map_err(|e| graph_error(format!("{e:#}")))?;
        // tract's into_optimized (declutter, then codegen), with tern's kernels swapped in: small constant matrix
        // products before codegen, row ops after.
        let plan = model
            .into_typed()
            .and_then(|mut typed| {
                typed.declutter()?;
                small_matmul::replace_small_matmuls(&mut typed)?;
                typed.optimize()?;
                row_ops::replace_row_ops(&mut typed)?;
                typed.into_runnable()
            })
            .map_err(|e| graph_error(format!("{e:#}")))?;
        Ok(Package {
            manifest,
            plan,
            output_names,
        })
    }

    /// The package's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The first value of `values` this package refuses, with its position and the reason: ±infinity always, NaN
    /// unless the model reads NaN as a missing value ([`Manifest::missing_values`]).
    pub(crate) fn refused_value(&self, values: &[f32]) -> Option<(usize, String)> {
        let missing_allowed = self.manifest.missing_values;
        // Nearly every request is all finite: check that branch-free, a block at a time, before looking for where.
        let finite = |block: &[f32]| block.iter().fold(true, |all, v| all & v.is_finite());
        if values.chunks(256).all(finite) {
            return None;
        }
        let index = values
            .iter()
            .position(|v| v.is_infinite() || (v.is_nan() && !missing_allowed))?;
        let message = if values[index].is_nan() {
            format!(
                "NaN (a missing value) is not allowed: this {} model has no missing-value handling",
                self.manifest.algorithm
            )
        } else {
            format!("{} is not allowed: features must be finite", values[index])
        };
        Some((index, message))
    }

    /// Runs the graph on `rows` rows of `features` (row-major, `feature_dim` per row), [`BATCH_ROWS`] rows at a
    /// time, and returns every output over all rows.
    /// Refuses ±infinity, and NaN unless the model reads it as missing ([`Manifest::missing_values`]).
    pub fn run(&self, features: &[f32], rows: usize) -> Result<Outputs, RuntimeError> {
        let dim = self.manifest.feature_dim;
        if features.len() != rows * dim {
            return Err(RuntimeError::Run {
                message: format!(
                    "{} feature values given for {rows} rows of {dim} features",
                    features.len()
                ),
            });
        }
        if let Some((index, message)) = self.refused_value(features) {
            let (row, column) = (index / dim.max(1), index % dim.max(1));
            return Err(RuntimeError::Record {
                source_name: "input".to_string(),
                record: row as u64 + 1,
                field: format!("features[{column}]"),
                message,
            });
        }
        let mut outputs: Vec<Output> = self
            .output_names
            .iter()
            .map(|name| Output {
                name: name.clone(),
                shape: vec![0],
                values: OutputValues::F32(Vec::new()),
            })
            .collect();
        let mut seen_rows = 0;
        for batch in features.chunks(BATCH_ROWS * dim.max(1)) {
            let batch_rows = batch.len().checked_div(dim).unwrap_or(rows);
            let input = Tensor::from_shape(&[batch_rows, dim], batch).map_err(run_error)?;
            let results = self
                .plan
                .run(tvec!(input.into_tvalue()))
                .map_err(run_error)?;
            for (output, value) in outputs.iter_mut().zip(results.iter()) {
                append(output, value, batch_rows, seen_rows == 0)?;
            }
            seen_rows += batch_rows;
            if dim == 0 {
                break;
            }
        }
        if seen_rows == 0 {
            // No rows: shapes from the manifest, no values.
            for output in &mut outputs {
                if let Some(spec) = self.manifest.outputs.iter().find(|s| s.name == output.name) {
                    output.shape = spec.shape.iter().map(|d| d.unwrap_or(0)).collect();
                    if output.shape.is_empty() {
                        output.shape = vec![0];
                    }
                    output.shape[0] = 0;
                    if spec.dtype.starts_with("int") {
                        output.values = OutputValues::I64(Vec::new());
                    }
                }
            }
        }
        Ok(Outputs { rows, outputs })
    }
}

fn run_error(error: TractError) -> RuntimeError {
    RuntimeError::Run {
        message: format!("{error:#}"),
    }
}

/// Appends one batch's value of an output.
fn append(
    output: &mut Output,
    value: &TValue,
    batch_rows: usize,
    first: bool,
) -> Result<(), RuntimeError> {
    let error = |message: String| RuntimeError::Output {
        output: output.name.clone(),
        message,
    };
    let shape = value.shape().to_vec();
    if shape.first() != Some(&batch_rows) {
        return Err(error(format!(
            "shape {shape:?} does not start with the batch's {batch_rows} rows"
        )));
    }
    let integer = value.datum_type().is_integer();
    let cast = if integer {
        value.cast_to::<i64>()
    } else {
        value.cast_to::<f32>()
    }
    .map_err(|e| {
        error(format!(
            "cannot read {:?} values: {e:#}",
            value.datum_type()
        ))
    })?;
    if first {
        output.shape = shape.clone();
        output.shape[0] = 0;
        output.values = if integer {
            OutputValues::I64(Vec::new())
        } else {
            OutputValues::F32(Vec::new())
        };
    } else if output.shape[1..] != shape[1..] {
        return Err(error(format!(
            "shape {shape:?} differs from an earlier batch's {:?}",
            output.shape
        )));
    }
    output.shape[0] += batch_rows;
    let read = |e: TractError| error(format!("{e:#}"));
    match &mut output.values {
        OutputValues::F32(values) => {
            extend(values, cast.to_plain_array_view::<f32>().map_err(read)?)
        }
        OutputValues::I64(values) => {
            extend(values, cast.to_plain_array_view::<i64>().map_err(read)?)
        }
    }
    Ok(())
}

/// Appends a view's values in row-major order.
fn extend<T: Copy>(values: &mut Vec<T>, view: tract_ndarray::ArrayViewD<T>) {
    match view.as_slice() {
        Some(slice) => values.extend_from_slice(slice),
        None => values.extend(view.iter()),
    }
}

fn parse_manifest(bytes: &[u8], file: &str) -> Result<Manifest, RuntimeError> {
    let schema_error = |message: String| RuntimeError::Manifest {
        file: file.to_string(),
        message,
    };
    let document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| schema_error(format!("not valid JSON: {e}")))?;
    let version = document
        .get("manifest_version")
        .ok_or_else(|| schema_error("missing field `manifest_version`".to_string()))?;
    match version.as_u64() {
        Some(v) if v == MANIFEST_VERSION as u64 => {}
        Some(v) => {
            return Err(RuntimeError::ManifestVersion {
                file: file.to_string(),
                found: v.min(u32::MAX as u64) as u32,
                expected: MANIFEST_VERSION,
            })
        }
        None => {
            return Err(schema_error(format!(
                "field manifest_version: expected an unsigned integer, found {version}"
            )))
        }
    }
    serde_json::from_value(document).map_err(|e| schema_error(format!("schema: {e}")))
}

/// Checks what the graph does not: one float32 input of `[N, feature_dim]`, and a response shape naming outputs the
/// manifest declares.
fn check_manifest(manifest: &Manifest, file: &str) -> Result<(), RuntimeError> {
    let schema = |field: &str, message: String| RuntimeError::Schema {
        file: file.to_string(),
        field: field.to_string(),
        message,
    };
    let [input] = manifest.inputs.as_slice() else {
        return Err(schema(
            "inputs",
            format!(
                "expected exactly one input, found {}",
                manifest.inputs.len()
            ),
        ));
    };
    if input.dtype != "float32" {
        return Err(schema(
            "inputs[0].dtype",
            format!("expected float32, found {:?}", input.dtype),
        ));
    }
    if input.shape.len() != 2 || input.shape[1] != Some(manifest.feature_dim) {
        return Err(schema(
            "inputs[0].shape",
            format!(
                "expected [null, {}] (rows × feature_dim), found {:?}",
                manifest.feature_dim, input.shape
            ),
        ));
    }
    let declared = |name: &str| manifest.outputs.iter().any(|o| o.name == name);
    let named: Vec<(&str, &str)> = match &manifest.response {
        ResponseShape::Supervised {
            score,
            predicted_label,
            task,
        } => {
            if !matches!(
                task.as_str(),
                "binary_classifier" | "multiclass_classifier" | "regressor"
            ) {
                return Err(schema(
                    "response.task",
                    format!("expected binary_classifier, multiclass_classifier or regressor, found {task:?}"),
                ));
            }
            let mut named = vec![("response.score", score.as_str())];
            match predicted_label {
                Some(label) => named.push(("response.predicted_label", label.as_str())),
                None if task != "regressor" => {
                    return Err(schema(
                        "response.predicted_label",
                        format!("a {task} names its predicted_label output"),
                    ))
                }
                None => {}
            }
            named
        }
        ResponseShape::Xgboost { output, .. } => vec![("response.output", output.as_str())],
        ResponseShape::Clustering {
            closest_cluster,
            distance_to_cluster,
        } => vec![
            ("response.closest_cluster", closest_cluster.as_str()),
            ("response.distance_to_cluster", distance_to_cluster.as_str()),
        ],
        ResponseShape::Projection { projection } => {
            vec![("response.projection", projection.as_str())]
        }
        ResponseShape::AnomalyScore { score } => vec![("response.score", score.as_str())],
        ResponseShape::NearestNeighbors {
            score,
            predicted_label,
            distances,
            labels,
        } => vec![
            ("response.score", score.as_str()),
            ("response.predicted_label", predicted_label.as_str()),
            ("response.distances", distances.as_str()),
            ("response.labels", labels.as_str()),
        ],
    };
    for (field, name) in named {
        if !declared(name) {
            return Err(schema(
                field,
                format!("{name:?} is not one of the manifest's outputs"),
            ));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
