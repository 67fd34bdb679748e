//! The ONNX protobuf messages tern writes and reads (`onnx/onnx.proto`, IR version 8+), hand-written with prost,
//! plus small builders for tensors, attributes and nodes.
//!
//! Field numbers and enum values are onnx.proto's; only the fields tern uses are declared (prost skips unknown
//! fields when decoding, so graphs from other producers still parse). prost generates the accessors of optional
//! fields (`node.op_type()`, `tensor.name()`, `tensor.data_type()`, …), which return the default when unset.

use prost::Message;

/// `TensorProto.DataType` values.
pub mod data_type {
    pub const UNDEFINED: i32 = 0;
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const STRING: i32 = 8;
    pub const BOOL: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const DOUBLE: i32 = 11;

    /// The lower-case name of an element type (`float32`, `float16`, `int8`, `int64`, …), as manifests spell it.
    pub fn name(data_type: i32) -> &'static str {
        match data_type {
            FLOAT => "float32",
            UINT8 => "uint8",
            INT8 => "int8",
            INT32 => "int32",
            INT64 => "int64",
            STRING => "string",
            BOOL => "bool",
            FLOAT16 => "float16",
            DOUBLE => "float64",
            _ => "undefined",
        }
    }

    /// Bytes per element, for fixed-size types.
    pub fn size(data_type: i32) -> Option<usize> {
        match data_type {
            UINT8 | INT8 | BOOL => Some(1),
            FLOAT16 => Some(2),
            FLOAT | INT32 => Some(4),
            INT64 | DOUBLE => Some(8),
            _ => None,
        }
    }
}

/// `AttributeProto.AttributeType` values.
pub mod attribute_type {
    pub const FLOAT: i32 = 1;
    pub const INT: i32 = 2;
    pub const STRING: i32 = 3;
    pub const TENSOR: i32 = 4;
    pub const GRAPH: i32 = 5;
    pub const FLOATS: i32 = 6;
    pub const INTS: i32 = 7;
    pub const STRINGS: i32 = 8;
    pub const TENSORS: i32 = 9;
}

/// `ModelProto`.
#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, optional, tag = "1")]
    pub ir_version: Option<i64>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(string, optional, tag = "2")]
    pub producer_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub producer_version: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub domain: Option<String>,
    #[prost(int64, optional, tag = "5")]
    pub model_version: Option<i64>,
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `StringStringEntryProto`.
#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// `OperatorSetIdProto`: `domain` `""` is `ai.onnx`.
#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, optional, tag = "1")]
    pub domain: Option<String>,
    #[prost(int64, optional, tag = "2")]
    pub version: Option<i64>,
}

/// `GraphProto`.
#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(string, optional, tag = "10")]
    pub doc_string: Option<String>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
}

/// `NodeProto`.
#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub op_type: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub domain: Option<String>,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
}

/// `AttributeProto`.
#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "13")]
    pub doc_string: Option<String>,
    /// An [`attribute_type`] value.
    #[prost(int32, optional, tag = "20")]
    pub r#type: Option<i32>,
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub s: Option<Vec<u8>>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(message, optional, boxed, tag = "6")]
    pub g: Option<Box<GraphProto>>,
    #[prost(float, repeated, packed = "false", tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "10")]
    pub tensors: Vec<TensorProto>,
}

/// `TensorProto`. tern writes data as `raw_data` (little-endian); readers also accept the typed fields.
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    /// A [`data_type`] value.
    #[prost(int32, optional, tag = "2")]
    pub data_type: Option<i32>,
    #[prost(float, repeated, packed = "true", tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, packed = "true", tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub string_data: Vec<Vec<u8>>,
    #[prost(int64, repeated, packed = "true", tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, optional, tag = "8")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "12")]
    pub doc_string: Option<String>,
    #[prost(bytes = "vec", optional, tag = "9")]
    pub raw_data: Option<Vec<u8>>,
    #[prost(double, repeated, packed = "true", tag = "10")]
    pub double_data: Vec<f64>,
    #[prost(uint64, repeated, packed = "true", tag = "11")]
    pub uint64_data: Vec<u64>,
}

/// `ValueInfoProto`.
#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    #[prost(string, optional, tag = "3")]
    pub doc_string: Option<String>,
}

