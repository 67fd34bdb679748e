//! tract ops running tern's row kernels ([`crate::row_kernels`]), swapped into an optimised plan by
//! [`replace_row_ops`]: tract's Softmax and ArgMax / ArgMin over the last axis of a float32 tensor, and its
//! broadcasting Add / Sub / Mul / Div of a float32 tensor by a constant row. tract's kernels pay a per-row setup (a
//! scratch copy for the vector kernels' alignment, or an ndarray lane walk) that dwarfs the arithmetic of short rows.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer, Softmax, SoftmaxKind};

pub use crate::row_kernels::{arg_extreme_rows, constant_row, softmax_rows, Arithmetic, Extreme};

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

#[cfg(test)]
mod tests {
    use super::*;

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
