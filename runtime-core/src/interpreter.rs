//! tern's own CPU executor of a [`Plan`]: the engine of builds without tract (the browser's wasm module, where
//! tract's code would triple the download) and a second engine natively, which the conformance suite checks
//! against the trainer like every other runtime.
//!
//! Values are typed vectors: float32, int64 (indices and labels), bool, and the int8/uint8 constants that
//! `DequantizeLinear` reads (float16 constants are widened once at load). Steps whose inputs are all constants are
//! computed once at load (weight dequantization, float16 widening), and a constant right-hand matrix of a
//! transposed `Gemm` is transposed once, so a run does only the work that depends on the rows.
//!
//! Arithmetic follows the ONNX definitions in index order in float32, each product and sum rounded on its own (no
//! fused multiply-add), so results do not depend on the target's vector width or the batch a row arrives in. The
//! tree ops accumulate in float64 as their evaluators document.

use std::sync::Arc;

use crate::onnx::ModelProto;
use crate::package::{Output, OutputValues};
use crate::plan::{
    around, axis_index, infer, BinaryOp, Constant, DType, Kernel, Plan, ReduceOp, Step, UnaryOp,
    Unsupported,
};
use crate::row_kernels::{arg_extreme_rows, constant_row, softmax_rows, Arithmetic, Extreme};
use crate::small_matmul::{matmul_rows, pad_columns, MAX_COLUMNS};

/// `$body` over a float, int64 or bool value's elements (bound to `$v`), giving a value of the same type.
macro_rules! each_type {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            Data::F32($v) => Data::F32(Buf::new($body)),
            Data::I64($v) => Data::I64(Buf::new($body)),
            Data::Bool($v) => Data::Bool(Buf::new($body)),
            other => return Err(format!("a gather of {} values", other.kind())),
        }
    };
}

/// A value's elements: shared, so views and constants cost no copy, or borrowed from the caller (a run's input
/// rows, which are never copied unless a step overwrites them).
#[derive(Debug, Clone)]
enum Buf<'a, T> {
    Shared(Arc<Vec<T>>),
    Borrowed(&'a [T]),
}

impl<T> Buf<'_, T> {
    fn new(values: Vec<T>) -> Self {
        Buf::Shared(Arc::new(values))
    }
}

impl<T> std::ops::Deref for Buf<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Buf::Shared(values) => values,
            Buf::Borrowed(values) => values,
        }
    }
}

impl<T: Clone> Buf<'_, T> {
    /// The elements as an owned vector, copied only when something else still holds them.
    fn into_owned(self) -> Vec<T> {
        match self {
            Buf::Shared(shared) => Arc::try_unwrap(shared).unwrap_or_else(|shared| shared.to_vec()),
            Buf::Borrowed(values) => values.to_vec(),
        }
    }
}

/// A value's elements, row-major.
#[derive(Debug, Clone)]
enum Data<'a> {
    F32(Buf<'a, f32>),
    I64(Buf<'a, i64>),
    Bool(Buf<'a, bool>),
    I8(Buf<'a, i8>),
    U8(Buf<'a, u8>),
}

impl Data<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Data::F32(_) => "float",
            Data::I64(_) => "int64",
            Data::Bool(_) => "bool",
            Data::I8(_) => "int8",
            Data::U8(_) => "uint8",
        }
    }
}

#[derive(Debug, Clone)]
struct Tensor<'a> {
    shape: Vec<usize>,
    data: Data<'a>,
}

impl<'a> Tensor<'a> {
    fn f32(shape: Vec<usize>, values: Vec<f32>) -> Tensor<'a> {
        Tensor {
            shape,
            data: Data::F32(Buf::new(values)),
        }
    }

    fn as_f32(&self) -> Result<&[f32], String> {
        match &self.data {
            Data::F32(v) => Ok(v),
            other => Err(format!("expected a float value, found {}", other.kind())),
        }
    }

    fn as_i64(&self) -> Result<&[i64], String> {
        match &self.data {
            Data::I64(v) => Ok(v),
            other => Err(format!("expected an int64 value, found {}", other.kind())),
        }
    }

    fn as_bool(&self) -> Result<&[bool], String> {
        match &self.data {
            Data::Bool(v) => Ok(v),
            other => Err(format!("expected a bool value, found {}", other.kind())),
        }
    }
}

/// A plan ready to run on the CPU: its constants decoded and the constant part of the graph computed.
#[derive(Debug, Clone)]
pub struct Interpreter {
    plan: Plan,
    /// One per plan value: the constant (initializers, `Constant` nodes and folded steps), `None` when computed per
    /// run.
    constants: Vec<Option<Tensor<'static>>>,
    /// The steps a run computes, as indices into the plan's steps.
    live: Vec<usize>,
    /// Per value: the position in `live` of the last step reading it (`usize::MAX` for graph outputs and values
    /// no step reads), after which a run drops it, so that its last reader may overwrite it in place.
    last_use: Vec<usize>,
    /// Per step: a constant right-hand matrix of at most [`MAX_COLUMNS`] columns, padded for
    /// [`crate::small_matmul`]'s kernel.
    padded: Vec<Option<Arc<Vec<f32>>>>,
}

