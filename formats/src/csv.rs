//! `text/csv` as SageMaker's built-in algorithms read it: no header, one record per line, the label in the first
//! column (`label_size=1`, the default) or no label at all (`label_size=0`), then the features.
//!
//! Reading rules:
//! - Fields are separated by [`CsvOptions::delimiter`] (a comma); there is no quoting. Spaces and tabs around a field
//!   are ignored.
//! - Values parse as `f32` (`1`, `-2.5e-3`, `inf`). An empty field and the missing-value spellings below read as NaN,
//!   as xgboost reads them (missing); algorithms that cannot take NaN reject it themselves. The spellings are
//!   pandas' default `na_values` plus `?`: `""`, `?`, `nan`/`NaN`/`NAN` (any case, signed), `NA`, `N/A`, `n/a`,
//!   `#N/A`, `#N/A N/A`, `#NA`, `-1.#IND`, `-1.#QNAN`, `1.#IND`, `1.#QNAN`, `<NA>`, `NULL`, `null`, `None`.
//! - With [`CsvOptions::weight_column`] (xgboost's `csv_weights=1`) the column after the label is the instance weight.
//! - Every row must have as many fields as the first; a row that does not, or a field that is not a number, is an
//!   error naming the source, line and column (1-based, counting the label column) and the text found.
//! - Blank lines are skipped (they still count for line numbers); `\r\n` endings and a UTF-8 byte order mark are
//!   accepted.
//!
//! The reader holds one line in memory at a time and stops after the first error.

use std::io::{BufWriter, Read, Write};

use crate::text::{is_blank, number_problem, parse_f32, quote, trim, write_f32, LineReader};
use crate::{Features, FormatError, Location, Record};

/// How to split a CSV row into label, weight and features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Leading label columns: 1 (training data, SageMaker's default) or 0 (`text/csv;label_size=0`).
    pub label_size: usize,
    /// The column after the label holds the instance weight (xgboost's `csv_weights=1`).
    pub weight_column: bool,
    /// The field separator; `b','` by default.
    pub delimiter: u8,
}

impl Default for CsvOptions {
    /// SageMaker's training layout: label in the first column, no weight column, comma-separated.
    fn default() -> Self {
        CsvOptions {
            label_size: 1,
            weight_column: false,
            delimiter: b',',
        }
    }
}

/// Streams [`Record`]s (dense features) from CSV text; see the [module docs](self) for the rules.
pub struct CsvReader<R> {
    lines: LineReader<R>,
    options: CsvOptions,
    /// The field count and line of the first data row, which every later row must match.
    first_row: Option<(usize, u64)>,
    done: bool,
}

impl<R: Read> CsvReader<R> {
    /// A reader over `input`; `source` names the file or channel in errors.
    pub fn new(input: R, source: &str, options: CsvOptions) -> Self {
        CsvReader {
            lines: LineReader::new(input, source),
            options,
            first_row: None,
            done: false,
        }
    }

    fn error(&self, line: u64, column: Option<usize>, message: String) -> FormatError {
        FormatError::malformed(
            self.lines.source(),
            Location::Line(line),
            column.map(|c| format!("column {c}")),
            message,
        )
    }

