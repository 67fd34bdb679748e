//! k-NN packages: every graph output (vote shares or mean, `predicted_label`, the neighbours' `distances` and
//! `labels`) against the trainer's own neighbours, in tract (runtime-core) and onnxruntime
//! (`tests/conformance/run_onnxruntime.py`), with onnx.checker's full_check (`oracles/check_packages.py`); Flat and
//! IVF indexes, the three metrics, projections, the tie rule, the verbose SageMaker response, and what f16 / int8
//! do to the stored points. Oracles: onnx 1.19.1, onnxruntime 1.23.2.

mod common;
use common::compile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Array2;
use tern_compiler::{CompileError, CompileOptions, Precision};
use tern_runtime::Package;
use tern_trainer::algorithms::knn::{Knn, KnnModel};
use tern_trainer::data::{Channel, Dataset, FeatureMatrix, TrainingInput};
use tern_trainer::{Algorithm, Artifact, TrainingContext};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rows(dataset: &str, split: &str) -> Dataset {
    let path = root()
        .join("tests/data/generated")
        .join(dataset)
        .join(format!("{split}.csv"));
    Channel::from_path(split, &path, None)
        .unwrap()
        .load(None)
        .unwrap()
}

fn train(train: Dataset, pairs: &[(&str, &str)]) -> Artifact {
    let raw: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hp = Knn.parse_hyperparameters(&raw).unwrap();
    let input = TrainingInput::new(Channel::from_dataset("train", train));
    Knn.train(&hp, &input, &mut TrainingContext::new(true))
        .unwrap()
}

/// Output name → values, from tract or onnxruntime.
type Outputs = BTreeMap<String, Vec<f64>>;

fn tract_outputs(dir: &Path, features: &[f32], n: usize) -> Outputs {
    let package = Package::load(dir).unwrap();
    let outputs = package.run(features, n).unwrap();
    ["score", "predicted_label", "distances", "labels"]
        .iter()
        .map(|&name| {
            let values = outputs.require(name).unwrap().to_f32();
            (
                name.to_string(),
                values.iter().map(|&v| f64::from(v)).collect(),
            )
        })
        .collect()
}

fn onnxruntime_outputs(dir: &Path, features: &[f32], n: usize) -> Outputs {
    let work = tempfile::tempdir().unwrap();
    let features_path = work.path().join("rows.f32");
    let bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&features_path, bytes).unwrap();
    let out = work.path().join("out.json");
    let status = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/conformance/run_onnxruntime.py"))
        .arg(dir)
        .arg(&features_path)
        .arg(n.to_string())
        .arg(&out)
        .status()
        .expect("run the onnxruntime runner (scripts/setup-python.sh)");
    assert!(status.success());
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    document["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let values = o["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap_or(f64::NAN))
                .collect();
            (o["name"].as_str().unwrap().to_string(), values)
        })
        .collect()
}

