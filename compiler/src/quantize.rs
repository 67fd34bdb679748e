//! Weight quantization. Activations stay float32 at every precision; only stored weights change.
//!
//! **Dense weights** (`MatMul` whose `B` is a float32 `[d, k]` initializer):
//! - `f16`: `B` is stored as a float16 initializer and a `Cast(to=float)` feeds the `MatMul`, which computes in f32.
//!   A weight beyond float16's range (|w| > 65504) fails the compile, naming the initializer.
//! - `int8`: QDQ form, per output channel (column `k`), symmetric (zero point 0, values in [-127, 127]):
//!   `B ≈ DequantizeLinear(q, scale, zero_point, axis=1)`. Calibration, exactly: when the `MatMul` reads the graph
//!   input and calibration rows are given, each feature `j` gets a range `r_j = max |x_j|` over those rows (1 when
//!   0); the weights are equalised as `W'_jk = W_jk · r_j` and the graph multiplies the input by `1 / r_j` (float32,
//!   `[d]`) before the `MatMul`, so features with large values do not have their small weights rounded to zero. Per
//!   column the scale is `c · max_j |W'_jk| / 127` with the clip ratio `c` chosen from
//!   `{1, 0.999, 0.995, 0.99, 0.98, 0.95, 0.9, 0.8}` to minimise `Σ_rows ((x / r) · (W' − Ŵ'))_k²` on the
//!   calibration rows (`c = 1` without them, or when the `MatMul` reads an intermediate value: plain max-abs).
//!
//! **Tree ensembles** (`TreeEnsembleRegressor`): split thresholds stay float32 at every precision (rounding them
//! would send rows near a split to the other child and flip labels). ai.onnx.ml opset 3 stores leaf values as
//! float attributes, so quantization changes their values, not their storage, and the package does not shrink:
//! - `f16`: every leaf value is rounded to the nearest float16;
//! - `int8`: per target (output group), leaf values are rounded to `q · s` with `s = max |leaf| / 127`,
//!   `q ∈ [-127, 127]`.

use half::f16;
use tern_runtime::manifest::Precision;
use tern_runtime::onnx::{data_type, AttributeProto, GraphProto, NodeProto, TensorProto};

use crate::lower::INPUT;
use crate::CompileError;

/// The clip ratios int8 calibration chooses from.
pub const CLIP_RATIOS: [f32; 8] = [1.0, 0.999, 0.995, 0.99, 0.98, 0.95, 0.9, 0.8];

