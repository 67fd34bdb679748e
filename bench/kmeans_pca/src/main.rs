//! `tern-kmeans-pca-bench ALGORITHM TRAIN_CSV NAME=VALUE...`: trains tern's `kmeans` or `pca` on a SageMaker CSV
//! (label first) with the given hyperparameters and prints one JSON object: the training time in seconds (CSV
//! parsing included, as tern streams it) and the quality figures bench.py compares (K-Means: within-cluster SSE on
//! the training rows; PCA: explained variance and mean squared reconstruction error).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde_json::json;
use tern_formats::ContentType;
use tern_trainer::algorithms::pca::PcaModel;
use tern_trainer::data::{Channel, TrainingInput};
use tern_trainer::{algorithms, Hyperparameters, TrainingContext};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: tern-kmeans-pca-bench kmeans|pca TRAIN_CSV NAME=VALUE...".into());
    }
    let algorithm = algorithms::find(&args[1])?;
    let raw: BTreeMap<String, String> = args[3..]
        .iter()
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let hyperparameters =
        Hyperparameters::parse(algorithm.name(), algorithm.hyperparameters(), &raw)?;
    algorithm.validate(&hyperparameters)?;
    let channel = Channel::from_path(
        "train",
        Path::new(&args[2]),
        Some(ContentType::Csv { label_size: 1 }),
    )?;
    let input = TrainingInput::new(channel.clone());
    let start = Instant::now();
    let artifact = algorithm.train(&hyperparameters, &input, &mut TrainingContext::new(true))?;
    let seconds = start.elapsed().as_secs_f64();
    let dataset = channel.load(Some(artifact.meta.feature_dim))?;
    let report = if algorithm.name() == "kmeans" {
        let predictions = algorithm.load(&artifact)?.predict(&dataset.features)?;
        let sse: f64 = predictions
            .score_column()
            .iter()
            .map(|&d| f64::from(d) * f64::from(d))
            .sum();
        json!({"train_seconds": seconds, "inertia": sse})
    } else {
        let model = PcaModel::from_artifact(&artifact)?;
        let (rows, total) = model.reconstruction_squared_error(&dataset.features);
        json!({
            "train_seconds": seconds,
            "explained_variance": artifact.meta.model["explained_variance"],
            "reconstruction_error": total / (rows * artifact.meta.feature_dim) as f64,
        })
    };
    println!("{report}");
    Ok(())
}
