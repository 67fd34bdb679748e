//! The `gblinear` booster: a linear model per output group, fitted by coordinate descent on xgboost's second-order
//! objective, one pass over the bias and then every feature in order (`feature_selector=cyclic`) per round.
//!
//! Each round, with gradients `g` and hessians `h` at the current margins: the bias moves by
//! `eta · (-Σg / Σh)`, then each weight `w_j` by `eta · Δ` with `Δ` the elastic-net coordinate step of xgboost's
//! `CoordinateDelta` (L1 `alpha · Σweight`, L2 `lambda · Σweight`), and the gradients are updated after every step
//! (xgboost's `coord_descent` updater; its `shotgun` updater runs the same steps racing across threads). Missing
//! values (NaN, absent sparse entries) contribute nothing, as in xgboost.

use crate::data::FeatureMatrix;

use super::objective::GradientPair;

/// A linear booster's state.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearWeights {
    /// As xgboost's JSON lays them out: feature `j`'s weight for group `k` at `j * groups + k`, the biases last.
    pub weights: Vec<f32>,
    /// Boosting rounds applied (`boosted_rounds`).
    pub rounds: usize,
}

impl LinearWeights {
    /// All-zero weights for `num_feature` features and `groups` output groups.
    pub fn new(num_feature: usize, groups: usize) -> LinearWeights {
        LinearWeights {
            weights: vec![0.0; (num_feature + 1) * groups],
            rounds: 0,
        }
    }
}

/// The margins of every row: `base + bias + Σ_j w_j x_j` per group (missing values skipped).
pub fn predict(weights: &[f32], features: &FeatureMatrix, groups: usize, base: &[f32]) -> Vec<f32> {
    let n = features.n_rows();
    let num_feature = weights.len() / groups - 1;
    let mut out = vec![0.0f32; n * groups];
    for row in 0..n {
        let margins = &mut out[row * groups..(row + 1) * groups];
        for (k, m) in margins.iter_mut().enumerate() {
            *m = base[k] + weights[num_feature * groups + k];
        }
        features.row(row).for_each(|j, x| {
            if j < num_feature && !x.is_nan() {
                for (k, m) in margins.iter_mut().enumerate() {
                    *m += x * weights[j * groups + k];
                }
            }
        });
    }
    out
}

/// xgboost's elastic-net coordinate step for a weight `w` with gradient sums `sum_grad`, `sum_hess`.
fn coordinate_delta(sum_grad: f64, sum_hess: f64, w: f64, alpha: f64, lambda: f64) -> f64 {
    if sum_hess < 1e-5 {
        return 0.0;
    }
    let grad_l2 = sum_grad + lambda * w;
    let hess_l2 = sum_hess + lambda;
    if w - grad_l2 / hess_l2 >= 0.0 {
        (-(grad_l2 + alpha) / hess_l2).max(-w)
    } else {
        (-(grad_l2 - alpha) / hess_l2).min(-w)
    }
}

/// One round of coordinate descent on every group; updates `weights`, the gradients and the training `margins`.
#[allow(clippy::too_many_arguments)]
pub fn round(
    weights: &mut [f32],
    features: &FeatureMatrix,
    gradients: &mut [GradientPair],
    margins: &mut [f32],
    groups: usize,
    eta: f64,
    alpha: f64,
    lambda: f64,
    sum_instance_weight: f64,
) {
    let n = features.n_rows();
    let num_feature = weights.len() / groups - 1;
    let (alpha, lambda) = (alpha * sum_instance_weight, lambda * sum_instance_weight);
    let columns = columns_of(features, num_feature);
    for k in 0..groups {
        let (mut sum_grad, mut sum_hess) = (0.0f64, 0.0f64);
        for row in 0..n {
            let p = gradients[row * groups + k];
            if p.hess >= 0.0 {
                sum_grad += p.grad as f64;
                sum_hess += p.hess as f64;
            }
        }
        let bias_step = if sum_hess > 0.0 {
            (eta * -sum_grad / sum_hess) as f32
        } else {
            0.0
        };
        weights[num_feature * groups + k] += bias_step;
        for row in 0..n {
            let p = &mut gradients[row * groups + k];
            p.grad += p.hess * bias_step;
            margins[row * groups + k] += bias_step;
        }
        for (j, column) in columns.iter().enumerate() {
            let (mut sum_grad, mut sum_hess) = (0.0f64, 0.0f64);
            for &(row, x) in column {
                let p = gradients[row as usize * groups + k];
                if p.hess >= 0.0 {
                    sum_grad += (p.grad * x) as f64;
                    sum_hess += (p.hess * x * x) as f64;
                }
            }
            let w = weights[j * groups + k];
            let step = (eta * coordinate_delta(sum_grad, sum_hess, w as f64, alpha, lambda)) as f32;
            if step == 0.0 {
                continue;
            }
            weights[j * groups + k] += step;
            for &(row, x) in column {
                let p = &mut gradients[row as usize * groups + k];
                p.grad += p.hess * x * step;
                margins[row as usize * groups + k] += x * step;
            }
        }
    }
}

/// The non-missing (row, value) entries of each feature.
fn columns_of(features: &FeatureMatrix, num_feature: usize) -> Vec<Vec<(u32, f32)>> {
    let mut columns = vec![Vec::new(); num_feature];
    for row in 0..features.n_rows() {
        features.row(row).for_each(|j, x| {
            if j < num_feature && !x.is_nan() {
                columns[j].push((row as u32, x));
            }
        });
    }
    columns
}
