//! Packages for real trained models at every precision, checked by onnx.checker (full_check) and onnxruntime
//! against the trainer's predictions (compiler/tests/oracles/check_packages.py, onnx 1.19.1 / onnxruntime 1.23.2),
//! plus the compiler's unit-level contracts: passes, refusal on drift, targets, inspect, atomic writes.

mod common;
use common::compile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tern_compiler::{inspect, passes, CompileError, CompileOptions, CompiledPackage, Precision};
use tern_runtime::onnx::{data_type, GraphProto, NodeProto, TensorProto, ValueInfoProto};
use tern_trainer::data::{Channel, Dataset, FeatureMatrix, TrainingInput};
use tern_trainer::{algorithms, Artifact, Hyperparameters, TrainingContext};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn split(dataset: &str, split: &str) -> PathBuf {
    root()
        .join("tests/data/generated")
        .join(dataset)
        .join(format!("{split}.csv"))
}

fn train(algorithm: &str, dataset: &str, pairs: &[(&str, &str)]) -> Artifact {
    let algorithm = algorithms::find(algorithm).unwrap();
    let raw: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hp = Hyperparameters::parse(algorithm.name(), algorithm.hyperparameters(), &raw).unwrap();
    let input =
        TrainingInput::new(Channel::from_path("train", &split(dataset, "train"), None).unwrap())
            .with(Channel::from_path("validation", &split(dataset, "validation"), None).unwrap());
    algorithm
        .train(&hp, &input, &mut TrainingContext::new(true))
        .unwrap()
}

/// Trains on the train channel alone (K-Means and PCA read no validation channel).
fn train_unsupervised(algorithm: &str, dataset: &str, pairs: &[(&str, &str)]) -> Artifact {
    let algorithm = algorithms::find(algorithm).unwrap();
    let raw: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hp = Hyperparameters::parse(algorithm.name(), algorithm.hyperparameters(), &raw).unwrap();
    let input =
        TrainingInput::new(Channel::from_path("train", &split(dataset, "train"), None).unwrap());
    algorithm
        .train(&hp, &input, &mut TrainingContext::new(true))
        .unwrap()
}

fn load(dataset: &str, which: &str, d: usize) -> Dataset {
    Channel::from_path(which, &split(dataset, which), None)
        .unwrap()
        .load(Some(d))
        .unwrap()
}

fn linear_learner(dataset: &str, predictor_type: &str, extra: &[(&str, &str)]) -> Artifact {
    let mut pairs = vec![
        ("predictor_type", predictor_type),
        ("epochs", "5"),
        ("num_models", "4"),
        ("seed", "1"),
    ];
    pairs.extend_from_slice(extra);
    train("linear-learner", dataset, &pairs)
}

fn xgboost(dataset: &str, objective: &str, extra: &[(&str, &str)]) -> Artifact {
    let mut pairs = vec![
        ("objective", objective),
        ("num_round", "30"),
        ("max_depth", "4"),
        ("seed", "1"),
    ];
    pairs.extend_from_slice(extra);
    train("xgboost", dataset, &pairs)
}

/// Rows with about one value in five replaced by NaN, so trees take their learned default directions.
fn with_missing(data: &Dataset) -> Dataset {
    let mut dense = data.features.to_dense();
    for ((i, j), v) in dense.indexed_iter_mut() {
        if (i * 13 + j * 7) % 5 == 0 {
            *v = f32::NAN;
        }
    }
    Dataset {
        features: FeatureMatrix::Dense(dense),
        labels: data.labels.clone(),
        weights: None,
    }
}

fn options(precision: Precision, calibration: &Dataset, held_out: &Dataset) -> CompileOptions {
    CompileOptions {
        precision,
        targets: Vec::new(),
        calibration: Some(calibration.clone()),
        held_out: Some(held_out.clone()),
        force: false,
    }
}