/// `TypeProto`, tensor types only.
#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
    #[prost(string, optional, tag = "6")]
    pub denotation: Option<String>,
}

/// `TypeProto.Tensor`.
#[derive(Clone, PartialEq, Message)]
pub struct TypeProtoTensor {
    /// A [`data_type`] value.
    #[prost(int32, optional, tag = "1")]
    pub elem_type: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`: a fixed size or a symbolic name.
#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(oneof = "DimensionValue", tags = "1, 2")]
    pub value: Option<DimensionValue>,
    #[prost(string, optional, tag = "3")]
    pub denotation: Option<String>,
}

/// `TensorShapeProto.Dimension.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum DimensionValue {
    #[prost(int64, tag = "1")]
    DimValue(i64),
    #[prost(string, tag = "2")]
    DimParam(String),
}

impl ModelProto {
    /// The encoded protobuf bytes (`model.onnx`).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Decodes `model.onnx` bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<ModelProto, prost::DecodeError> {
        ModelProto::decode(bytes)
    }

    /// An ai.onnx opset 17 model of `nodes` over one float input `input` of `[N, columns]` (`N` symbolic), with
    /// `initializers`, returning `outputs` (name, [`data_type`]) of shape `[N, ?]`: small graphs for tests and tools.
    pub fn over_rows(
        input: &str,
        columns: usize,
        nodes: Vec<NodeProto>,
        initializers: Vec<TensorProto>,
        outputs: &[(&str, i32)],
    ) -> ModelProto {
        ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto {
                domain: None,
                version: Some(17),
            }],
            graph: Some(GraphProto {
                node: nodes,
                name: Some("graph".into()),
                initializer: initializers,
                input: vec![ValueInfoProto::tensor(
                    input,
                    data_type::FLOAT,
                    &[None, Some(columns)],
                    "N",
                )],
                output: outputs
                    .iter()
                    .map(|&(name, t)| ValueInfoProto::tensor(name, t, &[None, None], "N"))
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

impl TensorProto {
    fn raw(name: &str, dims: &[usize], data_type: i32, raw: Vec<u8>) -> TensorProto {
        TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(data_type),
            name: Some(name.to_string()),
            raw_data: Some(raw),
            ..Default::default()
        }
    }

    /// A float32 tensor. `data.len()` must equal the product of `dims` (a programmer error otherwise).
    pub fn from_f32(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorProto::raw(name, dims, data_type::FLOAT, raw)
    }

    /// A float16 tensor from the IEEE half bit patterns.
    pub fn from_f16_bits(name: &str, dims: &[usize], bits: &[u16]) -> TensorProto {
        debug_assert_eq!(dims.iter().product::<usize>(), bits.len());
        let raw = bits.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorProto::raw(name, dims, data_type::FLOAT16, raw)
    }

    /// An int8 tensor.
    pub fn from_i8(name: &str, dims: &[usize], data: &[i8]) -> TensorProto {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let raw = data.iter().map(|&v| v as u8).collect();
        TensorProto::raw(name, dims, data_type::INT8, raw)
    }

    /// An int64 tensor.
    pub fn from_i64(name: &str, dims: &[usize], data: &[i64]) -> TensorProto {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorProto::raw(name, dims, data_type::INT64, raw)
    }

    /// Its dimensions as sizes (negative dimensions, invalid in an initializer, read as 0).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().map(|&d| d.max(0) as usize).collect()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes its data occupies in the file.
    pub fn byte_size(&self) -> usize {
        if let Some(raw) = &self.raw_data {
            return raw.len();
        }
        self.float_data.len() * 4
            + self.int32_data.len() * 4
            + self.int64_data.len() * 8
            + self.double_data.len() * 8
            + self.uint64_data.len() * 8
            + self.string_data.iter().map(Vec::len).sum::<usize>()
    }

    /// Its values as f32, for float32, float16, int8, uint8, int32, int64 and double tensors; `None` for other
    /// types or data of the wrong length.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let n = self.len();
        let values: Vec<f32> = match (&self.raw_data, self.data_type()) {
            (Some(raw), data_type::FLOAT) => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            (Some(raw), data_type::FLOAT16) => raw
                .chunks_exact(2)
                .map(|c| f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            (Some(raw), data_type::INT8) => raw.iter().map(|&b| b as i8 as f32).collect(),
            (Some(raw), data_type::UINT8) => raw.iter().map(|&b| b as f32).collect(),
            (Some(raw), data_type::INT32) => raw
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            (Some(raw), data_type::INT64) => raw
                .chunks_exact(8)
                .map(|c| {
                    i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            (Some(raw), data_type::DOUBLE) => raw
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            (None, data_type::FLOAT) => self.float_data.clone(),
            (None, data_type::FLOAT16) => self
                .int32_data
                .iter()
                .map(|&b| f16_bits_to_f32(b as u16))
                .collect(),
            (None, data_type::INT8 | data_type::UINT8 | data_type::INT32) => {
                self.int32_data.iter().map(|&v| v as f32).collect()
            }
            (None, data_type::INT64) => self.int64_data.iter().map(|&v| v as f32).collect(),
            (None, data_type::DOUBLE) => self.double_data.iter().map(|&v| v as f32).collect(),
            _ => return None,
        };
        (values.len() == n).then_some(values)
    }

    /// Its values as i64, for int64 tensors.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        if self.data_type() != data_type::INT64 {
            return None;
        }
        let values: Vec<i64> = match &self.raw_data {
            Some(raw) => raw
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            None => self.int64_data.clone(),
        };
        (values.len() == self.len()).then_some(values)
    }
}

/// An IEEE 754 half (bit pattern) as f32, exactly.
pub fn f16_bits_to_f32(bits: u16) -> f32 {
    let sign = ((bits >> 15) as u32) << 31;
    let exponent = ((bits >> 10) & 0x1f) as u32;
    let mantissa = (bits & 0x3ff) as u32;
    let magnitude = match exponent {
        0 => (mantissa as f32) * f32::from_bits(0x3380_0000), // mantissa × 2^-24
        0x1f => return f32::from_bits(sign | 0x7f80_0000 | (mantissa << 13)),
        _ => return f32::from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13)),
    };
    f32::from_bits(sign | magnitude.to_bits())
}

