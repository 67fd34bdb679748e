//! XGBoost (gbtree) → ONNX: one ai.onnx.ml opset 3 `TreeEnsembleRegressor` computing the margin, then the
//! objective's output transform.
//!
//! - Every xgboost node becomes a `BRANCH_LT` node (xgboost sends `x < split_condition` to the left child, the
//!   true branch) or a `LEAF`; `nodes_missing_value_tracks_true` is xgboost's `default_left`, so a NaN takes the
//!   learned default direction exactly as the trainer does. Thresholds stay float32 at every precision.
//! - Leaves list their value under `target_ids` = the tree's output group (`tree_info`); `n_targets` is the number of
//!   groups; `base_values` is the base score in margin space (logit for logistic objectives, log for log links), so
//!   `aggregate_function = SUM` yields the trainer's margin.
//! - Output transform: the logistic `1 / (1 + Exp(−margin))` (binary:logistic, reg:logistic), `Exp` (count:poisson, reg:gamma, reg:tweedie),
//!   `Cast(margin > 0)` (binary:hinge), `Softmax(axis=1)` (multi:softprob, multi:softmax, which also outputs
//!   `predicted_label = ArgMax`), identity otherwise. Single-output models reshape `score` to `[N]`.

use tern_runtime::manifest::{Pipeline, ResponseShape};
use tern_runtime::onnx::{data_type, AttributeProto, TensorProto};
use tern_trainer::algorithms::xgboost::model::Model;
use tern_trainer::algorithms::xgboost::model_of;
use tern_trainer::algorithms::xgboost::objective::Objective;
use tern_trainer::Artifact;

use super::{
    spec, GraphBuilder, LabelRule, Lowered, Lowering, INPUT, ML_DOMAIN, ONNX_ML_OPSET, ONNX_OPSET,
};
use crate::CompileError;

/// The algorithm's registry name.
pub const NAME: &str = "xgboost";

/// The lowering registered for XGBoost (`tern-registry`).
pub struct XGBoostLowering;

impl Lowering for XGBoostLowering {
    fn algorithm(&self) -> &'static str {
        NAME
    }

    fn lower(&self, artifact: &Artifact) -> Result<Lowered, CompileError> {
        lower(artifact)
    }

    /// Rows on both sides of the trees' split thresholds: per feature a threshold drawn from its splits, moved by
    /// `u · 5%` of its magnitude (at least 1e-3); features no tree splits on take `u`.
    fn verification_rows(&self, _artifact: &Artifact, lowered: &Lowered, rows: usize) -> Vec<f32> {
        let d = lowered.feature_dim;
        let mut thresholds: Vec<Vec<f32>> = vec![Vec::new(); d];
        for node in lowered
            .graph
            .node
            .iter()
            .filter(|n| n.op_type() == "TreeEnsembleRegressor")
        {
            let (Some(features), Some(values), Some(modes)) = (
                node.attribute("nodes_featureids"),
                node.attribute("nodes_values"),
                node.attribute("nodes_modes"),
            ) else {
                continue;
            };
            for ((&f, &v), mode) in features.ints.iter().zip(&values.floats).zip(&modes.strings) {
                if mode != b"LEAF" && (f as usize) < d {
                    thresholds[f as usize].push(v);
                }
            }
        }
        crate::synthetic::rows(d, rows, |j, u, rng| {
            if thresholds[j].is_empty() {
                return u;
            }
            let pick = ((rng.uniform() * thresholds[j].len() as f32) as usize)
                .min(thresholds[j].len() - 1);
            let t = thresholds[j][pick];
            t + u * 0.05 * t.abs().max(1e-3)
        })
    }
}

