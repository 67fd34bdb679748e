//! k-NN → ONNX. With the stored points `Y` (`[M, dim]`, the artifact's `points`) and their labels:
//!
//! - projection (`sign` / `fjlt`): `x = MatMul(input, R)` with the artifact's `[feature_dim, dim]` matrix;
//!   `COSINE`: `x = x / Max(Sqrt(ReduceSumSquare(x)), 1e-30)` (a zero row stays zero, as the trainer);
//! - scores of every point: `L2` by the expansion `Relu(MatMul(x, −2·Yᵀ) + ‖y‖² + ‖x‖²)` (squared distances, as
//!   FAISS reports them), `INNER_PRODUCT` / `COSINE` as `MatMul(x, Yᵀ)`; the `[dim, M]` weights are plain
//!   initializers, so f16 / int8 quantize the stored points like any dense weight and the compiler's drift check
//!   decides whether the package keeps the trainer's neighbours;
//! - `TopK(k, largest = 0 for L2, 1 otherwise, sorted)` → `distances` `[N, k]` and the neighbours' indices; equal
//!   scores come out lower index first (ONNX's rule, tract's stable sort), the trainer's tie rule;
//! - `labels = Gather(point_labels, indices)` `[N, k]`;
//! - classifier: `counts = ReduceSum(Gather(one_hot[M, C], indices), axes=[1])`, `score = counts / k` (the trainer's
//!   vote shares), `predicted_label = Gather(class_values, ArgMax(counts))` (the first class on ties: the smallest
//!   label); regressor: `score = ReduceMean(labels, axes=[1])` `[N, 1]`, `predicted_label` its `[N]` reshape.
//!
//! **IVF** is lowered exactly, not as a Flat search (which would find neighbours the trainer's probe skips): the
//! coarse scores rank every list (`TopK` over all `nlists`, lower list index first on ties); a list is probed when
//! its rank is below `nprobe` or fewer than `k` points lie in the lists ranked before it (`CumSum`, exclusive),
//! the trainer's rule; the rank of each list is the inverse permutation (`TopK` of the ranking itself); each point
//! inherits its list's verdict (`GatherElements`, `Gather`), and unprobed points get score +∞ (L2) / −∞ before the
//! final `TopK`. The graph still scores all M points per query: it is exact, not faster.
//!
//! Outputs: `score` (`[N, classes]` vote shares or `[N, 1]` mean, what verification compares), `predicted_label`
//! float32 `[N]` (the label value, SageMaker's `predicted_label`), `distances` and `labels` float32 `[N, k]` (the
//! verbose response). The response is [`ResponseShape::NearestNeighbors`].

use tern_runtime::manifest::{Pipeline, ResponseShape};
use tern_runtime::onnx::{data_type, AttributeProto, NodeProto, TensorProto};
use tern_trainer::algorithms::knn::{KnnModel, Metric, PredictorType};
use tern_trainer::Artifact;

use super::{
    content_types, spec, GraphBuilder, LabelRule, Lowered, Lowering, DENSE_REQUEST_TYPES, INPUT,
    ONNX_OPSET,
};
use crate::CompileError;

/// The algorithm's registry name.
pub const NAME: &str = "knn";

/// `[rows, cols]` row-major `matrix` transposed and multiplied by `factor` (a power of two: exact).
fn transposed(matrix: &[f32], rows: usize, cols: usize, factor: f32) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = factor * matrix[r * cols + c];
        }
    }
    out
}

/// Squared norms of the rows of a `[rows, cols]` matrix, summed in f64.
fn squared_norms(matrix: &[f32], cols: usize) -> Vec<f32> {
    matrix
        .chunks(cols.max(1))
        .map(|row| {
            row.iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>() as f32
        })
        .collect()
}

