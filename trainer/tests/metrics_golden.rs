//! `tern_trainer::metrics` and `tern_trainer::cv` against scikit-learn 1.7.2 on real data.
//!
//! The golden values are in `fixtures/metrics/golden.json`, written by `fixtures/metrics/make_golden.py` (see its
//! docstring for the data and models). Every metric must agree to 1e-9 relative: the inputs are the same float32
//! values on both sides, and where sklearn computes in float32 (clipping float32 probabilities for log loss) tern does
//! too, so what remains is the order of float64 summation (NumPy sums pairwise, tern in row order), far below 1e-9.
//! Thresholds, curve lengths, chosen operating points and folds must agree exactly.

use std::path::Path;

use ndarray::ArrayView2;
use serde_json::Value;
use tern_trainer::cv;
use tern_trainer::metrics::{self, ConfusionMatrix, ThresholdCriterion};

const RELATIVE_TOLERANCE: f64 = 1e-9;

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics/golden.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).expect("golden.json parses")
}

/// A golden number: JSON numbers, or the strings "inf", "-inf", "nan" for values JSON cannot hold.
fn number(value: &Value) -> f64 {
    match value {
        Value::Number(number) => number.as_f64().expect("a finite number"),
        Value::String(text) => match text.as_str() {
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            "nan" => f64::NAN,
            other => panic!("unexpected golden string {other:?}"),
        },
        other => panic!("expected a number, found {other}"),
    }
}

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(number)
        .collect()
}

fn floats(value: &Value) -> Vec<f32> {
    numbers(value)
        .into_iter()
        .map(|value| value as f32)
        .collect()
}

fn assert_close(what: &str, actual: f64, expected: f64) {
    let agree = if expected.is_nan() {
        actual.is_nan()
    } else if expected.is_infinite() {
        actual == expected
    } else {
        (actual - expected).abs() <= RELATIVE_TOLERANCE * expected.abs().max(f64::MIN_POSITIVE)
            || (expected == 0.0 && actual.abs() <= 1e-15)
    };
    assert!(agree, "{what}: tern {actual:e}, sklearn {expected:e}");
}

fn assert_all_close(what: &str, actual: &[f64], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (index, (&actual, &expected)) in actual.iter().zip(expected).enumerate() {
        assert_close(&format!("{what}[{index}]"), actual, expected);
    }
}

fn assert_same_thresholds(what: &str, actual: &[f32], expected: &[f64]) {
    // NaN (no threshold qualifies) must match NaN.
    let bits = |values: &mut dyn Iterator<Item = f32>| {
        values
            .map(|value| (!value.is_nan()).then_some(value))
            .collect::<Vec<_>>()
    };
    let expected = bits(&mut expected.iter().map(|&value| value as f32));
    assert_eq!(
        bits(&mut actual.iter().copied()),
        expected,
        "{what}: thresholds"
    );
}

/// The binary case's inputs: labels, scores, weights.
fn binary_inputs(data: &Value, case: &Value) -> (Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
    let y_true = floats(&data["y_true"]);
    let score = floats(&data["scores"][case["score"].as_str().unwrap()]);
    let weights = data["weights"]
        .get(case["weights"].as_str().unwrap())
        .map(floats);
    (y_true, score, weights)
}