impl Interpreter {
    /// Checks and types `model`'s graph and prepares it. Errors name the first node tern's kernels cannot run.
    pub fn new(model: &ModelProto) -> Result<Interpreter, Unsupported> {
        let plan = Plan::new(model)?;
        let mut constants: Vec<Option<Tensor<'static>>> = plan
            .values
            .iter()
            .map(|v| v.constant.as_ref().map(|c| decode(v.dtype, c)))
            .collect();
        let mut live = Vec::new();
        for (index, step) in plan.steps.iter().enumerate() {
            let folded = step
                .inputs
                .iter()
                .all(|i| i.is_none_or(|i| constants[i].is_some()));
            if !folded {
                live.push(index);
                continue;
            }
            let inputs: Vec<Option<Tensor>> = step
                .inputs
                .iter()
                .map(|i| i.and_then(|i| constants[i].clone()))
                .collect();
            let outputs = compute(step, inputs, None).map_err(|reason| Unsupported {
                node: step.node.clone(),
                op_type: step.op_type.clone(),
                reason,
            })?;
            for (&out, tensor) in step.outputs.iter().zip(outputs) {
                constants[out] = Some(tensor);
            }
        }
        // A constant B of a transposed Gemm, transposed once so each row's products read B row by row.
        let mut plan = plan;
        for &index in &live {
            let step = &mut plan.steps[index];
            if let Kernel::MatMul { transpose_b, .. } = &mut step.kernel {
                let Some(Some(b)) = step.inputs.get(1) else {
                    continue;
                };
                let Some(Tensor {
                    shape,
                    data: Data::F32(values),
                }) = &constants[*b]
                else {
                    continue;
                };
                if !*transpose_b || shape.len() != 2 {
                    continue;
                }
                let (n, k) = (shape[0], shape[1]);
                let mut transposed = vec![0f32; n * k];
                for j in 0..n {
                    for kk in 0..k {
                        transposed[kk * n + j] = values[j * k + kk];
                    }
                }
                // A fresh value for the transposed copy: the original may feed other steps.
                let id = plan.values.len();
                plan.values.push(crate::plan::Value {
                    name: format!("{}.transposed", plan.values[*b].name),
                    dtype: DType::F32,
                    constant: None,
                });
                constants.push(Some(Tensor::f32(vec![k, n], transposed)));
                step.inputs[1] = Some(id);
                *transpose_b = false;
            }
        }
        let mut padded = vec![None; plan.steps.len()];
        for &index in &live {
            let step = &plan.steps[index];
            let Kernel::MatMul {
                transpose_b: false, ..
            } = step.kernel
            else {
                continue;
            };
            if let Some(Some(Tensor {
                shape,
                data: Data::F32(w),
            })) = step.inputs.get(1).copied().flatten().map(|b| &constants[b])
            {
                if let [k, m] = shape[..] {
                    if m <= MAX_COLUMNS {
                        padded[index] = Some(Arc::new(pad_columns(w, k, m)));
                    }
                }
            }
        }
        let mut last_use = vec![usize::MAX; plan.values.len()];
        for (position, &index) in live.iter().enumerate() {
            for &input in plan.steps[index].inputs.iter().flatten() {
                last_use[input] = position;
            }
        }
        for output in &plan.outputs {
            last_use[output.value] = usize::MAX;
        }
        Ok(Interpreter {
            plan,
            constants,
            live,
            last_use,
            padded,
        })
    }

    /// The number of features a row has.
    pub fn feature_dim(&self) -> usize {
        self.plan.feature_dim
    }

    /// The graph's output names, in graph order.
    pub fn output_names(&self) -> Vec<String> {
        self.plan.outputs.iter().map(|o| o.name.clone()).collect()
    }

    /// Runs the graph on `rows` rows of `features` (row-major) and returns every graph output, in graph order;
    /// integer and boolean outputs as int64.
    pub fn run(&self, features: &[f32], rows: usize) -> Result<Vec<Output>, String> {
        let dim = self.plan.feature_dim;
        if features.len() != rows * dim {
            return Err(format!(
                "{} feature values given for {rows} rows of {dim} features",
                features.len()
            ));
        }
        // This run's values; constants are read from `self.constants`.
        let mut values: Vec<Option<Tensor>> = vec![None; self.constants.len()];
        values[self.plan.input] = Some(Tensor {
            shape: vec![rows, dim],
            data: Data::F32(Buf::Borrowed(features)),
        });
        for (position, &index) in self.live.iter().enumerate() {
            let step = &self.plan.steps[index];
            let inputs: Vec<Option<Tensor>> = step
                .inputs
                .iter()
                .map(|i| i.and_then(|i| values[i].clone().or_else(|| self.constants[i].clone())))
                .collect();
            // Values read for the last time are dropped here: where `inputs` then holds the only reference, the
            // kernel may reuse its buffer.
            for &input in step.inputs.iter().flatten() {
                if self.last_use[input] == position {
                    values[input] = None;
                }
            }
            let outputs = compute(
                step,
                inputs,
                self.padded[index].as_deref().map(Vec::as_slice),
            )
            .map_err(|reason| format!("node {:?} ({}): {reason}", step.node, step.op_type))?;
            for (&out, tensor) in step.outputs.iter().zip(outputs) {
                values[out] = Some(tensor);
            }
        }
        let mut results = Vec::with_capacity(self.plan.outputs.len());
        for (at, output) in self.plan.outputs.iter().enumerate() {
            // Moved out unless a later output is the same value.
            let again = self.plan.outputs[at + 1..]
                .iter()
                .any(|o| o.value == output.value);
            let tensor = if again {
                values[output.value].clone()
            } else {
                values[output.value].take()
            }
            .or_else(|| self.constants[output.value].clone())
            .ok_or_else(|| format!("graph output {:?} was not computed", output.name))?;
            results.push((output, tensor));
        }
        results
            .into_iter()
            .map(|(output, tensor)| {
                let values = match (tensor.data, output.integer) {
                    (Data::F32(v), false) => OutputValues::F32(v.into_owned()),
                    (Data::I64(v), true) => OutputValues::I64(v.into_owned()),
                    (Data::Bool(v), true) => {
                        OutputValues::I64(v.iter().map(|&b| i64::from(b)).collect())
                    }
                    (data, _) => {
                        return Err(format!(
                            "graph output {:?} holds {} values",
                            output.name,
                            data.kind()
                        ))
                    }
                };
                Ok(Output {
                    name: output.name.clone(),
                    shape: tensor.shape,
                    values,
                })
            })
            .collect()
    }
}

/// A constant's words (the GPU's packing, see [`DType`]) as a CPU value; float16 widened to float32.
fn decode(dtype: DType, constant: &Constant) -> Tensor<'static> {
    let words = &constant.words;
    let count: usize = constant.shape.iter().product();
    let bytes = || {
        words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .take(count)
            .collect::<Vec<u8>>()
    };
    let data = match dtype {
        DType::F32 => Data::F32(Buf::new(words.iter().map(|&w| f32::from_bits(w)).collect())),
        DType::Int => Data::I64(Buf::new(
            words.iter().map(|&w| i64::from(w as i32)).collect(),
        )),
        DType::Bool => Data::Bool(Buf::new(words.iter().map(|&w| w != 0).collect())),
        DType::F16 => Data::F32(Buf::new(
            words
                .iter()
                .flat_map(|&w| [w as u16, (w >> 16) as u16])
                .take(count)
                .map(crate::onnx::f16_bits_to_f32)
                .collect(),
        )),
        DType::I8 => Data::I8(Buf::new(bytes().into_iter().map(|b| b as i8).collect())),
        DType::U8 => Data::U8(Buf::new(bytes())),
    };
    Tensor {
        shape: constant.shape.clone(),
        data,
    }
}

