//! K-Means training: initial centres from the first mini-batch, Sculley's mini-batch updates (per-centre learning
//! rate 1/count, optionally decayed with a half-life), then the weighted local Lloyd reduction to `k` centres.

use ndarray::Array2;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{assign, KMeansModel};
use crate::algorithm::{Device, TrainingContext};
use crate::data::batches::MiniBatches;
use crate::data::{Channel, FeatureMatrix};
use crate::hyperparameters::{HyperparameterError, Hyperparameters};
use crate::TrainError;

/// How initial centres are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitMethod {
    /// Distinct points drawn uniformly (with probability proportional to weight in the local Lloyd step).
    Random,
    /// k-means++: each next centre drawn with probability proportional to weight × squared distance.
    KMeansPlusPlus,
}

/// A test-channel metric of SageMaker's `eval_metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMetric {
    /// Mean squared distance to the closest centre.
    Msd,
    /// Sum of squared distances to the closest centre.
    Ssd,
}

/// Resolved K-Means hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansSettings {
    pub k: usize,
    pub feature_dim: usize,
    pub mini_batch_size: usize,
    pub epochs: usize,
    /// Centres trained in the mini-batch pass, as a multiple of `k`; `auto` resolves to 4 (the low end of
    /// SageMaker's tuning range).
    pub extra_center_factor: usize,
    pub init_method: InitMethod,
    pub local_lloyd_init_method: InitMethod,
    pub local_lloyd_max_iter: usize,
    /// `auto` resolves to 10.
    pub local_lloyd_num_trials: usize,
    pub local_lloyd_tol: f64,
    /// Points after which a centre's accumulated weight halves; 0 means no decay.
    pub half_life_time_size: usize,
    pub eval_metrics: Vec<EvalMetric>,
    pub seed: u64,
}

/// `init_method` and `local_lloyd_init_method`'s words.
const INIT_METHODS: &[(&str, InitMethod)] = &[
    ("random", InitMethod::Random),
    ("kmeans++", InitMethod::KMeansPlusPlus),
];

impl KMeansSettings {
    /// Resolves validated hyperparameters; fails on an `eval_metrics` that is not a list of `msd`/`ssd`.
    pub fn from_hyperparameters(hp: &Hyperparameters) -> Result<Self, HyperparameterError> {
        let text = hp.get::<String>("eval_metrics")?;
        let mut eval_metrics = Vec::new();
        for word in text
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
        {
            let word = word.trim().trim_matches(|c| c == '"' || c == '\'').trim();
            let metric = match word.to_ascii_lowercase().as_str() {
                "msd" => EvalMetric::Msd,
                "ssd" => EvalMetric::Ssd,
                _ => {
                    return Err(HyperparameterError::Invalid {
                        name: "eval_metrics".into(),
                        value: text.to_string(),
                        expected: "a JSON list of \"msd\" and/or \"ssd\", e.g. [\"msd\",\"ssd\"]"
                            .into(),
                    })
                }
            };
            if !eval_metrics.contains(&metric) {
                eval_metrics.push(metric);
            }
        }
        Ok(KMeansSettings {
            k: hp.get::<usize>("k")?,
            feature_dim: hp.get::<usize>("feature_dim")?,
            mini_batch_size: hp.get::<usize>("mini_batch_size")?,
            epochs: hp.get::<usize>("epochs")?,
            extra_center_factor: hp.get::<usize>("extra_center_factor")?,
            init_method: hp.choice("init_method", INIT_METHODS)?,
            local_lloyd_init_method: hp.choice("local_lloyd_init_method", INIT_METHODS)?,
            local_lloyd_max_iter: hp.get::<usize>("local_lloyd_max_iter")?,
            local_lloyd_num_trials: hp.get::<usize>("local_lloyd_num_trials")?,
            local_lloyd_tol: hp.get::<f64>("local_lloyd_tol")?,
            half_life_time_size: hp.get::<usize>("half_life_time_size")?,
            eval_metrics,
            seed: hp.get::<i64>("seed")? as u64,
        })
    }
}

/// Where the mini-batch assignment step runs, per the context's [`Device`].
enum Assigner {
    Cpu,
    #[cfg(feature = "gpu")]
    Gpu(crate::gpu::Gpu),
}

