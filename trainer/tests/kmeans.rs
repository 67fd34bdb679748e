//! K-Means: quality against scikit-learn 1.7.2's KMeans on real data (computed live by
//! `oracles/sklearn_kmeans_pca.py`), SageMaker's behaviours (mini-batch pass and local Lloyd reduction, test-channel
//! metrics, Pipe mode, sparse input, response shapes), reproducibility, the elbow curve, and bad input. Run with
//! `--release`.

use ndarray::Array2;
use serde_json::{json, Value};
use tern_formats::ContentType;
use tern_trainer::algorithms::kmeans::{self, KMeans};
use tern_trainer::data::{
    Channel, ChannelSource, CsrMatrix, Dataset, FeatureMatrix, TrainingInput,
};
use tern_trainer::{Algorithm, Artifact, Hyperparameters, Task, TrainError, TrainingContext};

mod common;
use common::{csv, csv_channel, only_train};

fn parse(pairs: &[(&str, &str)]) -> Result<Hyperparameters, TrainError> {
    common::parse(&KMeans, pairs)
}

fn train(
    pairs: &[(&str, &str)],
    input: &TrainingInput,
) -> Result<(Artifact, TrainingContext), TrainError> {
    common::train(&KMeans, pairs, input)
}

/// scikit-learn's answer from the oracle script.
fn oracle(args: &[&str]) -> Value {
    common::oracle("sklearn_kmeans_pca.py", args)
}

/// Within-cluster SSE of a trained model over the rows of `dataset`.
fn inertia(artifact: &Artifact, dataset: &Dataset) -> f64 {
    let predictor = KMeans.load(artifact).unwrap();
    let predictions = predictor.predict(&dataset.features).unwrap();
    predictions
        .score_column()
        .iter()
        .map(|&d| f64::from(d) * f64::from(d))
        .sum()
}

/// SageMaker's pipeline (mini-batches of 500 over 10 epochs into 10·k centres, then the local Lloyd reduction from
/// 50 k-means++ trials) against scikit-learn's Lloyd from 10 k-means++ inits, for three seeds.
fn quality(name: &str, k: usize, feature_dim: usize) {
    let channel = csv_channel("train", name, "train");
    let dataset = channel.load(Some(feature_dim)).unwrap();
    let reference = oracle(&[
        "kmeans",
        csv(name, "train").to_str().unwrap(),
        &k.to_string(),
    ])["inertia"]
        .as_f64()
        .unwrap();
    let k_text = k.to_string();
    let d_text = feature_dim.to_string();
    for seed in ["0", "1", "2"] {
        let (artifact, _) = train(
            &[
                ("k", &k_text),
                ("feature_dim", &d_text),
                ("init_method", "kmeans++"),
                ("epochs", "10"),
                ("mini_batch_size", "500"),
                ("extra_center_factor", "10"),
                ("local_lloyd_num_trials", "50"),
                ("seed", seed),
            ],
            &only_train(channel.clone()),
        )
        .unwrap();
        let ours = inertia(&artifact, &dataset);
        eprintln!(
            "{name} k={k} seed={seed}: tern {ours:.1}, scikit-learn {reference:.1}, ratio {:.4}",
            ours / reference
        );
        assert!(
            ours <= reference * 1.01,
            "{name} k={k} seed={seed}: tern's inertia {ours} is more than 1% above scikit-learn's {reference}"
        );
    }
}

#[test]
fn inertia_within_one_percent_of_scikit_learn_on_digits() {
    quality("digits", 10, 64);
}

#[test]
fn inertia_within_one_percent_of_scikit_learn_on_breast_cancer() {
    quality("breast_cancer", 4, 30);
}

// ---------------------------------------------------------------------------------------------------------------
// Behaviours.

