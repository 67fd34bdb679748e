//! A cell's verdict: a runtime's predictions against the trainer's, under the pass criteria every column shares.
//!
//! fp32: every score within 1e-5 relative (|package − trainer| ≤ 1e-5 · max(|trainer|, 1)) and identical labels;
//! f16 / int8: every score within the manifest's verified tolerance (|Δ| ≤ max(absolute, relative · |trainer|)) and
//! label agreement at least the manifest's.

use tern_runtime::Precision;
use tern_trainer::Predictions;

/// A runtime's predictions: flattened scores (rows × columns) and labels for classifiers.
pub struct RuntimePredictions {
    pub scores: Vec<f32>,
    pub labels: Option<Vec<i64>>,
}

/// One cell of the matrix.
pub struct Cell {
    pub max_abs_diff: f64,
    pub label_agreement: Option<f64>,
    pub pass: bool,
    /// An [`crate::cases::IGNORED`] cell: printed as N/A with its reason, neither a pass nor a failure.
    pub not_applicable: bool,
    pub note: String,
}

impl Cell {
    /// A cell whose runtime failed before there was anything to compare, with `note` saying why.
    pub fn failed(note: String) -> Cell {
        Cell {
            max_abs_diff: f64::NAN,
            label_agreement: None,
            pass: false,
            not_applicable: false,
            note,
        }
    }

    /// A cell whose runtime is missing here (no node or wasm build, no GPU adapter): printed as `not run` with
    /// `why`; a failure when `TERN_CONFORMANCE_REQUIRE_ALL` is set (non-empty, not 0), as the CI test command sets
    /// it, so a broken setup cannot pass as a skipped column.
    pub fn not_run(why: &str) -> Cell {
        let required = std::env::var("TERN_CONFORMANCE_REQUIRE_ALL")
            .map(|v| !v.is_empty() && v != "0")
            .unwrap_or(false);
        Cell {
            max_abs_diff: 0.0,
            label_agreement: None,
            pass: !required,
            not_applicable: false,
            note: format!("not run: {why}"),
        }
    }

    /// A cell [`crate::cases::IGNORED`] lists: N/A, with `reason`.
    pub fn not_applicable(reason: String) -> Cell {
        Cell {
            max_abs_diff: f64::NAN,
            label_agreement: None,
            pass: false,
            not_applicable: true,
            note: format!("N/A: {reason}"),
        }
    }

    /// A cell whose graph the column's backend refuses, so the runtimes run it on `on` instead (`refused` names the
    /// op): a pass, since that fallback is the runtimes' contract, printed as `fallback (CPU)`.
    pub fn fallback(on: &str, refused: &str) -> Cell {
        Cell {
            max_abs_diff: 0.0,
            label_agreement: None,
            pass: true,
            not_applicable: false,
            note: format!("fallback to the {on}: {refused}"),
        }
    }

    /// Whether the cell counts as a failure (N/A cells never do).
    pub fn is_failure(&self) -> bool {
        !self.pass && !self.not_applicable
    }
}

/// Compares a runtime's predictions with the trainer's (`rows` rows) under `precision`'s criteria.
pub fn compare(
    trainer: &Predictions,
    runtime: &RuntimePredictions,
    precision: Precision,
    tolerance: &tern_runtime::Tolerance,
    rows: usize,
) -> Cell {
    let expected: Vec<f32> = trainer.scores.iter().copied().collect();
    if expected.len() != runtime.scores.len() {
        return Cell::failed(format!(
            "{} scores, the trainer has {}",
            runtime.scores.len(),
            expected.len()
        ));
    }
    let mut max_abs_diff = 0f64;
    let mut within = true;
    for (&have, &want) in runtime.scores.iter().zip(&expected) {
        let (have, want) = (have as f64, want as f64);
        let diff = (have - want).abs();
        let diff = if have.is_nan() || want.is_nan() {
            f64::INFINITY
        } else {
            diff
        };
        max_abs_diff = max_abs_diff.max(diff);
        let allowed = match precision {
            Precision::Fp32 => 1e-5 * want.abs().max(1.0),
            _ => tolerance.absolute.max(tolerance.relative * want.abs()),
        };
        within &= diff <= allowed;
    }
    let trainer_labels = trainer_labels(trainer);
    let label_agreement = trainer_labels.as_ref().map(|want| {
        let have = runtime
            .labels
            .clone()
            .unwrap_or_else(|| labels_from_scores(&runtime.scores, rows));
        let same = have.iter().zip(want).filter(|(a, b)| a == b).count();
        same as f64 / want.len().max(1) as f64
    });
    let labels_ok = match (precision, label_agreement) {
        (_, None) => true,
        (Precision::Fp32, Some(agreement)) => agreement == 1.0,
        (_, Some(agreement)) => agreement >= tolerance.label_agreement,
    };
    Cell {
        max_abs_diff,
        label_agreement,
        pass: within && labels_ok,
        not_applicable: false,
        note: String::new(),
    }
}

fn trainer_labels(predictions: &Predictions) -> Option<Vec<i64>> {
    predictions
        .predicted_label
        .as_ref()
        .map(|labels| labels.iter().map(|&l| l as i64).collect())
}

/// Labels from scores where the graph has no label output: argmax over columns, else score > 0.5 (binary).
fn labels_from_scores(scores: &[f32], rows: usize) -> Vec<i64> {
    let columns = scores.len() / rows.max(1);
    scores
        .chunks(columns.max(1))
        .map(|row| {
            if columns == 1 {
                (row[0] > 0.5) as i64
            } else {
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                        if v > bv {
                            (i, v)
                        } else {
                            (bi, bv)
                        }
                    })
                    .0 as i64
            }
        })
        .collect()
}
