//! Evaluation metrics for classifiers and regressors, computed as scikit-learn 1.7.2 computes them.
//!
//! Conventions shared by every function here:
//! - `weights` are optional per-row weights, sklearn's `sample_weight`; `None` weighs every row 1.
//! - Binary labels are `0.0` (negative) and `1.0` (positive); class labels are class ids `0.0, 1.0, …`.
//! - A binary classifier's `score` ranks rows: a threshold `t` predicts positive where `score >= t`.
//! - Slices passed together must have the same length: a mismatch is a programmer error and panics.
//! - Input that leaves a metric undefined (a label that is not a valid class, a probability outside `[0, 1]`, a
//!   non-finite score, no rows, zero total weight) gives `NaN` (an empty curve for the curve functions) instead of an
//!   error. [`check_binary_labels`] and [`check_class_labels`] turn bad labels into an error that names the row.
//!
//! Where sklearn computes in `float32` (log-loss clipping of `f32` probabilities) this module does the same, so the
//! results agree to rounding of the final `f64` sums.

use std::fmt::Write as _;

use ndarray::ArrayView2;

use crate::TrainError;

/// Checks that every label is a binary label, `0` or `1`.
///
/// # Errors
/// [`TrainError::Data`] for `channel`, naming the first offending row (0-based) and its value.
pub fn check_binary_labels(channel: &str, y_true: &[f32]) -> Result<(), TrainError> {
    match y_true
        .iter()
        .position(|&label| binary_label(label).is_none())
    {
        None => Ok(()),
        Some(row) => Err(TrainError::data(
            channel,
            format!(
                "row {row}: label {} is not a binary label (expected 0 or 1)",
                y_true[row]
            ),
        )),
    }
}

/// Checks that every label is a class id in `0..num_classes`.
///
/// # Errors
/// [`TrainError::Data`] for `channel`, naming the first offending row (0-based) and its value.
pub fn check_class_labels(
    channel: &str,
    y_true: &[f32],
    num_classes: usize,
) -> Result<(), TrainError> {
    match y_true
        .iter()
        .position(|&label| class_id(label, num_classes).is_none())
    {
        None => Ok(()),
        Some(row) => Err(TrainError::data(
            channel,
            format!(
                "row {row}: label {} is not a class id (expected an integer in 0..{num_classes})",
                y_true[row]
            ),
        )),
    }
}

fn binary_label(value: f32) -> Option<bool> {
    if value == 1.0 {
        Some(true)
    } else if value == 0.0 {
        Some(false)
    } else {
        None
    }
}

fn class_id(value: f32, num_classes: usize) -> Option<usize> {
    if value >= 0.0 && value.fract() == 0.0 && (value as f64) < num_classes as f64 {
        Some(value as usize)
    } else {
        None
    }
}

fn assert_rows(what: &str, expected: usize, actual: usize) {
    assert_eq!(
        expected, actual,
        "metrics: {what} has {actual} rows, y_true has {expected}"
    );
}

fn assert_weights(weights: Option<&[f32]>, rows: usize) {
    if let Some(weights) = weights {
        assert_rows("weights", rows, weights.len());
    }
}

fn weight_of(weights: Option<&[f32]>, row: usize) -> f64 {
    weights.map_or(1.0, |weights| weights[row] as f64)
}

/// `np.average(values, weights=weights)`: NaN for no rows or zero total weight.
fn average(rows: usize, weights: Option<&[f32]>, value: impl Fn(usize) -> f64) -> f64 {
    let (mut sum, mut total) = (0.0, 0.0);
    for row in 0..rows {
        let weight = weight_of(weights, row);
        sum += value(row) * weight;
        total += weight;
    }
    if total == 0.0 {
        f64::NAN
    } else {
        sum / total
    }
}

/// Returns `numerator / denominator`, or 0 when the denominator is 0 (sklearn's `zero_division=0`).
fn divide_or_zero(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 {
        0.0
    } else {
        numerator / denominator
    }
}

/// sklearn's F-beta from confusion counts: `(1 + β²)·tp / (β²·(tp + fn) + (tp + fp))`, 0 when undefined.
fn f_beta_from_counts(true_positive: f64, true_sum: f64, predicted_sum: f64, beta: f64) -> f64 {
    if beta.is_infinite() && beta > 0.0 {
        return divide_or_zero(true_positive, true_sum);
    }
    if beta == 0.0 {
        return divide_or_zero(true_positive, predicted_sum);
    }
    let beta2 = beta * beta;
    divide_or_zero(
        (1.0 + beta2) * true_positive,
        beta2 * true_sum + predicted_sum,
    )
}

/// Weighted counts of a classifier's predictions against the truth, `[true class][predicted class]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfusionMatrix {
    num_classes: usize,
    counts: Vec<f64>,
    rows_outside: usize,
}

impl ConfusionMatrix {
    /// Counts `(y_true[i], y_pred[i])` pairs, each weighing `weights[i]` (1 without weights).
    ///
    /// A row whose true or predicted label is not a class id in `0..num_classes` is left out of the counts, as
    /// sklearn's `confusion_matrix(labels=range(num_classes))` leaves it out; [`ConfusionMatrix::rows_outside`] says
    /// how many were. [`ConfusionMatrix::try_new`] refuses such rows instead.
    ///
    /// # Panics
    /// If `y_pred` or `weights` differ in length from `y_true`.
    pub fn new(
        y_true: &[f32],
        y_pred: &[f32],
        num_classes: usize,
        weights: Option<&[f32]>,
    ) -> ConfusionMatrix {
        assert_rows("y_pred", y_true.len(), y_pred.len());
        assert_weights(weights, y_true.len());
        let mut matrix = ConfusionMatrix {
            num_classes,
            counts: vec![0.0; num_classes * num_classes],
            rows_outside: 0,
        };
        for row in 0..y_true.len() {
            match (
                class_id(y_true[row], num_classes),
                class_id(y_pred[row], num_classes),
            ) {
                (Some(truth), Some(predicted)) => {
                    matrix.counts[truth * num_classes + predicted] += weight_of(weights, row)
                }
                _ => matrix.rows_outside += 1,
            }
        }
        matrix
    }

