//! The product of a float32 batch `x` `[rows, k]` by a constant matrix `w` `[k, m]` of at most
//! [`MAX_COLUMNS`] columns: a multiclass Linear Learner's weights, K-Means' centroids, PCA's components.
//!
//! tract's wasm matrix kernel is 8 columns wide, so a 10-class head pads to 16 (37% of the work wasted), and its
//! native kernels pay packing and dispatch that dwarf products this small. This kernel pads `m` to a multiple of 4
//! (one wasm SIMD vector; natively the compiler vectorizes the scalar form) and keeps four rows' accumulators in
//! registers (bench/runtime prints what it gains over tract's kernel). Every output is `Σₖ x[r, k] · w[k, j]`
//! summed in order of `k` from 0.0, one rounded multiply and one rounded add per term (no fused multiply-add), so the
//! SIMD and scalar paths give the same bits and a row's bits never depend on its batch.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::einsum::EinSum;

pub use crate::small_matmul::{matmul_rows, pad_columns, MAX_COLUMNS};

/// Replaces, in a decluttered model (before tract's codegen), every float32 `EinSum` that is a plain matrix product
/// of a varying `[rows, k]` input by a constant `[k, m]` (or `[m, k]`, transposed) matrix with `m ≤ MAX_COLUMNS` by a
/// [`SmallMatMul`]. Returns how many it replaced.
pub fn replace_small_matmuls(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(einsum) = node.op_as::<EinSum>() else {
            continue;
        };
        let Some(op) = small_matmul(model, node, einsum)? else {
            continue;
        };
        let patch = TypedModelPatch::replace_single_op(model, node, &[node.inputs[0]], op)?;
        patch.apply(model)?;
        replaced += 1;
    }
    if replaced > 0 {
        model.compact()?;
    }
    Ok(replaced)
}

/// The [`SmallMatMul`] computing `node`, or `None` when it is not a float32 `[rows, k] · constant` product.
fn small_matmul(
    model: &TypedModel,
    node: &TypedNode,
    einsum: &EinSum,
) -> TractResult<Option<SmallMatMul>> {
    if einsum.q_params.is_some()
        || einsum.operating_dt != f32::datum_type()
        || node.inputs.len() != 2
    {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    let w = model.outlet_fact(node.inputs[1])?;
    let output = model.outlet_fact(OutletId::new(node.id, 0))?;
    let Some(weights) = w.konst.as_ref() else {
        return Ok(None);
    };
    if x.konst.is_some()
        || x.datum_type != f32::datum_type()
        || weights.datum_type() != f32::datum_type()
        || x.rank() != 2
        || weights.rank() != 2
        || output.rank() != 2
        || output.datum_type != f32::datum_type()
    {
        return Ok(None);
    }
    let axes = &einsum.axes;
    // rows: x's axis 0 and the output's axis 0 only; k: x's axis 1 and one axis of w, not in the output.
    let rows = axes.axis((InOut::In(0), 0))?;
    let k_axis = axes.axis((InOut::In(0), 1))?;
    let rows_ok = rows.outputs[0][..] == [0] && rows.inputs[1].is_empty();
    let k_in_w = match k_axis.inputs[1][..] {
        [position] if k_axis.outputs[0].is_empty() => position,
        _ => return Ok(None),
    };
    let m_axis = axes.axis((InOut::In(1), 1 - k_in_w))?;
    let m_ok = m_axis.outputs[0][..] == [1] && m_axis.inputs[0].is_empty();
    if !rows_ok || !m_ok {
        return Ok(None);
    }
    let shape = weights.shape();
    let (k, m) = if k_in_w == 0 {
        (shape[0], shape[1])
    } else {
        (shape[1], shape[0])
    };
    if m == 0 || m > MAX_COLUMNS || x.shape[1].to_usize().ok() != Some(k) {
        return Ok(None);
    }
    let view = weights.to_plain_array_view::<f32>()?;
    let view = if k_in_w == 0 {
        view
    } else {
        view.reversed_axes()
    };
    Ok(Some(SmallMatMul::new(
        k,
        m,
        view.iter().map(|v| v.to_bits()).collect(),
    )))
}

/// `x · w` for float32 `x` `[rows, k]` and the constant `w` `[k, m]`, `m ≤ MAX_COLUMNS`.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct SmallMatMul {
    k: usize,
    m: usize,
    /// `w` row-major with each row padded by zeros to a multiple of 4 columns, as float32 bits (bits, so that the op
    /// is `Eq` and `Hash`).
    padded: Vec<u32>,
}

