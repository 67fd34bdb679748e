//! The libsvm reader never panics, in any indexing mode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_formats::libsvm::{Indexing, LibsvmOptions, LibsvmReader, LibsvmWriter};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let indexing = match flags % 3 {
        0 => Indexing::ZeroBased,
        1 => Indexing::OneBased,
        _ => Indexing::Auto,
    };
    let mut writer = LibsvmWriter::new(Vec::new());
    for record in LibsvmReader::with_options(input, "fuzz.libsvm", LibsvmOptions { indexing }) {
        match record {
            Ok(record) => writer
                .write_record(&record)
                .expect("libsvm records carry a label"),
            Err(error) => {
                let _ = error.to_string();
            }
        }
    }
    let _ = writer.into_inner();
});
