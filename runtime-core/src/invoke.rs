//! SageMaker `/invocations` semantics: decode a request body by its `Content-Type`, run the package, and encode the
//! response for its `Accept`, in the algorithm's SageMaker shape.
//!
//! A package whose request input is text, an encoded image or token ids (manifest version 2) reads its records as
//! [`crate::raw_request`] lists and runs its preprocessing [`crate::steps`] on each; `ResponseShape::Fields`
//! answers named fields (label text among them) in every response type. Feature packages, below:
//!
//! Requests (decoded with `tern_formats`' readers): `text/csv` rows without a label (`label_size=1` honoured when
//! given explicitly), `application/json` (`{"instances":[{"features":[…]}]}`, the `data.features.values` /
//! sparse `keys`+`shape` forms, or a plain array), `application/jsonlines`, `application/x-recordio-protobuf`
//! (dense and sparse) and `text/libsvm`. Sparse entries a record does not store are 0 for linear models and missing
//! (NaN) for XGBoost, as SageMaker's algorithms read them.
//!
//! Responses, per [`ResponseShape`], are written by [`tern_formats::response`], the encoder `tern predict MODEL.tar.gz`
//! writes through as well, so a package and the model it was compiled from answer in one shape:
//!
//! | Accept | `Supervised` (Linear Learner, …) | `Xgboost` |
//! |---|---|---|
//! | `application/json` | `{"predictions":[{"score":…,"predicted_label":…}]}` (a list of scores for multiclass, no label for regressors) | `{"predictions":[{"score":…}]}`, a list per record for multi-output objectives (`multi:softprob`) |
//! | `application/jsonlines` | one `{"score":…,"predicted_label":…}` per line | one `{"score":…}` per line |
//! | `text/csv` | one line per record: the score(s), then the predicted label for classifiers | one value per line, comma-separated class probabilities for `multi:softprob` (SageMaker XGBoost's text response) |
//! | `application/x-recordio-protobuf` | one `Record` per input, `label` = {`score`, `predicted_label`} as Float32 tensors | one `Record`, `label` = {`score`} |
//!
//! | Accept | `Clustering` (K-Means) | `Projection` (PCA) |
//! |---|---|---|
//! | `application/json` | `{"predictions":[{"closest_cluster":1.0,"distance_to_cluster":3.0}]}` | `{"projections":[{"projection":[…]}]}` |
//! | `application/jsonlines` | one `{"closest_cluster":…,"distance_to_cluster":…}` per line | one `{"projection":[…]}` per line |
//! | `text/csv` | one `closest_cluster,distance_to_cluster` line per record | the projection's values, one line per record (SageMaker documents no CSV response for PCA) |
//! | `application/x-recordio-protobuf` | `label` = {`closest_cluster`, `distance_to_cluster`} as Float32 tensors | `label` = {`projection`} |
//!
//! `AnomalyScore` (Random Cut Forest): `{"scores":[{"score":…}]}` in JSON, one `{"score":…}` per line in JSON lines,
//! one score per line in CSV (SageMaker documents no CSV response for RCF), `label` = {`score`} in RecordIO.
//!
//! `NearestNeighbors` (k-NN): `{"predictions":[{"predicted_label":2.0}]}` in JSON, one `{"predicted_label":…}` per
//! line in JSON lines, `label` = {`predicted_label`} in RecordIO, the value alone per line in CSV (SageMaker documents
//! no CSV response). An `Accept` with the parameter `verbose=true` (e.g. `application/json; verbose=true`) adds the
//! k neighbours' `distances` and `labels`, nearest first, to every record (JSON, JSON lines, RecordIO; CSV appends
//! the distances then the labels to the line).

use std::io::{Read, Write};

pub use tern_formats::response::ResponseType;
use tern_formats::response::{
    is_verbose, Field, Prediction, ResponseEncoder, Score, RESPONSE_TYPES,
};
use tern_formats::{ContentType, Features, FormatError, Record};