#[test]
fn binary_metrics_match_sklearn() {
    let golden = golden();
    assert_eq!(golden["sklearn_version"], "1.7.2");
    let data = &golden["binary"];
    let cases = data["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (y_true, score, weights) = binary_inputs(data, case);
        let weights = weights.as_deref();

        let roc = metrics::roc_curve(&y_true, &score, weights);
        let expected = &case["roc_curve"];
        assert_same_thresholds(
            &format!("{name} roc_curve"),
            &roc.iter().map(|point| point.threshold).collect::<Vec<_>>(),
            &numbers(&expected["thresholds"]),
        );
        assert_all_close(
            &format!("{name} roc_curve fpr"),
            &roc.iter()
                .map(|point| point.false_positive_rate)
                .collect::<Vec<_>>(),
            &numbers(&expected["fpr"]),
        );
        assert_all_close(
            &format!("{name} roc_curve tpr"),
            &roc.iter()
                .map(|point| point.true_positive_rate)
                .collect::<Vec<_>>(),
            &numbers(&expected["tpr"]),
        );
        assert_close(
            &format!("{name} roc_auc"),
            metrics::roc_auc(&y_true, &score, weights),
            number(&case["roc_auc"]),
        );

        let pr = metrics::precision_recall_curve(&y_true, &score, weights);
        let expected = &case["pr_curve"];
        let (last, curve) = pr.split_last().expect("a non-empty curve");
        assert_eq!(
            (last.threshold, last.precision, last.recall),
            (f32::INFINITY, 1.0, 0.0),
            "{name}"
        );
        assert_same_thresholds(
            &format!("{name} pr_curve"),
            &curve
                .iter()
                .map(|point| point.threshold)
                .collect::<Vec<_>>(),
            &numbers(&expected["thresholds"]),
        );
        assert_all_close(
            &format!("{name} pr_curve precision"),
            &pr.iter().map(|point| point.precision).collect::<Vec<_>>(),
            &numbers(&expected["precision"]),
        );
        assert_all_close(
            &format!("{name} pr_curve recall"),
            &pr.iter().map(|point| point.recall).collect::<Vec<_>>(),
            &numbers(&expected["recall"]),
        );
        assert_close(
            &format!("{name} average_precision"),
            metrics::average_precision(&y_true, &score, weights),
            number(&case["average_precision"]),
        );
        assert_close(
            &format!("{name} pr_auc_trapezoid"),
            metrics::pr_auc_trapezoid(&y_true, &score, weights),
            number(&case["pr_auc_trapezoid"]),
        );

        if let Some(expected) = case.get("log_loss") {
            assert_close(
                &format!("{name} log_loss_binary"),
                metrics::log_loss_binary(&y_true, &score, weights),
                number(expected),
            );
            let predicted = floats(&case["predicted_at_half"]);
            assert_close(
                &format!("{name} accuracy"),
                metrics::accuracy(&y_true, &predicted, weights),
                number(&case["accuracy_at_half"]),
            );
            let matrix = ConfusionMatrix::new(&y_true, &predicted, 2, weights);
            assert_close(
                &format!("{name} matrix accuracy"),
                matrix.accuracy(),
                number(&case["accuracy_at_half"]),
            );
        }

        if let Some(rows) = case.get("precision_at_recall") {
            for row in rows.as_array().unwrap() {
                let row = numbers(row);
                let (precision, threshold) =
                    metrics::precision_at_recall(&y_true, &score, row[0], weights);
                assert_close(
                    &format!("{name} precision_at_recall({})", row[0]),
                    precision,
                    row[1],
                );
                assert_same_thresholds(
                    &format!("{name} precision_at_recall({})", row[0]),
                    &[threshold],
                    &row[2..],
                );
                let (chosen, value) = metrics::best_threshold(
                    &y_true,
                    &score,
                    ThresholdCriterion::PrecisionAtRecall(row[0]),
                    weights,
                );
                assert_eq!(
                    (chosen.to_bits(), value.to_bits()),
                    (threshold.to_bits(), precision.to_bits())
                );
            }
            for row in case["recall_at_precision"].as_array().unwrap() {
                let row = numbers(row);
                let (recall, threshold) =
                    metrics::recall_at_precision(&y_true, &score, row[0], weights);
                assert_close(
                    &format!("{name} recall_at_precision({})", row[0]),
                    recall,
                    row[1],
                );
                assert_same_thresholds(
                    &format!("{name} recall_at_precision({})", row[0]),
                    &[threshold],
                    &row[2..],
                );
                let (chosen, value) = metrics::best_threshold(
                    &y_true,
                    &score,
                    ThresholdCriterion::RecallAtPrecision(row[0]),
                    weights,
                );
                assert_eq!(
                    (chosen.to_bits(), value.to_bits()),
                    (threshold.to_bits(), recall.to_bits())
                );
            }
            let expected = numbers(&case["best_accuracy"]);
            let (threshold, accuracy) =
                metrics::best_threshold(&y_true, &score, ThresholdCriterion::Accuracy, weights);
            assert_same_thresholds(
                &format!("{name} best accuracy"),
                &[threshold],
                &expected[..1],
            );
            assert_close(&format!("{name} best accuracy"), accuracy, expected[1]);
            for row in case["best_f_beta"].as_array().unwrap() {
                let row = numbers(row);
                let (threshold, f) = metrics::best_threshold(
                    &y_true,
                    &score,
                    ThresholdCriterion::FBeta(row[0]),
                    weights,
                );
                assert_same_thresholds(
                    &format!("{name} best F{}", row[0]),
                    &[threshold],
                    &row[1..2],
                );
                assert_close(&format!("{name} best F{}", row[0]), f, row[2]);
            }
        }
    }
}

