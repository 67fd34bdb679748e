//! The product of a float32 batch `x` `[rows, k]` by a constant matrix `w` `[k, m]` of at most
//! [`MAX_COLUMNS`] columns: a multiclass Linear Learner's weights, K-Means' centroids, PCA's components.
//!
//! tract's wasm matrix kernel is 8 columns wide, so a 10-class head pads to 16 (37% of the work wasted), and its
//! native kernels pay packing and dispatch that dwarf products this small. This kernel pads `m` to a multiple of 4
//! (one wasm SIMD vector; natively the compiler vectorizes the scalar form) and keeps four rows' accumulators in
//! registers. Measured natively (x86_64, one thread, digits' 64×10 head, whole graph): batch 1 2.9 → 1.4 µs, 256
//! 40 → 30 µs, 1024 224 → 121 µs. Every output is
//! `Σₖ x[r, k] · w[k, j]` summed in order of `k` from 0.0, one rounded multiply and one rounded add per term (no fused
//! multiply-add), so the SIMD and scalar paths give the same bits and a row's bits never depend on its batch.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::einsum::EinSum;

/// The widest constant matrix [`SmallMatMul`] takes: beyond it tract's kernels waste little to padding.
pub const MAX_COLUMNS: usize = 16;

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
        let width = m.div_ceil(4) * 4;
        let mut padded = vec![0u32; k * width];
        for (row, values) in padded.chunks_exact_mut(width).zip(w.chunks_exact(m.max(1))) {
            row[..m].copy_from_slice(values);
        }
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

/// `out[r, j] = Σₖ x[r, k] · w[k, j]` for `x` `[rows, k]`, `w` `[k, width]` (`width` = `m` padded to a multiple of 4,
/// the padding zero) and `out` `[rows, m]`; terms added in order of `k` from 0.0, unfused.
pub fn matmul_rows(x: &[f32], w: &[f32], k: usize, m: usize, out: &mut [f32]) {
    let width = m.div_ceil(4) * 4;
    debug_assert_eq!(w.len(), k * width);
    if k == 0 {
        out.fill(0.0);
        return;
    }
    match width / 4 {
        1 => rows_of::<1>(x, w, k, m, out),
        2 => rows_of::<2>(x, w, k, m, out),
        3 => rows_of::<3>(x, w, k, m, out),
        _ => rows_of::<4>(x, w, k, m, out),
    }
}

/// [`matmul_rows`] for `w` `V` vectors of 4 columns wide: four rows at a time, then the rest one by one.
fn rows_of<const V: usize>(x: &[f32], w: &[f32], k: usize, m: usize, out: &mut [f32]) {
    let mut x_blocks = x.chunks_exact(4 * k);
    let mut out_blocks = out.chunks_exact_mut(4 * m);
    for (xs, outs) in (&mut x_blocks).zip(&mut out_blocks) {
        block::<V, 4>(xs, w, k, m, outs);
    }
    for (xs, outs) in x_blocks
        .remainder()
        .chunks_exact(k)
        .zip(out_blocks.into_remainder().chunks_exact_mut(m))
    {
        block::<V, 1>(xs, w, k, m, outs);
    }
}

/// `R` rows of `x` times `w` (`V` vectors wide) into `R` rows of `out`, with wasm SIMD.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn block<const V: usize, const R: usize>(
    x: &[f32],
    w: &[f32],
    k: usize,
    m: usize,
    out: &mut [f32],
) {
    use core::arch::wasm32::*;
    let mut acc = [[f32x4_splat(0.0); V]; R];
    for (kk, w_row) in w.chunks_exact(4 * V).enumerate().take(k) {
        // SAFETY: `w_row` holds 4·V floats, so each of the V 16-byte loads is in bounds (v128_load is unaligned).
        let wv: [v128; V] =
            core::array::from_fn(|v| unsafe { v128_load(w_row.as_ptr().add(4 * v).cast()) });
        for (r, acc_row) in acc.iter_mut().enumerate() {
            let xv = f32x4_splat(x[r * k + kk]);
            for (a, &wj) in acc_row.iter_mut().zip(&wv) {
                *a = f32x4_add(*a, f32x4_mul(xv, wj));
            }
        }
    }
    for (r, acc_row) in acc.iter().enumerate() {
        let mut lanes = [0f32; 16];
        for (v, a) in acc_row.iter().enumerate() {
            lanes[4 * v..4 * v + 4].copy_from_slice(&[
                f32x4_extract_lane::<0>(*a),
                f32x4_extract_lane::<1>(*a),
                f32x4_extract_lane::<2>(*a),
                f32x4_extract_lane::<3>(*a),
            ]);
        }
        out[r * m..(r + 1) * m].copy_from_slice(&lanes[..m]);
    }
}

/// `R` rows of `x` times `w` (`V` vectors wide) into `R` rows of `out`: the scalar form of the SIMD block, the same
/// operations in the same order.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn block<const V: usize, const R: usize>(
    x: &[f32],
    w: &[f32],
    k: usize,
    m: usize,
    out: &mut [f32],
) {
    let mut acc = [[[0f32; 4]; V]; R];
    for (kk, w_row) in w.chunks_exact(4 * V).enumerate().take(k) {
        for (r, acc_row) in acc.iter_mut().enumerate() {
            let xv = x[r * k + kk];
            for (v, lanes) in acc_row.iter_mut().enumerate() {
                for (lane, a) in lanes.iter_mut().enumerate() {
                    *a += xv * w_row[4 * v + lane];
                }
            }
        }
    }
    for (r, acc_row) in acc.iter().enumerate() {
        out[r * m..(r + 1) * m].copy_from_slice(&acc_row.as_flattened()[..m]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, term by term in order of k.
    fn naive(x: &[f32], w: &[f32], k: usize, m: usize) -> Vec<f32> {
        let rows = x.len() / k;
        let mut out = vec![0f32; rows * m];
        for r in 0..rows {
            for j in 0..m {
                let mut sum = 0f32;
                for kk in 0..k {
                    sum += x[r * k + kk] * w[kk * m + j];
                }
                out[r * m + j] = sum;
            }
        }
        out
    }

    #[test]
    fn equals_the_definition_bit_for_bit_for_every_width_and_row_count() {
        for m in 1..=MAX_COLUMNS {
            for rows in [0, 1, 3, 4, 5, 9] {
                let k = 7;
                let x: Vec<f32> = (0..rows * k)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                    .collect();
                let w: Vec<f32> = (0..k * m)
                    .map(|i| ((i * 53 % 97) as f32 - 48.0) / 11.0)
                    .collect();
                let op = SmallMatMul::new(k, m, w.iter().map(|v| v.to_bits()).collect());
                let padded: Vec<f32> = op.padded.iter().map(|&b| f32::from_bits(b)).collect();
                let mut have = vec![f32::NAN; rows * m];
                matmul_rows(&x, &padded, k, m, &mut have);
                let want = naive(&x, &w, k, m);
                assert_eq!(
                    have.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "m {m}, {rows} rows"
                );
            }
        }
    }

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