use crate::error::RuntimeError;
use crate::manifest::{InputKind, ResponseShape};
use crate::package::{OutputValues, Outputs, Package, BATCH_ROWS};
use crate::raw_request::{self, RawFormat};
use crate::steps::RawInput;

/// The name request errors give the body.
const REQUEST: &str = "request";

impl Package {
    /// Answers one `/invocations` request: decodes `body` as `content_type`, predicts every record, and returns the
    /// response body with its content type, chosen from `accept` (empty or `*/*`: the manifest's first `produces`
    /// entry, else JSON for supervised models and CSV for XGBoost).
    ///
    /// Errors: [`RuntimeError::UnsupportedContentType`] for a content type or accept the package does not handle;
    /// [`RuntimeError::Request`] / [`RuntimeError::Record`] naming the record and field of a malformed body.
    pub fn invoke(
        &self,
        body: &[u8],
        content_type: &str,
        accept: &str,
    ) -> Result<(Vec<u8>, String), RuntimeError> {
        let mut response = Vec::new();
        let mime = self.predict_stream(body, content_type, accept, &mut response)?;
        Ok((response, mime))
    }

    /// Streams predictions: reads records from `reader` as `content_type`, runs them [`BATCH_ROWS`] at a time and
    /// writes each batch's responses to `writer` as `accept` (see [`Package::invoke`]) before reading the next, so
    /// memory stays bounded whatever the input size (an `application/json` document too: its records are decoded
    /// one at a time). Returns the response content type. On error, the responses of earlier batches have been
    /// written.
    pub fn predict_stream<R: Read + Send, W: Write>(
        &self,
        reader: R,
        content_type: &str,
        accept: &str,
        writer: W,
    ) -> Result<String, RuntimeError> {
        let request_format = self.request_format(content_type)?;
        let response_type = self.response_type(accept)?;
        let mut encoder = ResponseEncoder::new(response_type, self.json_key(), writer);
        let dim = self.manifest().feature_dim;
        let mut batch: Vec<f32> = Vec::with_capacity(BATCH_ROWS * dim);
        let mut rows = 0usize;
        let mut record_number = 0u64;
        let verbose = is_verbose(accept);
        self.for_each_input(&request_format, reader, |input| {
            record_number += 1;
            self.append_input(input, record_number, &mut batch)?;
            rows += 1;
            if rows == BATCH_ROWS {
                self.flush_batch(&batch, rows, verbose, &mut encoder)?;
                batch.clear();
                rows = 0;
            }
            Ok::<(), RuntimeError>(())
        })?;
        if rows > 0 {
            self.flush_batch(&batch, rows, verbose, &mut encoder)?;
        }
        encoder.finish().map_err(write_failed)?;
        Ok(response_type.mime().to_string())
    }

    /// The top-level key of `application/json` responses: `projections` for PCA, `predictions` otherwise.
    fn json_key(&self) -> &str {
        match &self.manifest().response {
            ResponseShape::Projection { .. } => "projections",
            ResponseShape::AnomalyScore { .. } => "scores",
            ResponseShape::Fields { key, .. } => key,
            _ => "predictions",
        }
    }

    /// How a request of `content_type` is read: as feature records, or, for a package whose request input is
    /// text, an image or token ids ([`crate::manifest::Pipeline`]), as raw records for its preprocessing steps.
    fn request_format(&self, content_type: &str) -> Result<RequestFormat, RuntimeError> {
        let kind = self.manifest().pipeline.input_kind();
        if kind == InputKind::DenseFloat {
            return self.request_type(content_type).map(RequestFormat::Features);
        }
        let format = raw_request::format_of(kind, content_type)?;
        let accepts = &self.manifest().accepts;
        let mime = content_type.split(';').next().unwrap_or_default().trim();
        if !accepts.is_empty() && !accepts.iter().any(|a| a.eq_ignore_ascii_case(mime)) {
            return Err(RuntimeError::UnsupportedContentType {
                header: "Content-Type",
                content_type: content_type.to_string(),
                expected: accepts.join(", "),
            });
        }
        Ok(RequestFormat::Raw(kind, format))
    }