fn check_report(name: &str, matrix: &ConfusionMatrix, report: &Value) {
    let classes = matrix.num_classes();
    let counts: Vec<f64> = (0..classes)
        .flat_map(|truth| (0..classes).map(move |predicted| (truth, predicted)))
        .map(|(t, p)| matrix.count(t, p))
        .collect();
    assert_all_close(
        &format!("{name} confusion_matrix"),
        &counts,
        &numbers(&report["confusion_matrix"]),
    );
    assert_close(
        &format!("{name} accuracy"),
        matrix.accuracy(),
        number(&report["accuracy"]),
    );
    let per_class = &report["per_class"];
    let each = |metric: &dyn Fn(usize) -> f64| (0..classes).map(metric).collect::<Vec<f64>>();
    assert_all_close(
        &format!("{name} precision"),
        &each(&|c| matrix.precision(c)),
        &numbers(&per_class["precision"]),
    );
    assert_all_close(
        &format!("{name} recall"),
        &each(&|c| matrix.recall(c)),
        &numbers(&per_class["recall"]),
    );
    assert_all_close(
        &format!("{name} f1"),
        &each(&|c| matrix.f_beta(c, 1.0)),
        &numbers(&per_class["f1"]),
    );
    assert_all_close(
        &format!("{name} f0.5"),
        &each(&|c| matrix.f_beta(c, 0.5)),
        &numbers(&per_class["f0.5"]),
    );
    assert_all_close(
        &format!("{name} f2"),
        &each(&|c| matrix.f_beta(c, 2.0)),
        &numbers(&per_class["f2"]),
    );
    for (average, precision, recall, f1, f_half, f_two) in [
        (
            "macro",
            matrix.macro_precision(),
            matrix.macro_recall(),
            matrix.macro_f_beta(1.0),
            matrix.macro_f_beta(0.5),
            matrix.macro_f_beta(2.0),
        ),
        (
            "micro",
            matrix.micro_precision(),
            matrix.micro_recall(),
            matrix.micro_f_beta(1.0),
            matrix.micro_f_beta(0.5),
            matrix.micro_f_beta(2.0),
        ),
    ] {
        let expected = &report[average];
        assert_close(
            &format!("{name} {average} precision"),
            precision,
            numbers(&expected["precision"])[0],
        );
        assert_close(
            &format!("{name} {average} recall"),
            recall,
            numbers(&expected["recall"])[0],
        );
        assert_close(
            &format!("{name} {average} f1"),
            f1,
            numbers(&expected["f1"])[0],
        );
        assert_close(
            &format!("{name} {average} f0.5"),
            f_half,
            numbers(&expected["f0.5"])[0],
        );
        assert_close(
            &format!("{name} {average} f2"),
            f_two,
            numbers(&expected["f2"])[0],
        );
    }
}

