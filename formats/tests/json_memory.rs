//! Memory taken by decoding `application/json` requests, counted by a global allocator (exact and repeatable, unlike
//! RSS): a streamed request needs memory for one record, never for the document; a single huge record at most a
//! few bytes per number it holds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use tern_formats::json::{read_json_request, stream_json_request};
use tern_formats::{Features, FormatError};

/// The system allocator, counting the bytes currently allocated and their peak.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc(layout);
        if !pointer.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        System.dealloc(pointer, layout);
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = System.realloc(pointer, layout, new_size);
        if !moved.is_null() {
            if new_size >= layout.size() {
                let grown = new_size - layout.size();
                let now = CURRENT.fetch_add(grown, Ordering::Relaxed) + grown;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most bytes allocated at once while `work` ran, above what was allocated before it.
fn peak_during<T>(work: impl FnOnce() -> T) -> (T, usize) {
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let result = work();
    (result, PEAK.load(Ordering::Relaxed) - before)
}

/// `items` joined by commas inside `[...]`, about `bytes` long.
fn array_of(item: &str, bytes: usize) -> Vec<u8> {
    let count = bytes / (item.len() + 1);
    let mut text = String::with_capacity(count * (item.len() + 1) + 2);
    text.push('[');
    for i in 0..count {
        if i > 0 {
            text.push(',');
        }
        text.push_str(item);
    }
    text.push(']');
    text.into_bytes()
}

const SIX_MB: usize = 6 * 1024 * 1024;

// One test: the allocator's counters are process-wide, so nothing may run beside it.
#[test]
fn decoding_takes_memory_in_proportion_to_the_payload_not_to_the_document_tree() {
    // 1.5 million one-number records: streamed, only one record exists at a time.
    let tiny_records = array_of("[0]", SIX_MB);
    let (records, peak) = peak_during(|| {
        let mut records = 0usize;
        stream_json_request(tiny_records.as_slice(), "request", |record| {
            assert_eq!(record.features, Features::Dense(vec![0.0]));
            records += 1;
            Ok::<(), FormatError>(())
        })
        .unwrap();
        records
    });
    assert_eq!(records, tiny_records.len() / 4);
    assert!(
        peak < 64 * 1024,
        "streaming {records} records held {peak} bytes at once"
    );

    // The same inside {"instances": [...]} with SageMaker's object form.
    let mut wrapped = b"{\"instances\": ".to_vec();
    wrapped.extend(array_of(
        r#"{"data": {"features": {"values": [0, 1.5, null]}}, "configuration": {}}"#,
        SIX_MB,
    ));
    wrapped.push(b'}');
    let ((), peak) = peak_during(|| {
        stream_json_request(wrapped.as_slice(), "request", |_| Ok::<(), FormatError>(())).unwrap()
    });
    assert!(peak < 64 * 1024, "{peak} bytes");

    // One record of 3 million numbers: 4 bytes each, as the record holds them, against at least 2 of text; the
    // vector's doubling may add as much again.
    let one_record = array_of("0", SIX_MB);
    let (records, peak) =
        peak_during(|| read_json_request(one_record.as_slice(), "request").unwrap());
    assert_eq!(records.len(), 1);
    assert!(
        peak <= 4 * one_record.len(),
        "a {} byte record took {peak} bytes",
        one_record.len()
    );
    drop(records);

    // A malformed request stops at its fault, having decoded no more than it.
    let (error, peak) = peak_during(|| {
        stream_json_request(tiny_records.as_slice(), "request", |record| {
            match record.features.dim() {
                1 => Err(FormatError::malformed(
                    "request",
                    tern_formats::Location::Whole,
                    None,
                    "expected 30 features, found 1",
                )),
                _ => Ok(()),
            }
        })
        .unwrap_err()
    });
    assert!(
        error.to_string().contains("expected 30 features"),
        "{error}"
    );
    assert!(peak < 64 * 1024, "{peak} bytes");
}
