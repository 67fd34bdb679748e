//! `tern transform`: SageMaker batch transform over local files and folders or `s3://` prefixes.
//!
//! Every input object becomes one output object, `<input name>.out`, holding the responses of its records in input
//! order. The settings are SageMaker's `CreateTransformJob` ones:
//!
//! - [`SplitType`]: `Line` (one record per line), `RecordIO` (one record per RecordIO frame) or `None` (the whole
//!   input is one record).
//! - [`BatchStrategy`]: `SingleRecord` (one record per request) or `MultiRecord` (as many consecutive records as fit
//!   in `MaxPayloadInMB`; a record larger than that alone is an error naming it). Requests never span two inputs.
//! - [`AssembleWith`]: `Line` ends every request's output with a line break (unless it already ends with one);
//!   `None` concatenates them as they are.
//! - `DataProcessing` ([`processing`]): `InputFilter`, `JoinSource` `Input`, `OutputFilter` with the
//!   [`jsonpath`] subset SageMaker documents, over CSV and JSON only.
//!
//! Requests are answered in process by [`tern_runtime::Package::invoke`], exactly what `POST /invocations` of
//! `tern serve` answers. Memory stays bounded: records are read one at a time, a request holds at most
//! `MaxPayloadInMB` of them, and its response is written out before the next is read.
//!
//! Resuming: an output is written to `<name>.out.tern-partial` (a local folder) or as an S3 multipart upload, and
//! only becomes `<name>.out` once complete (rename / upload completion). A re-run skips every input whose `.out`
//! already exists and removes partial files left by a run that was killed.

mod dispatch;
pub mod jsonpath;
pub mod processing;
pub mod records;
pub mod storage;

use std::collections::VecDeque;
use std::io::{BufRead, Write};

use serde_json::Value;
use tern_formats::observe::Progress;
use tern_runtime::{Package, RuntimeError};

pub use jsonpath::{JsonPath, PathError};
pub use processing::{DataProcessing, RecordFormat};
pub use records::RecordReader;
pub use storage::Location;

use dispatch::{Answer, Dispatcher, Unanswered};
use processing::{csv_output_as_json, join, split_json_response};
use storage::OutputSink;

/// SageMaker's default `MaxPayloadInMB`.
pub const DEFAULT_MAX_PAYLOAD_MB: usize = 6;
/// The largest `MaxPayloadInMB` SageMaker accepts.
pub const MAX_PAYLOAD_MB_LIMIT: usize = 100;

/// How an input is cut into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitType {
    None,
    Line,
    RecordIo,
}

/// How many records a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStrategy {
    SingleRecord,
    MultiRecord,
}

/// How request outputs are put together in the `.out` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssembleWith {
    None,
    Line,
}

impl SplitType {
    /// SageMaker's names: `None`, `Line`, `RecordIO` (case-insensitive). `TFRecord` is refused.
    pub fn parse(text: &str) -> Result<SplitType, TransformError> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Ok(SplitType::None),
            "line" => Ok(SplitType::Line),
            "recordio" => Ok(SplitType::RecordIo),
            _ => Err(config_error(
                "SplitType",
                format!("{text:?} is not supported; expected None, Line or RecordIO"),
            )),
        }
    }
}

impl BatchStrategy {
    /// SageMaker's names: `SingleRecord`, `MultiRecord` (also the container's `SINGLE_RECORD`, `MULTI_RECORD`).
    pub fn parse(text: &str) -> Result<BatchStrategy, TransformError> {
        match text.to_ascii_lowercase().replace('_', "").as_str() {
            "singlerecord" => Ok(BatchStrategy::SingleRecord),
            "multirecord" => Ok(BatchStrategy::MultiRecord),
            _ => Err(config_error(
                "BatchStrategy",
                format!("{text:?} is not supported; expected SingleRecord or MultiRecord"),
            )),
        }
    }
}

