//! Hostile input: what a careless or malicious user can hand tern through the CLI, and what tern must do instead of
//! losing data, aborting or hanging. Each case reproduces a reported failure; neighbours of it sit beside it.

use std::fs;
use std::path::Path;

use tern_tests::{dataset, tern, tern_ok};

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

/// A CSV file's rows without their first (label) column.
fn unlabelled(csv: &Path) -> String {
    fs::read_to_string(csv)
        .unwrap()
        .lines()
        .map(|line| {
            line.split_once(',')
                .map_or("", |(_, rest)| rest)
                .to_string()
                + "\n"
        })
        .collect()
}

/// Trains a small Linear Learner into `out` and returns the model's path.
fn train_into(out: &Path) -> std::path::PathBuf {
    tern_ok(&[
        "train",
        "--algorithm",
        "linear-learner",
        "--train",
        path(&dataset("breast_cancer", "train")),
        "--hp",
        "predictor_type=binary_classifier",
        "--hp",
        "epochs=2",
        "--output-dir",
        path(out),
        "--quiet",
    ]);
    out.join("model.tar.gz")
}

#[test]
fn compile_into_the_training_folder_is_refused_and_deletes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let model = train_into(&out);
    fs::create_dir(out.join("notes")).unwrap();
    fs::write(out.join("notes/keep.txt"), b"mine").unwrap();
    let before = listing(&out);
    let model_bytes = fs::read(&model).unwrap();

    let refused = tern(&["compile", path(&model), "-o", path(&out)]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "compile into out/ succeeded");
    assert!(
        stderr.contains("model.tar.gz") && stderr.contains("--force"),
        "the refusal names what is there and the way out: {stderr}"
    );
    assert_eq!(listing(&out), before);
    assert_eq!(fs::read(&model).unwrap(), model_bytes);
    assert_eq!(fs::read(out.join("notes/keep.txt")).unwrap(), b"mine");
    assert_eq!(listing(root.path()), ["out"], "no temporary left beside it");

    // --force writes the package's two files beside the model and touches nothing else.
    tern_ok(&["compile", path(&model), "-o", path(&out), "--force"]);
    let mut expected = before.clone();
    expected.extend(["manifest.json".to_string(), "model.onnx".to_string()]);
    expected.sort();
    assert_eq!(listing(&out), expected);
    assert_eq!(fs::read(&model).unwrap(), model_bytes);
    assert_eq!(fs::read(out.join("notes/keep.txt")).unwrap(), b"mine");
    let rows = root.path().join("rows.csv");
    fs::write(&rows, unlabelled(&dataset("breast_cancer", "test"))).unwrap();
    let predictions = tern_ok(&["predict", path(&out), "--input", path(&rows)]);
    assert!(!predictions.is_empty());
}

#[test]
fn compile_onto_an_existing_file_keeps_the_file() {
    let root = tempfile::tempdir().unwrap();
    let model = train_into(&root.path().join("out"));
    let target = root.path().join("report.txt");
    fs::write(&target, b"do not lose me").unwrap();
    for extra in [&[][..], &["--force"][..]] {
        let mut args = vec!["compile", path(&model), "-o", path(&target)];
        args.extend_from_slice(extra);
        let refused = tern(&args);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success());
        assert!(stderr.contains("is a file"), "{stderr}");
        assert_eq!(fs::read(&target).unwrap(), b"do not lose me");
        assert_eq!(listing(root.path()), ["out", "report.txt"]);
    }
}