/// Runs one step on its inputs (`None`: an absent optional input); `padded`: its constant right-hand matrix
/// prepared for the small-matrix kernel.
fn compute<'a>(
    step: &Step,
    mut inputs: Vec<Option<Tensor<'a>>>,
    padded: Option<&[f32]>,
) -> Result<Vec<Tensor<'a>>, String> {
    if let Some(done) = compute_in_place(step, &mut inputs)? {
        return Ok(vec![done]);
    }
    let inputs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
    let inputs = inputs.as_slice();
    let shapes: Vec<Option<&[usize]>> = inputs
        .iter()
        .map(|t| t.map(|t| t.shape.as_slice()))
        .collect();
    let out_shapes = infer(&step.kernel, &shapes)?;
    let input = |i: usize| -> Result<&Tensor, String> {
        inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("input {i} is missing"))
    };
    let a = input(0)?;
    let shape = out_shapes[0].clone();
    let single = |data: Data<'a>| {
        Ok(vec![Tensor {
            shape: shape.clone(),
            data,
        }])
    };
    match &step.kernel {
        Kernel::Unary(op) => single(unary(*op, a)?),
        Kernel::CastF16 => single(Data::F32(Buf::new(a.as_f32()?.to_vec()))),
        Kernel::View(_) => single(a.data.clone()),
        Kernel::Binary(op) => single(binary(*op, a, input(1)?, &shape)?),
        Kernel::Where => {
            let condition = a.as_bool()?;
            let (x, y) = (input(1)?, input(2)?);
            let shapes = [a.shape.as_slice(), &x.shape, &y.shape];
            let data = match (&x.data, &y.data) {
                (Data::F32(x), Data::F32(y)) => {
                    Data::F32(Buf::new(select(condition, x, y, shapes, &shape)))
                }
                (Data::I64(x), Data::I64(y)) => {
                    Data::I64(Buf::new(select(condition, x, y, shapes, &shape)))
                }
                (Data::Bool(x), Data::Bool(y)) => {
                    Data::Bool(Buf::new(select(condition, x, y, shapes, &shape)))
                }
                (x, y) => return Err(format!("Where of {} and {}", x.kind(), y.kind())),
            };
            single(data)
        }
        Kernel::MatMul {
            transpose_b,
            alpha,
            beta,
        } => {
            let b = input(1)?;
            let c = inputs.get(2).copied().flatten();
            single(Data::F32(Buf::new(matmul(
                a,
                b,
                c,
                (*transpose_b, *alpha, *beta),
                padded,
                &shape,
            )?)))
        }
        Kernel::Reduce { op, axes, .. } => {
            single(Data::F32(Buf::new(reduce(*op, axes.as_deref(), a)?)))
        }
        Kernel::ArgReduce {
            max, axis, last, ..
        } => {
            let x = a.as_f32()?;
            let (outer, r, inner) = around(&a.shape, axis_index(*axis, a.shape.len())?);
            let extreme = if *max { Extreme::Max } else { Extreme::Min };
            if inner == 1 {
                return single(Data::I64(Buf::new(arg_extreme_rows(x, r, extreme, *last))));
            }
            // Another axis: the row kernel's rule (start from the most extreme finite value at index 0, move on a
            // strictly better value, or an equal one with `select_last_index`: NaN is never chosen).
            let mut out = Vec::with_capacity(outer * inner);
            for o in 0..outer {
                for i in 0..inner {
                    let (mut best_index, mut best) =
                        if *max { (0, f32::MIN) } else { (0, f32::MAX) };
                    for j in 0..r {
                        let v = x[(o * r + j) * inner + i];
                        let better = if *max { v > best } else { v < best };
                        if better || (*last && v == best) {
                            (best_index, best) = (j, v);
                        }
                    }
                    out.push(best_index as i64);
                }
            }
            single(Data::I64(Buf::new(out)))
        }
        Kernel::Softmax { axis, log } => {
            let x = a.as_f32()?;
            let (outer, r, inner) = around(&a.shape, axis_index(*axis, a.shape.len())?);
            if inner == 1 && !*log {
                let mut out = x.to_vec();
                softmax_rows(&mut out, r);
                return single(Data::F32(Buf::new(out)));
            }
            let mut out = vec![0f32; x.len()];
            for o in 0..outer {
                for i in 0..inner {
                    let at = |j: usize| (o * r + j) * inner + i;
                    let max = (0..r).map(|j| x[at(j)]).fold(f32::NEG_INFINITY, f32::max);
                    let mut total = 0f32;
                    for j in 0..r {
                        let e = (x[at(j)] - max).exp();
                        out[at(j)] = e;
                        total += e;
                    }
                    for j in 0..r {
                        out[at(j)] = if *log {
                            x[at(j)] - max - total.ln()
                        } else {
                            out[at(j)] / total
                        };
                    }
                }
            }
            single(Data::F32(Buf::new(out)))
        }
        Kernel::TopK { axis, k, largest } => {
            let x = a.as_f32()?;
            let (outer, r, inner) = around(&a.shape, axis_index(*axis, a.shape.len())?);
            let (mut values, mut indices) =
                (vec![0f32; outer * k * inner], vec![0i64; outer * k * inner]);
            let mut order: Vec<usize> = Vec::with_capacity(r);
            for o in 0..outer {
                for i in 0..inner {
                    let at = |j: usize| x[(o * r + j) * inner + i];
                    // Largest (or smallest) first; equal values by lower index, as ONNX specifies.
                    let before = |p: &usize, q: &usize| {
                        let ordering = if *largest {
                            at(*q).total_cmp(&at(*p))
                        } else {
                            at(*p).total_cmp(&at(*q))
                        };
                        ordering.then(p.cmp(q))
                    };
                    order.clear();
                    order.extend(0..r);
                    if *k < r && *k > 0 {
                        order.select_nth_unstable_by(*k - 1, before);
                    }
                    order.truncate(*k);
                    order.sort_unstable_by(before);
                    for (slot, &j) in order.iter().enumerate() {
                        let out = (o * k + slot) * inner + i;
                        values[out] = at(j);
                        indices[out] = j as i64;
                    }
                }
            }
            Ok(vec![
                Tensor::f32(out_shapes[0].clone(), values),
                Tensor {
                    shape: out_shapes[1].clone(),
                    data: Data::I64(Buf::new(indices)),
                },
            ])
        }
        Kernel::Gather { axis } => {
            let axis = axis_index(*axis, a.shape.len())?;
            let indices = input(1)?.as_i64()?;
            let (outer, r, inner) = around(&a.shape, axis);
            let rows = resolve_indices(indices, r)?;
            let blocks: Vec<usize> = (0..outer)
                .flat_map(|o| rows.iter().map(move |&j| (o * r + j) * inner))
                .collect();
            single(each_type!(&a.data, v => gather_blocks(v, &blocks, inner)))
        }
        Kernel::GatherElements { axis } => {
            let axis = axis_index(*axis, a.shape.len())?;
            let index_tensor = input(1)?;
            let indices = index_tensor.as_i64()?;
            let (_, r, inner) = around(&a.shape, axis);
            let (_, ri, _) = around(&index_tensor.shape, axis);
            let positions = indices
                .iter()
                .enumerate()
                .map(|(flat, &index)| {
                    let (o, rest) = (flat / (ri * inner), flat % (ri * inner));
                    let j = resolve_index(index, r)?;
                    Ok((o * r + j) * inner + rest % inner)
                })
                .collect::<Result<Vec<usize>, String>>()?;
            single(each_type!(&a.data, v => gather_blocks(v, &positions, 1)))
        }
        Kernel::CumSum {
            axis,
            exclusive,
            reverse,
        } => {
            let (outer, r, inner) = around(&a.shape, axis_index(*axis, a.shape.len())?);
            let order: Vec<usize> = if *reverse {
                (0..r).rev().collect()
            } else {
                (0..r).collect()
            };
            fn running<T: Copy + Default + std::ops::Add<Output = T>>(
                x: &[T],
                (outer, r, inner): (usize, usize, usize),
                order: &[usize],
                exclusive: bool,
            ) -> Vec<T> {
                let mut out = vec![T::default(); x.len()];
                for o in 0..outer {
                    for i in 0..inner {
                        let mut total = T::default();
                        for &j in order {
                            let at = (o * r + j) * inner + i;
                            if exclusive {
                                out[at] = total;
                                total = total + x[at];
                            } else {
                                total = total + x[at];
                                out[at] = total;
                            }
                        }
                    }
                }
                out
            }
            let data = match &a.data {
                Data::F32(x) => {
                    Data::F32(Buf::new(running(x, (outer, r, inner), &order, *exclusive)))
                }
                Data::I64(x) => {
                    Data::I64(Buf::new(running(x, (outer, r, inner), &order, *exclusive)))
                }
                other => return Err(format!("CumSum of {} values", other.kind())),
            };
            single(data)
        }
        Kernel::Dequantize { axis } => {
            let scale = input(1)?;
            let zero = inputs.get(2).copied().flatten();
            let scales = scale.as_f32()?;
            // Per-tensor, or per index of `axis`.
            let (_, r, inner) = if scales.len() == 1 {
                (1, 1, a.shape.iter().product::<usize>().max(1))
            } else {
                around(&a.shape, axis_index(*axis, a.shape.len())?)
            };
            let channel = |flat: usize| (flat / inner) % r;
            let widen = |q: &[i32], zero: Option<Vec<i32>>| -> Vec<f32> {
                q.iter()
                    .enumerate()
                    .map(|(flat, &q)| {
                        let c = channel(flat);
                        let z = zero.as_ref().map_or(0, |z| z[c.min(z.len() - 1)]);
                        ((q - z) as f32) * scales[c.min(scales.len() - 1)]
                    })
                    .collect()
            };
            let zero_points = |t: &Tensor| -> Result<Vec<i32>, String> {
                match &t.data {
                    Data::I8(z) => Ok(z.iter().map(|&v| i32::from(v)).collect()),
                    Data::U8(z) => Ok(z.iter().map(|&v| i32::from(v)).collect()),
                    other => Err(format!("a zero point of {} values", other.kind())),
                }
            };
            let zero = zero.map(zero_points).transpose()?.filter(|z| !z.is_empty());
            let q: Vec<i32> = match &a.data {
                Data::I8(q) => q.iter().map(|&v| i32::from(v)).collect(),
                Data::U8(q) => q.iter().map(|&v| i32::from(v)).collect(),
                other => return Err(format!("DequantizeLinear of {} values", other.kind())),
            };
            single(Data::F32(Buf::new(widen(&q, zero))))
        }
        Kernel::TreeEnsemble(ensemble) => {
            let [rows, columns] = a.shape[..] else {
                return Err(format!("the input {:?} is not [N, features]", a.shape));
            };
            let scores = ensemble
                .evaluate(a.as_f32()?, rows, columns)
                .map_err(|e| format!("{e:#}"))?;
            single(Data::F32(Buf::new(scores)))
        }
        Kernel::RandomCutForest(forest) => {
            let [rows, columns] = a.shape[..] else {
                return Err(format!("the input {:?} is not [N, features]", a.shape));
            };
            let scores = forest
                .evaluate(a.as_f32()?, rows, columns)
                .map_err(|e| format!("{e:#}"))?;
            single(Data::F32(Buf::new(scores)))
        }
    }
}

