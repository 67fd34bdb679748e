//! Decoding an `/invocations` body never panics, whatever the body, its content type and the lengths it declares:
//! `Package::decode_request_up_to` (what the endpoint calls on the body it read, with its batch size as the row
//! limit) returns rows of the model's width, no more than the limit, and agrees with the unlimited
//! `decode_request`; and the streaming readers beneath it read the same records, or fail with the same error, when
//! the body arrives in arbitrary pieces as from a socket.
//!
//! The package is a real one built once in the target: a three-feature linear regressor (`MatMul`) accepting CSV,
//! libsvm, RecordIO-protobuf, JSON lines and JSON. Input bytes: the first picks the content type (one the package
//! refuses among them) and whether the rest is the body as it is or RecordIO frames built from it; the second is
//! the row limit (0 to 7); the third seeds the sizes of the pieces the body is read in. Frames are
//! `[flag][declared length][length][payload]`, the declared length often lying about the payload that follows
//! (a few bytes off, or the largest a frame holds), the payload raw or a well-formed record of fuzzed floats, so the
//! fuzzer reaches the frame reader's length checks, multi-part records and the protobuf decoder.
#![no_main]

use std::io::Read;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use tern_formats::json::stream_json_request;
use tern_formats::recordio::{RecordIoWriter, MAGIC, MAX_FRAME_LENGTH};
use tern_formats::{open_reader, ContentType, FormatError, Record};
use tern_runtime::onnx::{data_type, ModelProto, NodeProto, TensorProto};
use tern_runtime::{EngineKind, Package};

const FEATURES: usize = 3;
const CONTENT_TYPES: [&str; 8] = [
    "text/csv",
    "text/csv;label_size=1",
    "text/libsvm",
    "application/x-recordio-protobuf",
    "application/jsonlines",
    "application/json",
    "application/x-parquet",
    "text/plain",
];

/// score = input · w, a regressor over three features.
fn package() -> &'static Package {
    static PACKAGE: OnceLock<Package> = OnceLock::new();
    PACKAGE.get_or_init(|| {
        let graph = ModelProto::over_rows(
            "input",
            FEATURES,
            vec![NodeProto::new(
                "MatMul",
                "",
                "score",
                &["input", "w"],
                &["score"],
                vec![],
            )],
            vec![TensorProto::from_f32(
                "w",
                &[FEATURES, 1],
                &[0.5, -1.0, 2.0],
            )],
            &[("score", data_type::FLOAT)],
        )
        .to_bytes();
        let digest: String = Sha256::digest(&graph)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let manifest = serde_json::json!({
            "manifest_version": 1,
            "tern_version": "0.1.0",
            "algorithm": "linear-learner",
            "precision": "fp32",
            "targets": ["x86_64"],
            "feature_dim": FEATURES,
            "inputs": [{"name": "input", "dtype": "float32", "shape": [null, FEATURES]}],
            "outputs": [{"name": "score", "dtype": "float32", "shape": [null, 1]}],
            "accepts": ["text/csv", "text/libsvm", "application/x-recordio-protobuf",
                "application/jsonlines", "application/json"],
            "produces": ["application/json"],
            "response": {"kind": "supervised", "task": "regressor", "score": "score"},
            "opsets": {"": 17},
            "graph_sha256": digest,
            "tolerance": {"absolute": 0.0, "relative": 0.0, "label_agreement": 1.0,
                "measured_absolute": 0.0, "measured_label_agreement": 1.0, "verified_rows": 0}
        })
        .to_string();
        Package::from_bytes_with(manifest.as_bytes(), &graph, EngineKind::Interpreter)
            .expect("the fuzz target's package loads")
    })
}

/// Decisions and bytes taken from the fuzzer's input; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// A well-formed RecordIO record's protobuf payload: a dense float32 record of up to five values, maybe labelled.
fn record_payload(bytes: &mut Bytes) -> Vec<u8> {
    let values = (0..bytes.byte() % 6)
        .map(|_| f32::from(bytes.byte() as i8) / 4.0)
        .collect();
    let label = (bytes.byte() % 2 == 0).then_some(1.0);
    let mut writer = RecordIoWriter::new(Vec::new());
    writer
        .write_record(&Record::dense(label, values))
        .expect("finite values encode");
    let frame = writer.into_inner().expect("writing to memory succeeds");
    let length = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
    frame[8..8 + length].to_vec()
}

