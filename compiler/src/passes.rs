//! Graph passes, run on every lowered graph before quantization, in this order:
//!
//! 1. [`fuse_normalisation`]: `Sub(x, mean) → Div(·, scale) → MatMul(·, W) → Add(·, b)` (either of `Sub`/`Div`
//!    may be absent) becomes `MatMul(x, W') → Add(·, b')` with `W' = W / scale` (per feature row) and
//!    `b' = b − mean · W'`, computed exactly as the trainer's `FoldedWeights` (f32 division, f64 offset sum).
//! 2. [`fuse_output_affine`]: `Add(·, b) → Mul(·, s) → Add(·, m)` after such a `MatMul` folds into it: `W' = W·s`,
//!    `b' = b·s + m` (Linear Learner's label un-normalisation).
//! 3. [`fold_constants`]: a node whose inputs are all initializers is evaluated at compile time and replaced by
//!    initializers (element-wise arithmetic, `MatMul`, `Cast`, `Identity`, `Neg`, `Reciprocal`, `Sqrt`).
//! 4. [`remove_dead_nodes`]: nodes no graph output depends on, then initializers no node reads, are removed.

use std::collections::{HashMap, HashSet};

use ndarray::{ArrayD, IxDyn};
use tern_runtime::onnx::{data_type, GraphProto, NodeProto, TensorProto};
use tern_trainer::algorithms::linear_learner::FoldedWeights;

use crate::CompileError;

/// What the passes changed, for `--print`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub normalisations_fused: usize,
    pub affines_fused: usize,
    pub constants_folded: usize,
    pub nodes_removed: usize,
    pub initializers_removed: usize,
}

/// Runs passes 1, 3 and 4. [`fuse_output_affine`] is not part of the default pipeline: the trainer applies the
/// label scaling after the linear map in f32, and scaling the weights instead changes the rounding of scores near
/// zero by more than the fp32 fidelity bound (1e-5 relative).
pub fn optimise(graph: &mut GraphProto) -> Result<PassReport, CompileError> {
    let mut report = PassReport {
        normalisations_fused: fuse_normalisation(graph)?,
        ..Default::default()
    };
    report.constants_folded = fold_constants(graph)?;
    let (nodes, initializers) = remove_dead_nodes(graph);
    report.nodes_removed = nodes;
    report.initializers_removed = initializers;
    Ok(report)
}

fn initializer<'g>(graph: &'g GraphProto, name: &str) -> Option<&'g TensorProto> {
    graph.initializer.iter().find(|t| t.name() == name)
}

fn f32_initializer(graph: &GraphProto, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
    let t = initializer(graph, name)?;
    (t.data_type() == data_type::FLOAT).then(|| Some((t.shape(), t.to_f32()?)))?
}

fn producer(graph: &GraphProto, value: &str) -> Option<usize> {
    graph
        .node
        .iter()
        .position(|n| n.output.iter().any(|o| o == value))
}

fn consumers(graph: &GraphProto, value: &str) -> Vec<usize> {
    graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.input.iter().any(|i| i == value))
        .map(|(i, _)| i)
        .collect()
}

fn is_graph_output(graph: &GraphProto, value: &str) -> bool {
    graph.output.iter().any(|o| o.name() == value)
}

/// The single node reading `value` when it is an `op_type` node, `value` not being a graph output.
fn sole_consumer(graph: &GraphProto, value: &str, op_type: &str) -> Option<usize> {
    let readers = consumers(graph, value);
    (readers.len() == 1
        && graph.node[readers[0]].op_type() == op_type
        && !is_graph_output(graph, value))
    .then(|| readers[0])
}

fn unique_name(graph: &GraphProto, base: &str) -> String {
    let taken: HashSet<&str> = graph
        .initializer
        .iter()
        .map(|t| t.name())
        .chain(
            graph
                .node
                .iter()
                .flat_map(|n| n.output.iter().map(String::as_str)),
        )
        .collect();
    (0..)
        .map(|i| {
            if i == 0 {
                base.to_string()
            } else {
                format!("{base}_{i}")
            }
        })
        .find(|n| !taken.contains(n.as_str()))
        .expect("an unbounded range yields a free name")
}

/// A `MatMul` with an f32 `[d, k]` initializer as `B`, followed by its only reader `Add(·, b)` with an f32 `[k]`
/// initializer: (matmul node, add node, W name, b name, d, k).
fn linear_at(graph: &GraphProto, matmul: usize) -> Option<(usize, String, String, usize, usize)> {
    let node = &graph.node[matmul];
    if node.op_type() != "MatMul" || node.input.len() != 2 {
        return None;
    }
    let (w_shape, _) = f32_initializer(graph, &node.input[1])?;
    let [d, k] = w_shape[..] else { return None };
    let add = sole_consumer(graph, &node.output[0], "Add")?;
    let add_node = &graph.node[add];
    let bias_name = add_node.input.iter().find(|i| **i != node.output[0])?;
    let (b_shape, _) = f32_initializer(graph, bias_name)?;
    (b_shape == [k]).then(|| (add, node.input[1].clone(), bias_name.clone(), d, k))
}