/// Lowers an xgboost artifact (layout: `tern_trainer::algorithms::xgboost`).
pub fn lower(artifact: &Artifact) -> Result<Lowered, CompileError> {
    let model = model_of(artifact)?;
    if model.linear.is_some() {
        return Err(CompileError::UnsupportedFeature {
            algorithm: NAME.into(),
            feature: "booster=gblinear".into(),
            reason: "only gbtree models lower to TreeEnsembleRegressor".into(),
        });
    }
    if model.objective.is_ranking() {
        return Err(CompileError::UnsupportedFeature {
            algorithm: NAME.into(),
            feature: format!("objective={}", model.objective.name()),
            reason: "ranking scores have no SageMaker response shape in tern's packages".into(),
        });
    }
    if model.trees.len() != model.tree_group.len() {
        return Err(CompileError::artifact(
            NAME,
            format!(
                "{} trees but {} tree_info entries",
                model.trees.len(),
                model.tree_group.len()
            ),
        ));
    }
    for (t, tree) in model.trees.iter().enumerate() {
        tree.check(model.num_feature)
            .map_err(|e| CompileError::artifact(NAME, format!("tree {t}: {e}")))?;
    }
    let d = model.num_feature;
    let groups = model.num_group.max(1);
    let mut g = GraphBuilder::new("xgboost", d);
    let ensemble = tree_ensemble_attributes(&model);
    let margin = g.node(
        "TreeEnsembleRegressor",
        ML_DOMAIN,
        &[INPUT],
        "margin",
        ensemble,
    );

    let objective = model.objective;
    let multiclass = objective.is_multiclass();
    let flat = |g: &mut GraphBuilder, input: &str, output: &str| {
        let shape = g.initializer(TensorProto::from_i64("flat_shape", &[1], &[-1]));
        g.node("Reshape", "", &[input, &shape], output, vec![])
    };
    let mut outputs = Vec::new();
    let mut label_rule = LabelRule::None;
    if multiclass {
        let score = g.node(
            "Softmax",
            "",
            &[&margin],
            "score",
            vec![AttributeProto::int("axis", 1)],
        );
        outputs.push(spec("score", "float32", &[None, Some(groups)]));
        label_rule = LabelRule::Argmax;
        if objective == Objective::MultiSoftmax {
            g.node(
                "ArgMax",
                "",
                &[&score],
                "predicted_label",
                vec![
                    AttributeProto::int("axis", 1),
                    AttributeProto::int("keepdims", 0),
                ],
            );
            outputs.push(spec("predicted_label", "int64", &[None]));
            label_rule = LabelRule::Output("predicted_label".into());
        }
    } else {
        let transformed = match objective {
            Objective::BinaryLogistic | Objective::RegLogistic => {
                g.logistic(&margin, "probability")
            }
            Objective::Poisson | Objective::Gamma | Objective::Tweedie { .. } => {
                g.node("Exp", "", &[&margin], "expectation", vec![])
            }
            Objective::BinaryHinge => {
                let zero = g.initializer(TensorProto::from_f32("zero", &[], &[0.0]));
                let positive = g.node("Greater", "", &[&margin, &zero], "positive", vec![]);
                g.node(
                    "Cast",
                    "",
                    &[&positive],
                    "hinge_label",
                    vec![AttributeProto::int("to", data_type::FLOAT as i64)],
                )
            }
            _ => margin.clone(),
        };
        flat(&mut g, &transformed, "score");
        outputs.push(spec("score", "float32", &[None]));
        if objective.is_binary() {
            let threshold = if objective == Objective::BinaryLogitRaw {
                0.0
            } else {
                0.5
            };
            label_rule = LabelRule::Threshold {
                threshold,
                strict: true,
            };
        }
    }
    for output in &outputs {
        g.output(output);
    }
    let label_map = if multiclass {
        Some((0..groups).map(|c| c.to_string()).collect())
    } else if objective.is_binary() {
        Some(vec!["0".into(), "1".into()])
    } else {
        None
    };
    Ok(Lowered {
        algorithm: NAME.to_string(),
        graph: g.finish(),
        opsets: [
            (String::new(), ONNX_OPSET),
            (ML_DOMAIN.to_string(), ONNX_ML_OPSET),
        ]
        .into_iter()
        .collect(),
        feature_dim: d,
        outputs,
        response: ResponseShape::Xgboost {
            output: if objective == Objective::MultiSoftmax {
                "predicted_label".into()
            } else {
                "score".into()
            },
            objective: objective.name().to_string(),
        },
        label_map,
        accepts: vec![
            "text/csv".into(),
            "text/libsvm".into(),
            "application/x-recordio-protobuf".into(),
        ],
        produces: vec!["text/csv".into(), "application/json".into()],
        score_output: "score".into(),
        label_rule,
        accepts_missing: true,
        pipeline: Pipeline::default(),
    })
}

/// The `TreeEnsembleRegressor` attributes of `model`'s trees.
fn tree_ensemble_attributes(model: &Model) -> Vec<AttributeProto> {
    let mut tree_ids = Vec::new();
    let mut node_ids = Vec::new();
    let mut feature_ids = Vec::new();
    let mut modes: Vec<&str> = Vec::new();
    let mut values = Vec::new();
    let mut true_ids = Vec::new();
    let mut false_ids = Vec::new();
    let mut missing_true = Vec::new();
    let mut target_tree_ids = Vec::new();
    let mut target_node_ids = Vec::new();
    let mut target_ids = Vec::new();
    let mut target_weights = Vec::new();
    for (t, (tree, &group)) in model.trees.iter().zip(&model.tree_group).enumerate() {
        // dart's tree weight folds into its leaves (1 for gbtree, which multiplies exactly).
        let weight = model.tree_weight(t);
        for node in 0..tree.n_nodes() {
            tree_ids.push(t as i64);
            node_ids.push(node as i64);
            if tree.is_leaf(node) {
                feature_ids.push(0);
                modes.push("LEAF");
                values.push(0.0);
                true_ids.push(0);
                false_ids.push(0);
                missing_true.push(0);
                target_tree_ids.push(t as i64);
                target_node_ids.push(node as i64);
                target_ids.push(group as i64);
                target_weights.push(weight * tree.split_condition[node]);
            } else {
                feature_ids.push(tree.split_index[node] as i64);
                modes.push("BRANCH_LT");
                values.push(tree.split_condition[node]);
                true_ids.push(tree.left[node] as i64);
                false_ids.push(tree.right[node] as i64);
                missing_true.push(i64::from(tree.default_left[node]));
            }
        }
    }
    vec![
        AttributeProto::int("n_targets", model.num_group.max(1) as i64),
        AttributeProto::string("aggregate_function", "SUM"),
        AttributeProto::string("post_transform", "NONE"),
        AttributeProto::floats("base_values", model.base_margin()),
        AttributeProto::ints("nodes_treeids", tree_ids),
        AttributeProto::ints("nodes_nodeids", node_ids),
        AttributeProto::ints("nodes_featureids", feature_ids),
        AttributeProto::strings("nodes_modes", &modes),
        AttributeProto::floats("nodes_values", values),
        AttributeProto::ints("nodes_truenodeids", true_ids),
        AttributeProto::ints("nodes_falsenodeids", false_ids),
        AttributeProto::ints("nodes_missing_value_tracks_true", missing_true),
        AttributeProto::ints("target_treeids", target_tree_ids),
        AttributeProto::ints("target_nodeids", target_node_ids),
        AttributeProto::ints("target_ids", target_ids),
        AttributeProto::floats("target_weights", target_weights),
    ]
}
