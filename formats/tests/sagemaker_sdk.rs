//! Byte-for-byte compatibility with the SageMaker Python SDK's RecordIO-protobuf (sagemaker 2.257.7, from the
//! project virtualenv): the SDK writes dense and sparse data, tern reads the same numbers back, tern writes the same
//! data to identical bytes, and the SDK's `read_records` reads back what tern wrote. The SDK side is
//! `sdk_recordio.py` beside this file.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tern_formats::recordio::{RecordIoReader, RecordIoWriter, TensorType};
use tern_formats::{Features, Record};

const CASES: &[&str] = &[
    "dense_float32",
    "dense_float64",
    "dense_int32_labels",
    "dense_int32_features",
    "dense_unlabelled",
    "sparse_float32",
    "sparse_float64_int32_labels",
];

fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh to create the oracle virtualenv",
        python.display()
    );
    python
}

fn run_script(mode: &str, directory: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk_recordio.py");
    let output = Command::new(python())
        .arg(&script)
        .arg(mode)
        .arg(directory)
        .env("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        .output()
        .expect("run the SDK script");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "sdk_recordio.py {mode} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn tensor_type(name: &Value) -> TensorType {
    match name.as_str() {
        Some("Float32") | None => TensorType::Float32,
        Some("Float64") => TensorType::Float64,
        Some("Int32") => TensorType::Int32,
        Some(other) => panic!("unknown tensor type {other}"),
    }
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

/// The records the SDK wrote, from the case's JSON description.
fn expected_records(case: &Value) -> Vec<Record> {
    let labels: Option<Vec<f32>> = case["labels"].as_array().map(|_| floats(&case["labels"]));
    let dim = case["dim"].as_u64().unwrap() as usize;
    let features: Vec<Features> = if case["sparse"].as_bool().unwrap() {
        let indices = case["indices"].as_array().unwrap();
        let values = case["values"].as_array().unwrap();
        indices
            .iter()
            .zip(values)
            .map(|(indices, values)| Features::Sparse {
                indices: indices
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_u64().unwrap() as u32)
                    .collect(),
                values: floats(values),
                dim: Some(dim),
            })
            .collect()
    } else {
        case["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| Features::Dense(floats(row)))
            .collect()
    };
    features
        .into_iter()
        .enumerate()
        .map(|(i, features)| Record {
            features,
            label: labels.as_ref().map(|l| l[i]),
            weight: None,
        })
        .collect()
}

#[test]
fn sagemaker_sdk_and_tern_agree_on_recordio_protobuf() {
    let directory = tempfile::tempdir().unwrap();
    let written = run_script("write", directory.path());
    for case in CASES {
        assert!(written.contains(&format!("wrote {case}")), "{written}");
        let description: Value = serde_json::from_slice(
            &std::fs::read(directory.path().join(format!("{case}.json"))).unwrap(),
        )
        .unwrap();
        let expected = expected_records(&description);
        assert!(!expected.is_empty(), "{case}: no records");

        let sdk_bytes = std::fs::read(directory.path().join(format!("sdk_{case}.rec"))).unwrap();
        let read: Vec<Record> = RecordIoReader::new(&sdk_bytes[..], case)
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{case}: tern cannot read the SDK's file: {e}"));
        assert_eq!(
            read, expected,
            "{case}: tern read different numbers than the SDK wrote"
        );

        let mut writer = RecordIoWriter::with_tensor_types(
            Vec::new(),
            tensor_type(&description["feature_type"]),
            tensor_type(&description["label_type"]),
        );
        for record in &expected {
            writer.write_record(record).unwrap();
        }
        let tern_bytes = writer.into_inner().unwrap();
        if let Some(at) = tern_bytes.iter().zip(&sdk_bytes).position(|(a, b)| a != b) {
            panic!("{case}: tern's bytes differ from the SDK's at byte {at}");
        }
        assert_eq!(tern_bytes.len(), sdk_bytes.len(), "{case}: lengths differ");
        std::fs::write(
            directory.path().join(format!("tern_{case}.rec")),
            &tern_bytes,
        )
        .unwrap();
    }
    let checked = run_script("check", directory.path());
    for case in CASES {
        assert!(checked.contains(&format!("ok {case} ")), "{checked}");
    }
}
