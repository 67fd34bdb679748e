//! The `application/json` request reader over generated documents: JSON built from the keys and kinds of values
//! SageMaker's request shapes use (`instances`, `features`, `data`, `values`, `keys`, `shape`, `label`, `weight`,
//! numbers at the edges of f32 and u32, `null`), nested and mixed with wrong types, so the fuzzer reaches every
//! field's checks without first having to discover JSON's syntax. The reader never panics, an error names its field
//! within the document, and the finite records it accepts read back the same from the JSON lines writer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_formats::json::{read_json_request, JsonLinesReader, JsonLinesWriter};
use tern_formats::{Features, FormatError, Record};

const KEYS: [&str; 10] = [
    "instances",
    "features",
    "data",
    "values",
    "keys",
    "shape",
    "label",
    "weight",
    "configuration",
    "x",
];
const NUMBERS: [&str; 12] = [
    "0",
    "1",
    "-1",
    "2.5",
    "null",
    "3",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "1e40",
    "-0.0",
    "1e-50",
];

/// Decisions taken from the fuzzer's bytes; zeros once they run out.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn next(&mut self, options: usize) -> usize {
        match self.0.split_first() {
            Some((&byte, rest)) => {
                self.0 = rest;
                byte as usize % options
            }
            None => 0,
        }
    }
}

fn value(choices: &mut Choices, depth: usize, out: &mut String) {
    let kind = if depth == 0 {
        choices.next(3)
    } else {
        choices.next(6)
    };
    match kind {
        0 | 1 => out.push_str(NUMBERS[choices.next(NUMBERS.len())]),
        2 => out.push_str(["\"x\"", "true", "false", "\"\""][choices.next(4)]),
        3 | 4 => {
            out.push('[');
            for i in 0..choices.next(5) {
                if i > 0 {
                    out.push(',');
                }
                value(choices, depth - 1, out);
            }
            out.push(']');
        }
        _ => {
            out.push('{');
            for i in 0..choices.next(4) {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!("\"{}\":", KEYS[choices.next(KEYS.len())]));
                value(choices, depth - 1, out);
            }
            out.push('}');
        }
    }
}

fn finite(record: &Record) -> bool {
    let values = match &record.features {
        Features::Dense(values) => values,
        Features::Sparse { values, .. } => values,
    };
    values
        .iter()
        .chain(&record.label)
        .chain(&record.weight)
        .all(|v| v.is_finite())
}

/// `record` with a sparse record's dimension stated, as the writer states it.
fn stated(record: &Record) -> Record {
    let mut record = record.clone();
    let dim = record.features.dim();
    if let Features::Sparse { dim: stated, .. } = &mut record.features {
        *stated = Some(dim);
    }
    record
}

fuzz_target!(|data: &[u8]| {
    let mut document = String::new();
    value(&mut Choices(data), 6, &mut document);
    match read_json_request(document.as_bytes(), "fuzz.json") {
        Ok(records) => {
            let mut writer = JsonLinesWriter::new(Vec::new());
            let finite: Vec<&Record> = records.iter().filter(|r| finite(r)).collect();
            for record in &finite {
                writer
                    .write_record(record)
                    .expect("writing to memory succeeds");
            }
            let lines = writer.into_inner().expect("writing to memory succeeds");
            let read: Vec<Record> = JsonLinesReader::new(lines.as_slice(), "fuzz.jsonl")
                .collect::<Result<_, FormatError>>()
                .expect("written records read back");
            assert_eq!(read.len(), finite.len());
            for (read, written) in read.iter().zip(finite) {
                assert_eq!(*read, stated(written), "{document}");
            }
        }
        Err(FormatError::Malformed { field, message, .. }) => {
            // Invalid JSON cannot come out of the generator: every error is a field's.
            let field = field.unwrap_or_else(|| panic!("no field for {message:?} in {document}"));
            assert!(!field.is_empty(), "{document}");
        }
        Err(other) => panic!("{other} for {document}"),
    }
});
