//! k-NN: predictions against scikit-learn 1.7.2's brute-force neighbours on real data (computed live by
//! `oracles/sklearn_knn.py`): Flat L2 and cosine classifiers identical to `KNeighborsClassifier(algorithm="brute")`,
//! the inner-product ranking against numpy, the regressor against `KNeighborsRegressor`; IVFFlat against Flat;
//! SageMaker's behaviours (test-channel metrics, reservoir sampling, projections, ties, sparse input, response
//! shapes, editable metadata) and bad input. Run with `--release`.

use ndarray::Array2;
use serde_json::{json, Value};
use tern_formats::ContentType;
use tern_trainer::algorithms::knn::{Knn, KnnModel};
use tern_trainer::data::{Channel, CsrMatrix, Dataset, FeatureMatrix, TrainingInput};
use tern_trainer::{Algorithm, Artifact, Predictor, Task, TrainError, TrainingContext};

mod common;
use common::{csv, csv_channel as channel, floats};

fn train(
    pairs: &[(&str, &str)],
    input: &TrainingInput,
) -> Result<(Artifact, TrainingContext), TrainError> {
    common::train(&Knn, pairs, input)
}

fn test_rows(name: &str) -> Dataset {
    common::rows(name, "test")
}

/// scikit-learn's answer from the oracle script.
fn oracle(args: &[&str]) -> Value {
    common::oracle("sklearn_knn.py", args)
}

fn input(name: &str, with_test: bool) -> TrainingInput {
    TrainingInput::new(channel("train", name, "train"))
        .with(with_test.then(|| channel("test", name, "test")))
}

fn model(artifact: &Artifact) -> KnnModel {
    KnnModel::from_artifact(artifact).unwrap()
}

/// tern's predicted label values (SageMaker's `predicted_label`) on `rows`.
fn predicted(artifact: &Artifact, rows: &Dataset) -> Vec<f64> {
    let model = model(artifact);
    let predictions = model.predict(&rows.features).unwrap();
    model
        .response_records(&predictions)
        .iter()
        .map(|r| r["predicted_label"].as_f64().unwrap())
        .collect()
}

fn oracle_for(command: &str, name: &str, k: usize, metric: Option<&str>) -> Value {
    let train = csv(name, "train");
    let test = csv(name, "test");
    let k = k.to_string();
    let mut args = vec![command, train.to_str().unwrap(), test.to_str().unwrap(), &k];
    args.extend(metric);
    oracle(&args)
}

fn classifier_hp<'a>(
    k: &'a str,
    d: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![
        ("k", k),
        ("feature_dim", d),
        ("predictor_type", "classifier"),
        ("sample_size", "100000"),
    ];
    pairs.extend_from_slice(extra);
    pairs
}

#[test]
fn flat_l2_classifier_is_identical_to_scikit_learn_brute_force() {
    for (name, d) in [("digits", "64"), ("breast_cancer", "30")] {
        for k in [1usize, 5, 10] {
            let k_text = k.to_string();
            let (artifact, context) =
                train(&classifier_hp(&k_text, d, &[]), &input(name, true)).unwrap();
            let reference = oracle_for("classifier", name, k, Some("euclidean"));
            let expected = floats(&reference["predictions"]);
            let ours = predicted(&artifact, &test_rows(name));
            assert_eq!(
                ours, expected,
                "{name} k={k}: predictions differ from scikit-learn"
            );
            // Distances: FAISS's squared L2, scikit-learn's Euclidean.
            let neighbours = model(&artifact)
                .neighbours_of(&test_rows(name).features, "test")
                .unwrap();
            for (row, want) in reference["distances"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                for (i, want) in floats(want).iter().enumerate() {
                    let have = f64::from(neighbours.scores[row * k + i]).sqrt();
                    assert!(
                        (have - want).abs() <= 1e-4 * want.max(1.0),
                        "{name} k={k} row {row} neighbour {i}: distance {have} vs {want}"
                    );
                }
            }
            let accuracy = expected.iter().zip(&ours).filter(|(a, b)| a == b).count() as f64
                / expected.len() as f64;
            let labels = test_rows(name).labels.unwrap();
            let true_accuracy = ours
                .iter()
                .zip(&labels)
                .filter(|(&p, &l)| p == f64::from(l))
                .count() as f64
                / labels.len() as f64;
            assert_eq!(accuracy, 1.0);
            assert_eq!(context.final_metrics()["test:accuracy"], true_accuracy);
            eprintln!("{name} k={k}: identical to scikit-learn, test accuracy {true_accuracy:.4}");
        }
    }
}

