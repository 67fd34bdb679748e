//! PCA → ONNX. With the components `P` (`[c, d]`, orthonormal rows) and the training mean `μ` (`[d]`, zeros when
//! `subtract_mean=false`), the trainer's `projection = (x − μ) · Pᵀ` is emitted with the mean folded into a bias:
//!
//! - `projection = MatMul(input, Pᵀ) + b` `[N, c]`, with `b = −P·μ` summed in f64 as the trainer does; the `Add` is
//!   left out when `b` is zero (`subtract_mean=false`).
//!
//! `Pᵀ` is a plain `[d, c]` initializer, so f16 / int8 quantize it per component like any dense weight (int8's
//! calibration sees the raw input, as the `MatMul` reads it). The response is SageMaker's PCA shape
//! ([`ResponseShape::Projection`]); there are no labels.

use tern_runtime::manifest::{Pipeline, ResponseShape};
use tern_runtime::onnx::TensorProto;
use tern_trainer::algorithms::pca::PcaModel;
use tern_trainer::Artifact;

use super::{
    content_types, spec, GraphBuilder, LabelRule, Lowered, Lowering, DENSE_REQUEST_TYPES, INPUT,
    ONNX_OPSET,
};
use crate::CompileError;

/// The algorithm's registry name.
pub const NAME: &str = "pca";
/// The output holding each row's projection (float32 `[N, num_components]`).
pub const PROJECTION: &str = "projection";

/// The lowering registered for PCA (`tern-registry`).
pub struct PcaLowering;

impl Lowering for PcaLowering {
    fn algorithm(&self) -> &'static str {
        NAME
    }

    fn lower(&self, artifact: &Artifact) -> Result<Lowered, CompileError> {
        lower(artifact)
    }
}

/// Lowers a PCA artifact (layout: `tern_trainer::algorithms::pca`).
pub fn lower(artifact: &Artifact) -> Result<Lowered, CompileError> {
    let model = PcaModel::from_artifact(artifact)?;
    let (c, d) = model.components.dim();
    if model
        .components
        .iter()
        .chain(model.mean.iter())
        .any(|v| !v.is_finite())
    {
        return Err(CompileError::artifact(
            NAME,
            "components or mean hold a non-finite value",
        ));
    }
    let mut weight = vec![0.0f32; d * c];
    for (p, component) in model.components.rows().into_iter().enumerate() {
        for (j, &v) in component.iter().enumerate() {
            weight[j * c + p] = v;
        }
    }
    let bias: Vec<f32> = model
        .components
        .rows()
        .into_iter()
        .map(|component| {
            -component
                .iter()
                .zip(model.mean.iter())
                .map(|(&w, &m)| f64::from(w) * f64::from(m))
                .sum::<f64>() as f32
        })
        .collect();

    let mut g = GraphBuilder::new("pca", d);
    let weight = g.initializer(TensorProto::from_f32(
        "components_transposed",
        &[d, c],
        &weight,
    ));
    if bias.iter().all(|&b| b == 0.0) {
        g.node("MatMul", "", &[INPUT, &weight], PROJECTION, vec![]);
    } else {
        let bias = g.initializer(TensorProto::from_f32("mean_offset", &[c], &bias));
        let linear = g.node("MatMul", "", &[INPUT, &weight], "linear", vec![]);
        g.node("Add", "", &[&linear, &bias], PROJECTION, vec![]);
    }
    let outputs = vec![spec(PROJECTION, "float32", &[None, Some(c)])];
    for output in &outputs {
        g.output(output);
    }
    Ok(Lowered {
        algorithm: NAME.to_string(),
        graph: g.finish(),
        opsets: [(String::new(), ONNX_OPSET)].into_iter().collect(),
        feature_dim: d,
        outputs,
        response: ResponseShape::Projection {
            projection: PROJECTION.into(),
        },
        label_map: None,
        accepts: content_types(&DENSE_REQUEST_TYPES),
        produces: vec![
            "application/json".into(),
            "application/jsonlines".into(),
            "text/csv".into(),
            "application/x-recordio-protobuf".into(),
        ],
        score_output: PROJECTION.into(),
        label_rule: LabelRule::None,
        accepts_missing: false,
        pipeline: Pipeline::default(),
    })
}
