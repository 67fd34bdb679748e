//! XGBoost against the real `xgboost` package (3.2.0, in the project virtualenv) on scikit-learn's bundled real
//! datasets: model quality with the same hyperparameters, and the JSON model interchange in both directions.
//! The oracle is `tests/oracles/xgboost_oracle.py`; data are `tests/data/generated/*` (tests/python/export_datasets.py).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Array2;
use serde_json::{json, Value};
use tern_trainer::algorithms::xgboost::{
    self, booster::TrainingOutcome, metric, model::Model, params::TrainParams, XGBoost,
};
use tern_trainer::data::{Dataset, FeatureMatrix};
use tern_trainer::{Algorithm, Hyperparameters, TrainingContext};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn data(name: &str, split: &str) -> PathBuf {
    root()
        .join("tests/data/generated")
        .join(name)
        .join(format!("{split}.csv"))
}

/// Reads a SageMaker CSV (label first, `nan` for missing) into a dense dataset.
fn read_csv(path: &Path) -> Dataset {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut labels = Vec::new();
    let mut values = Vec::new();
    let mut cols = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<f32> = line
            .split(',')
            .map(|f| f.trim().parse::<f32>().unwrap_or(f32::NAN))
            .collect();
        labels.push(fields[0]);
        cols = fields.len() - 1;
        values.extend_from_slice(&fields[1..]);
    }
    let n = labels.len();
    Dataset {
        features: FeatureMatrix::Dense(Array2::from_shape_vec((n, cols), values).unwrap()),
        labels: Some(labels),
        weights: None,
    }
}

