//! Linear Learner: quality against scikit-learn 1.7.2 on real data (computed live by `oracles/sklearn_linear.py`),
//! and the behaviours SageMaker documents (losses, optimizers, hyperparameter rules, early stopping, model selection,
//! L1, class weights, sparse input, reproducibility, artifact round trip, bad data). Run with `--release`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tern_trainer::algorithms::linear_learner::loss::Loss;
use tern_trainer::algorithms::linear_learner::optimizer::{
    Optimizer, OptimizerKind, OptimizerSettings,
};
use tern_trainer::algorithms::linear_learner::LinearLearner;
use tern_trainer::data::{Channel, CsrMatrix, Dataset, FeatureMatrix, TrainingInput};
use tern_trainer::{
    metrics, Algorithm, Artifact, HyperparameterError, Hyperparameters, TrainError, TrainingContext,
};

fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn parse(pairs: &[(&str, &str)]) -> Result<Hyperparameters, HyperparameterError> {
    let algorithm = LinearLearner;
    let hyperparameters =
        Hyperparameters::parse(algorithm.name(), algorithm.hyperparameters(), &raw(pairs))?;
    algorithm.validate(&hyperparameters)?;
    Ok(hyperparameters)
}

fn train(
    pairs: &[(&str, &str)],
    input: &TrainingInput,
) -> Result<(Artifact, TrainingContext), TrainError> {
    let hyperparameters = parse(pairs)?;
    let mut context = TrainingContext::new(true);
    let artifact = LinearLearner.train(&hyperparameters, input, &mut context)?;
    Ok((artifact, context))
}

fn input(train: Dataset, validation: Option<Dataset>, test: Option<Dataset>) -> TrainingInput {
    TrainingInput::new(Channel::from_dataset("train", train))
        .with(validation.map(|d| Channel::from_dataset("validation", d)))
        .with(test.map(|d| Channel::from_dataset("test", d)))
}

fn training_info(artifact: &Artifact) -> &Value {
    &artifact.meta.model["training"]
}

// ---------------------------------------------------------------------------------------------------------------
// Quality on real data against scikit-learn.

fn data_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/generated")
        .join(name)
}

/// scikit-learn's scores on the same split, from the oracle script run through the project's virtualenv.
fn oracle(name: &str, task: &str) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh to create the oracle virtualenv",
        python.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracles/sklearn_linear.py");
    let output = std::process::Command::new(&python)
        .arg(&script)
        .arg(data_dir(name))
        .arg(task)
        .output()
        .expect("the oracle runs");
    assert!(
        output.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the oracle prints JSON")
}

fn csv_input(name: &str) -> TrainingInput {
    let dir = data_dir(name);
    assert!(
        dir.join("train.csv").exists(),
        "{} is missing: run tests/python/export_datasets.py (scripts/setup-python.sh first)",
        dir.display()
    );
    let channel =
        |split: &str| Channel::from_path(split, &dir.join(format!("{split}.csv")), None).unwrap();
    TrainingInput::new(channel("train"))
        .with(channel("validation"))
        .with(channel("test"))
}

/// The test split's labels and the predictions of the artifact after a trip through its bytes.
fn predict_test(name: &str, artifact: &Artifact) -> (Vec<f32>, tern_trainer::Predictions) {
    let test = Channel::from_path("test", &data_dir(name).join("test.csv"), None)
        .unwrap()
        .load(None)
        .unwrap();
    let reread = Artifact::from_bytes(&artifact.to_bytes().unwrap(), "model.tar.gz").unwrap();
    let predictions = LinearLearner
        .load(&reread)
        .unwrap()
        .predict(&test.features)
        .unwrap();
    (test.labels.unwrap(), predictions)
}