impl AssembleWith {
    /// SageMaker's names: `None`, `Line`.
    pub fn parse(text: &str) -> Result<AssembleWith, TransformError> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Ok(AssembleWith::None),
            "line" => Ok(AssembleWith::Line),
            _ => Err(config_error(
                "AssembleWith",
                format!("{text:?} is not supported; expected None or Line"),
            )),
        }
    }
}

/// One transform job's settings.
#[derive(Debug, Clone)]
pub struct TransformConfig {
    /// The request `Content-Type` (`TransformInput.ContentType`).
    pub content_type: String,
    /// The response type (`TransformOutput.Accept`).
    pub accept: String,
    pub split_type: SplitType,
    pub batch_strategy: BatchStrategy,
    /// `MaxPayloadInMB`, 1 to 100.
    pub max_payload_mb: usize,
    pub assemble_with: AssembleWith,
    pub data_processing: DataProcessing,
    /// `MaxConcurrentTransforms`: how many requests are in flight at once (0, SageMaker's "unset", means 1).
    /// Outputs are the same for every value; `MaxConcurrentTransforms × MaxPayloadInMB` may not exceed 100.
    pub max_concurrent_transforms: usize,
}

impl Default for TransformConfig {
    /// `text/csv` in, `application/jsonlines` out, `Line`, `MultiRecord`, 6 MB, `AssembleWith` `Line`, one request
    /// at a time.
    fn default() -> Self {
        TransformConfig {
            content_type: "text/csv".to_string(),
            accept: "application/jsonlines".to_string(),
            split_type: SplitType::Line,
            batch_strategy: BatchStrategy::MultiRecord,
            max_payload_mb: DEFAULT_MAX_PAYLOAD_MB,
            assemble_with: AssembleWith::Line,
            data_processing: DataProcessing::default(),
            max_concurrent_transforms: 1,
        }
    }
}

impl TransformConfig {
    /// `MaxPayloadInMB` in bytes.
    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_mb * 1024 * 1024
    }

    /// Requests in flight at once: `MaxConcurrentTransforms`, 0 read as 1.
    pub fn concurrency(&self) -> usize {
        self.max_concurrent_transforms.max(1)
    }

    /// Checks the settings against each other, before any input is read.
    pub fn validate(&self) -> Result<(), TransformError> {
        if self.max_payload_mb == 0 || self.max_payload_mb > MAX_PAYLOAD_MB_LIMIT {
            return Err(config_error(
                "MaxPayloadInMB",
                format!(
                    "{} is outside 1..={MAX_PAYLOAD_MB_LIMIT} (0, chunked streaming, is not supported by built-in algorithms)",
                    self.max_payload_mb
                ),
            ));
        }
        if self.concurrency().saturating_mul(self.max_payload_mb) > MAX_PAYLOAD_MB_LIMIT {
            return Err(config_error(
                "MaxConcurrentTransforms",
                format!(
                    "{} requests of up to {} MB (MaxPayloadInMB) exceed {MAX_PAYLOAD_MB_LIMIT} MB in flight",
                    self.max_concurrent_transforms, self.max_payload_mb
                ),
            ));
        }
        let processing = &self.data_processing;
        if processing.filters_input() && RecordFormat::of(&self.content_type).is_none() {
            return Err(config_error(
                "DataProcessing.InputFilter",
                format!(
                    "filters apply to text/csv and JSON inputs only, not {:?}",
                    self.content_type
                ),
            ));
        }
        if processing.per_record_output() {
            let field = if processing.join_input {
                "DataProcessing.JoinSource"
            } else {
                "DataProcessing.OutputFilter"
            };
            if RecordFormat::of(&self.accept).is_none() {
                return Err(config_error(
                    field,
                    format!("needs a text/csv or JSON Accept, not {:?}", self.accept),
                ));
            }
            if processing.join_input && RecordFormat::of(&self.content_type).is_none() {
                return Err(config_error(
                    field,
                    format!(
                        "joins text/csv and JSON inputs only, not {:?}",
                        self.content_type
                    ),
                ));
            }
        }
        Ok(())
    }

    fn per_unit(&self) -> bool {
        !self.data_processing.is_default()
    }
}

