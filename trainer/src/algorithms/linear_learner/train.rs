//! The training run: the scaler sample, `num_models` candidates updated in parallel on one shuffled mini-batch stream
//! per epoch, early stopping, model selection with threshold calibration, and the final metrics.

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView1};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde_json::{json, Value};
use tern_formats::{Features, Record};

use crate::algorithm::TrainingContext;
use crate::artifact::Artifact;
use crate::data::{
    record_error, Channel, CsrMatrix, Dataset, DatasetBuilder, FeatureMatrix, Row, TrainingInput,
};
use crate::hyperparameters::Hyperparameters;
use crate::metrics::{self, ConfusionMatrix, ThresholdCriterion};
use crate::TrainError;

use super::hyperparameters::{Config, Init, PositiveWeight, PredictorType, SelectionCriterion};
use super::loss::Loss;
use super::model::{FoldedWeights, LinearModel, Output};
use super::optimizer::{Optimizer, OptimizerSettings, Schedule};
use super::NAME;

/// Learning-rate multipliers of the candidates (model `i` takes entry `i % 8`) when `learning_rate` is given, and
/// when it is `auto` (then around the optimizer's default, mostly upwards, as small data sets need larger steps).
const GIVEN_RATE_GRID: [f64; 8] = [1.0, 0.5, 2.0, 0.25, 4.0, 0.7, 1.4, 0.1];
const AUTO_RATE_GRID: [f64; 8] = [1.0, 10.0, 100.0, 3.0, 30.0, 0.3, 300.0, 0.1];
/// Regularisation of the candidates (model `i` takes entry `(i / 8) % 4`): `wd` and `l1` when `auto`, and the
/// multipliers of given values.
const AUTO_WD_GRID: [f64; 4] = [0.0, 1e-4, 1e-2, 1e-6];
const AUTO_L1_GRID: [f64; 4] = [0.0, 0.0, 0.0, 1e-5];
const GIVEN_WD_GRID: [f64; 4] = [1.0, 0.3, 3.0, 1.0];
const GIVEN_L1_GRID: [f64; 4] = [1.0, 1.0, 1.0, 3.0];
/// The shuffle buffer holds this many mini-batches (at least [`MIN_SHUFFLE_BUFFER`] records).
const SHUFFLE_BATCHES: usize = 10;
const MIN_SHUFFLE_BUFFER: usize = 10_000;

/// One training example as it waits in the shuffle buffer.
#[derive(Debug, Clone)]
struct Example {
    row: OwnedRow,
    label: f32,
    /// The record's weight times its class weight (`positive_example_weight_mult`, `balance_multiclass_weights`).
    weight: f32,
}

#[derive(Debug, Clone)]
enum OwnedRow {
    Dense(Vec<f32>),
    Sparse { indices: Vec<u32>, values: Vec<f32> },
}

impl OwnedRow {
    fn view(&self) -> Row<'_> {
        match self {
            OwnedRow::Dense(values) => Row::Dense(ArrayView1::from(values.as_slice())),
            OwnedRow::Sparse { indices, values } => Row::Sparse { indices, values },
        }
    }
}

/// Checks records of one channel against the model's feature dimension and label rules.
struct RecordChecker {
    predictor_type: PredictorType,
    feature_dim: usize,
}

impl RecordChecker {
    /// Fails with the channel, the 1-based record `number`, the field and what was expected.
    fn check(&self, channel: &str, record: &Record, number: usize) -> Result<(), TrainError> {
        let d = self.feature_dim;
        match &record.features {
            Features::Dense(values) => {
                if values.len() != d {
                    return Err(record_error(
                        channel,
                        number,
                        "features",
                        format!("{} features, expected {d} (feature_dim)", values.len()),
                    ));
                }
                if let Some(j) = values.iter().position(|v| !v.is_finite()) {
                    return Err(record_error(
                        channel,
                        number,
                        &format!("features[{j}]"),
                        format!(
                            "{} is not a finite number; linear-learner needs every feature",
                            values[j]
                        ),
                    ));
                }
            }
            Features::Sparse {
                indices,
                values,
                dim,
            } => {
                if let Some(declared) = dim.filter(|&declared| declared != d) {
                    return Err(record_error(
                        channel,
                        number,
                        "features.shape",
                        format!("declares {declared} features, expected {d} (feature_dim)"),
                    ));
                }
                if let Some(&index) = indices.iter().find(|&&j| j as usize >= d) {
                    return Err(record_error(
                        channel,
                        number,
                        &format!("features[{index}]"),
                        format!("index {index} is beyond feature_dim {d}; set feature_dim to the data's width"),
                    ));
                }
                if let Some(p) = values.iter().position(|v| !v.is_finite()) {
                    return Err(record_error(
                        channel,
                        number,
                        &format!("features[{}]", indices[p]),
                        format!(
                            "{} is not a finite number; linear-learner needs every feature",
                            values[p]
                        ),
                    ));
                }
            }
        }
        let Some(label) = record.label else {
            return Err(record_error(
                channel,
                number,
                "label",
                "missing; linear-learner trains on labelled records",
            ));
        };
        let bad_label = match self.predictor_type {
            PredictorType::BinaryClassifier => {
                (label != 0.0 && label != 1.0).then(|| "0 or 1".to_string())
            }
            PredictorType::MulticlassClassifier { num_classes } => (label.fract() != 0.0
                || label < 0.0
                || label >= num_classes as f32)
                .then(|| format!("an integer in [0, {num_classes}) (num_classes={num_classes})")),
            PredictorType::Regressor => (!label.is_finite()).then(|| "a finite number".to_string()),
        };
        if let Some(expected) = bad_label {
            return Err(record_error(
                channel,
                number,
                "label",
                format!(
                    "{label} is not valid for predictor_type={}: expected {expected}",
                    self.predictor_type.name()
                ),
            ));
        }
        if let Some(weight) = record.weight.filter(|w| !w.is_finite() || *w < 0.0) {
            return Err(record_error(
                channel,
                number,
                "weight",
                format!("{weight} is not a finite number >= 0"),
            ));
        }
        Ok(())
    }

