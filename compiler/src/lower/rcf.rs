//! Random Cut Forest → ONNX: one `ai.tern` `RandomCutForestScore` node (version 1, documented in `docs/ai.tern.md`
//! and implemented in `tern_runtime::ops::rcf`) holding the trees as attributes, `input` `[N, feature_dim]` →
//! `score` float32 `[N, 1]`.
//!
//! ONNX has no operator for a random cut tree's expected displacement, so the package runs in tern's runtimes
//! (native, aarch64, wasm) and not in onnxruntime; `onnx.checker` accepts it (custom domains are allowed). The trees'
//! cuts and boxes are attributes, not weights, so there is nothing for f16 or int8 to quantize: the compiler refuses
//! those precisions for this algorithm. The response is SageMaker's `{"scores":[{"score":…}]}`
//! ([`ResponseShape::AnomalyScore`]); the threshold label the trainer keeps for test metrics is not part of it.

use tern_runtime::manifest::{Pipeline, ResponseShape};
use tern_runtime::onnx::AttributeProto;
use tern_runtime::ops::rcf::{DOMAIN, OP_TYPE, VERSION};
use tern_runtime::Precision;
use tern_trainer::algorithms::rcf::RcfModel;
use tern_trainer::Artifact;

use super::{
    content_types, spec, GraphBuilder, LabelRule, Lowered, Lowering, DENSE_REQUEST_TYPES, INPUT,
    ONNX_OPSET,
};
use crate::CompileError;

/// The algorithm's registry name.
pub const NAME: &str = "randomcutforest";

/// The lowering registered for Random Cut Forest (`tern-registry`).
pub struct RandomCutForestLowering;

impl Lowering for RandomCutForestLowering {
    fn algorithm(&self) -> &'static str {
        NAME
    }

    fn lower(&self, artifact: &Artifact) -> Result<Lowered, CompileError> {
        lower(artifact)
    }

    fn precisions(&self) -> &'static [Precision] {
        &[Precision::Fp32]
    }

    fn precision_reason(&self) -> &'static str {
        "a forest's cuts and boxes are attributes of the ai.tern RandomCutForestScore op, not weights: there is \
         nothing to quantize, so Random Cut Forest packages are fp32"
    }
}

/// Lowers a Random Cut Forest artifact (layout: `tern_trainer::algorithms::rcf`).
pub fn lower(artifact: &Artifact) -> Result<Lowered, CompileError> {
    let model = RcfModel::from_artifact(artifact)?;
    let d = model.feature_dim;
    let mut counts = Vec::with_capacity(model.trees.len());
    let (mut left, mut right, mut dims, mut cuts, mut masses) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut low, mut high) = (Vec::new(), Vec::new());
    for tree in &model.trees {
        let nodes = tree.preorder();
        counts.push(nodes.len() as i64);
        for (node, box_low, box_high) in nodes {
            if node.is_leaf() {
                left.push(-1);
                right.push(-1);
                dims.push(-1);
                cuts.push(0.0);
            } else {
                left.push(i64::from(node.left));
                right.push(i64::from(node.right));
                dims.push(i64::from(node.cut_dimension));
                cuts.push(node.cut_value);
            }
            masses.push(i64::from(node.mass));
            low.extend_from_slice(box_low);
            high.extend_from_slice(box_high);
        }
    }
    let attributes = vec![
        AttributeProto::int("feature_dim", d as i64),
        AttributeProto::ints("tree_node_counts", counts),
        AttributeProto::ints("nodes_left", left),
        AttributeProto::ints("nodes_right", right),
        AttributeProto::ints("nodes_cut_dimension", dims),
        AttributeProto::floats("nodes_cut_value", cuts),
        AttributeProto::ints("nodes_mass", masses),
        AttributeProto::floats("nodes_box_min", low),
        AttributeProto::floats("nodes_box_max", high),
    ];
    let mut g = GraphBuilder::new("randomcutforest", d);
    g.node(OP_TYPE, DOMAIN, &[INPUT], "score", attributes);
    let outputs = vec![spec("score", "float32", &[None, Some(1)])];
    g.output(&outputs[0]);
    Ok(Lowered {
        algorithm: NAME.to_string(),
        graph: g.finish(),
        opsets: [(String::new(), ONNX_OPSET), (DOMAIN.to_string(), VERSION)]
            .into_iter()
            .collect(),
        feature_dim: d,
        outputs,
        response: ResponseShape::AnomalyScore {
            score: "score".into(),
        },
        label_map: None,
        accepts: content_types(&DENSE_REQUEST_TYPES),
        produces: vec![
            "application/json".into(),
            "application/jsonlines".into(),
            "application/x-recordio-protobuf".into(),
        ],
        score_output: "score".into(),
        label_rule: LabelRule::None,
        accepts_missing: false,
        pipeline: Pipeline::default(),
    })
}
