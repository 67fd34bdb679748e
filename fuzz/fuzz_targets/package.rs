//! Loading a package never panics: arbitrary manifest and graph bytes are refused with an error or loaded, and a
//! loaded package answers a request or refuses it.
//!
//! The first byte picks the shape of the input: even → `[u16 manifest length][manifest][graph]`, both fuzzed;
//! odd → the rest is the graph, under a well-formed manifest whose `graph_sha256` matches it, so the fuzzer reaches
//! the ONNX decoder, the schema checks and the engine's graph preparation instead of stopping at the digest. Its
//! second bit picks the engine: tract, or tern's interpreter (the browser's), whose plan typing and kernels then
//! see arbitrary graphs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use tern_runtime::{EngineKind, Package};

fn manifest_for(graph: &[u8]) -> String {
    let digest: String = Sha256::digest(graph)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    serde_json::json!({
        "manifest_version": 1,
        "tern_version": "0.1.0",
        "algorithm": "linear-learner",
        "precision": "fp32",
        "targets": ["x86_64"],
        "feature_dim": 3,
        "inputs": [{"name": "input", "dtype": "float32", "shape": [null, 3]}],
        "outputs": [
            {"name": "score", "dtype": "float32", "shape": [null, 1]},
            {"name": "predicted_label", "dtype": "int64", "shape": [null]}
        ],
        "accepts": ["text/csv"],
        "produces": ["application/json"],
        "response": {"kind": "supervised", "task": "binary_classifier", "score": "score",
            "predicted_label": "predicted_label"},
        "opsets": {"": 17},
        "graph_sha256": digest,
        "tolerance": {"absolute": 0.0, "relative": 0.0, "label_agreement": 1.0,
            "measured_absolute": 0.0, "measured_label_agreement": 1.0, "verified_rows": 0}
    })
    .to_string()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let engine = if mode & 2 == 0 {
        EngineKind::Tract
    } else {
        EngineKind::Interpreter
    };
    let loaded = if mode % 2 == 0 {
        if rest.len() < 2 {
            return;
        }
        let length = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let body = &rest[2..];
        let (manifest, graph) = body.split_at(length.min(body.len()));
        Package::from_bytes_with(manifest, graph, engine)
    } else {
        Package::from_bytes_with(manifest_for(rest).as_bytes(), rest, engine)
    };
    if let Ok(package) = loaded {
        let _ = package.invoke(b"1,2,3\n0.5,nan,-1\n", "text/csv", "application/json");
    }
});
