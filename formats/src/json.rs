//! SageMaker's JSON shapes: `application/jsonlines` records, `application/json` requests, and the JSON and JSON-lines
//! responses of the built-in algorithms.
//!
//! One instance (a JSON lines line, or an element of a request's `instances`) is any of:
//! - `{"features": [1.5, 16.0]}` — dense;
//! - `{"data": {"features": {"values": [1.5, 16.0]}}}` — dense;
//! - `{"data": {"features": {"keys": [26, 182], "shape": [2000], "values": [1, 4]}}}` — sparse (keys strictly
//!   increasing and below `shape`; `shape` may be left out, then the dimension is unknown);
//! - a plain array of numbers `[1.5, 16.0]` — dense;
//!
//! with optional `"label"` and `"weight"` numbers beside `"features"`/`"data"`; other keys (e.g. `"configuration"`)
//! are ignored. A `null` feature value reads as NaN (missing); a `null` label or weight as absent.
//!
//! An `application/json` request is `{"instances": [instance, …]}`, a plain array of instances (`[[1, 2], [3, 4]]`),
//! a single plain array (`[1, 2]`, one record) or a single instance object.
//!
//! Errors name the source, the line (JSON lines) or the whole input (a request), and the JSON path of the field at
//! fault, e.g. `instances[2].data.features.keys[1]` (JSON path indices are 0-based).

use std::io::{BufReader, BufWriter, Read, Write};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::text::{is_blank, quote, LineReader};
use crate::{Features, FormatError, Location, Record};

/// (field path, message) of a malformed instance.
type Problem = (String, String);

/// Streams [`Record`]s from JSON lines, one instance per line (see the [module docs](self)); blank lines are skipped,
/// `\r\n` and a UTF-8 byte order mark accepted. Holds one line in memory; stops after the first error.
pub struct JsonLinesReader<R> {
    lines: LineReader<R>,
    done: bool,
}

impl<R: Read> JsonLinesReader<R> {
    /// A reader over `input`; `source` names the file or channel in errors.
    pub fn new(input: R, source: &str) -> Self {
        JsonLinesReader {
            lines: LineReader::new(input, source),
            done: false,
        }
    }

    fn read_record(&mut self) -> Result<Option<Record>, FormatError> {
        loop {
            let Some((line_number, line)) = self.lines.next_line()? else {
                return Ok(None);
            };
            if is_blank(line) {
                continue;
            }
            let parsed: Result<Value, String> = serde_json::from_slice(line)
                .map_err(|error| format!("not valid JSON ({error}): {}", quote(line)));
            let source = self.lines.source();
            let value = parsed.map_err(|message| {
                FormatError::malformed(source, Location::Line(line_number), None, message)
            })?;
            return record_from_value(&value, "")
                .map(Some)
                .map_err(|(field, message)| {
                    FormatError::malformed(
                        source,
                        Location::Line(line_number),
                        Some(field),
                        message,
                    )
                });
        }
    }
}

impl<R: Read> Iterator for JsonLinesReader<R> {
    type Item = Result<Record, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let read = self.read_record();
        crate::text::fuse(read, &mut self.done)
    }
}

/// Reads a whole `application/json` request (see the [module docs](self) for the shapes) into records.
/// The document is held in memory: JSON has no record framing to stream by.
pub fn read_json_request<R: Read>(input: R, source: &str) -> Result<Vec<Record>, FormatError> {
    let document: Value = serde_json::from_reader(BufReader::new(input)).map_err(|error| {
        match error.io_error_kind() {
            Some(kind) => FormatError::Io {
                source_name: source.to_string(),
                location: Location::Whole,
                error: std::io::Error::new(kind, error),
            },
            None => FormatError::malformed(
                source,
                Location::Whole,
                None,
                format!("not valid JSON: {error}"),
            ),
        }
    })?;
    records_from_request(&document).map_err(|(field, message)| {
        FormatError::malformed(source, Location::Whole, Some(field), message)
    })
}

fn records_from_request(document: &Value) -> Result<Vec<Record>, Problem> {
    match document {
        Value::Object(object) => match object.get("instances") {
            Some(Value::Array(instances)) => instances
                .iter()
                .enumerate()
                .map(|(i, instance)| record_from_value(instance, &format!("instances[{i}]")))
                .collect(),
            Some(other) => Err((
                "instances".to_string(),
                format!("expected an array of instances, found {}", describe(other)),
            )),
            None => Ok(vec![record_from_value(document, "")?]),
        },
        Value::Array(items)
            if items.iter().all(|v| v.is_number() || v.is_null()) && !items.is_empty() =>
        {
            Ok(vec![record_from_value(document, "")?])
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| record_from_value(item, &format!("[{i}]")))
            .collect(),
        other => Err((
            "document".to_string(),
            format!(
                "expected {{\"instances\": [...]}}, an array, or an instance object; found {}",
                describe(other)
            ),
        )),
    }
}

