//! `tern train` → `tern evaluate` → `tern predict` on real data, as a user runs them, and the SageMaker
//! training-container contract (`--sagemaker-root`), including Pipe mode and the failure file.

use std::fs;
use std::path::Path;

use tern_tests::{dataset, tern, tern_ok};

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn train_evaluate_predict_on_breast_cancer() {
    let out = tempfile::tempdir().unwrap();
    let train = dataset("breast_cancer", "train");
    let validation = dataset("breast_cancer", "validation");
    let test = dataset("breast_cancer", "test");
    tern_ok(&[
        "train",
        "--algorithm",
        "linear-learner",
        "--train",
        path(&train),
        "--validation",
        path(&validation),
        "--hp",
        "predictor_type=binary_classifier",
        "--hp",
        "epochs=15",
        "--output-dir",
        path(out.path()),
        "--quiet",
    ]);
    for file in [
        "model.tar.gz",
        "metrics.json",
        "learning_curve.svg",
        "roc_curve.svg",
        "pr_curve.svg",
    ] {
        assert!(out.path().join(file).exists(), "{file} was not written");
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&fs::read(out.path().join("metrics.json")).unwrap()).unwrap();
    assert!(metrics["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["epoch"].is_number()));

    let model = out.path().join("model.tar.gz");
    let report: serde_json::Value = serde_json::from_str(&tern_ok(&[
        "evaluate",
        path(&model),
        "--test",
        path(&test),
        "--json",
    ]))
    .unwrap();
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.93, "test accuracy {accuracy}");
    assert!(report["roc_auc"].as_f64().unwrap() > 0.97);

    let cv: serde_json::Value = serde_json::from_str(&tern_ok(&[
        "evaluate",
        path(&model),
        "--test",
        path(&train),
        "--kfold",
        "5",
        "--stratified",
        "--json",
    ]))
    .unwrap();
    assert_eq!(cv["folds"].as_array().unwrap().len(), 5);
    assert!(cv["summary"]["accuracy"]["mean"].as_f64().unwrap() > 0.9);

    // Unlabelled rows: the test split without its first column.
    let rows: String = fs::read_to_string(&test)
        .unwrap()
        .lines()
        .take(5)
        .map(|l| format!("{}\n", l.split_once(',').unwrap().1))
        .collect();
    let rows_path = out.path().join("rows.csv");
    fs::write(&rows_path, rows).unwrap();
    let response: serde_json::Value = serde_json::from_str(&tern_ok(&[
        "predict",
        path(&model),
        "--input",
        path(&rows_path),
        "--content-type",
        "text/csv",
    ]))
    .unwrap();
    let predictions = response["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 5);
    for p in predictions {
        let score = p["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert_eq!(
            p["predicted_label"].as_i64().unwrap(),
            i64::from(score >= 0.5),
            "{p}"
        );
    }
    let lines = tern_ok(&[
        "predict",
        path(&model),
        "--input",
        path(&rows_path),
        "--accept",
        "application/jsonlines",
    ]);
    assert_eq!(lines.lines().count(), 5);
}

#[test]
fn bad_hyperparameters_fail_before_training_with_the_allowed_values() {
    let out = tempfile::tempdir().unwrap();
    let train = dataset("breast_cancer", "train");
    let output = tern(&[
        "train",
        "--algorithm",
        "linear-learner",
        "--train",
        path(&train),
        "--hp",
        "predictor_type=classifier",
        "--output-dir",
        path(out.path()),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("predictor_type") && stderr.contains("binary_classifier"),
        "{stderr}"
    );
    assert!(!out.path().join("model.tar.gz").exists());

    let output = tern(&[
        "train",
        "--algorithm",
        "linear-learner",
        "--train",
        path(&train),
        "--hp",
        "predictor_type=binary_classifier",
        "--hp",
        "epoch=3",
        "--output-dir",
        path(out.path()),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("\"epoch\"") && stderr.contains("epochs"),
        "{stderr}"
    );
}

#[test]
fn malformed_csv_names_file_line_and_column() {
    let out = tempfile::tempdir().unwrap();
    let bad = out.path().join("bad.csv");
    fs::write(&bad, "1,0.5,2.0\n0,0.25,abc\n").unwrap();
    let output = tern(&[
        "train",
        "--algorithm",
        "linear-learner",
        "--train",
        path(&bad),
        "--hp",
        "predictor_type=binary_classifier",
        "--output-dir",
        path(out.path()),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.csv") && stderr.contains("line 2") && stderr.contains("abc"),
        "{stderr}"
    );
}

fn sagemaker_layout(root: &Path, hyperparameters: &str, input_config: &str) {
    fs::create_dir_all(root.join("input/config")).unwrap();
    fs::create_dir_all(root.join("input/data")).unwrap();
    fs::write(
        root.join("input/config/hyperparameters.json"),
        hyperparameters,
    )
    .unwrap();
    fs::write(root.join("input/config/inputdataconfig.json"), input_config).unwrap();
    fs::write(
        root.join("input/config/resourceconfig.json"),
        r#"{"current_host":"algo-1","hosts":["algo-1"],"network_interface_name":"eth0"}"#,
    )
    .unwrap();
}

#[test]
fn sagemaker_file_mode_job_writes_the_model_where_sagemaker_expects_it() {
    let root = tempfile::tempdir().unwrap();
    sagemaker_layout(
        root.path(),
        r#"{"predictor_type": "binary_classifier", "epochs": "5", "mini_batch_size": "64"}"#,
        r#"{"train": {"ContentType": "text/csv", "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"},
            "validation": {"ContentType": "text/csv", "TrainingInputMode": "File"}}"#,
    );
    for split in ["train", "validation"] {
        let dir = root.path().join("input/data").join(split);
        fs::create_dir_all(&dir).unwrap();
        fs::copy(dataset("breast_cancer", split), dir.join("part-0.csv")).unwrap();
    }
    // No --algorithm: linear-learner is the only algorithm whose table takes these hyperparameters.
    tern_ok(&["train", "--sagemaker-root", path(root.path()), "--quiet"]);
    assert!(root.path().join("model/model.tar.gz").exists());
    assert!(root.path().join("output/data/metrics.json").exists());
    assert!(!root.path().join("output/failure").exists());
}

#[test]
fn sagemaker_failure_is_written_to_output_failure_with_a_non_zero_exit() {
    let root = tempfile::tempdir().unwrap();
    sagemaker_layout(
        root.path(),
        r#"{"predictor_type": "multiclass_classifier"}"#,
        r#"{"train": {"ContentType": "text/csv", "TrainingInputMode": "File"}}"#,
    );
    fs::create_dir_all(root.path().join("input/data/train")).unwrap();
    fs::copy(
        dataset("iris", "train"),
        root.path().join("input/data/train/iris.csv"),
    )
    .unwrap();
    let output = tern(&[
        "train",
        "--algorithm",
        "linear-learner",
        "--sagemaker-root",
        path(root.path()),
        "--quiet",
    ]);
    assert!(!output.status.success());
    let failure = fs::read_to_string(root.path().join("output/failure")).unwrap();
    assert!(failure.contains("num_classes"), "{failure}");
    assert!(!root.path().join("model/model.tar.gz").exists());
}

#[test]
fn channels_are_named_with_their_content_types_and_checked_against_the_algorithm() {
    let out = tempfile::tempdir().unwrap();
    let train = dataset("breast_cancer", "train");
    let validation = dataset("breast_cancer", "validation");
    // --channel NAME=PATH and a per-channel --content-type, as SageMaker's inputdataconfig gives them.
    tern_ok(&[
        "train",
        "--algorithm",
        "linear-learner",
        "--channel",
        &format!("train={}", path(&train)),
        "--channel",
        &format!("validation={}", path(&validation)),
        "--content-type",
        "validation=text/csv",
        "--hp",
        "predictor_type=binary_classifier",
        "--hp",
        "epochs=2",
        "--output-dir",
        path(out.path()),
        "--quiet",
    ]);
    let metrics = fs::read_to_string(out.path().join("metrics.json")).unwrap();
    assert!(
        metrics.contains("validation:"),
        "the validation channel was read"
    );

    // A channel the algorithm does not read fails before any data is read, naming the ones it does.
    let output = tern(&[
        "train",
        "--algorithm",
        "kmeans",
        "--train",
        path(&train),
        "--validation",
        path(&validation),
        "--hp",
        "k=2",
        "--hp",
        "feature_dim=30",
        "--output-dir",
        path(out.path()),
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("\"validation\"") && stderr.contains("train (required), test"),
        "{stderr}"
    );

    let output = tern(&[
        "train",
        "--algorithm",
        "linear-learner",
        "--train",
        path(&train),
        "--channel",
        &format!("train={}", path(&train)),
        "--hp",
        "predictor_type=binary_classifier",
        "--output-dir",
        path(out.path()),
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("channel train is given twice"), "{stderr}");

    let listing = tern_ok(&["algorithms", "xgboost"]);
    assert!(
        listing.contains("validation") && listing.contains("early_stopping_rounds"),
        "{listing}"
    );
}

#[test]
fn a_sagemaker_job_with_a_channel_its_algorithm_does_not_read_fails_naming_it() {
    let root = tempfile::tempdir().unwrap();
    sagemaker_layout(
        root.path(),
        r#"{"predictor_type": "binary_classifier", "epochs": "2"}"#,
        r#"{"train": {"ContentType": "text/csv"}, "auxiliary": {"ContentType": "text/csv"}}"#,
    );
    for split in ["train", "auxiliary"] {
        let dir = root.path().join("input/data").join(split);
        fs::create_dir_all(&dir).unwrap();
        fs::copy(dataset("breast_cancer", "train"), dir.join("part-0.csv")).unwrap();
    }
    let output = tern(&["train", "--sagemaker-root", path(root.path()), "--quiet"]);
    assert!(!output.status.success());
    let failure = fs::read_to_string(root.path().join("output/failure")).unwrap();
    assert!(
        failure.contains("\"auxiliary\"") && failure.contains("linear-learner"),
        "{failure}"
    );
}

#[cfg(unix)]
#[test]
fn sagemaker_pipe_mode_streams_one_fifo_per_epoch() {
    use std::io::Write;
    let root = tempfile::tempdir().unwrap();
    let epochs = 3;
    sagemaker_layout(
        root.path(),
        &format!(
            r#"{{"predictor_type": "binary_classifier", "epochs": "{epochs}", "early_stopping_patience": "10"}}"#
        ),
        r#"{"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"}}"#,
    );
    let data = fs::read(dataset("breast_cancer", "train")).unwrap();
    // SageMaker creates train_<epoch> FIFOs and writes each pass into the next one as the algorithm reads.
    let fifo_dir = root.path().join("input/data");
    let writer = std::thread::spawn(move || {
        for epoch in 0..epochs {
            let fifo = fifo_dir.join(format!("train_{epoch}"));
            let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            assert_eq!(
                unsafe { libc_mkfifo(c_path.as_ptr(), 0o600) },
                0,
                "mkfifo {}",
                fifo.display()
            );
            let mut pipe = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            pipe.write_all(&data).unwrap();
        }
    });
    tern_ok(&[
        "train",
        "--algorithm",
        "linear-learner",
        "--sagemaker-root",
        path(root.path()),
        "--quiet",
    ]);
    writer.join().unwrap();
    assert!(root.path().join("model/model.tar.gz").exists());
    let metrics: serde_json::Value =
        serde_json::from_slice(&fs::read(root.path().join("output/data/metrics.json")).unwrap())
            .unwrap();
    let epochs_seen: std::collections::BTreeSet<i64> = metrics["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["epoch"].as_i64())
        .collect();
    assert_eq!(
        epochs_seen.len(),
        epochs,
        "one pass per FIFO: {epochs_seen:?}"
    );
}

extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::os::raw::c_char, mode: u32) -> i32;
}

#[test]
fn xgboost_train_evaluate_export_import_round_trip() {
    let out = tempfile::tempdir().unwrap();
    let train = dataset("breast_cancer", "train");
    let validation = dataset("breast_cancer", "validation");
    let test = dataset("breast_cancer", "test");
    tern_ok(&[
        "train",
        "--algorithm",
        "xgboost",
        "--train",
        path(&train),
        "--validation",
        path(&validation),
        "--hp",
        "objective=binary:logistic",
        "--hp",
        "num_round=20",
        "--hp",
        "max_depth=3",
        "--hp",
        "eval_metric=auc",
        "--output-dir",
        path(out.path()),
        "--quiet",
    ]);
    let model = out.path().join("model.tar.gz");
    let report = tern_ok(&["evaluate", path(&model), "--test", path(&test)]);
    assert!(report.contains("feature importance (gain"), "{report}");

    let exported = out.path().join("model.json");
    tern_ok(&[
        "export",
        path(&model),
        "--format",
        "xgboost-json",
        "--output",
        path(&exported),
    ]);
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&exported).unwrap()).unwrap();
    assert!(
        json["learner"]["gradient_booster"].is_object(),
        "not xgboost's JSON schema"
    );
    let imported = out.path().join("imported.tar.gz");
    tern_ok(&["import", path(&exported), "--output", path(&imported)]);

    let rows: String = fs::read_to_string(&test)
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", l.split_once(',').unwrap().1))
        .collect();
    let rows_path = out.path().join("rows.csv");
    fs::write(&rows_path, rows).unwrap();
    let predict = |m: &Path| {
        tern_ok(&[
            "predict",
            path(m),
            "--input",
            path(&rows_path),
            "--accept",
            "text/csv",
        ])
    };
    assert_eq!(predict(&model), predict(&imported));

    let bad = tern(&[
        "import",
        path(&train),
        "--output",
        path(&out.path().join("x.tar.gz")),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("train.csv"));
}

/// Data written by the SageMaker Python SDK's own RecordIO-protobuf writers (dense and sparse) trains Linear Learner
/// exactly as the same rows in CSV do.
#[test]
fn linear_learner_trains_on_recordio_protobuf_written_by_the_sagemaker_sdk() {
    let out = tempfile::tempdir().unwrap();
    let train = dataset("breast_cancer", "train");
    let dense = out.path().join("train.pbr");
    let sparse = out.path().join("train_sparse.pbr");
    let script = r#"
import sys, io
import numpy as np, scipy.sparse as sp
from sagemaker.amazon.common import write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor
data = np.loadtxt(sys.argv[1], delimiter=",", dtype=np.float32)
y, X = data[:, 0], data[:, 1:]
with open(sys.argv[2], "wb") as f:
    write_numpy_to_dense_tensor(f, X, y)
with open(sys.argv[3], "wb") as f:
    write_spmatrix_to_sparse_tensor(f, sp.csr_matrix(X), y)
"#;
    let status = std::process::Command::new(tern_tests::python())
        .env("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        .args(["-c", script, path(&train), path(&dense), path(&sparse)])
        .status()
        .unwrap();
    assert!(status.success());
    let mut predictions = Vec::new();
    for (name, input, content_type) in [
        ("csv", &train, "text/csv"),
        ("dense", &dense, "application/x-recordio-protobuf"),
        ("sparse", &sparse, "application/x-recordio-protobuf"),
    ] {
        let dir = out.path().join(name);
        tern_ok(&[
            "train",
            "--algorithm",
            "linear-learner",
            "--train",
            path(input),
            "--content-type",
            content_type,
            "--hp",
            "predictor_type=binary_classifier",
            "--hp",
            "epochs=3",
            "--hp",
            "num_models=2",
            "--hp",
            "normalize_data=false",
            "--output-dir",
            path(&dir),
            "--quiet",
            "--no-plots",
        ]);
        let response = tern_ok(&[
            "predict",
            path(&dir.join("model.tar.gz")),
            "--input",
            path(&dense),
            "--content-type",
            "application/x-recordio-protobuf",
            "--accept",
            "application/jsonlines",
        ]);
        assert_eq!(response.lines().count(), 341, "{name}");
        predictions.push(response);
    }
    assert_eq!(
        predictions[0], predictions[1],
        "CSV and SDK dense RecordIO train the same model"
    );
    assert_eq!(
        predictions[0], predictions[2],
        "dense and sparse input train the same model"
    );
}

#[test]
fn kmeans_and_pca_evaluate_unlabelled_compile_predict_and_tune_the_elbow() {
    let out = tempfile::tempdir().unwrap();
    let train = dataset("digits", "train");
    let test = dataset("digits", "test");
    let rows: String = fs::read_to_string(&test)
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", l.split_once(',').unwrap().1))
        .collect();
    let rows_path = out.path().join("rows.csv");
    fs::write(&rows_path, rows).unwrap();
    let kmeans = out.path().join("kmeans");
    tern_ok(&[
        "train",
        "--algorithm",
        "kmeans",
        "--train",
        path(&train),
        "--test",
        path(&test),
        "--hp",
        "feature_dim=64",
        "--hp",
        "k=10",
        "--hp",
        "eval_metrics=[\"msd\",\"ssd\"]",
        "--output-dir",
        path(&kmeans),
        "--quiet",
    ]);
    let metrics: serde_json::Value =
        serde_json::from_slice(&fs::read(kmeans.join("metrics.json")).unwrap()).unwrap();
    let trained_msd = metrics["final"]["test:msd"]
        .as_f64()
        .unwrap_or_else(|| panic!("no final test:msd in {metrics}"));

    // SageMaker's test-channel metrics from unlabelled rows.
    let model = kmeans.join("model.tar.gz");
    let report: serde_json::Value = serde_json::from_str(&tern_ok(&[
        "evaluate",
        path(&model),
        "--test",
        path(&rows_path),
        "--content-type",
        "text/csv;label_size=0",
        "--json",
    ]))
    .unwrap();
    let msd = report["msd"].as_f64().unwrap();
    assert!(
        (msd - trained_msd).abs() <= 1e-5 * trained_msd,
        "evaluate msd {msd}, training test:msd {trained_msd}"
    );
    assert!((report["ssd"].as_f64().unwrap() - 360.0 * msd).abs() <= 1e-6 * 360.0 * msd);

    // The compiled package answers as the trained model does.
    let package = out.path().join("kmeans-package");
    tern_ok(&[
        "compile",
        path(&model),
        "--held-out",
        path(&test),
        "-o",
        path(&package),
    ]);
    let from_package: serde_json::Value = serde_json::from_str(&tern_ok(&[
        "predict",
        path(&package),
        "--input",
        path(&rows_path),
    ]))
    .unwrap();
    let from_model: serde_json::Value = serde_json::from_str(&tern_ok(&[
        "predict",
        path(&model),
        "--input",
        path(&rows_path),
    ]))
    .unwrap();
    let (package_rows, model_rows) = (
        from_package["predictions"].as_array().unwrap(),
        from_model["predictions"].as_array().unwrap(),
    );
    assert_eq!(package_rows.len(), 360);
    for (p, m) in package_rows.iter().zip(model_rows) {
        assert_eq!(p["closest_cluster"], m["closest_cluster"], "{p} vs {m}");
        let (pd, md) = (
            p["distance_to_cluster"].as_f64().unwrap(),
            m["distance_to_cluster"].as_f64().unwrap(),
        );
        assert!((pd - md).abs() <= 1e-4 * md.max(1.0), "{p} vs {m}");
    }
    let csv = tern_ok(&[
        "predict",
        path(&package),
        "--input",
        path(&rows_path),
        "--accept",
        "text/csv",
    ]);
    assert_eq!(csv.lines().count(), 360);
    assert!(csv.lines().all(|l| l.split(',').count() == 2), "{csv}");

    let pca = out.path().join("pca");
    tern_ok(&[
        "train",
        "--algorithm",
        "pca",
        "--train",
        path(&train),
        "--hp",
        "feature_dim=64",
        "--hp",
        "num_components=3",
        "--hp",
        "mini_batch_size=500",
        "--output-dir",
        path(&pca),
        "--quiet",
    ]);
    let pca_package = out.path().join("pca-package");
    tern_ok(&[
        "compile",
        path(&pca.join("model.tar.gz")),
        "--held-out",
        path(&test),
        "-o",
        path(&pca_package),
    ]);
    let projections: serde_json::Value = serde_json::from_str(&tern_ok(&[
        "predict",
        path(&pca_package),
        "--input",
        path(&rows_path),
    ]))
    .unwrap();
    let projections = projections["projections"].as_array().unwrap();
    assert_eq!(projections.len(), 360);
    assert!(projections
        .iter()
        .all(|p| p["projection"].as_array().unwrap().len() == 3));

    let plot = out.path().join("elbow.svg");
    let elbow: serde_json::Value = serde_json::from_str(&tern_ok(&[
        "tune",
        "--elbow",
        "--train",
        path(&train),
        "--k",
        "2,5,10",
        "--plot",
        path(&plot),
        "--json",
    ]))
    .unwrap();
    let sse: Vec<f64> = elbow["elbow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sse"].as_f64().unwrap())
        .collect();
    assert_eq!(sse.len(), 3);
    assert!(
        sse[0] > sse[1] && sse[1] > sse[2],
        "SSE should fall as k grows: {sse:?}"
    );
    assert!(fs::read_to_string(&plot).unwrap().starts_with("<svg"));
}