/// Quantizes `graph`'s weights to `precision` (a no-op for fp32). `calibration` holds row-major rows of
/// `feature_dim` values (may be empty).
pub fn quantize(
    graph: &mut GraphProto,
    precision: Precision,
    calibration: &[f32],
    feature_dim: usize,
) -> Result<(), CompileError> {
    if precision == Precision::Fp32 {
        return Ok(());
    }
    let mut new_nodes: Vec<(usize, NodeProto)> = Vec::new();
    for index in 0..graph.node.len() {
        let node = graph.node[index].clone();
        match node.op_type() {
            "MatMul" => {
                let Some(position) = graph.initializer.iter().position(|t| {
                    node.input.get(1).is_some_and(|b| t.name() == b)
                        && t.data_type() == data_type::FLOAT
                        && t.dims.len() == 2
                }) else {
                    continue;
                };
                let weight = graph.initializer.remove(position);
                let shape = weight.shape();
                let (d, k) = (shape[0], shape[1]);
                let values = weight.to_f32().ok_or_else(|| {
                    CompileError::Graph(format!("initializer {} has no float data", weight.name()))
                })?;
                let name = weight.name().to_string();
                let dequantized = format!("{name}_dequantized");
                match precision {
                    Precision::F16 => {
                        let bits = to_f16_bits(&name, &values)?;
                        let stored = format!("{name}_f16");
                        graph
                            .initializer
                            .push(TensorProto::from_f16_bits(&stored, &[d, k], &bits));
                        new_nodes.push((
                            index,
                            NodeProto::new(
                                "Cast",
                                "",
                                &format!("cast_{name}"),
                                &[&stored],
                                &[&dequantized],
                                vec![AttributeProto::int("to", data_type::FLOAT as i64)],
                            ),
                        ));
                    }
                    Precision::Int8 => {
                        let reads_input = node.input[0] == INPUT;
                        let rows = if reads_input && feature_dim == d {
                            calibration
                        } else {
                            &[]
                        };
                        let q = quantize_int8(&values, d, k, rows);
                        let stored = format!("{name}_int8");
                        let scale = format!("{name}_scale");
                        let zero = format!("{name}_zero_point");
                        graph
                            .initializer
                            .push(TensorProto::from_i8(&stored, &[d, k], &q.values));
                        graph
                            .initializer
                            .push(TensorProto::from_f32(&scale, &[k], &q.scales));
                        graph
                            .initializer
                            .push(TensorProto::from_i8(&zero, &[k], &vec![0; k]));
                        new_nodes.push((
                            index,
                            NodeProto::new(
                                "DequantizeLinear",
                                "",
                                &format!("dequantize_{name}"),
                                &[&stored, &scale, &zero],
                                &[&dequantized],
                                vec![AttributeProto::int("axis", 1)],
                            ),
                        ));
                        if let Some(inverse) = q.inverse_range {
                            let range = format!("{name}_inverse_range");
                            let equalised = format!("{name}_equalised_input");
                            graph
                                .initializer
                                .push(TensorProto::from_f32(&range, &[d], &inverse));
                            new_nodes.push((
                                index,
                                NodeProto::new(
                                    "Mul",
                                    "",
                                    &format!("equalise_{name}"),
                                    &[&node.input[0], &range],
                                    &[&equalised],
                                    vec![],
                                ),
                            ));
                            graph.node[index].input[0] = equalised;
                        }
                    }
                    Precision::Fp32 => unreachable!("fp32 returns early"),
                }
                graph.node[index].input[1] = dequantized;
            }
            "TreeEnsembleRegressor" => {
                let node = &mut graph.node[index];
                let n_targets = node
                    .attribute("n_targets")
                    .and_then(|a| a.i)
                    .unwrap_or(1)
                    .max(1) as usize;
                let targets: Vec<i64> = node
                    .attribute("target_ids")
                    .map(|a| a.ints.clone())
                    .unwrap_or_default();
                let Some(weights) = node
                    .attribute
                    .iter_mut()
                    .find(|a| a.name() == "target_weights")
                else {
                    return Err(CompileError::Graph(format!(
                        "{} has no target_weights",
                        node.name()
                    )));
                };
                if targets.len() != weights.floats.len() {
                    return Err(CompileError::Graph(
                        "target_ids and target_weights differ in length".into(),
                    ));
                }
                match precision {
                    Precision::F16 => weights
                        .floats
                        .iter_mut()
                        .for_each(|w| *w = f16::from_f32(*w).to_f32()),
                    Precision::Int8 => {
                        let mut max = vec![0.0f32; n_targets];
                        for (&t, &w) in targets.iter().zip(&weights.floats) {
                            let t = (t.max(0) as usize).min(n_targets - 1);
                            max[t] = max[t].max(w.abs());
                        }
                        for (&t, w) in targets.iter().zip(weights.floats.iter_mut()) {
                            let t = (t.max(0) as usize).min(n_targets - 1);
                            let scale = if max[t] > 0.0 { max[t] / 127.0 } else { 1.0 };
                            *w = (*w / scale).round().clamp(-127.0, 127.0) * scale;
                        }
                    }
                    Precision::Fp32 => unreachable!("fp32 returns early"),
                }
            }
            _ => {}
        }
    }
    // Insert in reverse so earlier indices stay valid; each new node goes just before the node it feeds.
    for (index, node) in new_nodes.into_iter().rev() {
        graph.node.insert(index, node);
    }
    Ok(())
}