/// onnx.checker full_check and onnxruntime's scores against the trainer, through the compiler's own oracle.
fn onnx_checker(dir: &Path, artifact: &Artifact, features: &[f32], n: usize) {
    let cases = tempfile::tempdir().unwrap();
    let case = cases.path().join("knn");
    std::fs::create_dir_all(&case).unwrap();
    copy_dir(dir, &case.join("package"));
    let model = KnnModel::from_artifact(artifact).unwrap();
    let d = model.feature_dim;
    let dense = FeatureMatrix::Dense(Array2::from_shape_vec((n, d), features.to_vec()).unwrap());
    let predictions = tern_trainer::Predictor::predict(&model, &dense).unwrap();
    let bytes = |values: &[f32]| {
        values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    std::fs::write(case.join("rows.f32"), bytes(features)).unwrap();
    let expected: Vec<f32> = predictions.scores.iter().copied().collect();
    std::fs::write(case.join("expected.f32"), bytes(&expected)).unwrap();
    let labels = predictions
        .predicted_label
        .as_ref()
        .map(|l| l.iter().map(|&v| v as i64).collect::<Vec<_>>());
    let json = serde_json::json!({
        "rows": n, "features": d, "score_columns": predictions.scores.ncols(),
        "labels": labels, "label_rule": if labels.is_some() { "argmax".into() } else { serde_json::Value::Null },
        "score_output": "score",
    });
    std::fs::write(case.join("case.json"), serde_json::to_vec(&json).unwrap()).unwrap();
    let output = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("compiler/tests/oracles/check_packages.py"))
        .arg(cases.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "onnx.checker / onnxruntime: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The trainer's view of `features`: (predicted label values, distances, neighbour labels), row-major.
fn trainer_outputs(model: &KnnModel, features: &FeatureMatrix) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let neighbours = model.neighbours_of(features, "rows").unwrap();
    let predicted = model.predicted_values(&neighbours);
    (
        predicted.iter().map(|&v| f64::from(v)).collect(),
        neighbours.scores.iter().map(|&v| f64::from(v)).collect(),
        neighbours
            .indices
            .iter()
            .map(|&j| f64::from(model.labels[j as usize]))
            .collect(),
    )
}

fn close(have: &[f64], want: &[f64], relative: f64, what: &str) {
    assert_eq!(have.len(), want.len(), "{what}: lengths");
    for (i, (h, w)) in have.iter().zip(want).enumerate() {
        assert!(
            (h - w).abs() <= relative * w.abs().max(1.0),
            "{what}[{i}]: {h} vs trainer {w}"
        );
    }
}

/// Compiles `artifact` at fp32 and checks every output in both runtimes against the trainer.
fn check_fp32(name: &str, artifact: &Artifact, train: &Dataset, test: &Dataset) {
    let options = CompileOptions {
        precision: Precision::Fp32,
        targets: Vec::new(),
        calibration: Some(train.clone()),
        held_out: Some(test.clone()),
        force: false,
    };
    let package = compile(artifact, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg");
    package.write(&pkg).unwrap();
    let model = KnnModel::from_artifact(artifact).unwrap();
    let dense = test.features.to_dense();
    let features: Vec<f32> = dense.iter().copied().collect();
    let n = test.n_rows();
    let (predicted, distances, labels) = trainer_outputs(&model, &FeatureMatrix::Dense(dense));
    for (runtime, outputs) in [
        ("tract", tract_outputs(&pkg, &features, n)),
        ("onnxruntime", onnxruntime_outputs(&pkg, &features, n)),
    ] {
        let what = |output: &str| format!("{name} {runtime} {output}");
        assert_eq!(outputs["labels"], labels, "{}", what("labels"));
        close(
            &outputs["predicted_label"],
            &predicted,
            1e-6,
            &what("predicted_label"),
        );
        // float32's expansion ‖x‖² − 2x·y + ‖y‖² rounds in units of the norms, not of the (smaller) distance.
        let scale = distances.iter().fold(1.0f64, |m, d| m.max(d.abs()));
        let scaled: Vec<f64> = distances.iter().map(|d| d / scale).collect();
        let have: Vec<f64> = outputs["distances"].iter().map(|d| d / scale).collect();
        close(
            &have,
            &scaled,
            1e-5,
            &what("distances (relative to the largest)"),
        );
    }
    onnx_checker(&pkg, artifact, &features, n);
    eprintln!("{name}: fp32 package equals the trainer in tract and onnxruntime ({n} rows)");
}

fn classifier<'a>(k: &'a str, d: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![
        ("k", k),
        ("feature_dim", d),
        ("predictor_type", "classifier"),
        ("sample_size", "100000"),
    ];
    pairs.extend_from_slice(extra);
    pairs
}

#[test]
fn flat_and_ivf_packages_equal_the_trainer_in_tract_and_onnxruntime() {
    let (train_digits, test_digits) = (rows("digits", "train"), rows("digits", "test"));
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("digits Flat L2 k=5", classifier("5", "64", &[])),
        (
            "digits Flat COSINE k=3",
            classifier("3", "64", &[("index_metric", "COSINE")]),
        ),
        (
            "digits Flat INNER_PRODUCT k=4",
            classifier("4", "64", &[("index_metric", "INNER_PRODUCT")]),
        ),
        (
            "digits sign 64→24 k=5",
            classifier(
                "5",
                "64",
                &[
                    ("dimension_reduction_type", "sign"),
                    ("dimension_reduction_target", "24"),
                ],
            ),
        ),
        (
            "digits fjlt 64→32 COSINE k=5",
            classifier(
                "5",
                "64",
                &[
                    ("dimension_reduction_type", "fjlt"),
                    ("dimension_reduction_target", "32"),
                    ("index_metric", "COSINE"),
                ],
            ),
        ),
        (
            "digits IVFFlat L2 16 lists nprobe 3",
            classifier(
                "5",
                "64",
                &[
                    ("index_type", "faiss.IVFFlat"),
                    ("faiss_index_ivf_nlists", "16"),
                    ("faiss_index_ivf_nprobe", "3"),
                ],
            ),
        ),
        (
            "digits IVFFlat INNER_PRODUCT 40 lists nprobe 1 k=50",
            classifier(
                "50",
                "64",
                &[
                    ("index_type", "faiss.IVFFlat"),
                    ("index_metric", "INNER_PRODUCT"),
                    ("faiss_index_ivf_nlists", "40"),
                    ("faiss_index_ivf_nprobe", "1"),
                ],
            ),
        ),
    ];
    for (name, pairs) in cases {
        let artifact = train(train_digits.clone(), &pairs);
        check_fp32(name, &artifact, &train_digits, &test_digits);
    }
    let (train_diabetes, test_diabetes) = (rows("diabetes", "train"), rows("diabetes", "test"));
    let artifact = train(
        train_diabetes.clone(),
        &[
            ("k", "7"),
            ("feature_dim", "10"),
            ("predictor_type", "regressor"),
            ("sample_size", "1000"),
        ],
    );
    check_fp32(
        "diabetes regressor k=7",
        &artifact,
        &train_diabetes,
        &test_diabetes,
    );
}