/// `prefix.name`, or `name` at the top level.
fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A JSON value as short text for an error message.
fn describe(value: &Value) -> String {
    let text = value.to_string();
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    const LIMIT: usize = 64;
    if text.chars().count() > LIMIT {
        let short: String = text.chars().take(LIMIT).collect();
        format!("{kind} {short}…")
    } else {
        format!("{kind} {text}")
    }
}

/// Converts one instance (see the [module docs](self)) at JSON path `path`.
fn record_from_value(value: &Value, path: &str) -> Result<Record, Problem> {
    let object = match value {
        Value::Array(_) => {
            return Ok(Record {
                features: features_from(value, path)?,
                label: None,
                weight: None,
            })
        }
        Value::Object(object) => object,
        other => {
            return Err((
                if path.is_empty() { "record".to_string() } else { path.to_string() },
                format!(
                    "expected an object with \"features\" or \"data\", or an array of numbers; found {}",
                    describe(other)
                ),
            ))
        }
    };
    let features = if let Some(features) = object.get("features") {
        features_from(features, &join(path, "features"))?
    } else if let Some(data) = object.get("data") {
        let data_path = join(path, "data");
        match data.as_object().and_then(|d| d.get("features")) {
            Some(features) => features_from(features, &join(&data_path, "features"))?,
            None => {
                return Err((
                    data_path,
                    format!(
                        "expected {{\"features\": {{\"values\": [...]}}}}, found {}",
                        describe(data)
                    ),
                ))
            }
        }
    } else {
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        return Err((
            if path.is_empty() {
                "record".to_string()
            } else {
                path.to_string()
            },
            format!("expected a \"features\" or \"data\" key; found keys {keys:?}"),
        ));
    };
    Ok(Record {
        features,
        label: optional_number(object, "label", path)?,
        weight: optional_number(object, "weight", path)?,
    })
}

fn optional_number(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<f32>, Problem> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => number(value, || join(path, key)).map(Some),
    }
}

/// A number as `f32`; `null` is NaN.
fn number(value: &Value, field: impl FnOnce() -> String) -> Result<f32, Problem> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .map(|v| v as f32)
            .ok_or_else(|| (field(), format!("{n} is not representable as a number"))),
        Value::Null => Ok(f32::NAN),
        other => Err((
            field(),
            format!("expected a number, found {}", describe(other)),
        )),
    }
}

fn numbers(value: &Value, path: &str) -> Result<Vec<f32>, Problem> {
    let Value::Array(items) = value else {
        return Err((
            path.to_string(),
            format!("expected an array of numbers, found {}", describe(value)),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| number(item, || format!("{path}[{i}]")))
        .collect()
}

fn whole_numbers(value: &Value, path: &str) -> Result<Vec<u64>, Problem> {
    let Value::Array(items) = value else {
        return Err((
            path.to_string(),
            format!("expected an array of integers, found {}", describe(value)),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_u64().ok_or_else(|| {
                (
                    format!("{path}[{i}]"),
                    format!("expected a non-negative integer, found {}", describe(item)),
                )
            })
        })
        .collect()
}

/// Features from an array of numbers or a `{"values", "keys", "shape"}` tensor object.
fn features_from(value: &Value, path: &str) -> Result<Features, Problem> {
    let object = match value {
        Value::Array(_) => return Ok(Features::Dense(numbers(value, path)?)),
        Value::Object(object) => object,
        other => {
            return Err((
                path.to_string(),
                format!(
                    "expected an array of numbers or {{\"values\": [...]}}, found {}",
                    describe(other)
                ),
            ))
        }
    };
    let values_path = join(path, "values");
    let values = match object.get("values") {
        Some(values) => numbers(values, &values_path)?,
        None => {
            return Err((
                values_path,
                "missing; expected an array of numbers".to_string(),
            ))
        }
    };
    let shape_path = join(path, "shape");
    let shape = object
        .get("shape")
        .map(|shape| whole_numbers(shape, &shape_path))
        .transpose()?;
    let size = match &shape {
        Some(shape) => Some(
            shape
                .iter()
                .try_fold(1u64, |size, &d| size.checked_mul(d))
                .ok_or_else(|| (shape_path.clone(), format!("shape {shape:?} overflows")))?,
        ),
        None => None,
    };
    let Some(keys) = object.get("keys") else {
        if let Some(size) = size {
            if size != values.len() as u64 {
                return Err((
                    shape_path,
                    format!(
                        "{} values but shape holds {size}; sparse data needs \"keys\"",
                        values.len()
                    ),
                ));
            }
        }
        return Ok(Features::Dense(values));
    };
    let keys_path = join(path, "keys");
    let keys = whole_numbers(keys, &keys_path)?;
    if keys.len() != values.len() {
        return Err((
            keys_path,
            format!(
                "{} keys but {} values; expected one key per value",
                keys.len(),
                values.len()
            ),
        ));
    }
    let limit = size.unwrap_or(u64::from(u32::MAX) + 1);
    let mut indices = Vec::with_capacity(keys.len());
    for (i, &key) in keys.iter().enumerate() {
        let field = || format!("{keys_path}[{i}]");
        if key >= limit {
            let message = match size {
                Some(size) => format!("index {key} is out of range for shape {size}"),
                None => format!("index {key} is too large; expected at most {}", u32::MAX),
            };
            return Err((field(), message));
        }
        if let Some(&previous) = indices.last() {
            if key <= u64::from(previous) {
                return Err((
                    field(),
                    format!("index {key} after {previous}; keys must be strictly increasing"),
                ));
            }
        }
        indices.push(key as u32);
    }
    let dim = size
        .map(|size| {
            usize::try_from(size)
                .map_err(|_| (shape_path.clone(), format!("shape {size} is too large")))
        })
        .transpose()?;
    Ok(Features::Sparse {
        indices,
        values,
        dim,
    })
}

#[derive(Serialize)]
struct DenseLine<'a> {
    features: &'a [f32],
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<f32>,
}

#[derive(Serialize)]
struct SparseLine<'a> {
    data: SparseData<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<f32>,
}

#[derive(Serialize)]
struct SparseData<'a> {
    features: SparseTensor<'a>,
}