    /// As [`ConfusionMatrix::new`], but a label outside `0..num_classes` is an error.
    ///
    /// # Errors
    /// [`TrainError::Data`] for the channel `"evaluation"`, naming the first row whose true or predicted label is
    /// not a class id.
    ///
    /// # Panics
    /// If `y_pred` or `weights` differ in length from `y_true`.
    pub fn try_new(
        y_true: &[f32],
        y_pred: &[f32],
        num_classes: usize,
        weights: Option<&[f32]>,
    ) -> Result<ConfusionMatrix, TrainError> {
        assert_rows("y_pred", y_true.len(), y_pred.len());
        check_class_labels("evaluation", y_true, num_classes)?;
        if let Some(row) = y_pred
            .iter()
            .position(|&label| class_id(label, num_classes).is_none())
        {
            return Err(TrainError::data(
                "evaluation",
                format!(
                    "row {row}: predicted label {} is not a class id (expected an integer in 0..{num_classes})",
                    y_pred[row]
                ),
            ));
        }
        Ok(ConfusionMatrix::new(y_true, y_pred, num_classes, weights))
    }

    /// The number of classes, the matrix's side.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The number of rows left out because a label was not a class id in `0..num_classes`.
    pub fn rows_outside(&self) -> usize {
        self.rows_outside
    }

    /// The weighted count of rows of `true_class` predicted as `predicted_class`; NaN for a class out of range.
    pub fn count(&self, true_class: usize, predicted_class: usize) -> f64 {
        if true_class < self.num_classes && predicted_class < self.num_classes {
            self.counts[true_class * self.num_classes + predicted_class]
        } else {
            f64::NAN
        }
    }

    fn true_sum(&self, class: usize) -> f64 {
        (0..self.num_classes)
            .map(|predicted| self.count(class, predicted))
            .sum()
    }

    fn predicted_sum(&self, class: usize) -> f64 {
        (0..self.num_classes)
            .map(|truth| self.count(truth, class))
            .sum()
    }

    fn total(&self) -> f64 {
        self.counts.iter().sum()
    }

    fn trace(&self) -> f64 {
        (0..self.num_classes)
            .map(|class| self.count(class, class))
            .sum()
    }

    /// The weighted share of counted rows predicted correctly; NaN when the counted weight is 0.
    pub fn accuracy(&self) -> f64 {
        let total = self.total();
        if total == 0.0 {
            f64::NAN
        } else {
            self.trace() / total
        }
    }

    /// `tp / (tp + fp)` for `class`: 0 when nothing was predicted as `class` (sklearn's `zero_division=0`); NaN for a
    /// class out of range.
    pub fn precision(&self, class: usize) -> f64 {
        if class >= self.num_classes {
            return f64::NAN;
        }
        divide_or_zero(self.count(class, class), self.predicted_sum(class))
    }

    /// `tp / (tp + fn)` for `class`: 0 when no row is of `class`; NaN for a class out of range.
    pub fn recall(&self, class: usize) -> f64 {
        if class >= self.num_classes {
            return f64::NAN;
        }
        divide_or_zero(self.count(class, class), self.true_sum(class))
    }

    /// The F-beta score of `class` (`beta = 1` is F1; `beta = 0` is precision, `beta = ∞` recall), as sklearn's
    /// `fbeta_score(zero_division=0)`; NaN for a class out of range.
    pub fn f_beta(&self, class: usize, beta: f64) -> f64 {
        if class >= self.num_classes {
            return f64::NAN;
        }
        f_beta_from_counts(
            self.count(class, class),
            self.true_sum(class),
            self.predicted_sum(class),
            beta,
        )
    }

    fn macro_average(&self, per_class: impl Fn(usize) -> f64) -> f64 {
        if self.num_classes == 0 {
            return f64::NAN;
        }
        (0..self.num_classes).map(per_class).sum::<f64>() / self.num_classes as f64
    }

    /// The unweighted mean of every class's precision, classes absent from both truth and predictions included (as
    /// sklearn's `average="macro"` with `labels=range(num_classes)`).
    pub fn macro_precision(&self) -> f64 {
        self.macro_average(|class| self.precision(class))
    }

    /// The unweighted mean of every class's recall (see [`ConfusionMatrix::macro_precision`]).
    pub fn macro_recall(&self) -> f64 {
        self.macro_average(|class| self.recall(class))
    }

    /// The unweighted mean of every class's F-beta (see [`ConfusionMatrix::macro_precision`]).
    pub fn macro_f_beta(&self, beta: f64) -> f64 {
        self.macro_average(|class| self.f_beta(class, beta))
    }

    /// Precision from counts summed over classes (sklearn's `average="micro"`); equals accuracy for single-label
    /// classification, but is 0 rather than NaN when nothing was counted.
    pub fn micro_precision(&self) -> f64 {
        divide_or_zero(self.trace(), self.total())
    }

    /// Recall from counts summed over classes (sklearn's `average="micro"`).
    pub fn micro_recall(&self) -> f64 {
        divide_or_zero(self.trace(), self.total())
    }

    /// F-beta from counts summed over classes (sklearn's `average="micro"`).
    pub fn micro_f_beta(&self, beta: f64) -> f64 {
        let total = self.total();
        f_beta_from_counts(self.trace(), total, total, beta)
    }