    /// Reads a whole channel into memory, checking every record.
    fn load(&self, channel: &Channel) -> Result<Dataset, TrainError> {
        let mut builder = DatasetBuilder::new(&channel.name, Some(self.feature_dim));
        for (i, record) in channel.open(0)?.enumerate() {
            let record = record?;
            self.check(&channel.name, &record, i + 1)?;
            builder.push(record)?;
        }
        builder.finish()
    }
}

/// Feature and label normalisation, from the first `num_point_for_scaler` records.
#[derive(Debug, Clone, PartialEq)]
struct Scaler {
    mean: Option<Vec<f32>>,
    scale: Option<Vec<f32>>,
    label_mean: f32,
    label_scale: f32,
}

impl Scaler {
    fn fit(
        head: &[Record],
        d: usize,
        center: bool,
        scale: bool,
        label_center: bool,
        label_scale: bool,
    ) -> Scaler {
        let n = head.len() as f64;
        let mut sum = vec![0.0f64; d];
        let mut count = vec![0usize; d];
        let visit = |record: &Record, f: &mut dyn FnMut(usize, f64)| match &record.features {
            Features::Dense(values) => values
                .iter()
                .enumerate()
                .for_each(|(j, &x)| f(j, f64::from(x))),
            Features::Sparse {
                indices, values, ..
            } => indices
                .iter()
                .zip(values)
                .for_each(|(&j, &x)| f(j as usize, f64::from(x))),
        };
        for record in head {
            visit(record, &mut |j, x| {
                sum[j] += x;
                count[j] += 1;
            });
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let mut squares = vec![0.0f64; d];
        for record in head {
            visit(record, &mut |j, x| {
                squares[j] += (x - mean[j]) * (x - mean[j])
            });
        }
        // Entries a sparse record does not store are zeros: each adds mean² to the squared deviations.
        let std: Vec<f32> = (0..d)
            .map(|j| {
                let implicit = (head.len() - count[j]) as f64 * mean[j] * mean[j];
                let std = ((squares[j] + implicit) / n).sqrt();
                if std > 1e-12 && std.is_finite() {
                    std as f32
                } else {
                    1.0
                }
            })
            .collect();
        let labels: Vec<f64> = head.iter().filter_map(|r| r.label).map(f64::from).collect();
        let label_mean_value = labels.iter().sum::<f64>() / labels.len().max(1) as f64;
        let label_std = (labels
            .iter()
            .map(|y| (y - label_mean_value).powi(2))
            .sum::<f64>()
            / labels.len().max(1) as f64)
            .sqrt();
        Scaler {
            mean: center.then(|| mean.iter().map(|&m| m as f32).collect()),
            scale: scale.then_some(std),
            label_mean: if label_center {
                label_mean_value as f32
            } else {
                0.0
            },
            label_scale: if label_scale && label_std > 1e-12 {
                label_std as f32
            } else {
                1.0
            },
        }
    }
}

/// What every candidate shares during a step.
struct Shared<'a> {
    scaler: &'a Scaler,
    /// The loss on normalised labels (what the optimizer descends).
    train_loss: Loss,
    /// The loss on the user's labels (what is reported and early-stopped on).
    report_loss: Loss,
    outputs: usize,
    regressor: bool,
    use_bias: bool,
    bias_lr_mult: f64,
    bias_wd_mult: f64,
}

impl Shared<'_> {
    fn normalised_label(&self, label: f32) -> f64 {
        if self.regressor {
            (f64::from(label) - f64::from(self.scaler.label_mean))
                / f64::from(self.scaler.label_scale)
        } else {
            f64::from(label)
        }
    }

    /// The reported loss of one example from its raw scores.
    fn report(&self, raw: &[f64], label: f32, unscaled: &mut [f64]) -> f64 {
        if self.regressor {
            unscaled[0] =
                raw[0] * f64::from(self.scaler.label_scale) + f64::from(self.scaler.label_mean);
            self.report_loss.value(unscaled, f64::from(label))
        } else {
            self.report_loss.value(raw, f64::from(label))
        }
    }
}

/// One of the `num_models` models trained side by side.
struct Candidate {
    learning_rate: f64,
    wd: f64,
    l1: f64,
    weights: Vec<f32>,
    bias: Vec<f32>,
    weight_optimizer: Optimizer,
    bias_optimizer: Optimizer,
    schedule: Schedule,
    updates: u64,
    folded: FoldedWeights,
    gradient: Vec<f32>,
    bias_gradient: Vec<f32>,
    epoch_loss: f64,
    epoch_weight: f64,
    /// The weights and bias of the best epoch so far, with that epoch and its loss.
    best: Option<(Vec<f32>, Vec<f32>, usize, f64)>,
    diverged: bool,
}

