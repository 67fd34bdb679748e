//! `--target`: what a package is verified to run on. The CPU targets run the graph with tract (runtime-core
//! registers `TreeEnsembleRegressor`, which tract lacks); `gpu` is tern-gpu's wgpu/WebGPU backend, which
//! implements the dense op subset only ([`tern_runtime::gpu_ops::SUPPORTED`]).

use tern_runtime::onnx::GraphProto;

use crate::CompileError;

/// Every target name.
pub const TARGETS: [&str; 4] = ["x86_64", "aarch64", "wasm32", "gpu"];

/// Ops (domain, op_type) the CPU targets run: tract-onnx's registry plus runtime-core's additions.
const CPU_OPS: &[(&str, &str)] = &[
    ("", "Add"),
    ("", "Sub"),
    ("", "Mul"),
    ("", "Div"),
    ("", "MatMul"),
    ("", "Sigmoid"),
    ("", "Softmax"),
    ("", "Exp"),
    ("", "ArgMax"),
    ("", "Greater"),
    ("", "GreaterOrEqual"),
    ("", "Cast"),
    ("", "Reshape"),
    ("", "Identity"),
    ("", "DequantizeLinear"),
    ("", "Relu"),
    ("", "Sqrt"),
    ("", "ArgMin"),
    ("", "ReduceMin"),
    ("", "ReduceSumSquare"),
    ("", "ReduceSum"),
    ("", "ReduceMean"),
    ("", "Max"),
    ("", "TopK"),
    ("", "Gather"),
    ("", "GatherElements"),
    ("", "CumSum"),
    ("", "Less"),
    ("", "Or"),
    ("", "Where"),
    ("ai.onnx.ml", "TreeEnsembleRegressor"),
    ("ai.tern", "RandomCutForestScore"),
];

/// The targets to record: `requested` checked and de-duplicated, or the three CPU targets when none is given.
pub fn resolve(requested: &[String]) -> Result<Vec<String>, CompileError> {
    if requested.is_empty() {
        return Ok(vec!["x86_64".into(), "aarch64".into(), "wasm32".into()]);
    }
    let mut targets: Vec<String> = Vec::new();
    for target in requested {
        let name = target.trim().to_ascii_lowercase();
        let name = match name.as_str() {
            "x86-64" | "amd64" => "x86_64".to_string(),
            "arm64" => "aarch64".to_string(),
            "wasm" => "wasm32".to_string(),
            "webgpu" => "gpu".to_string(),
            _ => name,
        };
        if !TARGETS.contains(&name.as_str()) {
            return Err(CompileError::UnknownTarget {
                target: target.clone(),
                known: TARGETS.join(", "),
            });
        }
        if !targets.contains(&name) {
            targets.push(name);
        }
    }
    Ok(targets)
}

/// Checks every node of `graph` runs on every target; the error names the first op that does not.
pub fn check(graph: &GraphProto, targets: &[String]) -> Result<(), CompileError> {
    for target in targets {
        let (supported, why) = if target == "gpu" {
            (None, "the GPU backend (tern-gpu) implements only dense ops; compile tree ensembles for a CPU target")
        } else {
            (
                Some(CPU_OPS),
                "neither tract nor runtime-core implements it",
            )
        };
        for node in &graph.node {
            let domain = match node.domain() {
                "ai.onnx" => "",
                d => d,
            };
            let runs = match supported {
                Some(ops) => ops.contains(&(domain, node.op_type())),
                None => {
                    domain.is_empty() && tern_runtime::gpu_ops::SUPPORTED.contains(&node.op_type())
                }
            };
            if !runs {
                return Err(CompileError::UnsupportedOp {
                    target: target.clone(),
                    domain: if domain.is_empty() {
                        String::new()
                    } else {
                        format!("{domain}.")
                    },
                    op_type: node.op_type().to_string(),
                    node: node.name().to_string(),
                    reason: why.to_string(),
                });
            }
        }
    }
    Ok(())
}