/// Three well separated blobs of `per_blob` points in 4 dimensions, centres at 0, 10 and 20 on every axis, rows
/// interleaved (row `i` is in blob `i % 3`): the mini-batch pass assumes shuffled data, as SageMaker's does.
fn blobs(per_blob: usize) -> Dataset {
    let mut values = Vec::new();
    for i in 0..3 * per_blob {
        let blob = i % 3;
        for j in 0..4 {
            let jitter = (((i * 7 + j * 13) % 11) as f32 - 5.0) / 10.0;
            values.push(blob as f32 * 10.0 + jitter);
        }
    }
    Dataset {
        features: FeatureMatrix::Dense(Array2::from_shape_vec((3 * per_blob, 4), values).unwrap()),
        labels: None,
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
        labels: None,
        weights: None,
    }
}

const BLOB_HP: &[(&str, &str)] = &[
    ("k", "3"),
    ("feature_dim", "4"),
    ("mini_batch_size", "20"),
    ("epochs", "3"),
];

#[test]
fn finds_separated_blobs_reports_test_metrics_and_answers_in_sagemaker_shape() {
    let data = blobs(50);
    let input = TrainingInput::new(Channel::from_dataset("train", data.clone()))
        .with(Channel::from_dataset("test", data.clone()));
    let mut pairs = BLOB_HP.to_vec();
    pairs.push(("eval_metrics", "[\"msd\",\"ssd\"]"));
    let (artifact, context) = train(&pairs, &input).unwrap();
    let predictor = KMeans
        .load(&Artifact::from_bytes(&artifact.to_bytes().unwrap(), "m").unwrap())
        .unwrap();
    assert_eq!(predictor.task(), Task::Clustering { k: 3 });
    let predictions = predictor.predict(&data.features).unwrap();
    let clusters = predictions.predicted_label.clone().unwrap();
    // Each blob is one cluster, the three distinct.
    for (i, &cluster) in clusters.iter().enumerate() {
        assert_eq!(cluster, clusters[i % 3], "row {i} left its blob's cluster");
    }
    assert!(clusters[0] != clusters[1] && clusters[1] != clusters[2] && clusters[0] != clusters[2]);
    let ssd: f64 = predictions
        .score_column()
        .iter()
        .map(|&d| f64::from(d).powi(2))
        .sum();
    let metrics = context.final_metrics();
    assert!(
        (metrics["test:ssd"] - ssd).abs() <= 1e-3 * ssd.max(1.0),
        "{metrics:?} vs {ssd}"
    );
    assert!((metrics["test:msd"] - ssd / 150.0).abs() <= 1e-3 * (ssd / 150.0).max(1.0));
    assert_eq!(
        artifact.meta.training_metrics["test:msd"],
        metrics["test:msd"]
    );
    assert_eq!(
        context
            .metrics()
            .iter()
            .filter(|m| m.name == "train:msd")
            .count(),
        3
    );
    let records = predictor.response_records(&predictions);
    assert_eq!(predictor.response_key(), "predictions");
    assert_eq!(
        records[0],
        json!({"closest_cluster": clusters[0], "distance_to_cluster": predictions.scores[[0, 0]]})
    );
    assert_eq!(records[0].as_object().unwrap().len(), 2);
    assert_eq!(artifact.tensor("centroids").unwrap().shape, vec![3, 4]);
}

#[test]
fn is_deterministic_for_a_seed_and_sparse_input_matches_dense() {
    let data = blobs(40);
    let bytes = |dataset: &Dataset, seed: &str| {
        let mut pairs = BLOB_HP.to_vec();
        pairs.push(("seed", seed));
        pairs.push(("init_method", "kmeans++"));
        let (artifact, _) = train(
            &pairs,
            &only_train(Channel::from_dataset("train", dataset.clone())),
        )
        .unwrap();
        artifact
    };
    let first = bytes(&data, "5");
    assert_eq!(
        first.to_bytes().unwrap(),
        bytes(&data, "5").to_bytes().unwrap()
    );
    let sparse = bytes(&to_sparse(&data), "5");
    let (a, b) = (
        first.tensor("centroids").unwrap(),
        sparse.tensor("centroids").unwrap(),
    );
    assert_eq!(a.shape, b.shape);
    for (x, y) in a.data.iter().zip(&b.data) {
        assert!((x - y).abs() < 1e-3, "dense {x} vs sparse {y}");
    }
}