impl Candidate {
    fn new(index: usize, config: &Config, d: usize, k: usize) -> Candidate {
        let rate_slot = index % GIVEN_RATE_GRID.len();
        let reg_slot = (index / GIVEN_RATE_GRID.len()) % AUTO_WD_GRID.len();
        let learning_rate = match config.learning_rate {
            Some(rate) => rate * GIVEN_RATE_GRID[rate_slot],
            None => config.default_learning_rate * AUTO_RATE_GRID[rate_slot],
        };
        let wd = config
            .wd
            .map_or(AUTO_WD_GRID[reg_slot], |wd| wd * GIVEN_WD_GRID[reg_slot]);
        let l1 = config
            .l1
            .map_or(AUTO_L1_GRID[reg_slot], |l1| l1 * GIVEN_L1_GRID[reg_slot]);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(1 + index as u64);
        let weights: Vec<f32> = match config.init {
            Init::Uniform { scale } => (0..d * k)
                .map(|_| rng.gen_range(-scale..scale) as f32)
                .collect(),
            Init::Normal { sigma } => {
                let normal = Normal::new(0.0, sigma)
                    .unwrap_or_else(|_| Normal::new(0.0, 0.01).expect("valid"));
                (0..d * k).map(|_| normal.sample(&mut rng) as f32).collect()
            }
        };
        let bias = vec![
            if config.use_bias {
                config.init_bias as f32
            } else {
                0.0
            };
            k
        ];
        let settings = OptimizerSettings {
            kind: config.optimizer,
            momentum: config.momentum,
            beta_1: config.beta_1,
            beta_2: config.beta_2,
        };
        Candidate {
            learning_rate,
            wd,
            l1,
            weights,
            bias,
            weight_optimizer: Optimizer::new(settings, d * k),
            bias_optimizer: Optimizer::new(settings, k),
            schedule: Schedule {
                base: learning_rate,
                decay: config.use_lr_scheduler.then_some((
                    config.lr_scheduler_step,
                    config.lr_scheduler_factor,
                    config.lr_scheduler_minimum_lr,
                )),
            },
            updates: 0,
            folded: FoldedWeights::default(),
            gradient: vec![0.0; d * k],
            bias_gradient: vec![0.0; k],
            epoch_loss: 0.0,
            epoch_weight: 0.0,
            best: None,
            diverged: false,
        }
    }

    fn refold(&mut self, scaler: &Scaler) {
        self.folded.refold(
            &self.weights,
            &self.bias,
            scaler.mean.as_deref(),
            scaler.scale.as_deref(),
        );
    }

    /// One optimizer update on `batch`, adding the batch's loss (before the update) to the epoch's running loss.
    fn step(&mut self, batch: &[Example], shared: &Shared<'_>) {
        if self.diverged {
            return;
        }
        let k = shared.outputs;
        self.refold(shared.scaler);
        self.gradient.iter_mut().for_each(|g| *g = 0.0);
        let mut bias_sum = vec![0.0f32; k];
        let total_weight: f64 = batch.iter().map(|e| f64::from(e.weight)).sum();
        if total_weight <= 0.0 {
            return;
        }
        let mut scores = vec![0.0f32; k];
        let mut raw = vec![0.0f64; k];
        let mut slope = vec![0.0f64; k];
        let mut unscaled = vec![0.0f64; 1];
        let mut coefficient = vec![0.0f32; k];
        for example in batch {
            let row = example.row.view();
            self.folded.scores(&row, &mut scores);
            raw.iter_mut()
                .zip(&scores)
                .for_each(|(r, &s)| *r = f64::from(s));
            let label = shared.normalised_label(example.label);
            shared
                .train_loss
                .value_and_gradient(&raw, label, &mut slope);
            let weight = f64::from(example.weight);
            self.epoch_loss += weight * shared.report(&raw, example.label, &mut unscaled);
            self.epoch_weight += weight;
            let share = weight / total_weight;
            for ((c, s), b) in coefficient.iter_mut().zip(&slope).zip(bias_sum.iter_mut()) {
                *c = (s * share) as f32;
                *b += *c;
            }
            let gradient = &mut self.gradient;
            if k == 1 {
                let c = coefficient[0];
                row.for_each(|j, x| gradient[j] += c * x);
            } else {
                row.for_each(|j, x| {
                    for (g, &c) in gradient[j * k..(j + 1) * k].iter_mut().zip(&coefficient) {
                        *g += c * x;
                    }
                });
            }
        }
        // ∂/∂W of loss(((x - mean) / scale) · W + b) = (Σ g x - mean Σ g) / scale, plus weight decay.
        for (j, (row, weights)) in self
            .gradient
            .chunks_exact_mut(k)
            .zip(self.weights.chunks_exact(k))
            .enumerate()
        {
            let mean = shared.scaler.mean.as_ref().map_or(0.0, |m| m[j]);
            let scale = shared.scaler.scale.as_ref().map_or(1.0, |s| s[j]);
            for ((g, &sum), &w) in row.iter_mut().zip(&bias_sum).zip(weights) {
                *g = (*g - mean * sum) / scale + self.wd as f32 * w;
            }
        }
        let rate = self.schedule.rate(self.updates);
        self.updates += 1;
        self.weight_optimizer
            .step(&mut self.weights, &self.gradient, rate);
        if shared.use_bias {
            let bias_wd = (self.wd * shared.bias_wd_mult) as f32;
            for ((g, &sum), &b) in self.bias_gradient.iter_mut().zip(&bias_sum).zip(&self.bias) {
                *g = sum + bias_wd * b;
            }
            self.bias_optimizer.step(
                &mut self.bias,
                &self.bias_gradient,
                rate * shared.bias_lr_mult,
            );
        }
        if self.l1 > 0.0 {
            self.weight_optimizer
                .proximal_l1(&mut self.weights, rate, self.l1);
        }
        if !self.weights.iter().chain(&self.bias).all(|v| v.is_finite()) {
            self.diverged = true;
        }
    }

