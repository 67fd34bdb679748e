//! PCA: explained variance, its ratio and the reconstruction error against scikit-learn 1.7.2's PCA on real data
//! (computed live by `oracles/sklearn_kmeans_pca.py`), randomized mode, sparse input, SageMaker's response shape,
//! and bad input. Run with `--release`.

use std::path::PathBuf;

use ndarray::Array2;
use serde_json::{json, Value};
use tern_formats::ContentType;
use tern_trainer::algorithms::pca::{Pca, PcaModel};
use tern_trainer::data::{Channel, CsrMatrix, Dataset, FeatureMatrix, TrainingInput};
use tern_trainer::{Algorithm, Artifact, Hyperparameters, Task, TrainError, TrainingContext};

mod common;
use common::{floats, only_train};

fn parse(pairs: &[(&str, &str)]) -> Result<Hyperparameters, TrainError> {
    common::parse(&Pca, pairs)
}

fn train(
    pairs: &[(&str, &str)],
    input: &TrainingInput,
) -> Result<(Artifact, TrainingContext), TrainError> {
    common::train(&Pca, pairs, input)
}

/// A data set's training split.
fn csv(name: &str) -> PathBuf {
    common::csv(name, "train")
}

/// scikit-learn's answer from the oracle script.
fn oracle(args: &[&str]) -> Value {
    common::oracle("sklearn_kmeans_pca.py", args)
}

fn close(ours: f64, reference: f64, what: &str) {
    let tolerance = 1e-4 * reference.abs().max(1e-12);
    assert!(
        (ours - reference).abs() <= tolerance,
        "{what}: tern {ours} vs scikit-learn {reference} (relative tolerance 1e-4)"
    );
}

fn matches_scikit_learn(name: &str, feature_dim: usize, components: usize) {
    let path = csv(name);
    let reference = oracle(&["pca", path.to_str().unwrap(), &components.to_string()]);
    let channel =
        Channel::from_path("train", &path, Some(ContentType::Csv { label_size: 1 })).unwrap();
    let input = TrainingInput::new(channel.clone()).with(Channel {
        name: "test".into(),
        ..channel
    });
    let (d, c) = (feature_dim.to_string(), components.to_string());
    let (artifact, context) = train(
        &[
            ("feature_dim", &d),
            ("num_components", &c),
            ("mini_batch_size", "100"),
        ],
        &input,
    )
    .unwrap();
    let variance = floats(&artifact.meta.model["explained_variance"]);
    let ratio = floats(&artifact.meta.model["explained_variance_ratio"]);
    for (p, (ours, theirs)) in variance
        .iter()
        .zip(floats(&reference["explained_variance"]))
        .enumerate()
    {
        close(*ours, theirs, &format!("{name} explained_variance[{p}]"));
    }
    for (p, (ours, theirs)) in ratio
        .iter()
        .zip(floats(&reference["explained_variance_ratio"]))
        .enumerate()
    {
        close(
            *ours,
            theirs,
            &format!("{name} explained_variance_ratio[{p}]"),
        );
    }
    let error = context.final_metrics()["test:reconstruction_error"];
    close(
        error,
        reference["reconstruction_error"].as_f64().unwrap(),
        &format!("{name} reconstruction error"),
    );
    // Same sign convention as scikit-learn's svd_flip: the components themselves agree.
    let ours = artifact.tensor("components").unwrap();
    for (p, row) in reference["components"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for (j, theirs) in floats(row).iter().enumerate() {
            let value = f64::from(ours.data[p * feature_dim + j]);
            assert!(
                (value - theirs).abs() < 1e-3,
                "{name} component {p}[{j}]: {value} vs {theirs}"
            );
        }
    }
    eprintln!("{name}: explained variance {variance:?}, reconstruction error {error}");
}

#[test]
fn explained_variance_and_reconstruction_error_equal_scikit_learn_on_digits() {
    matches_scikit_learn("digits", 64, 10);
}

#[test]
fn explained_variance_and_reconstruction_error_equal_scikit_learn_on_breast_cancer() {
    matches_scikit_learn("breast_cancer", 30, 5);
}

fn digits() -> Dataset {
    Channel::from_path(
        "train",
        &csv("digits"),
        Some(ContentType::Csv { label_size: 1 }),
    )
    .unwrap()
    .load(Some(64))
    .unwrap()
}

fn reconstruction_error(artifact: &Artifact, dataset: &Dataset) -> f64 {
    let model = PcaModel::from_artifact(artifact).unwrap();
    let (rows, total) = model.reconstruction_squared_error(&dataset.features);
    total / (rows * 64) as f64
}

