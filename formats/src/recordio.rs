//! `application/x-recordio-protobuf`: MXNet RecordIO framing around SageMaker's `aialgs.data.Record` protobuf.
//!
//! **Framing.** Each frame is a little-endian `u32` magic `0xCED7230A`, a little-endian `u32` length word (top 3 bits
//! the continuation flag, low 29 bits the payload length), the payload, and zero padding to a 4-byte boundary.
//! Flag 0 is a whole record; MXNet's writer splits a payload holding the magic at an aligned offset into a first
//! (1), middle (2) and last (3) part, dropping the magic, and [`FrameReader`] joins such parts back with the magic
//! in between. [`write_frame`] writes one flag-0 frame, as the SageMaker SDK does. A missing padding after the last
//! frame is accepted (the SDK's reader accepts it too).
//!
//! **Records.** The payload is a [`proto::Record`]. Its `features["values"]` tensor (Float32, Float64 or Int32,
//! converted to `f32`) is the features: dense when `keys` is empty, sparse (`keys` = indices, `shape` = the feature
//! dimension) otherwise. A one-element `label["values"]` tensor is the label; other label keys (responses carry
//! `score`, `predicted_label`, …) are ignored by [`RecordIoReader`]. Sparse keys written out of order (a scipy
//! matrix whose indices are not sorted) are sorted; a repeated key is an error.
//!
//! **Errors** name the record (1-based) and the byte offset of its first frame: bad magic, a truncated frame header,
//! a length past the end of the input, an undecodable protobuf, a missing `values` feature key, keys/values length
//! mismatch, a sparse tensor without shape, an index at or past the shape, a label with other than one value.
//!
//! [`RecordIoWriter`] writes dense and sparse records byte for byte as the SDK's `write_numpy_to_dense_tensor` and
//! `write_spmatrix_to_sparse_tensor` do for the same numbers and tensor types.

use std::io::{BufReader, Read, Write};

use prost::Message;

use crate::{Features, FormatError, Location, Record};

/// The RecordIO magic number that starts every frame.
pub const MAGIC: u32 = 0xCED7_230A;

/// The largest payload one frame can carry (the length word has 29 bits).
pub const MAX_FRAME_LENGTH: usize = (1 << 29) - 1;

/// The `aialgs.data` protobuf messages of SageMaker's `record.proto` (proto2), written out by hand.
pub mod proto {
    use std::collections::BTreeMap;