/// What transforming one input did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamSummary {
    /// Records read (lines, frames, or 1 for SplitType None).
    pub records: u64,
    /// Requests sent to the model.
    pub requests: u64,
}

/// What a whole job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransformSummary {
    /// Inputs transformed in this run, by name.
    pub transformed: Vec<String>,
    /// Inputs skipped because their `.out` already existed.
    pub skipped: Vec<String>,
    /// Partial outputs of an earlier, interrupted run that were removed.
    pub removed_partials: usize,
    pub records: u64,
    pub requests: u64,
}

/// A transform job failed.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// A setting is invalid or conflicts with another.
    #[error("{field}: {message}")]
    Config { field: String, message: String },
    /// A filter expression is outside SageMaker's JSONPath subset.
    #[error("{field}: {error}")]
    Filter {
        field: &'static str,
        #[source]
        error: PathError,
    },
    /// A location is not a path or an `s3://bucket/prefix`, or holds nothing to transform.
    #[error("{location}: {message}")]
    Location { location: String, message: String },
    /// A record is malformed or a filter cannot select from it.
    #[error("{source_name}: record {record}: {field}: {message}")]
    Record {
        source_name: String,
        /// 1-based line number (SplitType Line) or record number.
        record: u64,
        field: String,
        message: String,
    },
    /// A record is larger than MaxPayloadInMB.
    #[error("{source_name}: record {record} is {size} bytes, over MaxPayloadInMB ({limit} bytes)")]
    PayloadTooLarge {
        source_name: String,
        record: u64,
        size: usize,
        limit: usize,
    },
    /// The model refused or failed a request.
    #[error("{source_name}: records {first}..={last}: {error}")]
    Invoke {
        source_name: String,
        first: u64,
        last: u64,
        #[source]
        error: RuntimeError,
    },
    /// A response cannot be taken apart into one output per record (join / output filter).
    #[error("{source_name}: records {first}..={last}: response: {message}")]
    Response {
        source_name: String,
        first: u64,
        last: u64,
        message: String,
    },
    #[error("{source_name}: cannot read: {error}")]
    Read {
        source_name: String,
        #[source]
        error: std::io::Error,
    },
    #[error("{target}: cannot write: {error}")]
    Write {
        target: String,
        #[source]
        error: std::io::Error,
    },
    /// The object store refused or failed an operation.
    #[error("{location}: {message}")]
    Storage { location: String, message: String },
}

fn config_error(field: &str, message: String) -> TransformError {
    TransformError::Config {
        field: field.to_string(),
        message,
    }
}

/// One record as data processing sees it.
struct Unit {
    /// The raw record text (kept for JoinSource Input).
    raw: Value,
    number: u64,
}

/// What travels with a request to its answer: which input it belongs to and what it holds.
struct Ticket {
    /// The input's position among those fed to the [`Runner`].
    input: usize,
    units: Vec<Unit>,
    first: u64,
    last: u64,
}

/// Transforms one input stream into one output stream: splits `reader` into records, batches them into requests,
/// invokes `package` (up to [`TransformConfig::concurrency`] requests at once) and writes the assembled responses to
/// `writer` in input order. `source_name` names the input in errors; `progress` is advanced by the bytes consumed.
///
/// Errors: any [`TransformError`] naming the input and record; what was written before the error stays written
/// (the caller decides whether to keep it: [`transform`] discards it).
pub fn transform_stream<R: BufRead, W: Write>(
    package: &Package,
    reader: R,
    writer: W,
    config: &TransformConfig,
    source_name: &str,
    progress: &Progress,
) -> Result<StreamSummary, TransformError> {
    config.validate()?;
    let mut summary = StreamSummary::default();
    let mut finished =
        |_: usize, mut writer: W, stream: StreamSummary| -> Result<(), TransformError> {
            summary = stream;
            writer.flush().map_err(|error| TransformError::Write {
                target: format!("{source_name}.out"),
                error,
            })
        };
    std::thread::scope(|scope| {
        let mut runner = Runner::new(scope, package, config);
        runner.feed(reader, writer, source_name, progress, &mut finished)?;
        runner.finish(&mut finished)
    })?;
    Ok(summary)
}