#[test]
fn cosine_classifier_is_identical_to_scikit_learn_and_inner_product_to_numpy() {
    let (artifact, _) = train(
        &classifier_hp("5", "64", &[("index_metric", "COSINE")]),
        &input("digits", false),
    )
    .unwrap();
    let reference = oracle_for("classifier", "digits", 5, Some("cosine"));
    assert_eq!(
        predicted(&artifact, &test_rows("digits")),
        floats(&reference["predictions"])
    );
    let neighbours = model(&artifact)
        .neighbours_of(&test_rows("digits").features, "test")
        .unwrap();
    for (row, want) in reference["distances"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for (i, want) in floats(want).iter().enumerate() {
            let similarity = f64::from(neighbours.scores[row * 5 + i]);
            assert!(
                (1.0 - similarity - want).abs() < 1e-5,
                "row {row}: {similarity} vs 1 - {want}"
            );
        }
    }

    let (artifact, _) = train(
        &classifier_hp("7", "30", &[("index_metric", "INNER_PRODUCT")]),
        &input("breast_cancer", false),
    )
    .unwrap();
    let reference = oracle_for("inner_product", "breast_cancer", 7, None);
    assert_eq!(
        predicted(&artifact, &test_rows("breast_cancer")),
        floats(&reference["predictions"])
    );
    let neighbours = model(&artifact)
        .neighbours_of(&test_rows("breast_cancer").features, "test")
        .unwrap();
    for (row, want) in reference["similarities"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for (i, want) in floats(want).iter().enumerate() {
            let have = f64::from(neighbours.scores[row * 7 + i]);
            assert!(
                (have - want).abs() <= 1e-6 * want.abs().max(1.0),
                "row {row}: {have} vs {want}"
            );
        }
    }
}

#[test]
fn regressor_equals_scikit_learn_and_reports_test_mse() {
    let (artifact, context) = train(
        &[
            ("k", "7"),
            ("feature_dim", "10"),
            ("predictor_type", "regressor"),
            ("sample_size", "5000"),
        ],
        &input("diabetes", true),
    )
    .unwrap();
    let expected = floats(&oracle_for("regressor", "diabetes", 7, None)["predictions"]);
    let rows = test_rows("diabetes");
    let ours = predicted(&artifact, &rows);
    for (i, (have, want)) in ours.iter().zip(&expected).enumerate() {
        assert!(
            (have - want).abs() <= 1e-5 * want.abs(),
            "row {i}: {have} vs {want}"
        );
    }
    let labels = rows.labels.unwrap();
    let mse = ours
        .iter()
        .zip(&labels)
        .map(|(p, &l)| (p - f64::from(l)).powi(2))
        .sum::<f64>()
        / labels.len() as f64;
    let reported = context.final_metrics()["test:mse"];
    assert!((reported - mse).abs() <= 1e-6 * mse, "{reported} vs {mse}");
    let predictor = Knn.load(&artifact).unwrap();
    assert_eq!(predictor.task(), Task::Regressor);
}

