//! `manifest.json`: what a package's graph takes and returns, how its outputs become SageMaker responses, and what
//! the compiler verified (precision, tolerance, targets, the graph's sha256).

use serde::{Deserialize, Serialize};

/// The manifest schema this build writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// Numeric precision of a package's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    F16,
    Int8,
}

/// One graph input or output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// The ONNX value name.
    pub name: String,
    /// ONNX element type name: `float32`, `int64`, …
    pub dtype: String,
    /// Dimensions; `null` for a dynamic one (the batch).
    pub shape: Vec<Option<usize>>,
}

/// How the graph's outputs map onto SageMaker's response for the algorithm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResponseShape {
    /// `{"predictions":[{"score":…,"predicted_label":…}]}` (Linear Learner and other supervised models):
    /// `task` is `binary_classifier`, `multiclass_classifier` or `regressor`; `score` names the output holding
    /// scores (rows × 1 or rows × classes); `predicted_label` the output holding labels, for classifiers.
    Supervised {
        task: String,
        score: String,
        predicted_label: Option<String>,
    },
    /// SageMaker XGBoost: one value (or, for multi:softprob, one list) per record; `output` names the output.
    Xgboost { output: String, objective: String },
    /// SageMaker K-Means: `{"closest_cluster": 1.0, "distance_to_cluster": 3.0}` per record; `closest_cluster`
    /// names the int64 `[N]` output, `distance_to_cluster` the float32 `[N, 1]` one.
    Clustering {
        closest_cluster: String,
        distance_to_cluster: String,
    },
    /// SageMaker PCA: `{"projection": [..]}` per record, under the top-level key `projections` in JSON;
    /// `projection` names the float32 `[N, num_components]` output.
    Projection { projection: String },
    /// SageMaker Random Cut Forest: `{"score": 1.7}` per record, under the top-level key `scores` in JSON; `score`
    /// names the float32 `[N, 1]` output.
    AnomalyScore { score: String },
    /// SageMaker k-NN: `{"predicted_label": 2.0}` per record and, when the `Accept` carries `verbose=true`, the k
    /// neighbours' `distances` and `labels`, nearest first. `predicted_label` names the float32 `[N]` output (the
    /// label value, or the mean for regressors), `distances` and `labels` the float32 `[N, k]` ones, and `score`
    /// the output the compiler verified against the trainer (vote shares `[N, classes]` or the mean `[N, 1]`).
    NearestNeighbors {
        score: String,
        predicted_label: String,
        distances: String,
        labels: String,
    },
}

/// What the compiler measured on held-out rows: the package against the trainer's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Largest |package − trainer| allowed for any score, as verified.
    pub absolute: f64,
    /// Largest |package − trainer| / max(|trainer|, 1e-6) allowed, as verified.
    pub relative: f64,
    /// Fraction of rows whose predicted label must equal the trainer's (1.0 for fp32).
    pub label_agreement: f64,
    /// The drift actually measured on `verified_rows` rows.
    pub measured_absolute: f64,
    pub measured_label_agreement: f64,
    pub verified_rows: usize,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub tern_version: String,
    /// The trainer's algorithm name, e.g. `linear-learner`.
    pub algorithm: String,
    pub precision: Precision,
    /// Targets the compiler verified the graph's ops for: `x86_64`, `aarch64`, `wasm32`, `gpu`.
    pub targets: Vec<String>,
    /// The number of features a request row has.
    pub feature_dim: usize,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Request content types the package accepts, e.g. `text/csv`, `application/json`.
    pub accepts: Vec<String>,
    /// Response content types it produces.
    pub produces: Vec<String>,
    /// Class index → label text, for classifiers.
    #[serde(default)]
    pub label_map: Option<Vec<String>>,
    pub response: ResponseShape,
    /// Whether NaN features mean "missing" to this model (gradient-boosted trees learn a default direction for them).
    /// When false, requests holding NaN are refused; ±infinity is refused by every model.
    #[serde(default)]
    pub missing_values: bool,
    /// Opsets the graph imports: domain (`""` = ai.onnx) → version.
    pub opsets: std::collections::BTreeMap<String, i64>,
    /// sha256 of `model.onnx`, hex.
    pub graph_sha256: String,
    pub tolerance: Tolerance,
}
