//! A loaded, verified package: its manifest and the graph prepared once for its engine: an optimised tract plan
//! (the `tract` feature, the default), or tern's interpreter ([`crate::interpreter`]).

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
#[cfg(feature = "tract")]
use tract_onnx::prelude::*;

use crate::error::RuntimeError;
use crate::interpreter::Interpreter;
use crate::manifest::{
    InputKind, Manifest, PostStep, ResponseShape, MANIFEST_VERSION, OLDEST_MANIFEST_VERSION,
};
use crate::onnx::ModelProto;

#[cfg(feature = "tract")]
mod row_ops;
#[cfg(feature = "tract")]
mod small_matmul;

/// The largest number of rows one graph run takes; [`Package::run`] splits larger inputs into batches of this size.
pub const BATCH_ROWS: usize = 1024;

/// The package's file names inside its folder.
pub const MANIFEST_FILE: &str = "manifest.json";
pub const GRAPH_FILE: &str = "model.onnx";

/// A package ready to run: manifest checked against its schema and the graph, the graph's sha256 verified, and the
/// graph parsed, typed for `[N, feature_dim]` float32 input and prepared once. Cheap to share across threads.
#[derive(Debug, Clone)]
pub struct Package {
    manifest: Manifest,
    engine: Engine,
    /// The graph's output names, in the engine's output order.
    output_names: Vec<String>,
}

/// Which engine runs a package's graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// tract: the graph optimised with tern's kernels swapped in. Only in builds with the `tract` feature.
    Tract,
    /// tern's interpreter: every op the compiler emits, in float32 index order ([`crate::interpreter`]).
    Interpreter,
}

impl EngineKind {
    /// The build's engine: tract where it is compiled in, otherwise the interpreter.
    pub const DEFAULT: EngineKind = if cfg!(feature = "tract") {
        EngineKind::Tract
    } else {
        EngineKind::Interpreter
    };

    /// `"tract"` or `"interpreter"`.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Tract => "tract",
            EngineKind::Interpreter => "interpreter",
        }
    }
}

#[derive(Debug, Clone)]
enum Engine {
    #[cfg(feature = "tract")]
    Tract(Arc<TypedRunnableModel>),
    Interpreter(Arc<Interpreter>),
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

/// An output's values, row-major. Floating outputs (float16/64 included) arrive as float32, integer ones as int64;
/// text comes from the manifest's postprocessing steps (a class's label).
#[derive(Debug, Clone, PartialEq)]
pub enum OutputValues {
    F32(Vec<f32>),
    I64(Vec<i64>),
    Text(Vec<String>),
}

impl Output {
    /// Values per row (1 for a `[N]` output).
    pub fn columns(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The values as float32 (int64 converted; text is NaN).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.values {
            OutputValues::F32(values) => values.clone(),
            OutputValues::I64(values) => values.iter().map(|&v| v as f32).collect(),
            OutputValues::Text(values) => vec![f32::NAN; values.len()],
        }
    }

    /// Row `row`'s values as float32 (text is NaN).
    pub fn row_f32(&self, row: usize) -> Vec<f32> {
        let columns = self.columns();
        let range = row * columns..(row + 1) * columns;
        match &self.values {
            OutputValues::F32(values) => values[range].to_vec(),
            OutputValues::I64(values) => values[range].iter().map(|&v| v as f32).collect(),
            OutputValues::Text(_) => vec![f32::NAN; columns],
        }
    }

    /// Row `row`'s first value as an integer label (a float output is rounded; text is 0).
    pub fn row_label(&self, row: usize) -> i64 {
        let at = row * self.columns();
        match &self.values {
            OutputValues::F32(values) => values[at].round() as i64,
            OutputValues::I64(values) => values[at],
            OutputValues::Text(_) => 0,
        }
    }

    /// Row `row`'s first value as text, for text outputs.
    pub fn row_text(&self, row: usize) -> Option<&str> {
        match &self.values {
            OutputValues::Text(values) => values.get(row * self.columns()).map(String::as_str),
            _ => None,
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
        Self::load_with(dir, EngineKind::DEFAULT)
    }

    /// [`Package::load`] on a chosen engine; [`EngineKind::Tract`] is refused by a build without it.
    pub fn load_with(dir: &Path, engine: EngineKind) -> Result<Package, RuntimeError> {
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
            engine,
        )
    }

