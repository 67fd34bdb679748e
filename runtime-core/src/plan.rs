//! From an ONNX graph to the typed plan tern's own executors run: the CPU interpreter ([`crate::interpreter`], the
//! browser's wasm backend) and tern-gpu's WGSL kernels. Each node is checked against the op subset the compiler emits
//! and typed once at load; shapes are inferred per run from the number of rows (every shape here is concrete).
//!
//! The GPU runs the dense ops ([`SUPPORTED_OPS`]); the CPU also runs the two tree ops, `ai.onnx.ml`
//! `TreeEnsembleRegressor` and `ai.tern` `RandomCutForestScore` ([`Kernel::runs_on_gpu`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::onnx::{data_type, GraphProto, ModelProto, NodeProto, TensorProto};
use crate::ops::rcf::{self, Forest};
use crate::ops::tree_ensemble_regressor::TreeEnsemble;

/// The dense ops (ai.onnx domain) both executors run; the list lives in [`crate::gpu_ops`] so the compiler's
/// `--target gpu` check uses the same one.
pub use crate::gpu_ops::SUPPORTED as SUPPORTED_OPS;

/// `ai.onnx.ml` `TreeEnsembleRegressor`: XGBoost's trees. CPU only.
pub const TREE_ENSEMBLE: (&str, &str) = ("ai.onnx.ml", "TreeEnsembleRegressor");

/// Why a graph does not run on tern's kernels: the node, its op and the reason (empty node and op for a reason
/// about the whole graph).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub node: String,
    pub op_type: String,
    pub reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op_type.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(
                f,
                "node {:?} ({}): {}",
                self.node, self.op_type, self.reason
            )
        }
    }
}

/// How values are typed, and stored on the GPU (see tern-gpu's kernels.wgsl): one 32-bit word per element, except
/// the packed constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    /// ONNX int64 / int32, held as i32 (indices and labels).
    Int,
    Bool,
    /// float16 constants, two per word; only `Cast(to=float)` reads them.
    F16,
    /// int8 / uint8 constants, four per word; only `DequantizeLinear` reads them.
    I8,
    U8,
}

impl DType {
    fn name(self) -> &'static str {
        match self {
            DType::F32 => "float",
            DType::Int => "int64",
            DType::Bool => "bool",
            DType::F16 => "float16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
        }
    }

    /// 32-bit words holding `count` elements.
    pub fn words(self, count: usize) -> usize {
        match self {
            DType::F16 => count.div_ceil(2),
            DType::I8 | DType::U8 => count.div_ceil(4),
            _ => count,
        }
    }
}

/// Unary kernel op codes (kernels.wgsl `unary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Copy = 0,
    Relu = 1,
    Sigmoid = 2,
    Tanh = 3,
    Exp = 4,
    Log = 5,
    Sqrt = 6,
    Abs = 7,
    Neg = 8,
    Reciprocal = 9,
    Floor = 10,
    Ceil = 11,
    FloatToInt = 20,
    IntToFloat = 21,
    BoolToFloat = 22,
    FloatToBool = 23,
    IntToBool = 24,
    Not = 25,
}

/// Binary kernel op codes (kernels.wgsl `binary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
    Max = 4,
    Min = 5,
    Pow = 6,
    Greater = 10,
    Less = 11,
    GreaterOrEqual = 12,
    LessOrEqual = 13,
    Equal = 14,
    EqualBits = 15,
    And = 20,
    Or = 21,
    Xor = 22,
}

/// Reduce kernel op codes (kernels.wgsl `reduce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum = 0,
    SumSquare = 1,
    Mean = 2,
    Min = 3,
    Max = 4,
    Prod = 5,
    L1 = 6,
    L2 = 7,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Kernel {
    Unary(UnaryOp),
    Binary(BinaryOp),
    Where,
    MatMul {
        transpose_b: bool,
        alpha: f32,
        beta: f32,
    },
    /// Axes as the node gives them (possibly negative); `None`: every axis.
    Reduce {
        op: ReduceOp,
        axes: Option<Vec<i64>>,
        keepdims: bool,
    },
    ArgReduce {
        max: bool,
        axis: i64,
        keepdims: bool,
        last: bool,
    },
    Softmax {
        axis: i64,
        log: bool,
    },
    TopK {
        axis: i64,
        k: usize,
        largest: bool,
    },
    Gather {
        axis: i64,
    },
    /// ONNX GatherElements; the indices' shape must equal the data's outside `axis`.
    GatherElements {
        axis: i64,
    },
    /// Running sum along `axis` (float or integer).
    CumSum {
        axis: i64,
        exclusive: bool,
        reverse: bool,
    },
    Dequantize {
        axis: i64,
    },
    CastF16,
    /// No data moves: the output is the input's buffer with another shape.
    View(ViewOp),
    /// `ai.onnx.ml` `TreeEnsembleRegressor`: float `[N, F]` → float `[N, n_targets]`. CPU only.
    TreeEnsemble(Arc<TreeEnsemble>),
    /// `ai.tern` `RandomCutForestScore`: float `[N, F]` → float `[N, 1]`. CPU only.
    RandomCutForest(Arc<Forest>),
}

