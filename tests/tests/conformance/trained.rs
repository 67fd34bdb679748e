//! A case trained: the artifact the compiler packages at each precision, the held-out rows, and the trainer's
//! predictions for them, which every cell is judged against.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tern_tests::repo_root;
use tern_trainer::algorithms;
use tern_trainer::data::{Channel, Dataset, TrainingInput};
use tern_trainer::{Artifact, Hyperparameters, Predictions, TrainingContext};

use crate::cases::Case;

/// One case after training, shared by its precisions' trials.
pub struct Trained {
    pub artifact: Artifact,
    /// The calibration rows of the f16 and int8 compiles.
    pub train_data: Dataset,
    /// The held-out rows every runtime predicts, and the compiler's verification rows.
    pub test_data: Dataset,
    /// The trainer's predictions for the held-out rows.
    pub expected: Predictions,
    /// The held-out rows, row-major.
    pub features: Vec<f32>,
    /// The same rows as little-endian float32, for runners in other processes.
    pub features_file: PathBuf,
    pub rows: usize,
}

/// Trains `case` on its dataset's train split and predicts its test split; writes the rows to `features_file`.
/// Panics (failing the trial) when the dataset is missing or training fails.
pub fn train(case: &Case, features_file: &Path) -> Trained {
    let train_data = read_dataset(case.dataset, "train", case.inject_nan);
    let test_data = read_dataset(case.dataset, "test", case.inject_nan);
    let algorithm = algorithms::find(case.algorithm).unwrap();
    let raw: BTreeMap<String, String> = case
        .hyperparameters
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hyperparameters =
        Hyperparameters::parse(algorithm.name(), algorithm.hyperparameters(), &raw).unwrap();
    algorithm.validate(&hyperparameters).unwrap();
    let input = TrainingInput::new(Channel::from_dataset("train", train_data.clone()));
    let artifact = algorithm
        .train(&hyperparameters, &input, &mut TrainingContext::new(true))
        .unwrap_or_else(|e| panic!("{}: training failed: {e}", case.name));
    let predictor = algorithm.load(&artifact).unwrap();
    let expected = predictor.predict(&test_data.features).unwrap();
    let rows = test_data.n_rows();
    let features: Vec<f32> = test_data.features.to_dense().iter().copied().collect();
    let bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(features_file, bytes).unwrap();
    Trained {
        artifact,
        train_data,
        test_data,
        expected,
        features,
        features_file: features_file.to_path_buf(),
        rows,
    }
}

fn read_dataset(name: &str, split: &str, inject_nan: bool) -> Dataset {
    let path = repo_root()
        .join("tests/data/generated")
        .join(name)
        .join(format!("{split}.csv"));
    let mut dataset = Channel::from_path(split, &path, None)
        .and_then(|channel| channel.load(None))
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run tests/python/export_datasets.py)",
                path.display()
            )
        });
    if inject_nan {
        // Every 5th row loses one feature, a different one per row: both missing directions get exercised.
        let mut dense = dataset.features.to_dense();
        let columns = dense.ncols();
        for row in (0..dense.nrows()).step_by(5) {
            dense[[row, (row * 7) % columns]] = f32::NAN;
        }
        let records: Vec<_> = dense
            .rows()
            .into_iter()
            .zip(dataset.labels.as_ref().unwrap())
            .map(|(row, &label)| Ok(tern_formats::Record::dense(Some(label), row.to_vec())))
            .collect();
        dataset = Dataset::from_records(Box::new(records.into_iter()), split, None).unwrap();
    }
    dataset
}