    /// Hands each record of `reader`, read in `format`, to `on_input`, stopping at the first error.
    fn for_each_input<R: Read + Send, E: From<FormatError> + From<RuntimeError>>(
        &self,
        format: &RequestFormat,
        reader: R,
        mut on_input: impl FnMut(RequestRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        match format {
            RequestFormat::Features(content_type) => {
                for_each_record(content_type, reader, |record| {
                    on_input(RequestRecord::Features(record))
                })
            }
            RequestFormat::Raw(kind, raw_format) => raw_request::for_each_record(
                *kind,
                self.manifest().pipeline.input_name(),
                *raw_format,
                reader,
                |_, raw| on_input(RequestRecord::Raw(raw)),
            ),
        }
    }

    /// Appends the graph's input row for one request record: the record's features, or what the manifest's
    /// preprocessing steps make of its raw input.
    fn append_input(
        &self,
        input: RequestRecord,
        record_number: u64,
        batch: &mut Vec<f32>,
    ) -> Result<(), RuntimeError> {
        match input {
            RequestRecord::Features(record) => self.append_row(&record, record_number, batch),
            RequestRecord::Raw(raw) => {
                let pipeline = &self.manifest().pipeline;
                let error = |field: String, message: String| RuntimeError::Record {
                    source_name: REQUEST.to_string(),
                    record: record_number,
                    field,
                    message,
                };
                let values = crate::steps::preprocess(
                    raw,
                    &pipeline.preprocess,
                    self.manifest().feature_dim,
                )
                .map_err(|message| error(pipeline.input_name().to_string(), message))?;
                if let Some((column, message)) = self.refused_value(&values) {
                    return Err(error(
                        format!("{} (preprocessed value {column})", pipeline.input_name()),
                        message,
                    ));
                }
                batch.extend_from_slice(&values);
                Ok(())
            }
        }
    }

    fn request_type(&self, content_type: &str) -> Result<ContentType, RuntimeError> {
        let parsed = ContentType::parse(content_type).map_err(|error| match error {
            FormatError::UnsupportedContentType {
                content_type,
                expected,
            } => RuntimeError::UnsupportedContentType {
                header: "Content-Type",
                content_type,
                expected,
            },
            other => RuntimeError::Request(other),
        })?;
        let parsed = match parsed {
            ContentType::Csv { .. }
                if !content_type.to_ascii_lowercase().contains("label_size") =>
            {
                ContentType::Csv { label_size: 0 }
            }
            other => other,
        };
        let accepts = &self.manifest().accepts;
        let canonical = parsed.mime().split(';').next().unwrap_or_default();
        let listed = accepts.iter().any(|a| {
            ContentType::parse(a)
                .map(|c| c.mime().split(';').next() == Some(canonical))
                .unwrap_or(false)
        });
        if !accepts.is_empty() && !listed {
            return Err(RuntimeError::UnsupportedContentType {
                header: "Content-Type",
                content_type: content_type.to_string(),
                expected: accepts.join(", "),
            });
        }
        Ok(parsed)
    }

    /// The response type for `accept` (see [`Package::invoke`]): the first listed type the package produces, the
    /// package's default for an empty `Accept` or `*/*`, else [`RuntimeError::UnsupportedContentType`].
    pub fn response_type(&self, accept: &str) -> Result<ResponseType, RuntimeError> {
        let produces: Vec<ResponseType> = self
            .manifest()
            .produces
            .iter()
            .filter_map(|p| ResponseType::from_mime(p.split(';').next().unwrap_or_default()))
            .collect();
        let default = produces
            .first()
            .copied()
            .unwrap_or(match self.manifest().response {
                ResponseShape::Xgboost { .. } => ResponseType::Csv,
                _ => ResponseType::Json,
            });
        let allowed = |t: ResponseType| produces.is_empty() || produces.contains(&t);
        let mut any = accept.trim().is_empty();
        for candidate in accept.split(',') {
            let mime = candidate.split(';').next().unwrap_or_default().trim();
            if mime == "*/*" {
                any = true;
            } else if let Some(t) = ResponseType::from_mime(mime).filter(|&t| allowed(t)) {
                return Ok(t);
            }
        }
        if any {
            return Ok(default);
        }
        Err(RuntimeError::UnsupportedContentType {
            header: "Accept",
            content_type: accept.to_string(),
            expected: if produces.is_empty() {
                RESPONSE_TYPES.to_string()
            } else {
                self.manifest().produces.join(", ")
            },
        })
    }

    /// Appends `record`'s features as one dense row of `feature_dim` values.
    fn append_row(
        &self,
        record: &Record,
        record_number: u64,
        batch: &mut Vec<f32>,
    ) -> Result<(), RuntimeError> {
        let dim = self.manifest().feature_dim;
        let error = |field: &str, message: String| RuntimeError::Record {
            source_name: REQUEST.to_string(),
            record: record_number,
            field: field.to_string(),
            message,
        };
        match &record.features {
            Features::Dense(values) => {
                if values.len() != dim {
                    return Err(error(
                        "features",
                        format!("expected {dim} features, found {}", values.len()),
                    ));
                }
                if let Some((column, message)) = self.refused_value(values) {
                    return Err(error(&format!("features[{column}]"), message));
                }
                batch.extend_from_slice(values);
            }
            Features::Sparse {
                indices,
                values,
                dim: declared,
            } => {
                if let Some(declared) = declared.filter(|&d| d != dim) {
                    return Err(error(
                        "features.shape",
                        format!("declares {declared} features, the model takes {dim}"),
                    ));
                }
                if let Some(&index) = indices.iter().find(|&&i| i as usize >= dim) {
                    return Err(error(
                        "features.keys",
                        format!("index {index} is outside the model's {dim} features"),
                    ));
                }
                let absent = match self.manifest().response {
                    ResponseShape::Xgboost { .. } => f32::NAN,
                    _ => 0.0,
                };
                if let Some((position, message)) = self.refused_value(values) {
                    let index = indices.get(position).copied().unwrap_or_default();
                    return Err(error(&format!("features[{index}]"), message));
                }
                let start = batch.len();
                batch.resize(start + dim, absent);
                for (&index, &value) in indices.iter().zip(values) {
                    batch[start + index as usize] = value;
                }
            }
        }
        Ok(())
    }

    /// Runs `rows` rows and writes their responses; `verbose`: a k-NN `Accept` with `verbose=true`.
    fn flush_batch<W: Write>(
        &self,
        batch: &[f32],
        rows: usize,
        verbose: bool,
        encoder: &mut ResponseEncoder<W>,
    ) -> Result<(), RuntimeError> {
        let outputs = self.run(batch, rows)?;
        for row in 0..rows {
            encoder
                .write(&self.row_prediction_as(&outputs, row, verbose)?)
                .map_err(write_failed)?;
        }
        Ok(())
    }

    /// Row `row`'s prediction in the response shape, not verbose.
    fn row_prediction(&self, outputs: &Outputs, row: usize) -> Result<Prediction, RuntimeError> {
        self.row_prediction_as(outputs, row, false)
    }

    fn row_prediction_as(
        &self,
        outputs: &Outputs,
        row: usize,
        verbose: bool,
    ) -> Result<Prediction, RuntimeError> {
        let first = |name: &String, values: Vec<f32>| {
            values.first().copied().ok_or_else(|| RuntimeError::Output {
                output: name.clone(),
                message: "has no values per row".to_string(),
            })
        };
        match &self.manifest().response {
            ResponseShape::Supervised {
                task,
                score,
                predicted_label,
            } => {
                let scores = outputs.require(score)?.row_f32(row);
                let label = match predicted_label {
                    Some(name) => Some(outputs.require(name)?.row_label(row)),
                    None => None,
                };
                let first = scores
                    .first()
                    .copied()
                    .ok_or_else(|| RuntimeError::Output {
                        output: score.clone(),
                        message: "has no values per row".to_string(),
                    })?;
                let score = if task == "multiclass_classifier" {
                    Score::List(scores)
                } else {
                    Score::Value(first)
                };
                Ok(Prediction::Scored { score, label })
            }
            ResponseShape::Xgboost { output, .. } => {
                let output_values = outputs.require(output)?;
                let values = output_values.row_f32(row);
                let score = match values.as_slice() {
                    [value] => Score::Value(*value),
                    [] => {
                        return Err(RuntimeError::Output {
                            output: output.clone(),
                            message: "has no values per row".to_string(),
                        })
                    }
                    _ => Score::List(values),
                };
                Ok(Prediction::Scored { score, label: None })
            }
            ResponseShape::Clustering {
                closest_cluster,
                distance_to_cluster,
            } => Ok(Prediction::Cluster {
                cluster: outputs.require(closest_cluster)?.row_label(row) as f32,
                distance: first(
                    distance_to_cluster,
                    outputs.require(distance_to_cluster)?.row_f32(row),
                )?,
            }),
            ResponseShape::Projection { projection } => Ok(Prediction::Projection(
                outputs.require(projection)?.row_f32(row),
            )),
            ResponseShape::AnomalyScore { score } => Ok(Prediction::Scored {
                score: Score::Value(first(score, outputs.require(score)?.row_f32(row))?),
                label: None,
            }),
            ResponseShape::NearestNeighbors {
                predicted_label,
                distances,
                labels,
                ..
            } => Ok(Prediction::Neighbours {
                label: first(
                    predicted_label,
                    outputs.require(predicted_label)?.row_f32(row),
                )?,
                verbose: if verbose {
                    Some((
                        outputs.require(distances)?.row_f32(row),
                        outputs.require(labels)?.row_f32(row),
                    ))
                } else {
                    None
                },
            }),
            ResponseShape::Fields { fields, .. } => fields
                .iter()
                .map(|field| {
                    let output = outputs.require(&field.output)?;
                    let value = match (&output.values, output.columns(), field.list) {
                        (OutputValues::Text(_), ..) => {
                            Field::Text(output.row_text(row).unwrap_or_default().to_string())
                        }
                        (_, 1, false) => match &output.values {
                            OutputValues::I64(_) => Field::Integer(output.row_label(row)),
                            _ => Field::Number(first(&field.output, output.row_f32(row))?),
                        },
                        _ => Field::List(output.row_f32(row)),
                    };
                    Ok((field.name.clone(), value))
                })
                .collect::<Result<Vec<_>, RuntimeError>>()
                .map(Prediction::Fields),
        }
    }
}

/// Hands the records of `reader`, decoded as `request_type`, to `on_record` one at a time, stopping at the first
/// error (the reader's or `on_record`'s). An `application/json` document is decoded record by record as well.
fn for_each_record<R: Read + Send, E: From<FormatError>>(
    request_type: &ContentType,
    reader: R,
    mut on_record: impl FnMut(Record) -> Result<(), E>,
) -> Result<(), E> {
    match request_type {
        ContentType::Json => tern_formats::json::stream_json_request(reader, REQUEST, on_record),
        other => {
            for record in tern_formats::open_reader(other, reader, REQUEST)? {
                on_record(record?)?;
            }
            Ok(())
        }
    }
}

/// A failed response write: the writer's I/O error, as [`RuntimeError::Write`] (not a fault of the request).
fn write_failed(error: FormatError) -> RuntimeError {
    match error {
        FormatError::Io { error, .. } => RuntimeError::Write { error },
        other => RuntimeError::Request(other),
    }
}

/// How a request body is read ([`Package::request_format`]).
enum RequestFormat {
    Features(ContentType),
    Raw(InputKind, RawFormat),
}

/// One record of a request, before it becomes a graph input row.
enum RequestRecord {
    Features(Record),
    Raw(RawInput),
}

/// Why [`Package::decode_request_up_to`] stopped decoding.
enum DecodeStop {
    Failed(RuntimeError),
    TooManyRows,
}

impl From<FormatError> for DecodeStop {
    fn from(error: FormatError) -> Self {
        DecodeStop::Failed(error.into())
    }
}

impl From<RuntimeError> for DecodeStop {
    fn from(error: RuntimeError) -> Self {
        DecodeStop::Failed(error)
    }
}

/// A request decoded into dense rows ([`Package::decode_request`]), ready to run alone or merged with other requests'
/// rows.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// `rows` rows of `feature_dim` values, row-major.
    pub features: Vec<f32>,
    pub rows: usize,
    /// The response type negotiated from the request's `Accept`.
    pub response_type: ResponseType,
}

