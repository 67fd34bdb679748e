//! Shared by runtime-wasm's tests: real packages trained and compiled in process, and where the wasm build lives.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tern_compiler::CompileOptions;
use tern_formats::ContentType;
use tern_registry::compile;
use tern_runtime::Precision;
use tern_trainer::data::{Channel, Dataset, TrainingInput};
use tern_trainer::{algorithms, TrainingContext};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime-wasm/ sits in the repository")
        .to_path_buf()
}

/// `runtime-wasm/pkg`, the output of scripts/build-wasm.sh; fails the test saying how to build it when `file`
/// inside it is missing.
pub fn built(file: &str) -> PathBuf {
    let path = repo_root().join("runtime-wasm/pkg").join(file);
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-wasm.sh (scripts/setup-web.sh installs its tools and runs it)",
        path.display()
    );
    path
}

/// A SageMaker CSV file (label first) as a dataset.
pub fn read_csv(path: &Path) -> Dataset {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let stream = tern_formats::open_reader(
        &ContentType::Csv { label_size: 1 },
        std::io::BufReader::new(file),
        &path.display().to_string(),
    )
    .unwrap();
    Dataset::from_records(stream, "test", None).unwrap()
}

/// The first `rows` rows of a label-first CSV file without their label: a `text/csv` request body.
pub fn unlabelled_rows(path: &Path, rows: usize) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take(rows)
        .map(|line| format!("{}\n", line.split_once(',').unwrap().1))
        .collect()
}

/// A package compiled at `precision` from `algorithm` trained with `hyperparameters` on `data/train.csv`, verified
/// on `data/test.csv`, written to `out`.
pub fn package(
    out: &Path,
    algorithm: &str,
    data: &Path,
    hyperparameters: &[(&str, &str)],
    precision: Precision,
) -> PathBuf {
    let algorithm = algorithms::find(algorithm).unwrap();
    let raw: BTreeMap<String, String> = hyperparameters
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hyperparameters = algorithm.parse_hyperparameters(&raw).unwrap();
    let train = read_csv(&data.join("train.csv"));
    let test = read_csv(&data.join("test.csv"));
    let input = TrainingInput::new(Channel::from_dataset("train", train.clone()));
    let artifact = algorithm
        .train(&hyperparameters, &input, &mut TrainingContext::new(true))
        .unwrap();
    let options = CompileOptions {
        precision,
        targets: vec!["wasm32".into()],
        calibration: Some(train),
        held_out: Some(test),
        force: false,
    };
    compile(&artifact, &options).unwrap().write(out).unwrap();
    out.to_path_buf()
}

/// Linear Learner binary classifier on examples/breast_cancer (the README's main job), int8.
pub fn breast_cancer_package(out: &Path) -> PathBuf {
    package(
        out,
        "linear-learner",
        &repo_root().join("examples/breast_cancer"),
        &[("predictor_type", "binary_classifier"), ("epochs", "5")],
        Precision::Int8,
    )
}

/// XGBoost binary:logistic on examples/breast_cancer, fp32: the XGBoost response shape.
pub fn xgboost_package(out: &Path) -> PathBuf {
    package(
        out,
        "xgboost",
        &repo_root().join("examples/breast_cancer"),
        &[
            ("objective", "binary:logistic"),
            ("num_round", "10"),
            ("max_depth", "3"),
        ],
        Precision::Fp32,
    )
}