#[derive(Serialize)]
struct SparseTensor<'a> {
    keys: &'a [u32],
    shape: [usize; 1],
    values: &'a [f32],
}

/// Writes JSON lines: per-record response objects ([`write_value`](Self::write_value)) or records in the
/// [`JsonLinesReader`] shape ([`write_record`](Self::write_record)).
pub struct JsonLinesWriter<W: Write> {
    out: BufWriter<W>,
    lines: u64,
}

impl<W: Write> JsonLinesWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> Self {
        JsonLinesWriter {
            out: BufWriter::new(out),
            lines: 0,
        }
    }

    /// Writes `value` on its own line.
    pub fn write_value(&mut self, value: &Value) -> Result<(), FormatError> {
        self.write_line(value)
    }

    /// Writes a record: `{"features": [...]}` when dense, `{"data": {"features": {"keys", "shape", "values"}}}` when
    /// sparse, with `"label"` and `"weight"` when present. JSON has no NaN or infinity: such values are written as
    /// `null`, which reads back as NaN (features) or absent (label, weight).
    pub fn write_record(&mut self, record: &Record) -> Result<(), FormatError> {
        match &record.features {
            Features::Dense(values) => self.write_line(&DenseLine {
                features: values,
                label: record.label,
                weight: record.weight,
            }),
            Features::Sparse {
                indices, values, ..
            } => self.write_line(&SparseLine {
                data: SparseData {
                    features: SparseTensor {
                        keys: indices,
                        shape: [record.features.dim()],
                        values,
                    },
                },
                label: record.label,
                weight: record.weight,
            }),
        }
    }

    fn write_line(&mut self, item: &impl Serialize) -> Result<(), FormatError> {
        self.lines += 1;
        let location = Location::Line(self.lines);
        serde_json::to_writer(&mut self.out, item)
            .map_err(|e| FormatError::write_failed(location, e))?;
        self.out
            .write_all(b"\n")
            .map_err(|e| FormatError::write_failed(location, e))
    }

    /// Flushes and returns the destination.
    pub fn into_inner(self) -> Result<W, FormatError> {
        let location = Location::Line(self.lines);
        self.out
            .into_inner()
            .map_err(|error| FormatError::write_failed(location, error.into_error()))
    }
}

/// Writes `values` as JSON lines (one per line) into `out` and flushes it.
pub fn write_json_lines<W: Write>(
    out: W,
    values: impl IntoIterator<Item = Value>,
) -> Result<(), FormatError> {
    let mut writer = JsonLinesWriter::new(out);
    for value in values {
        writer.write_value(&value)?;
    }
    writer.into_inner().map(drop)
}