    /// The mean reported loss on `data` with the current weights; infinite once diverged.
    fn loss_on(&mut self, data: &Dataset, shared: &Shared<'_>) -> f64 {
        if self.diverged {
            return f64::INFINITY;
        }
        self.refold(shared.scaler);
        let labels = data.labels.as_deref().unwrap_or_default();
        let k = shared.outputs;
        let mut scores = vec![0.0f32; k];
        let mut raw = vec![0.0f64; k];
        let mut unscaled = vec![0.0f64; 1];
        let (mut total, mut weight_sum) = (0.0, 0.0);
        for (i, &label) in labels.iter().enumerate() {
            self.folded.scores(&data.features.row(i), &mut scores);
            raw.iter_mut()
                .zip(&scores)
                .for_each(|(r, &s)| *r = f64::from(s));
            let weight = data.weights.as_ref().map_or(1.0, |w| f64::from(w[i]));
            total += weight * shared.report(&raw, label, &mut unscaled);
            weight_sum += weight;
        }
        let loss = total / weight_sum;
        if loss.is_finite() {
            loss
        } else {
            f64::INFINITY
        }
    }

    /// The epoch's progressive training loss (infinite once diverged), resetting the running sums.
    fn take_epoch_loss(&mut self) -> f64 {
        let loss = self.epoch_loss / self.epoch_weight;
        self.epoch_loss = 0.0;
        self.epoch_weight = 0.0;
        if self.diverged || !loss.is_finite() {
            f64::INFINITY
        } else {
            loss
        }
    }

    fn snapshot(&mut self, epoch: usize, loss: f64) {
        if !self.diverged {
            self.best = Some((self.weights.clone(), self.bias.clone(), epoch, loss));
        }
    }
}

/// A bounded buffer that releases records in random order: each new record displaces a random one once full.
struct Shuffler {
    buffer: Vec<Example>,
    capacity: usize,
}

impl Shuffler {
    fn push(&mut self, example: Example, rng: &mut ChaCha8Rng) -> Option<Example> {
        if self.buffer.len() < self.capacity {
            self.buffer.push(example);
            None
        } else {
            let slot = rng.gen_range(0..self.buffer.len());
            Some(std::mem::replace(&mut self.buffer[slot], example))
        }
    }

    fn drain_one(&mut self, rng: &mut ChaCha8Rng) -> Option<Example> {
        if self.buffer.is_empty() {
            None
        } else {
            let slot = rng.gen_range(0..self.buffer.len());
            Some(self.buffer.swap_remove(slot))
        }
    }
}

/// The model a candidate's best epoch describes, with `threshold`.
fn candidate_model(
    config: &Config,
    scaler: &Scaler,
    weights: &[f32],
    bias: &[f32],
    threshold: f32,
) -> LinearModel {
    LinearModel::new(
        config.predictor_type,
        weights.to_vec(),
        bias.to_vec(),
        scaler.mean.clone(),
        scaler.scale.clone(),
        (scaler.label_mean, scaler.label_scale),
        output_of(config),
        threshold,
        config.loss.name(),
    )
}

fn output_of(config: &Config) -> Output {
    match (config.predictor_type, config.loss) {
        (PredictorType::BinaryClassifier, Loss::Logistic) => Output::Sigmoid,
        (PredictorType::BinaryClassifier, _) => Output::Raw,
        (PredictorType::MulticlassClassifier { .. }, _) => Output::Softmax,
        (PredictorType::Regressor, _) => Output::Regression,
    }
}

fn default_threshold(config: &Config) -> f32 {
    if output_of(config) == Output::Sigmoid {
        0.5
    } else {
        0.0
    }
}

/// How well a model does on the selection sample: the criterion's value (higher is better), the calibrated
/// threshold, and the objective loss.
struct Score {
    value: f64,
    threshold: f32,
    loss: f64,
}

