//! Row kernels that replace, in an optimised plan ([`replace_row_ops`]), tract's Softmax and ArgMax / ArgMin over
//! the last axis of a float32 tensor, and its broadcasting Add / Sub / Mul / Div of a float32 tensor by a constant
//! row.
//!
//! tern's classifier heads reduce short rows (a class per column, often fewer than 16), where tract's kernels pay a
//! per-row setup (a scratch copy for the vector kernels' alignment, or an ndarray lane walk) that dwarfs the
//! arithmetic. These kernels run over the whole `[rows, columns]` buffer instead; each output row is a function of
//! its input row alone, computed with the same operations in the same order whatever the number of rows, so batching
//! never changes a row's bits.
//!
//! Softmax: `y = e / Σe` with `e = exp(x − max(x))`, `exp` a branch-free Cephes-style polynomial (error within 2
//! ulp of the true value on the reduced arguments, exactly 0 below float32's smallest normal) that compilers
//! vectorize. ArgMax / ArgMin: the first (or with `select_last_index`, the last) extreme index, NaN never chosen,
//! exactly as tract's reducer.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer, Softmax, SoftmaxKind};

/// Replaces, in an optimised plan, every float32 Softmax and ArgMax / ArgMin node over the last axis by
/// [`LastAxisSoftmax`] / [`LastAxisArgExtreme`], and every float32 Add / Sub / Mul / Div of a tensor by a constant
/// row by a [`ConstantRowOp`]. Other nodes are left to tract.
pub fn replace_row_ops(model: &mut TypedModel) -> TractResult<()> {
    let mut replaced = false;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(fact) = node
            .inputs
            .first()
            .map(|outlet| model.outlet_fact(*outlet))
            .transpose()?
        else {
            continue;
        };
        let rank = fact.rank();
        if fact.datum_type != f32::datum_type() || rank == 0 {
            continue;
        }
        let last_axis = |axes: &[usize]| axes == [rank - 1];
        let replacement: Option<Box<dyn TypedOp>> = if let Some(binary) = node.op_as::<TypedBinOp>()
        {
            constant_row_op(model, node, binary)?
        } else if let Some(softmax) = node.op_as::<Softmax>() {
            (softmax.kind == SoftmaxKind::Softmax
                && softmax.quant_output_dt.is_none()
                && last_axis(&softmax.axes))
            .then(|| Box::new(LastAxisSoftmax) as Box<dyn TypedOp>)
        } else if let Some(reduce) = node.op_as::<Reduce>() {
            let extreme = match reduce.reducer {
                Reducer::ArgMax(last) => Some((Extreme::Max, last)),
                Reducer::ArgMin(last) => Some((Extreme::Min, last)),
                _ => None,
            };
            extreme
                .filter(|_| last_axis(&reduce.axes))
                .map(|(extreme, select_last)| {
                    Box::new(LastAxisArgExtreme {
                        extreme,
                        select_last,
                    }) as Box<dyn TypedOp>
                })
        } else {
            None
        };
        if let Some(op) = replacement {
            // A constant-row op keeps only the varying operand.
            let inputs = match op.as_op().downcast_ref::<ConstantRowOp>() {
                Some(row_op) => vec![node.inputs[row_op.varying]],
                None => node.inputs.clone(),
            };
            let patch = TypedModelPatch::replace_single_op(model, node, &inputs, op)?;
            patch.apply(model)?;
            replaced = true;
        }
    }
    if replaced {
        model.compact()?;
    }
    Ok(())
}