    /// The matrix and per-class precision, recall, F1 and support as aligned text, for `tern evaluate`.
    pub fn to_table(&self) -> String {
        let whole = self.counts.iter().all(|count| count.fract() == 0.0);
        let format_count = |count: f64| {
            if whole {
                format!("{count:.0}")
            } else {
                format!("{count:.3}")
            }
        };
        let classes = self.num_classes;
        let cells: Vec<String> = self
            .counts
            .iter()
            .map(|&count| format_count(count))
            .collect();
        let width = cells
            .iter()
            .map(String::len)
            .chain([classes.saturating_sub(1).to_string().len(), 6])
            .max()
            .unwrap_or(6);
        let mut table = String::new();
        let _ = writeln!(
            table,
            "confusion matrix (rows: true class, columns: predicted class)"
        );
        let _ = write!(table, "{:>10}", "true\\pred");
        for class in 0..classes {
            let _ = write!(table, " {class:>width$}");
        }
        table.push('\n');
        for truth in 0..classes {
            let _ = write!(table, "{truth:>10}");
            for predicted in 0..classes {
                let _ = write!(table, " {:>width$}", cells[truth * classes + predicted]);
            }
            table.push('\n');
        }
        table.push('\n');
        let _ = writeln!(
            table,
            "{:>10} {:>9} {:>9} {:>9} {:>10}",
            "class", "precision", "recall", "f1", "support"
        );
        for class in 0..classes {
            let _ = writeln!(
                table,
                "{class:>10} {:>9.4} {:>9.4} {:>9.4} {:>10}",
                self.precision(class),
                self.recall(class),
                self.f_beta(class, 1.0),
                format_count(self.true_sum(class))
            );
        }
        let _ = writeln!(
            table,
            "{:>10} {:>9.4} {:>9.4} {:>9.4} {:>10}",
            "macro avg",
            self.macro_precision(),
            self.macro_recall(),
            self.macro_f_beta(1.0),
            format_count(self.total())
        );
        let _ = writeln!(table, "{:>10} {:>9.4}", "accuracy", self.accuracy());
        if self.rows_outside > 0 {
            let _ = writeln!(
                table,
                "({} rows with a label outside 0..{classes} not counted)",
                self.rows_outside
            );
        }
        table
    }
}

/// The weighted share of rows whose prediction equals the label exactly (sklearn's `accuracy_score`); NaN for no rows
/// or zero total weight.
///
/// # Panics
/// If `y_pred` or `weights` differ in length from `y_true`.
pub fn accuracy(y_true: &[f32], y_pred: &[f32], weights: Option<&[f32]>) -> f64 {
    assert_rows("y_pred", y_true.len(), y_pred.len());
    assert_weights(weights, y_true.len());
    average(y_true.len(), weights, |row| {
        f64::from(u8::from(y_true[row] == y_pred[row]))
    })
}

/// One point of a ROC curve: the rates of rows with `score >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RocPoint {
    pub threshold: f32,
    pub false_positive_rate: f64,
    pub true_positive_rate: f64,
}

/// One point of a precision-recall curve: precision and recall of predicting positive where `score >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrPoint {
    pub threshold: f32,
    pub precision: f64,
    pub recall: f64,
}

/// Cumulative weighted true and false positives at each distinct score, highest score first: sklearn's
/// `_binary_clf_curve`.
struct ThresholdCounts {
    thresholds: Vec<f32>,
    true_positives: Vec<f64>,
    false_positives: Vec<f64>,
}

impl ThresholdCounts {
    /// `None` when a label is not 0/1, a score is not finite, or no row has a nonzero weight.
    fn new(y_true: &[f32], score: &[f32], weights: Option<&[f32]>) -> Option<ThresholdCounts> {
        assert_rows("score", y_true.len(), score.len());
        assert_weights(weights, y_true.len());
        // sklearn drops zero-weight rows so that their scores do not become thresholds.
        let mut rows: Vec<usize> = (0..y_true.len())
            .filter(|&row| weight_of(weights, row) != 0.0)
            .collect();
        if rows.is_empty() {
            return None;
        }
        for &row in &rows {
            binary_label(y_true[row])?;
            if !score[row].is_finite() {
                return None;
            }
        }
        // sklearn: a stable ascending sort, reversed, so tied rows are visited in reverse row order.
        rows.sort_by(|&a, &b| score[a].partial_cmp(&score[b]).expect("scores are finite"));
        rows.reverse();
        let mut counts = ThresholdCounts {
            thresholds: Vec::new(),
            true_positives: Vec::new(),
            false_positives: Vec::new(),
        };
        let (mut true_positive, mut false_positive) = (0.0, 0.0);
        for (position, &row) in rows.iter().enumerate() {
            let weight = weight_of(weights, row);
            if y_true[row] == 1.0 {
                true_positive += weight;
            } else {
                false_positive += weight;
            }
            let last_of_tie = rows
                .get(position + 1)
                .is_none_or(|&next| score[next] != score[row]);
            if last_of_tie {
                counts.thresholds.push(score[row]);
                counts.true_positives.push(true_positive);
                counts.false_positives.push(if weights.is_some() {
                    false_positive
                } else {
                    1.0 + position as f64 - true_positive
                });
            }
        }
        Some(counts)
    }

    fn total_positive(&self) -> f64 {
        *self.true_positives.last().expect("at least one threshold")
    }

    fn total_negative(&self) -> f64 {
        *self.false_positives.last().expect("at least one threshold")
    }

    /// Precision and recall at each threshold as sklearn's `precision_recall_curve` computes them.
    fn precision_recall(&self, index: usize) -> (f64, f64) {
        let true_positive = self.true_positives[index];
        let precision = divide_or_zero(true_positive, true_positive + self.false_positives[index]);
        let total_positive = self.total_positive();
        let recall = if total_positive == 0.0 {
            1.0
        } else {
            true_positive / total_positive
        };
        (precision, recall)
    }
}

fn rates(counts: &[f64]) -> Vec<f64> {
    let total = *counts.last().expect("at least one count");
    counts
        .iter()
        .map(|&count| {
            if total <= 0.0 {
                f64::NAN
            } else {
                count / total
            }
        })
        .collect()
}

/// The ROC curve, one point per distinct score and a first point at threshold `+∞` (rates 0), as sklearn's
/// `roc_curve(drop_intermediate=False)`. A rate is NaN when the data have no rows of its class. Empty when a label
/// is not 0/1, a score is not finite, or no row has a nonzero weight; rows of weight 0 are ignored.
///
/// # Panics
/// If `score` or `weights` differ in length from `y_true`.
pub fn roc_curve(y_true: &[f32], score: &[f32], weights: Option<&[f32]>) -> Vec<RocPoint> {
    match ThresholdCounts::new(y_true, score, weights) {
        Some(counts) => roc_points(
            &counts.thresholds,
            &counts.false_positives,
            &counts.true_positives,
        ),
        None => Vec::new(),
    }
}