/// Writes a SageMaker JSON response, `{"<key>": [value, value, …]}`, one value at a time. The key is
/// `predictions` for most algorithms; PCA uses `projections`, RCF `scores`.
pub struct JsonResponseWriter<W: Write> {
    out: BufWriter<W>,
    key: String,
    values: u64,
}

impl<W: Write> JsonResponseWriter<W> {
    /// A response under the top-level `key`.
    pub fn new(out: W, key: &str) -> Self {
        JsonResponseWriter {
            out: BufWriter::new(out),
            key: key.to_string(),
            values: 0,
        }
    }

    fn location(&self) -> Location {
        Location::Record {
            index: self.values,
            byte_offset: 0,
        }
    }

    fn open(&mut self) -> std::io::Result<()> {
        self.out.write_all(b"{")?;
        serde_json::to_writer(&mut self.out, &self.key)?;
        self.out.write_all(b":[")
    }

    /// Appends one per-record value to the array.
    pub fn write_value(&mut self, value: &Value) -> Result<(), FormatError> {
        self.values += 1;
        let location = self.location();
        let result = if self.values == 1 {
            self.open()
        } else {
            self.out.write_all(b",")
        };
        result.map_err(|e| FormatError::write_failed(location, e))?;
        serde_json::to_writer(&mut self.out, value)
            .map_err(|e| FormatError::write_failed(location, e))
    }

    /// Closes the document, flushes and returns the destination.
    pub fn finish(mut self) -> Result<W, FormatError> {
        let location = self.location();
        let result = if self.values == 0 {
            self.open()
        } else {
            Ok(())
        };
        result
            .and_then(|()| self.out.write_all(b"]}"))
            .map_err(|e| FormatError::write_failed(location, e))?;
        self.out
            .into_inner()
            .map_err(|error| FormatError::write_failed(location, error.into_error()))
    }
}