#[test]
fn ivf_flat_accuracy_is_within_a_point_of_flat() {
    let labels = test_rows("digits").labels.unwrap();
    let accuracy = |artifact: &Artifact| {
        let ours = predicted(artifact, &test_rows("digits"));
        ours.iter()
            .zip(&labels)
            .filter(|(&p, &l)| p == f64::from(l))
            .count() as f64
            / labels.len() as f64
    };
    // Inner products of unnormalised rows favour long rows over near ones: lists partitioned by L2 k-means hold
    // them less tightly, so that metric needs more lists probed.
    for (metric, nprobe) in [("L2", "4"), ("COSINE", "4"), ("INNER_PRODUCT", "8")] {
        let (flat, _) = train(
            &classifier_hp("5", "64", &[("index_metric", metric)]),
            &input("digits", false),
        )
        .unwrap();
        let (ivf, _) = train(
            &classifier_hp(
                "5",
                "64",
                &[
                    ("index_type", "faiss.IVFFlat"),
                    ("faiss_index_ivf_nlists", "16"),
                    ("faiss_index_ivf_nprobe", nprobe),
                    ("index_metric", metric),
                ],
            ),
            &input("digits", false),
        )
        .unwrap();
        assert_eq!(ivf.meta.model["nlists"], json!(16));
        assert_eq!(ivf.tensors["centroids"].shape, vec![16, 64]);
        let (a, b) = (accuracy(&flat), accuracy(&ivf));
        eprintln!("digits k=5 {metric}: Flat {a:.4}, IVFFlat (16 lists, nprobe {nprobe}) {b:.4}");
        assert!((a - b).abs() <= 0.01, "{metric}: IVFFlat {b} vs Flat {a}");
    }
    let (flat, _) = train(&classifier_hp("5", "64", &[]), &input("digits", false)).unwrap();
    // Every list probed: exactly the Flat answer. `auto` lists = √points.
    let (all, _) = train(
        &classifier_hp(
            "5",
            "64",
            &[
                ("index_type", "faiss.IVFFlat"),
                ("faiss_index_ivf_nprobe", "1000"),
            ],
        ),
        &input("digits", false),
    )
    .unwrap();
    assert_eq!(all.meta.model["nlists"], json!(33));
    // `auto` nprobe is FAISS's default: one list per query.
    let (auto, _) = train(
        &classifier_hp("5", "64", &[("index_type", "faiss.IVFFlat")]),
        &input("digits", false),
    )
    .unwrap();
    assert_eq!(auto.meta.model["nprobe"], json!(1));
    let rows = test_rows("digits");
    assert_eq!(
        model(&all).neighbours_of(&rows.features, "t").unwrap(),
        model(&flat).neighbours_of(&rows.features, "t").unwrap()
    );
}

#[test]
fn dimension_reduction_keeps_digits_separable_and_is_stored() {
    for kind in ["sign", "fjlt"] {
        let (artifact, context) = train(
            &classifier_hp(
                "5",
                "64",
                &[
                    ("dimension_reduction_type", kind),
                    ("dimension_reduction_target", "24"),
                    ("seed", "3"),
                ],
            ),
            &input("digits", true),
        )
        .unwrap();
        assert_eq!(artifact.tensors["projection"].shape, vec![64, 24]);
        assert_eq!(artifact.tensors["points"].shape[1], 24);
        assert_eq!(
            artifact.meta.model["dimension_reduction"],
            json!({"type": kind, "seed": 3, "target_dim": 24, "input_dim": 64})
        );
        let accuracy = context.final_metrics()["test:accuracy"];
        eprintln!("digits, {kind} 64 → 24: test accuracy {accuracy:.4}");
        assert!(accuracy > 0.93, "{kind}: accuracy {accuracy}");
    }
}

/// Points on a line; labels chosen so that ties decide.
fn tie_data() -> Dataset {
    // Rows 0 and 1 coincide (labels 3 and 1); rows 2 and 3 sit at distance 1 on either side of 10 (labels 2, 0).
    let features = Array2::from_shape_vec((4, 1), vec![0.0, 0.0, 9.0, 11.0]).unwrap();
    Dataset {
        features: FeatureMatrix::Dense(features),
        labels: Some(vec![3.0, 1.0, 2.0, 0.0]),
        weights: None,
    }
}

#[test]
fn ties_go_to_the_lower_point_index_and_votes_to_the_smallest_label() {
    let memory = TrainingInput::new(Channel::from_dataset("train", tie_data()));
    let queries = FeatureMatrix::Dense(Array2::from_shape_vec((2, 1), vec![0.0, 10.0]).unwrap());
    let (one, _) = train(
        &[
            ("k", "1"),
            ("feature_dim", "1"),
            ("predictor_type", "classifier"),
            ("sample_size", "10"),
        ],
        &memory,
    )
    .unwrap();
    // Query 0 ties rows 0 and 1 → row 0 (label 3); query 10 ties rows 2 and 3 → row 2 (label 2).
    let records = model(&one).verbose_records(&queries).unwrap();
    assert_eq!(
        records[0],
        json!({"predicted_label": 3.0, "distances": [0.0], "labels": [3.0]})
    );
    assert_eq!(
        records[1],
        json!({"predicted_label": 2.0, "distances": [1.0], "labels": [2.0]})
    );
    let (two, _) = train(
        &[
            ("k", "2"),
            ("feature_dim", "1"),
            ("predictor_type", "classifier"),
            ("sample_size", "10"),
        ],
        &memory,
    )
    .unwrap();
    // One vote each: the smallest label wins.
    let records = model(&two).verbose_records(&queries).unwrap();
    assert_eq!(
        records[0],
        json!({"predicted_label": 1.0, "distances": [0.0, 0.0], "labels": [3.0, 1.0]})
    );
    assert_eq!(
        records[1],
        json!({"predicted_label": 0.0, "distances": [1.0, 1.0], "labels": [2.0, 0.0]})
    );
}