    /// A tensor of `f32`; `keys` (sparse indices) and `shape` are optional.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Float32Tensor {
        #[prost(float, repeated, packed = "true", tag = "1")]
        pub values: Vec<f32>,
        #[prost(uint64, repeated, packed = "true", tag = "2")]
        pub keys: Vec<u64>,
        #[prost(uint64, repeated, packed = "true", tag = "3")]
        pub shape: Vec<u64>,
    }

    /// A tensor of `f64`; `keys` (sparse indices) and `shape` are optional.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Float64Tensor {
        #[prost(double, repeated, packed = "true", tag = "1")]
        pub values: Vec<f64>,
        #[prost(uint64, repeated, packed = "true", tag = "2")]
        pub keys: Vec<u64>,
        #[prost(uint64, repeated, packed = "true", tag = "3")]
        pub shape: Vec<u64>,
    }

    /// A tensor of `i32`; `keys` (sparse indices) and `shape` are optional.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Int32Tensor {
        #[prost(int32, repeated, packed = "true", tag = "1")]
        pub values: Vec<i32>,
        #[prost(uint64, repeated, packed = "true", tag = "2")]
        pub keys: Vec<u64>,
        #[prost(uint64, repeated, packed = "true", tag = "3")]
        pub shape: Vec<u64>,
    }

    /// Opaque byte strings (e.g. an encoded image) with an optional MIME type.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Bytes {
        #[prost(bytes = "vec", repeated, tag = "1")]
        pub value: Vec<Vec<u8>>,
        #[prost(string, optional, tag = "2")]
        pub content_type: Option<String>,
    }

    /// One tensor or byte string.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        #[prost(oneof = "value::Kind", tags = "2, 3, 7, 9")]
        pub value: Option<value::Kind>,
    }

    /// The `oneof value` of [`Value`].
    pub mod value {
        /// Which kind of data a [`super::Value`] holds.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Kind {
            #[prost(message, tag = "2")]
            Float32Tensor(super::Float32Tensor),
            #[prost(message, tag = "3")]
            Float64Tensor(super::Float64Tensor),
            #[prost(message, tag = "7")]
            Int32Tensor(super::Int32Tensor),
            #[prost(message, tag = "9")]
            Bytes(super::Bytes),
        }
    }

    /// One example or one response: named feature and label tensors (`"values"` for data; `"score"`,
    /// `"predicted_label"`, … in responses), and optional metadata.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Record {
        #[prost(btree_map = "string, message", tag = "1")]
        pub features: BTreeMap<String, Value>,
        #[prost(btree_map = "string, message", tag = "2")]
        pub label: BTreeMap<String, Value>,
        #[prost(string, optional, tag = "3")]
        pub uid: Option<String>,
        #[prost(string, optional, tag = "4")]
        pub metadata: Option<String>,
        /// Per-record inference configuration, a JSON document.
        #[prost(string, optional, tag = "5")]
        pub configuration: Option<String>,
    }

    impl Value {
        /// A dense `Float32Tensor` value.
        pub fn float32(values: Vec<f32>) -> Self {
            Value {
                value: Some(value::Kind::Float32Tensor(Float32Tensor {
                    values,
                    ..Default::default()
                })),
            }
        }
    }

    impl Record {
        /// A response record: `label[key]` = a dense `Float32Tensor` for each entry, features empty.
        pub fn response<'a>(entries: impl IntoIterator<Item = (&'a str, Vec<f32>)>) -> Self {
            Record {
                label: entries
                    .into_iter()
                    .map(|(key, values)| (key.to_string(), Value::float32(values)))
                    .collect(),
                ..Default::default()
            }
        }
    }
}

/// Reads RecordIO frames one at a time, joining multi-part records; memory holds one record.
pub struct FrameReader<R> {
    input: R,
    source: String,
    payload: Vec<u8>,
    /// Bytes consumed so far: the offset of the next frame.
    offset: u64,
    /// Records returned so far.
    records: u64,
    /// The byte offset of the last record returned.
    start: u64,
}

impl<R: Read> FrameReader<R> {
    /// A frame reader over `input` (read in whatever pieces it gives; wrap slow sources in a `BufReader`); `source`
    /// names the file or channel in errors.
    pub fn new(input: R, source: &str) -> Self {
        FrameReader {
            input,
            source: source.to_string(),
            payload: Vec::new(),
            offset: 0,
            records: 0,
            start: 0,
        }
    }

    /// Where the last record returned by [`next_frame`](Self::next_frame) starts: its 1-based index and the byte
    /// offset of its first frame.
    pub fn location(&self) -> Location {
        Location::Record {
            index: self.records,
            byte_offset: self.start,
        }
    }

