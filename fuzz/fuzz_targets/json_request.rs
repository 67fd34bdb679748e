//! The `application/json` request reader never panics, and its streaming and collecting forms agree: the same
//! records in the same order, or the same error after the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_formats::json::{read_json_request, stream_json_request};
use tern_formats::FormatError;

fuzz_target!(|data: &[u8]| {
    let mut streamed = Vec::new();
    let streaming = stream_json_request(data, "fuzz.json", |record| {
        streamed.push(format!("{record:?}"));
        Ok::<(), FormatError>(())
    });
    match read_json_request(data, "fuzz.json") {
        Ok(records) => {
            assert!(streaming.is_ok(), "{streaming:?}");
            let collected: Vec<String> = records.iter().map(|r| format!("{r:?}")).collect();
            assert_eq!(collected, streamed);
            for record in records {
                let _ = record.features.dim();
            }
        }
        Err(error) => {
            let streaming = streaming.expect_err("the streaming form fails too");
            assert_eq!(error.to_string(), streaming.to_string());
        }
    }
});