impl Package {
    /// The first half of [`Package::invoke`]: checks `content_type` and `accept` and decodes every record of `body`
    /// into a dense row, with the same checks and errors, in the same order, as `invoke`. Together with
    /// [`Package::run`] and [`Package::encode_response`] it lets a server run several requests as one batch:
    /// a row's prediction does not depend on the other rows of its batch.
    pub fn decode_request(
        &self,
        body: &[u8],
        content_type: &str,
        accept: &str,
    ) -> Result<DecodedRequest, RuntimeError> {
        self.decode_request_up_to(body, content_type, accept, usize::MAX)?
            .ok_or_else(|| RuntimeError::Run {
                message: "a request of more than usize::MAX records".to_string(),
            })
    }

    /// [`Package::decode_request`] for a request of at most `max_rows` records; `None` for a larger one (decoding
    /// stops at record `max_rows + 1`, so at most `max_rows` rows are ever held), which [`Package::invoke`] streams
    /// [`BATCH_ROWS`] at a time instead. Errors in the records after the first `max_rows` are left for `invoke`.
    pub fn decode_request_up_to(
        &self,
        body: &[u8],
        content_type: &str,
        accept: &str,
        max_rows: usize,
    ) -> Result<Option<DecodedRequest>, RuntimeError> {
        let request_format = self.request_format(content_type)?;
        let response_type = self.response_type(accept)?;
        let mut features = Vec::new();
        let mut rows = 0usize;
        let decoded = self.for_each_input(&request_format, body, |input| {
            if rows == max_rows {
                return Err(DecodeStop::TooManyRows);
            }
            rows += 1;
            self.append_input(input, rows as u64, &mut features)?;
            Ok(())
        });
        match decoded {
            Ok(()) => Ok(Some(DecodedRequest {
                features,
                rows,
                response_type,
            })),
            Err(DecodeStop::TooManyRows) => Ok(None),
            Err(DecodeStop::Failed(error)) => Err(error),
        }
    }

