//! Random Cut Forest: anomaly AUC against the `rrcf` package (PyPI 0.4.4, run live by `oracles/rrcf_oracle.py`) on
//! scikit-learn's digits with injected anomalies, determinism, the artifact round trip and SageMaker's response
//! shape, the streaming forest, and bad input. Run with `--release`.

use std::path::Path;

use serde_json::{json, Value};
use tern_trainer::algorithms::rcf::{RandomCutForest, RcfModel, Shingle, StreamingForest};
use tern_trainer::data::{Channel, TrainingInput};
use tern_trainer::metrics::roc_auc;
use tern_trainer::{Algorithm, Artifact, Task, TrainError, TrainingContext};

mod common;

fn train(
    pairs: &[(&str, &str)],
    input: &TrainingInput,
) -> Result<(Artifact, TrainingContext), TrainError> {
    common::train(&RandomCutForest, pairs, input)
}

/// The message of a training run that must fail.
fn failure(pairs: &[(&str, &str)], input: &TrainingInput) -> String {
    common::failure(&RandomCutForest, pairs, input)
}

fn channel(name: &str, path: &Path, label_size: usize) -> Channel {
    common::csv_file_channel(name, path, label_size)
}

/// Writes the digits-with-anomalies data to `dir` and returns rrcf's AUC per seed.
fn rrcf_oracle(dir: &Path, num_trees: usize, tree_size: usize, seeds: &[u64]) -> Value {
    let mut args = vec![
        dir.display().to_string(),
        num_trees.to_string(),
        tree_size.to_string(),
    ];
    args.extend(seeds.iter().map(u64::to_string));
    common::oracle("rrcf_oracle.py", &args)
}

