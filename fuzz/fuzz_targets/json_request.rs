//! The `application/json` request reader never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_formats::json::read_json_request;

fuzz_target!(|data: &[u8]| {
    match read_json_request(data, "fuzz.json") {
        Ok(records) => {
            for record in records {
                let _ = record.features.dim();
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