#[test]
fn binary_classifier_matches_sklearn_logistic_regression_on_breast_cancer() {
    let reference = oracle("breast_cancer", "binary");
    let (artifact, _) = train(
        &[
            ("predictor_type", "binary_classifier"),
            ("mini_batch_size", "32"),
            ("epochs", "40"),
        ],
        &csv_input("breast_cancer"),
    )
    .unwrap();
    let (labels, predictions) = predict_test("breast_cancer", &artifact);
    let accuracy = metrics::accuracy(&labels, predictions.predicted_label.as_ref().unwrap(), None);
    let auc = metrics::roc_auc(&labels, &predictions.score_column(), None);
    eprintln!(
        "breast_cancer: accuracy {accuracy}, roc auc {auc}; sklearn {reference}; {}",
        training_info(&artifact)
    );
    let (sk_accuracy, sk_auc) = (
        reference["accuracy"].as_f64().unwrap(),
        reference["roc_auc"].as_f64().unwrap(),
    );
    assert!(
        accuracy >= sk_accuracy - 0.01,
        "accuracy {accuracy} vs sklearn {sk_accuracy}"
    );
    assert!(auc >= sk_auc - 0.01, "roc auc {auc} vs sklearn {sk_auc}");
    let metrics = &artifact.meta.training_metrics;
    assert_eq!(metrics["test:binary_classification_accuracy"], accuracy);
    for name in [
        "test:objective_loss",
        "test:binary_f_beta",
        "test:precision",
        "test:recall",
        "test:roc_auc_score",
        "validation:objective_loss",
        "validation:binary_classification_accuracy",
    ] {
        assert!(
            metrics.contains_key(name),
            "{name} missing from {metrics:?}"
        );
    }
}

#[test]
fn multiclass_classifier_matches_sklearn_logistic_regression_on_digits() {
    let reference = oracle("digits", "multiclass");
    let (artifact, _) = train(
        &[
            ("predictor_type", "multiclass_classifier"),
            ("num_classes", "10"),
            ("mini_batch_size", "32"),
            ("epochs", "50"),
        ],
        &csv_input("digits"),
    )
    .unwrap();
    let (labels, predictions) = predict_test("digits", &artifact);
    let accuracy = metrics::accuracy(&labels, predictions.predicted_label.as_ref().unwrap(), None);
    eprintln!(
        "digits: accuracy {accuracy}; sklearn {reference}; {}",
        training_info(&artifact)
    );
    let sk_accuracy = reference["accuracy"].as_f64().unwrap();
    assert!(
        accuracy >= sk_accuracy - 0.01,
        "accuracy {accuracy} vs sklearn {sk_accuracy}; {}",
        training_info(&artifact)
    );
    let metrics = &artifact.meta.training_metrics;
    assert_eq!(metrics["test:multiclass_accuracy"], accuracy);
    for name in [
        "test:objective_loss",
        "test:multiclass_top_k_accuracy",
        "test:macro_precision",
        "test:macro_recall",
        "test:macro_f_beta",
        "test:dcg",
    ] {
        assert!(
            metrics.contains_key(name),
            "{name} missing from {metrics:?}"
        );
    }
    assert!(metrics["test:multiclass_top_k_accuracy"] >= accuracy);
}