    /// The next record's payload, or `None` at the end of the input.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FormatError> {
        self.payload.clear();
        let index = self.records + 1;
        let start = self.offset;
        let error = |offset: u64, message: String| {
            FormatError::malformed(
                &self.source,
                Location::Record {
                    index,
                    byte_offset: offset,
                },
                None,
                message,
            )
        };
        let mut part = 0u32;
        loop {
            let frame_start = self.offset;
            let mut header = [0u8; 8];
            let got = read_full(&mut self.input, &mut header)
                .map_err(|e| self.io_error(index, start, e))?;
            self.offset += got as u64;
            if got == 0 && part == 0 {
                return Ok(None);
            }
            if got < header.len() {
                let what = if part == 0 {
                    "the input ends".to_string()
                } else {
                    format!(
                        "the input ends inside part {} of a multi-part record",
                        part + 1
                    )
                };
                return Err(error(
                    start,
                    format!("truncated frame header: {what} after {got} of 8 bytes at byte {frame_start}"),
                ));
            }
            let magic = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            if magic != MAGIC {
                return Err(error(
                    start,
                    format!(
                        "bad magic 0x{magic:08X} at byte {frame_start}; expected 0x{MAGIC:08X} (is this RecordIO-protobuf?)"
                    ),
                ));
            }
            let word = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let flag = word >> 29;
            let length = (word & MAX_FRAME_LENGTH as u32) as usize;
            match (part, flag) {
                (0, 0 | 1) | (1.., 2 | 3) => {}
                (0, _) => {
                    return Err(error(
                        start,
                        format!("frame at byte {frame_start} continues a record (flag {flag}) but none was started"),
                    ))
                }
                (_, _) => {
                    return Err(error(
                        start,
                        format!(
                            "frame at byte {frame_start} has flag {flag}; expected the continuation (2 or 3) of a multi-part record"
                        ),
                    ))
                }
            }
            let before = self.payload.len();
            let got = (&mut self.input)
                .take(length as u64)
                .read_to_end(&mut self.payload)
                .map_err(|e| self.io_error(index, start, e))?;
            self.offset += got as u64;
            if got < length {
                self.payload.truncate(before);
                return Err(error(
                    start,
                    format!(
                        "length past end: the frame at byte {frame_start} declares {length} payload bytes but the input ends after {got}"
                    ),
                ));
            }
            let padding = (4 - length % 4) % 4;
            let mut pad = [0u8; 3];
            let got = read_full(&mut self.input, &mut pad[..padding])
                .map_err(|e| self.io_error(index, start, e))?;
            self.offset += got as u64;
            if flag == 0 || flag == 3 {
                break;
            }
            self.payload.extend_from_slice(&MAGIC.to_le_bytes());
            part += 1;
        }
        self.records = index;
        self.start = start;
        Ok(Some(&self.payload))
    }

    fn io_error(&self, index: u64, byte_offset: u64, error: std::io::Error) -> FormatError {
        FormatError::Io {
            source_name: self.source.clone(),
            location: Location::Record { index, byte_offset },
            error,
        }
    }
}

/// Reads until `buffer` is full or the input ends; returns how many bytes were read.
fn read_full<R: Read>(input: &mut R, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Writes `payload` as one RecordIO frame (flag 0, zero padding to 4 bytes), as the SageMaker SDK does.
/// Errors: a payload longer than [`MAX_FRAME_LENGTH`] (`InvalidInput`), or a failed write.
pub fn write_frame<W: Write + ?Sized>(out: &mut W, payload: &[u8]) -> std::io::Result<()> {
    if payload.len() > MAX_FRAME_LENGTH {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "a RecordIO frame holds at most {MAX_FRAME_LENGTH} bytes; the payload has {}",
                payload.len()
            ),
        ));
    }
    out.write_all(&MAGIC.to_le_bytes())?;
    out.write_all(&(payload.len() as u32).to_le_bytes())?;
    out.write_all(payload)?;
    let padding = (4 - payload.len() % 4) % 4;
    out.write_all(&[0u8; 3][..padding])
}

/// Streams [`Record`]s from RecordIO-protobuf; see the [module docs](self) for the rules.
pub struct RecordIoReader<R> {
    frames: FrameReader<BufReader<R>>,
    done: bool,
}

impl<R: Read> RecordIoReader<R> {
    /// A reader over `input`; `source` names the file or channel in errors.
    pub fn new(input: R, source: &str) -> Self {
        RecordIoReader {
            frames: FrameReader::new(BufReader::new(input), source),
            done: false,
        }
    }

    fn read_record(&mut self) -> Result<Option<Record>, FormatError> {
        let Some(payload) = self.frames.next_frame()? else {
            return Ok(None);
        };
        let decoded = proto::Record::decode(payload);
        let location = self.frames.location();
        let source = &self.frames.source;
        let message = decoded.map_err(|error| {
            FormatError::malformed(
                source,
                location,
                None,
                format!("undecodable aialgs.data.Record protobuf: {error}"),
            )
        })?;
        record_from_message(&message, source, location).map(Some)
    }
}

impl<R: Read> Iterator for RecordIoReader<R> {
    type Item = Result<Record, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let read = self.read_record();
        crate::text::fuse(read, &mut self.done)
    }
}

/// A tensor's contents as `f32`, whatever its element type.
struct Tensor<'a> {
    values: Vec<f32>,
    keys: &'a [u64],
    shape: &'a [u64],
}

