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
//!
//! Instances are decoded straight into [`Record`]s by serde visitors, without an intermediate JSON tree: a record
//! takes at most 4 bytes per number it holds (its text takes at least 2), and [`stream_json_request`] hands records
//! over one at a time, so decoding a request needs memory for one record beside the reader's buffer.

mod decode;

use std::io::{BufReader, BufWriter, Read, Write};

use serde::de::DeserializeSeed;
use serde::Serialize;
use serde_json::Value;

use crate::text::{is_blank, quote, LineReader};
use crate::{Features, FormatError, Location, Record};
use decode::{InstanceSeed, Path, Problems, RequestSeed};

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
            let problems = Problems::default();
            let mut deserializer = serde_json::Deserializer::from_slice(line);
            let instance = InstanceSeed {
                path: Path::Root,
                problems: &problems,
            };
            let parsed = instance
                .deserialize(&mut deserializer)
                .and_then(|record| deserializer.end().map(|()| record))
                .map_err(|error| match problems.take() {
                    Some((field, message)) => (Some(field), message),
                    None => (None, format!("not valid JSON ({error}): {}", quote(line))),
                });
            let source = self.lines.source();
            return parsed.map(Some).map_err(|(field, message)| {
                FormatError::malformed(source, Location::Line(line_number), field, message)
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

/// Reads an `application/json` request (see the [module docs](self) for the shapes) and hands its records to
/// `on_record` one at a time, in order, as soon as each is decoded, so memory holds one record beside the reader's
/// buffer whatever the document's size.
///
/// Stops at the first error: a malformed document or record (a [`FormatError`] naming the field, converted into
/// `E`), or an error `on_record` returns. Records before the fault have been handed over by then; a fault is only
/// found when the parse reaches it.
pub fn stream_json_request<R: Read, E: From<FormatError>>(
    input: R,
    source: &str,
    mut on_record: impl FnMut(Record) -> Result<(), E>,
) -> Result<(), E> {
    let problems = Problems::default();
    let mut stopped = None;
    let mut deserializer = serde_json::Deserializer::from_reader(BufReader::new(input));
    let request = RequestSeed {
        problems: &problems,
        on_record: &mut on_record,
        stopped: &mut stopped,
    };
    let parsed = request
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    let Err(error) = parsed else {
        return Ok(());
    };
    if let Some(stopped) = stopped {
        return Err(stopped);
    }
    Err(E::from(match (problems.take(), error.io_error_kind()) {
        (Some((field, message)), _) => {
            FormatError::malformed(source, Location::Whole, Some(field), message)
        }
        (None, Some(kind)) => FormatError::Io {
            source_name: source.to_string(),
            location: Location::Whole,
            error: std::io::Error::new(kind, error),
        },
        (None, None) => FormatError::malformed(
            source,
            Location::Whole,
            None,
            format!("not valid JSON: {error}"),
        ),
    }))
}

/// Reads a whole `application/json` request (see the [module docs](self) for the shapes) into records: what
/// [`stream_json_request`] hands over, collected.
pub fn read_json_request<R: Read>(input: R, source: &str) -> Result<Vec<Record>, FormatError> {
    let mut records = Vec::new();
    stream_json_request(input, source, |record| {
        records.push(record);
        Ok::<(), FormatError>(())
    })?;
    Ok(records)
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
    fn numbers_beyond_float32_are_refused_with_their_path() {
        for (body, field) in [
            (
                r#"{"instances": [{"features": [1, 1e308]}]}"#,
                "instances[0].features[1]",
            ),
            (r#"[[1e308, 1]]"#, "[0]"),
            (r#"[1, -4e38]"#, "[0]"),
        ] {
            let message = request(body).unwrap_err().to_string();
            assert!(
                message.contains(field) && message.contains("float32"),
                "{body}: {message}"
            );
        }
        let message = lines_error("{\"features\": [1e39]}\n");
        assert!(message.contains("float32"), "{message}");
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
    fn streaming_hands_records_over_in_order_and_stops_at_the_consumers_error() {
        let mut seen = Vec::new();
        let error = stream_json_request(&b"[[1], [2], [3]]"[..], "request", |record| {
            seen.push(record.features.clone());
            if seen.len() == 2 {
                return Err(FormatError::malformed(
                    "consumer",
                    Location::Whole,
                    None,
                    "enough",
                ));
            }
            Ok(())
        })
        .unwrap_err();
        assert!(error.to_string().starts_with("consumer"), "{error}");
        assert_eq!(
            seen,
            [Features::Dense(vec![1.0]), Features::Dense(vec![2.0])]
        );
        // A fault is found when the parse reaches it, after the records before it.
        let mut seen = 0;
        let error = stream_json_request(&b"[[1], [2], [3, \"x\"]]"[..], "request", |_| {
            seen += 1;
            Ok::<(), FormatError>(())
        })
        .unwrap_err();
        assert_eq!(seen, 2);
        assert!(error.to_string().contains("field [2][1]"), "{error}");
    }

    #[test]
    fn request_errors_quote_a_bounded_excerpt_of_what_was_found() {
        let message = request(r#"{"instances": [{"features": [1, [2, {"a": "b"}]]}]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("field instances[0].features[1]: expected a number, found an array [2,{\"a\":\"b\"}]"),
            "{message}"
        );
        let huge = format!("{{\"features\": [[{}0]]}}", "0,".repeat(100_000));
        let message = request(&huge).unwrap_err().to_string();
        assert!(message.contains("field features[0]"), "{message}");
        assert!(message.ends_with("…"), "{message}");
        assert!(message.len() < 200, "{message}");
        let long_string = format!(
            "{{\"label\": \"{}\", \"features\": [1]}}",
            "y".repeat(10_000)
        );
        let message = request(&long_string).unwrap_err().to_string();
        assert!(
            message.contains("field label: expected a number, found a string \"yyy"),
            "{message}"
        );
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn request_shapes_keep_their_faults_where_a_whole_document_reading_put_them() {
        // A plain array starting with a number is one record; anything else in it makes it a list of instances,
        // whose first element is then the fault.
        let message = request("[1, [2]]").unwrap_err().to_string();
        assert!(
            message.contains("field [0]: expected an object"),
            "{message}"
        );
        assert!(message.contains("found a number 1"), "{message}");
        let message = request(r#"[{"features": [1]}, 2]"#)
            .unwrap_err()
            .to_string();
        assert!(message.contains("field [1]"), "{message}");
        assert!(message.contains("found a number 2"), "{message}");
        assert_eq!(
            request("[null, 2]").unwrap()[0].features.dim(),
            2,
            "null reads as a missing value"
        );
        let message = request(r#"{"data": {"values": [1]}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("field data: expected {\"features\""),
            "{message}"
        );
        let message = request(r#"{"instances": [], "instances": []}"#)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("field instances: appears twice"),
            "{message}"
        );
        let message = request(r#"{"configuration": {}}"#).unwrap_err().to_string();
        assert!(message.contains("field record"), "{message}");
        assert!(message.contains("[\"configuration\"]"), "{message}");
        let message = request(
            r#"{"instances": [{"data": {"features": {"keys": [4294967296], "values": [1]}}}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            message.contains(
                "field instances[0].data.features.keys[0]: index 4294967296 is too large"
            ),
            "{message}"
        );
        let message = request(r#"{"features": [1], "weight": [2]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("field weight: expected a number, found an array [2]"),
            "{message}"
        );
        // Other keys beside "instances" are ignored, as SageMaker's containers ignore them.
        assert_eq!(
            request(r#"{"configuration": {"k": 3}, "instances": [[1]], "extra": [[[]]]}"#).unwrap(),
            vec![Record::dense(None, vec![1.0])]
        );
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