    /// Verifies and prepares a package from the bytes of `manifest.json` and `model.onnx`: the manifest parses and
    /// has [`MANIFEST_VERSION`]; the graph's sha256 equals `graph_sha256` (so modified or truncated bytes are
    /// refused); the graph parses; the manifest's single input and its outputs exist in the graph, and the
    /// response shape names declared outputs; the graph is typed for float32 `[N, feature_dim]` and prepared for the
    /// build's engine ([`EngineKind::DEFAULT`]).
    pub fn from_bytes(manifest: &[u8], onnx: &[u8]) -> Result<Package, RuntimeError> {
        Self::from_parts(
            manifest,
            MANIFEST_FILE,
            onnx,
            GRAPH_FILE,
            EngineKind::DEFAULT,
        )
    }

    /// [`Package::from_bytes`] on a chosen engine; [`EngineKind::Tract`] is refused by a build without it.
    pub fn from_bytes_with(
        manifest: &[u8],
        onnx: &[u8],
        engine: EngineKind,
    ) -> Result<Package, RuntimeError> {
        Self::from_parts(manifest, MANIFEST_FILE, onnx, GRAPH_FILE, engine)
    }

    fn from_parts(
        manifest_bytes: &[u8],
        manifest_file: &str,
        onnx: &[u8],
        graph_file: &str,
        engine: EngineKind,
    ) -> Result<Package, RuntimeError> {
        let manifest = verified_manifest(manifest_bytes, manifest_file, onnx, graph_file)?;
        check_manifest(&manifest, manifest_file)?;

        let graph_error = |message: String| RuntimeError::Graph {
            file: graph_file.to_string(),
            message,
        };
        let proto = ModelProto::from_bytes(onnx)
            .map_err(|e| graph_error(format!("not a valid ONNX model: {e}")))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| graph_error("the model has no graph".to_string()))?;
        let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name()).collect();
        let graph_inputs: Vec<&str> = graph
            .input
            .iter()
            .map(|v| v.name())
            .filter(|name| !initializers.contains(name))
            .collect();
        let output_names: Vec<String> = graph.output.iter().map(|v| v.name().to_string()).collect();
        // Every graph output must be some node's output, an initializer or the input (tract panics on one that is
        // none of them).
        let produced = |name: &str| {
            initializers.contains(&name)
                || graph.input.iter().any(|v| v.name() == name)
                || graph
                    .node
                    .iter()
                    .any(|n| n.output.iter().any(|o| o == name))
        };
        if let Some(missing) = output_names.iter().find(|name| !produced(name)) {
            return Err(graph_error(format!(
                "graph output {missing:?} is not produced by any node, initializer or input"
            )));
        }
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

