//! `manifest.json`: what a package's graph takes and returns, how its outputs become SageMaker responses, and what
//! the compiler verified (precision, tolerance, targets, the graph's sha256).
//!
//! Version 2 adds the request [`Pipeline`]: the named, typed inputs a request record carries (dense or sparse
//! features, text, raw image bytes, integer sequences), the [`Step`]s that turn them into the graph's input row
//! (image decode/resize/normalise, text tokenise/hash/vocabulary), and the [`PostStep`]s that turn graph outputs into
//! typed response fields (a class index into its label text). runtime-core runs the steps itself, identically on
//! every target, so no runtime has code of its own for an algorithm. A version 1 manifest (no pipeline) reads as a
//! package of dense features.

use serde::{Deserialize, Serialize};

/// The manifest schema this build writes.
pub const MANIFEST_VERSION: u32 = 2;

/// The oldest manifest schema this build still reads.
pub const OLDEST_MANIFEST_VERSION: u32 = 1;

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
    /// Named fields per record, `{"label": "spam", "score": [0.1, 0.9]}`, under the top-level `key` in JSON: each
    /// field's value is an output's row (one number, a list, or the text a [`PostStep`] made). What algorithms
    /// without one of the shapes above answer.
    Fields {
        key: String,
        fields: Vec<ResponseField>,
    },
}

/// One field of a [`ResponseShape::Fields`] record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseField {
    /// The key in the response record.
    pub name: String,
    /// The graph output or [`PostStep`] output holding its value.
    pub output: String,
    /// Whether the value is a list even when the row holds one value.
    #[serde(default)]
    pub list: bool,
}

/// What one request input carries, before any [`Step`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// `feature_dim` float32 values per record (CSV, JSON, JSON lines, RecordIO-protobuf, libsvm).
    DenseFloat,
    /// Sparse float32 features (index, value) of `feature_dim`; absent entries read as the model reads them.
    SparseFloat,
    /// Text: `text/plain` (a record per line), `application/json` (`{"instances": ["…"]}`), JSON lines
    /// (`{"source": "…"}` per line).
    String,
    /// An encoded image (PNG, JPEG): `image/png`, `image/jpeg` or `application/x-image` bodies, one record each.
    ImageBytes,
    /// Integer token ids: JSON (`{"instances": [[1, 5, 2]]}`) or JSON lines (`{"tokens": [1, 5, 2]}`).
    IntegerSequence,
}

/// One named request input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestInput {
    pub name: String,
    pub kind: InputKind,
}

/// How a pixel is sampled when an image is resized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFilter {
    Nearest,
    Bilinear,
}

/// The order an image's values are flattened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixelLayout {
    /// Channels first (`[C, H, W]`), as ONNX image models take them.
    Chw,
    /// Channels last (`[H, W, C]`).
    Hwc,
}

/// One preprocessing step, run per record in order: the request input's value in, the next step's value out; the
/// last step leaves the graph's `feature_dim` float32 values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    /// Encoded image bytes (PNG or JPEG) → pixels with `channels` channels (1: grey, 3: RGB), values 0..=255.
    DecodeImage { channels: u8 },
    /// Pixels → pixels `width` × `height`, sampled with `filter`.
    Resize {
        width: u32,
        height: u32,
        filter: ResizeFilter,
    },
    /// Pixels → the centred `width` × `height` window (at most the image's size).
    CenterCrop { width: u32, height: u32 },
    /// Pixels → float32 values `(pixel × scale − mean[c]) / std[c]` per channel `c`, flattened in `layout` order.
    Normalize {
        scale: f32,
        mean: Vec<f32>,
        std: Vec<f32>,
        layout: PixelLayout,
    },
    /// Text → tokens: runs of letters and digits (Unicode), lower-cased when `lowercase`.
    Tokenize { lowercase: bool },
    /// Tokens → `buckets` counts: each token (and, for `ngrams` 2, each pair of neighbours joined by a space) adds
    /// one to bucket FNV-1a-32(token) mod `buckets`.
    HashTokens { buckets: u32, ngrams: u8 },
    /// Tokens → ids: a token's index in `tokens`; tokens not listed take `unknown`, or are dropped when it is
    /// `None`.
    Vocabulary {
        tokens: Vec<String>,
        unknown: Option<u32>,
    },
    /// Ids → `size` counts (a bag of words); ids at or past `size` are errors.
    CountIds { size: u32 },
}

/// One postprocessing step, run on the graph's outputs over a batch; it adds a named output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PostStep {
    /// The integer class indices of `output` → their texts in the manifest's `label_map`, as the string output
    /// `into`.
    LabelLookup { output: String, into: String },
}

/// A request's path into the graph and out of it (manifest version 2); empty in a package of dense features.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    /// The named, typed inputs a request record carries; none: one input of dense float32 features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request: Vec<RequestInput>,
    /// The steps from the request input to the graph's input row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preprocess: Vec<Step>,
    /// The steps from the graph's outputs to further named outputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub postprocess: Vec<PostStep>,
}

impl Pipeline {
    /// The kind of the request's input: [`InputKind::DenseFloat`] when none is declared.
    pub fn input_kind(&self) -> InputKind {
        self.request
            .first()
            .map_or(InputKind::DenseFloat, |input| input.kind)
    }

    /// The request input's name, for errors: `features` when none is declared.
    pub fn input_name(&self) -> &str {
        self.request
            .first()
            .map_or("features", |input| input.name.as_str())
    }
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
    /// How requests reach the graph and outputs reach the response (version 2; empty for dense features).
    #[serde(flatten)]
    pub pipeline: Pipeline,
}