impl Kernel {
    /// Whether tern-gpu has a WGSL kernel for it (every kernel but the two tree walks).
    pub fn runs_on_gpu(&self) -> bool {
        !matches!(self, Kernel::TreeEnsemble(_) | Kernel::RandomCutForest(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ViewOp {
    Identity,
    Reshape { shape: Vec<i64>, allow_zero: bool },
    Unsqueeze { axes: Vec<i64> },
    Squeeze { axes: Option<Vec<i64>> },
    Flatten { axis: i64 },
}

/// One node of the plan; inputs and outputs index [`Plan::values`] (`None`: an absent optional input).
#[derive(Debug, Clone)]
pub struct Step {
    pub node: String,
    pub op_type: String,
    pub kernel: Kernel,
    pub inputs: Vec<Option<usize>>,
    pub outputs: Vec<usize>,
}

/// A constant (initializer or `Constant` node): its shape and its words as the GPU holds them.
#[derive(Debug, Clone)]
pub struct Constant {
    pub shape: Vec<usize>,
    pub words: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct Value {
    pub name: String,
    pub dtype: DType,
    pub constant: Option<Constant>,
}

/// A graph output: the value it reads and the element type the graph declares.
#[derive(Debug, Clone)]
pub struct GraphOutput {
    pub name: String,
    pub value: usize,
    pub integer: bool,
}

/// The whole graph, checked and typed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub values: Vec<Value>,
    pub steps: Vec<Step>,
    pub input: usize,
    pub feature_dim: usize,
    pub outputs: Vec<GraphOutput>,
}

fn unsupported(node: &NodeProto, reason: impl Into<String>) -> Unsupported {
    Unsupported {
        node: node.name().to_string(),
        op_type: node.op_type().to_string(),
        reason: reason.into(),
    }
}

fn graph_unsupported(reason: impl Into<String>) -> Unsupported {
    Unsupported {
        node: String::new(),
        op_type: String::new(),
        reason: reason.into(),
    }
}

fn int_attribute(node: &NodeProto, name: &str, default: i64) -> i64 {
    node.attribute(name).and_then(|a| a.i).unwrap_or(default)
}

fn float_attribute(node: &NodeProto, name: &str, default: f32) -> f32 {
    node.attribute(name).and_then(|a| a.f).unwrap_or(default)
}

/// The words and dtype a constant tensor takes on the GPU.
fn constant_of(tensor: &TensorProto) -> Result<(DType, Constant), String> {
    let shape = tensor.shape();
    let count = tensor.len();
    let raw = tensor.raw_data.as_deref();
    let wrong_length = || {
        format!(
            "initializer {:?} holds data of the wrong length",
            tensor.name()
        )
    };
    let (dtype, words) = match tensor.data_type() {
        data_type::FLOAT => {
            let values = tensor.to_f32().ok_or_else(wrong_length)?;
            (DType::F32, values.iter().map(|v| v.to_bits()).collect())
        }
        data_type::INT64 | data_type::INT32 => {
            let values: Vec<i64> = if tensor.data_type() == data_type::INT64 {
                tensor.to_i64().ok_or_else(wrong_length)?
            } else {
                let values = tensor.to_f32().ok_or_else(wrong_length)?;
                values.iter().map(|&v| v as i64).collect()
            };
            let words = values
                .iter()
                .map(|&v| {
                    i32::try_from(v).map(|v| v as u32).map_err(|_| {
                        format!(
                            "initializer {:?} holds {v}, outside the 32-bit integers tern's kernels hold",
                            tensor.name()
                        )
                    })
                })
                .collect::<Result<Vec<u32>, String>>()?;
            (DType::Int, words)
        }
        data_type::BOOL => {
            let bytes: Vec<u8> = match raw {
                Some(raw) => raw.to_vec(),
                None => tensor.int32_data.iter().map(|&v| v as u8).collect(),
            };
            if bytes.len() != count {
                return Err(wrong_length());
            }
            (
                DType::Bool,
                bytes.iter().map(|&b| u32::from(b != 0)).collect(),
            )
        }
        data_type::FLOAT16 => {
            let bits: Vec<u16> = match raw {
                Some(raw) => raw
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect(),
                None => tensor.int32_data.iter().map(|&v| v as u16).collect(),
            };
            if bits.len() != count {
                return Err(wrong_length());
            }
            let words = bits
                .chunks(2)
                .map(|pair| u32::from(pair[0]) | (u32::from(*pair.get(1).unwrap_or(&0)) << 16))
                .collect();
            (DType::F16, words)
        }
        kind @ (data_type::INT8 | data_type::UINT8) => {
            let bytes: Vec<u8> = match raw {
                Some(raw) => raw.to_vec(),
                None => tensor.int32_data.iter().map(|&v| v as u8).collect(),
            };
            if bytes.len() != count {
                return Err(wrong_length());
            }
            let words = bytes
                .chunks(4)
                .map(|quad| {
                    quad.iter()
                        .enumerate()
                        .fold(0u32, |word, (i, &b)| word | (u32::from(b) << (8 * i)))
                })
                .collect();
            let dtype = if kind == data_type::INT8 {
                DType::I8
            } else {
                DType::U8
            };
            (dtype, words)
        }
        other => {
            return Err(format!(
                "initializer {:?} is {}, a type tern's kernels do not hold",
                tensor.name(),
                data_type::name(other)
            ))
        }
    };
    Ok((dtype, Constant { shape, words }))
}

/// The integer values of a constant (shape, axes and k inputs).
fn constant_ints(value: &Value) -> Option<Vec<i64>> {
    let constant = value.constant.as_ref()?;
    (value.dtype == DType::Int).then(|| {
        constant
            .words
            .iter()
            .map(|&w| i64::from(w as i32))
            .collect()
    })
}

struct Builder {
    values: Vec<Value>,
    by_name: HashMap<String, usize>,
}

impl Builder {
    fn add(&mut self, name: &str, dtype: DType, constant: Option<Constant>) -> usize {
        let id = self.values.len();
        self.values.push(Value {
            name: name.to_string(),
            dtype,
            constant,
        });
        self.by_name.insert(name.to_string(), id);
        id
    }
}

impl Plan {
    /// Checks and types `model`'s graph. Errors name the first node (or initializer) tern's kernels cannot run.
    pub fn new(model: &ModelProto) -> Result<Plan, Unsupported> {
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| graph_unsupported("the model has no graph"))?;
        for opset in &model.opset_import {
            let domain = opset.domain.as_deref().unwrap_or("");
            let version = opset.version.unwrap_or(0);
            if (domain.is_empty() || domain == "ai.onnx") && !(13..=21).contains(&version) {
                return Err(graph_unsupported(format!(
                    "the graph imports ai.onnx opset {version}; tern's kernels implement opsets 13 to 21"
                )));
            }
        }
        Self::from_graph(graph)
    }

    fn from_graph(graph: &GraphProto) -> Result<Plan, Unsupported> {
        let mut b = Builder {
            values: Vec::new(),
            by_name: HashMap::new(),
        };
        for tensor in &graph.initializer {
            let (dtype, constant) = constant_of(tensor).map_err(graph_unsupported)?;
            b.add(tensor.name(), dtype, Some(constant));
        }
        let inputs: Vec<_> = graph
            .input
            .iter()
            .filter(|v| !b.by_name.contains_key(v.name()))
            .collect();
        let [input] = inputs[..] else {
            return Err(graph_unsupported(format!(
                "the graph has {} inputs; tern's kernels run graphs with one float input",
                inputs.len()
            )));
        };
        if input.elem_type() != Some(data_type::FLOAT) {
            return Err(graph_unsupported(format!(
                "the graph input {:?} is not float32",
                input.name()
            )));
        }
        let feature_dim = match input.shape().as_deref() {
            Some([_, Some(d)]) => *d,
            _ => {
                return Err(graph_unsupported(format!(
                    "the graph input {:?} is not [N, feature_dim] with a fixed feature_dim",
                    input.name()
                )))
            }
        };
        let input_id = b.add(input.name(), DType::F32, None);
        let mut steps = Vec::new();
        for node in &graph.node {
            if let Some(step) = Self::step(&mut b, node)? {
                steps.push(step);
            }
        }
        let outputs = graph
            .output
            .iter()
            .map(|o| {
                let value = *b.by_name.get(o.name()).ok_or_else(|| {
                    graph_unsupported(format!("graph output {:?} is never computed", o.name()))
                })?;
                let dtype = b.values[value].dtype;
                if matches!(dtype, DType::F16 | DType::I8 | DType::U8) {
                    return Err(graph_unsupported(format!(
                        "graph output {:?} is {}; tern's kernels return float, integer and boolean outputs",
                        o.name(),
                        dtype.name()
                    )));
                }
                Ok(GraphOutput {
                    name: o.name().to_string(),
                    value,
                    integer: dtype != DType::F32,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let plan = Plan {
            values: b.values,
            steps,
            input: input_id,
            feature_dim,
            outputs,
        };
        // Every shape rule must hold for any batch size: try two.
        for rows in [1, 3] {
            plan.shapes(rows).map_err(|(step, reason)| {
                let step = &plan.steps[step];
                Unsupported {
                    node: step.node.clone(),
                    op_type: step.op_type.clone(),
                    reason,
                }
            })?;
        }
        Ok(plan)
    }

    /// The first step the GPU cannot run (a tree walk), as the reason tern-gpu refuses the graph.
    pub fn gpu_unsupported(&self) -> Option<Unsupported> {
        self.steps
            .iter()
            .find(|step| !step.kernel.runs_on_gpu())
            .map(|step| Unsupported {
                node: step.node.clone(),
                op_type: step.op_type.clone(),
                reason: format!(
                    "{} is not in the GPU backend's op subset ({} ai.onnx ops: tern_gpu::SUPPORTED_OPS)",
                    step.op_type,
                    SUPPORTED_OPS.len()
                ),
            })
    }

    /// Types one node and adds its outputs; `Constant` nodes become constants (no step).
    fn step(b: &mut Builder, node: &NodeProto) -> Result<Option<Step>, Unsupported> {
        let op = node.op_type();
        let domain = node.domain();
        let full = if domain.is_empty() {
            op.to_string()
        } else {
            format!("{domain}.{op}")
        };
        let tree = (domain, op) == TREE_ENSEMBLE || (domain, op) == (rcf::DOMAIN, rcf::OP_TYPE);
        if !tree && (!(domain.is_empty() || domain == "ai.onnx") || !SUPPORTED_OPS.contains(&op)) {
            return Err(unsupported(
                node,
                format!(
                    "{full} is not among the ops tern's kernels run ({} ai.onnx ops: tern_runtime::gpu_ops::SUPPORTED, \
                     and ai.onnx.ml.TreeEnsembleRegressor, ai.tern.RandomCutForestScore)",
                    SUPPORTED_OPS.len()
                ),
            ));
        }
        if op == "Constant" {
            let tensor = node
                .attribute("value")
                .and_then(|a| a.t.as_ref())
                .ok_or_else(|| unsupported(node, "only a tensor `value` Constant is supported"))?;
            let (dtype, constant) = constant_of(tensor).map_err(|e| unsupported(node, e))?;
            let name = node.output.first().cloned().unwrap_or_default();
            b.add(&name, dtype, Some(constant));
            return Ok(None);
        }
        let inputs: Vec<Option<usize>> = node
            .input
            .iter()
            .map(|name| {
                if name.is_empty() {
                    Ok(None)
                } else {
                    b.by_name.get(name).copied().map(Some).ok_or_else(|| {
                        unsupported(
                            node,
                            format!("input {name:?} is not computed before the node (the graph must be topologically sorted)"),
                        )
                    })
                }
            })
            .collect::<Result<_, _>>()?;
        let dtype_of = |i: usize| inputs.get(i).copied().flatten().map(|v| b.values[v].dtype);
        let require = |i: usize, allowed: &[DType]| -> Result<DType, Unsupported> {
            match dtype_of(i) {
                Some(d) if allowed.contains(&d) => Ok(d),
                Some(d) => Err(unsupported(
                    node,
                    format!(
                        "input {i} is {}; the kernel takes {}",
                        d.name(),
                        allowed
                            .iter()
                            .map(|a| a.name())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                )),
                None => Err(unsupported(node, format!("input {i} is missing"))),
            }
        };
        let const_ints = |i: usize| -> Result<Vec<i64>, Unsupported> {
            inputs
                .get(i)
                .copied()
                .flatten()
                .and_then(|v| constant_ints(&b.values[v]))
                .ok_or_else(|| {
                    unsupported(node, format!("input {i} must be a constant integer tensor"))
                })
        };
        let axes_attribute = || node.attribute("axes").map(|a| a.ints.clone());
        let keepdims = int_attribute(node, "keepdims", 1) != 0;
        use DType::*;
        let (kernel, out_types): (Kernel, Vec<DType>) = match op {
            "TreeEnsembleRegressor" | "RandomCutForestScore" => {
                require(0, &[F32])?;
                if inputs.len() != 1 {
                    return Err(unsupported(node, "expected one input"));
                }
                let kernel = if op == "TreeEnsembleRegressor" {
                    TreeEnsemble::from_node(node).map(|t| Kernel::TreeEnsemble(Arc::new(t)))
                } else {
                    Forest::from_node(node).map(|f| Kernel::RandomCutForest(Arc::new(f)))
                };
                let kernel = kernel.map_err(|e| unsupported(node, format!("{e:#}")))?;
                (kernel, vec![F32])
            }
            "Relu" | "Sigmoid" | "Tanh" | "Exp" | "Log" | "Sqrt" | "Abs" | "Neg" | "Reciprocal"
            | "Floor" | "Ceil" => {
                require(0, &[F32])?;
                let code = match op {
                    "Relu" => UnaryOp::Relu,
                    "Sigmoid" => UnaryOp::Sigmoid,
                    "Tanh" => UnaryOp::Tanh,
                    "Exp" => UnaryOp::Exp,
                    "Log" => UnaryOp::Log,
                    "Sqrt" => UnaryOp::Sqrt,
                    "Abs" => UnaryOp::Abs,
                    "Neg" => UnaryOp::Neg,
                    "Reciprocal" => UnaryOp::Reciprocal,
                    "Floor" => UnaryOp::Floor,
                    _ => UnaryOp::Ceil,
                };
                (Kernel::Unary(code), vec![F32])
            }
            "Not" => {
                require(0, &[Bool])?;
                (Kernel::Unary(UnaryOp::Not), vec![Bool])
            }
            "Identity" => {
                let d = require(0, &[F32, Int, Bool])?;
                (Kernel::View(ViewOp::Identity), vec![d])
            }
            "Cast" => {
                let to = int_attribute(node, "to", 0) as i32;
                let from = require(0, &[F32, Int, Bool, F16])?;
                let target = match to {
                    data_type::FLOAT => F32,
                    data_type::INT64 | data_type::INT32 => Int,
                    data_type::BOOL => Bool,
                    other => {
                        return Err(unsupported(
                            node,
                            format!("Cast to {} is not supported", data_type::name(other)),
                        ))
                    }
                };
                let kernel = match (from, target) {
                    (F16, F32) => Kernel::CastF16,
                    (F16, _) => {
                        return Err(unsupported(node, "float16 casts only to float"));
                    }
                    (a, b) if a == b => Kernel::View(ViewOp::Identity),
                    (F32, Int) => Kernel::Unary(UnaryOp::FloatToInt),
                    (Int, F32) => Kernel::Unary(UnaryOp::IntToFloat),
                    (Bool, F32) => Kernel::Unary(UnaryOp::BoolToFloat),
                    // 0/1 words are already valid integers.
                    (Bool, Int) => Kernel::Unary(UnaryOp::Copy),
                    (F32, Bool) => Kernel::Unary(UnaryOp::FloatToBool),
                    (Int, Bool) => Kernel::Unary(UnaryOp::IntToBool),
                    _ => unreachable!("every (from, to) pair of F32/Int/Bool is listed"),
                };
                (kernel, vec![target])
            }
            "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" | "Pow" => {
                if inputs.len() != 2 {
                    return Err(unsupported(node, "only the two-input form is supported"));
                }
                require(0, &[F32])?;
                require(1, &[F32])?;
                let code = match op {
                    "Add" => BinaryOp::Add,
                    "Sub" => BinaryOp::Sub,
                    "Mul" => BinaryOp::Mul,
                    "Div" => BinaryOp::Div,
                    "Max" => BinaryOp::Max,
                    "Min" => BinaryOp::Min,
                    _ => BinaryOp::Pow,
                };
                (Kernel::Binary(code), vec![F32])
            }
            "Greater" | "Less" | "GreaterOrEqual" | "LessOrEqual" => {
                require(0, &[F32])?;
                require(1, &[F32])?;
                let code = match op {
                    "Greater" => BinaryOp::Greater,
                    "Less" => BinaryOp::Less,
                    "GreaterOrEqual" => BinaryOp::GreaterOrEqual,
                    _ => BinaryOp::LessOrEqual,
                };
                (Kernel::Binary(code), vec![Bool])
            }
            "Equal" => {
                let a = require(0, &[F32, Int, Bool])?;
                require(1, &[a])?;
                let code = if a == F32 {
                    BinaryOp::Equal
                } else {
                    BinaryOp::EqualBits
                };
                (Kernel::Binary(code), vec![Bool])
            }
            "And" | "Or" | "Xor" => {
                require(0, &[Bool])?;
                require(1, &[Bool])?;
                let code = match op {
                    "And" => BinaryOp::And,
                    "Or" => BinaryOp::Or,
                    _ => BinaryOp::Xor,
                };
                (Kernel::Binary(code), vec![Bool])
            }
            "Where" => {
                require(0, &[Bool])?;
                let d = require(1, &[F32, Int, Bool])?;
                require(2, &[d])?;
                (Kernel::Where, vec![d])
            }
            "MatMul" => {
                require(0, &[F32])?;
                require(1, &[F32])?;
                (
                    Kernel::MatMul {
                        transpose_b: false,
                        alpha: 1.0,
                        beta: 1.0,
                    },
                    vec![F32],
                )
            }
            "Gemm" => {
                require(0, &[F32])?;
                require(1, &[F32])?;
                if dtype_of(2).is_some() {
                    require(2, &[F32])?;
                }
                if int_attribute(node, "transA", 0) != 0 {
                    return Err(unsupported(node, "transA=1 is not supported"));
                }
                (
                    Kernel::MatMul {
                        transpose_b: int_attribute(node, "transB", 0) != 0,
                        alpha: float_attribute(node, "alpha", 1.0),
                        beta: float_attribute(node, "beta", 1.0),
                    },
                    vec![F32],
                )
            }
            "ReduceSum" | "ReduceSumSquare" | "ReduceMean" | "ReduceMin" | "ReduceMax"
            | "ReduceProd" | "ReduceL1" | "ReduceL2" => {
                require(0, &[F32])?;
                let axes = if inputs.get(1).copied().flatten().is_some() {
                    Some(const_ints(1)?)
                } else {
                    axes_attribute()
                };
                let axes = match axes {
                    Some(axes) if axes.is_empty() => {
                        if int_attribute(node, "noop_with_empty_axes", 0) != 0 {
                            return Err(unsupported(
                                node,
                                "noop_with_empty_axes=1 is not supported",
                            ));
                        }
                        None
                    }
                    other => other,
                };
                let code = match op {
                    "ReduceSum" => ReduceOp::Sum,
                    "ReduceSumSquare" => ReduceOp::SumSquare,
                    "ReduceMean" => ReduceOp::Mean,
                    "ReduceMin" => ReduceOp::Min,
                    "ReduceMax" => ReduceOp::Max,
                    "ReduceProd" => ReduceOp::Prod,
                    "ReduceL1" => ReduceOp::L1,
                    _ => ReduceOp::L2,
                };
                (
                    Kernel::Reduce {
                        op: code,
                        axes,
                        keepdims,
                    },
                    vec![F32],
                )
            }
            "ArgMax" | "ArgMin" => {
                require(0, &[F32])?;
                (
                    Kernel::ArgReduce {
                        max: op == "ArgMax",
                        axis: int_attribute(node, "axis", 0),
                        keepdims,
                        last: int_attribute(node, "select_last_index", 0) != 0,
                    },
                    vec![Int],
                )
            }
            "Softmax" | "LogSoftmax" => {
                require(0, &[F32])?;
                (
                    Kernel::Softmax {
                        axis: int_attribute(node, "axis", -1),
                        log: op == "LogSoftmax",
                    },
                    vec![F32],
                )
            }
            "TopK" => {
                require(0, &[F32])?;
                let k = const_ints(1)?;
                let [k] = k[..] else {
                    return Err(unsupported(node, "k must hold one value"));
                };
                let k = usize::try_from(k).map_err(|_| unsupported(node, format!("k is {k}")))?;
                (
                    Kernel::TopK {
                        axis: int_attribute(node, "axis", -1),
                        k,
                        largest: int_attribute(node, "largest", 1) != 0,
                    },
                    vec![F32, Int],
                )
            }
            "Gather" => {
                let d = require(0, &[F32, Int, Bool])?;
                require(1, &[Int])?;
                (
                    Kernel::Gather {
                        axis: int_attribute(node, "axis", 0),
                    },
                    vec![d],
                )
            }
            "GatherElements" => {
                let d = require(0, &[F32, Int, Bool])?;
                require(1, &[Int])?;
                (
                    Kernel::GatherElements {
                        axis: int_attribute(node, "axis", 0),
                    },
                    vec![d],
                )
            }
            "CumSum" => {
                let d = require(0, &[F32, Int])?;
                let [axis] = const_ints(1)?[..] else {
                    return Err(unsupported(node, "axis must hold one value"));
                };
                (
                    Kernel::CumSum {
                        axis,
                        exclusive: int_attribute(node, "exclusive", 0) != 0,
                        reverse: int_attribute(node, "reverse", 0) != 0,
                    },
                    vec![d],
                )
            }
            "DequantizeLinear" => {
                let q = require(0, &[I8, U8])?;
                require(1, &[F32])?;
                if dtype_of(2).is_some() {
                    require(2, &[q])?;
                }
                (
                    Kernel::Dequantize {
                        axis: int_attribute(node, "axis", 1),
                    },
                    vec![F32],
                )
            }
            "Reshape" => {
                let d = require(0, &[F32, Int, Bool])?;
                let shape = const_ints(1)?;
                (
                    Kernel::View(ViewOp::Reshape {
                        shape,
                        allow_zero: int_attribute(node, "allowzero", 0) != 0,
                    }),
                    vec![d],
                )
            }
            "Unsqueeze" => {
                let d = require(0, &[F32, Int, Bool])?;
                let axes = if inputs.len() > 1 {
                    const_ints(1)?
                } else {
                    axes_attribute().unwrap_or_default()
                };
                (Kernel::View(ViewOp::Unsqueeze { axes }), vec![d])
            }
            "Squeeze" => {
                let d = require(0, &[F32, Int, Bool])?;
                let axes = if inputs.get(1).copied().flatten().is_some() {
                    Some(const_ints(1)?)
                } else {
                    axes_attribute()
                };
                (Kernel::View(ViewOp::Squeeze { axes }), vec![d])
            }
            "Flatten" => {
                let d = require(0, &[F32, Int, Bool])?;
                (
                    Kernel::View(ViewOp::Flatten {
                        axis: int_attribute(node, "axis", 1),
                    }),
                    vec![d],
                )
            }
            other => unreachable!("{other} is in SUPPORTED_OPS but has no typing rule"),
        };
        if node.output.len() < out_types.len()
            || node
                .output
                .iter()
                .skip(out_types.len())
                .any(|o| !o.is_empty())
        {
            return Err(unsupported(
                node,
                format!("expected {} output(s)", out_types.len()),
            ));
        }
        let outputs = node
            .output
            .iter()
            .zip(&out_types)
            .map(|(name, &dtype)| b.add(name, dtype, None))
            .collect();
        Ok(Some(Step {
            node: node.name().to_string(),
            op_type: op.to_string(),
            kernel,
            inputs,
            outputs,
        }))
    }

    /// Every value's shape for `rows` input rows, or (step index, why) for the first step whose shape rule fails.
    pub fn shapes(&self, rows: usize) -> Result<Vec<Vec<usize>>, (usize, String)> {
        let mut shapes: Vec<Option<Vec<usize>>> = self
            .values
            .iter()
            .map(|v| v.constant.as_ref().map(|c| c.shape.clone()))
            .collect();
        shapes[self.input] = Some(vec![rows, self.feature_dim]);
        for (index, step) in self.steps.iter().enumerate() {
            let ins: Vec<Option<&[usize]>> = step
                .inputs
                .iter()
                .map(|i| i.and_then(|i| shapes[i].as_deref()))
                .collect();
            let outs = infer(&step.kernel, &ins).map_err(|e| (index, e))?;
            for (&out, shape) in step.outputs.iter().zip(outs) {
                shapes[out] = Some(shape);
            }
        }
        Ok(shapes.into_iter().map(|s| s.unwrap_or_default()).collect())
    }
}

/// `shape` seen as [outer, axis, inner] around `axis`.
pub fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// A possibly negative axis of a rank-`rank` tensor, as an index.
pub fn axis_index(axis: i64, rank: usize) -> Result<usize, String> {
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    if resolved < 0 || resolved >= rank as i64 {
        return Err(format!("axis {axis} is outside a rank-{rank} tensor"));
    }
    Ok(resolved as usize)
}

/// The numpy broadcast of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
            let da = if i + a.len() >= rank {
                a[i + a.len() - rank]
            } else {
                1
            };
            let db = if i + b.len() >= rank {
                b[i + b.len() - rank]
            } else {
                1
            };
            match (da, db) {
                (x, y) if x == y => Ok(x),
                (1, y) => Ok(y),
                (x, 1) => Ok(x),
                _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
            }
        })
        .collect()
}

/// The output shapes of `kernel` for input shapes `ins` (`None`: absent optional input).
pub fn infer(kernel: &Kernel, ins: &[Option<&[usize]>]) -> Result<Vec<Vec<usize>>, String> {
    let input = |i: usize| -> Result<&[usize], String> {
        ins.get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("input {i} is missing"))
    };
    let a = input(0)?;
    let rank_4 = |shape: &[usize]| -> Result<(), String> {
        if shape.len() > 4 {
            Err(format!(
                "a rank-{} broadcast; tern's kernels broadcast up to rank 4",
                shape.len()
            ))
        } else {
            Ok(())
        }
    };
    Ok(match kernel {
        Kernel::Unary(_) | Kernel::CastF16 | Kernel::Dequantize { .. } => {
            if let Kernel::Dequantize { axis } = kernel {
                if let Some(scale) = ins.get(1).copied().flatten() {
                    let count: usize = scale.iter().product();
                    if count != 1 {
                        let axis = axis_index(*axis, a.len())?;
                        if count != a[axis] || scale.len() != 1 {
                            return Err(format!(
                                "scale {scale:?} is neither a scalar nor one per index of axis {axis} of {a:?}"
                            ));
                        }
                    }
                }
            }
            vec![a.to_vec()]
        }
        Kernel::Binary(_) => {
            let out = broadcast(a, input(1)?)?;
            rank_4(&out)?;
            vec![out]
        }
        Kernel::Where => {
            let out = broadcast(&broadcast(a, input(1)?)?, input(2)?)?;
            rank_4(&out)?;
            vec![out]
        }
        Kernel::MatMul { transpose_b, .. } => {
            let b = input(1)?;
            let ([m, k], [b0, b1]) = (a, b) else {
                return Err(format!(
                    "A {a:?} and B {b:?}: the kernel multiplies 2-D matrices"
                ));
            };
            let (bk, n) = if *transpose_b { (*b1, *b0) } else { (*b0, *b1) };
            if *k != bk {
                return Err(format!("A {a:?} and B {b:?} do not multiply"));
            }
            if let Some(c) = ins.get(2).copied().flatten() {
                let out = broadcast(&[*m, n], c)?;
                if out != [*m, n] {
                    return Err(format!("C {c:?} does not broadcast to [{m}, {n}]"));
                }
            }
            vec![vec![*m, n]]
        }
        Kernel::Reduce { axes, keepdims, .. } => {
            let mut reduced: Vec<usize> = match axes {
                None => (0..a.len()).collect(),
                Some(axes) => axes
                    .iter()
                    .map(|&x| axis_index(x, a.len()))
                    .collect::<Result<_, _>>()?,
            };
            reduced.sort_unstable();
            reduced.dedup();
            if reduced.windows(2).any(|w| w[1] != w[0] + 1) {
                return Err(format!(
                    "axes {reduced:?} are not contiguous; the kernel reduces one run of axes"
                ));
            }
            vec![a
                .iter()
                .enumerate()
                .filter_map(|(i, &d)| {
                    if !reduced.contains(&i) {
                        Some(d)
                    } else if *keepdims {
                        Some(1)
                    } else {
                        None
                    }
                })
                .collect()]
        }
        Kernel::ArgReduce { axis, keepdims, .. } => {
            let axis = axis_index(*axis, a.len())?;
            if a[axis] == 0 {
                return Err(format!("ArgMax/ArgMin over an empty axis of {a:?}"));
            }
            let mut out = a.to_vec();
            if *keepdims {
                out[axis] = 1;
            } else {
                out.remove(axis);
            }
            vec![out]
        }
        Kernel::Softmax { axis, .. } => {
            axis_index(*axis, a.len())?;
            vec![a.to_vec()]
        }
        Kernel::TopK { axis, k, .. } => {
            let axis = axis_index(*axis, a.len())?;
            if *k > a[axis] {
                return Err(format!("k = {k} exceeds axis {axis} of {a:?}"));
            }
            let mut out = a.to_vec();
            out[axis] = *k;
            vec![out.clone(), out]
        }
        Kernel::Gather { axis } => {
            let indices = input(1)?;
            let axis = axis_index(*axis, a.len())?;
            let mut out = a[..axis].to_vec();
            out.extend_from_slice(indices);
            out.extend_from_slice(&a[axis + 1..]);
            vec![out]
        }
        Kernel::GatherElements { axis } => {
            let indices = input(1)?;
            let axis = axis_index(*axis, a.len())?;
            let same_outside_axis =
                indices.len() == a.len() && (0..a.len()).all(|d| d == axis || indices[d] == a[d]);
            if !same_outside_axis {
                return Err(format!(
                    "GatherElements indices {indices:?} must have the data's shape {a:?} outside axis {axis}"
                ));
            }
            vec![indices.to_vec()]
        }
        Kernel::CumSum { axis, .. } => {
            axis_index(*axis, a.len())?;
            vec![a.to_vec()]
        }
        Kernel::View(view) => vec![view_shape(view, a)?],
        Kernel::TreeEnsemble(ensemble) => {
            let [rows, columns] = a else {
                return Err(format!("the input {a:?} is not [N, features]"));
            };
            ensemble
                .check_columns(*columns)
                .map_err(|e| format!("{e:#}"))?;
            vec![vec![*rows, ensemble.n_targets()]]
        }
        Kernel::RandomCutForest(forest) => {
            let [rows, columns] = a else {
                return Err(format!("the input {a:?} is not [N, features]"));
            };
            forest
                .check_columns(*columns)
                .map_err(|e| format!("{e:#}"))?;
            vec![vec![*rows, 1]]
        }
    })
}

fn view_shape(view: &ViewOp, a: &[usize]) -> Result<Vec<usize>, String> {
    let count: usize = a.iter().product();
    Ok(match view {
        ViewOp::Identity => a.to_vec(),
        ViewOp::Reshape { shape, allow_zero } => {
            let mut out = Vec::with_capacity(shape.len());
            let mut unknown = None;
            for (i, &d) in shape.iter().enumerate() {
                match d {
                    -1 if unknown.is_none() => {
                        unknown = Some(i);
                        out.push(1);
                    }
                    0 if !allow_zero => out.push(
                        *a.get(i)
                            .ok_or_else(|| format!("shape {shape:?}: no dimension {i} to copy"))?,
                    ),
                    d if d >= 0 => out.push(d as usize),
                    _ => return Err(format!("shape {shape:?} is not a valid Reshape target")),
                }
            }
            let known: usize = out.iter().product();
            if let Some(i) = unknown {
                if known == 0 || count % known != 0 {
                    return Err(format!("{a:?} cannot be reshaped to {shape:?}"));
                }
                out[i] = count / known;
            } else if known != count {
                return Err(format!("{a:?} cannot be reshaped to {shape:?}"));
            }
            out
        }
        ViewOp::Unsqueeze { axes } => {
            let rank = a.len() + axes.len();
            let mut positions: Vec<usize> = axes
                .iter()
                .map(|&x| axis_index(x, rank))
                .collect::<Result<_, _>>()?;
            positions.sort_unstable();
            let mut out = a.to_vec();
            for p in positions {
                out.insert(p, 1);
            }
            out
        }
        ViewOp::Squeeze { axes } => {
            let squeezed: Vec<usize> = match axes {
                Some(axes) => axes
                    .iter()
                    .map(|&x| axis_index(x, a.len()))
                    .collect::<Result<_, _>>()?,
                None => (0..a.len()).filter(|&i| a[i] == 1).collect(),
            };
            if let Some(&bad) = squeezed.iter().find(|&&i| a[i] != 1) {
                return Err(format!("Squeeze of axis {bad} of {a:?}, which is not 1"));
            }
            a.iter()
                .enumerate()
                .filter(|(i, _)| !squeezed.contains(i))
                .map(|(_, &d)| d)
                .collect()
        }
        ViewOp::Flatten { axis } => {
            let axis = if *axis == a.len() as i64 {
                a.len()
            } else {
                axis_index(*axis, a.len())?
            };
            vec![a[..axis].iter().product(), a[axis..].iter().product()]
        }
    })
}