#[test]
fn regressor_matches_sklearn_linear_regression_on_diabetes() {
    let reference = oracle("diabetes", "regression");
    let (artifact, _) = train(
        &[
            ("predictor_type", "regressor"),
            ("mini_batch_size", "16"),
            ("epochs", "60"),
        ],
        &csv_input("diabetes"),
    )
    .unwrap();
    let (labels, predictions) = predict_test("diabetes", &artifact);
    let rmse = metrics::rmse(&labels, &predictions.score_column(), None);
    eprintln!("diabetes: rmse {rmse}; sklearn {reference}");
    let sk_rmse = reference["rmse"].as_f64().unwrap();
    assert!(rmse <= sk_rmse * 1.02, "rmse {rmse} vs sklearn {sk_rmse}");
    let metrics = &artifact.meta.training_metrics;
    assert!((metrics["test:rmse"] - rmse).abs() < 1e-3 * rmse);
    for name in [
        "test:objective_loss",
        "test:mse",
        "test:absolute_loss",
        "test:r2",
        "validation:rmse",
    ] {
        assert!(
            metrics.contains_key(name),
            "{name} missing from {metrics:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Losses and optimizers.

#[test]
fn every_loss_gradient_matches_finite_differences() {
    let losses = [
        Loss::Logistic,
        Loss::Hinge { margin: 1.0 },
        Loss::Squared,
        Loss::Absolute,
        Loss::EpsilonInsensitiveSquared { epsilon: 0.3 },
        Loss::EpsilonInsensitiveAbsolute { epsilon: 0.3 },
        Loss::Quantile { quantile: 0.3 },
        Loss::Huber { delta: 0.8 },
    ];
    let h = 1e-6;
    for loss in losses {
        let labels: &[f64] = if loss.is_regression() {
            &[-1.3, 0.0, 2.5]
        } else {
            &[0.0, 1.0]
        };
        for &label in labels {
            for z in [-3.1, -0.45, 0.2, 0.77, 1.9, 4.2] {
                let mut gradient = [0.0];
                let value = loss.value_and_gradient(&[z], label, &mut gradient);
                assert_eq!(value, loss.value(&[z], label));
                let numeric =
                    (loss.value(&[z + h], label) - loss.value(&[z - h], label)) / (2.0 * h);
                assert!(
                    (numeric - gradient[0]).abs() < 1e-5,
                    "{} at z={z}, y={label}: gradient {} vs finite difference {numeric}",
                    loss.name(),
                    gradient[0]
                );
            }
        }
    }
    let scores = [0.3, -1.2, 2.0, 0.1];
    for label in 0..4 {
        let mut gradient = [0.0; 4];
        let value = Loss::Softmax.value_and_gradient(&scores, label as f64, &mut gradient);
        assert!((value - Loss::Softmax.value(&scores, label as f64)).abs() < 1e-15);
        for c in 0..4 {
            let (mut up, mut down) = (scores, scores);
            up[c] += h;
            down[c] -= h;
            let numeric = (Loss::Softmax.value(&up, label as f64)
                - Loss::Softmax.value(&down, label as f64))
                / (2.0 * h);
            assert!(
                (numeric - gradient[c]).abs() < 1e-6,
                "softmax class {c}: {} vs {numeric}",
                gradient[c]
            );
        }
    }
}

#[test]
fn losses_have_their_documented_values() {
    let value = |loss: Loss, z: f64, y: f64| loss.value(&[z], y);
    assert!((value(Loss::Logistic, 0.0, 1.0) - std::f64::consts::LN_2).abs() < 1e-15);
    assert!(
        (value(Loss::Logistic, 800.0, 0.0) - 800.0).abs() < 1e-9,
        "no overflow"
    );
    assert_eq!(value(Loss::Hinge { margin: 1.0 }, 0.25, 1.0), 0.75);
    assert_eq!(value(Loss::Hinge { margin: 1.0 }, 2.0, 1.0), 0.0);
    assert_eq!(value(Loss::Squared, 3.0, 1.0), 2.0);
    assert_eq!(value(Loss::Absolute, -1.0, 1.5), 2.5);
    assert_eq!(
        value(Loss::EpsilonInsensitiveAbsolute { epsilon: 0.5 }, 2.0, 1.0),
        0.5
    );
    assert_eq!(
        value(Loss::EpsilonInsensitiveSquared { epsilon: 0.5 }, 1.4, 1.0),
        0.0
    );
    assert!((value(Loss::Quantile { quantile: 0.9 }, 0.0, 2.0) - 1.8).abs() < 1e-12);
    assert!((value(Loss::Quantile { quantile: 0.9 }, 2.0, 0.0) - 0.2).abs() < 1e-12);
    assert_eq!(value(Loss::Huber { delta: 1.0 }, 3.0, 0.0), 2.5);
    assert!((Loss::Softmax.value(&[0.0, 0.0, 0.0], 2.0) - 3f64.ln()).abs() < 1e-15);
}

#[test]
fn every_optimizer_reduces_a_convex_loss() {
    let curvature = [1.0f32, 4.0, 0.5, 2.0];
    let target = [1.0f32, -2.0, 0.5, 3.0];
    let loss = |p: &[f32]| -> f32 {
        p.iter()
            .zip(&curvature)
            .zip(&target)
            .map(|((p, a), c)| a * (p - c).powi(2))
            .sum()
    };
    for (kind, rate) in [
        (OptimizerKind::Sgd, 0.02),
        (OptimizerKind::Adam, 0.05),
        (OptimizerKind::Adagrad, 0.5),
        (OptimizerKind::RmsProp, 0.02),
    ] {
        let settings = OptimizerSettings {
            kind,
            momentum: 0.9,
            beta_1: 0.9,
            beta_2: 0.999,
        };
        let mut optimizer = Optimizer::new(settings, 4);
        let mut parameters = vec![0.0f32; 4];
        let start = loss(&parameters);
        for _ in 0..500 {
            let gradient: Vec<f32> = parameters
                .iter()
                .zip(&curvature)
                .zip(&target)
                .map(|((p, a), c)| 2.0 * a * (p - c))
                .collect();
            optimizer.step(&mut parameters, &gradient, rate);
        }
        let end = loss(&parameters);
        assert!(end < start * 1e-3, "{}: loss {start} -> {end}", kind.name());
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Hyperparameters.

#[test]
fn the_table_holds_every_sagemaker_hyperparameter_with_its_default() {
    let specs = LinearLearner.hyperparameters();
    let names = [
        "predictor_type",
        "num_classes",
        "feature_dim",
        "accuracy_top_k",
        "balance_multiclass_weights",
        "beta_1",
        "beta_2",
        "bias_lr_mult",
        "bias_wd_mult",
        "binary_classifier_model_selection_criteria",
        "early_stopping_patience",
        "early_stopping_tolerance",
        "epochs",
        "f_beta",
        "huber_delta",
        "init_bias",
        "init_method",
        "init_scale",
        "init_sigma",
        "l1",
        "learning_rate",
        "loss",
        "loss_insensitivity",
        "lr_scheduler_factor",
        "lr_scheduler_minimum_lr",
        "lr_scheduler_step",
        "margin",
        "mini_batch_size",
        "momentum",
        "normalize_data",
        "normalize_label",
        "num_calibration_samples",
        "num_models",
        "num_point_for_scaler",
        "optimizer",
        "positive_example_weight_mult",
        "quantile",
        "target_precision",
        "target_recall",
        "unbias_data",
        "unbias_label",
        "use_bias",
        "use_lr_scheduler",
        "wd",
        "seed",
    ];
    for name in names {
        assert!(specs.iter().any(|s| s.name == name), "{name} missing");
    }
    assert_eq!(specs.len(), names.len());
    let hp = parse(&[("predictor_type", "regressor")]).unwrap();
    for (name, default) in [
        ("epochs", "15"),
        ("mini_batch_size", "1000"),
        ("early_stopping_patience", "3"),
        ("early_stopping_tolerance", "0.001"),
        ("init_scale", "0.07"),
        ("num_point_for_scaler", "10000"),
        ("learning_rate", "auto"),
        ("normalize_data", "true"),
        ("positive_example_weight_mult", "1.0"),
        ("seed", "0"),
    ] {
        assert_eq!(hp.text(name), Some(default), "{name}");
    }
}

#[test]
fn bad_hyperparameters_are_rejected_with_what_is_allowed() {
    let error = |pairs: &[(&str, &str)]| parse(pairs).unwrap_err().to_string();
    let message = error(&[("predictor_type", "classifier")]);
    assert!(
        message.contains("binary_classifier, multiclass_classifier, regressor"),
        "{message}"
    );
    let message = error(&[("predictor_type", "regressor"), ("optimizer", "lbfgs")]);
    assert!(
        message.contains("auto, sgd, adam, adagrad, rmsprop"),
        "{message}"
    );
    let message = error(&[("predictor_type", "multiclass_classifier")]);
    assert!(
        message.contains("num_classes") && message.contains("required"),
        "{message}"
    );
    let message = error(&[
        ("predictor_type", "multiclass_classifier"),
        ("num_classes", "2"),
    ]);
    assert!(message.contains("[3, 1000000]"), "{message}");
    let message = error(&[("predictor_type", "regressor"), ("loss", "hinge_loss")]);
    assert!(
        message.contains("squared_loss") && message.contains("huber_loss"),
        "{message}"
    );
    let message = error(&[
        ("predictor_type", "binary_classifier"),
        ("loss", "softmax_loss"),
    ]);
    assert!(message.contains("logistic, hinge_loss"), "{message}");
    let message = error(&[
        ("predictor_type", "binary_classifier"),
        ("target_precision", "0.9"),
    ]);
    assert!(message.contains("recall_at_target_precision"), "{message}");
    let message = error(&[
        ("predictor_type", "binary_classifier"),
        ("positive_example_weight_mult", "-2"),
    ]);
    assert!(message.contains("balanced"), "{message}");
    let message = error(&[
        ("predictor_type", "regressor"),
        ("positive_example_weight_mult", "balanced"),
    ]);
    assert!(message.contains("binary_classifier"), "{message}");
    let message = error(&[("predictor_type", "regressor"), ("quantile", "0.3")]);
    assert!(message.contains("quantile_loss"), "{message}");
    let message = error(&[
        ("predictor_type", "regressor"),
        ("quantile", "1.5"),
        ("loss", "quantile_loss"),
    ]);
    assert!(message.contains("(0, 1)"), "{message}");
    let message = error(&[("predictor_type", "regressor"), ("momentum", "0.5")]);
    assert!(message.contains("optimizer=sgd"), "{message}");
    let message = error(&[("predictor_type", "regressor"), ("epochs", "0")]);
    assert!(message.contains("an integer >= 1"), "{message}");
    let message = error(&[("predictor_type", "regressor"), ("learning_rate", "fast")]);
    assert!(message.contains("or auto"), "{message}");
    let message = error(&[
        ("predictor_type", "binary_classifier"),
        ("balance_multiclass_weights", "true"),
    ]);
    assert!(message.contains("multiclass_classifier"), "{message}");
    assert!(parse(&[
        ("predictor_type", "binary_classifier"),
        ("positive_example_weight_mult", "balanced"),
        (
            "binary_classifier_model_selection_criteria",
            "recall_at_target_precision"
        ),
        ("target_precision", "0.9"),
    ])
    .is_ok());
}

// ---------------------------------------------------------------------------------------------------------------
// Behaviour on synthetic data.

/// `n` rows of `d` features, about 70% zeros, with a binary label from a fixed linear rule plus noise.
fn synthetic_binary(n: usize, d: usize, seed: u64, positive_rate: f64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let truth: Vec<f32> = (0..d)
        .map(|j| if j < 3 { [2.0, -1.5, 1.0][j] } else { 0.0 })
        .collect();
    let mut features = Array2::zeros((n, d));
    let mut labels = Vec::with_capacity(n);
    let offset = (positive_rate / (1.0 - positive_rate)).ln() as f32;
    for i in 0..n {
        let mut z = offset;
        for j in 0..d {
            if rng.gen::<f32>() < 0.3 || j < 3 {
                let x = rng.gen_range(-2.0f32..2.0) + 1.0;
                features[[i, j]] = x;
                z += truth[j] * (x - 1.0);
            }
        }
        let noisy = z + rng.gen_range(-1.5f32..1.5);
        labels.push(if noisy > 0.0 { 1.0 } else { 0.0 });
    }
    Dataset {
        features: FeatureMatrix::Dense(features),
        labels: Some(labels),
        weights: None,
    }
}

fn to_sparse(dataset: &Dataset) -> Dataset {
    let dense = dataset.features.to_dense();
    let mut csr = CsrMatrix::new(dense.ncols());
    for row in dense.rows() {
        let (indices, values): (Vec<u32>, Vec<f32>) = row
            .iter()
            .enumerate()
            .filter(|(_, &v)| v != 0.0)
            .map(|(j, &v)| (j as u32, v))
            .unzip();
        csr.push_row(&indices, &values);
    }
    Dataset {
        features: FeatureMatrix::Sparse(csr),
        ..dataset.clone()
    }
}

const SMALL_RUN: &[(&str, &str)] = &[
    ("predictor_type", "binary_classifier"),
    ("mini_batch_size", "50"),
    ("epochs", "5"),
    ("num_models", "4"),
];

fn with<'a>(base: &[(&'a str, &'a str)], extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs: Vec<_> = base
        .iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .copied()
        .collect();
    pairs.extend_from_slice(extra);
    pairs
}

#[test]
fn the_same_seed_gives_identical_artifact_bytes_whatever_the_thread_count() {
    let data = synthetic_binary(400, 12, 1, 0.5);
    let validation = synthetic_binary(100, 12, 2, 0.5);
    let run = |seed: &'static str, threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (artifact, _) = train(
                &with(SMALL_RUN, &[("seed", seed)]),
                &input(data.clone(), Some(validation.clone()), None),
            )
            .unwrap();
            artifact.to_bytes().unwrap()
        })
    };
    let first = run("7", 1);
    assert_eq!(first, run("7", 1));
    assert_eq!(first, run("7", 3));
    assert_ne!(first, run("8", 1));
}

