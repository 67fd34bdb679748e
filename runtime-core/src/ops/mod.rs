//! The two tree ops tern's graphs use that ONNX's core set lacks, each a checked, self-contained evaluator that
//! both engines run: tern's interpreter ([`crate::interpreter`]) and, with the `tract` feature, tract (registered
//! under their standard names, so graphs stay plain ONNX that onnxruntime also runs where it knows the op).
//! [`tree_ensemble_regressor`]: `ai.onnx.ml` `TreeEnsembleRegressor`, which the locked tract-onnx does not
//! register. [`rcf`]: the documented `ai.tern` `RandomCutForestScore`, which has no ONNX equivalent.

use anyhow::{bail, Result};

use crate::onnx::{attribute_type, AttributeProto};

pub mod rcf;
pub mod tree_ensemble_regressor;

/// tract's ONNX front end with runtime-core's ops added.
#[cfg(feature = "tract")]
pub fn onnx() -> tract_onnx::Onnx {
    let mut framework = tract_onnx::onnx();
    tree_ensemble_regressor::register(&mut framework.op_register);
    rcf::register(&mut framework.op_register);
    framework
}

#[cfg(feature = "tract")]
use tract_wiring::{eval_on_rows, wire_on_f32};

#[cfg(feature = "tract")]
mod tract_wiring {
    use tract_onnx::tract_hir::internal::*;

    /// Wires `op` (a tree op taking float32 rows) after `input`, with a cast to float32 first when `input` is another
    /// type (the tree ops accept any numeric input).
    pub fn wire_on_f32(
        model: &mut TypedModel,
        prefix: &str,
        input: OutletId,
        op: impl Into<Box<dyn TypedOp>>,
    ) -> TractResult<TVec<OutletId>> {
        let mut input = input;
        if model.outlet_fact(input)?.datum_type != DatumType::F32 {
            input = model.wire_node(
                format!("{prefix}.cast"),
                tract_onnx::tract_hir::tract_core::ops::cast::cast(DatumType::F32),
                &[input],
            )?[0];
        }
        model.wire_node(prefix, op, &[input])
    }

    /// A tree op's evaluation in tract: its one float32 `[N, F]` input to `[N, targets]` scores by `evaluate`
    /// (row-major values, rows, columns).
    pub fn eval_on_rows(
        op: &str,
        inputs: TVec<TValue>,
        targets: usize,
        evaluate: impl Fn(&[f32], usize, usize) -> anyhow::Result<Vec<f32>>,
    ) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        ensure!(
            input.rank() == 2,
            "{op} input has rank {}, expected 2",
            input.rank()
        );
        let (rows, columns) = (input.shape()[0], input.shape()[1]);
        let view = input.to_plain_array_view::<f32>()?;
        let values: Vec<f32> = view.iter().copied().collect();
        let scores = evaluate(&values, rows, columns)?;
        let tensor = Tensor::from_shape(&[rows, targets], &scores)?;
        Ok(tvec!(tensor.into_tvalue()))
    }
}

/// A node's attributes, read alike from tern's ONNX messages ([`crate::onnx::NodeProto`]) and tract's. Each getter
/// returns `None` for an absent attribute and an error for one of another type.
pub trait NodeAttributes {
    fn has(&self, name: &str) -> bool;
    fn int(&self, name: &str) -> Result<Option<i64>>;
    fn string(&self, name: &str) -> Result<Option<String>>;
    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>>;
    fn floats(&self, name: &str) -> Result<Option<Vec<f32>>>;
    fn strings(&self, name: &str) -> Result<Option<Vec<String>>>;
}

/// The attribute `name` of `node` when its declared type is `expected` (an attribute without a declared type, as
/// some writers leave it, is read by the field asked for).
fn typed<'a>(
    node: &'a crate::onnx::NodeProto,
    name: &str,
    expected: i32,
    what: &str,
) -> Result<Option<&'a AttributeProto>> {
    let Some(attribute) = node.attribute(name) else {
        return Ok(None);
    };
    match attribute.r#type {
        Some(t) if t != expected => bail!("attribute {name} is not {what} (its type is {t})"),
        _ => Ok(Some(attribute)),
    }
}

fn utf8(name: &str, bytes: &[u8]) -> Result<String> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_string()),
        Err(_) => bail!("attribute {name} is not UTF-8 text"),
    }
}

impl NodeAttributes for crate::onnx::NodeProto {
    fn has(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }

    fn int(&self, name: &str) -> Result<Option<i64>> {
        Ok(typed(self, name, attribute_type::INT, "an int")?.map(|a| a.i.unwrap_or(0)))
    }

    fn string(&self, name: &str) -> Result<Option<String>> {
        typed(self, name, attribute_type::STRING, "a string")?
            .map(|a| utf8(name, a.s.as_deref().unwrap_or_default()))
            .transpose()
    }

    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(typed(self, name, attribute_type::INTS, "a list of ints")?.map(|a| a.ints.clone()))
    }

    fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        Ok(
            typed(self, name, attribute_type::FLOATS, "a list of floats")?
                .map(|a| a.floats.clone()),
        )
    }

    fn strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        typed(self, name, attribute_type::STRINGS, "a list of strings")?
            .map(|a| a.strings.iter().map(|s| utf8(name, s)).collect())
            .transpose()
    }
}

#[cfg(feature = "tract")]
impl NodeAttributes for tract_onnx::pb::NodeProto {
    fn has(&self, name: &str) -> bool {
        self.attribute.iter().any(|a| a.name == name)
    }

    fn int(&self, name: &str) -> Result<Option<i64>> {
        self.get_attr_opt(name)
    }

    fn string(&self, name: &str) -> Result<Option<String>> {
        self.get_attr_opt(name)
    }

    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        self.get_attr_opt_vec(name)
    }

    fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        self.get_attr_opt_vec(name)
    }

    fn strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        self.get_attr_opt_vec(name)
    }
}