/// Called once all of an input's responses are written, with the input's position, its writer and its summary.
type Finished<'f, W> = dyn FnMut(usize, W, StreamSummary) -> Result<(), TransformError> + 'f;

/// A job's inputs in flight: each one's output and the requests still owed to it. Requests from consecutive
/// inputs share the dispatcher, so `MaxConcurrentTransforms` holds across inputs (many small files with
/// `SplitType` `None` are transformed concurrently too), and outputs complete in input order.
struct Runner<'a, W> {
    config: &'a TransformConfig,
    dispatch: Dispatcher<'a, Ticket>,
    /// Inputs not yet complete, oldest first; `open[0]` is input number `first_open`.
    open: VecDeque<OpenInput<'a, W>>,
    first_open: usize,
}

struct OpenInput<'a, W> {
    job: StreamJob<'a, W>,
    reading: bool,
    outstanding: usize,
}

impl<'a, W: Write> Runner<'a, W> {
    fn new<'scope>(
        scope: &'scope std::thread::Scope<'scope, 'a>,
        package: &'a Package,
        config: &'a TransformConfig,
    ) -> Self {
        Runner {
            config,
            dispatch: Dispatcher::new(
                scope,
                package,
                &config.content_type,
                &config.accept,
                config.concurrency(),
            ),
            open: VecDeque::new(),
            first_open: 0,
        }
    }

    /// Reads one input to its end and submits its requests; answers (of this input or earlier ones) are written as
    /// they are needed to make room or are already there. The input's position is the number fed before it.
    fn feed<R: BufRead>(
        &mut self,
        reader: R,
        writer: W,
        source_name: &'a str,
        progress: &Progress,
        finished: &mut Finished<'_, W>,
    ) -> Result<(), TransformError> {
        let config = self.config;
        self.open.push_back(OpenInput {
            job: StreamJob {
                config,
                source_name,
                writer,
                summary: StreamSummary::default(),
                input_format: RecordFormat::of(&config.content_type),
                output_format: RecordFormat::of(&config.accept),
            },
            reading: true,
            outstanding: 0,
        });
        let input = self.first_open + self.open.len() - 1;
        let limit = config.max_payload_bytes();
        let mut records = RecordReader::new(reader, config.split_type, limit, source_name);
        let separator: &[u8] = match config.split_type {
            SplitType::Line => b"\n",
            SplitType::RecordIo | SplitType::None => b"",
        };
        let mut body: Vec<u8> = Vec::new();
        let mut units: Vec<Unit> = Vec::new();
        let mut first = 0u64;
        let mut last = 0u64;
        let mut reported = 0u64;
        while let Some(record) = records.next_record()? {
            let job = &mut self.open[input - self.first_open].job;
            job.summary.records += 1;
            let (request, record_units) = job.prepare(record.bytes, record.number)?;
            let full = !body.is_empty()
                && (config.batch_strategy == BatchStrategy::SingleRecord
                    || body.len() + request.len() + separator.len() > limit);
            if full {
                let ticket = Ticket {
                    input,
                    units: std::mem::take(&mut units),
                    first,
                    last,
                };
                self.submit(ticket, std::mem::take(&mut body), finished)?;
            }
            if request.len() > limit {
                return Err(TransformError::PayloadTooLarge {
                    source_name: source_name.to_string(),
                    record: record.number,
                    size: request.len(),
                    limit,
                });
            }
            if body.is_empty() {
                first = record.number;
            }
            last = record.number;
            body.extend_from_slice(&request);
            body.extend_from_slice(separator);
            units.extend(record_units);
            progress.inc(records.consumed - reported);
            reported = records.consumed;
        }
        if !body.is_empty() {
            let ticket = Ticket {
                input,
                units,
                first,
                last,
            };
            self.submit(ticket, body, finished)?;
        }
        progress.inc(records.consumed - reported);
        self.open[input - self.first_open].reading = false;
        self.complete(finished)
    }

    /// Sends one request, first writing the oldest answers while `MaxConcurrentTransforms` are in flight.
    fn submit(
        &mut self,
        ticket: Ticket,
        body: Vec<u8>,
        finished: &mut Finished<'_, W>,
    ) -> Result<(), TransformError> {
        while self.dispatch.is_full() {
            let Some((answered, answer)) = self.dispatch.next(true) else {
                break;
            };
            self.deliver(answered, answer, finished)?;
        }
        let open = &mut self.open[ticket.input - self.first_open];
        open.outstanding += 1;
        open.job.summary.requests += 1;
        self.dispatch.submit(ticket, body);
        while let Some((answered, answer)) = self.dispatch.next(false) {
            self.deliver(answered, answer, finished)?;
        }
        Ok(())
    }

    /// Writes one answer into its input's output.
    fn deliver(
        &mut self,
        ticket: Ticket,
        answer: Answer,
        finished: &mut Finished<'_, W>,
    ) -> Result<(), TransformError> {
        let open = &mut self.open[ticket.input - self.first_open];
        open.outstanding -= 1;
        let source_name = open.job.source_name;
        let response = answer.map_err(|unanswered| match unanswered {
            Unanswered::Runtime(error) => TransformError::Invoke {
                source_name: source_name.to_string(),
                first: ticket.first,
                last: ticket.last,
                error,
            },
            Unanswered::WorkerStopped => TransformError::Response {
                source_name: source_name.to_string(),
                first: ticket.first,
                last: ticket.last,
                message: "the worker invoking the model stopped without an answer".to_string(),
            },
        })?;
        open.job
            .write_response(&response, &ticket.units, ticket.first, ticket.last)?;
        self.complete(finished)
    }

    /// Hands every input that is read to its end and fully answered to `finished`, oldest first.
    fn complete(&mut self, finished: &mut Finished<'_, W>) -> Result<(), TransformError> {
        while self
            .open
            .front()
            .is_some_and(|open| !open.reading && open.outstanding == 0)
        {
            let Some(open) = self.open.pop_front() else {
                break;
            };
            let input = self.first_open;
            self.first_open += 1;
            finished(input, open.job.writer, open.job.summary)?;
        }
        Ok(())
    }

    /// Waits for every request in flight and writes its answer.
    fn finish(&mut self, finished: &mut Finished<'_, W>) -> Result<(), TransformError> {
        while let Some((ticket, answer)) = self.dispatch.next(true) {
            self.deliver(ticket, answer, finished)?;
        }
        self.complete(finished)
    }

    /// The writers of the inputs not yet complete (after an error), oldest first.
    fn abandon(self) -> Vec<W> {
        self.open.into_iter().map(|open| open.job.writer).collect()
    }
}