impl AttributeProto {
    fn named(name: &str, r#type: i32) -> AttributeProto {
        AttributeProto {
            name: Some(name.to_string()),
            r#type: Some(r#type),
            ..Default::default()
        }
    }

    pub fn float(name: &str, value: f32) -> AttributeProto {
        AttributeProto {
            f: Some(value),
            ..AttributeProto::named(name, attribute_type::FLOAT)
        }
    }

    pub fn int(name: &str, value: i64) -> AttributeProto {
        AttributeProto {
            i: Some(value),
            ..AttributeProto::named(name, attribute_type::INT)
        }
    }

    pub fn string(name: &str, value: &str) -> AttributeProto {
        AttributeProto {
            s: Some(value.as_bytes().to_vec()),
            ..AttributeProto::named(name, attribute_type::STRING)
        }
    }

    pub fn tensor(name: &str, value: TensorProto) -> AttributeProto {
        AttributeProto {
            t: Some(value),
            ..AttributeProto::named(name, attribute_type::TENSOR)
        }
    }

    pub fn floats(name: &str, values: Vec<f32>) -> AttributeProto {
        AttributeProto {
            floats: values,
            ..AttributeProto::named(name, attribute_type::FLOATS)
        }
    }

    pub fn ints(name: &str, values: Vec<i64>) -> AttributeProto {
        AttributeProto {
            ints: values,
            ..AttributeProto::named(name, attribute_type::INTS)
        }
    }

    pub fn strings(name: &str, values: &[&str]) -> AttributeProto {
        AttributeProto {
            strings: values.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..AttributeProto::named(name, attribute_type::STRINGS)
        }
    }
}

impl NodeProto {
    /// A node of `op_type` in `domain` (`""` for ai.onnx) named `name`.
    pub fn new(
        op_type: &str,
        domain: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> NodeProto {
        NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: Some(name.to_string()),
            op_type: Some(op_type.to_string()),
            domain: (!domain.is_empty()).then(|| domain.to_string()),
            attribute: attributes,
            doc_string: None,
        }
    }

    /// The attribute called `name`.
    pub fn attribute(&self, name: &str) -> Option<&AttributeProto> {
        self.attribute.iter().find(|a| a.name() == name)
    }
}

