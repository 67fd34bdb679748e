//! Hand-built ONNX graphs and their digests, shared by runtime-core's package suites.
#![allow(dead_code)]

use prost::Message;
use sha2::{Digest, Sha256};
use tract_onnx::pb::{
    tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

pub fn value_info(name: &str, elem_type: i32, dims: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| tensor_shape_proto::Dimension {
                            value: Some(match d {
                                Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                                None => tensor_shape_proto::dimension::Value::DimParam("N".into()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

pub fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

pub fn model(graph: GraphProto) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            },
            OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

/// score = activation(x·w + b) as [N,1] over `weights.len()` features; predicted_label = int64(score > 0.5) as
/// [N].
pub fn logistic_graph(weights: &[f32], bias: f32, activation: &str) -> Vec<u8> {
    let dim = weights.len() as i64;
    let graph = GraphProto {
        name: "logistic".into(),
        node: vec![
            node("MatMul", &["input", "w"], &["xw"], vec![]),
            node("Add", &["xw", "b"], &["logit"], vec![]),
            node(activation, &["logit"], &["score"], vec![]),
            node("Greater", &["score", "half"], &["positive"], vec![]),
            node(
                "Cast",
                &["positive"],
                &["label2d"],
                vec![AttributeProto {
                    name: "to".into(),
                    r#type: 2,
                    i: 7,
                    ..Default::default()
                }],
            ),
            node(
                "Squeeze",
                &["label2d", "axis1"],
                &["predicted_label"],
                vec![],
            ),
        ],
        initializer: vec![
            float_tensor("w", &[dim, 1], weights),
            float_tensor("b", &[1], &[bias]),
            float_tensor("half", &[1], &[0.5]),
            TensorProto {
                name: "axis1".into(),
                dims: vec![1],
                data_type: 7,
                int64_data: vec![1],
                ..Default::default()
            },
        ],
        input: vec![value_info("input", 1, &[None, Some(dim)])],
        output: vec![
            value_info("score", 1, &[None, Some(1)]),
            value_info("predicted_label", 7, &[None]),
        ],
        ..Default::default()
    };
    model(graph)
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