#[test]
fn sparse_and_dense_input_give_the_same_model() {
    let data = synthetic_binary(300, 10, 3, 0.5);
    let validation = synthetic_binary(80, 10, 4, 0.5);
    for unbias in ["false", "true"] {
        let pairs = with(SMALL_RUN, &[("unbias_data", unbias)]);
        let (dense, _) =
            train(&pairs, &input(data.clone(), Some(validation.clone()), None)).unwrap();
        let (sparse, _) = train(
            &pairs,
            &input(to_sparse(&data), Some(to_sparse(&validation)), None),
        )
        .unwrap();
        for name in ["weight", "bias"] {
            assert_eq!(
                dense.tensors[name].data, sparse.tensors[name].data,
                "{name} with unbias_data={unbias}"
            );
        }
        assert_eq!(dense.tensors.contains_key("feature_mean"), unbias == "true");
        assert_eq!(
            dense.meta.model["threshold"],
            sparse.meta.model["threshold"]
        );
        let model = LinearLearner.load(&sparse).unwrap();
        let from_dense = model.predict(&validation.features).unwrap();
        let from_sparse = model.predict(&to_sparse(&validation).features).unwrap();
        assert_eq!(from_dense, from_sparse);
    }
    // By default sparse data are scaled but not centred, as SageMaker does.
    let (sparse, _) = train(SMALL_RUN, &input(to_sparse(&data), None, None)).unwrap();
    assert!(
        !sparse.tensors.contains_key("feature_mean")
            && sparse.tensors.contains_key("feature_scale")
    );
}

