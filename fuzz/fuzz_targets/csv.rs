//! The CSV reader never panics, whatever the bytes and options; what it reads, the writer writes back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_formats::csv::{CsvOptions, CsvReader, CsvWriter};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let options = CsvOptions {
        label_size: usize::from(flags & 1),
        weight_column: flags & 2 != 0,
        delimiter: if flags & 4 != 0 { b'\t' } else { b',' },
    };
    let mut writer = CsvWriter::new(Vec::new());
    for record in CsvReader::new(input, "fuzz.csv", options) {
        match record {
            Ok(record) => writer
                .write_record(&record)
                .expect("rows the reader accepted share one layout"),
            Err(error) => {
                let _ = error.to_string();
            }
        }
    }
    let _ = writer.into_inner();
});
