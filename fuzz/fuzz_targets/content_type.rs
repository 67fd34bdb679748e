//! Content-type parsing never panics, and what it accepts it names by a MIME string it accepts again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_formats::ContentType;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(content_type) = ContentType::parse(text) {
        assert_eq!(
            ContentType::parse(content_type.mime()).ok(),
            Some(content_type)
        );
    }
    let _ = ContentType::from_extension(std::path::Path::new(text));
});
