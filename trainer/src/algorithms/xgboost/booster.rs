//! The boosting loop: gradients each round, one tree per output group, training and validation margins updated
//! incrementally, metrics logged per round as xgboost prints them, and early stopping keeping the best round.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::data::{record_error, Dataset, FeatureMatrix};
use crate::{TrainError, TrainingContext};

use super::binning::{BinnedMatrix, Cuts};
use super::grow::{grow_tree, sample, tree_rng, FeatureRules};
use super::linear;
use super::metric::{self, EvalInput};
use super::model::Model;
use super::objective::{weighted_quantile, GradientPair, Objective};
use super::params::{DartParams, TrainParams};
use super::rank;
use super::tree::Tree;

/// Labelled rows with weights and optional query groups, checked for the objective.
pub struct TrainingSet<'a> {
    pub name: &'a str,
    pub features: &'a FeatureMatrix,
    pub labels: &'a [f32],
    pub weights: Vec<f32>,
    /// Query group boundaries `0 = g0 < g1 < … = rows`, for ranking objectives.
    pub groups: Option<Vec<usize>>,
}

impl<'a> TrainingSet<'a> {
    /// Checks `dataset`'s labels, weights and groups against the objective before any training.
    pub fn new(
        name: &'a str,
        dataset: &'a Dataset,
        params: &TrainParams,
        group_sizes: Option<&[usize]>,
    ) -> Result<TrainingSet<'a>, TrainError> {
        let labels = dataset.require_labels(name)?;
        for (i, &y) in labels.iter().enumerate() {
            params
                .objective
                .check_label(y, params.num_class)
                .map_err(|expected| {
                    record_error(
                        name,
                        i + 1,
                        "label",
                        format!("{y} is invalid: expected {expected}"),
                    )
                })?;
        }
        let weights = match &dataset.weights {
            Some(w) => {
                if let Some(i) = w.iter().position(|&w| !(w.is_finite() && w >= 0.0)) {
                    return Err(record_error(
                        name,
                        i + 1,
                        "weight",
                        format!("{} is invalid: expected a finite weight >= 0", w[i]),
                    ));
                }
                w.clone()
            }
            None => vec![1.0; labels.len()],
        };
        let groups = match group_sizes {
            Some(sizes) => {
                let total: usize = sizes.iter().sum();
                if total != labels.len() {
                    return Err(TrainError::data(
                        name,
                        format!(
                            "query group sizes sum to {total}, but the channel has {} rows",
                            labels.len()
                        ),
                    ));
                }
                let mut bounds = vec![0];
                for &s in sizes {
                    bounds.push(bounds[bounds.len() - 1] + s);
                }
                Some(bounds)
            }
            None if params.objective.is_ranking() => {
                return Err(TrainError::data(
                    name,
                    format!(
                        "objective {} needs query groups (a group file or column)",
                        params.objective.name()
                    ),
                ))
            }
            None => None,
        };
        Ok(TrainingSet {
            name,
            features: &dataset.features,
            labels,
            weights,
            groups,
        })
    }
}

/// What training produced besides the model: the final metric values by `train:<m>` / `validation:<m>`.
pub struct TrainingOutcome {
    pub model: Model,
    pub final_metrics: Vec<(String, f64)>,
}

struct EvalSet<'a> {
    set: &'a TrainingSet<'a>,
    margins: Vec<f32>,
}

fn evaluate_set(params: &TrainParams, set: &EvalSet<'_>, num_group: usize, metric: &str) -> f64 {
    let mut predictions = set.margins.clone();
    predictions
        .par_chunks_mut(num_group * 1024)
        .for_each(|rows| {
            rows.chunks_mut(num_group)
                .for_each(|row| params.objective.transform(row))
        });
    // multi:softmax evaluates class labels for merror the same as probabilities' arg max, so probabilities serve.
    metric::evaluate(
        metric,
        &EvalInput {
            labels: set.set.labels,
            weights: &set.set.weights,
            predictions: &predictions,
            margins: &set.margins,
            num_group,
            groups: set.set.groups.as_deref(),
        },
    )
}