#[test]
fn reservoir_sample_is_seeded_uniform_and_in_record_order() {
    let pairs = |seed: &'static str| {
        vec![
            ("k", "3"),
            ("feature_dim", "64"),
            ("predictor_type", "classifier"),
            ("sample_size", "200"),
            ("seed", seed),
        ]
    };
    let (a, _) = train(&pairs("1"), &input("digits", false)).unwrap();
    let (b, _) = train(&pairs("1"), &input("digits", false)).unwrap();
    let (c, _) = train(&pairs("2"), &input("digits", false)).unwrap();
    assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
    assert_ne!(a.tensors["points"], c.tensors["points"]);
    assert_eq!(a.tensors["points"].shape, vec![200, 64]);
    assert_eq!(a.meta.model["records_read"], json!(1078));
    // Which records were kept: every stored point is a training row, in file order, drawn from the whole file.
    let all = channel("train", "digits", "train")
        .load(Some(64))
        .unwrap()
        .features
        .to_dense();
    let points = &a.tensors["points"].data;
    let mut positions = Vec::new();
    let mut from = 0;
    for point in points.chunks(64) {
        let at = (from..all.nrows())
            .find(|&i| all.row(i).iter().zip(point).all(|(x, y)| x == y))
            .expect("a sampled point is a later training row");
        positions.push(at);
        from = at + 1;
    }
    let in_second_half = positions.iter().filter(|&&i| i >= 539).count();
    assert!(
        (70..=130).contains(&in_second_half),
        "{in_second_half} of 200 from the second half"
    );
}

#[test]
fn sparse_rows_predict_as_their_dense_equivalent() {
    let (artifact, _) = train(&classifier_hp("5", "64", &[]), &input("digits", false)).unwrap();
    let rows = test_rows("digits").features.to_dense();
    let mut csr = CsrMatrix::new(64);
    for row in rows.rows() {
        let (indices, values): (Vec<u32>, Vec<f32>) = row
            .iter()
            .enumerate()
            .filter(|(_, &v)| v != 0.0)
            .map(|(j, &v)| (j as u32, v))
            .unzip();
        csr.push_row(&indices, &values);
    }
    let model = model(&artifact);
    assert_eq!(
        model.predict(&FeatureMatrix::Sparse(csr)).unwrap(),
        model.predict(&FeatureMatrix::Dense(rows)).unwrap()
    );
}

#[test]
fn answers_in_sagemaker_shape_and_metadata_edits_change_inference() {
    let (artifact, _) = train(&classifier_hp("3", "64", &[]), &input("digits", false)).unwrap();
    let bytes = artifact.to_bytes().unwrap();
    let read = Artifact::from_bytes(&bytes, "model.tar.gz").unwrap();
    assert_eq!(read, artifact);
    assert_eq!(artifact.meta.label_map.as_ref().unwrap().len(), 10);
    let predictor = Knn.load(&read).unwrap();
    assert_eq!(
        predictor.task(),
        Task::MulticlassClassifier { num_classes: 10 }
    );
    let rows = test_rows("digits");
    let predictions = predictor.predict(&rows.features).unwrap();
    for row in predictions.scores.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-6, "vote shares sum to 1");
    }
    let records = predictor.response_records(&predictions);
    assert_eq!(records[0].as_object().unwrap().len(), 1);
    assert!(records[0]["predicted_label"].is_f64());
    let verbose = model(&read).verbose_records(&rows.features).unwrap();
    for record in &verbose {
        let distances = floats(&record["distances"]);
        assert_eq!(distances.len(), 3);
        assert_eq!(floats(&record["labels"]).len(), 3);
        assert!(
            distances.windows(2).all(|w| w[0] <= w[1]),
            "ascending: {distances:?}"
        );
    }
    // SageMaker lets the metadata's k and predictor_type be edited for inference.
    let mut edited = read.clone();
    edited.meta.model["k"] = json!(1);
    edited.meta.model["predictor_type"] = json!("regressor");
    let one = model(&edited);
    let verbose = one.verbose_records(&rows.features).unwrap();
    assert_eq!(floats(&verbose[0]["labels"]).len(), 1);
    assert_eq!(one.predict(&rows.features).unwrap().task, Task::Regressor);
}

