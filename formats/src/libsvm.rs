//! `text/libsvm`: one record per line, `label[:weight] [qid:N] index:value index:value … [# comment]`, read as
//! xgboost reads it.
//!
//! - Features stay sparse ([`Features::Sparse`] with `dim: None`); indices must be strictly increasing on a line, an
//!   unsorted or repeated index is an error naming the line and the index.
//! - Indices are 0- or 1-based per [`Indexing`]. xgboost (dmlc-core's `LibSVMParser`, parameter `indexing_mode`,
//!   default 0) reads indices as **0-based** unless told otherwise; [`LibsvmReader::new`] does the same. With
//!   `indexing_mode < 0` xgboost guesses: if no feature index in a parse block is 0, the block is 1-based
//!   (the heuristic of scikit-learn's `load_svmlight_file`). [`Indexing::Auto`] applies that rule once, to the first
//!   [`AUTO_DETECT_RECORDS`] records, instead of per block of bytes (which can disagree between blocks of one file);
//!   an index 0 after the input was judged 1-based is an error. [`Indexing::OneBased`] (`indexing_mode=1`) rejects 0.
//! - `qid:N` after the label (ranking groups) is accepted and skipped: [`Record`] has no query id.
//! - `#` starts a comment running to the end of the line; blank and comment-only lines are skipped; `\r\n` and a UTF-8
//!   byte order mark are accepted. Fields are separated by spaces or tabs.
//!
//! The reader holds one line in memory (at most [`AUTO_DETECT_RECORDS`] parsed records while auto-detecting) and
//! stops after the first error.

use std::collections::VecDeque;
use std::io::{BufWriter, Read, Write};

use crate::text::{is_blank, number_problem, parse_f32, quote, write_f32, LineReader};
use crate::{Features, FormatError, Location, Record};

/// How feature indices in the file map to 0-based feature numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Indexing {
    /// Judge from the first [`AUTO_DETECT_RECORDS`] records: 1-based when none of their indices is 0, else 0-based
    /// (xgboost's `indexing_mode=-1`).
    Auto,
    /// Index `i` is feature `i` (xgboost's default, `indexing_mode=0`).
    #[default]
    ZeroBased,
    /// Index `i` is feature `i - 1`; index 0 is an error (xgboost's `indexing_mode=1`).
    OneBased,
}

/// How many records [`Indexing::Auto`] looks at before deciding.
pub const AUTO_DETECT_RECORDS: usize = 4096;

/// Options of [`LibsvmReader::with_options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LibsvmOptions {
    /// 0- or 1-based indices; 0-based by default, as xgboost.
    pub indexing: Indexing,
}

/// A parsed line whose indices are still as written.
struct RawRecord {
    line: u64,
    label: f32,
    weight: Option<f32>,
    indices: Vec<u64>,
    values: Vec<f32>,
}

/// Streams sparse [`Record`]s from libsvm text; see the [module docs](self) for the rules.
pub struct LibsvmReader<R> {
    lines: LineReader<R>,
    indexing: Indexing,
    /// Records parsed while auto-detecting, not yet returned.
    pending: VecDeque<RawRecord>,
    /// An error met while auto-detecting, returned after `pending`.
    pending_error: Option<FormatError>,
    /// `indexing` was settled by [`Indexing::Auto`], which error messages explain.
    auto_detected: bool,
    done: bool,
}

impl<R: Read> LibsvmReader<R> {
    /// A reader with xgboost's default behaviour: 0-based indices.
    pub fn new(input: R, source: &str) -> Self {
        Self::with_options(input, source, LibsvmOptions::default())
    }

    /// A reader with explicit options; `source` names the file or channel in errors.
    pub fn with_options(input: R, source: &str, options: LibsvmOptions) -> Self {
        LibsvmReader {
            lines: LineReader::new(input, source),
            indexing: options.indexing,
            pending: VecDeque::new(),
            pending_error: None,
            auto_detected: false,
            done: false,
        }
    }

    fn read_raw(&mut self) -> Result<Option<RawRecord>, FormatError> {
        loop {
            let Some((line_number, line)) = self.lines.next_line()? else {
                return Ok(None);
            };
            let content = match line.iter().position(|&b| b == b'#') {
                Some(comment) => &line[..comment],
                None => line,
            };
            if is_blank(content) {
                continue;
            }
            return parse_line(content, line_number)
                .map(Some)
                .map_err(|(field, message)| {
                    FormatError::malformed(
                        self.lines.source(),
                        Location::Line(line_number),
                        Some(field),
                        message,
                    )
                });
        }
    }