impl SmallMatMul {
    /// The op for `w` given row-major `[k, m]` as float32 bits.
    pub fn new(k: usize, m: usize, w: Vec<u32>) -> SmallMatMul {
        let padded = pad_columns(&w, k, m);
        SmallMatMul { k, m, padded }
    }
}

impl Op for SmallMatMul {
    fn name(&self) -> StaticName {
        "SmallMatMul".into()
    }

    op_as_typed_op!();
}

impl EvalOp for SmallMatMul {
    op_out_of_plan!();

    fn eval(&self, _context: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        ensure!(shape.len() == 2 && shape[1] == self.k);
        let rows = shape[0];
        let view = input.to_plain_array_view::<f32>()?;
        let x = view
            .as_slice()
            .context("a plain tensor is contiguous and row-major")?;
        let w: Vec<f32> = self.padded.iter().map(|&b| f32::from_bits(b)).collect();
        let mut out = vec![0f32; rows * self.m];
        matmul_rows(x, &w, self.k, self.m, &mut out);
        Ok(tvec!(
            Tensor::from_shape(&[rows, self.m], &out)?.into_tvalue()
        ))
    }
}

impl TypedOp for SmallMatMul {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type() && inputs[0].rank() == 2);
        Ok(tvec!(f32::fact([
            inputs[0].shape[0].clone(),
            self.m.to_dim()
        ])))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::small_matmul::tests::naive;

    /// A model `x · W + b` with `W` `[5, 3]`: replaced (both orientations of `W`), and its outputs equal the
    /// definition; a 20-column `W` is left to tract.
    #[test]
    fn replaces_small_constant_products_and_keeps_their_values() {
        for (columns, transposed, expect_replaced) in
            [(3, false, true), (3, true, true), (20, false, false)]
        {
            let k = 5;
            let w: Vec<f32> = (0..k * columns).map(|i| i as f32 * 0.25 - 1.0).collect();
            let mut model = TypedModel::default();
            let x = model
                .add_source(
                    "x",
                    f32::fact([model.symbols.sym("N").to_dim(), k.to_dim()]),
                )
                .unwrap();
            let (w_tensor, expr) = if transposed {
                let mut t = vec![0f32; k * columns];
                for kk in 0..k {
                    for j in 0..columns {
                        t[j * k + kk] = w[kk * columns + j];
                    }
                }
                (Tensor::from_shape(&[columns, k], &t).unwrap(), "mk,nk->mn")
            } else {
                (Tensor::from_shape(&[k, columns], &w).unwrap(), "mk,kn->mn")
            };
            let weights = model.add_const("w", w_tensor).unwrap();
            let product = model
                .wire_node(
                    "product",
                    EinSum::new(expr.parse().unwrap(), f32::datum_type()),
                    &[x, weights],
                )
                .unwrap();
            model.select_output_outlets(&product).unwrap();
            let replaced = replace_small_matmuls(&mut model).unwrap();
            assert_eq!(
                replaced > 0,
                expect_replaced,
                "{columns} columns, transposed {transposed}"
            );
            let plan = model.into_optimized().unwrap().into_runnable().unwrap();
            let rows = 6;
            let xs: Vec<f32> = (0..rows * k).map(|i| (i as f32).sin()).collect();
            let out = plan
                .run(tvec!(Tensor::from_shape(&[rows, k], &xs)
                    .unwrap()
                    .into_tvalue()))
                .unwrap();
            let have = out[0].to_plain_array_view::<f32>().unwrap();
            let want = naive(&xs, &w, k, columns);
            for (h, w) in have.iter().zip(&want) {
                assert!((h - w).abs() <= 1e-5 * w.abs().max(1.0), "{h} vs {w}");
            }
        }
    }
}