fn roc_points(
    thresholds: &[f32],
    false_positives: &[f64],
    true_positives: &[f64],
) -> Vec<RocPoint> {
    let false_positives: Vec<f64> = std::iter::once(0.0)
        .chain(false_positives.iter().copied())
        .collect();
    let true_positives: Vec<f64> = std::iter::once(0.0)
        .chain(true_positives.iter().copied())
        .collect();
    let thresholds = std::iter::once(f32::INFINITY).chain(thresholds.iter().copied());
    thresholds
        .zip(rates(&false_positives))
        .zip(rates(&true_positives))
        .map(
            |((threshold, false_positive_rate), true_positive_rate)| RocPoint {
                threshold,
                false_positive_rate,
                true_positive_rate,
            },
        )
        .collect()
}

/// Indices sklearn's `drop_intermediate=True` keeps: the ends and every corner of the (fp, tp) polyline.
fn corner_indices(false_positives: &[f64], true_positives: &[f64]) -> Vec<usize> {
    let n = false_positives.len();
    if n <= 2 {
        return (0..n).collect();
    }
    let second_difference =
        |values: &[f64], i: usize| (values[i + 2] - values[i + 1]) - (values[i + 1] - values[i]);
    let mut kept = vec![0];
    kept.extend(
        (0..n - 2)
            .filter(|&i| {
                second_difference(false_positives, i) != 0.0
                    || second_difference(true_positives, i) != 0.0
            })
            .map(|i| i + 1),
    );
    kept.push(n - 1);
    kept
}

/// sklearn's `auc(x, y)`: the trapezoidal area under a monotonic polyline; NaN when `x` is not monotonic or has
/// fewer than 2 points.
fn trapezoid_area(x: &[f64], y: &[f64]) -> f64 {
    if x.len() < 2 {
        return f64::NAN;
    }
    let steps: Vec<f64> = x.windows(2).map(|pair| pair[1] - pair[0]).collect();
    let direction = if steps.iter().any(|&step| step < 0.0) {
        if steps.iter().all(|&step| step <= 0.0) {
            -1.0
        } else {
            return f64::NAN;
        }
    } else {
        1.0
    };
    let area: f64 = steps
        .iter()
        .zip(y.windows(2))
        .map(|(&step, pair)| step * (pair[1] + pair[0]) / 2.0)
        .sum();
    direction * area
}

/// The area under the ROC curve, as sklearn's `roc_auc_score` (tied scores count half); NaN when `y_true` holds one
/// class only, when a label is not 0/1 or a score is not finite.
///
/// # Panics
/// If `score` or `weights` differ in length from `y_true`.
pub fn roc_auc(y_true: &[f32], score: &[f32], weights: Option<&[f32]>) -> f64 {
    let has_both = y_true.contains(&0.0) && y_true.contains(&1.0);
    let Some(counts) = ThresholdCounts::new(y_true, score, weights) else {
        return f64::NAN;
    };
    if !has_both {
        return f64::NAN;
    }
    let kept = corner_indices(&counts.false_positives, &counts.true_positives);
    let pick = |values: &[f64]| kept.iter().map(|&i| values[i]).collect::<Vec<f64>>();
    let thresholds: Vec<f32> = kept.iter().map(|&i| counts.thresholds[i]).collect();
    let points = roc_points(
        &thresholds,
        &pick(&counts.false_positives),
        &pick(&counts.true_positives),
    );
    let x: Vec<f64> = points
        .iter()
        .map(|point| point.false_positive_rate)
        .collect();
    let y: Vec<f64> = points
        .iter()
        .map(|point| point.true_positive_rate)
        .collect();
    trapezoid_area(&x, &y)
}

/// The precision-recall curve as sklearn's `precision_recall_curve`: one point per distinct score in increasing
/// threshold order (decreasing recall), then a last point `(precision 1, recall 0)` at threshold `+∞`, which sklearn
/// returns without a threshold. Precision is 0 where nothing is predicted positive; recall is 1 everywhere when the
/// data have no positive row. Empty when a label is not 0/1, a score is not finite, or no row has a nonzero weight.
///
/// # Panics
/// If `score` or `weights` differ in length from `y_true`.
pub fn precision_recall_curve(
    y_true: &[f32],
    score: &[f32],
    weights: Option<&[f32]>,
) -> Vec<PrPoint> {
    let Some(counts) = ThresholdCounts::new(y_true, score, weights) else {
        return Vec::new();
    };
    let mut points: Vec<PrPoint> = (0..counts.thresholds.len())
        .rev()
        .map(|index| {
            let (precision, recall) = counts.precision_recall(index);
            PrPoint {
                threshold: counts.thresholds[index],
                precision,
                recall,
            }
        })
        .collect();
    points.push(PrPoint {
        threshold: f32::INFINITY,
        precision: 1.0,
        recall: 0.0,
    });
    points
}

/// Average precision, `Σₙ (Rₙ − Rₙ₋₁)·Pₙ` over the precision-recall curve (sklearn's `average_precision_score`, the
/// usual "PR AUC"); NaN when the curve is empty (see [`precision_recall_curve`]).
///
/// # Panics
/// If `score` or `weights` differ in length from `y_true`.
pub fn average_precision(y_true: &[f32], score: &[f32], weights: Option<&[f32]>) -> f64 {
    let points = precision_recall_curve(y_true, score, weights);
    if points.is_empty() {
        return f64::NAN;
    }
    let sum: f64 = points
        .windows(2)
        .map(|pair| (pair[1].recall - pair[0].recall) * pair[0].precision)
        .sum();
    (-sum).max(0.0)
}

/// The trapezoidal area under the precision-recall curve, sklearn's `auc(recall, precision)`; NaN when the curve is
/// empty (see [`precision_recall_curve`]).
///
/// # Panics
/// If `score` or `weights` differ in length from `y_true`.
pub fn pr_auc_trapezoid(y_true: &[f32], score: &[f32], weights: Option<&[f32]>) -> f64 {
    let points = precision_recall_curve(y_true, score, weights);
    let recall: Vec<f64> = points.iter().map(|point| point.recall).collect();
    let precision: Vec<f64> = points.iter().map(|point| point.precision).collect();
    trapezoid_area(&recall, &precision)
}

/// sklearn clips probabilities to `[ε, 1 − ε]` in the probabilities' own type, `f32` here.
fn clipped_log(probability: f32) -> f64 {
    let epsilon = f32::EPSILON;
    f64::from(probability.clamp(epsilon, 1.0 - epsilon)).ln()
}

