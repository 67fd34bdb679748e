//! Linear Learner → ONNX. With `x̂ = (x − feature_mean) / feature_scale` (each step only when the artifact has it)
//! and `z = x̂ · weight + bias` (`weight` `[d, k]`), the graph is
//!
//! - binary, `sigmoid`: `score = 1 / (1 + Exp(−z))` `[N, 1]` ([`GraphBuilder::logistic`]), `predicted_label = Cast<int64>(score >= threshold)` `[N]`;
//! - binary, `identity` (hinge): `score = z`, the same label rule;
//! - multiclass, `softmax`: `score = Softmax(z, axis=1)` `[N, k]`, `predicted_label = ArgMax(score, axis=1)` `[N]`;
//! - regressor, `affine`: `score = z · label_scale + label_mean` `[N, 1]` (un-normalised in-graph).
//!
//! The normalisation is emitted as `Sub`/`Div` nodes; [`crate::passes`] folds it into `weight` and `bias` exactly
//! as the trainer's `FoldedWeights` does, and fuses the label scaling into them.

use tern_runtime::manifest::{Pipeline, ResponseShape};
use tern_runtime::onnx::{data_type, AttributeProto, TensorProto};
use tern_trainer::algorithms::linear_learner::{LinearModel, Output, PredictorType};
use tern_trainer::Artifact;

use super::{spec, GraphBuilder, LabelRule, Lowered, Lowering, INPUT, ONNX_OPSET};
use crate::CompileError;

/// The algorithm's registry name.
pub const NAME: &str = "linear-learner";

/// The lowering registered for Linear Learner (`tern-registry`).
pub struct LinearLearnerLowering;

impl Lowering for LinearLearnerLowering {
    fn algorithm(&self) -> &'static str {
        NAME
    }

    fn lower(&self, artifact: &Artifact) -> Result<Lowered, CompileError> {
        lower(artifact)
    }

    /// Rows around the training data: `mean + scale · u` per feature, from the artifact's normalisation statistics
    /// (`feature_mean`, `feature_scale`; 0 and 1 when the model was trained without them).
    fn verification_rows(&self, artifact: &Artifact, lowered: &Lowered, rows: usize) -> Vec<f32> {
        let tensor = |name: &str| artifact.tensors.get(name).map(|t| t.data.clone());
        let (mean, scale) = (tensor("feature_mean"), tensor("feature_scale"));
        crate::synthetic::rows(lowered.feature_dim, rows, |j, u, _| {
            let m = mean.as_ref().and_then(|m| m.get(j)).copied().unwrap_or(0.0);
            let s = scale
                .as_ref()
                .and_then(|s| s.get(j))
                .copied()
                .unwrap_or(1.0);
            m + s * u
        })
    }
}

/// Lowers a Linear Learner artifact (layout: `tern_trainer::algorithms::linear_learner`).
pub fn lower(artifact: &Artifact) -> Result<Lowered, CompileError> {
    let model = LinearModel::from_artifact(artifact)?;
    let d = model.feature_dim;
    let k = model.bias.len();
    let mut g = GraphBuilder::new("linear_learner", d);
    let mut x = INPUT.to_string();
    if let Some(mean) = &model.feature_mean {
        let mean = g.initializer(TensorProto::from_f32("feature_mean", &[d], mean));
        x = g.node("Sub", "", &[&x, &mean], "centred", vec![]);
    }
    if let Some(scale) = &model.feature_scale {
        let scale = g.initializer(TensorProto::from_f32("feature_scale", &[d], scale));
        x = g.node("Div", "", &[&x, &scale], "normalised", vec![]);
    }
    let weight = g.initializer(TensorProto::from_f32("weight", &[d, k], &model.weights));
    let bias = g.initializer(TensorProto::from_f32("bias", &[k], &model.bias));
    let linear = g.node("MatMul", "", &[&x, &weight], "linear", vec![]);
    let margin = g.node("Add", "", &[&linear, &bias], "margin", vec![]);

    let (task, label_rule) = match model.predictor_type {
        PredictorType::BinaryClassifier => ("binary_classifier", true),
        PredictorType::MulticlassClassifier { .. } => ("multiclass_classifier", true),
        PredictorType::Regressor => ("regressor", false),
    };
    let score = match model.output {
        Output::Sigmoid => g.logistic(&margin, "score"),
        Output::Raw => g.node("Identity", "", &[&margin], "score", vec![]),
        Output::Softmax => g.node(
            "Softmax",
            "",
            &[&margin],
            "score",
            vec![AttributeProto::int("axis", 1)],
        ),
        Output::Regression => {
            let scale = g.initializer(TensorProto::from_f32(
                "label_scale",
                &[],
                &[model.label_scale],
            ));
            let mean = g.initializer(TensorProto::from_f32(
                "label_mean",
                &[],
                &[model.label_mean],
            ));
            let scaled = g.node("Mul", "", &[&margin, &scale], "label_scaled", vec![]);
            g.node("Add", "", &[&scaled, &mean], "score", vec![])
        }
    };
    let mut outputs = vec![spec("score", "float32", &[None, Some(k)])];
    let rule = if !label_rule {
        LabelRule::None
    } else {
        match model.output {
            Output::Softmax => {
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
            }
            _ => {
                let threshold =
                    g.initializer(TensorProto::from_f32("threshold", &[], &[model.threshold]));
                let positive = g.node(
                    "GreaterOrEqual",
                    "",
                    &[&score, &threshold],
                    "positive",
                    vec![],
                );
                let as_int = g.node(
                    "Cast",
                    "",
                    &[&positive],
                    "positive_int",
                    vec![AttributeProto::int("to", data_type::INT64 as i64)],
                );
                let flat = g.initializer(TensorProto::from_i64("flat_shape", &[1], &[-1]));
                g.node("Reshape", "", &[&as_int, &flat], "predicted_label", vec![]);
            }
        }
        outputs.push(spec("predicted_label", "int64", &[None]));
        LabelRule::Output("predicted_label".into())
    };
    for output in &outputs {
        g.output(output);
    }
    Ok(Lowered {
        algorithm: NAME.to_string(),
        graph: g.finish(),
        opsets: [(String::new(), ONNX_OPSET)].into_iter().collect(),
        feature_dim: d,
        outputs,
        response: ResponseShape::Supervised {
            task: task.to_string(),
            score: "score".into(),
            predicted_label: label_rule.then(|| "predicted_label".to_string()),
        },
        label_map: artifact.meta.label_map.clone(),
        accepts: vec![
            "text/csv".into(),
            "application/json".into(),
            "application/x-recordio-protobuf".into(),
        ],
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
