//! Random Cut Forest packages: the `ai.tern` `RandomCutForestScore` graph reproduces the trainer's scores bit for
//! bit through tern-runtime, answers in SageMaker's RCF shapes, passes onnx.checker's full check (onnx 1.19.1),
//! is refused by onnxruntime (which lacks the op), and f16/int8 are refused with the reason.

mod common;
use common::compile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tern_compiler::{CompileError, CompileOptions, Precision};
use tern_runtime::Package;
use tern_trainer::algorithms::rcf::RcfModel;
use tern_trainer::data::{Channel, TrainingInput};
use tern_trainer::{algorithms, Artifact, Hyperparameters, TrainingContext};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn digits(split: &str) -> PathBuf {
    root().join(format!("tests/data/generated/digits/{split}.csv"))
}

fn train() -> Artifact {
    let algorithm = algorithms::find("randomcutforest").unwrap();
    let raw: BTreeMap<String, String> = [
        ("feature_dim", "64"),
        ("num_trees", "50"),
        ("num_samples_per_tree", "128"),
        ("seed", "4"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let hp = Hyperparameters::parse(algorithm.name(), algorithm.hyperparameters(), &raw).unwrap();
    let input = TrainingInput::new(Channel::from_path("train", &digits("train"), None).unwrap());
    algorithm
        .train(&hp, &input, &mut TrainingContext::new(true))
        .unwrap()
}

fn python(script: &str, args: &[&Path]) -> std::process::Output {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh",
        python.display()
    );
    Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_package_scores_exactly_as_the_trainer_and_answers_like_sagemaker() {
    let artifact = train();
    let test = Channel::from_path("test", &digits("test"), None)
        .unwrap()
        .load(Some(64))
        .unwrap();
    let options = CompileOptions {
        held_out: Some(test.clone()),
        ..CompileOptions::default()
    };
    let package = compile(&artifact, &options).unwrap();
    assert_eq!(package.manifest.opsets.get("ai.tern"), Some(&1));
    assert!(!package.manifest.missing_values);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rcf");
    package.write(&path).unwrap();

    let loaded = Package::load(&path).unwrap();
    let dense = test.features.to_dense();
    let rows = dense.nrows();
    let features: Vec<f32> = dense.iter().copied().collect();
    let outputs = loaded.run(&features, rows).unwrap();
    let scores = outputs.get("score").unwrap().to_f32();
    let model = RcfModel::from_artifact(&artifact).unwrap();
    let expected: Vec<f32> = model
        .score(&test.features)
        .iter()
        .map(|&s| s as f32)
        .collect();
    assert_eq!(scores, expected, "the op equals the trainer bit for bit");

    let csv: String = dense
        .rows()
        .into_iter()
        .take(3)
        .map(|row| row.iter().map(f32::to_string).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let (body, mime) = loaded
        .invoke(csv.as_bytes(), "text/csv", "application/json")
        .unwrap();
    assert_eq!(mime, "application/json");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"scores": expected[..3].iter().map(|s| serde_json::json!({"score": s})).collect::<Vec<_>>()})
    );
    let (body, _) = loaded
        .invoke(csv.as_bytes(), "text/csv", "application/jsonlines")
        .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[1], serde_json::json!({"score": expected[1]}));
    let mut nan = csv.clone();
    nan.replace_range(0..1, "nan");
    let error = loaded
        .invoke(nan.as_bytes(), "text/csv", "application/json")
        .unwrap_err()
        .to_string();
    assert!(error.contains("features[0]"), "{error}");

    // onnx.checker's full check accepts the custom domain; onnxruntime cannot run the op.
    let model_path = path.join("model.onnx");
    let checked = python(
        "import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print('ok')",
        &[&model_path],
    );
    assert!(
        checked.status.success(),
        "onnx.checker: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let ort = python(
        "import sys, onnxruntime; onnxruntime.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])",
        &[&model_path],
    );
    assert!(!ort.status.success(), "onnxruntime loaded an ai.tern op");
    let message = String::from_utf8_lossy(&ort.stderr);
    assert!(
        message.contains("RandomCutForestScore") || message.contains("ai.tern"),
        "{message}"
    );
}

#[test]
fn f16_and_int8_are_refused_with_the_reason() {
    let artifact = train();
    let calibration = Channel::from_path("train", &digits("train"), None)
        .unwrap()
        .load(Some(64))
        .unwrap();
    for precision in [Precision::F16, Precision::Int8] {
        let options = CompileOptions {
            precision,
            calibration: Some(calibration.clone()),
            ..CompileOptions::default()
        };
        match compile(&artifact, &options) {
            Err(CompileError::UnsupportedFeature {
                feature, reason, ..
            }) => {
                assert!(feature.starts_with("precision"), "{feature}");
                assert!(reason.contains("nothing to quantize"), "{reason}");
            }
            other => panic!(
                "{precision:?}: expected a refusal, got {:?}",
                other.map(|_| ())
            ),
        }
    }
}

#[test]
fn a_forest_the_op_would_refuse_is_refused_at_load_with_the_node_named() {
    let artifact = train();
    let package = compile(&artifact, &CompileOptions::default()).unwrap();
    let mut model = tern_runtime::onnx::ModelProto::from_bytes(&package.onnx).unwrap();
    let graph = model.graph.as_mut().unwrap();
    let node = &mut graph.node[0];
    let left = node
        .attribute
        .iter_mut()
        .find(|a| a.name() == "nodes_left")
        .unwrap();
    left.ints[0] = 100_000;
    let onnx = model.to_bytes();
    let manifest = serde_json::to_vec(&tern_runtime::Manifest {
        graph_sha256: sha256(&onnx),
        ..package.manifest.clone()
    })
    .unwrap();
    let error = Package::from_bytes(&manifest, &onnx)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("tree 0, node 0: nodes_left = 100000"),
        "{error}"
    );
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