/// Appends the nodes scoring `x` against the rows of `table` (`[rows, dim]`): squared L2 distances or inner
/// products `[N, rows]`. `name` prefixes the initializers.
fn scores(
    g: &mut GraphBuilder,
    x: &str,
    x_norm: Option<&str>,
    table: &[f32],
    rows: usize,
    dim: usize,
    metric: Metric,
    name: &str,
) -> String {
    match metric {
        Metric::L2 => {
            let weight = g.initializer(TensorProto::from_f32(
                &format!("{name}_times_minus_two"),
                &[dim, rows],
                &transposed(table, rows, dim, -2.0),
            ));
            let norms = g.initializer(TensorProto::from_f32(
                &format!("{name}_squared_norms"),
                &[rows],
                &squared_norms(table, dim),
            ));
            let cross = g.node(
                "MatMul",
                "",
                &[x, &weight],
                &format!("{name}_cross"),
                vec![],
            );
            let shifted = g.node(
                "Add",
                "",
                &[&cross, &norms],
                &format!("{name}_cross_plus_norms"),
                vec![],
            );
            let expanded = g.node(
                "Add",
                "",
                &[&shifted, x_norm.unwrap_or(x)],
                &format!("{name}_expanded"),
                vec![],
            );
            g.node(
                "Relu",
                "",
                &[&expanded],
                &format!("{name}_squared_distance"),
                vec![],
            )
        }
        Metric::InnerProduct | Metric::Cosine => {
            let weight = g.initializer(TensorProto::from_f32(
                &format!("{name}_transposed"),
                &[dim, rows],
                &transposed(table, rows, dim, 1.0),
            ));
            g.node(
                "MatMul",
                "",
                &[x, &weight],
                &format!("{name}_inner_product"),
                vec![],
            )
        }
    }
}

/// Appends `TopK(values, k)` and returns (values, indices).
fn top_k(
    g: &mut GraphBuilder,
    values: &str,
    k: usize,
    largest: bool,
    name: &str,
) -> (String, String) {
    let k_name = g.initializer(TensorProto::from_i64(
        &format!("{name}_k"),
        &[1],
        &[k as i64],
    ));
    let (out_values, out_indices) = (format!("{name}_values"), format!("{name}_indices"));
    let node_name = format!("TopK_{}", g.graph.node.len());
    g.graph.node.push(NodeProto::new(
        "TopK",
        "",
        &node_name,
        &[values, &k_name],
        &[&out_values, &out_indices],
        vec![
            AttributeProto::int("axis", 1),
            AttributeProto::int("largest", i64::from(largest)),
            AttributeProto::int("sorted", 1),
        ],
    ));
    (out_values, out_indices)
}

/// The lowering registered for k-NN (`tern-registry`).
pub struct KnnLowering;

impl Lowering for KnnLowering {
    fn algorithm(&self) -> &'static str {
        NAME
    }

    fn lower(&self, artifact: &Artifact) -> Result<Lowered, CompileError> {
        lower(artifact)
    }
}