impl Assigner {
    fn for_device(context: &TrainingContext) -> Result<Assigner, TrainError> {
        match context.device() {
            Device::Cpu => Ok(Assigner::Cpu),
            #[cfg(feature = "gpu")]
            Device::Gpu => {
                let gpu = crate::gpu::Gpu::new()
                    .map_err(|e| TrainError::Config(format!("kmeans --device gpu: {e}")))?;
                context.log(&format!("kmeans: assignment step on {}", gpu.adapter()));
                Ok(Assigner::Gpu(gpu))
            }
            #[cfg(not(feature = "gpu"))]
            Device::Gpu => Err(TrainError::Config(
                "kmeans --device gpu: this tern was built without the `gpu` feature (cargo build --release -p \
                 tern --features gpu)"
                    .into(),
            )),
        }
    }

    /// Each row's closest centre and squared distance (see [`assign`]). On the GPU, sparse batches are densified
    /// and distances are summed in f32 as the CPU does for dense rows.
    fn assign(
        &self,
        batch: &FeatureMatrix,
        centres: &[f64],
        d: usize,
    ) -> Result<Vec<(u32, f64)>, TrainError> {
        match self {
            Assigner::Cpu => Ok(assign(batch, centres, d)),
            #[cfg(feature = "gpu")]
            Assigner::Gpu(gpu) => {
                let rows = batch.to_dense();
                let rows: Vec<f32> = rows.iter().copied().collect();
                let centres: Vec<f32> = centres.iter().map(|&v| v as f32).collect();
                let nearest =
                    gpu.assign_nearest(&rows, &centres, d)
                        .map_err(|e| TrainError::Algorithm {
                            algorithm: "kmeans".into(),
                            message: e.to_string(),
                        })?;
                Ok(nearest
                    .into_iter()
                    .map(|(c, distance)| (c, f64::from(distance)))
                    .collect())
            }
        }
    }
}

/// Trains `k` centres (`k × feature_dim`) on `channel`, one pass per epoch (Pipe mode: one FIFO per pass, each
/// opened once). Reports `train:msd` per epoch (squared distance of each point to its centre before its batch's
/// update). The assignment step runs on `context`'s [`Device`].
///
/// # Errors
/// Parse errors and bad records (wrong width, NaN) with their record number; [`TrainError::Data`] when the channel
/// holds fewer records than `k`; [`TrainError::Config`] when the GPU is asked for and none can be opened.
pub fn fit(
    settings: &KMeansSettings,
    channel: &Channel,
    context: &mut TrainingContext,
) -> Result<Array2<f32>, TrainError> {
    let d = settings.feature_dim;
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let wanted = settings.k * settings.extra_center_factor;
    let mut centres: Vec<f64> = Vec::new();
    let mut counts: Vec<f64> = Vec::new();
    let assigner = Assigner::for_device(context)?;
    let bar = context.start_progress(settings.epochs as u64, "kmeans");
    for epoch in 0..settings.epochs {
        let mut batches = MiniBatches::new(channel.open(epoch)?, &channel.name, d);
        let (mut seen, mut squared) = (0usize, 0.0f64);
        let first_size = if epoch == 0 {
            settings.mini_batch_size.max(wanted)
        } else {
            settings.mini_batch_size
        };
        let mut next = batches.next_batch(first_size)?;
        if epoch == 0 {
            let batch = next
                .as_ref()
                .ok_or_else(|| TrainError::data(&channel.name, "the channel holds no records"))?;
            if batch.n_rows() < settings.k {
                return Err(TrainError::data(
                    &channel.name,
                    format!(
                        "k={} clusters need at least {} records, the channel holds {}",
                        settings.k,
                        settings.k,
                        batch.n_rows()
                    ),
                ));
            }
            let points = dense_f64(batch);
            let weights = vec![1.0; batch.n_rows()];
            let n_centres = wanted.min(batch.n_rows());
            centres = initial_centres(
                &points,
                &weights,
                d,
                n_centres,
                settings.init_method,
                &mut rng,
            );
            counts = vec![0.0; n_centres];
        }
        while let Some(batch) = next {
            let (rows, batch_squared) =
                update(&mut centres, &mut counts, &batch, settings, &assigner)?;
            seen += rows;
            squared += batch_squared;
            next = batches.next_batch(settings.mini_batch_size)?;
        }
        context.log_metric("train:msd", Some(epoch), squared / seen.max(1) as f64);
        bar.inc(1);
    }
    context.finish_progress();
    let reduced = if centres.len() / d > settings.k {
        local_lloyd(&centres, &counts, settings, &mut rng)
    } else {
        centres
    };
    Array2::from_shape_vec((settings.k, d), reduced.iter().map(|&v| v as f32).collect()).map_err(
        |e| TrainError::Algorithm {
            algorithm: "kmeans".into(),
            message: e.to_string(),
        },
    )
}