/// `x ∘ c` (or `c ∘ x` for the commutative Add and Mul) where `x` is float32 `[…, d]` and `c` a constant float32
/// row of `d` values broadcast over the other axes, as a [`ConstantRowOp`]; `None` for any other binary node.
fn constant_row_op(
    model: &TypedModel,
    node: &TypedNode,
    binary: &TypedBinOp,
) -> TractResult<Option<Box<dyn TypedOp>>> {
    let arithmetic = match binary.0.name() {
        "Add" => Arithmetic::Add,
        "Sub" => Arithmetic::Sub,
        "Mul" => Arithmetic::Mul,
        "Div" => Arithmetic::Div,
        _ => return Ok(None),
    };
    if binary.1.is_some() || node.inputs.len() != 2 {
        return Ok(None);
    }
    let facts = [
        model.outlet_fact(node.inputs[0])?,
        model.outlet_fact(node.inputs[1])?,
    ];
    let output = model.outlet_fact(OutletId::new(node.id, 0))?;
    let commutative = matches!(arithmetic, Arithmetic::Add | Arithmetic::Mul);
    for varying in [0, 1] {
        if varying == 1 && !commutative {
            break;
        }
        let (x, c) = (facts[varying], facts[1 - varying]);
        let Some(row) = c.konst.as_ref() else {
            continue;
        };
        let Some(width) = x.shape.last().and_then(|d| d.to_usize().ok()) else {
            continue;
        };
        let row_shape_ok = row.rank() <= x.rank()
            && row.shape().last() == Some(&width)
            && row.shape().iter().rev().skip(1).all(|&d| d == 1);
        if x.datum_type == f32::datum_type()
            && row.datum_type() == f32::datum_type()
            && x.konst.is_none()
            && row_shape_ok
            && output.shape == x.shape
            && output.datum_type == f32::datum_type()
        {
            let row = row.to_plain_array_view::<f32>()?;
            return Ok(Some(Box::new(ConstantRowOp {
                arithmetic,
                row: row.iter().map(|v| v.to_bits()).collect(),
                varying,
            })));
        }
    }
    Ok(None)
}

/// The arithmetic of a [`ConstantRowOp`].
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Arithmetic {
    Add,
    Sub,
    Mul,
    Div,
}

/// `x ∘ row` over every row of a float32 `x` (`row ∘ x` when `varying` is 1, Add and Mul only), `row` a constant
/// the width of `x`'s last axis: what tract's broadcasting binary op computes, element for element.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct ConstantRowOp {
    pub arithmetic: Arithmetic,
    /// The constant row's float32 bits (bits, so that the op is `Eq` and `Hash`).
    pub row: Vec<u32>,
    /// The position of `x` among the original node's inputs.
    pub varying: usize,
}

impl Op for ConstantRowOp {
    fn name(&self) -> StaticName {
        format!("ConstantRow{:?}", self.arithmetic).into()
    }

    op_as_typed_op!();
}

impl EvalOp for ConstantRowOp {
    op_out_of_plan!();