/// RecordIO frames described by the input (module docs).
fn frames(mut bytes: Bytes) -> Vec<u8> {
    let mut body = Vec::new();
    while !bytes.0.is_empty() {
        let head = bytes.byte();
        let payload = if head & 0x80 != 0 {
            record_payload(&mut bytes)
        } else {
            let length = bytes.byte() as usize;
            bytes.take(length).to_vec()
        };
        let flag = u32::from(head & 3);
        let lie = bytes.byte();
        let length = payload.len() as u32;
        let declared = match lie % 8 {
            0 => length + u32::from(lie >> 3),
            1 => length.saturating_sub(u32::from(lie >> 3) + 1),
            2 => MAX_FRAME_LENGTH as u32,
            _ => length,
        };
        let magic = if head & 0x40 != 0 && lie == 0xFF {
            u32::from_le_bytes([bytes.byte(), bytes.byte(), bytes.byte(), bytes.byte()])
        } else {
            MAGIC
        };
        body.extend_from_slice(&magic.to_le_bytes());
        body.extend_from_slice(
            &((flag << 29) | (declared & MAX_FRAME_LENGTH as u32)).to_le_bytes(),
        );
        body.extend_from_slice(&payload);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    body
}

/// A reader that hands out its bytes in pieces of 1 to 16 bytes, the sizes drawn from a seed.
struct Pieces<'a> {
    bytes: &'a [u8],
    state: u32,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let n = (1 + self.state as usize % 16)
            .min(buffer.len())
            .min(self.bytes.len());
        buffer[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// Every record of `input` as `content_type`, then the error that stopped the reader, as text.
fn read_all(content_type: &ContentType, input: impl Read + Send) -> (Vec<String>, Option<String>) {
    let mut records = Vec::new();
    let outcome = match content_type {
        ContentType::Json => stream_json_request(input, "request", |record| {
            records.push(format!("{record:?}"));
            Ok::<(), FormatError>(())
        }),
        other => open_reader(other, input, "request").and_then(|reader| {
            for record in reader {
                records.push(format!("{:?}", record?));
            }
            Ok(())
        }),
    };
    (records, outcome.err().map(|e| e.to_string()))
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes(data);
    let mode = bytes.byte();
    let max_rows = usize::from(bytes.byte() % 8);
    let seed = u32::from(bytes.byte()) | 1;
    let body = if mode & 0x80 != 0 {
        frames(bytes)
    } else {
        bytes.0.to_vec()
    };
    let content_type = CONTENT_TYPES[usize::from(mode) % CONTENT_TYPES.len()];
    let package = package();

    let limited = package.decode_request_up_to(&body, content_type, "application/json", max_rows);
    let whole = package.decode_request(&body, content_type, "application/json");
    match (&whole, &limited) {
        (Ok(whole), Ok(Some(limited))) => {
            assert_eq!(format!("{whole:?}"), format!("{limited:?}"));
            assert!(limited.rows <= max_rows);
            assert_eq!(limited.features.len(), limited.rows * FEATURES);
        }
        (Ok(whole), Ok(None)) => assert!(whole.rows > max_rows),
        (Err(whole), Err(limited)) => assert_eq!(whole.to_string(), limited.to_string()),
        // An error past the first `max_rows` records is left to `invoke`.
        (Err(_), Ok(None)) => {}
        (whole, limited) => panic!("decode_request gave {whole:?}, the limited form {limited:?}"),
    }

    // Parquet is the trainer's input, never a request body: the package above refuses it unread.
    let parsed = ContentType::parse(content_type)
        .ok()
        .filter(|parsed| !matches!(parsed, ContentType::Parquet { .. }));
    if let Some(parsed) = parsed {
        let in_pieces = read_all(
            &parsed,
            Pieces {
                bytes: &body,
                state: seed,
            },
        );
        assert_eq!(in_pieces, read_all(&parsed, body.as_slice()));
    }
});
