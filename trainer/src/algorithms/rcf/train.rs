//! Random Cut Forest training: one pass over the train channel feeding a reservoir per tree (and one for the score
//! threshold), then each tree built from its sample, in parallel, each from its own seeded stream.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::sample::Reservoir;
use super::tree::Tree;
use super::RcfModel;
use crate::algorithm::TrainingContext;
use crate::data::batches::MiniBatches;
use crate::data::{Channel, Row};
use crate::hyperparameters::{HyperparameterError, Hyperparameters};
use crate::TrainError;

/// Training records sampled (uniformly, seeded) to estimate the mean and standard deviation of the training scores,
/// from which the anomaly threshold `mean + 3·std` is set.
pub const THRESHOLD_SAMPLE: usize = 4096;

/// A test-channel metric of SageMaker's `eval_metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMetric {
    /// `test:accuracy`.
    Accuracy,
    /// `test:precision`, `test:recall`, `test:f1` for the anomalous class (label 1) and the same with `_negative`
    /// for the normal class.
    PrecisionRecallFscore,
}

/// Resolved Random Cut Forest hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct RcfSettings {
    pub feature_dim: usize,
    pub num_trees: usize,
    pub num_samples_per_tree: usize,
    pub eval_metrics: Vec<EvalMetric>,
    /// Records read per batch from the channel.
    pub mini_batch_size: usize,
    pub seed: u64,
}

impl RcfSettings {
    /// Resolves validated hyperparameters; fails on an `eval_metrics` that is not a list of `accuracy` and/or
    /// `precision_recall_fscore`.
    pub fn from_hyperparameters(hp: &Hyperparameters) -> Result<Self, HyperparameterError> {
        let text = hp
            .text("eval_metrics")
            .unwrap_or("[\"accuracy\", \"precision_recall_fscore\"]");
        let mut eval_metrics = Vec::new();
        for word in text
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
        {
            let word = word.trim().trim_matches(|c| c == '"' || c == '\'').trim();
            let metric = match word.to_ascii_lowercase().as_str() {
                "accuracy" => EvalMetric::Accuracy,
                "precision_recall_fscore" => EvalMetric::PrecisionRecallFscore,
                _ => {
                    return Err(HyperparameterError::Invalid {
                        name: "eval_metrics".into(),
                        value: text.to_string(),
                        expected: "a JSON list of \"accuracy\" and/or \"precision_recall_fscore\""
                            .into(),
                    })
                }
            };
            if !eval_metrics.contains(&metric) {
                eval_metrics.push(metric);
            }
        }
        Ok(RcfSettings {
            feature_dim: hp.get::<usize>("feature_dim")?,
            num_trees: hp.get::<usize>("num_trees")?,
            num_samples_per_tree: hp.get::<usize>("num_samples_per_tree")?,
            eval_metrics,
            mini_batch_size: hp.get::<usize>("mini_batch_size")?,
            seed: hp.get::<i64>("seed")? as u64,
        })
    }
}

/// The random stream of tree `tree`'s reservoir (`purpose` 0) or cuts (`purpose` 1), and of the threshold sample
/// (`tree = usize::MAX`).
pub(crate) fn stream(seed: u64, tree: usize, purpose: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((tree as u64).wrapping_mul(2).wrapping_add(purpose));
    rng
}

/// What [`fit`] found.
#[derive(Debug, Clone)]
pub struct RcfFit {
    pub model: RcfModel,
    /// Records in the train channel.
    pub rows: usize,
    /// Mean and (population) standard deviation of the scores of the threshold sample.
    pub score_mean: f64,
    pub score_std: f64,
    /// Records the mean and standard deviation were measured on.
    pub threshold_rows: usize,
}

/// Trains a forest on one pass of `channel`.
///
/// # Errors
/// Parse errors and bad records (wrong width, NaN or infinite values) with their record number;
/// [`TrainError::Data`] when the channel holds fewer records than `num_samples_per_tree`.
pub fn fit(
    settings: &RcfSettings,
    channel: &Channel,
    context: &mut TrainingContext,
) -> Result<RcfFit, TrainError> {
    let d = settings.feature_dim;
    let s = settings.num_samples_per_tree;
    let mut reservoirs: Vec<Reservoir> = (0..settings.num_trees)
        .map(|t| Reservoir::new(s, d, stream(settings.seed, t, 0)))
        .collect();
    let mut threshold_sample =
        Reservoir::new(THRESHOLD_SAMPLE, d, stream(settings.seed, usize::MAX, 0));
    let mut batches = MiniBatches::new(channel.open(0)?, &channel.name, d);
    let bar = context.start_progress(settings.num_trees as u64, "random cut forest");
    let mut key = 0u64;
    while let Some(batch) = batches.next_batch(settings.mini_batch_size)? {
        for i in 0..batch.n_rows() {
            let row = batch.row(i);
            let dense = || match &row {
                Row::Dense(values) => values.to_vec(),
                Row::Sparse { indices, values } => {
                    let mut out = vec![0.0; d];
                    for (&j, &v) in indices.iter().zip(values.iter()) {
                        out[j as usize] = v;
                    }
                    out
                }
            };
            let mut taken: Option<Vec<f32>> = None;
            for reservoir in reservoirs.iter_mut().chain(Some(&mut threshold_sample)) {
                if reservoir.wants(key) {
                    let values = taken.get_or_insert_with(dense).clone();
                    reservoir.offer(key, || values);
                }
            }
            key += 1;
        }
    }
    let rows = key as usize;
    if rows < s {
        return Err(TrainError::data(
            &channel.name,
            format!(
                "num_samples_per_tree={s} exceeds the {rows} records of the channel; each tree samples \
                 num_samples_per_tree distinct records"
            ),
        ));
    }
    let trees: Vec<Tree> = reservoirs
        .into_par_iter()
        .enumerate()
        .map(|(t, reservoir)| {
            let (points, keys) = reservoir.into_parts();
            let tree = Tree::build(&points, &keys, d, &mut stream(settings.seed, t, 1));
            bar.inc(1);
            tree
        })
        .collect();
    context.finish_progress();
    let mut model = RcfModel {
        feature_dim: d,
        trees,
        threshold: f64::INFINITY,
    };
    let threshold_rows = threshold_sample.len();
    let (points, _) = threshold_sample.into_parts();
    let scores = model.score_rows(&points);
    let n = scores.len() as f64;
    let mean = scores.iter().sum::<f64>() / n;
    let variance = scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n;
    let std = variance.sqrt();
    model.threshold = mean + 3.0 * std;
    context.log_metric("train:score_mean", None, mean);
    context.log_metric("train:score_std", None, std);
    Ok(RcfFit {
        model,
        rows,
        score_mean: mean,
        score_std: std,
        threshold_rows,
    })
}