fn tensor<'a>(value: &'a proto::Value, field: &str) -> Result<Tensor<'a>, (String, String)> {
    use proto::value::Kind;
    match &value.value {
        Some(Kind::Float32Tensor(t)) => Ok(Tensor {
            values: t.values.clone(),
            keys: &t.keys,
            shape: &t.shape,
        }),
        Some(Kind::Float64Tensor(t)) => {
            let values: Vec<f32> = t.values.iter().map(|&v| v as f32).collect();
            // A finite float64 beyond float32's range would otherwise arrive as infinity.
            if let Some(i) =
                (0..values.len()).find(|&i| values[i].is_infinite() && t.values[i].is_finite())
            {
                return Err((
                    format!("{field}[{i}]"),
                    format!(
                        "{:e} is beyond float32's range (|x| <= 3.4028235e38)",
                        t.values[i]
                    ),
                ));
            }
            Ok(Tensor {
                values,
                keys: &t.keys,
                shape: &t.shape,
            })
        }
        Some(Kind::Int32Tensor(t)) => Ok(Tensor {
            values: t.values.iter().map(|&v| v as f32).collect(),
            keys: &t.keys,
            shape: &t.shape,
        }),
        Some(Kind::Bytes(_)) => Err((
            field.to_string(),
            "holds Bytes; expected a Float32Tensor, Float64Tensor or Int32Tensor".to_string(),
        )),
        None => Err((
            field.to_string(),
            "holds no tensor; expected a Float32Tensor, Float64Tensor or Int32Tensor".to_string(),
        )),
    }
}

/// Converts a decoded `aialgs.data.Record` into a [`Record`]; `source` and `location` go into errors.
pub fn record_from_message(
    message: &proto::Record,
    source: &str,
    location: Location,
) -> Result<Record, FormatError> {
    convert_message(message)
        .map_err(|(field, text)| FormatError::malformed(source, location, Some(field), text))
}

fn convert_message(message: &proto::Record) -> Result<Record, (String, String)> {
    let Some(value) = message.features.get("values") else {
        let found: Vec<&str> = message.features.keys().map(String::as_str).collect();
        return Err((
            "features".to_string(),
            format!("no \"values\" key; found keys {found:?}"),
        ));
    };
    let field = "features.values";
    let Tensor {
        values,
        keys,
        shape,
    } = tensor(value, field)?;
    let shape_size = shape
        .iter()
        .try_fold(1u64, |size, &d| size.checked_mul(d))
        .ok_or_else(|| {
            (
                format!("{field}.shape"),
                format!("shape {shape:?} overflows"),
            )
        })?;
    // A sparse row with no stored entries has neither keys nor values, only its shape.
    let empty_sparse_row = values.is_empty() && !shape.is_empty() && shape_size > 0;
    let features = if keys.is_empty() && !empty_sparse_row {
        if !shape.is_empty() && shape_size != values.len() as u64 {
            return Err((
                format!("{field}.shape"),
                format!(
                    "dense tensor has {} values but shape {shape:?} holds {shape_size}",
                    values.len()
                ),
            ));
        }
        Features::Dense(values)
    } else {
        if keys.len() != values.len() {
            return Err((
                format!("{field}.keys"),
                format!(
                    "{} keys but {} values; a sparse tensor needs one key per value",
                    keys.len(),
                    values.len()
                ),
            ));
        }
        if shape.is_empty() {
            return Err((
                format!("{field}.shape"),
                "sparse tensor (keys present) without shape; expected shape = [feature_dim]"
                    .to_string(),
            ));
        }
        let dim = usize::try_from(shape_size)
            .ok()
            .filter(|&d| d as u64 <= u64::from(u32::MAX) + 1)
            .ok_or_else(|| {
                (
                    format!("{field}.shape"),
                    format!(
                        "shape {shape:?} is too large; at most {} features",
                        u32::MAX as u64 + 1
                    ),
                )
            })?;
        let mut pairs: Vec<(u64, f32)> = keys.iter().copied().zip(values).collect();
        if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            pairs.sort_by_key(|&(key, _)| key);
        }
        let mut indices = Vec::with_capacity(pairs.len());
        let mut sorted_values = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            if key >= shape_size {
                return Err((
                    format!("{field}.keys"),
                    format!(
                        "index {key} is out of range for shape {shape:?}; expected < {shape_size}"
                    ),
                ));
            }
            if indices.last() == Some(&(key as u32)) {
                return Err((
                    format!("{field}.keys"),
                    format!("index {key} appears twice"),
                ));
            }
            indices.push(key as u32);
            sorted_values.push(value);
        }
        Features::Sparse {
            indices,
            values: sorted_values,
            dim: Some(dim),
        }
    };
    let label = match message.label.get("values") {
        None => None,
        Some(value) => {
            let labels = tensor(value, "label.values")?.values;
            if labels.len() != 1 {
                return Err((
                    "label.values".to_string(),
                    format!(
                        "{} values; expected a one-element label tensor",
                        labels.len()
                    ),
                ));
            }
            Some(labels[0])
        }
    };
    Ok(Record {
        features,
        label,
        weight: None,
    })
}

