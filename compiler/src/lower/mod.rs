//! One lowering per algorithm: a trained artifact → an fp32 ONNX graph with tern's conventions (one input `input`
//! float32 `[N, feature_dim]`, an output `score`, classifiers' `predicted_label` int64 `[N]`).
//!
//! Lowerings emit the model's math as the trainer states it (normalisation as `Sub`/`Div`, the linear map, the
//! output transform); the graph passes ([`crate::passes`]) then fold and fuse it.

pub mod kmeans;
pub mod knn;
pub mod linear_learner;
pub mod pca;
pub mod rcf;
pub mod xgboost;

use std::collections::BTreeMap;

use tern_runtime::manifest::{Pipeline, ResponseShape, TensorSpec};
use tern_runtime::Precision;
use tern_trainer::Artifact;

use crate::CompileError;
use tern_runtime::onnx::{
    data_type, AttributeProto, GraphProto, NodeProto, TensorProto, ValueInfoProto,
};

/// The ai.onnx opset every graph imports.
pub const ONNX_OPSET: i64 = 17;
/// The ai.onnx.ml opset tree graphs import.
pub const ONNX_ML_OPSET: i64 = 3;
/// The ai.onnx.ml domain name.
pub const ML_DOMAIN: &str = "ai.onnx.ml";
/// The symbolic batch dimension.
pub const BATCH: &str = "N";
/// The graph input's name.
pub const INPUT: &str = "input";

/// How verification reads a predicted label per row.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelRule {
    /// The graph's `predicted_label` output.
    Output(String),
    /// `score > threshold` (`strict`) or `score >= threshold` on the first score column.
    Threshold { threshold: f32, strict: bool },
    /// The arg max of the score row (first on ties).
    Argmax,
    /// No labels (regressors).
    None,
}

/// A lowered model: its graph and everything the manifest and verification need.
#[derive(Debug, Clone)]
pub struct Lowered {
    pub algorithm: String,
    pub graph: GraphProto,
    /// Domain (`""` = ai.onnx) → opset version.
    pub opsets: BTreeMap<String, i64>,
    pub feature_dim: usize,
    pub outputs: Vec<TensorSpec>,
    pub response: ResponseShape,
    pub label_map: Option<Vec<String>>,
    pub accepts: Vec<String>,
    pub produces: Vec<String>,
    /// The output holding scores, compared element-wise with the trainer's `scores`.
    pub score_output: String,
    pub label_rule: LabelRule,
    /// Whether the graph reads missing values (NaN) meaningfully; verification rows then include NaN.
    pub accepts_missing: bool,
    /// The request's path into the graph and out of it: typed request inputs, preprocessing and postprocessing
    /// steps (empty for feature rows).
    pub pipeline: Pipeline,
}

/// The request content types of the algorithms whose SageMaker containers take every dense format (K-Means, PCA,
/// k-NN, Random Cut Forest).
pub(crate) const DENSE_REQUEST_TYPES: [&str; 4] = [
    "text/csv",
    "application/json",
    "application/jsonlines",
    "application/x-recordio-protobuf",
];

/// `types` as the owned strings a manifest lists.
pub(crate) fn content_types(types: &[&str]) -> Vec<String> {
    types.iter().map(|t| t.to_string()).collect()
}

/// Builds a graph node by node with unique names; lowerings outside this crate (a test's, a second trainer crate's)
/// build theirs with it too.
pub struct GraphBuilder {
    graph: GraphProto,
}

impl GraphBuilder {
    pub fn new(name: &str, feature_dim: usize) -> Self {
        GraphBuilder {
            graph: GraphProto {
                name: Some(name.to_string()),
                input: vec![ValueInfoProto::tensor(
                    INPUT,
                    data_type::FLOAT,
                    &[None, Some(feature_dim)],
                    BATCH,
                )],
                ..Default::default()
            },
        }
    }

    pub fn initializer(&mut self, tensor: TensorProto) -> String {
        let name = tensor.name().to_string();
        self.graph.initializer.push(tensor);
        name
    }

    /// Adds a node whose single output is `output`, returning `output`.
    pub fn node(
        &mut self,
        op_type: &str,
        domain: &str,
        inputs: &[&str],
        output: &str,
        attributes: Vec<AttributeProto>,
    ) -> String {
        let name = format!("{}_{}", op_type, self.graph.node.len());
        self.graph.node.push(NodeProto::new(
            op_type,
            domain,
            &name,
            inputs,
            &[output],
            attributes,
        ));
        output.to_string()
    }