#[test]
fn equal_distances_resolve_to_the_lower_index_in_every_runtime() {
    // Rows 0 and 1 coincide (labels 3, 1); rows 2 and 3 lie at distance 1 either side of 10 (labels 2, 0).
    let data = Dataset {
        features: FeatureMatrix::Dense(
            Array2::from_shape_vec((4, 1), vec![0.0, 0.0, 9.0, 11.0]).unwrap(),
        ),
        labels: Some(vec![3.0, 1.0, 2.0, 0.0]),
        weights: None,
    };
    let queries = Dataset {
        features: FeatureMatrix::Dense(Array2::from_shape_vec((2, 1), vec![0.0, 10.0]).unwrap()),
        labels: Some(vec![0.0, 0.0]),
        weights: None,
    };
    for k in ["1", "2", "3"] {
        let artifact = train(
            data.clone(),
            &[
                ("k", k),
                ("feature_dim", "1"),
                ("predictor_type", "classifier"),
                ("sample_size", "4"),
            ],
        );
        check_fp32(&format!("ties k={k}"), &artifact, &data, &queries);
    }
    // k=1: the lower index of each tied pair; k=2: one vote each, the smallest label.
    let artifact = train(
        data.clone(),
        &[
            ("k", "1"),
            ("feature_dim", "1"),
            ("predictor_type", "classifier"),
            ("sample_size", "4"),
        ],
    );
    let package = compile(
        &artifact,
        &CompileOptions {
            held_out: Some(queries.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    package.write(&dir.path().join("p")).unwrap();
    let outputs = tract_outputs(&dir.path().join("p"), &[0.0, 10.0], 2);
    assert_eq!(outputs["labels"], vec![3.0, 2.0]);
}

#[test]
fn the_runtime_answers_sagemakers_plain_and_verbose_responses() {
    let train_rows = rows("digits", "train");
    let artifact = train(train_rows.clone(), &classifier("3", "64", &[]));
    let test = rows("digits", "test");
    let package = compile(
        &artifact,
        &CompileOptions {
            held_out: Some(test.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    package.write(&dir.path().join("p")).unwrap();
    let package = Package::load(&dir.path().join("p")).unwrap();
    let row: Vec<String> = test
        .features
        .to_dense()
        .row(0)
        .iter()
        .map(|v| v.to_string())
        .collect();
    let body = row.join(",");
    let model = KnnModel::from_artifact(&artifact).unwrap();
    let first = FeatureMatrix::Dense(test.features.to_dense().select(ndarray::Axis(0), &[0]));
    let expected = model.verbose_records(&first).unwrap().remove(0);

    let (plain, mime) = package
        .invoke(body.as_bytes(), "text/csv", "application/json")
        .unwrap();
    assert_eq!(mime, "application/json");
    let plain: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(
        plain,
        serde_json::json!({"predictions": [{"predicted_label": expected["predicted_label"]}]})
    );
    let (verbose, _) = package
        .invoke(
            body.as_bytes(),
            "text/csv",
            "application/json; verbose=true",
        )
        .unwrap();
    let verbose: serde_json::Value = serde_json::from_slice(&verbose).unwrap();
    assert_eq!(verbose, serde_json::json!({"predictions": [expected]}));
    let (lines, _) = package
        .invoke(
            body.as_bytes(),
            "text/csv",
            "application/jsonlines;verbose=true",
        )
        .unwrap();
    let line: serde_json::Value = serde_json::from_slice(lines.trim_ascii_end()).unwrap();
    assert_eq!(line["labels"].as_array().unwrap().len(), 3);
}

#[test]
fn quantized_points_pass_the_drift_check_or_are_refused_with_the_reason() {
    let (train_rows, test) = (rows("digits", "train"), rows("digits", "test"));
    let artifact = train(train_rows.clone(), &classifier("5", "64", &[]));
    for precision in [Precision::F16, Precision::Int8] {
        let options = CompileOptions {
            precision,
            targets: Vec::new(),
            calibration: Some(train_rows.clone()),
            held_out: Some(test.clone()),
            force: false,
        };
        match compile(&artifact, &options) {
            Ok(package) => {
                let tolerance = &package.manifest.tolerance;
                eprintln!("digits {precision:?}: packaged, {tolerance:?}");
                assert!(tolerance.measured_label_agreement >= tolerance.label_agreement);
            }
            Err(CompileError::DriftExceeded { details, .. }) => {
                eprintln!("digits {precision:?}: refused, {details}");
            }
            Err(other) => panic!("{precision:?}: unexpected error {other}"),
        }
    }
    // Digits' features are integers in [0, 16]: float16 holds the stored points exactly, so f16 must package.
    let f16 = CompileOptions {
        precision: Precision::F16,
        held_out: Some(test.clone()),
        ..Default::default()
    };
    compile(&artifact, &f16).expect("f16 stores digits' points exactly");
}