struct StreamJob<'a, W> {
    config: &'a TransformConfig,
    source_name: &'a str,
    writer: W,
    summary: StreamSummary,
    input_format: Option<RecordFormat>,
    output_format: Option<RecordFormat>,
}

impl<W: Write> StreamJob<'_, W> {
    fn record_error(&self, record: u64, field: &str, message: String) -> TransformError {
        TransformError::Record {
            source_name: self.source_name.to_string(),
            record,
            field: field.to_string(),
            message,
        }
    }

    /// The request bytes for one record, after InputFilter, and its data-processing units: one per CSV or JSON
    /// Lines line, or one per JSON document.
    fn prepare(&self, bytes: Vec<u8>, number: u64) -> Result<(Vec<u8>, Vec<Unit>), TransformError> {
        if !self.config.per_unit() {
            return Ok((bytes, Vec::new()));
        }
        let format = self
            .input_format
            .expect("validate() requires a CSV or JSON input for data processing");
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| self.record_error(number, "record", format!("is not UTF-8: {e}")))?;
        let whole_document = self.config.split_type == SplitType::None
            && self
                .config
                .content_type
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
            && !self
                .config
                .content_type
                .to_ascii_lowercase()
                .contains("lines");
        let pieces: Vec<(u64, &str)> = if whole_document {
            vec![(number, text)]
        } else {
            text.lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(i, line)| (number + i as u64, line))
                .collect()
        };
        let mut request = Vec::with_capacity(bytes.len());
        let mut units = Vec::with_capacity(pieces.len());
        for (unit_number, piece) in pieces {
            let raw = format
                .parse(piece)
                .map_err(|message| self.record_error(unit_number, "record", message))?;
            let selected = self
                .config
                .data_processing
                .input_filter
                .select(&raw)
                .map_err(|e| self.record_error(unit_number, "InputFilter", e.to_string()))?;
            if !request.is_empty() {
                request.push(b'\n');
            }
            if self.config.data_processing.filters_input() {
                let filtered = format.write(&selected);
                // A record the filter empties would reach the model as nothing and silently give no output.
                if filtered.trim().is_empty() {
                    return Err(self.record_error(
                        unit_number,
                        "InputFilter",
                        format!(
                            "{} selects nothing from this record, which would give no prediction; every record \
                             in must give a record out",
                            self.config.data_processing.input_filter.as_str()
                        ),
                    ));
                }
                request.extend_from_slice(filtered.as_bytes());
            } else {
                request.extend_from_slice(piece.as_bytes());
            }
            units.push(Unit {
                raw,
                number: unit_number,
            });
        }
        Ok((request, units))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), TransformError> {
        self.writer
            .write_all(bytes)
            .map_err(|error| TransformError::Write {
                target: format!("{}.out", self.source_name),
                error,
            })
    }

    /// Writes the response of the request holding `units` (records `first..=last`), assembled as configured.
    fn write_response(
        &mut self,
        response: &[u8],
        units: &[Unit],
        first: u64,
        last: u64,
    ) -> Result<(), TransformError> {
        if !self.config.data_processing.per_record_output() {
            self.write(response)?;
            if self.config.assemble_with == AssembleWith::Line
                && !response.is_empty()
                && response.last() != Some(&b'\n')
            {
                self.write(b"\n")?;
            }
            return Ok(());
        }
        let response_error = |message: String| TransformError::Response {
            source_name: self.source_name.to_string(),
            first,
            last,
            message,
        };
        let text = std::str::from_utf8(response)
            .map_err(|e| response_error(format!("is not UTF-8: {e}")))?;
        let outputs = self
            .split_outputs(text, units.len())
            .map_err(response_error)?;
        let processing = &self.config.data_processing;
        let input_format = self.input_format;
        let written_format = if processing.join_input {
            input_format.expect("validate() requires a CSV or JSON input for JoinSource")
        } else {
            self.output_format
                .expect("validate() requires a CSV or JSON Accept for OutputFilter")
        };
        let mut assembled = String::new();
        for (unit, output) in units.iter().zip(outputs) {
            let record = if processing.join_input {
                join(
                    unit.raw.clone(),
                    input_format.expect("checked by validate()"),
                    output,
                )
            } else {
                output
            };
            let selected = processing
                .output_filter
                .select(&record)
                .map_err(|e| self.record_error(unit.number, "OutputFilter", e.to_string()))?;
            if !assembled.is_empty() {
                assembled.push('\n');
            }
            assembled.push_str(&written_format.write(&selected));
        }
        if self.config.assemble_with == AssembleWith::Line {
            assembled.push('\n');
        }
        self.write(assembled.as_bytes())
    }

    /// One output value per unit: the response's lines (CSV, JSON Lines) or its predictions (JSON).
    fn split_outputs(&self, text: &str, units: usize) -> Result<Vec<Value>, String> {
        let accept = self.config.accept.to_ascii_lowercase();
        let json_document =
            accept.trim().starts_with("application/json") && !accept.contains("lines");
        let joined_csv =
            self.config.data_processing.join_input && self.input_format == Some(RecordFormat::Csv);
        if json_document {
            let response: Value =
                serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))?;
            return split_json_response(&response, units);
        }
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() != units {
            return Err(format!("{} output lines for {units} records", lines.len()));
        }
        let format = self.output_format.ok_or("Accept is not CSV or JSON")?;
        lines
            .into_iter()
            .map(|line| match format {
                // Without a join a CSV output keeps its text; joined into JSON its numbers become numbers.
                RecordFormat::Csv if self.config.data_processing.join_input && !joined_csv => {
                    csv_output_as_json(line)
                }
                other => other.parse(line),
            })
            .collect()
    }
}