/// Randomized mode is SageMaker's one-pass random-sign sketch (no power iterations): an approximation that
/// improves as `extra_components` grows and never beats the exact subspace.
#[test]
fn randomized_mode_approaches_regular_mode() {
    let data = digits();
    let input = only_train(Channel::from_dataset("train", data.clone()));
    let base = [
        ("feature_dim", "64"),
        ("num_components", "10"),
        ("mini_batch_size", "200"),
    ];
    let (regular, _) = train(&base, &input).unwrap();
    let randomized_with = |extra: &str| {
        let mut pairs = base.to_vec();
        pairs.push(("algorithm_mode", "randomized"));
        pairs.push(("extra_components", extra));
        train(&pairs, &input).unwrap().0
    };
    let randomized = randomized_with("40");
    let exact = reconstruction_error(&regular, &data);
    let approximate = reconstruction_error(&randomized, &data);
    let coarse = reconstruction_error(&randomized_with("5"), &data);
    eprintln!("reconstruction error: regular {exact}, randomized (extra 40) {approximate}, (extra 5) {coarse}");
    assert!(
        approximate >= exact * (1.0 - 1e-9),
        "regular mode is optimal: {approximate} < {exact}"
    );
    assert!(
        coarse > approximate,
        "more extra components must help: {coarse} vs {approximate}"
    );
    assert!(
        approximate <= exact * 1.3,
        "randomized {approximate} vs regular {exact}"
    );
    // Orthonormal components.
    let model = PcaModel::from_artifact(&randomized).unwrap();
    let gram = model.components.dot(&model.components.t());
    for ((i, j), &v) in gram.indexed_iter() {
        assert!(
            (v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-4,
            "gram[{i},{j}] = {v}"
        );
    }
}

#[test]
fn sparse_input_matches_dense_and_answers_in_sagemaker_shape() {
    let data = digits();
    let dense = data.features.to_dense();
    let mut csr = CsrMatrix::new(64);
    for row in dense.rows() {
        let (indices, values): (Vec<u32>, Vec<f32>) = row
            .iter()
            .enumerate()
            .filter(|(_, &v)| v != 0.0)
            .map(|(j, &v)| (j as u32, v))
            .unzip();
        csr.push_row(&indices, &values);
    }
    let sparse = Dataset {
        features: FeatureMatrix::Sparse(csr),
        labels: None,
        weights: None,
    };
    let pairs = [
        ("feature_dim", "64"),
        ("num_components", "3"),
        ("mini_batch_size", "128"),
    ];
    let (from_dense, _) = train(
        &pairs,
        &only_train(Channel::from_dataset("train", data.clone())),
    )
    .unwrap();
    let (from_sparse, _) = train(
        &pairs,
        &only_train(Channel::from_dataset("train", sparse.clone())),
    )
    .unwrap();
    let predictor = Pca
        .load(&Artifact::from_bytes(&from_dense.to_bytes().unwrap(), "m").unwrap())
        .unwrap();
    let sparse_predictor = Pca.load(&from_sparse).unwrap();
    assert_eq!(predictor.task(), Task::Projection { components: 3 });
    let a = predictor.predict(&data.features).unwrap();
    let b = sparse_predictor.predict(&sparse.features).unwrap();
    for (x, y) in a.scores.iter().zip(b.scores.iter()) {
        assert!(
            (x - y).abs() < 1e-2 * x.abs().max(1.0),
            "dense {x} vs sparse {y}"
        );
    }
    assert_eq!(predictor.response_key(), "projections");
    let records = predictor.response_records(&a);
    assert_eq!(records.len(), data.n_rows());
    assert_eq!(records[0], json!({"projection": a.scores.row(0).to_vec()}));
    // subtract_mean=false projects the raw rows.
    let mut raw_pairs = pairs.to_vec();
    raw_pairs.push(("subtract_mean", "false"));
    let (uncentred, _) = train(
        &raw_pairs,
        &only_train(Channel::from_dataset("train", data.clone())),
    )
    .unwrap();
    assert!(uncentred
        .tensor("mean")
        .unwrap()
        .data
        .iter()
        .all(|&m| m == 0.0));
    let single = FeatureMatrix::Dense(Array2::from_shape_vec((1, 64), vec![1.0; 64]).unwrap());
    let projection = Pca.load(&uncentred).unwrap().predict(&single).unwrap();
    let components = uncentred.tensor("components").unwrap();
    let expected: f32 = components.data[..64].iter().sum();
    assert!((projection.scores[[0, 0]] - expected).abs() < 1e-4);
}

#[test]
fn bad_input_is_refused_before_training() {
    let data = digits();
    let too_many = parse(&[
        ("feature_dim", "64"),
        ("num_components", "65"),
        ("mini_batch_size", "10"),
    ])
    .err()
    .expect("this input must be refused")
    .to_string();
    assert!(
        too_many.contains("num_components=65") && too_many.contains("feature_dim=64"),
        "{too_many}"
    );
    let missing = parse(&[("feature_dim", "64"), ("num_components", "3")])
        .err()
        .expect("this input must be refused")
        .to_string();
    assert!(missing.contains("mini_batch_size"), "{missing}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.csv");
    std::fs::write(&path, "0,1,2,3\n0,4,5,6\n0,7,inf,9\n").unwrap();
    let channel =
        Channel::from_path("train", &path, Some(ContentType::Csv { label_size: 1 })).unwrap();
    let error = train(
        &[
            ("feature_dim", "3"),
            ("num_components", "2"),
            ("mini_batch_size", "10"),
        ],
        &only_train(channel),
    )
    .err()
    .expect("this input must be refused")
    .to_string();
    assert!(
        error.contains("train") && error.contains("record 3") && error.contains("features[1]"),
        "{error}"
    );
    let wrong = train(
        &[
            ("feature_dim", "60"),
            ("num_components", "2"),
            ("mini_batch_size", "10"),
        ],
        &only_train(Channel::from_dataset("train", data)),
    )
    .err()
    .expect("this input must be refused")
    .to_string();
    assert!(
        wrong.contains("record 1") && wrong.contains("64 features"),
        "{wrong}"
    );
}