fn oracle(request: Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("request.json");
    std::fs::write(&path, request.to_string()).unwrap();
    let python = root().join(".venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracles/xgboost_oracle.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (run scripts/setup-python.sh): {e}",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn params(pairs: &[(&str, &str)]) -> TrainParams {
    let raw: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hp = Hyperparameters::parse("xgboost", XGBoost.hyperparameters(), &raw).unwrap();
    TrainParams::from_hyperparameters(&hp).unwrap()
}

fn train(pairs: &[(&str, &str)], train: &Dataset, validation: Option<&Dataset>) -> TrainingOutcome {
    xgboost::train_datasets(
        &params(pairs),
        train,
        validation,
        None,
        None,
        &mut TrainingContext::new(true),
    )
    .unwrap()
}

fn auc(labels: &[f32], scores: &[f32]) -> f64 {
    metric::binary_auc(labels, &vec![1.0; labels.len()], scores)
}

fn accuracy(labels: &[f32], probabilities: &[f32], k: usize) -> f64 {
    let hits = labels
        .iter()
        .enumerate()
        .filter(|(i, &y)| {
            let row = &probabilities[i * k..(i + 1) * k];
            let best = (0..k).fold(0, |b, c| if row[c] > row[b] { c } else { b });
            best == y as usize
        })
        .count();
    hits as f64 / labels.len() as f64
}

fn rmse(labels: &[f32], predictions: &[f32]) -> f64 {
    let sum: f64 = labels
        .iter()
        .zip(predictions)
        .map(|(&y, &p)| ((y - p) as f64).powi(2))
        .sum();
    (sum / labels.len() as f64).sqrt()
}

/// The oracle's request params: every pair but `num_round`, as the strings SageMaker passes.
fn xgb_params(pairs: &[(&str, &str)]) -> Value {
    let map = pairs
        .iter()
        .filter(|(k, _)| *k != "num_round")
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    Value::Object(map)
}

fn num_round(pairs: &[(&str, &str)]) -> usize {
    pairs
        .iter()
        .find(|(k, _)| *k == "num_round")
        .unwrap()
        .1
        .parse()
        .unwrap()
}

fn compare(
    name: &str,
    train_path: &Path,
    test_path: &Path,
    pairs: &[(&str, &str)],
    metric_name: &str,
) -> (f64, f64) {
    let train_set = read_csv(train_path);
    let test_set = read_csv(test_path);
    let outcome = train(pairs, &train_set, None);
    let predictions = outcome.model.predict(&test_set.features);
    let labels = test_set.labels.as_ref().unwrap();
    let ours = match metric_name {
        "auc" => auc(labels, &predictions),
        "accuracy" => accuracy(labels, &predictions, outcome.model.num_group),
        "rmse" => rmse(labels, &predictions),
        _ => unreachable!(),
    };
    let theirs = oracle(json!({
        "action": "train_eval",
        "train": train_path, "test": test_path,
        "params": xgb_params(pairs), "num_round": num_round(pairs), "metric": metric_name,
    }))["metric"]
        .as_f64()
        .unwrap();
    eprintln!("{name}: tern {metric_name} {ours:.6}, xgboost {theirs:.6}");
    (ours, theirs)
}

#[test]
fn binary_breast_cancer_auc_matches_xgboost() {
    let pairs = [
        ("objective", "binary:logistic"),
        ("num_round", "30"),
        ("max_depth", "3"),
        ("eta", "0.3"),
    ];
    let (ours, theirs) = compare(
        "breast_cancer",
        &data("breast_cancer", "train"),
        &data("breast_cancer", "test"),
        &pairs,
        "auc",
    );
    assert!(
        (ours - theirs).abs() <= 0.005,
        "tern AUC {ours} vs xgboost {theirs}"
    );
    assert!(ours > 0.95, "{ours}");
}

#[test]
fn multiclass_digits_accuracy_matches_xgboost() {
    let pairs = [
        ("objective", "multi:softprob"),
        ("num_class", "10"),
        ("num_round", "15"),
        ("max_depth", "3"),
    ];
    let (ours, theirs) = compare(
        "digits",
        &data("digits", "train"),
        &data("digits", "test"),
        &pairs,
        "accuracy",
    );
    assert!(
        (ours - theirs).abs() <= 0.005,
        "tern accuracy {ours} vs xgboost {theirs}"
    );
    assert!(ours > 0.85, "{ours}");
}

#[test]
fn regression_diabetes_rmse_matches_xgboost() {
    let pairs = [
        ("objective", "reg:squarederror"),
        ("num_round", "20"),
        ("max_depth", "3"),
        ("eta", "0.1"),
    ];
    let (ours, theirs) = compare(
        "diabetes",
        &data("diabetes", "train"),
        &data("diabetes", "test"),
        &pairs,
        "rmse",
    );
    assert!(
        (ours - theirs).abs() <= 0.005,
        "tern RMSE {ours} vs xgboost {theirs}"
    );
}

fn injected(name: &str, split: &str, dir: &Path, rate: f64) -> PathBuf {
    let out = dir.join(format!("{name}-{split}-missing.csv"));
    oracle(
        json!({"action": "inject_missing", "source": data(name, split), "out": out, "rate": rate, "seed": 7}),
    );
    out
}

#[test]
fn binary_with_missing_values_matches_xgboost() {
    let dir = tempfile::tempdir().unwrap();
    let train_path = injected("breast_cancer", "train", dir.path(), 0.25);
    let test_path = injected("breast_cancer", "test", dir.path(), 0.25);
    let pairs = [
        ("objective", "binary:logistic"),
        ("num_round", "30"),
        ("max_depth", "3"),
    ];
    let (ours, theirs) = compare(
        "breast_cancer+missing",
        &train_path,
        &test_path,
        &pairs,
        "auc",
    );
    assert!(
        (ours - theirs).abs() <= 0.005,
        "tern AUC {ours} vs xgboost {theirs}"
    );
}

#[test]
fn regression_with_missing_values_matches_xgboost() {
    let dir = tempfile::tempdir().unwrap();
    let train_path = injected("diabetes", "train", dir.path(), 0.2);
    let test_path = injected("diabetes", "test", dir.path(), 0.2);
    let pairs = [
        ("objective", "reg:squarederror"),
        ("num_round", "20"),
        ("max_depth", "3"),
        ("eta", "0.1"),
    ];
    let (ours, theirs) = compare("diabetes+missing", &train_path, &test_path, &pairs, "rmse");
    assert!(
        (ours - theirs).abs() <= 0.005,
        "tern RMSE {ours} vs xgboost {theirs}"
    );
}

#[test]
fn lossguide_matches_xgboost() {
    let pairs = [
        ("objective", "binary:logistic"),
        ("num_round", "20"),
        ("grow_policy", "lossguide"),
        ("max_leaves", "8"),
        ("max_depth", "0"),
    ];
    let (ours, theirs) = compare(
        "breast_cancer lossguide",
        &data("breast_cancer", "train"),
        &data("breast_cancer", "test"),
        &pairs,
        "auc",
    );
    assert!(
        (ours - theirs).abs() <= 0.005,
        "tern AUC {ours} vs xgboost {theirs}"
    );
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn json_floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// tern trains → export xgboost-json → `xgboost.Booster().load_model()` predicts the same (≤1e-6).
fn tern_to_xgboost(name: &str, pairs: &[(&str, &str)], missing: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (train_path, test_path) = if missing {
        (
            injected(name, "train", dir.path(), 0.2),
            injected(name, "test", dir.path(), 0.2),
        )
    } else {
        (data(name, "train"), data(name, "test"))
    };
    let outcome = train(pairs, &read_csv(&train_path), None);
    let artifact = xgboost::to_artifact(&outcome.model, BTreeMap::new(), &[], 0);
    let artifact = tern_trainer::Artifact::from_bytes(&artifact.to_bytes().unwrap(), "m").unwrap();
    let predictor = XGBoost.load(&artifact).unwrap();
    let test = read_csv(&test_path);
    let ours = predictor
        .predict(&test.features)
        .unwrap()
        .scores
        .iter()
        .copied()
        .collect::<Vec<_>>();
    let model_path = dir.path().join("model.json");
    std::fs::write(
        &model_path,
        xgboost::export_xgboost_json(&artifact).unwrap(),
    )
    .unwrap();
    let theirs = json_floats(
        &oracle(json!({"action": "predict", "model": model_path, "data": test_path}))
            ["predictions"],
    );
    let diff = max_difference(&ours, &theirs);
    eprintln!("{name}: tern → xgboost max |Δ| {diff:e}");
    assert!(
        diff <= 1e-6,
        "{name}: tern and xgboost predictions differ by {diff}"
    );
}

/// xgboost trains and saves JSON → `tern import` → tern predicts the same (≤1e-6).
fn xgboost_to_tern(name: &str, pairs: &[(&str, &str)], missing: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (train_path, test_path) = if missing {
        (
            injected(name, "train", dir.path(), 0.2),
            injected(name, "test", dir.path(), 0.2),
        )
    } else {
        (data(name, "train"), data(name, "test"))
    };
    let model_path = dir.path().join("xgb.json");
    let theirs = json_floats(
        &oracle(json!({
            "action": "train_save", "train": train_path, "params": xgb_params(pairs),
            "num_round": num_round(pairs), "model_out": model_path, "data": test_path,
        }))["predictions"],
    );
    let bytes = std::fs::read(&model_path).unwrap();
    let artifact = xgboost::import_xgboost_json(&bytes, "xgb.json").unwrap();
    let predictor = XGBoost.load(&artifact).unwrap();
    let ours = predictor
        .predict(&read_csv(&test_path).features)
        .unwrap()
        .scores
        .iter()
        .copied()
        .collect::<Vec<_>>();
    let diff = max_difference(&ours, &theirs);
    eprintln!("{name}: xgboost → tern max |Δ| {diff:e}");
    assert!(
        diff <= 1e-6,
        "{name}: xgboost and tern predictions differ by {diff}"
    );
    // And back out again: the exported JSON reloads in xgboost with the same predictions.
    let again = dir.path().join("again.json");
    std::fs::write(&again, xgboost::export_xgboost_json(&artifact).unwrap()).unwrap();
    let reloaded = json_floats(
        &oracle(json!({"action": "predict", "model": again, "data": test_path}))["predictions"],
    );
    assert!(max_difference(&reloaded, &theirs) <= 1e-6);
}

#[test]
fn interchange_binary_with_missing_both_directions() {
    let pairs = [
        ("objective", "binary:logistic"),
        ("num_round", "25"),
        ("max_depth", "4"),
    ];
    tern_to_xgboost("breast_cancer", &pairs, true);
    xgboost_to_tern("breast_cancer", &pairs, true);
}

#[test]
fn interchange_multiclass_both_directions() {
    let pairs = [
        ("objective", "multi:softprob"),
        ("num_class", "10"),
        ("num_round", "8"),
        ("max_depth", "3"),
    ];
    tern_to_xgboost("digits", &pairs, false);
    xgboost_to_tern("digits", &pairs, false);
}

#[test]
fn interchange_regression_both_directions() {
    let pairs = [
        ("objective", "reg:squarederror"),
        ("num_round", "20"),
        ("max_depth", "4"),
    ];
    tern_to_xgboost("diabetes", &pairs, true);
    xgboost_to_tern("diabetes", &pairs, true);
    let poisson = [
        ("objective", "count:poisson"),
        ("num_round", "10"),
        ("max_depth", "3"),
    ];
    tern_to_xgboost("diabetes", &poisson, false);
    xgboost_to_tern("diabetes", &poisson, false);
}

#[test]
fn early_stopping_keeps_the_best_round_and_training_is_deterministic() {
    let train_set = read_csv(&data("breast_cancer", "train"));
    let valid_set = read_csv(&data("breast_cancer", "validation"));
    let pairs = [
        ("objective", "binary:logistic"),
        ("num_round", "200"),
        ("eta", "0.5"),
        ("eval_metric", "logloss"),
        ("early_stopping_rounds", "5"),
        ("subsample", "0.8"),
        ("colsample_bytree", "0.7"),
        ("colsample_bynode", "0.8"),
        ("seed", "3"),
    ];
    let mut context = TrainingContext::new(true);
    let outcome = xgboost::train_datasets(
        &params(&pairs),
        &train_set,
        Some(&valid_set),
        None,
        None,
        &mut context,
    )
    .unwrap();
    let best = outcome.model.best_iteration.expect("early stopping fired");
    assert!(best < 199);
    assert_eq!(outcome.model.trees.len(), best + 1);
    let per_round: Vec<f64> = context
        .metrics()
        .iter()
        .filter(|m| m.name == "validation:logloss" && m.epoch.is_some())
        .map(|m| m.value)
        .collect();
    let minimum = per_round.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(
        per_round[best], minimum,
        "best iteration is the minimum of {per_round:?}"
    );
    assert_eq!(per_round.len(), best + 6, "stopped 5 rounds after the best");
    let again = train(&pairs, &train_set, Some(&valid_set));
    assert_eq!(again.model, outcome.model, "same seed, same model");
}

#[test]
fn feature_importance_counts_splits() {
    let outcome = train(
        &[
            ("objective", "binary:logistic"),
            ("num_round", "5"),
            ("max_depth", "2"),
        ],
        &read_csv(&data("breast_cancer", "train")),
        None,
    );
    let artifact = xgboost::to_artifact(&outcome.model, BTreeMap::new(), &[], 0);
    let weight = xgboost::feature_importance(&artifact, "weight").unwrap();
    let splits: usize = outcome
        .model
        .trees
        .iter()
        .map(|t| t.left.iter().filter(|&&l| l >= 0).count())
        .sum();
    assert_eq!(
        weight.iter().map(|(_, w)| *w as usize).sum::<usize>(),
        splits
    );
    assert!(xgboost::feature_importance(&artifact, "gain")
        .unwrap()
        .iter()
        .all(|(_, g)| *g > 0.0));
    assert!(xgboost::feature_importance(&artifact, "nonsense").is_err());
}

fn error_of(pairs: &[(&str, &str)], dataset: &Dataset) -> String {
    let raw: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hp = match Hyperparameters::parse("xgboost", XGBoost.hyperparameters(), &raw) {
        Ok(hp) => hp,
        Err(e) => return e.to_string(),
    };
    if let Err(e) = XGBoost.validate(&hp) {
        return e.to_string();
    }
    let p = TrainParams::from_hyperparameters(&hp).unwrap();
    match xgboost::train_datasets(
        &p,
        dataset,
        None,
        None,
        None,
        &mut TrainingContext::new(true),
    ) {
        Ok(_) => panic!("training succeeded on bad input"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_input_fails_before_training_with_a_clear_error() {
    let digits = read_csv(&data("digits", "train"));
    let missing_class = error_of(
        &[("objective", "multi:softprob"), ("num_round", "2")],
        &digits,
    );
    assert!(
        missing_class.contains("num_class is required"),
        "{missing_class}"
    );
    let out_of_range = error_of(
        &[
            ("objective", "multi:softprob"),
            ("num_class", "5"),
            ("num_round", "2"),
        ],
        &digits,
    );
    assert!(
        out_of_range.contains("record")
            && out_of_range.contains("label")
            && out_of_range.contains("[0, 5)"),
        "{out_of_range}"
    );
    let binary = error_of(
        &[("objective", "binary:logistic"), ("num_round", "2")],
        &digits,
    );
    assert!(binary.contains("label in [0, 1]"), "{binary}");
    let metric = error_of(
        &[
            ("objective", "binary:logistic"),
            ("num_round", "2"),
            ("eval_metric", "mlogloss"),
        ],
        &digits,
    );
    assert!(
        metric.contains("mlogloss needs a multi:softmax"),
        "{metric}"
    );
    let no_round = error_of(&[("objective", "binary:logistic")], &digits);
    assert!(no_round.contains("num_round"), "{no_round}");
    let p = params(&[("objective", "rank:ndcg"), ("num_round", "2")]);
    let groups = xgboost::train_datasets(
        &p,
        &digits,
        None,
        Some(&[10, 20]),
        None,
        &mut TrainingContext::new(true),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        groups.contains("group sizes sum to 30") && groups.contains("1078"),
        "{groups}"
    );
}

#[test]
fn imported_models_with_unsupported_parts_are_refused() {
    let err = xgboost::import_xgboost_json(b"{\"learner\": {}}", "bad.json")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.json") && err.contains("missing field"),
        "{err}"
    );
    let model: Model = train(
        &[("objective", "reg:squarederror"), ("num_round", "2")],
        &read_csv(&data("diabetes", "train")),
        None,
    )
    .model;
    let mut value = xgboost::json_model::to_json(&model);
    value["learner"]["gradient_booster"]["model"]["trees"][0]["split_type"][0] = json!(1);
    let err = xgboost::import_xgboost_json(value.to_string().as_bytes(), "cat.json")
        .unwrap_err()
        .to_string();
    assert!(err.contains("categorical"), "{err}");
}

fn metric_of(name: &str, labels: &[f32], predictions: &[f32], groups: usize) -> f64 {
    match name {
        "auc" => auc(labels, predictions),
        "accuracy" if groups > 1 => accuracy(labels, predictions, groups),
        "accuracy" => {
            labels
                .iter()
                .zip(predictions)
                .filter(|(y, p)| y == p)
                .count() as f64
                / labels.len() as f64
        }
        "rmse" => rmse(labels, predictions),
        "mae" => {
            labels
                .iter()
                .zip(predictions)
                .map(|(y, p)| (y - p).abs() as f64)
                .sum::<f64>()
                / labels.len() as f64
        }
        "rmsle" => {
            let sum: f64 = labels
                .iter()
                .zip(predictions)
                .map(|(&y, &p)| ((p as f64).ln_1p() - (y as f64).ln_1p()).powi(2))
                .sum();
            (sum / labels.len() as f64).sqrt()
        }
        _ => unreachable!("{name}"),
    }
}

/// Every other objective against xgboost with the same hyperparameters: AUC/accuracy within 0.005, error metrics
/// within 0.5% of xgboost's (their scale is the label's: diabetes' targets are in the hundreds).
#[test]
fn other_objectives_match_xgboost() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("breast_cancer", &[("objective", "reg:logistic")], "auc"),
        ("breast_cancer", &[("objective", "binary:logitraw")], "auc"),
        (
            "breast_cancer",
            &[("objective", "binary:hinge")],
            "accuracy",
        ),
        (
            "digits",
            &[("objective", "multi:softmax"), ("num_class", "10")],
            "accuracy",
        ),
        ("diabetes", &[("objective", "count:poisson")], "rmse"),
        ("diabetes", &[("objective", "reg:gamma")], "rmse"),
        ("diabetes", &[("objective", "reg:tweedie")], "rmse"),
        (
            "diabetes",
            &[("objective", "reg:pseudohubererror"), ("huber_slope", "50")],
            "rmse",
        ),
        ("diabetes", &[("objective", "reg:absoluteerror")], "mae"),
        ("diabetes", &[("objective", "reg:squaredlogerror")], "rmsle"),
    ];
    let mut failures = Vec::new();
    for (name, objective, metric_name) in cases {
        let mut pairs: Vec<(&str, &str)> = objective.to_vec();
        pairs.extend([("num_round", "10"), ("max_depth", "3")]);
        let train_set = read_csv(&data(name, "train"));
        let test_set = read_csv(&data(name, "test"));
        let model = train(&pairs, &train_set, None).model;
        let ours = metric_of(
            metric_name,
            test_set.labels.as_ref().unwrap(),
            &model.predict(&test_set.features),
            model.num_group,
        );
        let theirs = oracle(json!({
            "action": "train_eval", "train": data(name, "train"), "test": data(name, "test"),
            "params": xgb_params(&pairs), "num_round": 10, "metric": metric_name,
        }))["metric"]
            .as_f64()
            .unwrap();
        let tolerance = if matches!(*metric_name, "auc" | "accuracy") {
            0.005
        } else {
            0.005 * theirs.abs()
        };
        eprintln!("{name} {objective:?}: tern {metric_name} {ours:.6}, xgboost {theirs:.6}");
        if (ours - theirs).abs() > tolerance {
            failures.push(format!(
                "{name} {objective:?}: tern {ours} vs xgboost {theirs}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn exact_tree_method_matches_xgboost() {
    let pairs = [
        ("objective", "reg:squarederror"),
        ("num_round", "20"),
        ("max_depth", "3"),
        ("eta", "0.1"),
        ("tree_method", "exact"),
    ];
    let (ours, theirs) = compare(
        "diabetes exact",
        &data("diabetes", "train"),
        &data("diabetes", "test"),
        &pairs,
        "rmse",
    );
    assert!(
        (ours - theirs).abs() <= 0.005,
        "tern RMSE {ours} vs xgboost {theirs}"
    );
}

#[test]
fn monotone_constraints_hold_and_match_xgboost_quality() {
    // diabetes feature 2 (BMI) increasing, feature 8 (s5) increasing, feature 1 (sex) decreasing.
    let constraint = "(0,-1,1,0,0,0,0,0,1,0)";
    let pairs = [
        ("objective", "reg:squarederror"),
        ("num_round", "20"),
        ("max_depth", "3"),
        ("eta", "0.1"),
        ("monotone_constraints", constraint),
    ];
    let (ours, theirs) = compare(
        "diabetes monotone",
        &data("diabetes", "train"),
        &data("diabetes", "test"),
        &pairs,
        "rmse",
    );
    assert!(
        (ours - theirs).abs() <= 0.005 * theirs,
        "tern RMSE {ours} vs xgboost {theirs}"
    );
    let model = train(&pairs, &read_csv(&data("diabetes", "train")), None).model;
    let test = read_csv(&data("diabetes", "test"));
    let FeatureMatrix::Dense(base) = &test.features else {
        unreachable!()
    };
    for (feature, direction) in [(2usize, 1.0f32), (8, 1.0), (1, -1.0)] {
        let mut previous: Option<Vec<f32>> = None;
        for step in 0..12 {
            let mut grid = base.clone();
            grid.column_mut(feature).fill(-0.12 + step as f32 * 0.02);
            let predictions = model.predict(&FeatureMatrix::Dense(grid));
            if let Some(previous) = &previous {
                for (now, before) in predictions.iter().zip(previous) {
                    assert!(
                        (now - before) * direction >= -1e-4,
                        "feature {feature} breaks its constraint: {before} → {now}"
                    );
                }
            }
            previous = Some(predictions);
        }
    }
}

/// Diabetes as a ranking task: queries of 20 consecutive rows, relevance 0–3 from the disease-progression target.
fn ranking_files(dir: &Path, split: &str) -> (PathBuf, Vec<usize>) {
    let set = read_csv(&data("diabetes", split));
    let FeatureMatrix::Dense(x) = &set.features else {
        unreachable!()
    };
    let mut text = String::new();
    for (i, &y) in set.labels.as_ref().unwrap().iter().enumerate() {
        let relevance = [100.0, 150.0, 220.0].iter().filter(|&&t| y > t).count();
        let row: Vec<String> = x.row(i).iter().map(|v| v.to_string()).collect();
        text.push_str(&format!("{relevance},{}\n", row.join(",")));
    }
    let path = dir.join(format!("rank-{split}.csv"));
    std::fs::write(&path, text).unwrap();
    let n = set.n_rows();
    let groups = (0..n)
        .step_by(20)
        .map(|start| (n - start).min(20))
        .collect();
    (path, groups)
}

#[test]
fn ranking_ndcg_matches_xgboost() {
    let dir = tempfile::tempdir().unwrap();
    let (train_path, train_groups) = ranking_files(dir.path(), "train");
    let (test_path, test_groups) = ranking_files(dir.path(), "test");
    for objective in ["rank:ndcg", "rank:pairwise"] {
        let pairs = [
            ("objective", objective),
            ("num_round", "20"),
            ("max_depth", "3"),
            ("eta", "0.1"),
        ];
        let train_set = read_csv(&train_path);
        let outcome = xgboost::train_datasets(
            &params(&pairs),
            &train_set,
            None,
            Some(&train_groups),
            None,
            &mut TrainingContext::new(true),
        )
        .unwrap();
        let test = read_csv(&test_path);
        let scores = outcome.model.predict_margins(&test.features);
        let labels = test.labels.as_ref().unwrap();
        let mut start = 0;
        let mut total = 0.0;
        for &size in &test_groups {
            total += metric::ndcg(
                &labels[start..start + size],
                &scores[start..start + size],
                None,
                false,
            );
            start += size;
        }
        let ours = total / test_groups.len() as f64;
        let theirs = oracle(json!({
            "action": "train_eval", "train": train_path, "test": test_path, "params": xgb_params(&pairs),
            "num_round": 20, "metric": "ndcg", "groups": train_groups, "test_groups": test_groups,
        }))["metric"]
            .as_f64()
            .unwrap();
        eprintln!("{objective}: tern ndcg {ours:.6}, xgboost {theirs:.6}");
        assert!(
            (ours - theirs).abs() <= 0.005,
            "{objective}: tern NDCG {ours} vs xgboost {theirs}"
        );
    }
}

fn hyperparameters(pairs: &[(&str, &str)]) -> Hyperparameters {
    let raw: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Hyperparameters::parse("xgboost", XGBoost.hyperparameters(), &raw).unwrap()
}

/// `csv_weights=1` through a real CSV channel: the column after the label weighs each row, as in xgboost.
#[test]
fn csv_weights_channel_matches_xgboost_with_the_same_weights() {
    use tern_trainer::data::{Channel, TrainingInput};
    let dir = tempfile::tempdir().unwrap();
    let source = std::fs::read_to_string(data("breast_cancer", "train")).unwrap();
    let mut weighted = String::new();
    for (i, line) in source.lines().enumerate() {
        let (label, rest) = line.split_once(',').unwrap();
        let weight = [0.5, 1.0, 3.0][i % 3];
        weighted.push_str(&format!("{label},{weight},{rest}\n"));
    }
    let train_path = dir.path().join("weighted.csv");
    std::fs::write(&train_path, weighted).unwrap();
    let pairs = [
        ("objective", "binary:logistic"),
        ("num_round", "20"),
        ("max_depth", "3"),
        ("csv_weights", "1"),
    ];
    let input = TrainingInput::new(Channel::from_path("train", &train_path, None).unwrap());
    let artifact = XGBoost
        .train(
            &hyperparameters(&pairs),
            &input,
            &mut TrainingContext::new(true),
        )
        .unwrap();
    assert_eq!(
        artifact.meta.feature_dim, 30,
        "the weight column is not a feature"
    );
    let test = read_csv(&data("breast_cancer", "test"));
    let predictions = XGBoost
        .load(&artifact)
        .unwrap()
        .predict(&test.features)
        .unwrap()
        .score_column();
    let ours = auc(test.labels.as_ref().unwrap(), &predictions);
    let oracle_params: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(k, _)| *k != "csv_weights")
        .collect();
    let result = oracle(json!({
        "action": "train_eval", "train": train_path, "test": data("breast_cancer", "test"), "csv_weights": true,
        "params": xgb_params(&oracle_params), "num_round": 20, "metric": "auc",
    }));
    let theirs = result["metric"].as_f64().unwrap();
    eprintln!("weighted breast_cancer: tern auc {ours:.6}, xgboost {theirs:.6}");
    assert!(
        (ours - theirs).abs() <= 0.005,
        "tern {ours} vs xgboost {theirs}"
    );
    let diff = max_difference(&predictions, &json_floats(&result["predictions"]));
    assert!(
        diff < 1e-5,
        "same weighted model as xgboost: predictions differ by {diff}"
    );
}

/// Ranking through a channel folder: `rank.csv` and its query groups in `rank.group` (xgboost's convention).
#[test]
fn ranking_channel_reads_group_files() {
    use tern_trainer::data::{Channel, TrainingInput};
    let dir = tempfile::tempdir().unwrap();
    let (csv, groups) = ranking_files(dir.path(), "train");
    let folder = dir.path().join("train");
    std::fs::create_dir(&folder).unwrap();
    std::fs::rename(&csv, folder.join("rank.csv")).unwrap();
    let sizes: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    std::fs::write(folder.join("rank.group"), sizes.join("\n")).unwrap();
    let pairs = [
        ("objective", "rank:ndcg"),
        ("num_round", "10"),
        ("max_depth", "3"),
    ];
    let input = TrainingInput::new(Channel::from_path("train", &folder, None).unwrap());
    let artifact = XGBoost
        .train(
            &hyperparameters(&pairs),
            &input,
            &mut TrainingContext::new(true),
        )
        .unwrap();
    let through_channel = xgboost::model_of(&artifact).unwrap();
    let dataset = read_csv(&folder.join("rank.csv"));
    let direct = xgboost::train_datasets(
        &params(&pairs),
        &dataset,
        None,
        Some(&groups),
        None,
        &mut TrainingContext::new(true),
    )
    .unwrap()
    .model;
    assert_eq!(through_channel.trees, direct.trees);
    std::fs::write(folder.join("rank.group"), "10\n20\n").unwrap();
    let input = TrainingInput::new(Channel::from_path("train", &folder, None).unwrap());
    let err = XGBoost
        .train(
            &hyperparameters(&pairs),
            &input,
            &mut TrainingContext::new(true),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("group sizes sum to 30"), "{err}");
}

/// A CSV with a non-numeric field fails before training, naming the file, line and field.
#[test]
fn non_numeric_csv_field_fails_with_its_location() {
    use tern_trainer::data::{Channel, TrainingInput};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "1,0.5,2.0\n0,abc,1.0\n").unwrap();
    let input = TrainingInput::new(Channel::from_path("train", &path, None).unwrap());
    let err = XGBoost
        .train(
            &hyperparameters(&[("objective", "binary:logistic"), ("num_round", "2")]),
            &input,
            &mut TrainingContext::new(true),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.csv") && err.contains("abc"), "{err}");
}

/// Absent sparse entries are missing values: a CSR matrix trains and predicts exactly as the dense one with NaN.
#[test]
fn sparse_absent_entries_train_like_dense_nan() {
    use tern_trainer::data::CsrMatrix;
    let dir = tempfile::tempdir().unwrap();
    let dense = read_csv(&injected("breast_cancer", "train", dir.path(), 0.3));
    let FeatureMatrix::Dense(matrix) = &dense.features else {
        unreachable!()
    };
    let mut csr = CsrMatrix::new(matrix.ncols());
    for row in matrix.rows() {
        let (indices, values): (Vec<u32>, Vec<f32>) = row
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_nan())
            .map(|(j, &v)| (j as u32, v))
            .unzip();
        csr.push_row(&indices, &values);
    }
    let sparse = Dataset {
        features: FeatureMatrix::Sparse(csr),
        labels: dense.labels.clone(),
        weights: None,
    };
    let pairs = [
        ("objective", "binary:logistic"),
        ("num_round", "10"),
        ("max_depth", "4"),
    ];
    let from_dense = train(&pairs, &dense, None).model;
    let from_sparse = train(&pairs, &sparse, None).model;
    assert_eq!(from_dense, from_sparse);
    assert_eq!(
        from_dense.predict(&dense.features),
        from_sparse.predict(&sparse.features)
    );
    assert!(
        from_dense
            .trees
            .iter()
            .any(|t| t.default_left.iter().any(|&d| d)),
        "some split learned missing → left"
    );
}

/// With interaction constraints, every root-to-leaf path splits only on features of one allowed set.
#[test]
fn interaction_constraints_confine_each_path() {
    let sets = [vec![0usize, 1, 2], vec![3, 4, 5, 6, 7, 8, 9]];
    let pairs = [
        ("objective", "reg:squarederror"),
        ("num_round", "10"),
        ("max_depth", "4"),
        ("interaction_constraints", "[[0,1,2],[3,4,5,6,7,8,9]]"),
    ];
    let model = train(&pairs, &read_csv(&data("diabetes", "train")), None).model;
    for tree in &model.trees {
        let mut stack = vec![(0usize, Vec::<usize>::new())];
        while let Some((node, mut path)) = stack.pop() {
            if tree.is_leaf(node) {
                assert!(
                    sets.iter().any(|s| path.iter().all(|f| s.contains(f))),
                    "path {path:?} mixes sets"
                );
                continue;
            }
            path.push(tree.split_index[node] as usize);
            stack.push((tree.left[node] as usize, path.clone()));
            stack.push((tree.right[node] as usize, path));
        }
    }
}

/// SageMaker XGBoost's response shapes: a probability per row for binary, a list for multi:softprob, the class for
/// multi:softmax.
#[test]
fn response_records_have_sagemaker_shapes() {
    let cancer = read_csv(&data("breast_cancer", "test"));
    let digits = read_csv(&data("digits", "test"));
    for (pairs, set, check) in [
        (
            vec![("objective", "binary:logistic"), ("num_round", "3")],
            &cancer,
            (|v: &Value| {
                v["score"]
                    .as_f64()
                    .is_some_and(|p| (0.0..=1.0).contains(&p))
            }) as fn(&Value) -> bool,
        ),
        (
            vec![
                ("objective", "multi:softprob"),
                ("num_class", "10"),
                ("num_round", "2"),
            ],
            &digits,
            |v: &Value| v["score"].as_array().is_some_and(|a| a.len() == 10),
        ),
        (
            vec![
                ("objective", "multi:softmax"),
                ("num_class", "10"),
                ("num_round", "2"),
            ],
            &digits,
            |v: &Value| {
                v["score"]
                    .as_f64()
                    .is_some_and(|c| c.fract() == 0.0 && (0.0..10.0).contains(&c))
            },
        ),
    ] {
        let model = train(
            &pairs,
            &read_csv(&data(
                if set.n_features() == 30 {
                    "breast_cancer"
                } else {
                    "digits"
                },
                "train",
            )),
            None,
        )
        .model;
        let predictor = XGBoost
            .load(&xgboost::to_artifact(&model, BTreeMap::new(), &[], 0))
            .unwrap();
        let predictions = predictor.predict(&set.features).unwrap();
        let records = predictor.response_records(&predictions);
        assert_eq!(records.len(), set.n_rows());
        assert!(records.iter().all(check), "{pairs:?}: {}", records[0]);
    }
}

/// gblinear against xgboost's sequential coordinate descent (`updater=coord_descent`), and its JSON both ways.
#[test]
fn gblinear_matches_xgboost_and_round_trips() {
    for (name, objective, metric_name) in [
        ("diabetes", "reg:squarederror", "rmse"),
        ("breast_cancer", "binary:logistic", "auc"),
    ] {
        let pairs = [
            ("objective", objective),
            ("booster", "gblinear"),
            ("num_round", "30"),
            ("lambda", "0.1"),
        ];
        let train_set = read_csv(&data(name, "train"));
        let test_set = read_csv(&data(name, "test"));
        let model = train(&pairs, &train_set, None).model;
        let ours_predictions = model.predict(&test_set.features);
        let ours = metric_of(
            metric_name,
            test_set.labels.as_ref().unwrap(),
            &ours_predictions,
            1,
        );
        let mut oracle_pairs = pairs.to_vec();
        oracle_pairs.push(("updater", "coord_descent"));
        let result = oracle(json!({
            "action": "train_eval", "train": data(name, "train"), "test": data(name, "test"),
            "params": xgb_params(&oracle_pairs), "num_round": 30, "metric": metric_name,
        }));
        let theirs = result["metric"].as_f64().unwrap();
        let diff = max_difference(&ours_predictions, &json_floats(&result["predictions"]));
        eprintln!("gblinear {name}: tern {metric_name} {ours:.6}, xgboost {theirs:.6}, max |Δ prediction| {diff:e}");
        let tolerance = if metric_name == "auc" {
            0.005
        } else {
            0.005 * theirs
        };
        assert!(
            (ours - theirs).abs() <= tolerance,
            "{name}: tern {ours} vs xgboost {theirs}"
        );
        // tern → xgboost: the exported gblinear JSON predicts the same in xgboost.
        let dir = tempfile::tempdir().unwrap();
        let artifact = xgboost::to_artifact(&model, BTreeMap::new(), &[], 0);
        let path = dir.path().join("linear.json");
        std::fs::write(&path, xgboost::export_xgboost_json(&artifact).unwrap()).unwrap();
        let reloaded = json_floats(
            &oracle(json!({"action": "predict", "model": path, "data": data(name, "test")}))
                ["predictions"],
        );
        let diff = max_difference(&ours_predictions, &reloaded);
        assert!(
            diff <= 1e-6 * ours_predictions.iter().fold(1.0f32, |m, v| m.max(v.abs())),
            "{name}: {diff}"
        );
    }
    let pairs = [
        ("objective", "reg:squarederror"),
        ("booster", "gblinear"),
        ("num_round", "10"),
    ];
    xgboost_to_tern("diabetes", &pairs, true);
}

fn test_scores(model: &Model, name: &str) -> (Vec<f32>, Vec<f32>) {
    let test = read_csv(&data(name, "test"));
    (test.labels.clone().unwrap(), model.predict(&test.features))
}

#[test]
fn dart_without_dropout_is_gbtree_and_with_dropout_matches_xgboost_quality() {
    let train_set = read_csv(&data("breast_cancer", "train"));
    let gbtree = [
        ("objective", "binary:logistic"),
        ("num_round", "20"),
        ("max_depth", "3"),
    ];
    let no_drop = [
        ("objective", "binary:logistic"),
        ("num_round", "20"),
        ("max_depth", "3"),
        ("booster", "dart"),
    ];
    let plain = train(&gbtree, &train_set, None).model;
    let dart = train(&no_drop, &train_set, None).model;
    assert_eq!(
        test_scores(&plain, "breast_cancer").1,
        test_scores(&dart, "breast_cancer").1,
        "dart with rate_drop=0 must equal gbtree"
    );
    assert!(dart
        .tree_weights
        .as_ref()
        .unwrap()
        .iter()
        .all(|&w| w == 1.0));

    for (sample_type, normalize_type) in [("uniform", "tree"), ("weighted", "forest")] {
        let pairs = [
            ("objective", "binary:logistic"),
            ("num_round", "40"),
            ("max_depth", "3"),
            ("booster", "dart"),
            ("rate_drop", "0.2"),
            ("skip_drop", "0.3"),
            ("one_drop", "1"),
            ("sample_type", sample_type),
            ("normalize_type", normalize_type),
        ];
        // xgboost draws its dropouts from its own generator, so the two forests differ tree by tree: the bar is
        // the quality of the result, averaged over seeds, and tern must not be worse.
        let (mut ours, mut theirs) = (0.0, 0.0);
        for seed in ["0", "1", "2"] {
            let mut seeded = pairs.to_vec();
            seeded.push(("seed", seed));
            let (a, b) = compare(
                &format!("breast_cancer dart {sample_type}/{normalize_type} seed {seed}"),
                &data("breast_cancer", "train"),
                &data("breast_cancer", "test"),
                &seeded,
                "auc",
            );
            ours += a / 3.0;
            theirs += b / 3.0;
        }
        assert!(
            ours >= theirs - 0.005,
            "tern dart mean AUC {ours} vs xgboost dart {theirs}"
        );
        let model = train(&pairs, &train_set, None).model;
        let weights = model.tree_weights.as_ref().unwrap();
        assert_eq!(weights.len(), 40);
        assert!(
            weights.iter().any(|&w| w < 1.0),
            "dropout happened: {weights:?}"
        );
        assert_eq!(
            model,
            train(&pairs, &train_set, None).model,
            "deterministic"
        );
    }
}

#[test]
fn dart_models_interchange_with_xgboost_both_directions() {
    let binary = [
        ("objective", "binary:logistic"),
        ("num_round", "15"),
        ("max_depth", "3"),
        ("booster", "dart"),
        ("rate_drop", "0.3"),
        ("one_drop", "1"),
    ];
    tern_to_xgboost("breast_cancer", &binary, true);
    xgboost_to_tern("breast_cancer", &binary, true);
    let multiclass = [
        ("objective", "multi:softprob"),
        ("num_class", "10"),
        ("num_round", "5"),
        ("max_depth", "3"),
        ("booster", "dart"),
        ("rate_drop", "0.3"),
        ("normalize_type", "forest"),
    ];
    tern_to_xgboost("digits", &multiclass, false);
    xgboost_to_tern("digits", &multiclass, false);
}

#[test]
fn gradient_based_sampling_keeps_quality_at_a_low_subsample() {
    let train_set = read_csv(&data("breast_cancer", "train"));
    let base = [
        ("objective", "binary:logistic"),
        ("num_round", "40"),
        ("max_depth", "3"),
    ];
    let full = train(&base, &train_set, None).model;
    let (labels, full_scores) = test_scores(&full, "breast_cancer");
    let full_auc = auc(&labels, &full_scores);
    let sampled = |method: &str| {
        let mut pairs = base.to_vec();
        pairs.extend([("subsample", "0.2"), ("sampling_method", method)]);
        let model = train(&pairs, &train_set, None).model;
        assert_eq!(
            model,
            train(&pairs, &train_set, None).model,
            "deterministic"
        );
        auc(&labels, &test_scores(&model, "breast_cancer").1)
    };
    let gradient_based = sampled("gradient_based");
    let uniform = sampled("uniform");
    eprintln!("AUC: all rows {full_auc:.5}, subsample 0.2 gradient_based {gradient_based:.5}, uniform {uniform:.5}");
    assert!(
        gradient_based >= full_auc - 0.01,
        "gradient_based {gradient_based} vs all rows {full_auc}"
    );
    let gblinear = error_of(
        &[
            ("objective", "binary:logistic"),
            ("num_round", "2"),
            ("booster", "gblinear"),
            ("sampling_method", "gradient_based"),
        ],
        &train_set,
    );
    assert!(gblinear.contains("sampling_method"), "{gblinear}");
}

/// Writes `csv` (SageMaker CSV, label first) as Parquet with pyarrow, `compression` codec, column names
/// label, f0, f1, …; with `nulls`, every 7th value of feature 2 is null; with `text_column`, feature 0 is a string.
fn write_parquet(csv: &Path, out: &Path, compression: &str, nulls: bool, text_column: bool) {
    let script = r#"
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
csv, out, compression, nulls, text = sys.argv[1:6]
data = np.loadtxt(csv, delimiter=",", dtype=np.float64)
columns = {"label": pa.array(data[:, 0].astype(np.int64))}
for j in range(1, data.shape[1]):
    values = data[:, j].tolist()
    if nulls == "1" and j == 3:
        values = [None if i % 7 == 0 else v for i, v in enumerate(values)]
    columns[f"f{j - 1}"] = pa.array([str(v) for v in values]) if (text == "1" and j == 1) else pa.array(values, pa.float64())
pq.write_table(pa.table(columns), out, compression=compression, row_group_size=100)
"#;
    let status = Command::new(root().join(".venv/bin/python"))
        .args(["-c", script])
        .arg(csv)
        .arg(out)
        .args([
            compression,
            if nulls { "1" } else { "0" },
            if text_column { "1" } else { "0" },
        ])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "pyarrow failed to write {}",
        out.display()
    );
}

fn load_channel(path: &Path) -> Dataset {
    tern_trainer::data::Channel::from_path("train", path, None)
        .unwrap()
        .load(None)
        .unwrap()
}

#[test]
fn parquet_input_trains_the_same_model_as_csv() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = [
        ("objective", "binary:logistic"),
        ("num_round", "10"),
        ("max_depth", "3"),
    ];
    let csv = data("breast_cancer", "train");
    let from_csv = train(&pairs, &read_csv(&csv), None).model;
    for compression in ["snappy", "gzip", "zstd", "lz4", "none"] {
        let path = dir.path().join(format!("train-{compression}.parquet"));
        write_parquet(&csv, &path, compression, false, false);
        let dataset = load_channel(&path);
        assert_eq!(dataset.labels, read_csv(&csv).labels, "{compression}");
        let model = train(&pairs, &dataset, None).model;
        assert_eq!(
            model, from_csv,
            "{compression}: Parquet and CSV train different models"
        );
    }

    // Nulls are missing values, as NaN in CSV.
    let with_nulls = dir.path().join("nulls.parquet");
    write_parquet(&csv, &with_nulls, "snappy", true, false);
    let dataset = load_channel(&with_nulls);
    let values = dataset.features.to_dense();
    assert!(values[[0, 2]].is_nan() && values[[7, 2]].is_nan() && !values[[1, 2]].is_nan());

    // A text column is refused naming the row and column.
    let text = dir.path().join("text.parquet");
    write_parquet(&csv, &text, "snappy", false, true);
    let error = tern_trainer::data::Channel::from_path("train", &text, None)
        .unwrap()
        .load(None)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("text.parquet") && error.contains("row 1") && error.contains("\"f0\""),
        "{error}"
    );
    // Not Parquet at all.
    let fake = dir.path().join("fake.parquet");
    std::fs::write(&fake, "1,2,3\n").unwrap();
    let error = tern_trainer::data::Channel::from_path("train", &fake, None)
        .unwrap()
        .load(None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("not a readable Parquet file"), "{error}");
}