/// Runs a whole job: every input under `input` (a file, a folder, or `s3://bucket/prefix`) to
/// `<output>/<input name>.out`, skipping inputs whose output exists and clearing partial outputs of interrupted
/// runs. Progress (bytes of input) goes to `progress`.
///
/// Up to [`TransformConfig::concurrency`] requests are in flight at once, across consecutive inputs; every output is
/// byte for byte what a run with one request at a time writes.
///
/// Errors: the first input that fails stops the job; its partial output (and those of later inputs already begun)
/// are removed, outputs finished before it are kept.
pub fn transform(
    package: &Package,
    input: &Location,
    output: &Location,
    config: &TransformConfig,
    progress: &Progress,
) -> Result<TransformSummary, TransformError> {
    config.validate()?;
    let store = storage::Store::for_locations(input, output)?;
    let mut inputs = store.list_inputs(input)?;
    // An output folder inside (or equal to) the input folder: its outputs are this job's results, not inputs.
    inputs.retain(|item| {
        let is_output = item.name.ends_with(storage::OUTPUT_SUFFIX)
            || item.name.ends_with(storage::PARTIAL_SUFFIX);
        !(is_output && output.holds(item))
    });
    if inputs.is_empty() {
        return Err(TransformError::Location {
            location: input.to_string(),
            message: "holds no input objects".to_string(),
        });
    }
    let mut summary = TransformSummary {
        removed_partials: store.remove_partials(output)?,
        ..TransformSummary::default()
    };
    progress.set_length(inputs.iter().map(|i| i.size).sum());
    let mut pending = Vec::with_capacity(inputs.len());
    for item in &inputs {
        if store.output_exists(output, &item.name)? {
            progress.inc(item.size);
            summary.skipped.push(item.name.clone());
        } else {
            pending.push(item);
        }
    }
    let mut finished =
        |input: usize, sink: OutputSink, stream: StreamSummary| -> Result<(), TransformError> {
            sink.commit()?;
            summary.records += stream.records;
            summary.requests += stream.requests;
            summary.transformed.push(pending[input].name.clone());
            Ok(())
        };
    std::thread::scope(|scope| {
        let mut runner = Runner::new(scope, package, config);
        let mut run = || {
            for item in &pending {
                progress.set_message(item.name.clone());
                let reader = store.open(item)?;
                let sink = store.create_output(output, &item.name)?;
                runner.feed(reader, sink, &item.display, progress, &mut finished)?;
            }
            runner.finish(&mut finished)
        };
        let result = run();
        if result.is_err() {
            for sink in runner.abandon() {
                sink.abort();
            }
        }
        result
    })?;
    progress.finish_with_message("done");
    Ok(summary)
}