fn to_f16_bits(name: &str, values: &[f32]) -> Result<Vec<u16>, CompileError> {
    values
        .iter()
        .map(|&v| {
            let h = f16::from_f32(v);
            if v.is_finite() && !h.is_finite() {
                Err(CompileError::Graph(format!(
                    "initializer {name} holds {v}, beyond float16's range (±65504); compile at fp32 or int8"
                )))
            } else {
                Ok(h.to_bits())
            }
        })
        .collect()
}

/// An int8 per-column quantization of a `[d, k]` matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Weights {
    /// `[d, k]`, row-major.
    pub values: Vec<i8>,
    /// One per column.
    pub scales: Vec<f32>,
    /// `1 / r_j` per feature when calibration rows equalised the features.
    pub inverse_range: Option<Vec<f32>>,
    /// The clip ratio chosen per column.
    pub clip_ratios: Vec<f32>,
}

/// Quantizes `weights` (`[d, k]`, row-major) per column as the module documentation states; `rows` are row-major
/// calibration rows of `d` values (may be empty).
pub fn quantize_int8(weights: &[f32], d: usize, k: usize, rows: &[f32]) -> Int8Weights {
    let calibrated = d > 0 && !rows.is_empty() && rows.len() % d == 0;
    let range: Vec<f32> = if calibrated {
        (0..d)
            .map(|j| {
                let r = rows
                    .chunks_exact(d)
                    .map(|row| row[j].abs())
                    .filter(|v| v.is_finite())
                    .fold(0.0f32, f32::max);
                if r > 0.0 {
                    r
                } else {
                    1.0
                }
            })
            .collect()
    } else {
        vec![1.0; d]
    };
    let equalised: Vec<f32> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| w * range[i / k])
        .collect();
    let inverse: Vec<f32> = range.iter().map(|r| 1.0 / r).collect();
    let normalised_rows: Vec<f64> = if calibrated {
        rows.chunks_exact(d)
            .flat_map(|row| row.iter().zip(&inverse).map(|(&x, &s)| f64::from(x * s)))
            .collect()
    } else {
        Vec::new()
    };
    let mut values = vec![0i8; d * k];
    let mut scales = vec![1.0f32; k];
    let mut clip_ratios = vec![1.0f32; k];
    for c in 0..k {
        let column: Vec<f32> = (0..d).map(|j| equalised[j * k + c]).collect();
        let max = column.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        if max == 0.0 {
            continue;
        }
        let quantize_with = |ratio: f32| -> (f32, Vec<i8>) {
            let scale = ratio * max / 127.0;
            (
                scale,
                column
                    .iter()
                    .map(|w| (w / scale).round().clamp(-127.0, 127.0) as i8)
                    .collect(),
            )
        };
        let error = |scale: f32, q: &[i8]| -> f64 {
            normalised_rows
                .chunks_exact(d)
                .map(|row| {
                    let e: f64 = row
                        .iter()
                        .zip(column.iter().zip(q))
                        .map(|(x, (&w, &q))| x * (f64::from(w) - f64::from(q) * f64::from(scale)))
                        .sum();
                    e * e
                })
                .sum()
        };
        let candidates: &[f32] = if calibrated {
            &CLIP_RATIOS
        } else {
            &CLIP_RATIOS[..1]
        };
        let mut best: Option<(f64, f32, f32, Vec<i8>)> = None;
        for &ratio in candidates {
            let (scale, q) = quantize_with(ratio);
            let e = error(scale, &q);
            if best.as_ref().is_none_or(|b| e < b.0) {
                best = Some((e, ratio, scale, q));
            }
        }
        let (_, ratio, scale, q) = best.expect("at least one clip ratio is tried");
        scales[c] = scale;
        clip_ratios[c] = ratio;
        for (j, v) in q.into_iter().enumerate() {
            values[j * k + c] = v;
        }
    }
    Int8Weights {
        values,
        scales,
        inverse_range: (calibrated && range.iter().any(|&r| r != 1.0)).then_some(inverse),
        clip_ratios,
    }
}
