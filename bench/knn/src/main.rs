//! `tern-knn-bench TRAIN_CSV QUERIES_F32 QUERY_ROWS OUT_I64 NAME=VALUE...`: trains tern's `knn` on a SageMaker CSV
//! (label first) with the given hyperparameters, searches the float32 query rows, writes the neighbours' indices
//! (little-endian int64, queries × k) to OUT_I64 and prints one JSON object: the build time (CSV parsing included,
//! as tern streams it) and the search time in seconds.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use ndarray::Array2;
use serde_json::json;
use tern_formats::ContentType;
use tern_trainer::algorithms::knn::{Knn, KnnModel};
use tern_trainer::data::{Channel, FeatureMatrix, TrainingInput};
use tern_trainer::{Algorithm, TrainingContext};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        return Err("usage: tern-knn-bench TRAIN_CSV QUERIES_F32 QUERY_ROWS OUT_I64 NAME=VALUE...".into());
    }
    let raw: BTreeMap<String, String> = args[5..]
        .iter()
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let hyperparameters = Knn.parse_hyperparameters(&raw)?;
    let input = TrainingInput::new(Channel::from_path(
            "train",
            Path::new(&args[1]),
            Some(ContentType::Csv { label_size: 1 }),
        )?);
    let start = Instant::now();
    let artifact = Knn.train(&hyperparameters, &input, &mut TrainingContext::new(true))?;
    let model = KnnModel::from_artifact(&artifact)?;
    let build_seconds = start.elapsed().as_secs_f64();
    let bytes = std::fs::read(&args[2])?;
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let rows: usize = args[3].parse()?;
    let queries = FeatureMatrix::Dense(Array2::from_shape_vec((rows, model.feature_dim), values)?);
    let start = Instant::now();
    let neighbours = model.neighbours_of(&queries, "queries")?;
    let search_seconds = start.elapsed().as_secs_f64();
    let out: Vec<u8> = neighbours
        .indices
        .iter()
        .flat_map(|&i| i64::from(i).to_le_bytes())
        .collect();
    std::fs::write(&args[4], out)?;
    println!("{}", json!({"build_seconds": build_seconds, "search_seconds": search_seconds}));
    Ok(())
}
