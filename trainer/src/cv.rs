//! k-fold cross-validation splits, laid out as scikit-learn 1.7.2's `KFold` and `StratifiedKFold` lay them out.
//!
//! Without a seed the folds equal sklearn's exactly. With a seed, rows (or, stratified, each class's fold
//! assignments) are shuffled by a [`ChaCha8Rng`] seeded from it: the same seed gives the same folds on every
//! machine, though not sklearn's (which shuffles with NumPy's generator).

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::TrainError;

/// One cross-validation split: row indices to train on and to test on, each ascending, together every row once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

fn check_fold_count(n_rows: usize, k: usize) -> Result<(), TrainError> {
    if k < 2 {
        return Err(TrainError::Config(format!(
            "cross-validation needs at least 2 folds, got k = {k}"
        )));
    }
    if k > n_rows {
        return Err(TrainError::Config(format!(
            "cannot split {n_rows} rows into k = {k} folds: every fold needs at least one test row"
        )));
    }
    Ok(())
}

/// The folds for a test-fold number per row.
fn folds_from_assignment(test_fold: &[usize], k: usize) -> Vec<Fold> {
    (0..k)
        .map(|fold| {
            let (test, train) = (0..test_fold.len()).partition(|&row| test_fold[row] == fold);
            Fold { train, test }
        })
        .collect()
}

/// Splits rows `0..n_rows` into `k` folds of consecutive rows (after shuffling when `shuffle_seed` is given); the
/// first `n_rows % k` folds hold one row more than the others, as sklearn's `KFold`.
///
/// # Errors
/// [`TrainError::Config`] when `k < 2` or `k > n_rows`.
pub fn kfold(n_rows: usize, k: usize, shuffle_seed: Option<u64>) -> Result<Vec<Fold>, TrainError> {
    check_fold_count(n_rows, k)?;
    let mut order: Vec<usize> = (0..n_rows).collect();
    if let Some(seed) = shuffle_seed {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    }
    let mut test_fold = vec![0; n_rows];
    let mut start = 0;
    for fold in 0..k {
        let size = n_rows / k + usize::from(fold < n_rows % k);
        for &row in &order[start..start + size] {
            test_fold[row] = fold;
        }
        start += size;
    }
    Ok(folds_from_assignment(&test_fold, k))
}