/// Lowers a k-NN artifact (layout: `tern_trainer::algorithms::knn`).
pub fn lower(artifact: &Artifact) -> Result<Lowered, CompileError> {
    let model = KnnModel::from_artifact(artifact)?;
    let d = model.feature_dim;
    let (m, dim) = model.points.dim();
    let k = model.k;
    let points: Vec<f32> = model.points.iter().copied().collect();
    if points.iter().any(|v| !v.is_finite()) {
        return Err(CompileError::artifact(
            NAME,
            "points hold a non-finite value",
        ));
    }
    let mut g = GraphBuilder::new("knn", d);
    let axes = || AttributeProto::ints("axes", vec![1]);
    let keep = || AttributeProto::int("keepdims", 1);

    let mut x = INPUT.to_string();
    if let Some(r) = &model.projection {
        let r: Vec<f32> = r.iter().copied().collect();
        let r = g.initializer(TensorProto::from_f32("projection", &[d, dim], &r));
        x = g.node("MatMul", "", &[&x, &r], "projected", vec![]);
    }
    if model.metric == Metric::Cosine {
        let squared = g.node(
            "ReduceSumSquare",
            "",
            &[&x],
            "query_squared_norm",
            vec![axes(), keep()],
        );
        let norm = g.node("Sqrt", "", &[&squared], "query_norm", vec![]);
        let tiny = g.initializer(TensorProto::from_f32("tiny_norm", &[], &[1e-30]));
        let safe = g.node("Max", "", &[&norm, &tiny], "query_norm_or_tiny", vec![]);
        x = g.node("Div", "", &[&x, &safe], "normalised", vec![]);
    }
    let x_norm = (model.metric == Metric::L2).then(|| {
        g.node(
            "ReduceSumSquare",
            "",
            &[&x],
            "query_squared_norm_l2",
            vec![axes(), keep()],
        )
    });
    let mut point_scores = scores(
        &mut g,
        &x,
        x_norm.as_deref(),
        &points,
        m,
        dim,
        model.metric,
        "points",
    );
    let largest = model.metric.larger_is_nearer();

    if let Some(lists) = &model.ivf {
        let nlists = lists.nlists();
        let centroids: Vec<f32> = lists.centroids.iter().copied().collect();
        let coarse_metric = tern_trainer::algorithms::knn::index::coarse_metric(model.metric);
        let coarse = scores(
            &mut g,
            &x,
            x_norm.as_deref(),
            &centroids,
            nlists,
            dim,
            coarse_metric,
            "centroids",
        );
        let (_, order) = top_k(
            &mut g,
            &coarse,
            nlists,
            coarse_metric.larger_is_nearer(),
            "list_order",
        );
        let mut sizes = vec![0.0f32; nlists];
        for &l in &lists.assignment {
            sizes[l as usize] += 1.0;
        }
        let sizes = g.initializer(TensorProto::from_f32("list_sizes", &[nlists], &sizes));
        let ranked_sizes = g.node("Gather", "", &[&sizes, &order], "ranked_list_sizes", vec![]);
        let axis = g.initializer(TensorProto::from_i64("cumsum_axis", &[], &[1]));
        let before = g.node(
            "CumSum",
            "",
            &[&ranked_sizes, &axis],
            "points_in_lists_ranked_before",
            vec![AttributeProto::int("exclusive", 1)],
        );
        let k_float = g.initializer(TensorProto::from_f32("k_float", &[], &[k as f32]));
        let short = g.node(
            "Less",
            "",
            &[&before, &k_float],
            "fewer_than_k_before",
            vec![],
        );
        let ranks: Vec<f32> = (0..nlists).map(|r| r as f32).collect();
        let ranks = g.initializer(TensorProto::from_f32("ranks", &[nlists], &ranks));
        let nprobe = g.initializer(TensorProto::from_f32("nprobe", &[], &[lists.nprobe as f32]));
        let within = g.node("Less", "", &[&ranks, &nprobe], "rank_below_nprobe", vec![]);
        let probed_rank = g.node("Or", "", &[&within, &short], "probed_by_rank", vec![]);
        let probed_rank = g.node(
            "Cast",
            "",
            &[&probed_rank],
            "probed_by_rank_float",
            vec![AttributeProto::int("to", data_type::FLOAT as i64)],
        );
        let order_float = g.node(
            "Cast",
            "",
            &[&order],
            "list_order_float",
            vec![AttributeProto::int("to", data_type::FLOAT as i64)],
        );
        let (_, rank_of_list) = top_k(&mut g, &order_float, nlists, false, "rank_of_list");
        let probed_list = g.node(
            "GatherElements",
            "",
            &[&probed_rank, &rank_of_list],
            "probed_by_list",
            vec![AttributeProto::int("axis", 1)],
        );
        let assignment: Vec<i64> = lists.assignment.iter().map(|&l| i64::from(l)).collect();
        let assignment = g.initializer(TensorProto::from_i64("list_of_point", &[m], &assignment));
        let probed_point = g.node(
            "Gather",
            "",
            &[&probed_list, &assignment],
            "probed_point_float",
            vec![AttributeProto::int("axis", 1)],
        );
        let half = g.initializer(TensorProto::from_f32("one_half", &[], &[0.5]));
        let mask = g.node(
            "Greater",
            "",
            &[&probed_point, &half],
            "probed_point",
            vec![],
        );
        let excluded = g.initializer(TensorProto::from_f32(
            "unprobed_score",
            &[],
            &[if largest {
                f32::NEG_INFINITY
            } else {
                f32::INFINITY
            }],
        ));
        point_scores = g.node(
            "Where",
            "",
            &[&mask, &point_scores, &excluded],
            "probed_scores",
            vec![],
        );
    }

    let (distances, indices) = top_k(&mut g, &point_scores, k, largest, "neighbours");
    g.node("Identity", "", &[&distances], "distances", vec![]);
    let labels = g.initializer(TensorProto::from_f32("point_labels", &[m], &model.labels));
    g.node("Gather", "", &[&labels, &indices], "labels", vec![]);
    let flat = g.initializer(TensorProto::from_i64("flat_shape", &[1], &[-1]));

    let (score_columns, rule, task_label_map) = match model.predictor_type {
        PredictorType::Classifier => {
            let c = model.class_values.len();
            let mut one_hot = vec![0.0f32; m * c];
            for (i, label) in model.labels.iter().enumerate() {
                let class = model
                    .class_values
                    .binary_search_by(|v| v.total_cmp(label))
                    .map_err(|_| {
                        CompileError::artifact(
                            NAME,
                            format!("label {label} of point {i} is not a class"),
                        )
                    })?;
                one_hot[i * c + class] = 1.0;
            }
            let one_hot = g.initializer(TensorProto::from_f32("point_one_hot", &[m, c], &one_hot));
            let votes = g.node(
                "Gather",
                "",
                &[&one_hot, &indices],
                "neighbour_one_hot",
                vec![],
            );
            let axes_input = g.initializer(TensorProto::from_i64("vote_axes", &[1], &[1]));
            let counts = g.node(
                "ReduceSum",
                "",
                &[&votes, &axes_input],
                "vote_counts",
                vec![AttributeProto::int("keepdims", 0)],
            );
            let k_float = g.initializer(TensorProto::from_f32("k_neighbours", &[], &[k as f32]));
            g.node("Div", "", &[&counts, &k_float], "score", vec![]);
            let class = g.node(
                "ArgMax",
                "",
                &[&counts],
                "predicted_class",
                vec![
                    AttributeProto::int("axis", 1),
                    AttributeProto::int("keepdims", 0),
                ],
            );
            let values = g.initializer(TensorProto::from_f32(
                "class_values",
                &[c],
                &model.class_values,
            ));
            g.node("Gather", "", &[&values, &class], "predicted_label", vec![]);
            (
                c,
                LabelRule::Argmax,
                Some(model.class_values.iter().map(|v| v.to_string()).collect()),
            )
        }
        PredictorType::Regressor => {
            let mean = g.node("ReduceMean", "", &["labels"], "score", vec![axes(), keep()]);
            g.node("Reshape", "", &[&mean, &flat], "predicted_label", vec![]);
            (1, LabelRule::None, None)
        }
    };
    let outputs = vec![
        spec("score", "float32", &[None, Some(score_columns)]),
        spec("predicted_label", "float32", &[None]),
        spec("distances", "float32", &[None, Some(k)]),
        spec("labels", "float32", &[None, Some(k)]),
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
        response: ResponseShape::NearestNeighbors {
            score: "score".into(),
            predicted_label: "predicted_label".into(),
            distances: "distances".into(),
            labels: "labels".into(),
        },
        label_map: task_label_map,
        accepts: content_types(&DENSE_REQUEST_TYPES),
        produces: vec![
            "application/json".into(),
            "application/jsonlines".into(),
            "application/x-recordio-protobuf".into(),
        ],
        score_output: "score".into(),
        label_rule: rule,
        accepts_missing: false,
        pipeline: Pipeline::default(),
    })
}
