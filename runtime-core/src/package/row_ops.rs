//! Row kernels that replace tract's Softmax and ArgMax / ArgMin over the last axis of a float32 tensor in an
//! optimised plan ([`replace_row_ops`]).
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
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer, Softmax, SoftmaxKind};

/// Replaces, in an optimised plan, every float32 Softmax and ArgMax / ArgMin node over the last axis by
/// [`LastAxisSoftmax`] / [`LastAxisArgExtreme`]. Other nodes are left to tract.
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
        let replacement: Option<Box<dyn TypedOp>> = if let Some(softmax) = node.op_as::<Softmax>() {
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
            let inputs = node.inputs.clone();
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
    values.iter_mut().for_each(|v| *v = exp_nonpositive(*v));
    for row in values.chunks_mut(columns) {
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= sum);
    }
}

/// `e^x` for `x ≤ 0` (Cephes `expf`: Cody–Waite reduction by ln 2, a degree-7 polynomial, the power of two put in
/// the exponent bits). Below ln(f32::MIN_POSITIVE) it returns 0; NaN stays NaN.
#[inline]
fn exp_nonpositive(x: f32) -> f32 {
    const LOWEST: f32 = -87.336_55; // ln(f32::MIN_POSITIVE)
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HIGH: f32 = 0.693_359_4; // 0.693359375, exact in 9 bits
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer without a rounding instruction.
    const ROUND: f32 = 12_582_912.0;
    let clamped = if x < LOWEST { LOWEST } else { x };
    let n = (clamped * LOG2_E + ROUND) - ROUND;
    let r = clamped - n * LN2_HIGH - n * LN2_LOW;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5.000_000_1e-1;
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
        let softmax = model.wire_node(
            "softmax",
            Softmax::new(tvec!(1), None, SoftmaxKind::Softmax),
            &[source],
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
        model.select_output_outlets(&[softmax[0], argmax[0], argmin[0]])?;
        let tract_plan = model.clone().into_optimized()?.into_runnable()?;
        let mut replaced = model.into_optimized()?;
        replace_row_ops(&mut replaced)?;
        let names: Vec<String> = replaced
            .nodes
            .iter()
            .map(|n| n.op.name().to_string())
            .collect();
        for name in ["LastAxisSoftmax", "LastAxisArgMax", "LastAxisArgMin"] {
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