/// Trains a model on `train`, evaluating on `validation` each round.
pub fn train(
    params: &TrainParams,
    train: &TrainingSet<'_>,
    validation: Option<&TrainingSet<'_>>,
    context: &mut TrainingContext,
) -> Result<TrainingOutcome, TrainError> {
    let n = train.labels.len();
    let n_features = train.features.n_cols();
    let g = params.num_class.max(1);
    if !params.monotone.is_empty() && params.monotone.len() != n_features {
        return Err(TrainError::data(
            train.name,
            format!(
                "monotone_constraints has {} entries but the data have {n_features} features",
                params.monotone.len()
            ),
        ));
    }
    if let Some(f) = params
        .interaction
        .iter()
        .flatten()
        .find(|&&f| f >= n_features)
    {
        return Err(TrainError::data(
            train.name,
            format!("interaction_constraints names feature {f}, but the data have {n_features} features"),
        ));
    }
    if params.early_stopping_rounds.is_some() && validation.is_none() {
        return Err(TrainError::Config(
            "early_stopping_rounds needs a validation channel".into(),
        ));
    }
    let cuts = Cuts::build(
        train.features,
        &train.weights,
        if params.exact {
            None
        } else {
            Some(params.max_bin)
        },
    );
    let binned = BinnedMatrix::new(train.features, &cuts);
    let base_score = match params.base_score {
        Some(b) => vec![b as f32; g],
        None => params
            .objective
            .estimate_intercept(train.labels, &train.weights, g),
    };
    let mut model = Model {
        objective: params.objective,
        num_group: g,
        num_feature: n_features,
        base_score,
        trees: Vec::new(),
        tree_group: Vec::new(),
        best_iteration: None,
        best_score: None,
        scale_pos_weight: params.scale_pos_weight,
        max_delta_step: params.max_delta_step,
        linear: params
            .linear
            .then(|| linear::LinearWeights::new(n_features, g)),
        tree_weights: params.dart.map(|_| Vec::new()),
    };
    let sum_instance_weight: f64 = train.weights.iter().map(|&w| w as f64).sum();
    let mut best_linear: Option<linear::LinearWeights> = None;
    let base_margin = model.base_margin();
    let mut train_eval = EvalSet {
        set: train,
        margins: base_margin.repeat(n),
    };
    let mut valid_eval = validation.map(|v| EvalSet {
        set: v,
        margins: base_margin.repeat(v.labels.len()),
    });
    let mut gradients = vec![GradientPair::default(); n * g];
    let mut group_gradients = vec![GradientPair::default(); n];
    let mut sample_rng = ChaCha8Rng::seed_from_u64(params.seed);
    let all_features: Vec<usize> = (0..n_features).collect();
    let watched = params
        .eval_metrics
        .last()
        .cloned()
        .unwrap_or_else(|| "rmse".into());
    let maximize = metric::maximize(&watched);
    let mut best: Option<(usize, f64)> = None;
    let mut last_line = Vec::new();
    let bar = context.start_progress(params.num_round as u64, "xgboost");
    let mut dart_rng = ChaCha8Rng::seed_from_u64(params.seed ^ 0xda27);
    for round in 0..params.num_round {
        // dart: the trees dropped this round, their summed weighted contribution to the training margins, and the
        // margins without them, which the round's gradients are taken at.
        let dropped = match (&params.dart, &model.tree_weights) {
            (Some(dart), Some(weights)) => select_dropped(dart, weights, &mut dart_rng),
            _ => Vec::new(),
        };
        let dropped_train = dropped_contribution(&model, &dropped, train.features, g);
        let gradient_margins: Vec<f32> = match &dropped_train {
            Some(drop) => train_eval
                .margins
                .iter()
                .zip(drop)
                .map(|(m, d)| m - d)
                .collect(),
            None => Vec::new(),
        };
        let margins_now = if dropped_train.is_some() {
            &gradient_margins
        } else {
            &train_eval.margins
        };
        // dart's weight for this round's new trees and the factor scaling the dropped ones (xgboost's rules).
        let (new_weight, drop_factor) = match &params.dart {
            Some(dart) if !dropped.is_empty() => {
                let lr = (params.eta / g as f64) as f32;
                let k = dropped.len() as f32;
                if dart.forest {
                    (1.0 / (1.0 + lr), 1.0 / (1.0 + lr))
                } else {
                    (1.0 / (k + lr), k / (k + lr))
                }
            }
            _ => (1.0f32, 1.0f32),
        };
        if params.objective.is_ranking() {
            rank::lambda_gradients(
                params.objective,
                margins_now,
                train.labels,
                &train.weights,
                train.groups.as_deref().unwrap_or(&[0, n]),
                &mut gradients,
            );
        } else {
            params.objective.gradients(
                margins_now,
                train.labels,
                &train.weights,
                params.scale_pos_weight as f32,
                params.max_delta_step as f32,
                g,
                &mut gradients,
            );
        }
        if let Some(state) = model.linear.as_mut() {
            state.rounds += 1;
            linear::round(
                &mut state.weights,
                train.features,
                &mut gradients,
                &mut train_eval.margins,
                g,
                params.eta,
                params.alpha,
                params.lambda,
                sum_instance_weight,
            );
            if let Some(valid) = valid_eval.as_mut() {
                valid.margins =
                    linear::predict(&state.weights, valid.set.features, g, &base_margin);
            }
        }
        let sampled: Vec<u32> = if params.linear || params.gradient_based {
            Vec::new()
        } else if params.subsample < 1.0 {
            (0..n as u32)
                .filter(|_| sample_rng.gen::<f64>() < params.subsample)
                .collect()
        } else {
            (0..n as u32).collect()
        };
        for group in (0..g).filter(|_| !params.linear) {
            for (slot, pair) in group_gradients
                .iter_mut()
                .zip(gradients.iter().skip(group).step_by(g))
            {
                *slot = *pair;
            }
            let sampled = if params.gradient_based {
                gradient_based_sample(
                    &mut group_gradients,
                    params.subsample,
                    params.lambda,
                    &mut sample_rng,
                )
            } else {
                sampled.clone()
            };
            let tree_index = model.trees.len();
            let mut rng = tree_rng(params.seed, tree_index);
            let tree_features = sample(&all_features, params.colsample_bytree, &mut rng);
            let rules = FeatureRules {
                tree_features,
                monotone: &params.monotone,
                interaction: &params.interaction,
                rng,
            };
            let mut grown = grow_tree(
                &binned,
                &cuts,
                &group_gradients,
                sampled.clone(),
                params,
                rules,
            );
            if params.objective == Objective::AbsoluteError {
                refresh_leaves_to_median(
                    &mut grown.tree,
                    &grown.leaves,
                    &grown.positions,
                    train,
                    if dropped_train.is_some() {
                        &gradient_margins
                    } else {
                        &train_eval.margins
                    },
                    g,
                    group,
                    params.eta,
                );
            }
            // Training margins: rows the tree saw by their leaf, the others by walking the binned tree.
            let mut seen = vec![false; if sampled.len() < n { n } else { 0 }];
            for &(leaf, begin, end) in &grown.leaves {
                let value = grown.tree.split_condition[leaf];
                for &row in &grown.positions[begin..end] {
                    train_eval.margins[row as usize * g + group] += new_weight * value;
                    if !seen.is_empty() {
                        seen[row as usize] = true;
                    }
                }
            }
            for (row, _) in seen.iter().enumerate().filter(|(_, &s)| !s) {
                let leaf = binned_leaf(&grown.tree, &grown.split_bins, &binned, row);
                train_eval.margins[row * g + group] +=
                    new_weight * grown.tree.split_condition[leaf];
            }
            if let Some(valid) = valid_eval.as_mut() {
                add_tree(
                    &grown.tree,
                    new_weight,
                    valid.set.features,
                    &mut valid.margins,
                    g,
                    group,
                );
            }
            model.trees.push(grown.tree);
            model.tree_group.push(group);
        }
        if let Some(weights) = model.tree_weights.as_mut() {
            if let Some(drop) = &dropped_train {
                rescale_dropped(&mut train_eval.margins, drop, drop_factor);
                if let Some(valid) = valid_eval.as_mut() {
                    let before: Vec<f32> = weights.clone();
                    let drop = dropped_contribution_with(
                        &model.trees[..before.len()],
                        &model.tree_group,
                        &before,
                        &dropped,
                        valid.set.features,
                        g,
                    );
                    rescale_dropped(&mut valid.margins, &drop, drop_factor);
                }
                for &t in &dropped {
                    weights[t] *= drop_factor;
                }
            }
            weights.resize(model.trees.len(), new_weight);
        }
        last_line.clear();
        let mut line = format!("[{round}]");
        let mut watched_value = None;
        for (set_name, set) in std::iter::once(("train", Some(&train_eval)))
            .chain(std::iter::once(("validation", valid_eval.as_ref())))
        {
            let Some(set) = set else { continue };
            for metric_name in &params.eval_metrics {
                let value = evaluate_set(params, set, g, metric_name);
                line.push_str(&format!("\t{set_name}-{metric_name}:{value:.5}"));
                context.log_metric(&format!("{set_name}:{metric_name}"), Some(round), value);
                last_line.push((format!("{set_name}:{metric_name}"), value));
                if set_name == "validation" && *metric_name == watched {
                    watched_value = Some(value);
                }
            }
        }
        if params.verbosity > 0 {
            context.log(&line);
        }
        bar.inc(1);
        if let (Some(patience), Some(value)) = (params.early_stopping_rounds, watched_value) {
            let improved = match best {
                None => true,
                Some((_, b)) => {
                    if maximize {
                        value > b
                    } else {
                        value < b
                    }
                }
            };
            if improved {
                best = Some((round, value));
                best_linear = model.linear.clone();
            } else if round - best.map_or(0, |(r, _)| r) >= patience {
                break;
            }
        }
    }
    context.finish_progress();
    if let Some((best_round, best_value)) = best {
        model.trees.truncate((best_round + 1) * g);
        if let Some(weights) = model.tree_weights.as_mut() {
            weights.truncate((best_round + 1) * g);
        }
        if best_linear.is_some() {
            model.linear = best_linear;
        }
        model.tree_group.truncate((best_round + 1) * g);
        model.best_iteration = Some(best_round);
        model.best_score = Some(best_value);
        if params.verbosity > 0 {
            context.log(&format!(
                "Stopping. Best iteration:\n[{best_round}]\tvalidation-{watched}:{best_value:.5}"
            ));
        }
    }
    // Final values: from the kept model, so they describe what is saved.
    let mut final_metrics = Vec::new();
    if best.is_some() {
        let train_set = EvalSet {
            set: train,
            margins: model.predict_margins(train.features),
        };
        let valid_set = validation.map(|v| EvalSet {
            set: v,
            margins: model.predict_margins(v.features),
        });
        for (set_name, set) in [
            ("train", Some(&train_set)),
            ("validation", valid_set.as_ref()),
        ] {
            let Some(set) = set else { continue };
            for metric_name in &params.eval_metrics {
                final_metrics.push((
                    format!("{set_name}:{metric_name}"),
                    evaluate_set(params, set, g, metric_name),
                ));
            }
        }
    } else {
        final_metrics = last_line;
    }
    for (name, value) in &final_metrics {
        context.log_metric(name, None, *value);
    }
    Ok(TrainingOutcome {
        model,
        final_metrics,
    })
}

