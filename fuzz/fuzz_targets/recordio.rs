//! The RecordIO-protobuf reader never panics; records it accepts, the writer writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_formats::recordio::{RecordIoReader, RecordIoWriter};

fuzz_target!(|data: &[u8]| {
    let mut writer = RecordIoWriter::new(Vec::new());
    for record in RecordIoReader::new(data, "fuzz.rec") {
        match record {
            Ok(record) => writer
                .write_record(&record)
                .expect("RecordIO records carry no weight"),
            Err(error) => {
                let _ = error.to_string();
            }
        }
    }
    let _ = writer.into_inner();
});