fn is_probability(value: f32) -> bool {
    (0.0..=1.0).contains(&value)
}

/// Binary cross-entropy of `probability` (of the positive class) against 0/1 labels, as sklearn's `log_loss` with
/// `labels=[0, 1]`: `1 − p` and the clip to `[ε, 1 − ε]` are taken in `f32` with `ε = f32::EPSILON`, as sklearn 1.7
/// does for `float32` input. NaN when a label is not 0/1, a probability is outside `[0, 1]`, or the total weight is 0.
///
/// # Panics
/// If `probability` or `weights` differ in length from `y_true`.
pub fn log_loss_binary(y_true: &[f32], probability: &[f32], weights: Option<&[f32]>) -> f64 {
    assert_rows("probability", y_true.len(), probability.len());
    assert_weights(weights, y_true.len());
    average(y_true.len(), weights, |row| {
        let p = probability[row];
        match binary_label(y_true[row]) {
            _ if !is_probability(p) => f64::NAN,
            Some(true) => -clipped_log(p),
            Some(false) => -clipped_log(1.0 - p),
            None => f64::NAN,
        }
    })
}

/// Cross-entropy of per-class `probabilities` (rows × classes) against class ids, as sklearn's `log_loss` with
/// `labels=range(classes)`: each probability is clipped to `[ε, 1 − ε]` in `f32`; rows need not sum to 1 (sklearn
/// only warns). NaN when a label is not a class id, a probability is outside `[0, 1]`, there are fewer than two
/// classes, or the total weight is 0.
///
/// # Panics
/// If `probabilities` or `weights` differ in rows from `y_true`.
pub fn log_loss_multiclass(
    y_true: &[f32],
    probabilities: ArrayView2<f32>,
    weights: Option<&[f32]>,
) -> f64 {
    assert_rows("probabilities", y_true.len(), probabilities.nrows());
    assert_weights(weights, y_true.len());
    let classes = probabilities.ncols();
    if classes < 2 || !probabilities.iter().all(|&p| is_probability(p)) {
        return f64::NAN;
    }
    average(y_true.len(), weights, |row| {
        match class_id(y_true[row], classes) {
            Some(class) => -clipped_log(probabilities[[row, class]]),
            None => f64::NAN,
        }
    })
}

/// The weighted share of rows whose class is among the `k` highest `scores` (rows × classes) of that row, as
/// sklearn's `top_k_accuracy_score` for multiclass scores: among tied scores the higher class id ranks first. NaN
/// when `k` is 0, a label is not a class id, a score is NaN, or the total weight is 0.
///
/// # Panics
/// If `scores` or `weights` differ in rows from `y_true`.
pub fn top_k_accuracy(
    y_true: &[f32],
    scores: ArrayView2<f32>,
    k: usize,
    weights: Option<&[f32]>,
) -> f64 {
    assert_rows("scores", y_true.len(), scores.nrows());
    assert_weights(weights, y_true.len());
    if k == 0 || scores.iter().any(|score| score.is_nan()) {
        return f64::NAN;
    }
    let classes = scores.ncols();
    average(y_true.len(), weights, |row| {
        let Some(class) = class_id(y_true[row], classes) else {
            return f64::NAN;
        };
        let scores = scores.row(row);
        let own = scores[class];
        let ranked_above = scores
            .iter()
            .enumerate()
            .filter(|&(other, &score)| score > own || (score == own && other > class))
            .count();
        f64::from(u8::from(ranked_above < k))
    })
}

fn regression_rows(y_true: &[f32], y_pred: &[f32], weights: Option<&[f32]>) {
    assert_rows("y_pred", y_true.len(), y_pred.len());
    assert_weights(weights, y_true.len());
}

/// Mean squared error (sklearn's `mean_squared_error`); NaN for no rows or zero total weight.
///
/// # Panics
/// If `y_pred` or `weights` differ in length from `y_true`.
pub fn mse(y_true: &[f32], y_pred: &[f32], weights: Option<&[f32]>) -> f64 {
    regression_rows(y_true, y_pred, weights);
    average(y_true.len(), weights, |row| {
        let error = f64::from(y_true[row]) - f64::from(y_pred[row]);
        error * error
    })
}

/// Root mean squared error, `√mse` (sklearn's `root_mean_squared_error`).
///
/// # Panics
/// If `y_pred` or `weights` differ in length from `y_true`.
pub fn rmse(y_true: &[f32], y_pred: &[f32], weights: Option<&[f32]>) -> f64 {
    mse(y_true, y_pred, weights).sqrt()
}

/// Mean absolute error (sklearn's `mean_absolute_error`); NaN for no rows or zero total weight.
///
/// # Panics
/// If `y_pred` or `weights` differ in length from `y_true`.
pub fn mae(y_true: &[f32], y_pred: &[f32], weights: Option<&[f32]>) -> f64 {
    regression_rows(y_true, y_pred, weights);
    average(y_true.len(), weights, |row| {
        (f64::from(y_true[row]) - f64::from(y_pred[row])).abs()
    })
}

/// The coefficient of determination (sklearn's `r2_score`, `force_finite=True`): `1 − SSres/SStot`; 1 for perfect
/// predictions, 0 for imperfect predictions of a constant target; NaN for fewer than two rows.
///
/// # Panics
/// If `y_pred` or `weights` differ in length from `y_true`.
pub fn r2(y_true: &[f32], y_pred: &[f32], weights: Option<&[f32]>) -> f64 {
    regression_rows(y_true, y_pred, weights);
    if y_true.len() < 2 {
        return f64::NAN;
    }
    let mean = average(y_true.len(), weights, |row| f64::from(y_true[row]));
    let (mut residual, mut total) = (0.0, 0.0);
    for row in 0..y_true.len() {
        let weight = weight_of(weights, row);
        let error = f64::from(y_true[row]) - f64::from(y_pred[row]);
        let spread = f64::from(y_true[row]) - mean;
        residual += weight * error * error;
        total += weight * spread * spread;
    }
    match (residual == 0.0, total == 0.0) {
        (true, _) => 1.0,
        (false, true) => 0.0,
        (false, false) => 1.0 - residual / total,
    }
}