/// The leaf a training row reaches, walking the tree on its bins.
fn binned_leaf(tree: &Tree, split_bins: &[i64], binned: &BinnedMatrix, row: usize) -> usize {
    let mut node = 0;
    while !tree.is_leaf(node) {
        let f = tree.split_index[node] as usize;
        let left = match binned.local_bin(row, f) {
            None => tree.default_left[node],
            Some(bin) => bin as i64 <= split_bins[node],
        };
        node = if left {
            tree.left[node]
        } else {
            tree.right[node]
        } as usize;
    }
    node
}

/// Adds `weight` × `tree`'s leaf value for each row of `features` to the rows' margins of `group`.
fn add_tree(
    tree: &Tree,
    weight: f32,
    features: &FeatureMatrix,
    margins: &mut [f32],
    g: usize,
    group: usize,
) {
    let one = Model {
        objective: Objective::SquaredError,
        num_group: 1,
        num_feature: features.n_cols(),
        base_score: vec![0.0],
        trees: vec![tree.clone()],
        tree_group: vec![0],
        best_iteration: None,
        best_score: None,
        scale_pos_weight: 1.0,
        max_delta_step: 0.0,
        linear: None,
        tree_weights: None,
    };
    let values = one.predict_margins(features);
    for (row, v) in values.iter().enumerate() {
        margins[row * g + group] += weight * v;
    }
}