#[test]
fn compile_replaces_an_earlier_package_whole() {
    let root = tempfile::tempdir().unwrap();
    let model = train_into(&root.path().join("out"));
    let pkg = root.path().join("pkg");
    tern_ok(&["compile", path(&model), "-o", path(&pkg)]);
    tern_ok(&[
        "compile",
        path(&model),
        "-o",
        path(&pkg),
        "--precision",
        "f16",
    ]);
    assert_eq!(listing(&pkg), ["manifest.json", "model.onnx"]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(pkg.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["precision"], "f16");
    assert_eq!(listing(root.path()), ["out", "pkg"]);
}

// ---- Item 2: a tiny input declaring a huge size is refused, naming where the size came from ----

/// Runs `tern` expecting a clean refusal (exit 1, never a signal or a panic) whose message holds every `expected`.
fn refused(args: &[&str], expected: &[&str]) -> String {
    let output = tern(args);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(
        output.status.code(),
        Some(1),
        "tern {} must fail with exit 1 (not abort): {stderr}",
        args.join(" ")
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for text in expected {
        assert!(stderr.contains(text), "expected {text:?} in: {stderr}");
    }
    stderr
}

#[test]
fn a_libsvm_index_of_four_billion_is_refused_before_xgboost_allocates() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.libsvm");
    fs::write(&train, "1 1:0.5 4294967295:1\n0 2:1.5\n1 1:0.25\n0 3:1\n").unwrap();
    refused(
        &[
            "train",
            "--algorithm",
            "xgboost",
            "--train",
            path(&train),
            "--content-type",
            "text/libsvm",
            "--hp",
            "num_round=2",
            "--output-dir",
            path(&dir.path().join("out")),
            "--quiet",
        ],
        &[
            "feature index 4294967295 in record 1 of channel train",
            "more than",
        ],
    );
    assert!(!dir.path().join("out/model.tar.gz").exists());
}

#[test]
fn a_sparse_recordio_shape_of_two_to_the_32_is_refused_for_linear_learner() {
    use tern_formats::recordio::RecordIoWriter;
    use tern_formats::{Features, Record};
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.pbr");
    let mut writer = RecordIoWriter::new(fs::File::create(&train).unwrap());
    for i in 0..4 {
        let record = Record {
            features: Features::Sparse {
                indices: vec![0, 5],
                values: vec![1.0, 2.0],
                dim: Some(1 << 32),
            },
            label: Some((i % 2) as f32),
            weight: None,
        };
        writer.write_record(&record).unwrap();
    }
    writer.into_inner().unwrap();
    refused(
        &[
            "train",
            "--algorithm",
            "linear-learner",
            "--train",
            path(&train),
            "--content-type",
            "application/x-recordio-protobuf",
            "--hp",
            "predictor_type=binary_classifier",
            "--output-dir",
            path(&dir.path().join("out")),
            "--quiet",
        ],
        &["4294967296 features", "record 1 of channel train"],
    );
}

#[test]
fn a_feature_dim_of_four_billion_is_refused_for_kmeans_pca_and_knn() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.csv");
    fs::write(&train, "1,2,3\n4,5,6\n").unwrap();
    let out = dir.path().join("out");
    for (algorithm, extra) in [
        ("kmeans", &["--hp", "k=2"][..]),
        (
            "pca",
            &["--hp", "num_components=1", "--hp", "mini_batch_size=10"][..],
        ),
        (
            "knn",
            &[
                "--hp",
                "k=1",
                "--hp",
                "sample_size=2",
                "--hp",
                "predictor_type=regressor",
            ][..],
        ),
    ] {
        let mut args = vec![
            "train",
            "--algorithm",
            algorithm,
            "--train",
            path(&train),
            "--hp",
            "feature_dim=4294967296",
            "--output-dir",
            path(&out),
            "--quiet",
        ];
        args.extend_from_slice(extra);
        refused(&args, &["feature_dim=4294967296", "more than"]);
    }
}