/// Fuses normalisation into the following linear map; returns how many were fused.
pub fn fuse_normalisation(graph: &mut GraphProto) -> Result<usize, CompileError> {
    let mut fused = 0;
    for matmul in 0..graph.node.len() {
        let Some((add, w_name, b_name, d, k)) = linear_at(graph, matmul) else {
            continue;
        };
        let mut source = graph.node[matmul].input[0].clone();
        let mut scale = None;
        let mut mean = None;
        if let Some(div) = producer(graph, &source).filter(|&p| graph.node[p].op_type() == "Div") {
            let n = &graph.node[div];
            if let Some((shape, values)) = f32_initializer(graph, &n.input[1]) {
                if shape == [d]
                    && consumers(graph, &source).len() == 1
                    && !is_graph_output(graph, &source)
                {
                    scale = Some(values);
                    source = n.input[0].clone();
                }
            }
        }
        if let Some(sub) = producer(graph, &source).filter(|&p| graph.node[p].op_type() == "Sub") {
            let n = &graph.node[sub];
            if let Some((shape, values)) = f32_initializer(graph, &n.input[1]) {
                if shape == [d]
                    && consumers(graph, &source).len() == 1
                    && !is_graph_output(graph, &source)
                {
                    mean = Some(values);
                    source = n.input[0].clone();
                }
            }
        }
        if scale.is_none() && mean.is_none() {
            continue;
        }
        let (_, weights) = f32_initializer(graph, &w_name)
            .ok_or_else(|| CompileError::Graph(format!("{w_name} vanished")))?;
        let (_, bias) = f32_initializer(graph, &b_name)
            .ok_or_else(|| CompileError::Graph(format!("{b_name} vanished")))?;
        let folded = FoldedWeights::fold(&weights, &bias, mean.as_deref(), scale.as_deref());
        let w_new = unique_name(graph, &format!("{w_name}_folded"));
        let b_new = unique_name(graph, &format!("{b_name}_folded"));
        graph
            .initializer
            .push(TensorProto::from_f32(&w_new, &[d, k], &folded.effective));
        graph
            .initializer
            .push(TensorProto::from_f32(&b_new, &[k], &folded.offset));
        let output = graph.node[matmul].output[0].clone();
        graph.node[matmul].input = vec![source, w_new];
        for input in graph.node[add].input.iter_mut() {
            if *input != output {
                *input = b_new.clone();
            }
        }
        fused += 1;
    }
    remove_dead_nodes(graph);
    Ok(fused)
}

/// Fuses `Mul(·, s) → Add(·, m)` after a linear map into its weights and bias; returns how many were fused.
pub fn fuse_output_affine(graph: &mut GraphProto) -> Result<usize, CompileError> {
    let mut fused = 0;
    for matmul in 0..graph.node.len() {
        let Some((add, w_name, b_name, d, k)) = linear_at(graph, matmul) else {
            continue;
        };
        let margin = graph.node[add].output[0].clone();
        let Some(mul) = sole_consumer(graph, &margin, "Mul") else {
            continue;
        };
        let per_output = |graph: &GraphProto, node: usize, from: &str| -> Option<Vec<f32>> {
            let other = graph.node[node].input.iter().find(|i| *i != from)?;
            let (shape, values) = f32_initializer(graph, other)?;
            match values.len() {
                1 if shape.len() <= 1 => Some(vec![values[0]; k]),
                n if n == k && shape == [k] => Some(values),
                _ => None,
            }
        };
        let Some(scale) = per_output(graph, mul, &margin) else {
            continue;
        };
        let scaled = graph.node[mul].output[0].clone();
        let Some(shift_node) = consumers(graph, &scaled).into_iter().next().filter(|&c| {
            graph.node[c].op_type() == "Add"
                && consumers(graph, &scaled).len() == 1
                && !is_graph_output(graph, &scaled)
        }) else {
            continue;
        };
        let Some(shift) = per_output(graph, shift_node, &scaled) else {
            continue;
        };
        let (_, weights) = f32_initializer(graph, &w_name)
            .ok_or_else(|| CompileError::Graph(format!("{w_name} vanished")))?;
        let (_, bias) = f32_initializer(graph, &b_name)
            .ok_or_else(|| CompileError::Graph(format!("{b_name} vanished")))?;
        let weights: Vec<f32> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| w * scale[i % k])
            .collect();
        let bias: Vec<f32> = bias
            .iter()
            .enumerate()
            .map(|(j, b)| b * scale[j] + shift[j])
            .collect();
        let w_new = unique_name(graph, &format!("{w_name}_affine"));
        let b_new = unique_name(graph, &format!("{b_name}_affine"));
        graph
            .initializer
            .push(TensorProto::from_f32(&w_new, &[d, k], &weights));
        graph
            .initializer
            .push(TensorProto::from_f32(&b_new, &[k], &bias));
        let matmul_out = graph.node[matmul].output[0].clone();
        graph.node[matmul].input[1] = w_new;
        let final_output = graph.node[shift_node].output[0].clone();
        let add_node = &mut graph.node[add];
        for input in add_node.input.iter_mut() {
            if *input != matmul_out {
                *input = b_new.clone();
            }
        }
        add_node.output[0] = final_output;
        let (first, second) = if mul > shift_node {
            (mul, shift_node)
        } else {
            (shift_node, mul)
        };
        graph.node.remove(first);
        graph.node.remove(second);
        fused += 1;
        break;
    }
    if fused > 0 {
        remove_dead_nodes(graph);
        return Ok(fused + fuse_output_affine(graph)?);
    }
    Ok(fused)
}