/// The elementwise float kernels that can overwrite their first input, when the step holds the only reference to it
/// (its last reader, see [`Interpreter::run`]): unary float ops, arithmetic by a constant row or scalar of the same
/// rank-or-less, and Softmax over the last axis. `None`: not such a step; the caller computes a new value.
fn compute_in_place<'a>(
    step: &Step,
    inputs: &mut [Option<Tensor<'a>>],
) -> Result<Option<Tensor<'a>>, String> {
    let in_place = match &step.kernel {
        Kernel::Unary(op) => float_unary(*op).is_some(),
        Kernel::Binary(op) => matches!(
            op,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div
        ),
        Kernel::Softmax { axis, log: false } => {
            inputs.first().and_then(Option::as_ref).is_some_and(|a| {
                axis_index(*axis, a.shape.len()).is_ok_and(|d| d + 1 == a.shape.len())
            })
        }
        _ => false,
    };
    if !in_place {
        return Ok(None);
    }
    // The first input, when it is float and this step holds the only reference.
    let Some(Tensor {
        shape,
        data: Data::F32(shared),
    }) = inputs.first_mut().and_then(Option::take)
    else {
        return Ok(None);
    };
    let mut values = match shared {
        Buf::Shared(shared) => match Arc::try_unwrap(shared) {
            Ok(values) => values,
            Err(shared) => {
                inputs[0] = Some(Tensor {
                    shape,
                    data: Data::F32(Buf::Shared(shared)),
                });
                return Ok(None);
            }
        },
        // The caller's rows: overwritten in a copy (what a new value would cost anyway).
        Buf::Borrowed(rows) => rows.to_vec(),
    };
    let give_back = |inputs: &mut [Option<Tensor>], shape: Vec<usize>, values: Vec<f32>| {
        inputs[0] = Some(Tensor::f32(shape, values));
        Ok(None)
    };
    match &step.kernel {
        Kernel::Unary(op) => {
            let Some(f) = float_unary(*op) else {
                return give_back(inputs, shape, values);
            };
            values.iter_mut().for_each(|v| *v = f(*v));
        }
        Kernel::Binary(op) => {
            let Some(Some(Tensor {
                shape: row_shape,
                data: Data::F32(row),
            })) = inputs.get(1)
            else {
                return give_back(inputs, shape, values);
            };
            // `x ∘ row` where the row spans the last axis (or is a scalar) and broadcasting keeps x's shape.
            let last = shape.last().copied().unwrap_or(1);
            let fits = row_shape.len() <= shape.len()
                && (row.len() == 1 || (row.len() == last && row_shape.last() == Some(&last)));
            if !fits {
                return give_back(inputs, shape, values);
            }
            let arithmetic = match op {
                BinaryOp::Add => Arithmetic::Add,
                BinaryOp::Sub => Arithmetic::Sub,
                BinaryOp::Mul => Arithmetic::Mul,
                _ => Arithmetic::Div,
            };
            if row.len() == 1 {
                let c = row[0];
                match arithmetic {
                    Arithmetic::Add => values.iter_mut().for_each(|x| *x += c),
                    Arithmetic::Sub => values.iter_mut().for_each(|x| *x -= c),
                    Arithmetic::Mul => values.iter_mut().for_each(|x| *x *= c),
                    Arithmetic::Div => values.iter_mut().for_each(|x| *x /= c),
                }
            } else {
                constant_row(&mut values, row, arithmetic);
            }
        }
        _ => {
            let columns = shape.last().copied().unwrap_or(1);
            softmax_rows(&mut values, columns);
        }
    }
    Ok(Some(Tensor::f32(shape, values)))
}

