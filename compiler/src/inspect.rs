//! `tern inspect pkg/` / `--print`: a plain-text summary of a graph.

use std::fmt::Write;

use tern_runtime::onnx::{data_type, ModelProto};

use crate::CompileError;

/// A summary of `onnx` (`model.onnx` bytes): opsets, inputs and outputs, every node (op, inputs → outputs),
/// every initializer (dtype, shape, bytes), the precision the initializers imply, and the total size.
pub fn inspect(onnx: &[u8]) -> Result<String, CompileError> {
    let model = ModelProto::from_bytes(onnx).map_err(|e| CompileError::Decode(e.to_string()))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| CompileError::Decode("the model has no graph".into()))?;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "graph {:?}: ir_version {}, producer {} {}",
        graph.name(),
        model.ir_version(),
        model.producer_name(),
        model.producer_version()
    );
    let opsets: Vec<String> = model
        .opset_import
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                if o.domain().is_empty() {
                    "ai.onnx"
                } else {
                    o.domain()
                },
                o.version()
            )
        })
        .collect();
    let _ = writeln!(w, "opsets: {}", opsets.join(", "));
    let shape = |s: Option<Vec<Option<usize>>>| -> String {
        s.map(|dims| {
            let dims: Vec<String> = dims
                .iter()
                .map(|d| d.map_or("N".to_string(), |v| v.to_string()))
                .collect();
            format!("[{}]", dims.join(", "))
        })
        .unwrap_or_else(|| "[?]".into())
    };
    for input in &graph.input {
        let _ = writeln!(
            w,
            "input  {} {} {}",
            input.name(),
            data_type::name(input.elem_type().unwrap_or(0)),
            shape(input.shape())
        );
    }
    for output in &graph.output {
        let _ = writeln!(
            w,
            "output {} {} {}",
            output.name(),
            data_type::name(output.elem_type().unwrap_or(0)),
            shape(output.shape())
        );
    }
    let _ = writeln!(w, "nodes ({}):", graph.node.len());
    for node in &graph.node {
        let op = if node.domain().is_empty() {
            node.op_type().to_string()
        } else {
            format!("{}.{}", node.domain(), node.op_type())
        };
        let _ = writeln!(
            w,
            "  {op:<34} {} -> {}",
            node.input.join(", "),
            node.output.join(", ")
        );
    }
    let _ = writeln!(w, "initializers ({}):", graph.initializer.len());
    let mut weight_bytes = 0;
    let mut dtypes = std::collections::BTreeSet::new();
    for tensor in &graph.initializer {
        let bytes = tensor.byte_size();
        weight_bytes += bytes;
        dtypes.insert(tensor.data_type());
        let dims: Vec<String> = tensor.dims.iter().map(|d| d.to_string()).collect();
        let _ = writeln!(
            w,
            "  {:<34} {:<8} [{}] {} bytes",
            tensor.name(),
            data_type::name(tensor.data_type()),
            dims.join(", "),
            bytes
        );
    }
    let precision = if dtypes.contains(&data_type::INT8) {
        "int8"
    } else if dtypes.contains(&data_type::FLOAT16) {
        "f16"
    } else {
        "fp32"
    };
    let _ = writeln!(w, "precision: {precision} (from initializer types)");
    let _ = writeln!(w, "initializer bytes: {weight_bytes}");
    let _ = writeln!(w, "total size: {} bytes", onnx.len());
    Ok(out)
}
