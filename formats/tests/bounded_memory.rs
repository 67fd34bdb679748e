//! Every streaming reader returns records from an endless input (a Pipe-mode FIFO that never closes): a reader that
//! buffered its whole input would never return. The bytes each reader pulls are also checked to stay within one
//! read buffer of what the records it returned occupy.

use std::io::Read;

use tern_formats::csv::{CsvOptions, CsvReader};
use tern_formats::json::JsonLinesReader;
use tern_formats::libsvm::{Indexing, LibsvmOptions, LibsvmReader};
use tern_formats::recordio::{RecordIoReader, RecordIoWriter};
use tern_formats::{Features, FormatError, Record};

const RECORDS: usize = 100_000;

/// Repeats `unit` forever, counting the bytes handed out.
struct Endless {
    unit: Vec<u8>,
    position: usize,
    served: u64,
}

impl Endless {
    fn new(unit: &[u8]) -> Self {
        Endless {
            unit: unit.to_vec(),
            position: 0,
            served: 0,
        }
    }
}

impl Read for Endless {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        for byte in buffer.iter_mut() {
            *byte = self.unit[self.position];
            self.position = (self.position + 1) % self.unit.len();
        }
        self.served += buffer.len() as u64;
        Ok(buffer.len())
    }
}

/// Shares the served-byte count with the test after the reader takes ownership of the source.
struct Counted<'a> {
    source: Endless,
    served: &'a std::cell::Cell<u64>,
}

impl Read for Counted<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.source.read(buffer)?;
        self.served.set(self.source.served);
        Ok(n)
    }
}

fn check_stream<'a, I>(
    reader: impl FnOnce(Counted<'a>) -> I,
    unit: &[u8],
    served: &'a std::cell::Cell<u64>,
    expected: &Record,
) where
    I: Iterator<Item = Result<Record, FormatError>>,
{
    let records = reader(Counted {
        source: Endless::new(unit),
        served,
    });
    let mut count = 0;
    for record in records.take(RECORDS) {
        let record = record.unwrap();
        assert_eq!(&record, expected);
        count += 1;
    }
    assert_eq!(count, RECORDS);
    // One record per unit, plus at most a few read buffers (std's BufReader holds 8 KiB).
    let bound = (RECORDS * unit.len()) as u64 + 64 * 1024;
    assert!(
        served.get() <= bound,
        "pulled {} bytes for {RECORDS} records of {} bytes",
        served.get(),
        unit.len()
    );
}

#[test]
fn csv_streams_from_an_endless_source() {
    let served = std::cell::Cell::new(0);
    check_stream(
        |input| CsvReader::new(input, "fifo", CsvOptions::default()),
        b"1,0.5,2\n",
        &served,
        &Record::dense(Some(1.0), vec![0.5, 2.0]),
    );
}

#[test]
fn libsvm_streams_from_an_endless_source() {
    let expected = Record {
        features: Features::Sparse {
            indices: vec![0, 3],
            values: vec![0.5, 2.0],
            dim: None,
        },
        label: Some(1.0),
        weight: None,
    };
    let served = std::cell::Cell::new(0);
    check_stream(
        |input| LibsvmReader::new(input, "fifo"),
        b"1 0:0.5 3:2\n",
        &served,
        &expected,
    );
    // Auto-detection reads a bounded window ahead, then streams.
    let served = std::cell::Cell::new(0);
    check_stream(
        |input| {
            LibsvmReader::with_options(
                input,
                "fifo",
                LibsvmOptions {
                    indexing: Indexing::Auto,
                },
            )
        },
        b"1 1:0.5 4:2\n",
        &served,
        &expected,
    );
}

#[test]
fn json_lines_stream_from_an_endless_source() {
    let served = std::cell::Cell::new(0);
    check_stream(
        |input| JsonLinesReader::new(input, "fifo"),
        b"{\"features\": [0.5, 2], \"label\": 1}\n",
        &served,
        &Record::dense(Some(1.0), vec![0.5, 2.0]),
    );
}

#[test]
fn recordio_streams_from_an_endless_source() {
    let record = Record::dense(Some(1.0), vec![0.5, 2.0]);
    let mut writer = RecordIoWriter::new(Vec::new());
    writer.write_record(&record).unwrap();
    let unit = writer.into_inner().unwrap();
    let served = std::cell::Cell::new(0);
    check_stream(
        |input| RecordIoReader::new(input, "fifo"),
        &unit,
        &served,
        &record,
    );
}