/// The element type a [`RecordIoWriter`] writes, as the SDK picks it from the numpy dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TensorType {
    /// `Float32Tensor` (numpy `float32`); what most built-in algorithms require.
    #[default]
    Float32,
    /// `Float64Tensor` (numpy `float64`).
    Float64,
    /// `Int32Tensor` (numpy `int`); values must be whole numbers in `i32` range.
    Int32,
}

impl TensorType {
    /// A tensor of this type holding `values` (with sparse `keys` and `shape` when given).
    fn value(
        self,
        values: &[f32],
        keys: Vec<u64>,
        shape: Vec<u64>,
        field: &str,
    ) -> Result<proto::Value, (String, String)> {
        use proto::value::Kind;
        let kind = match self {
            TensorType::Float32 => Kind::Float32Tensor(proto::Float32Tensor {
                values: values.to_vec(),
                keys,
                shape,
            }),
            TensorType::Float64 => Kind::Float64Tensor(proto::Float64Tensor {
                values: values.iter().map(|&v| f64::from(v)).collect(),
                keys,
                shape,
            }),
            TensorType::Int32 => {
                let mut ints = Vec::with_capacity(values.len());
                for (position, &value) in values.iter().enumerate() {
                    let int = value as i32;
                    if int as f32 != value {
                        return Err((
                            format!("{field}[{position}]"),
                            format!("{value} is not a whole number in i32 range, as an Int32Tensor needs"),
                        ));
                    }
                    ints.push(int);
                }
                Kind::Int32Tensor(proto::Int32Tensor {
                    values: ints,
                    keys,
                    shape,
                })
            }
        };
        Ok(proto::Value { value: Some(kind) })
    }
}

/// Builds the `aialgs.data.Record` the SDK writes for `record`: features under `features["values"]` (sparse ones
/// with `keys` and `shape = [dim]`), the label as a one-element `label["values"]` tensor.
/// Errors (field, message): a weight (RecordIO-protobuf has no place for it), a value an `Int32Tensor` cannot hold.
fn message_from_record(
    record: &Record,
    feature_type: TensorType,
    label_type: TensorType,
) -> Result<proto::Record, (String, String)> {
    if record.weight.is_some() {
        return Err((
            "weight".to_string(),
            "RecordIO-protobuf has no instance weight; the record has one".to_string(),
        ));
    }
    let field = "features.values";
    let features = match &record.features {
        Features::Dense(values) => feature_type.value(values, Vec::new(), Vec::new(), field)?,
        Features::Sparse {
            indices, values, ..
        } => {
            let keys = indices.iter().map(|&i| u64::from(i)).collect();
            let shape = vec![record.features.dim() as u64];
            feature_type.value(values, keys, shape, field)?
        }
    };
    let mut message = proto::Record::default();
    message.features.insert("values".to_string(), features);
    if let Some(label) = record.label {
        message.label.insert(
            "values".to_string(),
            label_type.value(&[label], Vec::new(), Vec::new(), "label.values")?,
        );
    }
    Ok(message)
}

/// Writes [`Record`]s as RecordIO-protobuf, byte for byte as the SageMaker SDK writes the same numbers.
pub struct RecordIoWriter<W: Write> {
    out: W,
    feature_type: TensorType,
    label_type: TensorType,
    records: u64,
    offset: u64,
    buffer: Vec<u8>,
}