    /// Reads up to [`AUTO_DETECT_RECORDS`] records ahead and settles [`Indexing::Auto`].
    fn detect_indexing(&mut self) {
        let mut smallest: Option<u64> = None;
        while self.pending.len() < AUTO_DETECT_RECORDS {
            match self.read_raw() {
                Ok(Some(raw)) => {
                    if let Some(&first) = raw.indices.first() {
                        smallest = Some(smallest.map_or(first, |s| s.min(first)));
                    }
                    self.pending.push_back(raw);
                    if smallest == Some(0) {
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    self.pending_error = Some(error);
                    break;
                }
            }
        }
        self.auto_detected = true;
        self.indexing = match smallest {
            Some(s) if s > 0 => Indexing::OneBased,
            _ => Indexing::ZeroBased,
        };
    }

    fn convert(&self, raw: RawRecord) -> Result<Record, FormatError> {
        let one_based = self.indexing == Indexing::OneBased;
        let mut indices = Vec::with_capacity(raw.indices.len());
        for &index in &raw.indices {
            let feature = if one_based {
                index.checked_sub(1).ok_or_else(|| {
                    let why = if self.auto_detected {
                        format!(
                            "the first {AUTO_DETECT_RECORDS} records have no index 0, so indices were taken as 1-based; \
                             read with Indexing::ZeroBased"
                        )
                    } else {
                        "indices are 1-based".to_string()
                    };
                    FormatError::malformed(
                        self.lines.source(),
                        Location::Line(raw.line),
                        Some("index 0".to_string()),
                        format!("found index 0 but {why}"),
                    )
                })?
            } else {
                index
            };
            let feature = u32::try_from(feature).map_err(|_| {
                FormatError::malformed(
                    self.lines.source(),
                    Location::Line(raw.line),
                    Some(format!("index {index}")),
                    format!("index {index} is too large; expected at most {}", u32::MAX),
                )
            })?;
            indices.push(feature);
        }
        Ok(Record {
            features: Features::Sparse {
                indices,
                values: raw.values,
                dim: None,
            },
            label: Some(raw.label),
            weight: raw.weight,
        })
    }

    fn read_record(&mut self) -> Result<Option<Record>, FormatError> {
        if self.indexing == Indexing::Auto {
            self.detect_indexing();
        }
        let raw = match self.pending.pop_front() {
            Some(raw) => raw,
            None => {
                if let Some(error) = self.pending_error.take() {
                    return Err(error);
                }
                match self.read_raw()? {
                    Some(raw) => raw,
                    None => return Ok(None),
                }
            }
        };
        self.convert(raw).map(Some)
    }
}

impl<R: Read> Iterator for LibsvmReader<R> {
    type Item = Result<Record, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let read = self.read_record();
        crate::text::fuse(read, &mut self.done)
    }
}

/// Parses one non-blank line (comment removed); an error is (field, message).
fn parse_line(content: &[u8], line: u64) -> Result<RawRecord, (String, String)> {
    let mut tokens = content
        .split(|b| matches!(b, b' ' | b'\t'))
        .filter(|t| !t.is_empty());
    let head = tokens.next().unwrap_or_default();
    let (label_text, weight_text) = split_pair(head);
    let label = parse_f32(label_text).ok_or_else(|| {
        (
            "label".to_string(),
            format!(
                "expected a number as the label, found {}: {}",
                quote(label_text),
                number_problem(label_text)
            ),
        )
    })?;
    let weight = weight_text
        .map(|text| {
            parse_f32(text).ok_or_else(|| {
                (
                    "weight".to_string(),
                    format!(
                        "expected a number as the weight (label:weight), found {}: {}",
                        quote(text),
                        number_problem(text)
                    ),
                )
            })
        })
        .transpose()?;
    let mut indices: Vec<u64> = Vec::new();
    let mut values = Vec::new();
    let mut tokens = tokens.peekable();
    if let Some(token) = tokens.peek() {
        if let Some(qid) = token.strip_prefix(b"qid:") {
            if qid.is_empty() || !qid.iter().all(u8::is_ascii_digit) {
                return Err((
                    "qid".to_string(),
                    format!("expected qid:<integer>, found {}", quote(token)),
                ));
            }
            tokens.next();
        }
    }
    for token in tokens {
        let (index_text, value_text) = split_pair(token);
        let Some(value_text) = value_text else {
            return Err((
                "features".to_string(),
                format!("expected index:value, found {}", quote(token)),
            ));
        };
        let index = parse_index(index_text).ok_or_else(|| {
            (
                "features".to_string(),
                format!(
                    "expected a non-negative integer index in index:value, found {}",
                    quote(token)
                ),
            )
        })?;
        let value = parse_f32(value_text).ok_or_else(|| {
            (
                format!("index {index}"),
                format!(
                    "expected a number as the value, found {}: {}",
                    quote(token),
                    number_problem(value_text)
                ),
            )
        })?;
        if let Some(&previous) = indices.last() {
            if index <= previous {
                let problem = if index == previous {
                    format!("index {index} appears twice")
                } else {
                    format!("index {index} comes after {previous}")
                };
                return Err((
                    format!("index {index}"),
                    format!("{problem}; indices must be strictly increasing"),
                ));
            }
        }
        indices.push(index);
        values.push(value);
    }
    Ok(RawRecord {
        line,
        label,
        weight,
        indices,
        values,
    })
}