/// One mini-batch step; returns (rows, sum of squared distances to the assigned centre before the step).
fn update(
    centres: &mut [f64],
    counts: &mut [f64],
    batch: &FeatureMatrix,
    settings: &KMeansSettings,
    assigner: &Assigner,
) -> Result<(usize, f64), TrainError> {
    let d = settings.feature_dim;
    let assignments = assigner.assign(batch, centres, d)?;
    let mut sums = vec![0.0f64; centres.len()];
    let mut batch_counts = vec![0.0f64; counts.len()];
    for (i, &(c, _)) in assignments.iter().enumerate() {
        let c = c as usize;
        batch_counts[c] += 1.0;
        let sum = &mut sums[c * d..(c + 1) * d];
        batch.row(i).for_each(|j, v| sum[j] += f64::from(v));
    }
    let decay = if settings.half_life_time_size > 0 {
        0.5f64.powf(batch.n_rows() as f64 / settings.half_life_time_size as f64)
    } else {
        1.0
    };
    for (c, count) in counts.iter_mut().enumerate() {
        *count = *count * decay + batch_counts[c];
        if batch_counts[c] > 0.0 {
            let centre = &mut centres[c * d..(c + 1) * d];
            for (value, sum) in centre.iter_mut().zip(&sums[c * d..(c + 1) * d]) {
                *value += (sum - batch_counts[c] * *value) / *count;
            }
        }
    }
    let squared = assignments.iter().map(|&(_, s)| s).sum();
    Ok((batch.n_rows(), squared))
}