/// The blocks of `len` elements of `from` starting at each of `starts`, one after another.
fn gather_blocks<T: Copy>(from: &[T], starts: &[usize], len: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(starts.len() * len);
    for &start in starts {
        out.extend_from_slice(&from[start..start + len]);
    }
    out
}

/// An index into an axis of `r` entries; negative counts from the end (ONNX Gather).
fn resolve_index(index: i64, r: usize) -> Result<usize, String> {
    let resolved = if index < 0 { index + r as i64 } else { index };
    if resolved < 0 || resolved >= r as i64 {
        return Err(format!("index {index} is outside an axis of {r}"));
    }
    Ok(resolved as usize)
}

fn resolve_indices(indices: &[i64], r: usize) -> Result<Vec<usize>, String> {
    indices.iter().map(|&i| resolve_index(i, r)).collect()
}

/// The float → float function of a unary op (`None`: a cast or a logical op).
fn float_unary(op: UnaryOp) -> Option<fn(f32) -> f32> {
    Some(match op {
        UnaryOp::Relu => |x| if x > 0.0 { x } else { 0.0 },
        UnaryOp::Sigmoid => |x| 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Tanh => f32::tanh,
        UnaryOp::Exp => f32::exp,
        UnaryOp::Log => f32::ln,
        UnaryOp::Sqrt => f32::sqrt,
        UnaryOp::Abs => f32::abs,
        UnaryOp::Neg => |x| -x,
        UnaryOp::Reciprocal => |x| 1.0 / x,
        UnaryOp::Floor => f32::floor,
        UnaryOp::Ceil => f32::ceil,
        _ => return None,
    })
}

fn unary<'a>(op: UnaryOp, a: &Tensor<'a>) -> Result<Data<'a>, String> {
    let float = |f: fn(f32) -> f32| -> Result<Data, String> {
        Ok(Data::F32(Buf::new(
            a.as_f32()?.iter().map(|&x| f(x)).collect(),
        )))
    };
    if let Some(f) = float_unary(op) {
        return float(f);
    }
    match op {
        UnaryOp::Copy => Ok(match &a.data {
            Data::Bool(v) => Data::I64(Buf::new(v.iter().map(|&b| i64::from(b)).collect())),
            other => other.clone(),
        }),
        UnaryOp::FloatToInt => Ok(Data::I64(Buf::new(
            a.as_f32()?.iter().map(|&x| x as i64).collect(),
        ))),
        UnaryOp::IntToFloat => Ok(Data::F32(Buf::new(
            a.as_i64()?.iter().map(|&x| x as f32).collect(),
        ))),
        UnaryOp::BoolToFloat => Ok(Data::F32(Buf::new(
            a.as_bool()?
                .iter()
                .map(|&b| if b { 1.0 } else { 0.0 })
                .collect(),
        ))),
        UnaryOp::FloatToBool => Ok(Data::Bool(Buf::new(
            a.as_f32()?.iter().map(|&x| x != 0.0).collect(),
        ))),
        UnaryOp::IntToBool => Ok(Data::Bool(Buf::new(
            a.as_i64()?.iter().map(|&x| x != 0).collect(),
        ))),
        UnaryOp::Not => Ok(Data::Bool(Buf::new(
            a.as_bool()?.iter().map(|&b| !b).collect(),
        ))),
        // The float → float ops, answered by `float_unary` above.
        float_op => Err(format!("{float_op:?} has no float function")),
    }
}

/// Row-major strides of `shape` broadcast to `out`: 0 along dimensions it does not have or holds once.
fn strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; out.len()];
    let mut step = 1;
    for (d, &size) in shape.iter().enumerate().rev() {
        let o = d + out.len() - shape.len();
        if size != 1 {
            strides[o] = step;
        }
        step *= size;
    }
    strides
}

/// For each element of `out` in row-major order, the element of each operand (shapes broadcast to `out`) it reads.
fn broadcast_offsets<const N: usize>(shapes: [&[usize]; N], out: &[usize]) -> Vec<[usize; N]> {
    let all: [Vec<usize>; N] = shapes.map(|s| strides(s, out));
    let count: usize = out.iter().product();
    let mut offsets = Vec::with_capacity(count);
    let mut index = vec![0usize; out.len()];
    let mut at = [0usize; N];
    for _ in 0..count {
        offsets.push(at);
        // Odometer: advance the last dimension, carrying into earlier ones.
        for d in (0..out.len()).rev() {
            index[d] += 1;
            for (n, s) in all.iter().enumerate() {
                at[n] += s[d];
            }
            if index[d] < out[d] {
                break;
            }
            for (n, s) in all.iter().enumerate() {
                at[n] -= s[d] * out[d];
            }
            index[d] = 0;
        }
    }
    offsets
}