/// dart's dropout for one round, as xgboost selects it: the whole round is skipped with probability `skip_drop`;
/// otherwise each tree is dropped with probability `rate_drop` (`sample_type=uniform`) or `rate_drop` × trees ×
/// its weight / the weights' sum (`weighted`), and with `one_drop` one tree (uniformly or by weight) when none was.
/// Returns the dropped trees' indices, ascending.
fn select_dropped(dart: &DartParams, weights: &[f32], rng: &mut ChaCha8Rng) -> Vec<usize> {
    if weights.is_empty() || (dart.skip_drop > 0.0 && rng.gen::<f64>() < dart.skip_drop) {
        return Vec::new();
    }
    let total: f64 = weights.iter().map(|&w| w as f64).sum();
    let count = weights.len() as f64;
    let mut dropped: Vec<usize> = (0..weights.len())
        .filter(|&t| {
            let p = if dart.weighted && total > 0.0 {
                dart.rate_drop * count * weights[t] as f64 / total
            } else {
                dart.rate_drop
            };
            rng.gen::<f64>() < p
        })
        .collect();
    if dart.one_drop && dropped.is_empty() {
        let pick = if dart.weighted && total > 0.0 {
            let mut target = rng.gen::<f64>() * total;
            weights
                .iter()
                .position(|&w| {
                    target -= w as f64;
                    target < 0.0
                })
                .unwrap_or(weights.len() - 1)
        } else {
            rng.gen_range(0..weights.len())
        };
        dropped.push(pick);
    }
    dropped
}