    fn read_record(&mut self) -> Result<Option<Record>, FormatError> {
        if self.options.label_size > 1 {
            return Err(FormatError::malformed(
                self.lines.source(),
                Location::Whole,
                Some("label_size".to_string()),
                format!(
                    "label_size={} is not supported; expected 0 or 1",
                    self.options.label_size
                ),
            ));
        }
        let delimiter = self.options.delimiter;
        let leading = self.options.label_size + usize::from(self.options.weight_column);
        loop {
            let Some((line_number, line)) = self.lines.next_line()? else {
                return Ok(None);
            };
            if is_blank(line) {
                continue;
            }
            // Copy out what the checks below need; `line` borrows the reader's buffer.
            let field_count = line.iter().filter(|&&b| b == delimiter).count() + 1;
            let mut label = None;
            let mut weight = None;
            let mut features = Vec::with_capacity(field_count.saturating_sub(leading));
            let mut bad_field = None;
            for (index, field) in line.split(|&b| b == delimiter).enumerate() {
                match parse_value(field) {
                    Some(value) if index < self.options.label_size => label = Some(value),
                    Some(value) if index < leading => weight = Some(value),
                    Some(value) => features.push(value),
                    None => {
                        bad_field =
                            Some((index + 1, quote(trim(field)), number_problem(trim(field))));
                        break;
                    }
                }
            }
            let (expected, first_line) = *self.first_row.get_or_insert((field_count, line_number));
            if field_count != expected {
                let column = field_count.min(expected) + 1;
                return Err(self.error(
                    line_number,
                    Some(column),
                    format!(
                        "found {field_count} fields, expected {expected} as on line {first_line} (rows must not be ragged)"
                    ),
                ));
            }
            if let Some((column, text, problem)) = bad_field {
                let what = if column <= self.options.label_size {
                    "label"
                } else if column <= leading {
                    "weight"
                } else {
                    "feature"
                };
                return Err(self.error(
                    line_number,
                    Some(column),
                    format!("expected a number ({what}), found {text}: {problem}"),
                ));
            }
            if field_count < leading {
                return Err(self.error(
                    line_number,
                    Some(field_count + 1),
                    format!(
                        "found {field_count} fields, expected at least {leading} (label{})",
                        if self.options.weight_column {
                            " and weight"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            return Ok(Some(Record {
                features: Features::Dense(features),
                label,
                weight,
            }));
        }
    }
}

impl<R: Read> Iterator for CsvReader<R> {
    type Item = Result<Record, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let read = self.read_record();
        crate::text::fuse(read, &mut self.done)
    }
}

/// Parses one field: a number, NaN for an empty field or a missing-value spelling, `None` for anything else.
fn parse_value(field: &[u8]) -> Option<f32> {
    let field = trim(field);
    if is_missing(field) {
        return Some(f32::NAN);
    }
    parse_f32(field)
}

/// pandas' default `na_values`, `?`, and NaN in any case.
fn is_missing(field: &[u8]) -> bool {
    const SPELLINGS: &[&[u8]] = &[
        b"",
        b"?",
        b"NA",
        b"N/A",
        b"n/a",
        b"#N/A",
        b"#N/A N/A",
        b"#NA",
        b"-1.#IND",
        b"-1.#QNAN",
        b"1.#IND",
        b"1.#QNAN",
        b"<NA>",
        b"NULL",
        b"null",
        b"None",
    ];
    let unsigned = field
        .strip_prefix(b"-")
        .or_else(|| field.strip_prefix(b"+"))
        .unwrap_or(field);
    unsigned.eq_ignore_ascii_case(b"nan") || SPELLINGS.contains(&field)
}

/// Writes records as SageMaker CSV: label (when present), weight (when present), then the features, each row
/// `\n`-terminated. Numbers are written in the shortest form that reads back to the same `f32` (NaN as `NaN`).
///
/// Every record must have the same layout as the first (label or not, weight or not, feature count), so the output
/// is never ragged; sparse features are written densely over their [`Features::dim`], zeros filled in.
pub struct CsvWriter<W: Write> {
    out: BufWriter<W>,
    rows: u64,
    layout: Option<Layout>,
    row: Vec<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    label: bool,
    weight: bool,
    features: usize,
}

impl<W: Write> CsvWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> Self {
        CsvWriter {
            out: BufWriter::new(out),
            rows: 0,
            layout: None,
            row: Vec::new(),
        }
    }

    /// Writes one record as a row. Errors: a layout different from the first record's, or a failed write.
    pub fn write_record(&mut self, record: &Record) -> Result<(), FormatError> {
        let layout = Layout {
            label: record.label.is_some(),
            weight: record.weight.is_some(),
            features: record.features.dim(),
        };
        let row_number = self.rows + 1;
        let expected = *self.layout.get_or_insert(layout);
        if layout != expected {
            let describe = |l: Layout| {
                format!(
                    "{}{}{} features",
                    if l.label { "label, " } else { "" },
                    if l.weight { "weight, " } else { "" },
                    l.features
                )
            };
            return Err(FormatError::malformed(
                "output",
                Location::Line(row_number),
                None,
                format!(
                    "record has {} but the first row has {}; CSV rows must share one layout",
                    describe(layout),
                    describe(expected)
                ),
            ));
        }
        self.row.clear();
        self.row.extend(record.label);
        self.row.extend(record.weight);
        let start = self.row.len();
        self.row.resize(start + layout.features, 0.0);
        record.features.write_dense(&mut self.row[start..]);
        let row = std::mem::take(&mut self.row);
        let result = self.write_values(&row);
        self.row = row;
        result
    }

    /// Writes one row of values as they are (e.g. a prediction row).
    pub fn write_values(&mut self, values: &[f32]) -> Result<(), FormatError> {
        self.rows += 1;
        let row_number = self.rows;
        write_row(&mut self.out, values)
            .map_err(|error| FormatError::write_failed(Location::Line(row_number), error))
    }

    /// Flushes and returns the destination.
    pub fn into_inner(self) -> Result<W, FormatError> {
        let rows = self.rows;
        self.out
            .into_inner()
            .map_err(|error| FormatError::write_failed(Location::Line(rows), error.into_error()))
    }
}

fn write_row<W: Write>(out: &mut W, values: &[f32]) -> std::io::Result<()> {
    for (index, &value) in values.iter().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        write_f32(out, value)?;
    }
    out.write_all(b"\n")
}

/// Writes rows of `f32` (e.g. predictions, one row per record) as CSV into `out` and flushes it.
pub fn write_rows<W: Write, Row: AsRef<[f32]>>(
    out: W,
    rows: impl IntoIterator<Item = Row>,
) -> Result<(), FormatError> {
    let mut writer = CsvWriter::new(out);
    for row in rows {
        writer.write_values(row.as_ref())?;
    }
    writer.into_inner().map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, options: CsvOptions) -> Vec<Result<Record, FormatError>> {
        CsvReader::new(text.as_bytes(), "train.csv", options).collect()
    }

    fn read_ok(text: &str, options: CsvOptions) -> Vec<Record> {
        read(text, options)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn error_text(text: &str, options: CsvOptions) -> String {
        let results = read(text, options);
        let last = results.last().expect("an error");
        last.as_ref()
            .expect_err("the last item is an error")
            .to_string()
    }

    #[test]
    fn reads_label_first_rows() {
        let records = read_ok("1,0.5,2\n0, 1.5 ,-1e-3\n", CsvOptions::default());
        assert_eq!(records.len(), 2);
        assert_eq!(records[0], Record::dense(Some(1.0), vec![0.5, 2.0]));
        assert_eq!(records[1], Record::dense(Some(0.0), vec![1.5, -1e-3]));
    }

    #[test]
    fn label_size_zero_rows_are_all_features() {
        let options = CsvOptions {
            label_size: 0,
            ..Default::default()
        };
        let records = read_ok("1,2,3\n", options);
        assert_eq!(records, vec![Record::dense(None, vec![1.0, 2.0, 3.0])]);
    }

    #[test]
    fn weight_column_follows_the_label() {
        let options = CsvOptions {
            weight_column: true,
            ..Default::default()
        };
        let records = read_ok("1,0.25,7,8\n", options);
        assert_eq!(records[0].label, Some(1.0));
        assert_eq!(records[0].weight, Some(0.25));
        assert_eq!(records[0].features, Features::Dense(vec![7.0, 8.0]));
    }

    #[test]
    fn missing_values_read_as_nan() {
        let records = read_ok("1,,nan,NaN,?,NA,-nan,null,3\n", CsvOptions::default());
        let Features::Dense(values) = &records[0].features else {
            panic!("dense")
        };
        assert_eq!(values.len(), 8);
        assert!(values[..7].iter().all(|v| v.is_nan()));
        assert_eq!(values[7], 3.0);
    }

    #[test]
    fn blank_lines_crlf_and_bom_are_accepted() {
        let records = read_ok("\u{feff}1,2\r\n\r\n  \n0,3\r\n", CsvOptions::default());
        assert_eq!(
            records,
            vec![
                Record::dense(Some(1.0), vec![2.0]),
                Record::dense(Some(0.0), vec![3.0])
            ]
        );
    }

    #[test]
    fn ragged_rows_name_line_and_column() {
        let message = error_text("1,2,3\n\n0,4\n", CsvOptions::default());
        assert!(message.contains("train.csv"), "{message}");
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("column 3"), "{message}");
        assert!(message.contains("found 2 fields, expected 3"), "{message}");
    }

    #[test]
    fn non_numeric_fields_name_line_column_and_text() {
        let message = error_text("1,2,3\n0,4,abc\n", CsvOptions::default());
        assert!(
            message.contains("train.csv: line 2, field column 3"),
            "{message}"
        );
        assert!(message.contains("\"abc\""), "{message}");
        let message = error_text("yes,2\n", CsvOptions::default());
        assert!(message.contains("line 1, field column 1"), "{message}");
        assert!(message.contains("label"), "{message}");
    }

    #[test]
    fn rows_too_short_for_label_and_weight_are_errors() {
        let options = CsvOptions {
            weight_column: true,
            ..Default::default()
        };
        let message = error_text("1\n", options);
        assert!(message.contains("line 1, field column 2"), "{message}");
    }

    #[test]
    fn stops_after_the_first_error() {
        let results = read("1,x\n2,3\n", CsvOptions::default());
        assert_eq!(results.len(), 1);
        assert!(results[0].is_err());
    }

    #[test]
    fn label_size_above_one_is_rejected() {
        let options = CsvOptions {
            label_size: 2,
            ..Default::default()
        };
        assert!(error_text("1,2,3\n", options).contains("label_size=2"));
    }

    #[test]
    fn writer_round_trips_and_refuses_ragged_output() {
        let records = vec![
            Record {
                features: Features::Dense(vec![0.1, f32::NAN, 1e-30]),
                label: Some(2.0),
                weight: Some(0.5),
            },
            Record {
                features: Features::Sparse {
                    indices: vec![1],
                    values: vec![-4.0],
                    dim: Some(3),
                },
                label: Some(0.0),
                weight: Some(1.0),
            },
        ];
        let mut writer = CsvWriter::new(Vec::new());
        for record in &records {
            writer.write_record(record).unwrap();
        }
        let bad = Record::dense(Some(1.0), vec![1.0]);
        let message = writer.write_record(&bad).unwrap_err().to_string();
        assert!(message.contains("line 3"), "{message}");
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        assert_eq!(text, "2,0.5,0.1,NaN,1e-30\n0,1,0,-4,0\n");
        let options = CsvOptions {
            weight_column: true,
            ..Default::default()
        };
        let back = read_ok(&text, options);
        assert_eq!(
            back[1],
            Record {
                features: Features::Dense(vec![0.0, -4.0, 0.0]),
                label: Some(0.0),
                weight: Some(1.0)
            }
        );
    }

    #[test]
    fn write_rows_writes_predictions() {
        let mut out = Vec::new();
        write_rows(&mut out, [[0.25f32, 1.0], [3.0, -2.5]]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "0.25,1\n3,-2.5\n");
    }
}