/// `f` over two operands broadcast to `out`, with the common layouts (same shape, a scalar, a row) done directly.
fn zip_broadcast<A: Copy, B: Copy, O>(
    a: &[A],
    a_shape: &[usize],
    b: &[B],
    b_shape: &[usize],
    out: &[usize],
    f: impl Fn(A, B) -> O,
) -> Vec<O> {
    let count: usize = out.iter().product();
    if a.len() == count && b.len() == count && a_shape.len() == b_shape.len() {
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    if b.len() == 1 && a.len() == count {
        return a.iter().map(|&x| f(x, b[0])).collect();
    }
    if a.len() == 1 && b.len() == count {
        return b.iter().map(|&y| f(a[0], y)).collect();
    }
    let last = out.last().copied().unwrap_or(1);
    if a.len() == count && b.len() == last && b_shape.last() == Some(&last) && last > 0 {
        return a
            .chunks_exact(last)
            .flat_map(|row| row.iter().zip(b).map(|(&x, &y)| f(x, y)))
            .collect();
    }
    broadcast_offsets([a_shape, b_shape], out)
        .into_iter()
        .map(|[i, j]| f(a[i], b[j]))
        .collect()
}

fn select<T: Copy>(
    condition: &[bool],
    x: &[T],
    y: &[T],
    shapes: [&[usize]; 3],
    out: &[usize],
) -> Vec<T> {
    broadcast_offsets(shapes, out)
        .into_iter()
        .map(|[c, i, j]| if condition[c] { x[i] } else { y[j] })
        .collect()
}

fn binary<'a>(
    op: BinaryOp,
    a: &Tensor<'a>,
    b: &Tensor<'_>,
    out: &[usize],
) -> Result<Data<'a>, String> {
    use BinaryOp::*;
    let (sa, sb) = (a.shape.as_slice(), b.shape.as_slice());
    let float = |f: fn(f32, f32) -> f32| -> Result<Data, String> {
        Ok(Data::F32(Buf::new(zip_broadcast(
            a.as_f32()?,
            sa,
            b.as_f32()?,
            sb,
            out,
            f,
        ))))
    };
    let compare = |f: fn(f32, f32) -> bool| -> Result<Data, String> {
        Ok(Data::Bool(Buf::new(zip_broadcast(
            a.as_f32()?,
            sa,
            b.as_f32()?,
            sb,
            out,
            f,
        ))))
    };
    let logic = |f: fn(bool, bool) -> bool| -> Result<Data, String> {
        Ok(Data::Bool(Buf::new(zip_broadcast(
            a.as_bool()?,
            sa,
            b.as_bool()?,
            sb,
            out,
            f,
        ))))
    };
    // The constant-row layout (a bias, a scale) on the row kernel.
    let row_arithmetic = match op {
        Add => Some(Arithmetic::Add),
        Sub => Some(Arithmetic::Sub),
        Mul => Some(Arithmetic::Mul),
        Div => Some(Arithmetic::Div),
        _ => None,
    };
    if let (Some(arithmetic), Data::F32(x), Data::F32(row)) = (row_arithmetic, &a.data, &b.data) {
        let last = out.last().copied().unwrap_or(0);
        if sa == out && row.len() == last && sb.last() == Some(&last) {
            let mut values = x.to_vec();
            constant_row(&mut values, row, arithmetic);
            return Ok(Data::F32(Buf::new(values)));
        }
    }
    match op {
        Add => float(|x, y| x + y),
        Sub => float(|x, y| x - y),
        Mul => float(|x, y| x * y),
        Div => float(|x, y| x / y),
        Max => float(f32::max),
        Min => float(f32::min),
        Pow => float(f32::powf),
        Greater => compare(|x, y| x > y),
        Less => compare(|x, y| x < y),
        GreaterOrEqual => compare(|x, y| x >= y),
        LessOrEqual => compare(|x, y| x <= y),
        Equal => compare(|x, y| x == y),
        EqualBits => match (&a.data, &b.data) {
            (Data::I64(x), Data::I64(y)) => Ok(Data::Bool(Buf::new(zip_broadcast(
                x,
                sa,
                y,
                sb,
                out,
                |x, y| x == y,
            )))),
            (Data::Bool(x), Data::Bool(y)) => Ok(Data::Bool(Buf::new(zip_broadcast(
                x,
                sa,
                y,
                sb,
                out,
                |x, y| x == y,
            )))),
            (x, y) => Err(format!("Equal of {} and {}", x.kind(), y.kind())),
        },
        And => logic(|x, y| x & y),
        Or => logic(|x, y| x | y),
        Xor => logic(|x, y| x ^ y),
    }
}

/// `alpha · A·B + beta · C` for A `[m, k]` and B `[k, n]` (or `[n, k]` transposed), products summed in k order;
/// `padded`: B prepared for [`matmul_rows`] (the same sums, four rows at a time).
fn matmul(
    a: &Tensor,
    b: &Tensor,
    c: Option<&Tensor>,
    (transpose_b, alpha, beta): (bool, f32, f32),
    padded: Option<&[f32]>,
    out: &[usize],
) -> Result<Vec<f32>, String> {
    let (x, w) = (a.as_f32()?, b.as_f32()?);
    let (m, n) = (out[0], out[1]);
    let k = a.shape[1];
    let mut y = vec![0f32; m * n];
    if let Some(padded) = padded.filter(|_| !transpose_b) {
        matmul_rows(x, padded, k, n, &mut y);
    } else {
        plain_matmul(x, w, k, n, transpose_b, &mut y);
    }
    if alpha != 1.0 {
        y.iter_mut().for_each(|v| *v *= alpha);
    }
    if let Some(c) = c {
        let scaled: Vec<f32> = c
            .as_f32()?
            .iter()
            .map(|&v| if beta == 1.0 { v } else { beta * v })
            .collect();
        y = zip_broadcast(&y, out, &scaled, &c.shape, out, |p, q| p + q);
    }
    Ok(y)
}

/// `y = x · w` (or `x · wᵀ`), row by row, terms added in order of k.
fn plain_matmul(x: &[f32], w: &[f32], k: usize, n: usize, transpose_b: bool, y: &mut [f32]) {
    for (row, y_row) in x.chunks_exact(k.max(1)).zip(y.chunks_exact_mut(n.max(1))) {
        if transpose_b {
            for (j, y) in y_row.iter_mut().enumerate() {
                let w_row = &w[j * k..(j + 1) * k];
                *y = row.iter().zip(w_row).fold(0.0, |sum, (&p, &q)| sum + p * q);
            }
        } else {
            for (kk, &p) in row.iter().enumerate() {
                let w_row = &w[kk * n..(kk + 1) * n];
                for (y, &q) in y_row.iter_mut().zip(w_row) {
                    *y += p * q;
                }
            }
        }
    }
}