/// Splits `a:b` at the first colon.
fn split_pair(token: &[u8]) -> (&[u8], Option<&[u8]>) {
    match token.iter().position(|&b| b == b':') {
        Some(colon) => (&token[..colon], Some(&token[colon + 1..])),
        None => (token, None),
    }
}

fn parse_index(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Writes records as libsvm lines, `label[:weight] index:value …`, 0-based unless made with
/// [`LibsvmWriter::one_based`].
///
/// Dense features are written entry by entry (zeros included, so an explicit 0 stays distinct from missing); NaN
/// entries are left out, which is how libsvm says "missing". Every record needs a label; the feature dimension of a
/// sparse record is not written (libsvm has no place for it).
pub struct LibsvmWriter<W: Write> {
    out: BufWriter<W>,
    offset: u64,
    records: u64,
}

impl<W: Write> LibsvmWriter<W> {
    /// A writer of 0-based indices, what [`LibsvmReader::new`] and xgboost read by default.
    pub fn new(out: W) -> Self {
        LibsvmWriter {
            out: BufWriter::new(out),
            offset: 0,
            records: 0,
        }
    }

    /// A writer of 1-based indices (feature 0 written as index 1).
    pub fn one_based(out: W) -> Self {
        LibsvmWriter {
            offset: 1,
            ..Self::new(out)
        }
    }

    /// Writes one record as a line. Errors: a record without a label, or a failed write.
    pub fn write_record(&mut self, record: &Record) -> Result<(), FormatError> {
        self.records += 1;
        let line = self.records;
        let Some(label) = record.label else {
            return Err(FormatError::malformed(
                "output",
                Location::Line(line),
                Some("label".to_string()),
                "libsvm needs a label on every line; the record has none",
            ));
        };
        let offset = self.offset;
        let result = (|| {
            let out = &mut self.out;
            write_f32(out, label)?;
            if let Some(weight) = record.weight {
                out.write_all(b":")?;
                write_f32(out, weight)?;
            }
            let mut write_entry = |index: u64, value: f32| -> std::io::Result<()> {
                if value.is_nan() {
                    return Ok(());
                }
                write!(out, " {}:", index + offset)?;
                write_f32(out, value)
            };
            match &record.features {
                Features::Dense(values) => {
                    for (index, &value) in values.iter().enumerate() {
                        write_entry(index as u64, value)?;
                    }
                }
                Features::Sparse {
                    indices, values, ..
                } => {
                    for (&index, &value) in indices.iter().zip(values) {
                        write_entry(u64::from(index), value)?;
                    }
                }
            }
            out.write_all(b"\n")
        })();
        result.map_err(|error| FormatError::write_failed(Location::Line(line), error))
    }

    /// Flushes and returns the destination.
    pub fn into_inner(self) -> Result<W, FormatError> {
        let line = self.records;
        self.out
            .into_inner()
            .map_err(|error| FormatError::write_failed(Location::Line(line), error.into_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, indexing: Indexing) -> Vec<Result<Record, FormatError>> {
        LibsvmReader::with_options(text.as_bytes(), "train.libsvm", LibsvmOptions { indexing })
            .collect()
    }

    fn read_ok(text: &str, indexing: Indexing) -> Vec<Record> {
        read(text, indexing)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn sparse(indices: Vec<u32>, values: Vec<f32>) -> Features {
        Features::Sparse {
            indices,
            values,
            dim: None,
        }
    }

    fn last_error(text: &str, indexing: Indexing) -> String {
        let results = read(text, indexing);
        results
            .last()
            .unwrap()
            .as_ref()
            .expect_err("ends in an error")
            .to_string()
    }

    #[test]
    fn default_is_zero_based_like_xgboost() {
        let records: Vec<_> = LibsvmReader::new("1 1:0.5 3:2\n".as_bytes(), "t")
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records[0].features, sparse(vec![1, 3], vec![0.5, 2.0]));
        assert_eq!(records[0].label, Some(1.0));
        assert_eq!(records[0].weight, None);
    }

    #[test]
    fn one_based_shifts_indices() {
        let records = read_ok("1 1:0.5 3:2\n", Indexing::OneBased);
        assert_eq!(records[0].features, sparse(vec![0, 2], vec![0.5, 2.0]));
        let message = last_error("1 0:1\n", Indexing::OneBased);
        assert!(message.contains("line 1, field index 0"), "{message}");
    }

    #[test]
    fn auto_detects_one_based_when_no_index_is_zero() {
        let records = read_ok("1 1:0.5 3:2\n0 2:1.5\n", Indexing::Auto);
        assert_eq!(records[0].features, sparse(vec![0, 2], vec![0.5, 2.0]));
        assert_eq!(records[1].features, sparse(vec![1], vec![1.5]));
        let records = read_ok("1 1:0.5\n0 0:1.5 2:1\n", Indexing::Auto);
        assert_eq!(records[0].features, sparse(vec![1], vec![0.5]));
        assert_eq!(records[1].features, sparse(vec![0, 2], vec![1.5, 1.0]));
    }

    #[test]
    fn auto_detection_looks_at_a_bounded_window() {
        let mut text = String::new();
        for _ in 0..AUTO_DETECT_RECORDS {
            text.push_str("1 1:1\n");
        }
        text.push_str("0 0:1\n");
        let results = read(&text, Indexing::Auto);
        assert_eq!(results.len(), AUTO_DETECT_RECORDS + 1);
        let message = results.last().unwrap().as_ref().unwrap_err().to_string();
        assert!(
            message.contains(&format!("line {}", AUTO_DETECT_RECORDS + 1)),
            "{message}"
        );
        assert!(message.contains("1-based"), "{message}");
    }

    #[test]
    fn auto_detection_returns_records_before_an_error() {
        let results = read("1 1:1\n0 x\n", Indexing::Auto);
        assert_eq!(results.len(), 2);
        assert_eq!(
            results[0].as_ref().unwrap().features,
            sparse(vec![0], vec![1.0])
        );
        assert!(results[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("line 2"));
    }

    #[test]
    fn weights_qid_comments_and_blank_lines() {
        let text = "# header comment\n\n2:0.5 qid:3 0:1\t4:-1 # trailing\r\n0\n";
        let records = read_ok(text, Indexing::ZeroBased);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].label, Some(2.0));
        assert_eq!(records[0].weight, Some(0.5));
        assert_eq!(records[0].features, sparse(vec![0, 4], vec![1.0, -1.0]));
        assert_eq!(records[1].features, sparse(vec![], vec![]));
    }

    #[test]
    fn unsorted_and_duplicate_indices_name_line_and_index() {
        let message = last_error("1 0:1\n1 3:1 2:1\n", Indexing::ZeroBased);
        assert!(
            message.contains("train.libsvm: line 2, field index 2"),
            "{message}"
        );
        assert!(message.contains("strictly increasing"), "{message}");
        let message = last_error("1 3:1 3:2\n", Indexing::ZeroBased);
        assert!(message.contains("line 1, field index 3"), "{message}");
        assert!(message.contains("twice"), "{message}");
    }

    #[test]
    fn malformed_tokens_name_the_text() {
        for (text, field, found) in [
            ("abc 1:2\n", "label", "\"abc\""),
            ("1:x 1:2\n", "weight", "\"x\""),
            ("1 5\n", "features", "\"5\""),
            ("1 -1:2\n", "features", "\"-1:2\""),
            ("1 1:y\n", "index 1", "\"1:y\""),
            ("1 qid:a 1:1\n", "qid", "\"qid:a\""),
        ] {
            let message = last_error(text, Indexing::ZeroBased);
            assert!(
                message.contains(&format!("line 1, field {field}")),
                "{message}"
            );
            assert!(message.contains(found), "{message}");
        }
    }

    #[test]
    fn too_large_index_is_an_error() {
        let message = last_error("1 4294967296:1\n", Indexing::ZeroBased);
        assert!(message.contains("too large"), "{message}");
        let records = read_ok("1 4294967296:1\n", Indexing::OneBased);
        assert_eq!(records[0].features, sparse(vec![u32::MAX], vec![1.0]));
    }

    #[test]
    fn writer_writes_what_the_reader_reads() {
        let records = vec![
            Record {
                features: Features::Dense(vec![0.0, 1.5, f32::NAN]),
                label: Some(1.0),
                weight: Some(0.5),
            },
            Record {
                features: sparse(vec![2, 7], vec![-1.0, 0.25]),
                label: Some(0.0),
                weight: None,
            },
        ];
        let mut writer = LibsvmWriter::one_based(Vec::new());
        for record in &records {
            writer.write_record(record).unwrap();
        }
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        assert_eq!(text, "1:0.5 1:0 2:1.5\n0 3:-1 8:0.25\n");
        let back = read_ok(&text, Indexing::OneBased);
        assert_eq!(back[0].features, sparse(vec![0, 1], vec![0.0, 1.5]));
        assert_eq!(back[1], records[1]);
        let mut writer = LibsvmWriter::new(Vec::new());
        let message = writer
            .write_record(&Record::dense(None, vec![1.0]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("field label"), "{message}");
    }
}
