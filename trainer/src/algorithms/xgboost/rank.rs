//! Learning-to-rank gradients (LambdaMART) for `rank:pairwise` and `rank:ndcg`, over every pair of documents with
//! different relevance within a query group.
//!
//! For a pair `(i, j)` with `label_i > label_j` and `p = sigmoid(s_i - s_j)`, the gradient on `s_i` is
//! `-(1 - p)·Δ` and on `s_j` `+(1 - p)·Δ`, the hessian `p(1 - p)·Δ` on both, where `Δ` is 1 for `rank:pairwise`
//! and, for `rank:ndcg`, the change of the group's NDCG (exponential gain) from swapping the two, divided by
//! `0.01 + (max score - min score)` of the group once scores differ; each group's NDCG gradients are then scaled by `log2(1 + Σλ) / Σλ`, as xgboost normalises
//! them. Pairwise gradients are divided by the group's number of pairs.

use super::objective::{sigmoid, GradientPair, Objective};

/// Fills `out` (one pair per row) with the objective's lambda gradients, groups `groups[k]..groups[k+1]`.
pub fn lambda_gradients(
    objective: Objective,
    margins: &[f32],
    labels: &[f32],
    weights: &[f32],
    groups: &[usize],
    out: &mut [GradientPair],
) {
    out.iter_mut().for_each(|p| *p = GradientPair::default());
    let ndcg = objective == Objective::RankNdcg;
    for window in groups.windows(2) {
        let (b, e) = (window[0], window[1]);
        let labels = &labels[b..e];
        let scores = &margins[b..e];
        let n = labels.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&x, &y| scores[y].total_cmp(&scores[x]));
        let mut rank_of = vec![0usize; n];
        for (rank, &i) in order.iter().enumerate() {
            rank_of[i] = rank;
        }
        let gain = |l: f32| 2f64.powf(l as f64) - 1.0;
        let discount = |rank: usize| 1.0 / ((rank as f64 + 2.0).log2());
        let mut ideal: Vec<f32> = labels.to_vec();
        ideal.sort_by(|a, b| b.total_cmp(a));
        let idcg: f64 = ideal
            .iter()
            .enumerate()
            .map(|(r, &l)| gain(l) * discount(r))
            .sum();
        let best_score = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let worst_score = scores.iter().copied().fold(f32::INFINITY, f32::min);
        let score_range = (best_score - worst_score) as f64;
        let mut grad = vec![0.0f64; n];
        let mut hess = vec![0.0f64; n];
        let mut pairs = 0usize;
        let mut sum_lambda = 0.0f64;
        for i in 0..n {
            for j in 0..n {
                if labels[i] <= labels[j] {
                    continue;
                }
                pairs += 1;
                let diff = (scores[i] - scores[j]) as f64;
                let p = sigmoid(diff as f32) as f64;
                let delta = if ndcg {
                    if idcg <= 0.0 {
                        0.0
                    } else {
                        let swap = (gain(labels[i]) - gain(labels[j]))
                            * (discount(rank_of[i]) - discount(rank_of[j]));
                        let delta = swap.abs() / idcg;
                        if score_range > 0.0 {
                            delta / (0.01 + score_range)
                        } else {
                            delta
                        }
                    }
                } else {
                    1.0
                };
                let lambda = (1.0 - p) * delta;
                let h = (p * (1.0 - p) * delta).max(1e-16);
                grad[i] -= lambda;
                grad[j] += lambda;
                hess[i] += h;
                hess[j] += h;
                sum_lambda += 2.0 * lambda;
            }
        }
        let norm = if ndcg {
            if sum_lambda > 0.0 {
                (1.0 + sum_lambda).log2() / sum_lambda
            } else {
                1.0
            }
        } else if pairs > 0 {
            1.0 / pairs as f64 * n as f64
        } else {
            1.0
        };
        for i in 0..n {
            let w = weights[b + i] as f64;
            out[b + i] = GradientPair {
                grad: (grad[i] * norm * w) as f32,
                hess: (hess[i] * norm * w).max(1e-16) as f32,
            };
        }
    }
}