#[test]
fn early_stopping_stops_and_keeps_the_best_epoch() {
    let data = synthetic_binary(300, 6, 5, 0.5);
    let validation = synthetic_binary(100, 6, 6, 0.5);
    let pairs = with(
        SMALL_RUN,
        &[
            ("epochs", "200"),
            ("early_stopping_patience", "2"),
            ("early_stopping_tolerance", "0.01"),
        ],
    );
    let (artifact, context) =
        train(&pairs, &input(data.clone(), Some(validation.clone()), None)).unwrap();
    let info = training_info(&artifact);
    let trained = info["epochs_trained"].as_u64().unwrap();
    assert!(trained < 200, "trained {trained} epochs");
    assert!(info["best_epoch"].as_u64().unwrap() < trained);
    let per_epoch: Vec<f64> = context
        .metrics()
        .iter()
        .filter(|m| m.name == "validation:objective_loss" && m.epoch.is_some())
        .map(|m| m.value)
        .collect();
    assert_eq!(per_epoch.len() as u64, trained);
    // The last `patience` epochs did not improve on the best by the tolerance.
    let best_before = per_epoch[..per_epoch.len() - 2]
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    assert!(per_epoch[per_epoch.len() - 2..]
        .iter()
        .all(|&l| l >= best_before * 0.99));
    // With patience beyond the epochs, every epoch runs.
    let pairs = with(
        SMALL_RUN,
        &[("epochs", "6"), ("early_stopping_patience", "10")],
    );
    let (artifact, _) = train(&pairs, &input(data, Some(validation), None)).unwrap();
    assert_eq!(training_info(&artifact)["epochs_trained"], 6);
}