/// The highest precision among thresholds whose recall is at least `target_recall`, and that threshold (ties go to
/// the higher recall). Thresholds are the distinct scores (see [`precision_recall_curve`]; its `+∞` end point is not
/// a candidate). `(NaN, NaN)` when no threshold reaches the target, the data have no positive row, or the curve is
/// empty.
///
/// # Panics
/// If `score` or `weights` differ in length from `y_true`.
pub fn precision_at_recall(
    y_true: &[f32],
    score: &[f32],
    target_recall: f64,
    weights: Option<&[f32]>,
) -> (f64, f32) {
    best_operating_point(y_true, score, weights, |precision, recall| {
        (recall >= target_recall).then_some((precision, recall))
    })
    .map_or((f64::NAN, f32::NAN), |(threshold, (precision, _))| {
        (precision, threshold)
    })
}

/// The highest recall among thresholds whose precision is at least `target_precision`, and that threshold (ties go
/// to the higher precision); otherwise as [`precision_at_recall`].
///
/// # Panics
/// If `score` or `weights` differ in length from `y_true`.
pub fn recall_at_precision(
    y_true: &[f32],
    score: &[f32],
    target_precision: f64,
    weights: Option<&[f32]>,
) -> (f64, f32) {
    best_operating_point(y_true, score, weights, |precision, recall| {
        (precision >= target_precision).then_some((recall, precision))
    })
    .map_or((f64::NAN, f32::NAN), |(threshold, (recall, _))| {
        (recall, threshold)
    })
}

/// Among the curve's thresholds, the one whose `rank(precision, recall)` is greatest (lexicographically); `None`
/// when no threshold is ranked, the curve is empty, or no row is positive.
fn best_operating_point(
    y_true: &[f32],
    score: &[f32],
    weights: Option<&[f32]>,
    rank: impl Fn(f64, f64) -> Option<(f64, f64)>,
) -> Option<(f32, (f64, f64))> {
    let counts = ThresholdCounts::new(y_true, score, weights)?;
    if counts.total_positive() <= 0.0 {
        return None;
    }
    let mut best: Option<(f32, (f64, f64))> = None;
    for index in 0..counts.thresholds.len() {
        let (precision, recall) = counts.precision_recall(index);
        if let Some(key) = rank(precision, recall) {
            if best.is_none_or(|(_, best_key)| {
                key.0 > best_key.0 || (key.0 == best_key.0 && key.1 > best_key.1)
            }) {
                best = Some((counts.thresholds[index], key));
            }
        }
    }
    best
}

/// What [`best_threshold`] maximises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdCriterion {
    /// Weighted accuracy of `score >= threshold` as the positive prediction.
    Accuracy,
    /// F-beta of the positive class (`FBeta(1.0)` is F1).
    FBeta(f64),
    /// Precision, among thresholds whose recall is at least the target (see [`precision_at_recall`]).
    PrecisionAtRecall(f64),
    /// Recall, among thresholds whose precision is at least the target (see [`recall_at_precision`]).
    RecallAtPrecision(f64),
}

/// The cutoff that maximises `criterion` when rows with `score >= threshold` are predicted positive, and the
/// criterion's value there: for calibrating a binary classifier. Candidates are `+∞` (predict nothing positive) and
/// every distinct score; ties go to the highest threshold for `Accuracy` and `FBeta`, and as
/// [`precision_at_recall`] / [`recall_at_precision`] say for the other two. `(NaN, NaN)` when the curve is empty (see
/// [`precision_recall_curve`]) or no threshold qualifies.
///
/// # Panics
/// If `score` or `weights` differ in length from `y_true`.
pub fn best_threshold(
    y_true: &[f32],
    score: &[f32],
    criterion: ThresholdCriterion,
    weights: Option<&[f32]>,
) -> (f32, f64) {
    let swap = |(value, threshold): (f64, f32)| (threshold, value);
    let value_at: Box<dyn Fn(f64, f64, f64, f64) -> f64> = match criterion {
        ThresholdCriterion::PrecisionAtRecall(target) => {
            return swap(precision_at_recall(y_true, score, target, weights))
        }
        ThresholdCriterion::RecallAtPrecision(target) => {
            return swap(recall_at_precision(y_true, score, target, weights))
        }
        ThresholdCriterion::Accuracy => {
            Box::new(|true_positive, false_positive, positive, negative| {
                let total = positive + negative;
                if total == 0.0 {
                    f64::NAN
                } else {
                    (true_positive + (negative - false_positive)) / total
                }
            })
        }
        ThresholdCriterion::FBeta(beta) => {
            Box::new(move |true_positive, false_positive, positive, _| {
                f_beta_from_counts(
                    true_positive,
                    positive,
                    true_positive + false_positive,
                    beta,
                )
            })
        }
    };
    let Some(counts) = ThresholdCounts::new(y_true, score, weights) else {
        return (f32::NAN, f64::NAN);
    };
    let (positive, negative) = (counts.total_positive(), counts.total_negative());
    let mut best = (f32::INFINITY, value_at(0.0, 0.0, positive, negative));
    for index in 0..counts.thresholds.len() {
        let value = value_at(
            counts.true_positives[index],
            counts.false_positives[index],
            positive,
            negative,
        );
        if value > best.1 || best.1.is_nan() {
            best = (counts.thresholds[index], value);
        }
    }
    if best.1.is_nan() {
        (f32::NAN, f64::NAN)
    } else {
        best
    }
}

#[cfg(test)]
mod tests {
    //! Edge cases; expected values quoted from scikit-learn 1.7.2 where sklearn defines them.