#[test]
fn pipe_mode_reads_one_fifo_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for row in blobs(10).features.to_dense().rows() {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        text.push_str(&format!("0,{}\n", cells.join(",")));
    }
    // Pipe mode opens <name>_<epoch>; plain files stand in for the FIFOs.
    std::fs::write(dir.path().join("train_0"), &text).unwrap();
    std::fs::write(dir.path().join("train_1"), &text).unwrap();
    let channel = Channel {
        name: "train".into(),
        content_type: ContentType::Csv { label_size: 1 },
        source: ChannelSource::Pipe {
            dir: dir.path().to_path_buf(),
            name: "train".into(),
        },
    };
    let pairs = [
        ("k", "3"),
        ("feature_dim", "4"),
        ("epochs", "2"),
        ("mini_batch_size", "7"),
    ];
    let (_, context) = train(&pairs, &only_train(channel)).unwrap();
    assert_eq!(
        context
            .metrics()
            .iter()
            .filter(|m| m.name == "train:msd")
            .count(),
        2
    );
}

#[test]
fn elbow_sse_falls_with_k_and_plots() {
    let channel = Channel::from_dataset("train", blobs(30));
    let hyperparameters = parse(BLOB_HP).unwrap();
    let points = kmeans::elbow(&channel, &[1, 2, 3, 4], &hyperparameters).unwrap();
    assert_eq!(
        points.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(
        points[0].1 > points[1].1 && points[1].1 > points[2].1,
        "{points:?}"
    );
    // Three blobs: the curve flattens after k = 3.
    assert!(
        points[1].1 - points[2].1 > 10.0 * (points[2].1 - points[3].1).max(0.0),
        "{points:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elbow.svg");
    kmeans::plot_elbow(&points, &path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    assert!(kmeans::plot_elbow(&points, &dir.path().join("elbow.txt")).is_err());
}

// ---------------------------------------------------------------------------------------------------------------
// Bad input: clear errors before training.

#[test]
fn k_larger_than_the_records_is_refused_naming_both() {
    let error = train(
        &[
            ("k", "40"),
            ("feature_dim", "4"),
            ("extra_center_factor", "1"),
        ],
        &only_train(Channel::from_dataset("train", blobs(10))),
    )
    .err()
    .expect("this input must be refused")
    .to_string();
    assert!(
        error.contains("k=40") && error.contains("30") && error.contains("train"),
        "{error}"
    );
}

#[test]
fn nan_features_are_refused_with_file_record_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.csv");
    std::fs::write(&path, "0,1,2,3,4\n0,1,2,3,5\n0,1,nan,3,4\n0,1,2,3,4\n").unwrap();
    let channel =
        Channel::from_path("train", &path, Some(ContentType::Csv { label_size: 1 })).unwrap();
    let error = train(&[("k", "2"), ("feature_dim", "4")], &only_train(channel))
        .err()
        .expect("this input must be refused")
        .to_string();
    assert!(
        error.contains("train") && error.contains("record 3") && error.contains("features[1]"),
        "{error}"
    );
}

#[test]
fn wrong_width_and_bad_hyperparameters_are_refused() {
    let error = train(
        &[("k", "2"), ("feature_dim", "5")],
        &only_train(Channel::from_dataset("train", blobs(5))),
    )
    .err()
    .expect("this input must be refused")
    .to_string();
    assert!(
        error.contains("record 1") && error.contains("feature_dim"),
        "{error}"
    );
    let missing = parse(&[("feature_dim", "4")])
        .err()
        .expect("this input must be refused")
        .to_string();
    assert!(missing.contains("k"), "{missing}");
    let metric = parse(&[
        ("k", "2"),
        ("feature_dim", "4"),
        ("eval_metrics", "[\"rmse\"]"),
    ])
    .err()
    .expect("this input must be refused")
    .to_string();
    assert!(
        metric.contains("eval_metrics") && metric.contains("msd"),
        "{metric}"
    );
    let init = parse(&[("k", "2"), ("feature_dim", "4"), ("init_method", "forgy")])
        .err()
        .expect("this input must be refused")
        .to_string();
    assert!(init.contains("kmeans++"), "{init}");
}
