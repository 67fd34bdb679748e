//! SageMaker's inference responses: one encoder that both `tern predict MODEL.tar.gz` (the trainer's predictors) and
//! runtime-core (`tern predict PACKAGE/`, the endpoint, batch transform, Lambda, the browser) write through, so a
//! model and its compiled package answer in the same shape and field order.
//!
//! A predictor turns each record's outputs into a [`Prediction`] in its algorithm's SageMaker shape;
//! [`ResponseEncoder`] writes a stream of them in one [`ResponseType`]:
//!
//! | [`Prediction`] | `application/json` record | `text/csv` line | RecordIO `label` entries |
//! |---|---|---|---|
//! | `Scored` | `{"score":…,"predicted_label":…}` (no label when there is none; a list of scores for multiclass) | the score(s), then the label | `score`, `predicted_label` |
//! | `Cluster` | `{"closest_cluster":…,"distance_to_cluster":…}` | `closest_cluster,distance_to_cluster` | both |
//! | `Projection` | `{"projection":[…]}` | the values | `projection` |
//! | `Neighbours` | `{"predicted_label":…}` (+ `distances`, `labels` when verbose) | the label (then the distances, then the labels) | `predicted_label` (+ `distances`, `labels`) |
//!
//! `application/json` wraps the records in `{"<key>":[…]}` (`predictions`; PCA's `projections`; RCF's `scores`);
//! `application/jsonlines` writes one record object per line; every RecordIO record is a `Record` whose features are
//! empty and whose `label` map holds Float32 tensors. SageMaker documents no CSV response for several algorithms;
//! tern's CSV is the record's values in the order of its JSON fields, one line per record.

use std::io::{BufWriter, Write};

use serde_json::{json, Value};

use crate::error::{FormatError, Location};
use crate::json::JsonResponseWriter;
use crate::recordio::{proto, RecordIoWriter};

/// The response content types tern writes.
pub const RESPONSE_TYPES: &str =
    "application/json, application/jsonlines, text/csv, application/x-recordio-protobuf";

/// A response content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    Json,
    JsonLines,
    Csv,
    RecordIo,
}

impl ResponseType {
    /// The MIME type the response is labelled with.
    pub fn mime(self) -> &'static str {
        match self {
            ResponseType::Json => "application/json",
            ResponseType::JsonLines => "application/jsonlines",
            ResponseType::Csv => "text/csv",
            ResponseType::RecordIo => "application/x-recordio-protobuf",
        }
    }

    /// The response type a bare MIME type (no parameters) names, if tern writes it; SageMaker's aliases
    /// (`application/json-lines`, `text/x-csv`, …) included.
    pub fn from_mime(mime: &str) -> Option<ResponseType> {
        match mime.trim().to_ascii_lowercase().as_str() {
            "application/json" => Some(ResponseType::Json),
            "application/jsonlines" | "application/json-lines" | "application/x-jsonlines" => {
                Some(ResponseType::JsonLines)
            }
            "text/csv" | "text/x-csv" | "application/csv" => Some(ResponseType::Csv),
            "application/x-recordio-protobuf" => Some(ResponseType::RecordIo),
            _ => None,
        }
    }

    /// The first response type an `Accept` header names (its parameters ignored), or a
    /// [`FormatError::UnsupportedContentType`] naming the header.
    pub fn from_accept(accept: &str) -> Result<ResponseType, FormatError> {
        accept
            .split(',')
            .filter_map(|part| part.split(';').next())
            .find_map(ResponseType::from_mime)
            .ok_or_else(|| FormatError::UnsupportedContentType {
                content_type: accept.to_string(),
                expected: RESPONSE_TYPES.to_string(),
            })
    }
}

/// Whether an `Accept` header asks for SageMaker k-NN's verbose response (a `verbose=true` parameter).
pub fn is_verbose(accept: &str) -> bool {
    accept.split([',', ';']).any(|part| {
        let part = part.trim().to_ascii_lowercase();
        part.replace(' ', "") == "verbose=true"
    })
}

/// One record's score(s).
#[derive(Debug, Clone, PartialEq)]
pub enum Score {
    Value(f32),
    List(Vec<f32>),
}