#[test]
fn multiclass_metrics_match_sklearn() {
    let golden = golden();
    let data = &golden["multiclass"];
    let y_true = floats(&data["y_true"]);
    let classes = data["num_classes"].as_u64().unwrap() as usize;
    let probabilities = floats(&data["probabilities"]);
    let probabilities = ArrayView2::from_shape((y_true.len(), classes), &probabilities).unwrap();
    let top_k_scores = floats(&data["top_k_scores"]);
    let top_k_scores = ArrayView2::from_shape((y_true.len(), classes), &top_k_scores).unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let weights = data["weights"]
            .get(case["weights"].as_str().unwrap())
            .map(floats);
        let weights = weights.as_deref();
        assert_close(
            &format!("{name} log_loss"),
            metrics::log_loss_multiclass(&y_true, probabilities, weights),
            number(&case["log_loss"]),
        );
        for row in case["top_k_accuracy"].as_array().unwrap() {
            let row = numbers(row);
            assert_close(
                &format!("{name} top_{}_accuracy", row[0]),
                metrics::top_k_accuracy(&y_true, top_k_scores, row[0] as usize, weights),
                row[1],
            );
        }
        for (predictor, report) in case["predictions"].as_object().unwrap() {
            let y_pred = floats(&data["y_pred"][report["y_pred"].as_str().unwrap()]);
            let report_classes = report["num_classes"].as_u64().unwrap() as usize;
            let matrix = ConfusionMatrix::new(&y_true, &y_pred, report_classes, weights);
            assert_eq!(matrix.rows_outside(), 0);
            check_report(&format!("{name} {predictor}"), &matrix, report);
            assert_close(
                &format!("{name} {predictor} accuracy()"),
                metrics::accuracy(&y_true, &y_pred, weights),
                number(&report["accuracy"]),
            );
        }
    }
}

#[test]
fn regression_metrics_match_sklearn() {
    let golden = golden();
    for case in golden["regression"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let y_true = floats(&case["y_true"]);
        let y_pred = floats(&case["y_pred"]);
        let weights = (!case["weights"].is_null()).then(|| floats(&case["weights"]));
        let weights = weights.as_deref();
        assert_close(
            &format!("{name} mse"),
            metrics::mse(&y_true, &y_pred, weights),
            number(&case["mse"]),
        );
        assert_close(
            &format!("{name} rmse"),
            metrics::rmse(&y_true, &y_pred, weights),
            number(&case["rmse"]),
        );
        assert_close(
            &format!("{name} mae"),
            metrics::mae(&y_true, &y_pred, weights),
            number(&case["mae"]),
        );
        assert_close(
            &format!("{name} r2"),
            metrics::r2(&y_true, &y_pred, weights),
            number(&case["r2"]),
        );
    }
}

#[test]
fn unshuffled_folds_match_sklearn() {
    let golden = golden();
    for case in golden["cv"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let n_rows = case["n_rows"].as_u64().unwrap() as usize;
        let k = case["k"].as_u64().unwrap() as usize;
        let folds = if case["labels"].is_null() {
            cv::kfold(n_rows, k, None).unwrap()
        } else {
            cv::stratified_kfold(&floats(&case["labels"]), k, None).unwrap()
        };
        let expected: Vec<Vec<usize>> = serde_json::from_value(case["test_folds"].clone()).unwrap();
        let test_folds: Vec<Vec<usize>> = folds.iter().map(|fold| fold.test.clone()).collect();
        assert_eq!(test_folds, expected, "{name}");
        for fold in &folds {
            let mut all: Vec<usize> = fold.train.iter().chain(&fold.test).copied().collect();
            all.sort_unstable();
            assert_eq!(
                all,
                (0..n_rows).collect::<Vec<_>>(),
                "{name}: train and test partition the rows"
            );
        }
    }
}