impl<W: Write> RecordIoWriter<W> {
    /// A writer of `Float32Tensor` features and labels (numpy `float32` in the SDK).
    pub fn new(out: W) -> Self {
        Self::with_tensor_types(out, TensorType::Float32, TensorType::Float32)
    }

    /// A writer of the given feature and label tensor types (the SDK picks them from the arrays' dtypes).
    pub fn with_tensor_types(out: W, feature_type: TensorType, label_type: TensorType) -> Self {
        RecordIoWriter {
            out,
            feature_type,
            label_type,
            records: 0,
            offset: 0,
            buffer: Vec::new(),
        }
    }

    /// Writes one record. Errors: a record with a weight, a value the tensor type cannot hold, a failed write.
    pub fn write_record(&mut self, record: &Record) -> Result<(), FormatError> {
        let location = Location::Record {
            index: self.records + 1,
            byte_offset: self.offset,
        };
        let message = message_from_record(record, self.feature_type, self.label_type).map_err(
            |(field, text)| FormatError::malformed("output", location, Some(field), text),
        )?;
        self.write_message(&message)
    }

    /// Writes one protobuf record as it is (e.g. a response whose `label` map holds `score`).
    pub fn write_message(&mut self, message: &proto::Record) -> Result<(), FormatError> {
        let location = Location::Record {
            index: self.records + 1,
            byte_offset: self.offset,
        };
        self.buffer.clear();
        message
            .encode(&mut self.buffer)
            .expect("a Vec<u8> grows to fit any message");
        write_frame(&mut self.out, &self.buffer)
            .map_err(|error| FormatError::write_failed(location, error))?;
        self.records += 1;
        self.offset += 8 + self.buffer.len().next_multiple_of(4) as u64;
        Ok(())
    }