fn digits_with_anomalies(dir: &Path, seeds: &[u64]) -> Vec<f64> {
    let oracle = rrcf_oracle(dir, 100, 256, seeds);
    assert_eq!(oracle["rows"], json!(1797));
    assert_eq!(oracle["anomalies"], json!(54));
    oracle["auc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// With rrcf's settings (100 trees of 256 points), tern's scores rank the injected anomalies at least as well as
/// rrcf's on every one of three seeds, and the test channel's metrics follow from the mean + 3·std threshold.
#[test]
fn anomaly_auc_on_digits_is_at_least_rrcfs() {
    let dir = tempfile::tempdir().unwrap();
    let rrcf_auc = digits_with_anomalies(dir.path(), &[1, 2, 3]);
    let input = TrainingInput::new(channel("train", &dir.path().join("train.csv"), 0))
        .with(channel("test", &dir.path().join("test.csv"), 1));
    let pairs = [
        ("feature_dim", "64"),
        ("num_trees", "100"),
        ("num_samples_per_tree", "256"),
    ];
    let (artifact, context) = train(&pairs, &input).unwrap();
    let model = RcfModel::from_artifact(&artifact).unwrap();
    let test = input.test().unwrap().load(Some(64)).unwrap();
    let labels = test.labels.clone().unwrap();
    let scores: Vec<f32> = model
        .score(&test.features)
        .iter()
        .map(|&s| s as f32)
        .collect();
    let auc = roc_auc(&labels, &scores, None);
    eprintln!(
        "tern AUC {auc:.4}, rrcf AUC per seed {rrcf_auc:?}; test metrics {:?}",
        context.final_metrics()
    );
    for (seed, &theirs) in rrcf_auc.iter().enumerate() {
        assert!(
            auc >= theirs,
            "tern AUC {auc} < rrcf's {theirs} (seed {})",
            seed + 1
        );
    }
    // The threshold and the test metrics it gives, recomputed from the scores.
    let threshold = artifact.meta.model["score_threshold"].as_f64().unwrap();
    let mean = artifact.meta.model["score_mean"].as_f64().unwrap();
    let std = artifact.meta.model["score_std"].as_f64().unwrap();
    assert_eq!(threshold, mean + 3.0 * std);
    let flagged: Vec<bool> = model
        .score(&test.features)
        .iter()
        .map(|&s| s > threshold)
        .collect();
    let true_positives = flagged
        .iter()
        .zip(&labels)
        .filter(|(&f, &l)| f && l == 1.0)
        .count() as f64;
    let positives = flagged.iter().filter(|&&f| f).count() as f64;
    let metrics = context.final_metrics();
    assert_eq!(metrics["test:precision"], true_positives / positives);
    assert_eq!(metrics["test:recall"], true_positives / 54.0);
    let accuracy = flagged
        .iter()
        .zip(&labels)
        .filter(|(&f, &l)| f == (l == 1.0))
        .count() as f64
        / 1797.0;
    assert!((metrics["test:accuracy"] - accuracy).abs() < 1e-12);
    for name in [
        "test:f1",
        "test:precision_negative",
        "test:recall_negative",
        "test:f1_negative",
    ] {
        assert!(
            metrics.contains_key(name),
            "{name} missing from {metrics:?}"
        );
        assert_eq!(artifact.meta.training_metrics[name], metrics[name]);
    }
}

fn small_input(dir: &Path) -> TrainingInput {
    let mut text = String::new();
    for i in 0..300 {
        let x = (i as f32 * 0.37).sin();
        let y = (i as f32 * 0.11).cos() * 2.0;
        text.push_str(&format!("{x},{y},{}\n", i % 5));
    }
    text.push_str("40,-40,9\n");
    let path = dir.join("train.csv");
    std::fs::write(&path, text).unwrap();
    TrainingInput::new(channel("train", &path, 0))
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_other_trees() {
    let dir = tempfile::tempdir().unwrap();
    let input = small_input(dir.path());
    let pairs = |seed: &'static str| {
        [
            ("feature_dim", "3"),
            ("num_trees", "50"),
            ("num_samples_per_tree", "64"),
            ("seed", seed),
        ]
    };
    let first = train(&pairs("5"), &input).unwrap().0.to_bytes().unwrap();
    let again = train(&pairs("5"), &input).unwrap().0.to_bytes().unwrap();
    let other = train(&pairs("6"), &input).unwrap().0.to_bytes().unwrap();
    assert_eq!(first, again);
    assert_ne!(first, other);
}

#[test]
fn the_artifact_round_trips_and_answers_in_sagemakers_shape() {
    let dir = tempfile::tempdir().unwrap();
    let input = small_input(dir.path());
    let pairs = [
        ("feature_dim", "3"),
        ("num_trees", "50"),
        ("num_samples_per_tree", "301"),
    ];
    let (artifact, _) = train(&pairs, &input).unwrap();
    let path = dir.path().join("model.tar.gz");
    artifact.write(&path).unwrap();
    let read = Artifact::read(&path).unwrap();
    assert_eq!(read, artifact);
    let model = RcfModel::from_artifact(&read).unwrap();
    assert_eq!(model.trees.len(), 50);
    for tree in &model.trees {
        assert_eq!(
            tree.mass(),
            301,
            "num_samples_per_tree = rows: every tree holds every record"
        );
    }
    let dataset = input.train().load(Some(3)).unwrap();
    let predictor = RandomCutForest.load(&read).unwrap();
    assert_eq!(predictor.task(), Task::AnomalyDetection);
    assert_eq!(predictor.response_key(), "scores");
    let predictions = predictor.predict(&dataset.features).unwrap();
    let scores = model.score(&dataset.features);
    for (i, &s) in scores.iter().enumerate() {
        assert_eq!(predictions.scores[[i, 0]], s as f32);
    }
    // The far-out last record scores highest and alone crosses the threshold (mean + 3 std).
    let last = scores.len() - 1;
    assert!(scores[..last].iter().all(|&s| s < scores[last]));
    assert_eq!(
        predictions.predicted_label, None,
        "SageMaker's RCF answers scores only"
    );
    let labels = model.labels(&scores);
    assert_eq!(labels.iter().sum::<f32>(), 1.0);
    assert_eq!(labels[last], 1.0);
    let records = predictor.response_records(&predictions);
    assert_eq!(records[last], json!({"score": scores[last] as f32}));
    assert_eq!(records[0].as_object().unwrap().len(), 1);
}

#[test]
fn a_malformed_forest_in_an_artifact_is_refused_with_the_node_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = small_input(dir.path());
    let pairs = [
        ("feature_dim", "3"),
        ("num_trees", "50"),
        ("num_samples_per_tree", "16"),
    ];
    let (artifact, _) = train(&pairs, &input).unwrap();
    let mut broken = artifact.clone();
    broken.tensors.get_mut("node_left").unwrap().data[0] = 5000.0;
    let error = RcfModel::from_artifact(&broken).unwrap_err().to_string();
    assert!(error.contains("tree 0: node 0: child 5000"), "{error}");
    let mut broken = artifact.clone();
    broken.tensors.get_mut("node_cut_value").unwrap().data[0] = f32::NAN;
    let error = RcfModel::from_artifact(&broken).unwrap_err().to_string();
    assert!(error.contains("tree 0: node 0: cut"), "{error}");
    let mut broken = artifact.clone();
    broken.tensors.get_mut("tree_node_count").unwrap().data[3] += 1.0;
    let error = RcfModel::from_artifact(&broken).unwrap_err().to_string();
    assert!(error.contains("tree 3"), "{error}");
}

#[test]
fn bad_input_fails_before_training_with_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let input = small_input(dir.path());
    let error = failure(
        &[("feature_dim", "3"), ("num_samples_per_tree", "400")],
        &input,
    );
    assert!(
        error.contains("num_samples_per_tree=400 exceeds the 301 records"),
        "{error}"
    );
    let error = failure(&[("feature_dim", "4")], &input);
    assert!(
        error.contains("record 1") && error.contains("expected 4 (feature_dim)"),
        "{error}"
    );
    let error = failure(&[("feature_dim", "3"), ("num_trees", "10")], &input);
    assert!(
        error.contains("num_trees") && error.contains("[50, 1000]"),
        "{error}"
    );
    let error = failure(
        &[("feature_dim", "3"), ("eval_metrics", "[\"auc\"]")],
        &input,
    );
    assert!(
        error.contains("eval_metrics") && error.contains("precision_recall_fscore"),
        "{error}"
    );
    let error = failure(&[], &input);
    assert!(error.contains("feature_dim"), "{error}");

    let nan = dir.path().join("nan.csv");
    std::fs::write(&nan, "1,2,3\n4,nan,6\n").unwrap();
    let error = failure(
        &[("feature_dim", "3"), ("num_samples_per_tree", "1")],
        &TrainingInput::new(channel("train", &nan, 0)),
    );
    assert!(error.contains("record 2, field features[1]"), "{error}");

    let bad_labels = dir.path().join("labels.csv");
    std::fs::write(&bad_labels, "0,1,2,3\n2,4,5,6\n").unwrap();
    let error = failure(
        &[("feature_dim", "3"), ("num_samples_per_tree", "8")],
        &small_input(dir.path()).with(channel("test", &bad_labels, 1)),
    );
    assert!(error.contains("test"), "{error}");

    let error = failure(
        &[("feature_dim", "3")],
        &small_input(dir.path()).with(Channel {
            name: "validation".into(),
            ..input.train().clone()
        }),
    );
    assert!(error.contains("reads no such channel"), "{error}");
}

