//! K-Means → ONNX. With the centres `C` (`[k, d]`, the artifact's `centroids`), the graph computes every squared
//! Euclidean distance by the expansion `‖x − c‖² = ‖x‖² − 2·x·cᵀ + ‖c‖²`:
//!
//! - `input_norm = ReduceSumSquare(input, axes=[1])` `[N, 1]`;
//! - `cross = MatMul(input, −2·Cᵀ)` `[N, k]` (the weight is a plain `[d, k]` initializer, so f16 / int8 quantize it
//!   per cluster like any dense weight), then `+ ‖c‖²` (`[k]`, summed in f64) and `+ input_norm`;
//! - `squared_distance = Relu(·)`: rounding can take a distance of (nearly) zero below zero;
//! - `closest_cluster = ArgMin(squared_distance, axis=1)` int64 `[N]` (the first centre on ties, as the trainer);
//! - `distance_to_cluster = Sqrt(ReduceMin(squared_distance, axes=[1]))` `[N, 1]`: the Euclidean distance, as the
//!   trainer's predictor reports it.
//!
//! The response is SageMaker's K-Means shape ([`ResponseShape::Clustering`]).

use tern_runtime::manifest::{Pipeline, ResponseShape};
use tern_runtime::onnx::{AttributeProto, TensorProto};
use tern_trainer::algorithms::kmeans::KMeansModel;
use tern_trainer::Artifact;

use super::{
    content_types, spec, GraphBuilder, LabelRule, Lowered, Lowering, DENSE_REQUEST_TYPES, INPUT,
    ONNX_OPSET,
};
use crate::CompileError;

/// The algorithm's registry name.
pub const NAME: &str = "kmeans";
/// The output holding each row's closest cluster (int64 `[N]`).
pub const CLOSEST_CLUSTER: &str = "closest_cluster";
/// The output holding each row's Euclidean distance to that cluster (float32 `[N, 1]`).
pub const DISTANCE_TO_CLUSTER: &str = "distance_to_cluster";

/// The lowering registered for K-Means (`tern-registry`).
pub struct KMeansLowering;

impl Lowering for KMeansLowering {
    fn algorithm(&self) -> &'static str {
        NAME
    }

    fn lower(&self, artifact: &Artifact) -> Result<Lowered, CompileError> {
        lower(artifact)
    }
}

/// Lowers a K-Means artifact (layout: `tern_trainer::algorithms::kmeans`).
pub fn lower(artifact: &Artifact) -> Result<Lowered, CompileError> {
    let model = KMeansModel::from_artifact(artifact)?;
    let d = model.feature_dim;
    let k = model.k();
    if model.centroids.iter().any(|v| !v.is_finite()) {
        return Err(CompileError::artifact(
            NAME,
            "centroids hold a non-finite value".to_string(),
        ));
    }
    // −2·Cᵀ, row-major [d, k]: scaling by a power of two is exact.
    let mut weight = vec![0.0f32; d * k];
    for (c, centre) in model.centroids.rows().into_iter().enumerate() {
        for (j, &v) in centre.iter().enumerate() {
            weight[j * k + c] = -2.0 * v;
        }
    }
    let norms: Vec<f32> = model
        .centroids
        .rows()
        .into_iter()
        .map(|centre| {
            centre
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>() as f32
        })
        .collect();

    let mut g = GraphBuilder::new("kmeans", d);
    let axes = || AttributeProto::ints("axes", vec![1]);
    let input_norm = g.node(
        "ReduceSumSquare",
        "",
        &[INPUT],
        "input_squared_norm",
        vec![axes(), AttributeProto::int("keepdims", 1)],
    );
    let weight = g.initializer(TensorProto::from_f32(
        "centroids_times_minus_two",
        &[d, k],
        &weight,
    ));
    let norms = g.initializer(TensorProto::from_f32(
        "centroid_squared_norms",
        &[k],
        &norms,
    ));
    let cross = g.node("MatMul", "", &[INPUT, &weight], "cross", vec![]);
    let shifted = g.node(
        "Add",
        "",
        &[&cross, &norms],
        "cross_plus_centroid_norms",
        vec![],
    );
    let expanded = g.node(
        "Add",
        "",
        &[&shifted, &input_norm],
        "expanded_squared_distance",
        vec![],
    );
    let squared = g.node("Relu", "", &[&expanded], "squared_distance", vec![]);
    g.node(
        "ArgMin",
        "",
        &[&squared],
        CLOSEST_CLUSTER,
        vec![
            AttributeProto::int("axis", 1),
            AttributeProto::int("keepdims", 0),
        ],
    );
    let nearest = g.node(
        "ReduceMin",
        "",
        &[&squared],
        "nearest_squared_distance",
        vec![axes(), AttributeProto::int("keepdims", 1)],
    );
    g.node("Sqrt", "", &[&nearest], DISTANCE_TO_CLUSTER, vec![]);

    let outputs = vec![
        spec(CLOSEST_CLUSTER, "int64", &[None]),
        spec(DISTANCE_TO_CLUSTER, "float32", &[None, Some(1)]),
    ];
    for output in &outputs {
        g.output(output);
    }
    Ok(Lowered {
        algorithm: NAME.to_string(),
        graph: g.finish(),
        opsets: [(String::new(), ONNX_OPSET)].into_iter().collect(),
        feature_dim: d,
        outputs,
        response: ResponseShape::Clustering {
            closest_cluster: CLOSEST_CLUSTER.into(),
            distance_to_cluster: DISTANCE_TO_CLUSTER.into(),
        },
        label_map: None,
        accepts: content_types(&DENSE_REQUEST_TYPES),
        produces: vec![
            "application/json".into(),
            "application/jsonlines".into(),
            "text/csv".into(),
            "application/x-recordio-protobuf".into(),
        ],
        score_output: DISTANCE_TO_CLUSTER.into(),
        label_rule: LabelRule::Output(CLOSEST_CLUSTER.into()),
        accepts_missing: false,
        pipeline: Pipeline::default(),
    })
}