    fn eval(&self, _context: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        ensure!(input.shape().last() == Some(&self.row.len()));
        let row: Vec<f32> = self.row.iter().map(|&bits| f32::from_bits(bits)).collect();
        let mut output = input.into_tensor();
        constant_row(
            output.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?,
            &row,
            self.arithmetic,
        );
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for ConstantRowOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// `values ∘ row` row by row, in place.
pub fn constant_row(values: &mut [f32], row: &[f32], arithmetic: Arithmetic) {
    if row.is_empty() {
        return;
    }
    for chunk in values.chunks_mut(row.len()) {
        let pairs = chunk.iter_mut().zip(row);
        // IEEE addition and multiplication are commutative: `c + x` and `c * x` are `x + c` and `x * c`.
        match arithmetic {
            Arithmetic::Add => pairs.for_each(|(x, &c)| *x += c),
            Arithmetic::Sub => pairs.for_each(|(x, &c)| *x -= c),
            Arithmetic::Mul => pairs.for_each(|(x, &c)| *x *= c),
            Arithmetic::Div => pairs.for_each(|(x, &c)| *x /= c),
        }
    }
}

/// Softmax over the last axis of a float32 tensor (ONNX `Softmax`, opset 13+, `axis = -1`).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct LastAxisSoftmax;

impl Op for LastAxisSoftmax {
    fn name(&self) -> StaticName {
        "LastAxisSoftmax".into()
    }

    op_as_typed_op!();
}

impl EvalOp for LastAxisSoftmax {
    op_out_of_plan!();

    fn eval(&self, _context: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let columns = *input.shape().last().context("softmax of a scalar")?;
        let mut output = input.into_tensor();
        softmax_rows(
            output.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?,
            columns,
        );
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for LastAxisSoftmax {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// Which extreme a [`LastAxisArgExtreme`] finds.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Extreme {
    Max,
    Min,
}

/// ArgMax / ArgMin over the last axis of a float32 tensor, keeping that axis (as tract's `Reduce`): int64 indices
/// of shape `[…, 1]`.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct LastAxisArgExtreme {
    pub extreme: Extreme,
    /// ONNX `select_last_index`: among equal extremes, the last one's index instead of the first.
    pub select_last: bool,
}

impl Op for LastAxisArgExtreme {
    fn name(&self) -> StaticName {
        match self.extreme {
            Extreme::Max => "LastAxisArgMax".into(),
            Extreme::Min => "LastAxisArgMin".into(),
        }
    }

    op_as_typed_op!();
}

impl EvalOp for LastAxisArgExtreme {
    op_out_of_plan!();

    fn eval(&self, _context: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let mut shape: TVec<usize> = input.shape().into();
        let columns = *shape.last().context("arg-extreme of a scalar")?;
        let view = input.to_plain_array_view::<f32>()?;
        let values = view
            .as_slice()
            .context("a plain tensor is contiguous and row-major")?;
        let indices = arg_extreme_rows(values, columns, self.extreme, self.select_last);
        if let Some(last) = shape.last_mut() {
            *last = 1;
        }
        Ok(tvec!(Tensor::from_shape(&shape, &indices)?.into_tvalue()))
    }
}

impl TypedOp for LastAxisArgExtreme {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        let mut shape: TVec<TDim> = inputs[0].shape.iter().cloned().collect();
        if let Some(last) = shape.last_mut() {
            *last = 1.to_dim();
        }
        Ok(tvec!(i64::fact(shape)))
    }

    as_op!();
}

/// Softmax of every `columns`-long row of `values`, in place (`columns == 0`: nothing to do).
pub fn softmax_rows(values: &mut [f32], columns: usize) {
    if columns == 0 {
        return;
    }
    for row in values.chunks_mut(columns) {
        let max = row
            .iter()
            .copied()
            .fold(row[0], |max, v| if v > max { v } else { max });
        row.iter_mut().for_each(|v| *v -= max);
    }
    exp_nonpositive_in_place(values);
    for row in values.chunks_mut(columns) {
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= sum);
    }
}

/// [`exp_nonpositive`] of every value, four lanes at a time where the target has wasm SIMD (the same operations,
/// so the same bits, as the scalar function).
fn exp_nonpositive_in_place(values: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let mut chunks = values.chunks_exact_mut(4);
        for chunk in &mut chunks {
            let lanes = [chunk[0], chunk[1], chunk[2], chunk[3]];
            chunk.copy_from_slice(&simd128::exp_nonpositive(lanes));
        }
        chunks
            .into_remainder()
            .iter_mut()
            .for_each(|v| *v = exp_nonpositive(*v));
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    values.iter_mut().for_each(|v| *v = exp_nonpositive(*v));
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use core::arch::wasm32::*;

    /// Four lanes of [`super::exp_nonpositive`], operation for operation.
    #[inline]
    pub fn exp_nonpositive(x: [f32; 4]) -> [f32; 4] {
        let splat = f32x4_splat;
        let x = f32x4(x[0], x[1], x[2], x[3]);
        let below = f32x4_lt(x, splat(super::LOWEST));
        let clamped = v128_bitselect(splat(super::LOWEST), x, below);
        let n = f32x4_sub(
            f32x4_add(
                f32x4_mul(clamped, splat(super::LOG2_E)),
                splat(super::ROUND),
            ),
            splat(super::ROUND),
        );
        let r = f32x4_sub(
            f32x4_sub(clamped, f32x4_mul(n, splat(super::LN2_HIGH))),
            f32x4_mul(n, splat(super::LN2_LOW)),
        );
        let mut p = splat(super::POLYNOMIAL[0]);
        for &c in &super::POLYNOMIAL[1..] {
            p = f32x4_add(f32x4_mul(p, r), splat(c));
        }
        let p = f32x4_add(f32x4_add(f32x4_mul(f32x4_mul(p, r), r), r), splat(1.0));
        let scale = i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127)), 23);
        let y = v128_bitselect(f32x4_splat(0.0), f32x4_mul(p, scale), below);
        [
            f32x4_extract_lane::<0>(y),
            f32x4_extract_lane::<1>(y),
            f32x4_extract_lane::<2>(y),
            f32x4_extract_lane::<3>(y),
        ]
    }
}