/// Writes `{"<key>": [values…]}` into `out` and flushes it.
pub fn write_json_response<W: Write>(
    out: W,
    key: &str,
    values: impl IntoIterator<Item = Value>,
) -> Result<(), FormatError> {
    let mut writer = JsonResponseWriter::new(out, key);
    for value in values {
        writer.write_value(&value)?;
    }
    writer.finish().map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(text: &str) -> Vec<Result<Record, FormatError>> {
        JsonLinesReader::new(text.as_bytes(), "in.jsonl").collect()
    }

    fn lines_ok(text: &str) -> Vec<Record> {
        lines(text).into_iter().collect::<Result<_, _>>().unwrap()
    }

    fn lines_error(text: &str) -> String {
        lines(text)
            .last()
            .unwrap()
            .as_ref()
            .expect_err("ends in an error")
            .to_string()
    }

    fn request(text: &str) -> Result<Vec<Record>, FormatError> {
        read_json_request(text.as_bytes(), "request")
    }

    fn sparse(indices: Vec<u32>, values: Vec<f32>, dim: Option<usize>) -> Features {
        Features::Sparse {
            indices,
            values,
            dim,
        }
    }

    #[test]
    fn reads_every_instance_shape() {
        let text = concat!(
            "{\"features\": [1.5, 16]}\n",
            "\n",
            "{\"data\": {\"features\": {\"values\": [2, null]}}, \"label\": 1, \"configuration\": {}}\r\n",
            "{\"data\": {\"features\": {\"keys\": [26, 182], \"shape\": [2000], \"values\": [1, 4]}}}\n",
            "[3, 4]\n",
            "{\"features\": [1], \"label\": 0, \"weight\": 2.5}\n",
        );
        let records = lines_ok(text);
        assert_eq!(records.len(), 5);
        assert_eq!(records[0], Record::dense(None, vec![1.5, 16.0]));
        assert_eq!(records[1].label, Some(1.0));
        let Features::Dense(values) = &records[1].features else {
            panic!("dense")
        };
        assert_eq!(values[0], 2.0);
        assert!(values[1].is_nan());
        assert_eq!(
            records[2].features,
            sparse(vec![26, 182], vec![1.0, 4.0], Some(2000))
        );
        assert_eq!(records[3], Record::dense(None, vec![3.0, 4.0]));
        assert_eq!(records[4].weight, Some(2.5));
    }

    #[test]
    fn line_errors_name_line_and_path() {
        let message = lines_error("{\"features\": [1]}\n{\"features\": [1, \"x\"]}\n");
        assert!(
            message.contains("in.jsonl: line 2, field features[1]"),
            "{message}"
        );
        assert!(message.contains("\"x\""), "{message}");
        let message = lines_error("{\"features\": [1]\n");
        assert!(message.contains("line 1"), "{message}");
        assert!(message.contains("not valid JSON"), "{message}");
        let message = lines_error("{\"feature\": [1]}\n");
        assert!(message.contains("field record"), "{message}");
        assert!(message.contains("\"feature\""), "{message}");
        let message = lines_error(
            "{\"data\": {\"features\": {\"keys\": [3, 1], \"shape\": [5], \"values\": [1, 2]}}}\n",
        );
        assert!(message.contains("field data.features.keys[1]"), "{message}");
        assert!(message.contains("strictly increasing"), "{message}");
        let message = lines_error(
            "{\"data\": {\"features\": {\"keys\": [1, 5], \"shape\": [5], \"values\": [1, 2]}}}\n",
        );
        assert!(message.contains("field data.features.keys[1]"), "{message}");
        assert!(message.contains("out of range"), "{message}");
        let message =
            lines_error("{\"data\": {\"features\": {\"keys\": [1], \"values\": [1, 2]}}}\n");
        assert!(message.contains("field data.features.keys"), "{message}");
        let message = lines_error("{\"data\": {\"features\": {\"keys\": [1]}}}\n");
        assert!(message.contains("field data.features.values"), "{message}");
        let message = lines_error("{\"features\": [1], \"label\": \"cat\"}\n");
        assert!(message.contains("field label"), "{message}");
    }

    #[test]
    fn requests_take_instances_and_plain_arrays() {
        let records = request(
            r#"{"instances": [{"features": [1, 2]}, {"data": {"features": {"values": [3, 4]}}}]}"#,
        )
        .unwrap();
        assert_eq!(
            records,
            vec![
                Record::dense(None, vec![1.0, 2.0]),
                Record::dense(None, vec![3.0, 4.0])
            ]
        );
        let records = request("[[1, 2], [3, 4]]").unwrap();
        assert_eq!(
            records,
            vec![
                Record::dense(None, vec![1.0, 2.0]),
                Record::dense(None, vec![3.0, 4.0])
            ]
        );
        assert_eq!(
            request("[1, 2]").unwrap(),
            vec![Record::dense(None, vec![1.0, 2.0])]
        );
        assert_eq!(
            request(r#"{"features": [5]}"#).unwrap(),
            vec![Record::dense(None, vec![5.0])]
        );
        assert_eq!(request(r#"{"instances": []}"#).unwrap(), vec![]);
        let records = request(
            r#"{"instances": [{"data": {"features": {"keys": [1, 3], "shape": [4], "values": [1, 1]}}}]}"#,
        )
        .unwrap();
        assert_eq!(
            records[0].features,
            sparse(vec![1, 3], vec![1.0, 1.0], Some(4))
        );
    }

    #[test]
    fn request_errors_name_the_path() {
        let message = request(r#"{"instances": [{"features": [1]}, {"features": [1, true]}]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("request: input, field instances[1].features[1]"),
            "{message}"
        );
        let message = request(r#"{"instances": 3}"#).unwrap_err().to_string();
        assert!(message.contains("field instances"), "{message}");
        let message = request("{\"instances\": [").unwrap_err().to_string();
        assert!(message.contains("not valid JSON"), "{message}");
        let message = request("\"text\"").unwrap_err().to_string();
        assert!(message.contains("field document"), "{message}");
    }

    #[test]
    fn response_writers() {
        let mut out = Vec::new();
        write_json_response(
            &mut out,
            "predictions",
            [json!({"score": 0.5}), json!({"score": 1})],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"predictions":[{"score":0.5},{"score":1}]}"#
        );
        let mut out = Vec::new();
        write_json_response(&mut out, "projections", []).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"projections":[]}"#);
        let mut out = Vec::new();
        write_json_lines(&mut out, [json!({"score": 0.5}), json!({"score": 2})]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"score\":0.5}\n{\"score\":2}\n"
        );
    }

    #[test]
    fn record_writer_round_trips() {
        let records = vec![
            Record {
                features: Features::Dense(vec![0.1, -2.0]),
                label: Some(1.0),
                weight: Some(0.5),
            },
            Record {
                features: sparse(vec![3], vec![7.0], Some(10)),
                label: None,
                weight: None,
            },
        ];
        let mut writer = JsonLinesWriter::new(Vec::new());
        for record in &records {
            writer.write_record(record).unwrap();
        }
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        assert_eq!(
            text,
            "{\"features\":[0.1,-2.0],\"label\":1.0,\"weight\":0.5}\n{\"data\":{\"features\":{\"keys\":[3],\"shape\":[10],\"values\":[7.0]}}}\n"
        );
        assert_eq!(lines_ok(&text), records);
    }
}