/// A 2-D stream of ordinary points with rare far-out ones: `update` scores each point before inserting it, and the
/// far-out ones stand out; a point inserted then deleted leaves every tree exactly as it was.
#[test]
fn the_streaming_forest_flags_outliers_and_delete_undoes_insert() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut forest = StreamingForest::new(60, 128, 2, 3).unwrap();
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    for t in 0..2000 {
        let outlier = t > 200 && t % 97 == 0;
        let point = if outlier {
            [rng.gen_range(6.0..9.0f32), rng.gen_range(-9.0..-6.0f32)]
        } else {
            [rng.gen_range(-1.0..1.0f32), rng.gen_range(-1.0..1.0f32)]
        };
        let score = forest.update(&point).unwrap();
        if t > 200 {
            scores.push(score as f32);
            labels.push(if outlier { 1.0 } else { 0.0 });
        }
    }
    let auc = roc_auc(&labels, &scores, None);
    assert!(auc > 0.99, "streaming AUC {auc}");
    for tree in forest.trees() {
        assert_eq!(tree.mass(), 128);
    }

    // A point inserted into trees with room, then deleted, leaves them exactly as they were.
    let mut roomy = StreamingForest::new(50, 64, 2, 9).unwrap();
    for i in 0..40 {
        roomy
            .insert(&[(i as f32 * 0.7).sin(), (i as f32 * 1.3).cos()])
            .unwrap();
    }
    let roomy_before: Vec<Vec<_>> = roomy.trees().iter().map(|t| snapshot(t)).collect();
    let probe = [0.25f32, -0.5];
    let roomy_score = roomy.score(&probe).unwrap();
    let key = roomy.insert(&[3.0, 3.0]).unwrap();
    assert!(roomy.delete(key));
    let roomy_after: Vec<Vec<_>> = roomy.trees().iter().map(|t| snapshot(t)).collect();
    assert_eq!(roomy_after, roomy_before);
    assert_eq!(roomy.score(&probe).unwrap(), roomy_score);
}

/// A tree's nodes in preorder: (is leaf, cut dimension, cut value bits, mass, box).
fn snapshot(tree: &tern_trainer::algorithms::rcf::Tree) -> Vec<(bool, u32, u32, u32, Vec<f32>)> {
    tree.preorder()
        .into_iter()
        .map(|(node, low, high)| {
            let leaf = node.is_leaf();
            (
                leaf,
                if leaf { 0 } else { node.cut_dimension },
                if leaf { 0 } else { node.cut_value.to_bits() },
                node.mass,
                [low, high].concat(),
            )
        })
        .collect()
}

/// A sine series with a level shift for 8 steps: with 4-value shingles, the shifted windows score highest.
#[test]
fn shingled_series_scores_the_anomalous_stretch_highest() {
    let mut forest = StreamingForest::new(80, 256, 4, 11).unwrap();
    let mut shingle = Shingle::new(4).unwrap();
    let mut scored = Vec::new();
    for t in 0..1500 {
        let mut value = (t as f32 * std::f32::consts::TAU / 40.0).sin();
        if (1200..1208).contains(&t) {
            value += 1.5;
        }
        if let Some(window) = shingle.push(value) {
            let score = forest.update(&window).unwrap();
            if t >= 600 {
                scored.push((t, score));
            }
        }
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (t, _) in &scored[..5] {
        assert!((1200..1211).contains(t), "top scores {:?}", &scored[..5]);
    }
}
