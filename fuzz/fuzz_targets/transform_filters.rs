//! Batch transform's `DataProcessing` never panics, whatever the filter expressions and the records: an
//! `InputFilter` / `OutputFilter` is parsed or refused with a position inside the expression, and a parsed one
//! prints back as itself; a record parses (CSV or JSON) or is refused, and one that parses writes back to text that
//! parses to the same value; the filters select or fail on any record; `JoinSource` `Input` keeps the output under
//! `SageMakerOutput` of a JSON record; a JSON response splits into one value per record or is refused.
//!
//! The steps are those a transform job takes for each record: parse the input record, apply `InputFilter`, write
//! the request; parse the output line, join it with the input record, apply `OutputFilter`, write the result.
//! Input bytes: the first picks the input format (CSV or JSON), the output format, whether to join, and how many
//! records the response is split for; the rest, read as UTF-8 (lossily), is `InputFilter`, `OutputFilter` and the
//! output line on the first three lines and the input record after them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_edge::transform::jsonpath::{JsonPath, PathError};
use tern_edge::transform::processing::{
    csv_output_as_json, join, split_json_response, RecordFormat,
};

fn format(bit: bool) -> RecordFormat {
    if bit {
        RecordFormat::Json
    } else {
        RecordFormat::Csv
    }
}

/// The filter `expression`, checking that an error points inside it and that a parsed one prints back as itself.
fn filter(expression: &str) -> Option<JsonPath> {
    match JsonPath::parse(expression) {
        Ok(path) => {
            assert_eq!(JsonPath::parse(path.as_str()).as_ref(), Ok(&path));
            Some(path)
        }
        Err(PathError::Syntax {
            expression: quoted,
            position,
            ..
        }) => {
            assert!(position <= quoted.len(), "{position} past {quoted:?}");
            None
        }
        Err(other) => panic!("parsing gave {other}"),
    }
}

/// Parses `text` as `format`, checking that what parses writes back to text that parses to the same value.
fn record(format: RecordFormat, text: &str) -> Option<serde_json::Value> {
    let value = format.parse(text).ok()?;
    let written = format.write(&value);
    assert_eq!(format.parse(&written).as_ref(), Ok(&value), "{written:?}");
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let input_format = format(flags & 1 != 0);
    let output_format = format(flags & 2 != 0);
    let join_input = flags & 4 != 0;
    let records = usize::from(flags >> 3 & 3);
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.splitn(4, '\n');
    let input_filter = filter(parts.next().unwrap_or_default());
    let output_filter = filter(parts.next().unwrap_or_default());
    let output_line = parts.next().unwrap_or_default();
    let input_text = parts.next().unwrap_or_default();

    let input = record(input_format, input_text);
    if let (Some(input), Some(input_filter)) = (&input, &input_filter) {
        if let Ok(selected) = input_filter.select(input) {
            let _ = input_format.write(&selected);
        }
    }

    let output = if join_input && output_format == RecordFormat::Csv {
        csv_output_as_json(output_line).ok()
    } else {
        record(output_format, output_line)
    };
    let Some(output) = output else {
        return;
    };
    if let Ok(split) = split_json_response(&output, records) {
        assert_eq!(split.len(), records);
    }
    let Some(input) = input else {
        return;
    };
    let (result, written_format) = if join_input {
        let joined = join(input, input_format, output.clone());
        if input_format == RecordFormat::Json {
            let kept = JsonPath::parse("$.SageMakerOutput")
                .expect("the path parses")
                .select(&joined);
            assert_eq!(kept, Ok(output));
        }
        (joined, input_format)
    } else {
        (output, output_format)
    };
    if let Some(output_filter) = output_filter {
        if let Ok(selected) = output_filter.select(&result) {
            let _ = written_format.write(&selected);
        }
    }
});