fn score_model(
    model: &LinearModel,
    sample: &Dataset,
    config: &Config,
    shared: &Shared<'_>,
) -> Result<Score, TrainError> {
    let labels = sample.labels.as_deref().unwrap_or_default();
    let weights = sample.weights.as_deref();
    let mut raw = model.raw_scores(&sample.features)?;
    let loss = objective_loss(&raw, labels, weights, shared);
    let default = default_threshold(config);
    let worst = |value: f64| {
        if value.is_nan() {
            f64::NEG_INFINITY
        } else {
            value
        }
    };
    if config.predictor_type != PredictorType::BinaryClassifier {
        return Ok(Score {
            value: worst(-loss),
            threshold: default,
            loss,
        });
    }
    model.finish_scores(&mut raw);
    let score = raw.column(0).to_vec();
    let criterion = match config.selection {
        SelectionCriterion::Accuracy => ThresholdCriterion::Accuracy,
        SelectionCriterion::FBeta(beta) => ThresholdCriterion::FBeta(beta),
        SelectionCriterion::PrecisionAtTargetRecall(target) => {
            ThresholdCriterion::PrecisionAtRecall(target)
        }
        SelectionCriterion::RecallAtTargetPrecision(target) => {
            ThresholdCriterion::RecallAtPrecision(target)
        }
        SelectionCriterion::LossFunction => {
            return Ok(Score {
                value: worst(-loss),
                threshold: default,
                loss,
            })
        }
    };
    let (threshold, value) = metrics::best_threshold(labels, &score, criterion, weights);
    let threshold = if threshold.is_nan() {
        default
    } else {
        // best_threshold returns a sample score; the cut goes halfway to the next lower score instead, so the sample
        // is classified the same but no sample row sits on the boundary, where rounding differences between the
        // trainer and a compiled package would flip its label.
        let below = score
            .iter()
            .copied()
            .filter(|&s| s < threshold)
            .fold(f32::NEG_INFINITY, f32::max);
        let threshold = if below.is_finite() && threshold.is_finite() {
            below + (threshold - below) / 2.0
        } else {
            threshold
        };
        threshold.clamp(f32::MIN, f32::MAX)
    };
    Ok(Score {
        value: worst(value),
        threshold,
        loss,
    })
}

/// The mean reported loss over rows of raw scores.
fn objective_loss(
    raw: &Array2<f32>,
    labels: &[f32],
    weights: Option<&[f32]>,
    shared: &Shared<'_>,
) -> f64 {
    let mut scores = vec![0.0f64; raw.ncols()];
    let mut unscaled = [0.0f64; 1];
    let (mut total, mut weight_sum) = (0.0, 0.0);
    for (i, row) in raw.rows().into_iter().enumerate() {
        scores
            .iter_mut()
            .zip(row)
            .for_each(|(s, &r)| *s = f64::from(r));
        let weight = weights.map_or(1.0, |w| f64::from(w[i]));
        total += weight * shared.report(&scores, labels[i], &mut unscaled);
        weight_sum += weight;
    }
    total / weight_sum
}

/// SageMaker's final metrics of `model` on `data`, named `<prefix>:<metric>`.
fn final_metrics(
    model: &LinearModel,
    data: &Dataset,
    prefix: &str,
    config: &Config,
    shared: &Shared<'_>,
) -> Result<BTreeMap<String, f64>, TrainError> {
    let labels = data.labels.as_deref().unwrap_or_default();
    let weights = data.weights.as_deref();
    let mut raw = model.raw_scores(&data.features)?;
    let mut out = BTreeMap::new();
    let mut put = |name: &str, value: f64| {
        out.insert(format!("{prefix}:{name}"), value);
    };
    put(
        "objective_loss",
        objective_loss(&raw, labels, weights, shared),
    );
    let predicted = model.finish_scores(&mut raw);
    match config.predictor_type {
        PredictorType::BinaryClassifier => {
            let predicted = predicted.unwrap_or_default();
            let matrix = ConfusionMatrix::new(labels, &predicted, 2, weights);
            put("binary_classification_accuracy", matrix.accuracy());
            put("binary_f_beta", matrix.f_beta(1, config.f_beta));
            put("precision", matrix.precision(1));
            put("recall", matrix.recall(1));
            put(
                "roc_auc_score",
                metrics::roc_auc(labels, &raw.column(0).to_vec(), weights),
            );
        }
        PredictorType::MulticlassClassifier { num_classes } => {
            let predicted = predicted.unwrap_or_default();
            let matrix = ConfusionMatrix::new(labels, &predicted, num_classes, weights);
            put("multiclass_accuracy", matrix.accuracy());
            put(
                "multiclass_top_k_accuracy",
                metrics::top_k_accuracy(labels, raw.view(), config.accuracy_top_k, weights),
            );
            put("macro_precision", matrix.macro_precision());
            put("macro_recall", matrix.macro_recall());
            put("macro_f_beta", matrix.macro_f_beta(config.f_beta));
            put("dcg", discounted_cumulative_gain(&raw, labels, weights));
        }
        PredictorType::Regressor => {
            let predicted = raw.column(0).to_vec();
            put("mse", metrics::mse(labels, &predicted, weights));
            put("rmse", metrics::rmse(labels, &predicted, weights));
            put("absolute_loss", metrics::mae(labels, &predicted, weights));
            put("r2", metrics::r2(labels, &predicted, weights));
        }
    }
    Ok(out)
}

/// The mean of `1 / log2(1 + rank)` over rows, `rank` being the 1-based position of the true class when the
/// classes are sorted by descending score (ties counted in the true class's favour).
fn discounted_cumulative_gain(
    scores: &Array2<f32>,
    labels: &[f32],
    weights: Option<&[f32]>,
) -> f64 {
    let (mut total, mut weight_sum) = (0.0, 0.0);
    for (i, row) in scores.rows().into_iter().enumerate() {
        let truth = row[labels[i] as usize];
        let rank = 1 + row.iter().filter(|&&s| s > truth).count();
        let weight = weights.map_or(1.0, |w| f64::from(w[i]));
        total += weight / (1.0 + rank as f64).log2();
        weight_sum += weight;
    }
    total / weight_sum
}

