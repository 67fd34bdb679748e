//! The JSON lines reader never panics; records it accepts, the writer writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_formats::json::{JsonLinesReader, JsonLinesWriter};

fuzz_target!(|data: &[u8]| {
    let mut writer = JsonLinesWriter::new(Vec::new());
    for record in JsonLinesReader::new(data, "fuzz.jsonl") {
        match record {
            Ok(record) => writer
                .write_record(&record)
                .expect("writing to memory succeeds"),
            Err(error) => {
                let _ = error.to_string();
            }
        }
    }
    let _ = writer.into_inner();
});