#[test]
fn num_models_picks_the_best_candidate_on_validation() {
    let data = synthetic_binary(400, 8, 7, 0.5);
    let validation = synthetic_binary(150, 8, 8, 0.5);
    let pairs = with(SMALL_RUN, &[("num_models", "16"), ("epochs", "3")]);
    let (artifact, _) =
        train(&pairs, &input(data.clone(), Some(validation.clone()), None)).unwrap();
    let info = training_info(&artifact);
    let candidates = info["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 16);
    let rates: Vec<f64> = candidates
        .iter()
        .map(|c| c["learning_rate"].as_f64().unwrap())
        .collect();
    assert!(
        rates.iter().any(|&r| r != rates[0]),
        "candidates differ in learning rate"
    );
    let value = |c: &Value| c["selection_value"].as_f64().unwrap_or(f64::NEG_INFINITY);
    let selected = info["selected_model"].as_u64().unwrap() as usize;
    let best = candidates
        .iter()
        .map(value)
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(value(&candidates[selected]), best);
    // The chosen model's validation accuracy is what selection saw (the sample is the whole validation channel).
    let accuracy = artifact.meta.training_metrics["validation:binary_classification_accuracy"];
    assert!((accuracy - best).abs() < 1e-12, "{accuracy} vs {best}");
    // And at least as good as model 0 alone.
    let (alone, _) = train(
        &with(&pairs, &[("num_models", "1")]),
        &input(data, Some(validation), None),
    )
    .unwrap();
    assert!(accuracy >= alone.meta.training_metrics["validation:binary_classification_accuracy"]);
}

#[test]
fn l1_produces_exact_zeros() {
    let data = synthetic_binary(500, 20, 9, 0.5);
    let pairs = with(
        SMALL_RUN,
        &[
            ("num_models", "1"),
            ("epochs", "10"),
            ("learning_rate", "0.05"),
            ("wd", "0"),
        ],
    );
    let zeros = |artifact: &Artifact| {
        artifact.tensors["weight"]
            .data
            .iter()
            .filter(|&&w| w == 0.0)
            .count()
    };
    let (plain, _) = train(
        &with(&pairs, &[("l1", "0")]),
        &input(data.clone(), None, None),
    )
    .unwrap();
    assert_eq!(zeros(&plain), 0);
    let (sparse, _) = train(&with(&pairs, &[("l1", "0.05")]), &input(data, None, None)).unwrap();
    let weights = &sparse.tensors["weight"].data;
    assert!(zeros(&sparse) >= 10, "{weights:?}");
    assert!(
        weights[..3].iter().all(|&w| w != 0.0),
        "the informative features survive: {weights:?}"
    );
}

#[test]
fn balanced_positive_weight_evens_out_the_classes() {
    let data = synthetic_binary(600, 6, 10, 0.15);
    let validation = synthetic_binary(300, 6, 11, 0.15);
    let labels = data.labels.clone().unwrap();
    let positives = labels.iter().filter(|&&y| y == 1.0).count();
    assert!(positives > 20 && positives < 200, "{positives} positives");
    let pairs = with(
        SMALL_RUN,
        &[
            (
                "binary_classifier_model_selection_criteria",
                "loss_function",
            ),
            ("num_models", "1"),
            ("epochs", "8"),
        ],
    );
    let run = |mult: &'static str| {
        train(
            &with(&pairs, &[("positive_example_weight_mult", mult)]),
            &input(data.clone(), Some(validation.clone()), None),
        )
        .unwrap()
        .0
    };
    let balanced = run("balanced");
    let expected = (labels.len() - positives) as f64 / positives as f64;
    let resolved = training_info(&balanced)["positive_example_weight_mult"]
        .as_f64()
        .unwrap();
    assert!(
        (resolved - expected).abs() < 1e-12,
        "{resolved} vs {expected}"
    );
    let plain = run("1");
    let recall = |a: &Artifact| a.meta.training_metrics["validation:recall"];
    assert!(
        recall(&balanced) > recall(&plain),
        "{} vs {}",
        recall(&balanced),
        recall(&plain)
    );
}

