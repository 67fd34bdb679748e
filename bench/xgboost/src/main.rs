//! Trains tern's xgboost on raw little-endian f32 files and reports timings as JSON (see ../bench.py).
//!
//! Usage: tern-xgboost-bench TRAIN_X TRAIN_Y TEST_X ROWS TEST_ROWS FEATURES ROUNDS MAX_DEPTH MAX_BIN THREADS OUT_PREDICTIONS

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::Array2;
use tern_trainer::algorithms::xgboost::{self, params::TrainParams, XGBoost};
use tern_trainer::data::{Dataset, FeatureMatrix};
use tern_trainer::{Algorithm, Hyperparameters, TrainingContext};

fn read_f32(path: &str, expected: usize) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(
        bytes.len(),
        expected * 4,
        "{path}: expected {expected} f32 values"
    );
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 12 {
        eprintln!("usage: {} TRAIN_X TRAIN_Y TEST_X ROWS TEST_ROWS FEATURES ROUNDS MAX_DEPTH MAX_BIN THREADS OUT", args[0]);
        std::process::exit(2);
    }
    let number = |i: usize| -> usize {
        args[i]
            .parse()
            .unwrap_or_else(|_| panic!("argument {i} is not a number"))
    };
    let (rows, test_rows, features) = (number(4), number(5), number(6));
    let (rounds, depth, max_bin, threads) = (number(7), number(8), number(9), number(10));
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("thread pool");
    let train = Dataset {
        features: FeatureMatrix::Dense(
            Array2::from_shape_vec((rows, features), read_f32(&args[1], rows * features)).unwrap(),
        ),
        labels: Some(read_f32(&args[2], rows)),
        weights: None,
    };
    let test = FeatureMatrix::Dense(
        Array2::from_shape_vec(
            (test_rows, features),
            read_f32(&args[3], test_rows * features),
        )
        .unwrap(),
    );
    let raw: BTreeMap<String, String> = [
        ("objective", "binary:logistic".to_string()),
        ("num_round", rounds.to_string()),
        ("max_depth", depth.to_string()),
        ("max_bin", max_bin.to_string()),
        ("eta", "0.3".to_string()),
        ("tree_method", "hist".to_string()),
        ("verbosity", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let hp = Hyperparameters::parse("xgboost", XGBoost.hyperparameters(), &raw)
        .expect("hyperparameters");
    let params = TrainParams::from_hyperparameters(&hp).expect("params");
    let start = Instant::now();
    let outcome = xgboost::train_datasets(
        &params,
        &train,
        None,
        None,
        None,
        &mut TrainingContext::new(true),
    )
    .expect("train");
    let train_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let predictions = outcome.model.predict(&test);
    let predict_seconds = start.elapsed().as_secs_f64();
    let bytes: Vec<u8> = predictions.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&args[11], bytes).expect("write predictions");
    println!(
        "{}",
        serde_json::json!({"train_seconds": train_seconds, "predict_seconds": predict_seconds, "trees": outcome.model.trees.len()})
    );
}