/// Writes one oracle case: the package, the rows, the trainer's scores and labels.
fn write_case(dir: &Path, artifact: &Artifact, package: &CompiledPackage, rows: &Dataset) {
    std::fs::create_dir_all(dir).unwrap();
    package.write(&dir.join("package")).unwrap();
    let predictor = algorithms::find(&artifact.meta.algorithm)
        .unwrap()
        .load(artifact)
        .unwrap();
    let dense = FeatureMatrix::Dense(rows.features.to_dense());
    let predictions = predictor.predict(&dense).unwrap();
    let bytes = |values: &mut dyn Iterator<Item = f32>| {
        values.flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()
    };
    std::fs::write(
        dir.join("rows.f32"),
        bytes(&mut dense.to_dense().iter().copied()),
    )
    .unwrap();
    std::fs::write(
        dir.join("expected.f32"),
        bytes(&mut predictions.scores.iter().copied()),
    )
    .unwrap();
    let (score_output, label_output) = match &package.manifest.response {
        tern_runtime::manifest::ResponseShape::Clustering {
            closest_cluster,
            distance_to_cluster,
        } => (distance_to_cluster.as_str(), closest_cluster.as_str()),
        tern_runtime::manifest::ResponseShape::Projection { projection } => {
            (projection.as_str(), "predicted_label")
        }
        _ => ("score", "predicted_label"),
    };
    let rule = match (
        &package.manifest.response,
        predictions.predicted_label.is_some(),
    ) {
        (_, false) => serde_json::Value::Null,
        _ if package
            .manifest
            .outputs
            .iter()
            .any(|o| o.name == label_output) =>
        {
            "output".into()
        }
        _ if predictions.scores.ncols() > 1 => "argmax".into(),
        (tern_runtime::manifest::ResponseShape::Xgboost { objective, .. }, true) => {
            serde_json::json!({
                "threshold": if objective == "binary:logitraw" { 0.0 } else { 0.5 }, "strict": true
            })
        }
        _ => panic!("no label rule for this package"),
    };
    let case = serde_json::json!({
        "rows": rows.n_rows(),
        "features": rows.n_features(),
        "score_columns": predictions.scores.ncols(),
        "labels": predictions.predicted_label.as_ref().map(|l| l.iter().map(|&v| v as i64).collect::<Vec<_>>()),
        "label_rule": rule,
        "score_output": score_output,
        "label_output": label_output,
    });
    std::fs::write(
        dir.join("case.json"),
        serde_json::to_vec_pretty(&case).unwrap(),
    )
    .unwrap();
}

fn python() -> PathBuf {
    root().join(".venv/bin/python")
}

fn run_oracle(cases: &Path) -> String {
    let script = root().join("compiler/tests/oracles/check_packages.py");
    let output = Command::new(python())
        .arg(&script)
        .arg(cases)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (run scripts/setup-python.sh): {e}",
                python().display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_ne!(
        output.status.code(),
        Some(3),
        "the virtualenv lacks onnx/onnxruntime; run scripts/setup-python.sh: {stderr}"
    );
    assert!(
        output.status.success(),
        "onnx/onnxruntime oracle failed:\n{stdout}\n{stderr}"
    );
    stdout
}

const PRECISIONS: [Precision; 3] = [Precision::Fp32, Precision::F16, Precision::Int8];

fn name(precision: Precision) -> &'static str {
    match precision {
        Precision::Fp32 => "fp32",
        Precision::F16 => "f16",
        Precision::Int8 => "int8",
    }
}

