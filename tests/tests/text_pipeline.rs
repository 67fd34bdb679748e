//! An algorithm whose requests are text, end to end, with no line of its own outside its folder and its lowering
//! (`tern_tests::text_classifier`, a test-only algorithm joined to the shipped registry with `Registry::with`):
//! trained on real sentences (Pang & Lee's polarity sentences in BlazingText's `__label__` format, from gensim's test
//! data), compiled by the compiler's ordinary driver into a manifest-v2 package (a `string` request input,
//! `tokenize` → `hash_tokens` preprocessing, a `label_lookup` postprocess, named response fields), and answered from
//! raw text by runtime-core on tract and on tern's interpreter, by `tern predict PACKAGE/`, and by the npm package's
//! wasm build in Node, each equal to the trainer's own answer through the shared response encoder.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tern_compiler::CompileOptions;
use tern_formats::response::{ResponseEncoder, ResponseType};
use tern_registry::{Registered, Registry};
use tern_runtime::steps::{self, RawInput};
use tern_runtime::{EngineKind, Package, Precision};
use tern_tests::text_classifier::{TextClassifier, TextClassifierLowering};
use tern_tests::{repo_root, tern_ok};
use tern_trainer::data::{Channel, ChannelSource, FeatureMatrix, TrainingInput};
use tern_trainer::{Algorithm, TrainingContext};

/// The exported Pang & Lee split: `tests/data/generated/pang_lee/<split>.txt`.
fn sentences(split: &str) -> PathBuf {
    let path = repo_root().join(format!("tests/data/generated/pang_lee/{split}.txt"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh (or .venv/bin/python tests/python/export_datasets.py tests/data/generated pang_lee)",
        path.display()
    );
    path
}

/// |a − b| ≤ 1e-5 · max(|b|, 1) for numbers, equality for everything else.
fn differences(have: &Value, want: &Value, at: &str) -> Vec<String> {
    match (have, want) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            if (a - b).abs() <= 1e-5 * b.abs().max(1.0) {
                vec![]
            } else {
                vec![format!("{at}: {a} vs {b}")]
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .flat_map(|(i, (x, y))| differences(x, y, &format!("{at}[{i}]")))
            .collect(),
        (Value::Object(a), Value::Object(b)) if a.keys().eq(b.keys()) => a
            .iter()
            .flat_map(|(key, x)| differences(x, &b[key], &format!("{at}.{key}")))
            .collect(),
        _ if have == want => vec![],
        _ => vec![format!("{at}: {have} vs {want}")],
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_text_algorithm_trains_compiles_and_answers_alike_in_every_runtime() {
    let work = tempfile::tempdir().unwrap();
    let algorithm = &TextClassifier;
    let hyperparameters = algorithm
        .parse_hyperparameters(&[("buckets".to_string(), "256".to_string())].into())
        .unwrap();
    let input = TrainingInput::new(Channel {
        name: "train".to_string(),
        content_type: tern_formats::ContentType::Csv { label_size: 1 },
        source: ChannelSource::Files(vec![sentences("train")]),
    });
    let artifact = algorithm
        .train(&hyperparameters, &input, &mut TrainingContext::new(true))
        .unwrap();
    let predictor = algorithm.load(&artifact).unwrap();

    // The held-out sentences, without their labels, as a text/plain request.
    let test = std::fs::read_to_string(sentences("test")).unwrap();
    let texts: Vec<&str> = test
        .lines()
        .map(|line| line.split_once(' ').unwrap().1)
        .collect();
    let body = work.path().join("sentences.txt");
    std::fs::write(&body, texts.join("\n") + "\n").unwrap();

    // The trainer's answer: its predictor on rows featurised with runtime-core's steps, through the shared encoder.
    let buckets = artifact.meta.feature_dim;
    let package = Registry::shipped()
        .clone()
        .with(Registered {
            algorithm: &TextClassifier,
            lowering: &TextClassifierLowering,
        })
        .unwrap()
        .compile(
            &artifact,
            &CompileOptions {
                precision: Precision::Fp32,
                targets: vec!["x86_64".into(), "aarch64".into(), "wasm32".into()],
                calibration: None,
                held_out: None,
                force: false,
            },
        )
        .unwrap();
    let dir = work.path().join("package");
    package.write(&dir).unwrap();
    let manifest = &package.manifest;
    assert_eq!(manifest.manifest_version, 2);
    let rows: Vec<f32> = texts
        .iter()
        .flat_map(|text| {
            steps::preprocess(
                RawInput::Text(text.to_string()),
                &manifest.pipeline.preprocess,
                buckets,
            )
            .unwrap()
        })
        .collect();
    let features = FeatureMatrix::Dense(
        ndarray::Array2::from_shape_vec((texts.len(), buckets), rows).unwrap(),
    );
    let predictions = predictor.predict(&features).unwrap();
    let mut encoder = ResponseEncoder::new(ResponseType::Json, "predictions", Vec::new());
    for prediction in predictor.responses(&predictions) {
        encoder.write(&prediction).unwrap();
    }
    let trainer: Value = serde_json::from_slice(&encoder.finish().unwrap()).unwrap();
    let labels: Vec<&str> = trainer["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"pos") && labels.contains(&"neg"),
        "the trainer predicts one class only: {labels:?}"
    );

    let text = std::fs::read(&body).unwrap();
    let mut answers: Vec<(&str, Value)> = Vec::new();
    for engine in [EngineKind::Tract, EngineKind::Interpreter] {
        let loaded = Package::load_with(&dir, engine).unwrap();
        let (response, _) = loaded
            .invoke(&text, "text/plain", "application/json")
            .unwrap();
        answers.push((engine.name(), serde_json::from_slice(&response).unwrap()));
    }
    let cli = tern_ok(&[
        "predict",
        path(&dir),
        "--input",
        path(&body),
        "--content-type",
        "text/plain",
        "--accept",
        "application/json",
    ]);
    answers.push(("tern predict", serde_json::from_str(&cli).unwrap()));

    // The npm package's wasm build in Node, where it is built (scripts/setup-web.sh); required under
    // TERN_CONFORMANCE_REQUIRE_ALL=1, as the conformance matrix requires its columns.
    let node_build = repo_root().join("runtime-wasm/pkg/node/tern_wasm.js");
    if node_build.exists() {
        let out = work.path().join("wasm.json");
        let run = Command::new("node")
            .arg(repo_root().join("runtime-wasm/node/invoke.mjs"))
            .args([
                path(&dir),
                path(&body),
                "text/plain",
                "application/json",
                path(&out),
            ])
            .output()
            .expect("node is required: run scripts/setup-web.sh");
        assert!(
            run.status.success(),
            "invoke.mjs failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        answers.push((
            "wasm (node)",
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap(),
        ));
    } else {
        assert!(
            std::env::var("TERN_CONFORMANCE_REQUIRE_ALL").is_err(),
            "{} is missing: run scripts/setup-web.sh",
            node_build.display()
        );
        eprintln!(
            "wasm (node): skipped, {} is not built",
            node_build.display()
        );
    }

    for (runtime, answer) in &answers {
        let found = differences(answer, &trainer, "response");
        assert!(
            found.is_empty(),
            "{runtime} differs from the trainer: {}",
            found.into_iter().take(5).collect::<Vec<_>>().join("; ")
        );
    }
}