/// Examples (the no-validation selection sample) as a dataset of `d` features.
fn examples_to_dataset(examples: &[(Example, f32)], d: usize) -> Dataset {
    let dense = examples
        .iter()
        .all(|(e, _)| matches!(e.row, OwnedRow::Dense(_)));
    let features = if dense {
        let mut matrix = Array2::zeros((examples.len(), d));
        for (mut target, (example, _)) in matrix.rows_mut().into_iter().zip(examples) {
            if let OwnedRow::Dense(values) = &example.row {
                target.iter_mut().zip(values).for_each(|(t, &v)| *t = v);
            }
        }
        FeatureMatrix::Dense(matrix)
    } else {
        let mut csr = CsrMatrix::new(d);
        for (example, _) in examples {
            match &example.row {
                OwnedRow::Sparse { indices, values } => csr.push_row(indices, values),
                OwnedRow::Dense(values) => {
                    let indices: Vec<u32> = (0..values.len() as u32).collect();
                    csr.push_row(&indices, values);
                }
            }
        }
        FeatureMatrix::Sparse(csr)
    };
    Dataset {
        features,
        labels: Some(examples.iter().map(|(e, _)| e.label).collect()),
        weights: Some(examples.iter().map(|&(_, w)| w).collect()),
    }
}

/// Trains Linear Learner as `config` says; see the module documentation of [`super`].
pub fn train(
    config: &Config,
    hyperparameters: &Hyperparameters,
    input: &TrainingInput,
    context: &mut TrainingContext,
) -> Result<Artifact, TrainError> {
    let train_channel = input.train();
    let name = train_channel.name.as_str();
    let k = config.predictor_type.outputs();

    // The scaler sample: the first num_point_for_scaler records of pass 0, kept to be trained on in that pass too
    // (a Pipe-mode FIFO can be read only once).
    let mut stream = train_channel.open(0)?;
    let mut head = Vec::new();
    while head.len() < config.num_point_for_scaler {
        match stream.next() {
            Some(record) => head.push(record?),
            None => break,
        }
    }
    let Some(first) = head.first() else {
        return Err(TrainError::data(name, "the channel holds no records"));
    };
    let sparse = matches!(first.features, Features::Sparse { .. });
    let feature_dim = match config.feature_dim {
        Some(d) => d,
        None if sparse => head.iter().map(|r| r.features.dim()).max().unwrap_or(0),
        None => first.features.dim(),
    };
    if feature_dim == 0 {
        return Err(record_error(
            name,
            1,
            "features",
            "the record has no features",
        ));
    }
    let origin = || match config.feature_dim {
        Some(d) => format!("hyperparameter feature_dim={d}"),
        None => {
            let record = head
                .iter()
                .position(|r| r.features.dim() == feature_dim)
                .map_or(1, |i| i + 1);
            format!("declared by record {record} of channel {name}")
        }
    };
    // The scaler's three per-feature sums, and per model the weights, their gradient and two optimizer states.
    let per_feature = 24 + config.num_models as u128 * k as u128 * 16;
    crate::memory::ensure(feature_dim as u128 * per_feature, || {
        format!(
            "Linear Learner's {} models over {feature_dim} features (from {})",
            config.num_models,
            origin()
        )
    })?;
    let checker = RecordChecker {
        predictor_type: config.predictor_type,
        feature_dim,
    };
    for (i, record) in head.iter().enumerate() {
        checker.check(name, record, i + 1)?;
    }
    let center = config
        .unbias_data
        .unwrap_or(config.normalize_data && !sparse);
    let scaler = Scaler::fit(
        &head,
        feature_dim,
        center,
        config.normalize_data,
        config.unbias_label,
        config.normalize_label,
    );

    let mut class_weights = vec![1.0f32; k.max(2)];
    let mut positive_weight = 1.0;
    if config.predictor_type == PredictorType::BinaryClassifier {
        let positives = head.iter().filter(|r| r.label == Some(1.0)).count();
        positive_weight = match config.positive_example_weight_mult {
            PositiveWeight::Fixed(value) => value,
            PositiveWeight::Balanced if positives > 0 => {
                (head.len() - positives) as f64 / positives as f64
            }
            PositiveWeight::Balanced => {
                context.log("positive_example_weight_mult=balanced: the scaler sample holds no positive example; using 1");
                1.0
            }
        };
        class_weights[1] = positive_weight as f32;
    } else if config.balance_multiclass_weights {
        let mut counts = vec![0usize; k];
        for record in &head {
            counts[record.label.unwrap_or(0.0) as usize] += 1;
        }
        for (weight, &count) in class_weights.iter_mut().zip(&counts) {
            *weight = if count > 0 {
                head.len() as f32 / (k * count) as f32
            } else {
                1.0
            };
        }
    }
    let class_weight = |label: f32| match config.predictor_type {
        PredictorType::Regressor => 1.0,
        _ => class_weights[label as usize],
    };

    let validation = input
        .validation()
        .map(|channel| checker.load(channel))
        .transpose()?;
    let label_scale = f64::from(scaler.label_scale);
    let shared = Shared {
        scaler: &scaler,
        train_loss: config.loss.for_label_scale(label_scale),
        report_loss: config.loss,
        outputs: k,
        regressor: config.predictor_type == PredictorType::Regressor,
        use_bias: config.use_bias,
        bias_lr_mult: config.bias_lr_mult,
        bias_wd_mult: config.bias_wd_mult,
    };

    let mut models: Vec<Candidate> = (0..config.num_models)
        .map(|i| Candidate::new(i, config, feature_dim, k))
        .collect();
    let mut shuffle_rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut sample_rng = ChaCha8Rng::seed_from_u64(config.seed);
    sample_rng.set_stream(u64::MAX);
    let mut shuffler = Shuffler {
        buffer: Vec::new(),
        capacity: (config.mini_batch_size * SHUFFLE_BATCHES).max(MIN_SHUFFLE_BUFFER),
    };
    let mut reservoir: Vec<(Example, f32)> = Vec::new();
    let mut seen = 0usize;
    let mut records_per_epoch = 0u64;
    let mut best_metric = f64::INFINITY;
    let mut stale_epochs = 0;
    let mut epochs_trained = 0;

    let mut head = Some(head);
    for epoch in 0..config.epochs {
        let records: Box<dyn Iterator<Item = Result<Record, TrainError>>> = match head.take() {
            Some(head) => {
                let rest = std::mem::replace(&mut stream, Box::new(std::iter::empty()));
                Box::new(
                    head.into_iter()
                        .map(Ok)
                        .chain(rest.map(|r| r.map_err(TrainError::from))),
                )
            }
            None => Box::new(
                train_channel
                    .open(epoch)?
                    .map(|r| r.map_err(TrainError::from)),
            ),
        };
        let bar = context.start_progress(
            records_per_epoch,
            &format!("epoch {}/{}", epoch + 1, config.epochs),
        );
        let mut batch = Vec::with_capacity(config.mini_batch_size);
        let mut count = 0usize;
        let run = |batch: &mut Vec<Example>, models: &mut Vec<Candidate>| {
            models.par_iter_mut().for_each(|m| m.step(batch, &shared));
            bar.inc(batch.len() as u64);
            batch.clear();
            let running = models
                .iter()
                .map(|m| m.epoch_loss / m.epoch_weight)
                .filter(|l| l.is_finite())
                .fold(f64::INFINITY, f64::min);
            bar.set_message(format!("train loss {running:.4}"));
        };
        for record in records {
            let record = record?;
            count += 1;
            // The scaler sample was checked before training started.
            if epoch > 0 || count > config.num_point_for_scaler {
                checker.check(name, &record, count)?;
            }
            let label = record.label.unwrap_or(0.0);
            let record_weight = record.weight.unwrap_or(1.0);
            let row = match record.features {
                Features::Dense(values) => OwnedRow::Dense(values),
                Features::Sparse {
                    indices, values, ..
                } => OwnedRow::Sparse { indices, values },
            };
            let example = Example {
                row,
                label,
                weight: record_weight * class_weight(label),
            };
            if epoch == 0 && validation.is_none() {
                seen += 1;
                if reservoir.len() < config.num_calibration_samples {
                    reservoir.push((example.clone(), record_weight));
                } else {
                    let slot = sample_rng.gen_range(0..seen);
                    if slot < reservoir.len() {
                        reservoir[slot] = (example.clone(), record_weight);
                    }
                }
            }
            if let Some(ready) = shuffler.push(example, &mut shuffle_rng) {
                batch.push(ready);
                if batch.len() == config.mini_batch_size {
                    run(&mut batch, &mut models);
                }
            }
        }
        while let Some(ready) = shuffler.drain_one(&mut shuffle_rng) {
            batch.push(ready);
            if batch.len() == config.mini_batch_size {
                run(&mut batch, &mut models);
            }
        }
        if !batch.is_empty() {
            run(&mut batch, &mut models);
        }
        if count == 0 {
            return Err(TrainError::data(
                name,
                format!("pass {epoch} holds no records"),
            ));
        }
        records_per_epoch = count as u64;
        epochs_trained = epoch + 1;

        let train_losses: Vec<f64> = models.iter_mut().map(Candidate::take_epoch_loss).collect();
        let (epoch_metric, leader) = match &validation {
            Some(data) => {
                let losses: Vec<f64> = models
                    .par_iter_mut()
                    .map(|m| m.loss_on(data, &shared))
                    .collect();
                for (model, &loss) in models.iter_mut().zip(&losses) {
                    if model.best.as_ref().is_none_or(|b| loss < b.3) {
                        model.snapshot(epoch, loss);
                    }
                }
                best_of(&losses)
            }
            None => {
                for (model, &loss) in models.iter_mut().zip(&train_losses) {
                    model.snapshot(epoch, loss);
                }
                best_of(&train_losses)
            }
        };
        context.log_metric("train:objective_loss", Some(epoch), train_losses[leader]);
        let mut message = format!("train loss {:.4}", train_losses[leader]);
        if let Some(data) = &validation {
            context.log_metric("validation:objective_loss", Some(epoch), epoch_metric);
            let model = &models[leader];
            let leader_model = candidate_model(
                config,
                &scaler,
                &model.weights,
                &model.bias,
                default_threshold(config),
            );
            let score = score_model(&leader_model, data, config, &shared)?;
            let (metric, value) = match config.predictor_type {
                PredictorType::BinaryClassifier => (config.selection.metric_name(), score.value),
                PredictorType::MulticlassClassifier { .. } => {
                    let mut raw = leader_model.raw_scores(&data.features)?;
                    let predicted = leader_model.finish_scores(&mut raw).unwrap_or_default();
                    (
                        "multiclass_accuracy",
                        metrics::accuracy(
                            data.labels.as_deref().unwrap_or_default(),
                            &predicted,
                            data.weights.as_deref(),
                        ),
                    )
                }
                PredictorType::Regressor => {
                    let mut raw = leader_model.raw_scores(&data.features)?;
                    leader_model.finish_scores(&mut raw);
                    (
                        "rmse",
                        metrics::rmse(
                            data.labels.as_deref().unwrap_or_default(),
                            &raw.column(0).to_vec(),
                            data.weights.as_deref(),
                        ),
                    )
                }
            };
            message = format!("{message}, validation loss {epoch_metric:.4}");
            if metric != "objective_loss" {
                context.log_metric(&format!("validation:{metric}"), Some(epoch), value);
                message = format!("{message}, {metric} {value:.4}");
            }
        }
        context.log_metric(
            "train:progress",
            Some(epoch),
            100.0 * (epoch + 1) as f64 / config.epochs as f64,
        );
        bar.set_message(message);
        context.finish_progress();

        if !epoch_metric.is_finite() {
            return Err(TrainError::Algorithm {
                algorithm: NAME.to_string(),
                message: format!(
                    "every one of the {} models diverged in epoch {epoch}; lower learning_rate or normalise the data",
                    models.len()
                ),
            });
        }
        if epoch_metric < best_metric * (1.0 - config.early_stopping_tolerance)
            || best_metric.is_infinite()
        {
            best_metric = epoch_metric;
            stale_epochs = 0;
        } else {
            stale_epochs += 1;
            if stale_epochs >= config.early_stopping_patience {
                context.log(&format!(
                    "early stopping after epoch {epoch}: the objective loss improved by less than {} for {} epochs",
                    config.early_stopping_tolerance, config.early_stopping_patience
                ));
                break;
            }
        }
    }

    // Model selection and threshold calibration on the validation channel's first num_calibration_samples rows, or
    // on a uniform sample of the training data when there is no validation channel.
    let sample = match &validation {
        Some(data) if data.n_rows() > config.num_calibration_samples => {
            data.select(&(0..config.num_calibration_samples).collect::<Vec<_>>())
        }
        Some(data) => data.clone(),
        None => examples_to_dataset(&reservoir, feature_dim),
    };
    let mut candidates = Vec::new();
    let mut selected: Option<(usize, Score)> = None;
    for (index, model) in models.iter().enumerate() {
        let Some((weights, bias, epoch, loss)) = &model.best else {
            continue;
        };
        let linear = candidate_model(config, &scaler, weights, bias, default_threshold(config));
        let score = score_model(&linear, &sample, config, &shared)?;
        candidates.push(json!({
            "learning_rate": model.learning_rate,
            "wd": model.wd,
            "l1": model.l1,
            "best_epoch": epoch,
            "objective_loss": loss,
            "selection_value": finite_or_null(score.value),
            "selection_loss": finite_or_null(score.loss),
        }));
        let better = match &selected {
            None => true,
            Some((_, best)) => {
                score.value > best.value || (score.value == best.value && score.loss < best.loss)
            }
        };
        if better {
            selected = Some((index, score));
        }
    }
    let Some((index, score)) = selected else {
        return Err(TrainError::Algorithm {
            algorithm: NAME.to_string(),
            message: "every model diverged; lower learning_rate or normalise the data".to_string(),
        });
    };
    let (weights, bias, best_epoch, _) = models[index]
        .best
        .clone()
        .expect("selected models have a best epoch");
    let final_model = candidate_model(config, &scaler, &weights, &bias, score.threshold);

    let mut artifact = Artifact::new(NAME, hyperparameters.values().clone(), feature_dim);
    artifact.meta.provenance.seed = Some(config.seed);
    let training = json!({
        "selected_model": index,
        "selection_criterion": match config.predictor_type {
            PredictorType::BinaryClassifier => config.selection.metric_name(),
            _ => "objective_loss",
        },
        "selection_rows": sample.n_rows(),
        "best_epoch": best_epoch,
        "epochs_trained": epochs_trained,
        "optimizer": config.optimizer.name(),
        "learning_rate": models[index].learning_rate,
        "wd": models[index].wd,
        "l1": models[index].l1,
        "positive_example_weight_mult": positive_weight,
        "class_weights": if config.balance_multiclass_weights { json!(class_weights) } else { Value::Null },
        "candidates": candidates,
    });
    final_model.write_into(&mut artifact, training);

    // Final metrics from the model as its artifact describes it, so they are what a loaded model scores.
    let loaded = LinearModel::from_artifact(&artifact)?;
    let mut final_values = BTreeMap::new();
    if let Some(data) = &validation {
        final_values.extend(final_metrics(&loaded, data, "validation", config, &shared)?);
    }
    if let Some(channel) = input.test() {
        let data = checker.load(channel)?;
        final_values.extend(final_metrics(&loaded, &data, "test", config, &shared)?);
    }
    for (metric, value) in &final_values {
        context.log_metric(metric, None, *value);
    }
    artifact.meta.training_metrics = final_values
        .into_iter()
        .filter(|(_, v)| v.is_finite())
        .collect();
    Ok(artifact)
}

/// The smallest loss and its index (the first on ties; infinite losses count as largest).
fn best_of(losses: &[f64]) -> (f64, usize) {
    let mut best = (f64::INFINITY, 0);
    for (i, &loss) in losses.iter().enumerate() {
        if loss < best.0 {
            best = (loss, i);
        }
    }
    best
}

fn finite_or_null(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}