/// ln(f32::MIN_POSITIVE): below it, `e^x` is under float32's smallest normal.
const LOWEST: f32 = -87.336_55;
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split for Cody–Waite reduction: 0.693359375 is exact in 9 bits.
const LN2_HIGH: f32 = 0.693_359_4;
const LN2_LOW: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5 · 2^23 rounds to the nearest integer without a rounding instruction.
const ROUND: f32 = 12_582_912.0;
/// Cephes `expf`'s polynomial, highest degree first.
const POLYNOMIAL: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5, // Cephes' 5.0000001201e-1, rounded to float32
];

/// `e^x` for `x ≤ 0` (Cephes `expf`: Cody–Waite reduction by ln 2, a degree-7 polynomial, the power of two put in
/// the exponent bits). Below ln(f32::MIN_POSITIVE) it returns 0; NaN stays NaN.
#[inline]
fn exp_nonpositive(x: f32) -> f32 {
    let clamped = if x < LOWEST { LOWEST } else { x };
    let n = (clamped * LOG2_E + ROUND) - ROUND;
    let r = clamped - n * LN2_HIGH - n * LN2_LOW;
    let p = POLYNOMIAL[1..]
        .iter()
        .fold(POLYNOMIAL[0], |p, &c| p * r + c);
    let p = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < LOWEST {
        0.0
    } else {
        p * scale
    }
}