#[test]
fn every_package_passes_onnx_checker_and_matches_the_trainer_in_onnxruntime() {
    let cases = tempfile::tempdir().unwrap();
    let models: Vec<(&str, &str, Artifact, bool)> = vec![
        (
            "ll_binary",
            "breast_cancer",
            linear_learner("breast_cancer", "binary_classifier", &[]),
            false,
        ),
        (
            "ll_multiclass",
            "digits",
            linear_learner("digits", "multiclass_classifier", &[("num_classes", "10")]),
            false,
        ),
        (
            "ll_regressor",
            "diabetes",
            linear_learner("diabetes", "regressor", &[]),
            false,
        ),
        (
            "xgb_binary",
            "breast_cancer",
            xgboost("breast_cancer", "binary:logistic", &[]),
            true,
        ),
        (
            "xgb_softprob",
            "digits",
            xgboost(
                "digits",
                "multi:softprob",
                &[("num_class", "10"), ("num_round", "10")],
            ),
            true,
        ),
        (
            "xgb_softmax",
            "digits",
            xgboost(
                "digits",
                "multi:softmax",
                &[("num_class", "10"), ("num_round", "10")],
            ),
            true,
        ),
        (
            "xgb_regression",
            "diabetes",
            xgboost("diabetes", "reg:squarederror", &[]),
            true,
        ),
        (
            "kmeans",
            "digits",
            train_unsupervised(
                "kmeans",
                "digits",
                &[
                    ("feature_dim", "64"),
                    ("k", "10"),
                    ("init_method", "kmeans++"),
                    ("seed", "1"),
                ],
            ),
            false,
        ),
        (
            "pca_regular",
            "digits",
            train_unsupervised(
                "pca",
                "digits",
                &[
                    ("feature_dim", "64"),
                    ("num_components", "5"),
                    ("mini_batch_size", "200"),
                ],
            ),
            false,
        ),
        (
            "pca_randomized_no_mean",
            "digits",
            train_unsupervised(
                "pca",
                "digits",
                &[
                    ("feature_dim", "64"),
                    ("num_components", "5"),
                    ("mini_batch_size", "200"),
                    ("algorithm_mode", "randomized"),
                    ("subtract_mean", "false"),
                    ("seed", "1"),
                ],
            ),
            false,
        ),
    ];
    let mut table =
        String::from("| model | fp32 bytes | f16 bytes | int8 bytes |\n|---|---|---|---|\n");
    for (label, dataset, artifact, trees) in &models {
        let d = artifact.meta.feature_dim;
        let calibration = load(dataset, "train", d);
        let test = load(dataset, "test", d);
        let held_out = if *trees {
            with_missing(&test)
        } else {
            test.clone()
        };
        let mut sizes = Vec::new();
        for precision in PRECISIONS {
            let package = compile(artifact, &options(precision, &calibration, &held_out))
                .unwrap_or_else(|e| panic!("{label} {}: {e}", name(precision)));
            assert_eq!(package.manifest.precision, precision);
            assert_eq!(
                package.manifest.tolerance.verified_rows,
                held_out.n_rows()
                    + if *trees {
                        256.min(held_out.n_rows())
                    } else {
                        0
                    }
            );
            if precision == Precision::Fp32 {
                assert_eq!(
                    package.manifest.tolerance.measured_label_agreement, 1.0,
                    "{label}"
                );
                assert!(package.manifest.tolerance.relative <= 1e-5);
            }
            sizes.push(package.onnx.len());
            write_case(
                &cases.path().join(format!("{label}_{}", name(precision))),
                artifact,
                &package,
                &held_out,
            );
        }
        table.push_str(&format!(
            "| {label} | {} | {} | {} |\n",
            sizes[0], sizes[1], sizes[2]
        ));
    }
    let report = run_oracle(cases.path());
    eprintln!("{report}\npackage sizes (model.onnx):\n{table}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("PASS")).count(),
        models.len() * 3
    );
}