/// Splits rows into `k` folds that keep each class's share: every class's rows are spread over the folds so that
/// its count in any two test folds differs by at most one, and fold sizes differ by at most one, as sklearn's
/// `StratifiedKFold`. Classes are the distinct label values. With `shuffle_seed`, which of a class's rows go to
/// which fold is shuffled (the fold sizes stay the same).
///
/// # Errors
/// [`TrainError::Config`] when `k < 2` or `k` exceeds the rows, a label is NaN or infinite (naming the row), or a
/// class has fewer than `k` rows (naming the class and its count).
pub fn stratified_kfold(
    labels: &[f32],
    k: usize,
    shuffle_seed: Option<u64>,
) -> Result<Vec<Fold>, TrainError> {
    check_fold_count(labels.len(), k)?;
    if let Some(row) = labels.iter().position(|label| !label.is_finite()) {
        return Err(TrainError::Config(format!(
            "stratified cross-validation: row {row} has label {}, expected a finite class label",
            labels[row]
        )));
    }
    // Classes numbered in order of first appearance, as sklearn encodes them; -0 and +0 are one class.
    let mut class_of_bits: HashMap<u32, usize> = HashMap::new();
    let mut class_labels: Vec<f32> = Vec::new();
    let class_of_row: Vec<usize> = labels
        .iter()
        .map(|&label| {
            let label = if label == 0.0 { 0.0 } else { label };
            *class_of_bits.entry(label.to_bits()).or_insert_with(|| {
                class_labels.push(label);
                class_labels.len() - 1
            })
        })
        .collect();
    let classes = class_labels.len();
    let mut class_counts = vec![0usize; classes];
    for &class in &class_of_row {
        class_counts[class] += 1;
    }
    if let Some(class) = class_counts.iter().position(|&count| count < k) {
        return Err(TrainError::Config(format!(
            "stratified cross-validation: class {} has {} rows, fewer than k = {k} folds; every class needs at least \
             one row per fold",
            class_labels[class], class_counts[class]
        )));
    }
    // sklearn deals the class-sorted rows round-robin to the folds: `allocation[class][fold]` rows of each class.
    let mut allocation = vec![vec![0usize; k]; classes];
    let mut position = 0;
    for (class, &count) in class_counts.iter().enumerate() {
        for _ in 0..count {
            allocation[class][position % k] += 1;
            position += 1;
        }
    }
    let mut rng = shuffle_seed.map(ChaCha8Rng::seed_from_u64);
    let mut test_fold = vec![0; labels.len()];
    for (class, per_fold) in allocation.iter().enumerate() {
        let mut folds_for_class: Vec<usize> = per_fold
            .iter()
            .enumerate()
            .flat_map(|(fold, &count)| std::iter::repeat_n(fold, count))
            .collect();
        if let Some(rng) = rng.as_mut() {
            folds_for_class.shuffle(rng);
        }
        let rows = (0..labels.len()).filter(|&row| class_of_row[row] == class);
        for (row, fold) in rows.zip(folds_for_class) {
            test_fold[row] = fold;
        }
    }
    Ok(folds_from_assignment(&test_fold, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_sizes(folds: &[Fold]) -> Vec<usize> {
        folds.iter().map(|fold| fold.test.len()).collect()
    }

    fn assert_partition(folds: &[Fold], n_rows: usize) {
        let mut tested: Vec<usize> = folds
            .iter()
            .flat_map(|fold| fold.test.iter().copied())
            .collect();
        tested.sort_unstable();
        assert_eq!(
            tested,
            (0..n_rows).collect::<Vec<_>>(),
            "every row is tested exactly once"
        );
        for fold in folds {
            let mut rows: Vec<usize> = fold.train.iter().chain(&fold.test).copied().collect();
            rows.sort_unstable();
            assert_eq!(rows, (0..n_rows).collect::<Vec<_>>());
            assert!(fold.train.windows(2).all(|pair| pair[0] < pair[1]));
            assert!(fold.test.windows(2).all(|pair| pair[0] < pair[1]));
        }
    }

    fn config_message(result: Result<Vec<Fold>, TrainError>) -> String {
        match result {
            Err(TrainError::Config(message)) => message,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn fold_counts_out_of_range_are_errors() {
        assert!(config_message(kfold(10, 1, None)).contains("at least 2 folds"));
        assert!(config_message(kfold(10, 0, Some(3))).contains("k = 0"));
        assert!(config_message(kfold(3, 4, None)).contains("cannot split 3 rows into k = 4 folds"));
        assert!(config_message(stratified_kfold(&[0.0, 1.0], 3, None)).contains("2 rows"));
        assert!(kfold(4, 4, None).is_ok());
    }

    #[test]
    fn stratified_refuses_small_classes_and_bad_labels() {
        let labels = [0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 0.0];
        let message = config_message(stratified_kfold(&labels, 2, None));
        assert!(message.contains("class 2 has 1 rows"), "{message}");
        let message = config_message(stratified_kfold(&[0.0, f32::NAN, 1.0, 1.0], 2, None));
        assert!(
            message.contains("row 1") && message.contains("NaN"),
            "{message}"
        );
    }

    #[test]
    fn kfold_sizes_follow_sklearn() {
        let folds = kfold(10, 3, None).unwrap();
        assert_eq!(test_sizes(&folds), [4, 3, 3]);
        assert_eq!(folds[0].test, [0, 1, 2, 3]);
        assert_eq!(folds[2].train, [0, 1, 2, 3, 4, 5, 6]);
        let shuffled = kfold(103, 7, Some(11)).unwrap();
        assert_eq!(test_sizes(&shuffled), [15, 15, 15, 15, 15, 14, 14]);
        assert_partition(&shuffled, 103);
    }

    #[test]
    fn shuffling_is_deterministic_per_seed() {
        let labels: Vec<f32> = (0..60).map(|row| (row % 3) as f32).collect();
        assert_eq!(
            kfold(50, 5, Some(7)).unwrap(),
            kfold(50, 5, Some(7)).unwrap()
        );
        assert_ne!(
            kfold(50, 5, Some(7)).unwrap(),
            kfold(50, 5, Some(8)).unwrap()
        );
        assert_ne!(kfold(50, 5, Some(7)).unwrap(), kfold(50, 5, None).unwrap());
        assert_eq!(
            stratified_kfold(&labels, 4, Some(1)).unwrap(),
            stratified_kfold(&labels, 4, Some(1)).unwrap()
        );
        assert_ne!(
            stratified_kfold(&labels, 4, Some(1)).unwrap(),
            stratified_kfold(&labels, 4, Some(2)).unwrap()
        );
    }

    #[test]
    fn stratified_folds_keep_class_proportions() {
        // Unbalanced classes (50, 31, 7 rows) in an interleaved order, with -0 and +0 one class.
        let labels: Vec<f32> = (0..88)
            .map(|row| match row % 11 {
                0 if row < 77 => 2.0,
                1..=4 if row < 84 => 1.0,
                _ if row % 2 == 0 => -0.0,
                _ => 0.0,
            })
            .collect();
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for &label in &labels {
            *counts.entry((label + 0.0).to_bits()).or_default() += 1;
        }
        assert_eq!(counts.len(), 3);
        for seed in [None, Some(0), Some(42)] {
            let k = 5;
            let folds = stratified_kfold(&labels, k, seed).unwrap();
            assert_partition(&folds, labels.len());
            let sizes = test_sizes(&folds);
            assert!(
                sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
                "{sizes:?}"
            );
            for (&bits, &total) in &counts {
                for fold in &folds {
                    let in_fold = fold
                        .test
                        .iter()
                        .filter(|&&row| (labels[row] + 0.0).to_bits() == bits)
                        .count();
                    assert!(
                        in_fold == total / k || in_fold == total.div_ceil(k),
                        "class {} has {in_fold} of {total} rows in a test fold of {k}",
                        f32::from_bits(bits)
                    );
                }
            }
        }
    }
}