        let engine = match engine {
            #[cfg(feature = "tract")]
            EngineKind::Tract => {
                Engine::Tract(tract_plan(onnx, manifest.feature_dim).map_err(graph_error)?)
            }
            #[cfg(not(feature = "tract"))]
            EngineKind::Tract => {
                return Err(graph_error(
                    "this build has no tract engine (tern-runtime's `tract` feature is off)"
                        .to_string(),
                ))
            }
            EngineKind::Interpreter => {
                let interpreter =
                    Interpreter::new(&proto).map_err(|e| graph_error(e.to_string()))?;
                if interpreter.feature_dim() != manifest.feature_dim {
                    return Err(RuntimeError::Schema {
                        file: manifest_file.to_string(),
                        field: "feature_dim".to_string(),
                        message: format!(
                            "{} features, the graph's input has {}",
                            manifest.feature_dim,
                            interpreter.feature_dim()
                        ),
                    });
                }
                Engine::Interpreter(Arc::new(interpreter))
            }
        };
        Ok(Package {
            manifest,
            engine,
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
            let results = self.run_batch(batch, batch_rows)?;
            for (output, value) in outputs.iter_mut().zip(results) {
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
        let mut outputs = Outputs { rows, outputs };
        self.postprocess(&mut outputs)?;
        Ok(outputs)
    }

    /// Runs the manifest's [`PostStep`]s on `outputs` (a run of the graph on any engine, the GPU's included),
    /// adding the outputs they make; outputs already there are left as they are.
    pub fn postprocess(&self, outputs: &mut Outputs) -> Result<(), RuntimeError> {
        for step in &self.manifest.pipeline.postprocess {
            match step {
                PostStep::LabelLookup { into, .. } if outputs.get(into).is_some() => {}
                PostStep::LabelLookup { output, into } => {
                    let labels = self.manifest.label_map.as_deref().unwrap_or_default();
                    let source = outputs.require(output)?;
                    let texts = (0..outputs.rows)
                        .map(|row| {
                            let class = source.row_label(row);
                            usize::try_from(class)
                                .ok()
                                .and_then(|class| labels.get(class))
                                .cloned()
                                .ok_or_else(|| RuntimeError::Output {
                                    output: output.clone(),
                                    message: format!(
                                        "row {}: class {class} has no label (label_map has {})",
                                        row + 1,
                                        labels.len()
                                    ),
                                })
                        })
                        .collect::<Result<Vec<String>, RuntimeError>>()?;
                    outputs.outputs.push(Output {
                        name: into.clone(),
                        shape: vec![outputs.rows],
                        values: OutputValues::Text(texts),
                    });
                }
            }
        }
        Ok(())
    }

    /// The engine running this package's graph.
    pub fn engine(&self) -> EngineKind {
        match self.engine {
            #[cfg(feature = "tract")]
            Engine::Tract(_) => EngineKind::Tract,
            Engine::Interpreter(_) => EngineKind::Interpreter,
        }
    }

    /// One run of the graph on `rows` rows (at most [`BATCH_ROWS`]): every output, in graph order.
    fn run_batch(&self, batch: &[f32], rows: usize) -> Result<Vec<Output>, RuntimeError> {
        match &self.engine {
            #[cfg(feature = "tract")]
            Engine::Tract(plan) => {
                let dim = self.manifest.feature_dim;
                let input = Tensor::from_shape(&[rows, dim], batch).map_err(run_error)?;
                let results = plan.run(tvec!(input.into_tvalue())).map_err(run_error)?;
                results
                    .iter()
                    .zip(&self.output_names)
                    .map(|(value, name)| tract_output(name, value))
                    .collect()
            }
            Engine::Interpreter(interpreter) => interpreter
                .run(batch, rows)
                .map_err(|message| RuntimeError::Run { message }),
        }
    }
}

/// `onnx` as an optimised tract plan typed for float32 `[N, feature_dim]`: tract's into_optimized (declutter, then
/// codegen) with tern's kernels swapped in, small constant matrix products before codegen, row ops after.
#[cfg(feature = "tract")]
fn tract_plan(onnx: &[u8], feature_dim: usize) -> Result<Arc<TypedRunnableModel>, String> {
    let framework = crate::ops::onnx();
    let model = framework
        .model_for_read(&mut &onnx[..])
        .map_err(|e| format!("{e:#}"))?;
    let batch = model.symbols.sym("N");
    let mut model = model;
    model
        .set_input_fact(0, f32::fact([batch.to_dim(), feature_dim.to_dim()]).into())
        .map_err(|e| format!("{e:#}"))?;
    model
        .into_typed()
        .and_then(|mut typed| {
            typed.declutter()?;
            small_matmul::replace_small_matmuls(&mut typed)?;
            typed.optimize()?;
            row_ops::replace_row_ops(&mut typed)?;
            typed.into_runnable()
        })
        .map_err(|e| format!("{e:#}"))
}

#[cfg(feature = "tract")]
fn run_error(error: TractError) -> RuntimeError {
    RuntimeError::Run {
        message: format!("{error:#}"),
    }
}

/// A tract result as an [`Output`]: integer types as int64, the rest as float32.
#[cfg(feature = "tract")]
fn tract_output(name: &str, value: &TValue) -> Result<Output, RuntimeError> {
    let error = |message: String| RuntimeError::Output {
        output: name.to_string(),
        message,
    };
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
    let read = |e: TractError| error(format!("{e:#}"));
    let values = if integer {
        OutputValues::I64(plain(cast.to_plain_array_view::<i64>().map_err(read)?))
    } else {
        OutputValues::F32(plain(cast.to_plain_array_view::<f32>().map_err(read)?))
    };
    Ok(Output {
        name: name.to_string(),
        shape: value.shape().to_vec(),
        values,
    })
}

/// A view's values in row-major order.
#[cfg(feature = "tract")]
fn plain<T: Copy>(view: tract_ndarray::ArrayViewD<T>) -> Vec<T> {
    match view.as_slice() {
        Some(slice) => slice.to_vec(),
        None => view.iter().copied().collect(),
    }
}

/// Appends one batch's value of an output.
fn append(
    output: &mut Output,
    batch: Output,
    batch_rows: usize,
    first: bool,
) -> Result<(), RuntimeError> {
    let error = |message: String| RuntimeError::Output {
        output: output.name.clone(),
        message,
    };
    let shape = batch.shape;
    if shape.first() != Some(&batch_rows) {
        return Err(error(format!(
            "shape {shape:?} does not start with the batch's {batch_rows} rows"
        )));
    }
    if first {
        output.shape = shape.clone();
        output.shape[0] = 0;
        output.values = match batch.values {
            OutputValues::I64(_) => OutputValues::I64(Vec::new()),
            OutputValues::F32(_) => OutputValues::F32(Vec::new()),
            OutputValues::Text(_) => OutputValues::Text(Vec::new()),
        };
    } else if output.shape[1..] != shape[1..] {
        return Err(error(format!(
            "shape {shape:?} differs from an earlier batch's {:?}",
            output.shape
        )));
    }
    output.shape[0] += batch_rows;
    match (&mut output.values, batch.values) {
        (OutputValues::F32(values), OutputValues::F32(more)) => values.extend(more),
        (OutputValues::I64(values), OutputValues::I64(more)) => values.extend(more),
        (OutputValues::Text(values), OutputValues::Text(more)) => values.extend(more),
        _ => {
            return Err(error(
                "its type differs from an earlier batch's".to_string(),
            ))
        }
    }
    Ok(())
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
        Some(v) if (OLDEST_MANIFEST_VERSION as u64..=MANIFEST_VERSION as u64).contains(&v) => {}
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
    let pipeline = &manifest.pipeline;
    if pipeline.request.len() > 1 {
        return Err(schema(
            "request",
            format!(
                "{} request inputs; a package takes one",
                pipeline.request.len()
            ),
        ));
    }
    if pipeline.input_kind() == InputKind::SparseFloat {
        return Err(schema(
            "request[0].kind",
            "sparse_float inputs are read as dense_float features (sparse records are densified); declare dense_float"
                .to_string(),
        ));
    }
    crate::steps::check(pipeline.input_kind(), &pipeline.preprocess)
        .map_err(|(field, message)| schema(&field, message))?;
    let mut made: Vec<&str> = Vec::new();
    for (index, step) in pipeline.postprocess.iter().enumerate() {
        match step {
            PostStep::LabelLookup { output, into } => {
                let field = format!("postprocess[{index}]");
                if !manifest.outputs.iter().any(|o| &o.name == output) {
                    return Err(schema(
                        &field,
                        format!("{output:?} is not one of the manifest's outputs"),
                    ));
                }
                if manifest.label_map.is_none() {
                    return Err(schema(
                        &field,
                        "label_lookup needs the manifest's label_map".to_string(),
                    ));
                }
                if manifest.outputs.iter().any(|o| &o.name == into) || made.contains(&into.as_str())
                {
                    return Err(schema(
                        &field,
                        format!("output {into:?} is already declared"),
                    ));
                }
                made.push(into);
            }
        }
    }
    let declared =
        |name: &str| manifest.outputs.iter().any(|o| o.name == name) || made.contains(&name);
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
        ResponseShape::Fields { fields, .. } => {
            if fields.is_empty() {
                return Err(schema("response.fields", "no fields".to_string()));
            }
            fields
                .iter()
                .map(|field| ("response.fields", field.output.as_str()))
                .collect()
        }
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

/// Parses `manifest.json` and checks that the graph's sha256 is the one it records, so what the manifest says about
/// the graph (its verified tolerance, its inputs) is about these bytes. `manifest_file` and `graph_file` name the
/// files in errors ([`RuntimeError::Manifest`], [`RuntimeError::GraphDigest`]).
pub fn verified_manifest(
    manifest_bytes: &[u8],
    manifest_file: &str,
    onnx: &[u8],
    graph_file: &str,
) -> Result<Manifest, RuntimeError> {
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
    Ok(manifest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