    /// Flushes and returns the destination.
    pub fn into_inner(mut self) -> Result<W, FormatError> {
        let location = Location::Record {
            index: self.records,
            byte_offset: self.offset,
        };
        self.out
            .flush()
            .map_err(|error| FormatError::write_failed(location, error))?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(records: &[Record]) -> Vec<u8> {
        let mut writer = RecordIoWriter::new(Vec::new());
        for record in records {
            writer.write_record(record).unwrap();
        }
        writer.into_inner().unwrap()
    }

    fn read(bytes: &[u8]) -> Vec<Result<Record, FormatError>> {
        RecordIoReader::new(bytes, "train.rec").collect()
    }

    fn last_error(bytes: &[u8]) -> String {
        read(bytes)
            .last()
            .unwrap()
            .as_ref()
            .expect_err("ends in an error")
            .to_string()
    }

    fn framed(message: &proto::Record) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, &message.encode_to_vec()).unwrap();
        out
    }

    fn float32(values: Vec<f32>, keys: Vec<u64>, shape: Vec<u64>) -> proto::Value {
        proto::Value {
            value: Some(proto::value::Kind::Float32Tensor(proto::Float32Tensor {
                values,
                keys,
                shape,
            })),
        }
    }

    fn with_features(value: proto::Value) -> proto::Record {
        let mut message = proto::Record::default();
        message.features.insert("values".to_string(), value);
        message
    }

    #[test]
    fn dense_and_sparse_round_trip() {
        let records = vec![
            Record::dense(Some(1.0), vec![0.5, -2.0, 3.25]),
            Record {
                features: Features::Sparse {
                    indices: vec![1, 4],
                    values: vec![7.0, -1.0],
                    dim: Some(6),
                },
                label: None,
                weight: None,
            },
        ];
        let bytes = write(&records);
        assert_eq!(bytes.len() % 4, 0);
        let back: Vec<Record> = read(&bytes).into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(back, records);
    }

    #[test]
    fn sdk_layout_of_one_dense_record() {
        // What write_numpy_to_dense_tensor writes for np.array([[1.0]], dtype=float32) with label 2.0 (float32).
        let bytes = write(&[Record::dense(Some(2.0), vec![1.0])]);
        let entry = |value: [u8; 4]| {
            let tensor = [&[0x0A, 0x04][..], &value].concat();
            let kind = [&[0x12, tensor.len() as u8][..], &tensor].concat();
            [
                &[0x0A, 0x06][..],
                b"values",
                &[0x12, kind.len() as u8],
                &kind,
            ]
            .concat()
        };
        let features = entry(1.0f32.to_le_bytes());
        let label = entry(2.0f32.to_le_bytes());
        let payload = [
            &[0x0A, features.len() as u8][..],
            &features,
            &[0x12, label.len() as u8],
            &label,
        ]
        .concat();
        let mut expected = [
            &[0x0A, 0x23, 0xD7, 0xCE][..],
            &(payload.len() as u32).to_le_bytes(),
            &payload,
        ]
        .concat();
        expected.resize(expected.len().next_multiple_of(4), 0);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn multi_part_frames_are_joined_with_the_magic() {
        let message = with_features(float32(vec![1.0, 2.0], vec![], vec![]));
        let payload = message.encode_to_vec();
        // Split the payload as MXNet would around an (imagined) magic at an aligned offset.
        let split = 4;
        let mut whole = payload[..split].to_vec();
        whole.extend_from_slice(&MAGIC.to_le_bytes());
        whole.extend_from_slice(&payload[split..]);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&MAGIC.to_le_bytes());
        bytes.extend_from_slice(&((1u32 << 29) | split as u32).to_le_bytes());
        bytes.extend_from_slice(&payload[..split]);
        bytes.extend_from_slice(&MAGIC.to_le_bytes());
        let rest = &payload[split..];
        bytes.extend_from_slice(&((3u32 << 29) | rest.len() as u32).to_le_bytes());
        bytes.extend_from_slice(rest);
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        let mut frames = FrameReader::new(&bytes[..], "x");
        assert_eq!(frames.next_frame().unwrap().unwrap(), &whole[..]);
        assert!(frames.next_frame().unwrap().is_none());
        let message = last_error(&bytes[..bytes.len() - rest.len().next_multiple_of(4) - 8]);
        assert!(message.contains("multi-part"), "{message}");
    }

    #[test]
    fn framing_errors_name_record_and_offset() {
        let good = write(&[Record::dense(Some(1.0), vec![1.0, 2.0])]);
        let second = good.len();

        let mut bad_magic = good.clone();
        bad_magic.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 0]);
        let message = last_error(&bad_magic);
        assert!(
            message.contains(&format!("train.rec: record 2 (byte {second})")),
            "{message}"
        );
        assert!(message.contains("bad magic 0x04030201"), "{message}");

        let mut truncated_header = good.clone();
        truncated_header.extend_from_slice(&MAGIC.to_le_bytes()[..3]);
        let message = last_error(&truncated_header);
        assert!(
            message.contains(&format!("record 2 (byte {second})")),
            "{message}"
        );
        assert!(message.contains("truncated frame header"), "{message}");

        let mut past_end = good.clone();
        past_end.extend_from_slice(&MAGIC.to_le_bytes());
        past_end.extend_from_slice(&100u32.to_le_bytes());
        past_end.extend_from_slice(&[0; 10]);
        let message = last_error(&past_end);
        assert!(
            message.contains(&format!("record 2 (byte {second})")),
            "{message}"
        );
        assert!(message.contains("length past end"), "{message}");
        assert!(message.contains("declares 100"), "{message}");

        let mut continuation = good.clone();
        continuation.extend_from_slice(&MAGIC.to_le_bytes());
        continuation.extend_from_slice(&(2u32 << 29).to_le_bytes());
        assert!(last_error(&continuation).contains("none was started"));
    }

    #[test]
    fn missing_final_padding_is_accepted() {
        let mut bytes = write(&[Record::dense(None, vec![1.0])]);
        let payload_length = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        bytes.truncate(8 + payload_length);
        assert_eq!(read(&bytes).len(), 1);
        assert!(read(&bytes)[0].is_ok());
    }

    #[test]
    fn content_errors_name_record_and_field() {
        let undecodable = {
            let mut out = Vec::new();
            write_frame(&mut out, &[0xFF, 0xFF, 0xFF]).unwrap();
            out
        };
        let message = last_error(&undecodable);
        assert!(message.contains("record 1 (byte 0)"), "{message}");
        assert!(message.contains("undecodable"), "{message}");

        let mut other_key = proto::Record::default();
        other_key
            .features
            .insert("pixels".to_string(), float32(vec![1.0], vec![], vec![]));
        let message = last_error(&framed(&other_key));
        assert!(message.contains("field features"), "{message}");
        assert!(message.contains("no \"values\" key"), "{message}");

        let mismatch = with_features(float32(vec![1.0, 2.0], vec![0], vec![4]));
        let message = last_error(&framed(&mismatch));
        assert!(message.contains("field features.values.keys"), "{message}");
        assert!(message.contains("1 keys but 2 values"), "{message}");

        let no_shape = with_features(float32(vec![1.0], vec![0], vec![]));
        let message = last_error(&framed(&no_shape));
        assert!(message.contains("field features.values.shape"), "{message}");
        assert!(message.contains("without shape"), "{message}");

        let out_of_range = with_features(float32(vec![1.0, 2.0], vec![1, 4], vec![4]));
        let message = last_error(&framed(&out_of_range));
        assert!(message.contains("field features.values.keys"), "{message}");
        assert!(message.contains("index 4 is out of range"), "{message}");

        let duplicate = with_features(float32(vec![1.0, 2.0], vec![1, 1], vec![4]));
        assert!(last_error(&framed(&duplicate)).contains("appears twice"));

        let mut two_labels = with_features(float32(vec![1.0], vec![], vec![]));
        two_labels.label.insert(
            "values".to_string(),
            float32(vec![1.0, 2.0], vec![], vec![]),
        );
        let message = last_error(&framed(&two_labels));
        assert!(message.contains("field label.values"), "{message}");

        let mut prefix = write(&[Record::dense(None, vec![0.0])]);
        let offset = prefix.len();
        prefix.extend_from_slice(&framed(&with_features(proto::Value { value: None })));
        let message = last_error(&prefix);
        assert!(
            message.contains(&format!("record 2 (byte {offset})")),
            "{message}"
        );
    }

    #[test]
    fn unsorted_sparse_keys_are_sorted() {
        let message = with_features(float32(vec![1.0, 2.0, 3.0], vec![5, 0, 2], vec![8]));
        let records: Vec<Record> = read(&framed(&message))
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            records[0].features,
            Features::Sparse {
                indices: vec![0, 2, 5],
                values: vec![2.0, 3.0, 1.0],
                dim: Some(8)
            }
        );
    }

    #[test]
    fn empty_sparse_row_keeps_its_dimension() {
        let message = with_features(float32(vec![], vec![], vec![5]));
        let records: Vec<Record> = read(&framed(&message))
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            records[0].features,
            Features::Sparse {
                indices: vec![],
                values: vec![],
                dim: Some(5)
            }
        );
        let round = write(&records);
        assert_eq!(round, framed(&message));
    }

    #[test]
    fn writer_refuses_weights_and_non_integers_for_int32() {
        let mut writer = RecordIoWriter::new(Vec::new());
        let weighted = Record {
            weight: Some(2.0),
            ..Record::dense(None, vec![1.0])
        };
        let message = writer.write_record(&weighted).unwrap_err().to_string();
        assert!(
            message.contains("record 1 (byte 0), field weight"),
            "{message}"
        );
        let mut writer =
            RecordIoWriter::with_tensor_types(Vec::new(), TensorType::Float32, TensorType::Int32);
        writer
            .write_record(&Record::dense(Some(3.0), vec![0.5]))
            .unwrap();
        let message = writer
            .write_record(&Record::dense(Some(0.5), vec![0.5]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("record 2"), "{message}");
        assert!(message.contains("field label.values[0]"), "{message}");
    }

    #[test]
    fn responses_carry_named_label_tensors() {
        let message =
            proto::Record::response([("score", vec![0.75]), ("predicted_label", vec![1.0])]);
        let mut writer = RecordIoWriter::new(Vec::new());
        writer.write_message(&message).unwrap();
        let bytes = writer.into_inner().unwrap();
        let mut frames = FrameReader::new(&bytes[..], "response");
        let decoded = proto::Record::decode(frames.next_frame().unwrap().unwrap()).unwrap();
        assert_eq!(decoded, message);
        assert_eq!(decoded.label["score"], proto::Value::float32(vec![0.75]));
    }
}