/// A batch as row-major f64 (only ever one mini-batch at a time).
fn dense_f64(batch: &FeatureMatrix) -> Vec<f64> {
    let d = batch.n_cols();
    let mut out = vec![0.0; batch.n_rows() * d];
    for i in 0..batch.n_rows() {
        batch.row(i).for_each(|j, v| out[i * d + j] = f64::from(v));
    }
    out
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// `n_centres` initial centres among `points` (row-major, `d` wide), seeded by `rng`.
fn initial_centres(
    points: &[f64],
    weights: &[f64],
    d: usize,
    n_centres: usize,
    method: InitMethod,
    rng: &mut ChaCha8Rng,
) -> Vec<f64> {
    let n = points.len() / d;
    let row = |i: usize| &points[i * d..(i + 1) * d];
    let mut chosen: Vec<usize> = Vec::with_capacity(n_centres);
    match method {
        InitMethod::Random if weights.iter().all(|&w| w == 1.0) => {
            chosen = sample(rng, n, n_centres).into_vec();
        }
        _ => {
            let mut taken = vec![false; n];
            let mut nearest = vec![f64::INFINITY; n];
            for step in 0..n_centres {
                let scores: Vec<f64> = (0..n)
                    .map(|i| {
                        if taken[i] {
                            0.0
                        } else if method == InitMethod::Random || step == 0 {
                            weights[i]
                        } else {
                            weights[i] * nearest[i]
                        }
                    })
                    .collect();
                let total: f64 = scores.iter().sum();
                let pick = if total > 0.0 {
                    let mut target = rng.gen::<f64>() * total;
                    let mut pick = n;
                    for (i, &s) in scores.iter().enumerate() {
                        if s > 0.0 {
                            pick = i;
                            if target < s {
                                break;
                            }
                            target -= s;
                        }
                    }
                    pick
                } else {
                    // Every remaining point coincides with a chosen centre: take the first not yet taken.
                    taken.iter().position(|&t| !t).unwrap_or(0)
                };
                taken[pick] = true;
                chosen.push(pick);
                for i in 0..n {
                    nearest[i] = nearest[i].min(squared_distance(row(i), row(pick)));
                }
            }
        }
    }
    chosen
        .iter()
        .flat_map(|&i| row(i).iter().copied())
        .collect()
}

/// Weighted Lloyd's method on the mini-batch centres (`points`, with `weights` = their accumulated counts), from
/// `local_lloyd_num_trials` initialisations; returns the `k` centres of the trial with the least weighted SSE.
fn local_lloyd(
    points: &[f64],
    weights: &[f64],
    settings: &KMeansSettings,
    rng: &mut ChaCha8Rng,
) -> Vec<f64> {
    let d = settings.feature_dim;
    let k = settings.k;
    let n = points.len() / d;
    let positive = weights.iter().filter(|&&w| w > 0.0).count();
    // Centres no point reached keep a tiny weight so that k centres can always be chosen.
    let weights: Vec<f64> = if positive >= k {
        weights.to_vec()
    } else {
        weights.iter().map(|&w| w.max(1e-12)).collect()
    };
    let total_weight: f64 = weights.iter().sum();
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| weights[i] * points[i * d + j]).sum::<f64>() / total_weight)
        .collect();
    let mean_variance = (0..n)
        .map(|i| weights[i] * squared_distance(&points[i * d..(i + 1) * d], &mean))
        .sum::<f64>()
        / total_weight
        / d as f64;
    let tolerance = settings.local_lloyd_tol * mean_variance;
    let mut best: Option<(f64, Vec<f64>)> = None;
    for _ in 0..settings.local_lloyd_num_trials {
        let mut centres = initial_centres(
            points,
            &weights,
            d,
            k,
            settings.local_lloyd_init_method,
            rng,
        );
        let mut labels = vec![0usize; n];
        for _ in 0..settings.local_lloyd_max_iter {
            for (i, label) in labels.iter_mut().enumerate() {
                let x = &points[i * d..(i + 1) * d];
                *label = (0..k)
                    .min_by(|&a, &b| {
                        squared_distance(x, &centres[a * d..(a + 1) * d])
                            .total_cmp(&squared_distance(x, &centres[b * d..(b + 1) * d]))
                    })
                    .unwrap_or(0);
            }
            let mut sums = vec![0.0; k * d];
            let mut mass = vec![0.0; k];
            for (i, &c) in labels.iter().enumerate() {
                mass[c] += weights[i];
                for j in 0..d {
                    sums[c * d + j] += weights[i] * points[i * d + j];
                }
            }
            let mut shift = 0.0;
            for c in 0..k {
                if mass[c] > 0.0 {
                    for j in 0..d {
                        let new = sums[c * d + j] / mass[c];
                        shift += (new - centres[c * d + j]).powi(2);
                        centres[c * d + j] = new;
                    }
                }
            }
            if shift <= tolerance {
                break;
            }
        }
        let sse: f64 = (0..n)
            .map(|i| {
                let x = &points[i * d..(i + 1) * d];
                weights[i]
                    * (0..k)
                        .map(|c| squared_distance(x, &centres[c * d..(c + 1) * d]))
                        .fold(f64::INFINITY, f64::min)
            })
            .sum();
        if best.as_ref().is_none_or(|(b, _)| sse < *b) {
            best = Some((sse, centres));
        }
    }
    best.map(|(_, c)| c).unwrap_or_default()
}

/// Streams pass `epoch` of `channel` through `model`: (records, sum of squared distances to the closest centre).
pub fn score_channel(
    model: &KMeansModel,
    channel: &Channel,
    epoch: usize,
) -> Result<(usize, f64), TrainError> {
    let mut batches = MiniBatches::new(channel.open(epoch)?, &channel.name, model.feature_dim);
    let mut ssd = 0.0;
    while let Some(batch) = batches.next_batch(8192)? {
        ssd += model.assign(&batch).iter().map(|&(_, s)| s).sum::<f64>();
    }
    if batches.records_read() == 0 {
        return Err(TrainError::data(
            &channel.name,
            "the channel holds no records",
        ));
    }
    Ok((batches.records_read(), ssd))
}