/// The index of each `columns`-long row's maximum (or minimum): tract's reducer, which starts from the type's
/// most extreme finite value at index 0 and moves only on a strictly better value (or an equal one with
/// `select_last`), so NaN is never chosen.
pub fn arg_extreme_rows(
    values: &[f32],
    columns: usize,
    extreme: Extreme,
    select_last: bool,
) -> Vec<i64> {
    if columns == 0 {
        return Vec::new();
    }
    values
        .chunks(columns)
        .map(|row| {
            let (mut best_index, mut best) = match extreme {
                Extreme::Max => (0, f32::MIN),
                Extreme::Min => (0, f32::MAX),
            };
            for (i, &v) in row.iter().enumerate() {
                let better = match extreme {
                    Extreme::Max => v > best,
                    Extreme::Min => v < best,
                };
                if better || (select_last && v == best) {
                    best_index = i;
                    best = v;
                }
            }
            best_index as i64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_the_true_value_on_nonpositive_arguments() {
        let mut x = 0.0f32;
        while x > -87.3 {
            let want = (x as f64).exp();
            let have = exp_nonpositive(x) as f64;
            let ulp = f32::EPSILON as f64 * want;
            assert!(
                (have - want).abs() <= 2.0 * ulp,
                "exp({x}) = {have}, want {want}"
            );
            x -= 0.001_37;
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-88.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_rows_sum_to_one_and_match_the_definition() {
        let columns = 7;
        let values: Vec<f32> = (0..columns * 9)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 3.0)
            .collect();
        let mut have = values.clone();
        softmax_rows(&mut have, columns);
        for (row, out) in values.chunks(columns).zip(have.chunks(columns)) {
            // The shift by the maximum is rounded to float32 as the kernel rounds it; the rest is exact here.
            let max = row.iter().copied().fold(f32::MIN, f32::max);
            let exp = |v: f32| ((v - max) as f64).exp();
            let sum: f64 = row.iter().map(|&v| exp(v)).sum();
            for (&v, &y) in row.iter().zip(out) {
                let want = exp(v) / sum;
                assert!(
                    (y as f64 - want).abs() <= 1e-6 * want,
                    "softmax {y}, want {want}"
                );
            }
            let total: f32 = out.iter().sum();
            assert!((total - 1.0).abs() <= 1e-6);
        }
    }

    #[test]
    fn a_rows_softmax_does_not_depend_on_the_other_rows() {
        let columns = 10;
        let values: Vec<f32> = (0..columns * 33)
            .map(|i| ((i * 7919 % 1000) as f32) / 61.0 - 8.0)
            .collect();
        let mut batch = values.clone();
        softmax_rows(&mut batch, columns);
        for (row, out) in values.chunks(columns).zip(batch.chunks(columns)) {
            let mut alone = row.to_vec();
            softmax_rows(&mut alone, columns);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&alone), bits(out));
        }
    }

    #[test]
    fn arg_extremes_follow_tracts_reducer() {
        let rows = [
            1.0,
            3.0,
            3.0,
            -2.0, //
            f32::NAN,
            0.5,
            f32::NAN,
            0.5, //
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY, //
            f32::NAN,
            f32::NAN,
            f32::NAN,
            f32::NAN,
        ];
        assert_eq!(
            arg_extreme_rows(&rows, 4, Extreme::Max, false),
            [1, 1, 0, 0]
        );
        assert_eq!(arg_extreme_rows(&rows, 4, Extreme::Max, true), [2, 3, 0, 0]);
        assert_eq!(
            arg_extreme_rows(&rows, 4, Extreme::Min, false),
            [3, 1, 0, 0]
        );
        assert_eq!(arg_extreme_rows(&rows, 4, Extreme::Min, true), [3, 3, 3, 0]);
        assert!(arg_extreme_rows(&[], 0, Extreme::Max, false).is_empty());
    }

    /// The replaced plan gives what tract's own Softmax and ArgMax give, within float32 rounding.
    #[test]
    fn replaced_plan_agrees_with_tract() -> TractResult<()> {
        let mut model = TypedModel::default();
        let rows = model.symbols.sym("N");
        let source = model.add_source("x", f32::fact([rows.to_dim(), 10.to_dim()]))?;
        let row = |values: Vec<f32>| Tensor::from_shape(&[1, 10], &values);
        let scale = model.add_const("scale", row((1..=10).map(|i| i as f32 / 7.0).collect())?)?;
        let shift = model.add_const("shift", row((0..10).map(|i| i as f32 - 4.5).collect())?)?;
        use tract_onnx::tract_core::ops::math;
        let scaled = model.wire_node("scaled", math::mul(), &[source, scale])?;
        let shifted = model.wire_node("shifted", math::add(), &[shift, scaled[0]])?;
        let centred = model.wire_node("centred", math::sub(), &[shifted[0], shift])?;
        let softmax = model.wire_node(
            "softmax",
            Softmax::new(tvec!(1), None, SoftmaxKind::Softmax),
            &centred,
        )?;
        let argmax = model.wire_node(
            "argmax",
            Reduce::new(tvec!(1), Reducer::ArgMax(false)),
            &softmax,
        )?;
        let argmin = model.wire_node(
            "argmin",
            Reduce::new(tvec!(1), Reducer::ArgMin(false)),
            &[source],
        )?;
        model.select_output_outlets(&[softmax[0], argmax[0], argmin[0], centred[0]])?;
        let tract_plan = model.clone().into_optimized()?.into_runnable()?;
        let mut replaced = model.into_optimized()?;
        replace_row_ops(&mut replaced)?;
        let names: Vec<String> = replaced
            .nodes
            .iter()
            .map(|n| n.op.name().to_string())
            .collect();
        for name in [
            "LastAxisSoftmax",
            "LastAxisArgMax",
            "LastAxisArgMin",
            "ConstantRowMul",
            "ConstantRowAdd",
            "ConstantRowSub",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
        }
        let ours = replaced.into_runnable()?;
        let x: Vec<f32> = (0..10 * 57)
            .map(|i| ((i * 7919 % 1000) as f32) / 37.0 - 12.0)
            .collect();
        let input = Tensor::from_shape(&[57, 10], &x)?;
        let want = tract_plan.run(tvec!(input.clone().into_tvalue()))?;
        let have = ours.run(tvec!(input.into_tvalue()))?;
        for (w, h) in want[0]
            .to_plain_array_view::<f32>()?
            .iter()
            .zip(have[0].to_plain_array_view::<f32>()?.iter())
        {
            assert!((w - h).abs() <= 1e-6, "{w} vs {h}");
        }
        // Row arithmetic is exact IEEE arithmetic, as tract's: the same bits.
        let bits = |t: &TValue| -> TractResult<Vec<u32>> {
            Ok(t.to_plain_array_view::<f32>()?
                .iter()
                .map(|v| v.to_bits())
                .collect())
        };
        assert_eq!(bits(&want[3])?, bits(&have[3])?);
        for output in 1..3 {
            assert_eq!(want[output].shape(), have[output].shape());
            let cast = |t: &TValue| -> TractResult<Vec<i64>> {
                Ok(t.cast_to::<i64>()?
                    .to_plain_array_view::<i64>()?
                    .iter()
                    .copied()
                    .collect())
            };
            assert_eq!(cast(&want[output])?, cast(&have[output])?);
        }
        Ok(())
    }
}