#[test]
fn an_imported_xgboost_model_declaring_1e11_features_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.json");
    let json = serde_json::json!({
        "version": [2, 1, 0],
        "learner": {
            "attributes": {},
            "feature_names": [], "feature_types": [],
            "gradient_booster": {"name": "gbtree", "model": {
                "gbtree_model_param": {"num_trees": "1", "num_parallel_tree": "1"},
                "tree_info": [0],
                "trees": [{
                    "id": 0,
                    "tree_param": {"num_nodes": "1", "num_feature": "100000000000", "size_leaf_vector": "1", "num_deleted": "0"},
                    "left_children": [-1], "right_children": [-1], "parents": [2147483647],
                    "split_indices": [0], "split_conditions": [0.5], "split_type": [0], "default_left": [0],
                    "loss_changes": [0.0], "sum_hessian": [1.0], "base_weights": [0.5],
                    "categories": [], "categories_nodes": [], "categories_segments": [], "categories_sizes": []
                }]
            }},
            "learner_model_param": {"base_score": "5E-1", "num_class": "0", "num_feature": "100000000000", "num_target": "1", "boost_from_average": "1"},
            "name": "generic",
            "objective": {"name": "reg:squarederror", "reg_loss_param": {"scale_pos_weight": "1"}}
        }
    });
    fs::write(&model, serde_json::to_vec(&json).unwrap()).unwrap();
    let output = tern(&[
        "import",
        path(&model),
        "-o",
        path(&dir.path().join("imported.tar.gz")),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code().is_some(),
        "killed by a signal: {stderr}"
    );
    if output.status.success() {
        // Importing keeps the count; what needs memory for it (compiling, predicting) must refuse cleanly.
        let pkg = dir.path().join("pkg");
        refused(
            &[
                "compile",
                path(&dir.path().join("imported.tar.gz")),
                "-o",
                path(&pkg),
            ],
            &["100000000000"],
        );
    } else {
        assert!(
            stderr.contains("100000000000") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}

// ---- Item 5: outputs are written whole or not at all ----

#[test]
fn predict_to_a_file_leaves_no_truncated_output_when_a_later_row_is_bad() {
    let root = tempfile::tempdir().unwrap();
    let model = train_into(&root.path().join("out"));
    let rows = root.path().join("rows.csv");
    let mut text = unlabelled(&dataset("breast_cancer", "test"));
    text.push_str("1,2,3\n");
    fs::write(&rows, text).unwrap();
    let out = root.path().join("predictions.json");
    fs::write(&out, b"earlier predictions").unwrap();
    refused(
        &[
            "predict",
            path(&model),
            "--input",
            path(&rows),
            "-o",
            path(&out),
        ],
        &["rows.csv"],
    );
    assert_eq!(fs::read(&out).unwrap(), b"earlier predictions");
    assert_eq!(
        listing(root.path()),
        ["out", "predictions.json", "rows.csv"]
    );
}

#[test]
fn predict_refuses_to_write_over_its_own_input() {
    let root = tempfile::tempdir().unwrap();
    let model = train_into(&root.path().join("out"));
    let rows = root.path().join("rows.csv");
    let text = unlabelled(&dataset("breast_cancer", "test"));
    fs::write(&rows, &text).unwrap();
    refused(
        &[
            "predict",
            path(&model),
            "--input",
            path(&rows),
            "-o",
            path(&rows),
        ],
        &["is --input"],
    );
    assert_eq!(fs::read_to_string(&rows).unwrap(), text);
}

#[test]
fn train_replaces_a_whole_earlier_run_and_cleans_what_a_killed_run_left() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    train_into(&out);
    assert!(out.join("roc_curve.svg").exists());
    // What a run killed mid-way leaves: a staging folder and a temporary file of a process that is gone.
    fs::create_dir(out.join(".tern-staging-2147483600-abc")).unwrap();
    fs::write(
        out.join(".tern-staging-2147483600-abc/model.tar.gz"),
        b"partial",
    )
    .unwrap();
    fs::write(out.join(".tern-tmp-2147483600-xyz"), b"partial").unwrap();
    // A regressor's run writes no ROC/PR curves: the classifier's must not stay beside its model.
    tern_ok(&[
        "train",
        "--algorithm",
        "linear-learner",
        "--train",
        path(&dataset("diabetes", "train")),
        "--hp",
        "predictor_type=regressor",
        "--hp",
        "epochs=2",
        "--output-dir",
        path(&out),
        "--quiet",
    ]);
    assert_eq!(
        listing(&out),
        ["learning_curve.svg", "metrics.json", "model.tar.gz"]
    );
}

// ---- Item 7: every record in gives a record out, or an error ----

#[test]
fn an_input_filter_that_empties_records_fails_instead_of_writing_nothing() {
    let root = tempfile::tempdir().unwrap();
    let model = train_into(&root.path().join("out"));
    let pkg = root.path().join("pkg");
    tern_ok(&["compile", path(&model), "-o", path(&pkg)]);
    let input = root.path().join("in");
    fs::create_dir(&input).unwrap();
    let rows: String = unlabelled(&dataset("breast_cancer", "test"))
        .lines()
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(input.join("rows.csv"), rows).unwrap();
    let output = root.path().join("results");
    refused(
        &[
            "transform",
            path(&pkg),
            "--input",
            path(&input),
            "--output",
            path(&output),
            "--content-type",
            "text/csv",
            "--input-filter",
            "$[1:0]",
        ],
        &["InputFilter", "$[1:0]", "record 1"],
    );
    assert!(!output.join("rows.csv.out").exists());
}

#[test]
fn transform_does_not_read_its_own_outputs_in_a_folder_inside_the_input() {
    let root = tempfile::tempdir().unwrap();
    let model = train_into(&root.path().join("out"));
    let pkg = root.path().join("pkg");
    tern_ok(&["compile", path(&model), "-o", path(&pkg)]);
    let input = root.path().join("in");
    fs::create_dir(&input).unwrap();
    let rows: String = unlabelled(&dataset("breast_cancer", "test"))
        .lines()
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(input.join("rows.csv"), rows).unwrap();
    let output = input.join("results");
    let args = [
        "transform",
        path(&pkg),
        "--input",
        path(&input),
        "--output",
        path(&output),
        "--content-type",
        "text/csv",
        "--accept",
        "application/jsonlines",
    ];
    tern_ok(&args);
    tern_ok(&args);
    assert_eq!(listing(&output), ["rows.csv.out"]);
}

// ---- Item 8: a closed standard output ends a command quietly ----

#[test]
fn a_closed_pipe_ends_listings_quietly_and_predict_names_the_pipe() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let root = tempfile::tempdir().unwrap();
    let model = train_into(&root.path().join("out"));
    let pkg = root.path().join("pkg");
    tern_ok(&["compile", path(&model), "-o", path(&pkg)]);
    let rows = root.path().join("rows.csv");
    let many: String = unlabelled(&dataset("breast_cancer", "test")).repeat(200);
    fs::write(&rows, many).unwrap();
    let run = |args: &[&str]| {
        // The reader hangs up before tern writes, as `| head -0` does: every write meets a closed pipe.
        let mut child = Command::new(tern_tests::tern_binary())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let mut stderr = Vec::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_end(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        let output = std::process::Output {
            status,
            stdout: Vec::new(),
            stderr,
        };
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    for args in [
        &["algorithms"][..],
        &["inspect", path(&pkg)][..],
        &[
            "compile",
            path(&model),
            "-o",
            path(&root.path().join("pkg2")),
            "--print",
        ][..],
    ] {
        let (status, stderr) = run(args);
        assert!(
            status.success(),
            "tern {}: {status} {stderr}",
            args.join(" ")
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "{stderr}"
        );
    }
    let (status, stderr) = run(&[
        "predict",
        path(&pkg),
        "--input",
        path(&rows),
        "--accept",
        "application/jsonlines",
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("broken pipe") && stderr.contains("standard output"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// ---- Item 9: the smaller ones ----

#[test]
fn inspect_refuses_a_tampered_package_instead_of_showing_its_tolerance() {
    let root = tempfile::tempdir().unwrap();
    let model = train_into(&root.path().join("out"));
    let pkg = root.path().join("pkg");
    tern_ok(&["compile", path(&model), "-o", path(&pkg)]);
    let mut graph = fs::read(pkg.join("model.onnx")).unwrap();
    let last = graph.len() - 1;
    graph[last] ^= 1;
    fs::write(pkg.join("model.onnx"), graph).unwrap();
    refused(&["inspect", path(&pkg)], &["sha256"]);
}

#[test]
fn a_number_beyond_float32_is_an_error_not_infinity() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.csv");
    fs::write(&train, "1,0.5,2\n0,1e308,1\n1,0.25,3\n").unwrap();
    refused(
        &[
            "train",
            "--algorithm",
            "linear-learner",
            "--train",
            path(&train),
            "--hp",
            "predictor_type=binary_classifier",
            "--output-dir",
            path(&dir.path().join("out")),
            "--quiet",
        ],
        &["line 2", "column 2", "beyond float32's range"],
    );
}

#[test]
fn a_hyperparameter_given_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    refused(
        &[
            "train",
            "--algorithm",
            "linear-learner",
            "--train",
            path(&dataset("breast_cancer", "train")),
            "--hp",
            "predictor_type=binary_classifier",
            "--hp",
            "epochs=2",
            "--hp",
            "epochs=20",
            "--output-dir",
            path(&dir.path().join("out")),
            "--quiet",
        ],
        &["epochs", "twice"],
    );
}

#[test]
fn errors_do_not_repeat_their_own_cause() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.tar.gz");
    for args in [
        &["evaluate", path(&missing), "--test", path(&missing)][..],
        &[
            "compile",
            path(&missing),
            "-o",
            path(&dir.path().join("pkg")),
        ][..],
    ] {
        let stderr = refused(args, &["missing.tar.gz"]);
        let message = stderr.trim().trim_start_matches("error: ");
        let parts: Vec<&str> = message.split(": ").collect();
        for (i, part) in parts.iter().enumerate() {
            assert!(
                !parts[i + 1..].contains(part),
                "repeated cause {part:?} in {message:?}"
            );
        }
        assert!(
            !stderr.contains('\u{1b}'),
            "colour codes on a stderr that is not a terminal: {stderr:?}"
        );
    }
}

#[test]
fn serve_logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let output = tern(&["serve", path(&dir.path().join("no-package")), "--port", "0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("no-package"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "colour codes in {stderr:?}");
}

#[test]
fn a_model_with_nan_weights_is_refused_at_compile() {
    let root = tempfile::tempdir().unwrap();
    let model = train_into(&root.path().join("out"));
    let mut artifact = tern_trainer::Artifact::read(&model).unwrap();
    for tensor in artifact.tensors.values_mut() {
        tensor.data.iter_mut().for_each(|v| *v = f32::NAN);
    }
    let poisoned = root.path().join("nan.tar.gz");
    artifact.write(&poisoned).unwrap();
    refused(
        &[
            "compile",
            path(&poisoned),
            "-o",
            path(&root.path().join("pkg")),
        ],
        &["NaN", "non-finite"],
    );
    assert!(!root.path().join("pkg").exists());
}