/// A reduction over one contiguous run of axes (`None`: all), in index order.
fn reduce(op: ReduceOp, axes: Option<&[i64]>, a: &Tensor) -> Result<Vec<f32>, String> {
    let x = a.as_f32()?;
    let rank = a.shape.len();
    let mut reduced: Vec<usize> = match axes {
        None => (0..rank).collect(),
        Some(axes) => axes
            .iter()
            .map(|&d| axis_index(d, rank))
            .collect::<Result<_, _>>()?,
    };
    reduced.sort_unstable();
    reduced.dedup();
    let (first, end) = match (reduced.first(), reduced.last()) {
        (Some(&first), Some(&last)) => (first, last + 1),
        _ => (0, 0),
    };
    let outer: usize = a.shape[..first].iter().product();
    let r: usize = a.shape[first..end].iter().product();
    let inner: usize = a.shape[end..].iter().product();
    let init = match op {
        ReduceOp::Min => f32::INFINITY,
        ReduceOp::Max => f32::NEG_INFINITY,
        ReduceOp::Prod => 1.0,
        _ => 0.0,
    };
    let fold: fn(f32, f32) -> f32 = match op {
        ReduceOp::Sum | ReduceOp::Mean => |acc, v| acc + v,
        ReduceOp::SumSquare | ReduceOp::L2 => |acc, v| acc + v * v,
        ReduceOp::L1 => |acc, v| acc + v.abs(),
        ReduceOp::Min => f32::min,
        ReduceOp::Max => f32::max,
        ReduceOp::Prod => |acc, v| acc * v,
    };
    let mut out = vec![init; outer * inner];
    for o in 0..outer {
        let acc = &mut out[o * inner..(o + 1) * inner];
        for j in 0..r {
            let block = &x[(o * r + j) * inner..(o * r + j + 1) * inner];
            for (acc, &v) in acc.iter_mut().zip(block) {
                *acc = fold(*acc, v);
            }
        }
    }
    match op {
        ReduceOp::Mean => out.iter_mut().for_each(|v| *v /= r as f32),
        ReduceOp::L2 => out.iter_mut().for_each(|v| *v = v.sqrt()),
        _ => {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{data_type, AttributeProto, NodeProto, TensorProto};

    /// A graph over input `x` `[N, columns]` with `outputs` (name, element type).
    fn model(
        columns: usize,
        nodes: Vec<NodeProto>,
        initializers: Vec<TensorProto>,
        outputs: &[(&str, i32)],
    ) -> ModelProto {
        ModelProto::over_rows("x", columns, nodes, initializers, outputs)
    }

    fn node(
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> NodeProto {
        NodeProto::new(op, "", outputs[0], inputs, outputs, attributes)
    }

    fn run(model: &ModelProto, x: &[f32], rows: usize) -> Vec<Output> {
        Interpreter::new(model).unwrap().run(x, rows).unwrap()
    }

    fn floats(output: &Output) -> &[f32] {
        match &output.values {
            OutputValues::F32(v) => v,
            other => panic!("{} is not float32: {other:?}", output.name),
        }
    }

    fn ints(output: &Output) -> &[i64] {
        match &output.values {
            OutputValues::I64(v) => v,
            other => panic!("{} is not int64: {other:?}", output.name),
        }
    }

    #[test]
    fn gemm_with_transposed_constant_weights_and_bias() {
        // y = 2 · x · Wᵀ + 0.5 · c, W [3, 2] given transposed, c a row.
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let m = model(
            2,
            vec![node(
                "Gemm",
                &["x", "w", "c"],
                &["y"],
                vec![
                    AttributeProto::int("transB", 1),
                    AttributeProto::float("alpha", 2.0),
                    AttributeProto::float("beta", 0.5),
                ],
            )],
            vec![
                TensorProto::from_f32("w", &[3, 2], &w),
                TensorProto::from_f32("c", &[3], &[10.0, 20.0, 30.0]),
            ],
            &[("y", data_type::FLOAT)],
        );
        let x = [1.0, -1.0, 0.5, 2.0];
        let out = run(&m, &x, 2);
        assert_eq!(out[0].shape, vec![2, 3]);
        let mut expected = Vec::new();
        for row in x.chunks(2) {
            for j in 0..3 {
                let dot = row[0] * w[j * 2] + row[1] * w[j * 2 + 1];
                expected.push(2.0 * dot + 0.5 * [10.0, 20.0, 30.0][j]);
            }
        }
        assert_eq!(floats(&out[0]), expected);
    }

    #[test]
    fn broadcasting_follows_numpy_in_every_layout() {
        // [N, 1, 3] against [2, 1]: both operands broadcast, the odometer path.
        let m = model(
            3,
            vec![
                node("Unsqueeze", &["x", "one"], &["x3"], vec![]),
                node("Sub", &["x3", "b"], &["y"], vec![]),
                node("Where", &["mask", "y", "zero"], &["z"], vec![]),
            ],
            vec![
                TensorProto::from_i64("one", &[1], &[1]),
                TensorProto::from_f32("b", &[2, 1], &[1.0, 10.0]),
                TensorProto::from_f32("zero", &[], &[0.0]),
                TensorProto {
                    name: Some("mask".into()),
                    dims: vec![3],
                    data_type: Some(data_type::BOOL),
                    raw_data: Some(vec![1, 0, 1]),
                    ..Default::default()
                },
            ],
            &[("y", data_type::FLOAT), ("z", data_type::FLOAT)],
        );
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let out = run(&m, &x, 2);
        assert_eq!(out[0].shape, vec![2, 2, 3]);
        let mut y = Vec::new();
        for row in x.chunks(3) {
            for b in [1.0, 10.0] {
                y.extend(row.iter().map(|v| v - b));
            }
        }
        assert_eq!(floats(&out[0]), y);
        let z: Vec<f32> = y
            .iter()
            .enumerate()
            .map(|(i, &v)| if i % 3 == 1 { 0.0 } else { v })
            .collect();
        assert_eq!(floats(&out[1]), z);
    }

    #[test]
    fn softmax_argmax_topk_and_reductions() {
        let m = model(
            4,
            vec![
                node(
                    "Softmax",
                    &["x"],
                    &["p"],
                    vec![AttributeProto::int("axis", 1)],
                ),
                node(
                    "LogSoftmax",
                    &["x"],
                    &["lp"],
                    vec![AttributeProto::int("axis", 1)],
                ),
                node(
                    "ArgMax",
                    &["x"],
                    &["first"],
                    vec![AttributeProto::int("axis", 1)],
                ),
                node(
                    "ArgMax",
                    &["x"],
                    &["last"],
                    vec![
                        AttributeProto::int("axis", 1),
                        AttributeProto::int("select_last_index", 1),
                        AttributeProto::int("keepdims", 0),
                    ],
                ),
                NodeProto::new(
                    "TopK",
                    "",
                    "top",
                    &["x", "k"],
                    &["values", "indices"],
                    vec![AttributeProto::int("largest", 0)],
                ),
                node(
                    "ReduceSumSquare",
                    &["x", "axes"],
                    &["ss"],
                    vec![AttributeProto::int("keepdims", 0)],
                ),
                node("ReduceMean", &["x"], &["mean"], vec![]),
            ],
            vec![
                TensorProto::from_i64("k", &[1], &[2]),
                TensorProto::from_i64("axes", &[1], &[1]),
            ],
            &[
                ("p", data_type::FLOAT),
                ("lp", data_type::FLOAT),
                ("first", data_type::INT64),
                ("last", data_type::INT64),
                ("values", data_type::FLOAT),
                ("indices", data_type::INT64),
                ("ss", data_type::FLOAT),
                ("mean", data_type::FLOAT),
            ],
        );
        // Ties: row 0 has two maxima (3 at 1 and 3) and two minima (1 at 0 and 2).
        let x = [1.0, 3.0, 1.0, 3.0, -2.0, 0.5, 4.0, 0.25];
        let out = run(&m, &x, 2);
        let (first, last) = (ints(&out[2]), ints(&out[3]));
        assert_eq!(out[2].shape, vec![2, 1]);
        assert_eq!(out[3].shape, vec![2]);
        assert_eq!(first, [1, 2]);
        assert_eq!(last, [3, 2]);
        assert_eq!(floats(&out[4]), [1.0, 1.0, -2.0, 0.25]);
        assert_eq!(
            ints(&out[5]),
            [0, 2, 0, 3],
            "equal values: lower index first"
        );
        for (r, row) in x.chunks(4).enumerate() {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let total: f32 = row.iter().map(|v| (v - max).exp()).sum();
            for (c, v) in row.iter().enumerate() {
                let p = floats(&out[0])[r * 4 + c];
                assert!(
                    (p - (v - max).exp() / total).abs() <= 1e-7,
                    "softmax [{r}, {c}]"
                );
                let lp = floats(&out[1])[r * 4 + c];
                assert!(
                    (lp - (v - max - total.ln())).abs() <= 1e-6,
                    "log softmax [{r}, {c}]"
                );
            }
            assert_eq!(floats(&out[6])[r], row.iter().map(|v| v * v).sum::<f32>());
            assert_eq!(out[7].shape, vec![1, 1]);
        }
        let mean = x.iter().sum::<f32>() / 8.0;
        assert_eq!(floats(&out[7]), [mean]);
    }

    #[test]
    fn dequantize_per_axis_and_float16_weights_are_folded_at_load() {
        // int8 weights [2, 3] per column scale and zero point, times x; float16 bias.
        let q = [-128i8, 0, 127, 5, -5, 1];
        let scales = [0.5f32, 0.25, 2.0];
        let zeros = [1i8, -2, 0];
        let half_bits = [0x3c00u16, 0xc000, 0x3800]; // 1, -2, 0.5
        let m = model(
            2,
            vec![
                node(
                    "DequantizeLinear",
                    &["q", "scale", "zero"],
                    &["w"],
                    vec![AttributeProto::int("axis", 1)],
                ),
                node(
                    "Cast",
                    &["h"],
                    &["bias"],
                    vec![AttributeProto::int("to", i64::from(data_type::FLOAT))],
                ),
                node("MatMul", &["x", "w"], &["xw"], vec![]),
                node("Add", &["xw", "bias"], &["y"], vec![]),
            ],
            vec![
                TensorProto::from_i8("q", &[2, 3], &q),
                TensorProto::from_f32("scale", &[3], &scales),
                TensorProto::from_i8("zero", &[3], &zeros),
                TensorProto::from_f16_bits("h", &[3], &half_bits),
            ],
            &[("y", data_type::FLOAT)],
        );
        let interpreter = Interpreter::new(&m).unwrap();
        assert_eq!(
            interpreter.live.len(),
            2,
            "dequantization and the cast run at load"
        );
        let x = [2.0, -1.0];
        let out = interpreter.run(&x, 1).unwrap();
        let w: Vec<f32> = q
            .iter()
            .enumerate()
            .map(|(i, &v)| (i32::from(v) - i32::from(zeros[i % 3])) as f32 * scales[i % 3])
            .collect();
        let expected: Vec<f32> = (0..3)
            .map(|j| (0.0 + x[0] * w[j] + x[1] * w[3 + j]) + [1.0, -2.0, 0.5][j])
            .collect();
        assert_eq!(floats(&out[0]), expected);
    }

    #[test]
    fn gather_reads_negative_indices_and_refuses_out_of_range_ones() {
        let m = model(
            3,
            vec![node(
                "Gather",
                &["x", "i"],
                &["y"],
                vec![AttributeProto::int("axis", 1)],
            )],
            vec![TensorProto::from_i64("i", &[2], &[-1, 0])],
            &[("y", data_type::FLOAT)],
        );
        let out = run(&m, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2);
        assert_eq!(out[0].shape, vec![2, 2]);
        assert_eq!(floats(&out[0]), [3.0, 1.0, 6.0, 4.0]);
        let bad = model(
            3,
            vec![node(
                "Gather",
                &["x", "i"],
                &["y"],
                vec![AttributeProto::int("axis", 1)],
            )],
            vec![TensorProto::from_i64("i", &[1], &[3])],
            &[("y", data_type::FLOAT)],
        );
        let error = Interpreter::new(&bad)
            .unwrap()
            .run(&[0.0; 3], 1)
            .unwrap_err();
        assert!(error.contains("index 3 is outside an axis of 3"), "{error}");
        assert!(error.contains("Gather"), "{error}");
    }

    #[test]
    fn steps_overwrite_only_values_nothing_else_reads() {
        // a = x·2 (x is read again below: not in place), then Relu, + row, Softmax each on their only reference;
        // the graph also returns x and a view of c, which must keep their values.
        let m = model(
            3,
            vec![
                node("Mul", &["x", "two"], &["a"], vec![]),
                node("Relu", &["a"], &["b"], vec![]),
                node("Add", &["b", "row"], &["c"], vec![]),
                node("Identity", &["c"], &["c_view"], vec![]),
                node(
                    "Softmax",
                    &["c"],
                    &["p"],
                    vec![AttributeProto::int("axis", -1)],
                ),
                node("Identity", &["x"], &["x_again"], vec![]),
            ],
            vec![
                TensorProto::from_f32("two", &[], &[2.0]),
                TensorProto::from_f32("row", &[3], &[0.5, -1.0, 0.25]),
            ],
            &[
                ("p", data_type::FLOAT),
                ("x_again", data_type::FLOAT),
                ("c_view", data_type::FLOAT),
            ],
        );
        let x = [1.0, -2.0, 3.0, -0.5, 0.0, 4.0];
        let interpreter = Interpreter::new(&m).unwrap();
        for _ in 0..2 {
            let out = interpreter.run(&x, 2).unwrap();
            let c: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(i, &v)| (v * 2.0).max(0.0) + [0.5, -1.0, 0.25][i % 3])
                .collect();
            assert_eq!(floats(&out[1]), x, "x is unchanged");
            assert_eq!(floats(&out[2]), c, "c is unchanged by the Softmax after it");
            let mut p = c.clone();
            crate::row_kernels::softmax_rows(&mut p, 3);
            assert_eq!(floats(&out[0]), p);
        }
    }

    #[test]
    fn unknown_ops_are_refused_naming_node_and_op() {
        let m = model(
            2,
            vec![node("Conv", &["x"], &["y"], vec![])],
            vec![],
            &[("y", data_type::FLOAT)],
        );
        let error = Interpreter::new(&m).unwrap_err();
        assert_eq!(error.op_type, "Conv");
        assert!(
            error
                .reason
                .contains("not among the ops tern's kernels run"),
            "{error}"
        );
    }
}