#[test]
fn xgboost_with_nan_matches_onnxruntime_including_missing_directions() {
    // Trained with missing values: default directions are learned, not just defaulted.
    let dir = tempfile::tempdir().unwrap();
    let train_path = dir.path().join("train.csv");
    let text = std::fs::read_to_string(split("breast_cancer", "train")).unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<String> = line
            .split(',')
            .enumerate()
            .map(|(j, f)| {
                if j > 0 && (i * 7 + j * 3) % 4 == 0 {
                    String::new()
                } else {
                    f.to_string()
                }
            })
            .collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    std::fs::write(&train_path, out).unwrap();
    let algorithm = algorithms::find("xgboost").unwrap();
    let raw: BTreeMap<String, String> = [
        ("objective", "binary:logistic"),
        ("num_round", "20"),
        ("max_depth", "3"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let hp = Hyperparameters::parse("xgboost", algorithm.hyperparameters(), &raw).unwrap();
    let input = TrainingInput::new(Channel::from_path("train", &train_path, None).unwrap());
    let artifact = algorithm
        .train(&hp, &input, &mut TrainingContext::new(true))
        .unwrap();
    let d = artifact.meta.feature_dim;
    let held_out = with_missing(&load("breast_cancer", "test", d));
    let cases = tempfile::tempdir().unwrap();
    for precision in PRECISIONS {
        let calibration = load("breast_cancer", "train", d);
        let package = compile(&artifact, &options(precision, &calibration, &held_out)).unwrap();
        write_case(
            &cases.path().join(name(precision)),
            &artifact,
            &package,
            &held_out,
        );
    }
    let report = run_oracle(cases.path());
    eprintln!("{report}");
    assert_eq!(report.lines().filter(|l| l.starts_with("PASS")).count(), 3);
}

fn run(graph: &GraphProto, d: usize, rows: &[f32]) -> Vec<Vec<f32>> {
    // A bare manifest around the graph, so runtime-core's executor runs it.
    let model = tern_runtime::onnx::ModelProto {
        ir_version: Some(8),
        opset_import: vec![tern_runtime::onnx::OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(graph.clone()),
        ..Default::default()
    };
    let onnx = model.to_bytes();
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(&onnx)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let outputs: Vec<serde_json::Value> = graph
        .output
        .iter()
        .map(|o| {
            let dtype = if o.elem_type() == Some(data_type::INT64) {
                "int64"
            } else {
                "float32"
            };
            serde_json::json!({"name": o.name(), "dtype": dtype, "shape": o.shape().unwrap()})
        })
        .collect();
    let manifest = serde_json::json!({
        "manifest_version": 1, "tern_version": "test", "algorithm": "test", "precision": "fp32",
        "targets": ["x86_64"], "feature_dim": d,
        "inputs": [{"name": "input", "dtype": "float32", "shape": [null, d]}],
        "outputs": outputs, "accepts": ["text/csv"], "produces": ["application/json"], "label_map": null,
        "response": {"kind": "supervised", "task": "regressor", "score": graph.output[0].name(), "predicted_label": null},
        "opsets": {"": 17}, "graph_sha256": digest,
        "tolerance": {"absolute": 0.0, "relative": 0.0, "label_agreement": 1.0, "measured_absolute": 0.0,
                      "measured_label_agreement": 1.0, "verified_rows": 0}
    });
    let package =
        tern_runtime::Package::from_bytes(&serde_json::to_vec(&manifest).unwrap(), &onnx).unwrap();
    let n = rows.len() / d;
    let outputs = package.run(rows, n).unwrap();
    outputs.outputs.iter().map(|o| o.to_f32()).collect()
}

/// How many of `a` differ from `b` by more than `absolute` and by more than `relative` of `|b|`.
fn outside(a: &[f32], b: &[f32], absolute: f64, relative: f64) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .filter(|(&x, &y)| {
            let delta = (f64::from(x) - f64::from(y)).abs();
            delta > absolute && delta / f64::from(y.abs()).max(1e-6) > relative
        })
        .count()
}

#[test]
fn normalisation_folding_equals_the_unfolded_math() {
    for (dataset, predictor_type, extra) in [
        ("breast_cancer", "binary_classifier", vec![]),
        (
            "digits",
            "multiclass_classifier",
            vec![("num_classes", "10")],
        ),
        ("diabetes", "regressor", vec![]),
    ] {
        let artifact = linear_learner(dataset, predictor_type, &extra);
        let lowered = tern_compiler::lower::linear_learner::lower(&artifact).unwrap();
        let unfolded = lowered.graph.clone();
        assert!(
            unfolded.node.iter().any(|n| n.op_type() == "Div"),
            "{dataset}: the lowering emits the normalisation"
        );
        let mut folded = lowered.graph.clone();
        let report = passes::optimise(&mut folded).unwrap();
        assert_eq!(report.normalisations_fused, 1, "{dataset}");
        assert!(
            !folded
                .node
                .iter()
                .any(|n| n.input.iter().any(|i| i == "input")
                    && matches!(n.op_type(), "Sub" | "Div")),
            "{dataset}: the normalisation still reads the input: {report:?}"
        );
        let mut affine = folded.clone();
        let fused_affine = passes::fuse_output_affine(&mut affine).unwrap();
        if predictor_type == "regressor" {
            assert_eq!(fused_affine, 1);
            assert!(!affine.node.iter().any(|n| n.op_type() == "Mul"));
        } else {
            assert_eq!(fused_affine, 0);
        }
        let d = artifact.meta.feature_dim;
        let test = load(dataset, "test", d);
        let rows: Vec<f32> = test.features.to_dense().iter().copied().collect();
        let before = run(&unfolded, d, &rows);
        let after = run(&folded, d, &rows);
        assert_eq!(
            outside(&after[0], &before[0], 1e-6, 1e-5),
            0,
            "{dataset}: folded scores differ from unfolded"
        );
        let fused = run(&affine, d, &rows);
        assert_eq!(
            outside(&fused[0], &before[0], 1e-4, 1e-5),
            0,
            "{dataset}: affine fusion"
        );
        if before.len() > 1 {
            assert_eq!(before[1], after[1], "{dataset}: labels");
        }
    }
}

fn tiny_graph(nodes: Vec<NodeProto>, initializers: Vec<TensorProto>, output: &str) -> GraphProto {
    GraphProto {
        node: nodes,
        name: Some("tiny".into()),
        initializer: initializers,
        input: vec![ValueInfoProto::tensor(
            "input",
            data_type::FLOAT,
            &[None, Some(2)],
            "N",
        )],
        output: vec![ValueInfoProto::tensor(
            output,
            data_type::FLOAT,
            &[None, Some(2)],
            "N",
        )],
        ..Default::default()
    }
}

#[test]
fn constant_folding_evaluates_constant_subgraphs() {
    let mut graph = tiny_graph(
        vec![
            NodeProto::new("Add", "", "a", &["c1", "c2"], &["c3"], vec![]),
            NodeProto::new("Mul", "", "b", &["c3", "c4"], &["c5"], vec![]),
            NodeProto::new("Mul", "", "c", &["input", "c5"], &["y"], vec![]),
        ],
        vec![
            TensorProto::from_f32("c1", &[2], &[1.0, 2.0]),
            TensorProto::from_f32("c2", &[2], &[0.5, -1.0]),
            TensorProto::from_f32("c4", &[], &[2.0]),
        ],
        "y",
    );
    let rows = [1.0, 1.0, -2.0, 3.0];
    let before = run(&graph, 2, &rows);
    assert_eq!(passes::fold_constants(&mut graph).unwrap(), 2);
    assert_eq!(graph.node.len(), 1);
    let folded = graph.initializer.iter().find(|t| t.name() == "c5").unwrap();
    assert_eq!(folded.to_f32().unwrap(), vec![3.0, 2.0]);
    passes::remove_dead_nodes(&mut graph);
    assert_eq!(graph.initializer.len(), 1, "c1, c2, c4 are no longer read");
    assert_eq!(run(&graph, 2, &rows), before);
    assert_eq!(before[0], vec![3.0, 2.0, -6.0, 6.0]);
}

#[test]
fn dead_nodes_and_their_initializers_are_removed() {
    let mut graph = tiny_graph(
        vec![
            NodeProto::new("Add", "", "live", &["input", "b"], &["y"], vec![]),
            NodeProto::new("Mul", "", "dead", &["input", "w"], &["unused"], vec![]),
            NodeProto::new("Sigmoid", "", "dead_too", &["unused"], &["unused2"], vec![]),
        ],
        vec![
            TensorProto::from_f32("b", &[2], &[1.0, 1.0]),
            TensorProto::from_f32("w", &[2], &[2.0, 2.0]),
        ],
        "y",
    );
    assert_eq!(passes::remove_dead_nodes(&mut graph), (2, 1));
    assert_eq!(graph.node.len(), 1);
    assert_eq!(graph.node[0].name(), "live");
    assert_eq!(graph.initializer.len(), 1);
    assert_eq!(graph.initializer[0].name(), "b");
}

#[test]
fn int8_drift_beyond_the_limit_is_refused_unless_forced() {
    let mut artifact = linear_learner("breast_cancer", "binary_classifier", &[]);
    // One dominant weight: per-channel int8 rounds every other weight to zero, moving probabilities far.
    let weight = artifact.tensors.get_mut("weight").unwrap();
    for (j, w) in weight.data.iter_mut().enumerate() {
        *w = if j == 0 {
            60.0
        } else if j % 2 == 0 {
            0.2
        } else {
            -0.2
        };
    }
    let d = artifact.meta.feature_dim;
    let calibration = load("breast_cancer", "train", d);
    let test = load("breast_cancer", "test", d);
    let error = compile(&artifact, &options(Precision::Int8, &calibration, &test)).unwrap_err();
    assert!(
        matches!(error, CompileError::DriftExceeded { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("--force"), "{error}");
    let mut forced = options(Precision::Int8, &calibration, &test);
    forced.force = true;
    let package = compile(&artifact, &forced).unwrap();
    let tolerance = &package.manifest.tolerance;
    assert!(tolerance.measured_absolute > 1e-1, "{tolerance:?}");
    assert!(tolerance.absolute >= tolerance.measured_absolute);
    // The same model at fp32 compiles: the refusal is about int8's drift, not the model.
    compile(&artifact, &options(Precision::Fp32, &calibration, &test)).unwrap();
}

#[test]
fn unsupported_targets_and_ops_fail_naming_them() {
    let artifact = xgboost("breast_cancer", "binary:logistic", &[("num_round", "3")]);
    let mut gpu = CompileOptions {
        targets: vec!["gpu".into()],
        ..CompileOptions::default()
    };
    let error = compile(&artifact, &gpu).unwrap_err();
    assert!(
        matches!(&error, CompileError::UnsupportedOp { op_type, target, .. } if op_type == "TreeEnsembleRegressor" && target == "gpu"),
        "{error}"
    );
    assert!(
        error.to_string().contains("TreeEnsembleRegressor"),
        "{error}"
    );
    gpu.targets = vec!["tpu".into()];
    let error = compile(&artifact, &gpu).unwrap_err();
    assert!(
        matches!(error, CompileError::UnknownTarget { .. }),
        "{error}"
    );
    // A dense model compiles for the GPU, and the manifest records the targets.
    let ll = linear_learner("breast_cancer", "binary_classifier", &[]);
    let options = CompileOptions {
        targets: vec!["gpu".into(), "wasm32".into()],
        ..CompileOptions::default()
    };
    let package = compile(&ll, &options).unwrap();
    assert_eq!(
        package.manifest.targets,
        vec!["gpu".to_string(), "wasm32".to_string()]
    );
    // K-Means' distances + ArgMin are in the GPU backend's op list (tern_runtime::gpu_ops, which tern-gpu reads).
    let kmeans = train_unsupervised(
        "kmeans",
        "iris",
        &[("k", "3"), ("feature_dim", "4"), ("mini_batch_size", "50")],
    );
    compile(&kmeans, &options).unwrap();
    // int8 without calibration rows is refused with a reason.
    let int8 = CompileOptions {
        precision: Precision::Int8,
        ..CompileOptions::default()
    };
    assert!(matches!(
        compile(&ll, &int8).unwrap_err(),
        CompileError::Verification(_)
    ));
}

#[test]
fn inspect_lists_ops_initializers_precision_and_size() {
    let artifact = linear_learner("digits", "multiclass_classifier", &[("num_classes", "10")]);
    let d = artifact.meta.feature_dim;
    let calibration = load("digits", "train", d);
    let mut int8 = options(Precision::Int8, &calibration, &load("digits", "test", d));
    int8.force = true;
    let package = compile(&artifact, &int8).unwrap();
    let text = inspect(&package.onnx).unwrap();
    eprintln!("{text}");
    for needle in [
        "ai.onnx 17",
        "DequantizeLinear",
        "MatMul",
        "Softmax",
        "ArgMax",
        "precision: int8",
        "int8",
        "[64, 10]",
        "total size: ",
    ] {
        assert!(
            text.contains(needle),
            "inspect output lacks {needle:?}:\n{text}"
        );
    }
    assert!(text.contains(&format!("total size: {} bytes", package.onnx.len())));
    assert!(matches!(
        inspect(b"\xff\xff not onnx"),
        Err(CompileError::Decode(_))
    ));
}

#[test]
fn packages_are_written_whole_and_replace_old_ones() {
    let artifact = linear_learner("diabetes", "regressor", &[]);
    let fp32 = compile(&artifact, &CompileOptions::default()).unwrap();
    let f16 = compile(
        &artifact,
        &CompileOptions {
            precision: Precision::F16,
            ..CompileOptions::default()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("pkg");
    fp32.write(&target).unwrap();
    f16.write(&target).unwrap();
    let onnx = std::fs::read(target.join("model.onnx")).unwrap();
    assert_eq!(onnx, f16.onnx);
    let manifest: tern_runtime::Manifest =
        serde_json::from_slice(&std::fs::read(target.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest, f16.manifest);
    tern_runtime::Package::load(&target).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("pkg")],
        "no staging or old directories remain"
    );
}

/// Probabilities far in the tails keep float32 precision, because the logistic is lowered as `1 / (1 + Exp(−z))`:
/// tract's and onnxruntime's `Sigmoid` kernels are off by a few 1e-6 absolute, 45% of a probability of 8e-6. And a
/// quickly trained fp32 model compiles without calibration rows (its synthetic verification rows once exceeded the
/// fp32 limit through summation-order rounding alone).
#[test]
fn fp32_logistic_keeps_tail_probabilities_and_compiles_without_calibration() {
    let artifact = train(
        "linear-learner",
        "breast_cancer",
        &[
            ("predictor_type", "binary_classifier"),
            ("epochs", "5"),
            ("seed", "0"),
        ],
    );
    let package = compile(&artifact, &CompileOptions::default()).unwrap();
    let model = algorithms::linear_learner::LinearModel::from_artifact(&artifact).unwrap();
    let folded = algorithms::linear_learner::FoldedWeights::fold(
        &model.weights,
        &model.bias,
        model.feature_mean.as_deref(),
        model.feature_scale.as_deref(),
    );
    let d = model.feature_dim;
    let norm2: f64 = folded.effective.iter().map(|&w| f64::from(w).powi(2)).sum();
    // Each test row, and the same row moved along −W until its logit has fallen by 10, 20 and 30.
    let test = load("breast_cancer", "test", d).features.to_dense();
    let mut rows = Vec::new();
    for row in test.rows() {
        for shift in [0.0, 10.0, 20.0, 30.0] {
            for (&x, &w) in row.iter().zip(&folded.effective) {
                rows.push((f64::from(x) - shift * f64::from(w) / norm2) as f32);
            }
        }
    }
    let n = rows.len() / d;
    let runtime = tern_runtime::Package::from_bytes(
        &serde_json::to_vec(&package.manifest).unwrap(),
        &package.onnx,
    )
    .unwrap();
    let outputs = runtime.run(&rows, n).unwrap();
    let scores = outputs.get("score").unwrap().to_f32();
    let mut smallest = 1.0f64;
    for (i, row) in rows.chunks(d).enumerate() {
        let z = f64::from(folded.offset[0])
            + row
                .iter()
                .zip(&folded.effective)
                .map(|(&x, &w)| f64::from(x) * f64::from(w))
                .sum::<f64>();
        let want = 1.0 / (1.0 + (-z).exp());
        smallest = smallest.min(want);
        let have = f64::from(scores[i]);
        assert!(
            (have - want).abs() <= 1e-4 * want,
            "row {i}: logit {z}: package {have} vs {want}"
        );
    }
    assert!(smallest < 1e-9, "the rows reach the tail: {smallest}");
}