/// One record's prediction, in its algorithm's SageMaker response shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// Supervised models, XGBoost and Random Cut Forest: the score(s) and, for classifiers that answer one, the
    /// predicted label.
    Scored { score: Score, label: Option<i64> },
    /// K-Means: the closest cluster and the distance to it.
    Cluster { cluster: f32, distance: f32 },
    /// PCA: the projection onto the components.
    Projection(Vec<f32>),
    /// k-NN: the predicted label value (the mean of the neighbours' for regressors) and, for a verbose `Accept`, the
    /// k neighbours' distances and labels, nearest first.
    Neighbours {
        label: f32,
        verbose: Option<(Vec<f32>, Vec<f32>)>,
    },
    /// Named fields, in order: what an algorithm without one of the shapes above answers (a text label beside its
    /// scores, say).
    Fields(Vec<(String, Field)>),
}

/// One value of a [`Prediction::Fields`] record.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Number(f32),
    Integer(i64),
    List(Vec<f32>),
    Text(String),
}

impl Field {
    fn to_json(&self) -> Value {
        match self {
            Field::Number(v) => json!(v),
            Field::Integer(v) => json!(v),
            Field::List(values) => json!(values),
            Field::Text(text) => json!(text),
        }
    }
}

/// `text` as one CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

impl Prediction {
    /// The record's JSON object, as `application/json` lists it and `application/jsonlines` writes it per line.
    pub fn to_json(&self) -> Value {
        match self {
            Prediction::Scored { score, label } => {
                let score = match score {
                    Score::Value(v) => json!(v),
                    Score::List(values) => json!(values),
                };
                match label {
                    Some(label) => json!({"score": score, "predicted_label": label}),
                    None => json!({ "score": score }),
                }
            }
            Prediction::Cluster { cluster, distance } => {
                json!({"closest_cluster": cluster, "distance_to_cluster": distance})
            }
            Prediction::Projection(values) => json!({ "projection": values }),
            Prediction::Neighbours { label, verbose } => match verbose {
                Some((distances, labels)) => {
                    json!({"predicted_label": label, "distances": distances, "labels": labels})
                }
                None => json!({ "predicted_label": label }),
            },
            Prediction::Fields(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(name, field)| (name.clone(), field.to_json()))
                    .collect(),
            ),
        }
    }

    /// The record's CSV line, without its line break.
    pub fn to_csv(&self) -> String {
        let join = |values: &[f32]| {
            values
                .iter()
                .map(f32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Prediction::Scored { score, label } => {
                let mut line = match score {
                    Score::Value(v) => v.to_string(),
                    Score::List(values) => join(values),
                };
                if let Some(label) = label {
                    line.push(',');
                    line.push_str(&label.to_string());
                }
                line
            }
            Prediction::Cluster { cluster, distance } => format!("{cluster},{distance}"),
            Prediction::Projection(values) => join(values),
            Prediction::Neighbours { label, verbose } => match verbose {
                Some((distances, labels)) => {
                    format!("{label},{},{}", join(distances), join(labels))
                }
                None => label.to_string(),
            },
            Prediction::Fields(fields) => fields
                .iter()
                .map(|(_, field)| match field {
                    Field::Number(v) => v.to_string(),
                    Field::Integer(v) => v.to_string(),
                    Field::List(values) => join(values),
                    Field::Text(text) => csv_field(text),
                })
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The record's RecordIO-protobuf response: one `label` entry per field, a Float32 tensor (a Bytes tensor for
    /// text).
    pub fn to_record(&self) -> proto::Record {
        let floats = |values: Vec<f32>| proto::Value::float32(values);
        let entries: Vec<(String, proto::Value)> = match self {
            Prediction::Scored { score, label } => {
                let scores = match score {
                    Score::Value(v) => vec![*v],
                    Score::List(values) => values.clone(),
                };
                let mut entries = vec![("score".to_string(), floats(scores))];
                if let Some(label) = label {
                    entries.push(("predicted_label".to_string(), floats(vec![*label as f32])));
                }
                entries
            }
            Prediction::Cluster { cluster, distance } => vec![
                ("closest_cluster".to_string(), floats(vec![*cluster])),
                ("distance_to_cluster".to_string(), floats(vec![*distance])),
            ],
            Prediction::Projection(values) => {
                vec![("projection".to_string(), floats(values.clone()))]
            }
            Prediction::Neighbours { label, verbose } => {
                let mut entries = vec![("predicted_label".to_string(), floats(vec![*label]))];
                if let Some((distances, labels)) = verbose {
                    entries.push(("distances".to_string(), floats(distances.clone())));
                    entries.push(("labels".to_string(), floats(labels.clone())));
                }
                entries
            }
            Prediction::Fields(fields) => fields
                .iter()
                .map(|(name, field)| {
                    let value = match field {
                        Field::Number(v) => floats(vec![*v]),
                        Field::Integer(v) => floats(vec![*v as f32]),
                        Field::List(values) => floats(values.clone()),
                        Field::Text(text) => proto::Value {
                            value: Some(proto::value::Kind::Bytes(proto::Bytes {
                                value: vec![text.as_bytes().to_vec()],
                                content_type: Some("text/plain; charset=utf-8".to_string()),
                            })),
                        },
                    };
                    (name.clone(), value)
                })
                .collect(),
        };
        proto::Record {
            label: entries.into_iter().collect(),
            ..Default::default()
        }
    }
}

/// Writes a stream of [`Prediction`]s as one response body; memory holds one record (JSON's array is written as it
/// grows).
pub enum ResponseEncoder<W: Write> {
    Json(JsonResponseWriter<W>),
    JsonLines(BufWriter<W>, u64),
    Csv(BufWriter<W>, u64),
    RecordIo(RecordIoWriter<BufWriter<W>>),
}

impl<W: Write> ResponseEncoder<W> {
    /// An encoder writing `response_type` to `out`; `json_key` is the top-level key of `application/json` responses
    /// (`predictions`, PCA's `projections`, RCF's `scores`).
    pub fn new(response_type: ResponseType, json_key: &str, out: W) -> Self {
        match response_type {
            ResponseType::Json => ResponseEncoder::Json(JsonResponseWriter::new(out, json_key)),
            ResponseType::JsonLines => ResponseEncoder::JsonLines(BufWriter::new(out), 0),
            ResponseType::Csv => ResponseEncoder::Csv(BufWriter::new(out), 0),
            ResponseType::RecordIo => {
                ResponseEncoder::RecordIo(RecordIoWriter::new(BufWriter::new(out)))
            }
        }
    }

    /// Appends one record's prediction.
    pub fn write(&mut self, prediction: &Prediction) -> Result<(), FormatError> {
        let failed = |line: u64| {
            move |error: std::io::Error| FormatError::write_failed(Location::Line(line), error)
        };
        match self {
            ResponseEncoder::Json(writer) => writer.write_value(&prediction.to_json()),
            ResponseEncoder::JsonLines(out, lines) => {
                *lines += 1;
                serde_json::to_writer(&mut *out, &prediction.to_json())
                    .map_err(|e| failed(*lines)(e.into()))?;
                out.write_all(b"\n").map_err(failed(*lines))
            }
            ResponseEncoder::Csv(out, lines) => {
                *lines += 1;
                let mut line = prediction.to_csv();
                line.push('\n');
                out.write_all(line.as_bytes()).map_err(failed(*lines))
            }
            ResponseEncoder::RecordIo(writer) => writer.write_message(&prediction.to_record()),
        }
    }

    /// Ends the response (closing JSON's array) and flushes it, returning the writer.
    pub fn finish(self) -> Result<W, FormatError> {
        let flushed = |out: BufWriter<W>, line: u64| {
            out.into_inner()
                .map_err(|e| FormatError::write_failed(Location::Line(line), e.into_error()))
        };
        match self {
            ResponseEncoder::Json(writer) => writer.finish(),
            ResponseEncoder::JsonLines(out, lines) | ResponseEncoder::Csv(out, lines) => {
                flushed(out, lines)
            }
            ResponseEncoder::RecordIo(writer) => {
                let out = writer.into_inner()?;
                flushed(out, 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(response_type: ResponseType, predictions: &[Prediction]) -> Vec<u8> {
        let mut encoder = ResponseEncoder::new(response_type, "predictions", Vec::new());
        for prediction in predictions {
            encoder.write(prediction).unwrap();
        }
        encoder.finish().unwrap()
    }

    fn binary() -> Vec<Prediction> {
        vec![
            Prediction::Scored {
                score: Score::Value(0.25),
                label: Some(0),
            },
            Prediction::Scored {
                score: Score::Value(0.75),
                label: Some(1),
            },
        ]
    }

    #[test]
    fn every_response_type_writes_the_same_records_in_its_own_shape() {
        let json = String::from_utf8(encode(ResponseType::Json, &binary())).unwrap();
        assert_eq!(
            json,
            r#"{"predictions":[{"predicted_label":0,"score":0.25},{"predicted_label":1,"score":0.75}]}"#
        );
        let lines = String::from_utf8(encode(ResponseType::JsonLines, &binary())).unwrap();
        assert_eq!(
            lines,
            "{\"predicted_label\":0,\"score\":0.25}\n{\"predicted_label\":1,\"score\":0.75}\n"
        );
        let csv = String::from_utf8(encode(ResponseType::Csv, &binary())).unwrap();
        assert_eq!(csv, "0.25,0\n0.75,1\n");
        let recordio = encode(ResponseType::RecordIo, &binary());
        let labels = recordio
            .windows(b"predicted_label".len())
            .filter(|window| window == b"predicted_label")
            .count();
        assert_eq!(labels, 2);
    }

    #[test]
    fn an_empty_response_is_still_a_document() {
        let json = String::from_utf8(encode(ResponseType::Json, &[])).unwrap();
        assert_eq!(json, r#"{"predictions":[]}"#);
        assert!(encode(ResponseType::Csv, &[]).is_empty());
    }

    #[test]
    fn csv_lines_follow_the_json_fields_order() {
        let verbose = Prediction::Neighbours {
            label: 2.0,
            verbose: Some((vec![0.5, 1.5], vec![2.0, 1.0])),
        };
        assert_eq!(verbose.to_csv(), "2,0.5,1.5,2,1");
        let cluster = Prediction::Cluster {
            cluster: 3.0,
            distance: 0.5,
        };
        assert_eq!(cluster.to_csv(), "3,0.5");
        let multiclass = Prediction::Scored {
            score: Score::List(vec![0.1, 0.9]),
            label: Some(1),
        };
        assert_eq!(multiclass.to_csv(), "0.1,0.9,1");
    }

    #[test]
    fn fields_records_keep_text_as_text() {
        let record = Prediction::Fields(vec![
            (
                "label".to_string(),
                Field::Text("spam, \"eggs\"".to_string()),
            ),
            ("score".to_string(), Field::List(vec![0.25, 0.75])),
        ]);
        assert_eq!(
            record.to_json(),
            json!({"label": "spam, \"eggs\"", "score": [0.25, 0.75]})
        );
        assert_eq!(record.to_csv(), "\"spam, \"\"eggs\"\"\",0.25,0.75");
        let proto = record.to_record();
        let Some(proto::value::Kind::Bytes(bytes)) = &proto.label["label"].value else {
            panic!("label is not a Bytes tensor: {proto:?}");
        };
        assert_eq!(bytes.value, [b"spam, \"eggs\"".to_vec()]);
    }

    #[test]
    fn accept_headers_pick_the_first_type_tern_writes() {
        assert_eq!(
            ResponseType::from_accept("application/xml, text/csv;q=0.9").unwrap(),
            ResponseType::Csv
        );
        assert_eq!(
            ResponseType::from_accept("application/json; verbose=true").unwrap(),
            ResponseType::Json
        );
        let error = ResponseType::from_accept("image/png")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("image/png") && error.contains("text/csv"),
            "{error}"
        );
        assert!(is_verbose("application/json; verbose=true"));
        assert!(!is_verbose("application/json"));
    }
}