#[test]
fn artifact_round_trip_gives_identical_predictions() {
    let data = synthetic_binary(300, 5, 12, 0.5);
    let features = data.features.clone();
    let labels = data.labels.clone().unwrap();
    let regression = Dataset {
        labels: Some(
            labels
                .iter()
                .enumerate()
                .map(|(i, &y)| 3.0 * y + 0.01 * i as f32 + 100.0)
                .collect(),
        ),
        ..data.clone()
    };
    let multiclass = Dataset {
        labels: Some(
            (0..labels.len())
                .map(|i| {
                    (features.row(i).dot(&[1.0, 1.0, 0.0, 0.0, 0.0]) > 1.0) as u8 as f32 + labels[i]
                })
                .collect(),
        ),
        ..data.clone()
    };
    let cases: Vec<(Vec<(&str, &str)>, Dataset)> = vec![
        (SMALL_RUN.to_vec(), data.clone()),
        (with(SMALL_RUN, &[("loss", "hinge_loss")]), data.clone()),
        (
            with(SMALL_RUN, &[("predictor_type", "regressor")]),
            regression,
        ),
        (
            with(
                SMALL_RUN,
                &[
                    ("predictor_type", "regressor"),
                    ("loss", "huber_loss"),
                    ("huber_delta", "2"),
                ],
            ),
            Dataset {
                labels: Some(labels.iter().map(|y| y * 10.0).collect()),
                ..data.clone()
            },
        ),
        (
            with(
                SMALL_RUN,
                &[
                    ("predictor_type", "multiclass_classifier"),
                    ("num_classes", "3"),
                ],
            ),
            multiclass,
        ),
    ];
    for (pairs, dataset) in cases {
        let (artifact, _) = train(&pairs, &input(dataset, None, None)).unwrap();
        let before = LinearLearner
            .load(&artifact)
            .unwrap()
            .predict(&features)
            .unwrap();
        let reread = Artifact::from_bytes(&artifact.to_bytes().unwrap(), "model.tar.gz").unwrap();
        assert_eq!(reread.tensors, artifact.tensors);
        let after = LinearLearner
            .load(&reread)
            .unwrap()
            .predict(&features)
            .unwrap();
        assert_eq!(before, after, "{pairs:?}");
        assert!(before.scores.iter().all(|s| s.is_finite()));
    }
}