impl ValueInfoProto {
    /// A tensor value of element type `elem_type`; `None` dimensions are symbolic, named `dim_params[i]`.
    pub fn tensor(name: &str, elem_type: i32, shape: &[Option<usize>], batch: &str) -> Self {
        let dim = shape
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Some(size) => DimensionValue::DimValue(*size as i64),
                    None => DimensionValue::DimParam(batch.to_string()),
                }),
                denotation: None,
            })
            .collect();
        ValueInfoProto {
            name: Some(name.to_string()),
            r#type: Some(TypeProto {
                tensor_type: Some(TypeProtoTensor {
                    elem_type: Some(elem_type),
                    shape: Some(TensorShapeProto { dim }),
                }),
                denotation: None,
            }),
            doc_string: None,
        }
    }

    /// Its element type, when it is a tensor.
    pub fn elem_type(&self) -> Option<i32> {
        self.r#type.as_ref()?.tensor_type.as_ref()?.elem_type
    }

    /// Its dimensions, `None` for symbolic ones, when it is a tensor with a shape.
    pub fn shape(&self) -> Option<Vec<Option<usize>>> {
        let shape = self.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref()?;
        Some(
            shape
                .dim
                .iter()
                .map(|d| match d.value {
                    Some(DimensionValue::DimValue(v)) if v >= 0 => Some(v as usize),
                    _ => None,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_round_trips_through_bytes() {
        let graph = GraphProto {
            node: vec![NodeProto::new(
                "Softmax",
                "",
                "softmax",
                &["x"],
                &["y"],
                vec![AttributeProto::int("axis", -1)],
            )],
            name: Some("g".into()),
            initializer: vec![
                TensorProto::from_f32("w", &[2], &[1.5, -2.0]),
                TensorProto::from_i64("k", &[1], &[7]),
            ],
            input: vec![ValueInfoProto::tensor(
                "x",
                data_type::FLOAT,
                &[None, Some(2)],
                "N",
            )],
            output: vec![ValueInfoProto::tensor(
                "y",
                data_type::FLOAT,
                &[None, Some(2)],
                "N",
            )],
            ..Default::default()
        };
        let model = ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(17),
            }],
            graph: Some(graph),
            ..Default::default()
        };
        let back = ModelProto::from_bytes(&model.to_bytes()).unwrap();
        assert_eq!(back, model);
        let g = back.graph.unwrap();
        assert_eq!(g.initializer[0].to_f32().unwrap(), vec![1.5, -2.0]);
        assert_eq!(g.initializer[1].to_i64().unwrap(), vec![7]);
        assert_eq!(g.input[0].shape().unwrap(), vec![None, Some(2)]);
        assert_eq!(g.node[0].attribute("axis").unwrap().i, Some(-1));
    }

    #[test]
    fn known_field_numbers_encode_as_onnx_proto_says() {
        // OperatorSetIdProto{domain:"ai.onnx.ml" (field 1), version:3 (field 2)}: tags 0x0a and 0x10.
        let opset = OperatorSetIdProto {
            domain: Some("ai.onnx.ml".into()),
            version: Some(3),
        };
        let bytes = opset.encode_to_vec();
        assert_eq!(bytes[0], 0x0a);
        assert_eq!(&bytes[2..12], b"ai.onnx.ml");
        assert_eq!(&bytes[12..], &[0x10, 3]);
        // AttributeProto.type is field 20 (varint): tag (20 << 3) = 160 = 0xa0 0x01.
        let bytes = AttributeProto::int("axis", 1).encode_to_vec();
        assert!(bytes
            .windows(3)
            .any(|w| w == [0xa0, 0x01, attribute_type::INT as u8]));
    }

    #[test]
    fn half_bits_decode_exactly() {
        assert_eq!(f16_bits_to_f32(0x3c00), 1.0);
        assert_eq!(f16_bits_to_f32(0xc000), -2.0);
        assert_eq!(f16_bits_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_bits_to_f32(0x7bff), 65504.0);
        assert!(f16_bits_to_f32(0x7e00).is_nan());
        assert_eq!(f16_bits_to_f32(0xfc00), f32::NEG_INFINITY);
    }
}