    /// `output = 1 / (1 + Exp(−input))`, the logistic function from `Mul`, `Exp`, `Add` and `Div`.
    ///
    /// Not ONNX's `Sigmoid`: onnxruntime's and tract's `Sigmoid` kernels are approximations with an absolute error
    /// of a few 1e-6, which is a relative error of up to 50% on probabilities near 0 (a logit of −12 gives 6e-6),
    /// while their `Exp` is accurate to float32 rounding, so this form keeps the 1e-5 relative fp32 bound in the
    /// tails. Large |input| saturates cleanly: `Exp` overflows to +inf and `1 / inf` is 0; no NaN arises.
    pub fn logistic(&mut self, input: &str, output: &str) -> String {
        let minus_one = self.initializer(TensorProto::from_f32(
            &format!("{output}_minus_one"),
            &[],
            &[-1.0],
        ));
        let one = self.initializer(TensorProto::from_f32(&format!("{output}_one"), &[], &[1.0]));
        let negated = self.node(
            "Mul",
            "",
            &[input, &minus_one],
            &format!("{output}_negated"),
            vec![],
        );
        let exp = self.node("Exp", "", &[&negated], &format!("{output}_exp"), vec![]);
        let denominator = self.node(
            "Add",
            "",
            &[&exp, &one],
            &format!("{output}_denominator"),
            vec![],
        );
        self.node("Div", "", &[&one, &denominator], output, vec![])
    }

    pub fn output(&mut self, spec: &TensorSpec) {
        let elem = match spec.dtype.as_str() {
            "int64" => data_type::INT64,
            _ => data_type::FLOAT,
        };
        self.graph
            .output
            .push(ValueInfoProto::tensor(&spec.name, elem, &spec.shape, BATCH));
    }

    pub fn finish(self) -> GraphProto {
        self.graph
    }
}

/// A tensor spec.
pub fn spec(name: &str, dtype: &str, shape: &[Option<usize>]) -> TensorSpec {
    TensorSpec {
        name: name.to_string(),
        dtype: dtype.to_string(),
        shape: shape.to_vec(),
    }
}

/// How one algorithm's artifacts become packages: the lowering to an fp32 ONNX graph, the precisions it may be
/// packaged at, and the rows verification uses when the user gives none. Each algorithm's lowering is registered
/// once beside the algorithm (`tern-registry`); the compiler's driver ([`crate::compile`]) knows none by name.
pub trait Lowering: Send + Sync {
    /// The registry name of the algorithm whose artifacts this lowers.
    fn algorithm(&self) -> &'static str;

    /// The artifact's model as an fp32 graph with tern's conventions (module docs).
    fn lower(&self, artifact: &Artifact) -> Result<Lowered, CompileError>;

    /// The precisions the compiler may package this algorithm at; all three by default.
    fn precisions(&self) -> &'static [Precision] {
        &[Precision::Fp32, Precision::F16, Precision::Int8]
    }

    /// Why a precision outside [`Lowering::precisions`] is refused, for the error message.
    fn precision_reason(&self) -> &'static str {
        "its lowering does not support it"
    }

    /// `rows` deterministic verification rows (row-major, `lowered.feature_dim` values each) for a compile given no
    /// data: by default each feature drawn uniformly from [-3, 3] ([`crate::synthetic`]).
    fn verification_rows(&self, artifact: &Artifact, lowered: &Lowered, rows: usize) -> Vec<f32> {
        let _ = artifact;
        crate::synthetic::rows(lowered.feature_dim, rows, |_, u, _| u)
    }
}

/// The lowerings of the classic algorithms (`tern_trainer::algorithms::classic`).
pub fn classic() -> &'static [&'static dyn Lowering] {
    &[
        &linear_learner::LinearLearnerLowering,
        &xgboost::XGBoostLowering,
        &kmeans::KMeansLowering,
        &pca::PcaLowering,
        &rcf::RandomCutForestLowering,
        &knn::KnnLowering,
    ]
}

/// The lowering of `lowerings` for the algorithm `name`.
pub fn find_in(
    lowerings: &[&'static dyn Lowering],
    name: &str,
) -> Result<&'static dyn Lowering, CompileError> {
    lowerings
        .iter()
        .copied()
        .find(|l| l.algorithm() == name)
        .ok_or_else(|| CompileError::UnsupportedAlgorithm {
            algorithm: name.to_string(),
            known: lowerings
                .iter()
                .map(|l| l.algorithm())
                .collect::<Vec<_>>()
                .join(", "),
        })
}