/// The dropped trees' summed weighted leaf values per row and group of `features`, or `None` when none dropped.
fn dropped_contribution(
    model: &Model,
    dropped: &[usize],
    features: &FeatureMatrix,
    g: usize,
) -> Option<Vec<f32>> {
    let weights = model.tree_weights.as_deref()?;
    (!dropped.is_empty()).then(|| {
        dropped_contribution_with(
            &model.trees,
            &model.tree_group,
            weights,
            dropped,
            features,
            g,
        )
    })
}

fn dropped_contribution_with(
    trees: &[Tree],
    tree_group: &[usize],
    weights: &[f32],
    dropped: &[usize],
    features: &FeatureMatrix,
    g: usize,
) -> Vec<f32> {
    let mut sum = vec![0.0f32; features.n_rows() * g];
    for &t in dropped {
        add_tree(&trees[t], weights[t], features, &mut sum, g, tree_group[t]);
    }
    sum
}

/// Margins with the dropped trees' contribution `drop` rescaled by `factor` (their weights' new scale).
fn rescale_dropped(margins: &mut [f32], drop: &[f32], factor: f32) {
    margins
        .par_iter_mut()
        .zip(drop.par_iter())
        .for_each(|(m, &d)| *m += (factor - 1.0) * d);
}

/// `sampling_method=gradient_based`: keeps row i with probability p_i = min(1, u_i / t), u_i = sqrt(g_i² + λh_i²),
/// where t makes the expected number of kept rows `subsample` × rows, and divides kept rows' gradient pairs by p_i
/// so the sampled histogram stays unbiased. Rows with zero gradient are never kept. Returns the kept rows.
fn gradient_based_sample(
    gradients: &mut [GradientPair],
    subsample: f64,
    lambda: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    let n = gradients.len();
    let regularized: Vec<f64> = gradients
        .iter()
        .map(|p| {
            let (g, h) = (p.grad as f64, p.hess as f64);
            (g * g + lambda * h * h).sqrt()
        })
        .collect();
    let expected = (subsample * n as f64).max(1.0);
    if expected >= n as f64 {
        return (0..n as u32).collect();
    }
    let threshold = sampling_threshold(&regularized, expected);
    if threshold <= 0.0 {
        return (0..n as u32).collect();
    }
    let mut kept = Vec::with_capacity(expected as usize + 1);
    for (row, (&u, pair)) in regularized.iter().zip(gradients.iter_mut()).enumerate() {
        let p = (u / threshold).min(1.0);
        if p > 0.0 && rng.gen::<f64>() < p {
            pair.grad = (pair.grad as f64 / p) as f32;
            pair.hess = (pair.hess as f64 / p) as f32;
            kept.push(row as u32);
        }
    }
    kept
}