fn error_of(pairs: &[(&str, &str)], input: &TrainingInput) -> String {
    train(pairs, input)
        .err()
        .expect("training fails")
        .to_string()
}

#[test]
fn bad_input_fails_before_training_with_what_is_wrong() {
    let digits = input("digits", false);
    let base = [("feature_dim", "64"), ("predictor_type", "classifier")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        pairs
    };
    let e = error_of(&with(&[("k", "20"), ("sample_size", "10")]), &digits);
    assert!(e.contains("k=20") && e.contains("sample_size=10"), "{e}");
    let e = error_of(
        &[
            ("k", "3"),
            ("predictor_type", "classifier"),
            ("sample_size", "10"),
        ],
        &digits,
    );
    assert!(
        e.contains("missing required hyperparameter feature_dim"),
        "{e}"
    );
    let e = error_of(
        &with(&[
            ("k", "3"),
            ("sample_size", "100"),
            ("dimension_reduction_type", "sign"),
            ("dimension_reduction_target", "64"),
        ]),
        &digits,
    );
    assert!(
        e.contains("dimension_reduction_target=64 must be less than feature_dim=64"),
        "{e}"
    );
    let e = error_of(
        &with(&[
            ("k", "3"),
            ("sample_size", "100"),
            ("dimension_reduction_type", "fjlt"),
        ]),
        &digits,
    );
    assert!(e.contains("needs dimension_reduction_target"), "{e}");
    let e = error_of(
        &with(&[
            ("k", "3"),
            ("sample_size", "100"),
            ("index_type", "faiss.IVFPQ"),
        ]),
        &digits,
    );
    assert!(e.contains("does not implement product quantization"), "{e}");
    let e = error_of(
        &with(&[
            ("k", "3"),
            ("sample_size", "100"),
            ("faiss_index_pq_m", "7"),
        ]),
        &digits,
    );
    assert!(
        e.contains("faiss_index_pq_m") && e.contains("one of 1, 2"),
        "{e}"
    );
    let e = error_of(
        &with(&[("k", "3"), ("sample_size", "100"), ("index_metric", "L1")]),
        &digits,
    );
    assert!(
        e.contains("index_metric") && e.contains("INNER_PRODUCT"),
        "{e}"
    );

    // k larger than the records the channel holds.
    let tiny = TrainingInput::new(Channel::from_dataset("train", tie_data()));
    let e = error_of(
        &[
            ("k", "5"),
            ("feature_dim", "1"),
            ("predictor_type", "classifier"),
            ("sample_size", "10"),
        ],
        &tiny,
    );
    assert!(
        e.contains("k=5 neighbours need at least 5 records, the channel holds 4"),
        "{e}"
    );

    // NaN feature and missing label, named by record and field.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.csv");
    std::fs::write(&path, "1,0.5,2\n0,nan,1\n").unwrap();
    let nan = TrainingInput::new(
        Channel::from_path("train", &path, Some(ContentType::Csv { label_size: 1 })).unwrap(),
    );
    let pairs = [
        ("k", "1"),
        ("feature_dim", "2"),
        ("predictor_type", "regressor"),
        ("sample_size", "10"),
    ];
    let e = error_of(&pairs, &nan);
    assert!(
        e.contains("record 2, field features[0]") && e.contains("finite"),
        "{e}"
    );
    std::fs::write(&path, "0.5,2\n").unwrap();
    let unlabelled = TrainingInput::new(
        Channel::from_path("train", &path, Some(ContentType::Csv { label_size: 0 })).unwrap(),
    );
    let e = error_of(&pairs, &unlabelled);
    assert!(e.contains("record 1, field label"), "{e}");
    // A record of the wrong width.
    let wide = TrainingInput::new(channel("train", "diabetes", "train"));
    let e = error_of(&pairs, &wide);
    assert!(
        e.contains("record 1, field features: 10 features, expected 2"),
        "{e}"
    );
}
