//! What the unsupervised algorithms' integration tests (kmeans, pca, knn, rcf) share: hyperparameter maps, training
//! through the [`Algorithm`] trait, the real data sets exported as SageMaker CSV under `tests/data/generated/`, and
//! the Python oracles (`tests/oracles/*.py`) run in the project's virtualenv (scripts/setup-python.sh).
//!
//! Each test file declares `mod common;` and uses a subset, hence `dead_code` is allowed here.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tern_formats::ContentType;
use tern_trainer::data::{Channel, Dataset, TrainingInput};
use tern_trainer::{Algorithm, Artifact, Hyperparameters, TrainError, TrainingContext};

/// `(name, value)` pairs as the string map SageMaker's `hyperparameters.json` holds.
pub fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `pairs` checked against `algorithm`'s table and cross-field rules (everything a job verifies before any data).
pub fn parse(
    algorithm: &dyn Algorithm,
    pairs: &[(&str, &str)],
) -> Result<Hyperparameters, TrainError> {
    Ok(algorithm.parse_hyperparameters(&raw(pairs))?)
}

/// Trains `algorithm` on `input` with `pairs`, quietly; returns the artifact and the context (its metrics).
pub fn train(
    algorithm: &dyn Algorithm,
    pairs: &[(&str, &str)],
    input: &TrainingInput,
) -> Result<(Artifact, TrainingContext), TrainError> {
    let hyperparameters = parse(algorithm, pairs)?;
    let mut context = TrainingContext::new(true);
    let artifact = algorithm.train(&hyperparameters, input, &mut context)?;
    Ok((artifact, context))
}

/// The message of a training run that must fail.
pub fn failure(algorithm: &dyn Algorithm, pairs: &[(&str, &str)], input: &TrainingInput) -> String {
    match train(algorithm, pairs, input) {
        Ok(_) => panic!("training with {pairs:?} succeeded"),
        Err(error) => error.to_string(),
    }
}

/// A train channel alone.
pub fn only_train(channel: Channel) -> TrainingInput {
    TrainingInput::new(channel)
}

/// `tests/data/generated/<name>/<split>.csv`: scikit-learn's bundled data set `name` as SageMaker CSV (label first).
pub fn csv(name: &str, split: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/generated")
        .join(name)
        .join(format!("{split}.csv"))
}

/// A CSV channel called `channel` over `path`, the first `label_size` columns the label.
pub fn csv_file_channel(channel: &str, path: &Path, label_size: usize) -> Channel {
    Channel::from_path(channel, path, Some(ContentType::Csv { label_size })).unwrap()
}

/// A channel called `channel` over [`csv`]`(name, split)`, label first.
pub fn csv_channel(channel: &str, name: &str, split: &str) -> Channel {
    csv_file_channel(channel, &csv(name, split), 1)
}

/// The rows (and labels) of [`csv`]`(name, split)`.
pub fn rows(name: &str, split: &str) -> Dataset {
    csv_channel(split, name, split).load(None).unwrap()
}

/// Runs `tests/oracles/<script>` with `args` in the project's virtualenv and parses the JSON it prints.
///
/// # Panics
/// When the virtualenv is missing (naming scripts/setup-python.sh), the script fails, or prints no JSON.
pub fn oracle<S: AsRef<OsStr>>(script: &str, args: &[S]) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh to create the oracle virtualenv \
         (tests/python/requirements.txt)",
        python.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/oracles")
        .join(script);
    let output = std::process::Command::new(&python)
        .arg(&script)
        .args(args)
        .output()
        .expect("the oracle script runs");
    assert!(
        output.status.success(),
        "oracle {} failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the oracle prints JSON")
}

/// A JSON array of numbers.
pub fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}