/// The t with Σ min(1, u_i / t) = `expected` (0 < expected < n): the rows above t are kept surely, the rest in
/// proportion to u_i. Returns 0 when the values sum to 0.
fn sampling_threshold(values: &[f64], expected: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    // suffix[k] = Σ_{i ≥ k} sorted[i]
    let mut suffix = vec![0.0f64; sorted.len() + 1];
    for i in (0..sorted.len()).rev() {
        suffix[i] = suffix[i + 1] + sorted[i];
    }
    let mut k = 0;
    while (k as f64) < expected {
        // The k largest rows are kept surely; the others share the remaining expected count.
        let t = suffix[k] / (expected - k as f64);
        if sorted[k] <= t {
            return t;
        }
        k += 1;
    }
    sorted.get(k.saturating_sub(1)).copied().unwrap_or(0.0)
}

/// reg:absoluteerror's leaf refresh: each leaf becomes eta × the weighted median of its rows' residuals.
#[allow(clippy::too_many_arguments)]
fn refresh_leaves_to_median(
    tree: &mut Tree,
    leaves: &[(usize, usize, usize)],
    positions: &[u32],
    train: &TrainingSet<'_>,
    margins: &[f32],
    g: usize,
    group: usize,
    eta: f64,
) {
    for &(leaf, begin, end) in leaves {
        if begin == end {
            continue;
        }
        let rows = &positions[begin..end];
        let residuals: Vec<f32> = rows
            .iter()
            .map(|&r| train.labels[r as usize] - margins[r as usize * g + group])
            .collect();
        let weights: Vec<f32> = rows.iter().map(|&r| train.weights[r as usize]).collect();
        let value = (weighted_quantile(&residuals, &weights, 0.5) * eta) as f32;
        tree.split_condition[leaf] = value;
        tree.base_weight[leaf] = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampling_threshold_keeps_the_expected_number_of_rows() {
        let values: Vec<f64> = (0..1000).map(|i| ((i * 37) % 101) as f64 + 0.5).collect();
        for expected in [1.0, 10.0, 250.0, 999.0] {
            let t = sampling_threshold(&values, expected);
            let kept: f64 = values.iter().map(|&u| (u / t).min(1.0)).sum();
            assert!(
                (kept - expected).abs() < 1e-6 * expected.max(1.0),
                "{expected}: {kept}"
            );
        }
        // One dominant row is kept surely; the rest share what is left.
        let mut skewed = vec![1.0; 100];
        skewed[7] = 1e6;
        let t = sampling_threshold(&skewed, 10.0);
        assert!(1e6 / t >= 1.0 && (99.0 / t - 9.0).abs() < 1e-9, "{t}");
        assert_eq!(sampling_threshold(&[0.0; 10], 5.0), 0.0);
    }

    #[test]
    fn gradient_based_sampling_reweights_kept_rows() {
        let mut pairs: Vec<GradientPair> = (0..10_000)
            .map(|i| GradientPair {
                grad: ((i % 13) as f32 - 6.0) / 6.0,
                hess: 0.25,
            })
            .collect();
        let total: f64 = pairs.iter().map(|p| p.grad as f64).sum();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let kept = gradient_based_sample(&mut pairs, 0.2, 1.0, &mut rng);
        assert!((1700..2300).contains(&kept.len()), "{}", kept.len());
        // Unbiased: the reweighted kept gradients sum close to the full sum's scale.
        let kept_sum: f64 = kept.iter().map(|&r| pairs[r as usize].grad as f64).sum();
        let abs_total: f64 = (0..10_000)
            .map(|i| (((i % 13) as f64 - 6.0) / 6.0).abs())
            .sum();
        assert!(
            (kept_sum - total).abs() < 0.05 * abs_total,
            "{kept_sum} vs {total}"
        );
    }
}