    /// The second half of [`Package::invoke`]: the response body for rows `rows` of `outputs` (from
    /// [`Package::run`]) in `response_type`, byte for byte what `invoke` answers for a request holding exactly those
    /// rows. Errors: [`RuntimeError::Output`] when `outputs` lacks what the manifest's response shape names,
    /// [`RuntimeError::Run`] when `rows` reaches past `outputs.rows`.
    pub fn encode_response(
        &self,
        outputs: &Outputs,
        rows: std::ops::Range<usize>,
        response_type: ResponseType,
    ) -> Result<Vec<u8>, RuntimeError> {
        if rows.end > outputs.rows {
            return Err(RuntimeError::Run {
                message: format!("rows {rows:?} asked of a run over {} rows", outputs.rows),
            });
        }
        let mut processed;
        let outputs = if self.manifest().pipeline.postprocess.is_empty() {
            outputs
        } else {
            processed = outputs.clone();
            self.postprocess(&mut processed)?;
            &processed
        };
        let mut body = Vec::new();
        let mut encoder = ResponseEncoder::new(response_type, self.json_key(), &mut body);
        for row in rows {
            encoder
                .write(&self.row_prediction(outputs, row)?)
                .map_err(write_failed)?;
        }
        encoder.finish().map_err(write_failed)?;
        Ok(body)
    }
}