/// Evaluates nodes whose inputs are all initializers; returns how many were folded.
pub fn fold_constants(graph: &mut GraphProto) -> Result<usize, CompileError> {
    let mut folded = 0;
    loop {
        let constant: HashMap<&str, &TensorProto> =
            graph.initializer.iter().map(|t| (t.name(), t)).collect();
        let candidate = graph.node.iter().enumerate().find_map(|(i, node)| {
            if node.output.len() != 1
                || is_graph_output(graph, &node.output[0])
                || node.input.is_empty()
                || !node
                    .input
                    .iter()
                    .all(|name| constant.contains_key(name.as_str()))
            {
                return None;
            }
            let inputs: Vec<&TensorProto> =
                node.input.iter().map(|n| constant[n.as_str()]).collect();
            evaluate(node, &inputs).map(|value| (i, value))
        });
        let Some((index, value)) = candidate else {
            break;
        };
        let node = graph.node.remove(index);
        let shape = value.shape().to_vec();
        let data: Vec<f32> = value.iter().copied().collect();
        graph
            .initializer
            .push(TensorProto::from_f32(&node.output[0], &shape, &data));
        folded += 1;
    }
    Ok(folded)
}

/// The value of a constant node with f32 results, or `None` when the pass does not evaluate it.
fn evaluate(node: &NodeProto, inputs: &[&TensorProto]) -> Option<ArrayD<f32>> {
    let array = |t: &TensorProto| -> Option<ArrayD<f32>> {
        ArrayD::from_shape_vec(IxDyn(&t.shape()), t.to_f32()?).ok()
    };
    let float_input = |i: usize| -> Option<ArrayD<f32>> {
        let t = inputs.get(i)?;
        (t.data_type() == data_type::FLOAT).then(|| array(t))?
    };
    let binary = |f: fn(&ArrayD<f32>, &ArrayD<f32>) -> ArrayD<f32>| -> Option<ArrayD<f32>> {
        let (a, b) = (float_input(0)?, float_input(1)?);
        let shape = broadcast_shape(a.shape(), b.shape())?;
        let a = a.broadcast(IxDyn(&shape))?.to_owned();
        let b = b.broadcast(IxDyn(&shape))?.to_owned();
        Some(f(&a, &b))
    };
    match node.op_type() {
        "Add" => binary(|a, b| a + b),
        "Sub" => binary(|a, b| a - b),
        "Mul" => binary(|a, b| a * b),
        "Div" => binary(|a, b| a / b),
        "Neg" => Some(float_input(0)?.mapv(|v| -v)),
        "Reciprocal" => Some(float_input(0)?.mapv(|v| 1.0 / v)),
        "Sqrt" => Some(float_input(0)?.mapv(f32::sqrt)),
        "Identity" => float_input(0),
        "Cast" => {
            let to = node.attribute("to")?.i?;
            let source = inputs[0].data_type();
            let exact = matches!(
                source,
                data_type::FLOAT | data_type::FLOAT16 | data_type::INT8 | data_type::UINT8
            );
            (to == data_type::FLOAT as i64 && exact).then(|| array(inputs[0]))?
        }
        "MatMul" => {
            let (a, b) = (float_input(0)?, float_input(1)?);
            let a = a.into_dimensionality::<ndarray::Ix2>().ok()?;
            let b = b.into_dimensionality::<ndarray::Ix2>().ok()?;
            (a.ncols() == b.nrows()).then(|| a.dot(&b).into_dyn())
        }
        _ => None,
    }
}

/// numpy's broadcast of two shapes.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i + s.len() >= rank {
            s[i + s.len() - rank]
        } else {
            1
        }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Removes nodes no graph output depends on, then unread initializers; returns (nodes, initializers) removed.
pub fn remove_dead_nodes(graph: &mut GraphProto) -> (usize, usize) {
    let mut live: HashSet<String> = graph.output.iter().map(|o| o.name().to_string()).collect();
    let mut keep = vec![false; graph.node.len()];
    for (i, node) in graph.node.iter().enumerate().rev() {
        if node.output.iter().any(|o| live.contains(o)) {
            keep[i] = true;
            live.extend(node.input.iter().cloned());
        }
    }
    let before = graph.node.len();
    let mut flags = keep.into_iter();
    graph.node.retain(|_| flags.next().unwrap_or(true));
    let nodes = before - graph.node.len();
    let before = graph.initializer.len();
    graph.initializer.retain(|t| live.contains(t.name()));
    (nodes, before - graph.initializer.len())
}