    use super::*;
    use ndarray::array;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0)
    }

    #[test]
    fn one_class_only_gives_nan_auc() {
        let score = [0.1, 0.7, 0.3];
        assert!(roc_auc(&[1.0, 1.0, 1.0], &score, None).is_nan());
        assert!(roc_auc(&[0.0, 0.0, 0.0], &score, None).is_nan());
        // The other class present only with weight 0 leaves one class: NaN too.
        assert!(roc_auc(&[0.0, 1.0, 0.0], &score, Some(&[1.0, 0.0, 1.0])).is_nan());
        // sklearn: average_precision_score([0,0,0], …) = 0.0, ([1,1,1], …) = 1.0.
        assert_eq!(average_precision(&[0.0, 0.0, 0.0], &score, None), 0.0);
        assert_eq!(average_precision(&[1.0, 1.0, 1.0], &score, None), 1.0);
        let roc = roc_curve(&[1.0, 1.0, 1.0], &score, None);
        assert!(roc.iter().all(|point| point.false_positive_rate.is_nan()));
    }

    #[test]
    fn all_equal_scores_give_one_threshold() {
        let y_true = [0.0, 1.0, 0.0, 1.0, 1.0];
        let score = [0.5; 5];
        let roc = roc_curve(&y_true, &score, None);
        assert_eq!(
            roc,
            vec![
                RocPoint {
                    threshold: f32::INFINITY,
                    false_positive_rate: 0.0,
                    true_positive_rate: 0.0
                },
                RocPoint {
                    threshold: 0.5,
                    false_positive_rate: 1.0,
                    true_positive_rate: 1.0
                },
            ]
        );
        assert_eq!(roc_auc(&y_true, &score, None), 0.5);
        let pr = precision_recall_curve(&y_true, &score, None);
        assert_eq!(
            pr,
            vec![
                PrPoint {
                    threshold: 0.5,
                    precision: 0.6,
                    recall: 1.0
                },
                PrPoint {
                    threshold: f32::INFINITY,
                    precision: 1.0,
                    recall: 0.0
                },
            ]
        );
        // sklearn: average_precision_score = 0.6 (the prevalence).
        assert!(close(average_precision(&y_true, &score, None), 0.6));
        // Predicting everything positive beats predicting nothing: accuracy 0.6 at 0.5.
        assert_eq!(
            best_threshold(&y_true, &score, ThresholdCriterion::Accuracy, None),
            (0.5, 0.6)
        );
    }

    #[test]
    fn tied_scores_count_half() {
        // sklearn: roc_auc_score = 0.8333…, and 0.7321428571428571 with sample_weight=[1, 2, 0.5, 3, 1].
        let y_true = [0.0, 1.0, 1.0, 0.0, 1.0];
        let score = [0.1, 0.4, 0.4, 0.4, 0.9];
        assert!(close(roc_auc(&y_true, &score, None), 5.0 / 6.0));
        assert!(close(
            roc_auc(&y_true, &score, Some(&[1.0, 2.0, 0.5, 3.0, 1.0])),
            0.7321428571428571
        ));
    }

    #[test]
    fn zero_weight_rows_are_as_if_absent() {
        let y_true = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0];
        let score = [0.1, 0.4, 0.35, 0.8, 0.9, 0.2];
        let weights = [1.0, 2.0, 0.0, 1.5, 1.0, 0.0];
        let kept = [0, 1, 3, 4];
        let y_kept: Vec<f32> = kept.iter().map(|&i| y_true[i]).collect();
        let score_kept: Vec<f32> = kept.iter().map(|&i| score[i]).collect();
        let weights_kept: Vec<f32> = kept.iter().map(|&i| weights[i]).collect();
        let (all, some) = (Some(&weights[..]), Some(&weights_kept[..]));
        assert_eq!(
            roc_curve(&y_true, &score, all),
            roc_curve(&y_kept, &score_kept, some)
        );
        assert!(roc_curve(&y_true, &score, all)
            .iter()
            .all(|point| point.threshold != 0.35));
        assert_eq!(
            precision_recall_curve(&y_true, &score, all),
            precision_recall_curve(&y_kept, &score_kept, some)
        );
        assert_eq!(
            roc_auc(&y_true, &score, all),
            roc_auc(&y_kept, &score_kept, some)
        );
        assert_eq!(
            log_loss_binary(&y_true, &score, all),
            log_loss_binary(&y_kept, &score_kept, some)
        );
        assert_eq!(mse(&y_true, &score, all), mse(&y_kept, &score_kept, some));
        assert_eq!(
            best_threshold(&y_true, &score, ThresholdCriterion::FBeta(1.0), all),
            best_threshold(&y_kept, &score_kept, ThresholdCriterion::FBeta(1.0), some)
        );
        // Nothing weighs anything: undefined.
        let zero = [0.0; 6];
        assert!(roc_curve(&y_true, &score, Some(&zero)).is_empty());
        assert!(roc_auc(&y_true, &score, Some(&zero)).is_nan());
        assert!(accuracy(&y_true, &y_true, Some(&zero)).is_nan());
        assert!(mse(&y_true, &score, Some(&zero)).is_nan());
        assert!(
            best_threshold(&y_true, &score, ThresholdCriterion::Accuracy, Some(&zero))
                .1
                .is_nan()
        );
    }

    #[test]
    fn bad_labels_and_scores_give_nan_not_panics() {
        let score = [0.2, 0.8, 0.5];
        assert!(roc_auc(&[0.0, 2.0, 1.0], &score, None).is_nan());
        assert!(roc_curve(&[0.0, 1.0, 1.0], &[0.2, f32::NAN, 0.5], None).is_empty());
        assert!(average_precision(&[0.0, 1.0, 1.0], &[0.2, f32::INFINITY, 0.5], None).is_nan());
        assert!(log_loss_binary(&[0.0, 1.0, 0.5], &score, None).is_nan());
        assert!(log_loss_binary(&[0.0, 1.0, 1.0], &[0.2, 1.5, 0.5], None).is_nan());
        let probabilities = array![[0.2f32, 0.8], [0.6, 0.4]];
        assert!(log_loss_multiclass(&[0.0, 2.0], probabilities.view(), None).is_nan());
        assert!(top_k_accuracy(&[0.0, -1.0], probabilities.view(), 1, None).is_nan());
        assert!(top_k_accuracy(&[0.0, 1.0], probabilities.view(), 0, None).is_nan());
        let error = check_binary_labels("validation", &[0.0, 1.0, 0.5])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("validation") && error.contains("row 2") && error.contains("0.5"),
            "{error}"
        );
        let error = check_class_labels("test", &[0.0, 3.0], 3)
            .unwrap_err()
            .to_string();
        assert!(error.contains("row 1") && error.contains("0..3"), "{error}");
        assert!(check_class_labels("test", &[0.0, 2.0, 1.0], 3).is_ok());
    }

    #[test]
    #[should_panic(expected = "score has 2 rows, y_true has 3")]
    fn mismatched_lengths_are_a_programmer_error() {
        roc_auc(&[0.0, 1.0, 1.0], &[0.1, 0.2], None);
    }

    #[test]
    fn log_loss_clips_with_f32_epsilon() {
        // sklearn: log_loss(float32 [1, 0], float32 [0, 1]) = 15.942385152878742 = −ln(f32 ε).
        let loss = log_loss_binary(&[1.0, 0.0], &[0.0, 1.0], None);
        assert!(close(loss, 15.942385152878742));
        assert!(close(
            log_loss_binary(&[1.0, 0.0], &[1.0, 0.0], None),
            -f64::from(1.0 - f32::EPSILON).ln()
        ));
        let probabilities = array![[0.0f32, 1.0], [0.25, 0.75]];
        let expected = (15.942385152878742 - 0.75f64.ln()) / 2.0;
        assert!(close(
            log_loss_multiclass(&[0.0, 1.0], probabilities.view(), None),
            expected
        ));
    }

    #[test]
    fn top_k_ties_rank_the_higher_class_first() {
        // sklearn: top_k_accuracy_score([0, 1, 2], …, k=1) = 2/3.
        let scores = array![[0.5f32, 0.5, 0.0], [0.5, 0.5, 0.0], [0.2, 0.4, 0.4]];
        assert!(close(
            top_k_accuracy(&[0.0, 1.0, 2.0], scores.view(), 1, None),
            2.0 / 3.0
        ));
        assert_eq!(
            top_k_accuracy(&[0.0, 1.0, 2.0], scores.view(), 2, None),
            1.0
        );
        assert_eq!(
            top_k_accuracy(&[0.0, 1.0, 2.0], scores.view(), 7, None),
            1.0
        );
    }

    #[test]
    fn r2_of_a_constant_target_is_finite() {
        // sklearn: r2_score([1,1,1],[1,1,1]) = 1.0, r2_score([1,1,1],[1,2,1]) = 0.0.
        assert_eq!(r2(&[1.0, 1.0, 1.0], &[1.0, 1.0, 1.0], None), 1.0);
        assert_eq!(r2(&[1.0, 1.0, 1.0], &[1.0, 2.0, 1.0], None), 0.0);
        assert!(r2(&[1.0], &[1.0], None).is_nan());
        assert!(close(r2(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0], None), 0.5));
        assert!(close(rmse(&[0.0, 0.0], &[3.0, 4.0], None), 12.5f64.sqrt()));
        assert!(close(
            mae(&[0.0, 0.0], &[3.0, -4.0], Some(&[1.0, 3.0])),
            3.75
        ));
    }

    #[test]
    fn confusion_matrix_counts_and_zero_division() {
        let y_true = [0.0, 0.0, 1.0, 1.0, 2.0, 2.0];
        let y_pred = [0.0, 1.0, 1.0, 1.0, 1.0, 5.0];
        let matrix =
            ConfusionMatrix::new(&y_true, &y_pred, 3, Some(&[1.0, 1.0, 1.0, 0.5, 1.0, 1.0]));
        assert_eq!(matrix.rows_outside(), 1);
        assert_eq!(matrix.count(0, 0), 1.0);
        assert_eq!(matrix.count(1, 1), 1.5);
        assert_eq!(matrix.count(2, 1), 1.0);
        assert!(matrix.count(3, 0).is_nan());
        assert_eq!(matrix.precision(2), 0.0, "nothing predicted as 2");
        assert_eq!(matrix.recall(2), 0.0);
        assert_eq!(matrix.f_beta(2, 1.0), 0.0);
        assert!(close(matrix.precision(1), 1.5 / 3.5));
        assert_eq!(matrix.f_beta(1, 0.0), matrix.precision(1));
        assert_eq!(matrix.f_beta(1, f64::INFINITY), matrix.recall(1));
        assert!(close(matrix.accuracy(), 2.5 / 4.5));
        assert!(close(matrix.micro_f_beta(1.0), matrix.accuracy()));
        assert!(matrix.precision(3).is_nan());
        let table = matrix.to_table();
        assert!(
            table.contains("true\\pred") && table.contains("precision") && table.contains("1.500"),
            "{table}"
        );
        assert!(
            table.contains("1 rows with a label outside 0..3"),
            "{table}"
        );
        let error = ConfusionMatrix::try_new(&y_true, &y_pred, 3, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("row 5") && error.contains("predicted label 5"),
            "{error}"
        );
        assert!(ConfusionMatrix::try_new(&y_true, &y_true, 3, None).is_ok());
        let empty = ConfusionMatrix::new(&[], &[], 2, None);
        assert!(empty.accuracy().is_nan());
        assert_eq!(empty.micro_precision(), 0.0);
    }

    #[test]
    fn operating_points_follow_the_documented_ties() {
        let y_true = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0];
        let score = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
        // Recall ≥ 2/3 first at 0.8 (precision 1).
        assert_eq!(precision_at_recall(&y_true, &score, 0.6, None), (1.0, 0.8));
        assert_eq!(precision_at_recall(&y_true, &score, 1.0, None), (0.75, 0.6));
        let (precision, threshold) = precision_at_recall(&y_true, &score, 1.5, None);
        assert!(precision.is_nan() && threshold.is_nan());
        assert_eq!(recall_at_precision(&y_true, &score, 0.75, None), (1.0, 0.6));
        assert_eq!(
            recall_at_precision(&y_true, &score, 1.0, None),
            (2.0 / 3.0, 0.8)
        );
        // Accuracy 5/6 at 0.8 and at 0.6: the higher threshold wins.
        assert_eq!(
            best_threshold(&y_true, &score, ThresholdCriterion::Accuracy, None),
            (0.8, 5.0 / 6.0)
        );
        assert_eq!(
            best_threshold(&y_true, &score, ThresholdCriterion::FBeta(1.0), None),
            (0.6, 6.0 / 7.0)
        );
        let (threshold, value) =
            best_threshold(&[0.0, 0.0], &[0.3, 0.4], ThresholdCriterion::Accuracy, None);
        assert_eq!(
            (threshold, value),
            (f32::INFINITY, 1.0),
            "no positives: predict nothing"
        );
    }
}