#[test]
fn trains_on_a_training_sample_when_there_is_no_validation_channel() {
    let data = synthetic_binary(400, 6, 13, 0.5);
    let test = synthetic_binary(200, 6, 14, 0.5);
    let (artifact, _) = train(SMALL_RUN, &input(data, None, Some(test))).unwrap();
    assert_eq!(training_info(&artifact)["selection_rows"], 400);
    let metrics = &artifact.meta.training_metrics;
    assert!(
        metrics["test:binary_classification_accuracy"] > 0.75,
        "{metrics:?}"
    );
    assert!(!metrics.keys().any(|k| k.starts_with("validation:")));
}

// ---------------------------------------------------------------------------------------------------------------
// Bad data.

fn csv_channel(dir: &Path, name: &str, text: &str) -> Channel {
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(&path, text).unwrap();
    Channel::from_path(name, &path, None).unwrap()
}

#[test]
fn bad_records_are_reported_with_channel_record_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = "1,0.5,2\n0,1.5,-1\n1,0.1,0.2\n";
    let error = |pairs: &[(&str, &str)], train_text: &str, validation_text: Option<&str>| {
        let input = TrainingInput::new(csv_channel(dir.path(), "train", train_text))
            .with(validation_text.map(|t| csv_channel(dir.path(), "validation", t)));
        match train(pairs, &input) {
            Ok(_) => panic!("training succeeded on bad data"),
            Err(error) => error.to_string(),
        }
    };
    let binary = [("predictor_type", "binary_classifier"), ("num_models", "1")];
    let message = error(&binary, "1,0.5,2\n0,nan,-1\n", None);
    assert!(
        message.contains("train")
            && message.contains("record 2")
            && message.contains("features[0]"),
        "{message}"
    );
    let message = error(&binary, "1,0.5,2\n2,1.5,-1\n", None);
    assert!(
        message.contains("record 2") && message.contains("label") && message.contains("0 or 1"),
        "{message}"
    );
    let message = error(&binary, good, Some("1,0.5,2\n0,1.5,inf\n"));
    assert!(
        message.contains("validation") && message.contains("features[1]"),
        "{message}"
    );
    let message = error(
        &[
            ("predictor_type", "binary_classifier"),
            ("feature_dim", "3"),
        ],
        good,
        None,
    );
    assert!(
        message.contains("record 1") && message.contains("expected 3 (feature_dim)"),
        "{message}"
    );
    let multiclass = [
        ("predictor_type", "multiclass_classifier"),
        ("num_classes", "3"),
        ("num_models", "1"),
    ];
    let message = error(&multiclass, "0,1,1\n1,2,2\n3,1,1\n", None);
    assert!(
        message.contains("record 3") && message.contains("[0, 3)"),
        "{message}"
    );
    let message = error(&multiclass, "0,1,1\n1.5,2,2\n", None);
    assert!(
        message.contains("record 2") && message.contains("label"),
        "{message}"
    );
    // Beyond the scaler sample, bad records are still caught as they stream by.
    let mut late = good.repeat(5);
    late.push_str("1,0.5\n");
    let message = error(
        &[
            ("predictor_type", "binary_classifier"),
            ("num_point_for_scaler", "4"),
        ],
        &late,
        None,
    );
    assert!(
        message.contains("train") && message.contains("line 16"),
        "{message}"
    );
}
