//! Requests whose records are not feature rows (manifest version 2): text, encoded images and token ids, read from
//! their content types record by record and handed to the package's preprocessing [`crate::steps`].
//!
//! | input kind | content types | a record is |
//! |---|---|---|
//! | `string` | `text/plain` | one line (a trailing line break ends the last record, it does not start one) |
//! | | `application/json` | an element of `{"instances": […]}` (or of a top-level list): a string or `{"source": "…"}` |
//! | | `application/jsonlines` | one line: a JSON string or `{"source": "…"}` |
//! | `image_bytes` | `image/png`, `image/jpeg`, `application/x-image` | the whole body |
//! | `integer_sequence` | `application/json` | an element of `{"instances": […]}`: a list of ids or `{"tokens": […]}` |
//! | | `application/jsonlines` | one line: a list of ids or `{"tokens": […]}` |

use std::io::{BufRead, BufReader, Read};

use serde_json::Value;

use crate::error::RuntimeError;
use crate::manifest::InputKind;
use crate::steps::RawInput;

/// The name request errors give the body.
const REQUEST: &str = "request";

/// The content types a request input of `kind` is read from.
pub fn content_types(kind: InputKind) -> &'static [&'static str] {
    match kind {
        InputKind::String => &["text/plain", "application/json", "application/jsonlines"],
        InputKind::ImageBytes => &["image/png", "image/jpeg", "application/x-image"],
        InputKind::IntegerSequence => &["application/json", "application/jsonlines"],
        InputKind::DenseFloat | InputKind::SparseFloat => &[],
    }
}

/// How a body of one content type splits into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    Lines,
    JsonDocument,
    JsonLines,
    WholeBody,
}

/// The format a `content_type` header (parameters ignored) names for an input of `kind`, or the 415 error listing
/// what the input takes.
pub fn format_of(kind: InputKind, content_type: &str) -> Result<RawFormat, RuntimeError> {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let format = match (kind, mime.as_str()) {
        (InputKind::String, "text/plain") => Some(RawFormat::Lines),
        (InputKind::String | InputKind::IntegerSequence, "application/json") => {
            Some(RawFormat::JsonDocument)
        }
        (
            InputKind::String | InputKind::IntegerSequence,
            "application/jsonlines" | "application/json-lines" | "application/x-jsonlines",
        ) => Some(RawFormat::JsonLines),
        (InputKind::ImageBytes, "image/png" | "image/jpeg" | "application/x-image") => {
            Some(RawFormat::WholeBody)
        }
        _ => None,
    };
    format.ok_or_else(|| RuntimeError::UnsupportedContentType {
        header: "Content-Type",
        content_type: content_type.to_string(),
        expected: content_types(kind).join(", "),
    })
}

fn record_error(record: u64, field: &str, message: String) -> RuntimeError {
    RuntimeError::Record {
        source_name: REQUEST.to_string(),
        record,
        field: field.to_string(),
        message,
    }
}

/// Hands the records of `reader` (an input of `kind` named `input`, in `format`) to `on_record` one at a time with
/// their 1-based numbers, stopping at the first error.
pub fn for_each_record<R: Read, E: From<RuntimeError>>(
    kind: InputKind,
    input: &str,
    format: RawFormat,
    reader: R,
    mut on_record: impl FnMut(u64, RawInput) -> Result<(), E>,
) -> Result<(), E> {
    let read_failed = |error: std::io::Error| {
        RuntimeError::from(tern_formats::FormatError::Io {
            source_name: REQUEST.to_string(),
            location: tern_formats::Location::Whole,
            error,
        })
    };
    match format {
        RawFormat::WholeBody => {
            let mut bytes = Vec::new();
            BufReader::new(reader)
                .read_to_end(&mut bytes)
                .map_err(read_failed)?;
            if bytes.is_empty() {
                return Err(
                    record_error(1, input, "the body is empty: expected an image".into()).into(),
                );
            }
            on_record(1, RawInput::Bytes(bytes))
        }
        RawFormat::Lines | RawFormat::JsonLines => {
            let mut lines = BufReader::new(reader);
            let mut line = String::new();
            let mut number = 0;
            loop {
                line.clear();
                let read = lines.read_line(&mut line).map_err(|error| {
                    record_error(number + 1, input, format!("not UTF-8 text: {error}"))
                })?;
                if read == 0 {
                    return Ok(());
                }
                number += 1;
                let record = if format == RawFormat::Lines {
                    RawInput::Text(line.trim_end_matches(['\n', '\r']).to_string())
                } else if line.trim().is_empty() {
                    continue;
                } else {
                    let value: Value = serde_json::from_str(&line).map_err(|error| {
                        record_error(number, input, format!("not a JSON value: {error}"))
                    })?;
                    record_value(kind, input, number, &value)?
                };
                on_record(number, record)?;
            }
        }
        RawFormat::JsonDocument => {
            let document: Value = serde_json::from_reader(BufReader::new(reader))
                .map_err(|error| record_error(1, input, format!("not a JSON document: {error}")))?;
            let instances = match &document {
                Value::Object(map) => map.get("instances").and_then(Value::as_array),
                Value::Array(list) => Some(list),
                _ => None,
            }
            .ok_or_else(|| {
                record_error(
                    1,
                    "instances",
                    "expected {\"instances\": [...]} or a list of records".to_string(),
                )
            })?;
            for (index, value) in instances.iter().enumerate() {
                let number = index as u64 + 1;
                on_record(number, record_value(kind, input, number, value)?)?;
            }
            Ok(())
        }
    }
}

/// One JSON record of an input of `kind`: a string or `{"source": …}` for text; a list of ids or `{"tokens": …}`
/// for sequences.
fn record_value(
    kind: InputKind,
    input: &str,
    record: u64,
    value: &Value,
) -> Result<RawInput, RuntimeError> {
    match kind {
        InputKind::String => {
            let text = match value {
                Value::String(text) => Some(text.as_str()),
                Value::Object(map) => map.get("source").and_then(Value::as_str),
                _ => None,
            };
            text.map(|t| RawInput::Text(t.to_string())).ok_or_else(|| {
                record_error(
                    record,
                    input,
                    format!(
                        "expected a string or {{\"source\": \"…\"}}, found {}",
                        kind_of(value)
                    ),
                )
            })
        }
        InputKind::IntegerSequence => {
            let list = match value {
                Value::Array(list) => Some(list),
                Value::Object(map) => map.get("tokens").and_then(Value::as_array),
                _ => None,
            }
            .ok_or_else(|| {
                record_error(
                    record,
                    input,
                    format!(
                        "expected a list of ids or {{\"tokens\": [...]}}, found {}",
                        kind_of(value)
                    ),
                )
            })?;
            list.iter()
                .enumerate()
                .map(|(position, id)| {
                    id.as_i64().ok_or_else(|| {
                        record_error(
                            record,
                            &format!("{input}[{position}]"),
                            format!("expected an integer id, found {id}"),
                        )
                    })
                })
                .collect::<Result<Vec<i64>, RuntimeError>>()
                .map(RawInput::Ids)
        }
        InputKind::ImageBytes | InputKind::DenseFloat | InputKind::SparseFloat => {
            Err(record_error(
                record,
                input,
                format!("{kind:?} inputs are not read from JSON"),
            ))
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
