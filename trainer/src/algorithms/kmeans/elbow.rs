//! The elbow method: within-cluster sum of squared errors against `k`, for choosing `k` (`tern tune --elbow`).

use std::path::Path;

use super::train::{fit, score_channel, KMeansSettings};
use super::KMeansModel;
use crate::algorithm::TrainingContext;
use crate::data::Channel;
use crate::hyperparameters::Hyperparameters;
use crate::plots;
use crate::TrainError;

/// Trains K-Means on `channel` once per `k` in `ks` (every other hyperparameter as in `hyperparameters`, whose `k` is
/// overridden) and returns `(k, within-cluster SSE on channel)` in the order of `ks`. Reads the channel
/// `epochs + 1` times per `k`, so it needs a File-mode or in-memory channel.
///
/// # Errors
/// What training returns (bad records, `k` above the number of records), and [`TrainError::Config`] for an empty
/// `ks` or a `k` of 0.
pub fn elbow(
    channel: &Channel,
    ks: &[usize],
    hyperparameters: &Hyperparameters,
) -> Result<Vec<(usize, f64)>, TrainError> {
    if ks.is_empty() || ks.contains(&0) {
        return Err(TrainError::Config(
            "elbow: give one or more k, each at least 1".into(),
        ));
    }
    let base = KMeansSettings::from_hyperparameters(hyperparameters)?;
    let mut out = Vec::with_capacity(ks.len());
    for &k in ks {
        let settings = KMeansSettings { k, ..base.clone() };
        let centroids = fit(&settings, channel, &mut TrainingContext::new(true))?;
        let model = KMeansModel {
            centroids,
            feature_dim: settings.feature_dim,
        };
        let (_, sse) = score_channel(&model, channel, settings.epochs)?;
        out.push((k, sse));
    }
    Ok(out)
}

/// Writes the elbow curve (k on the x axis, within-cluster SSE on the y axis) as an SVG or PNG file, atomically.
///
/// # Errors
/// [`TrainError::Config`] when `path` does not end in `.svg` or `.png` or no point is finite; [`TrainError::Io`]
/// when the file cannot be written.
pub fn plot_elbow(points: &[(usize, f64)], path: &Path) -> Result<(), TrainError> {
    let points: Vec<(f64, f64)> = points.iter().map(|&(k, sse)| (k as f64, sse)).collect();
    plots::plot_points(
        &points,
        "K-Means elbow: within-cluster SSE by k",
        "k",
        "within-cluster SSE",
        path,
    )
}
