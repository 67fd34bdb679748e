//! A trained gradient-boosted tree ensemble: trees, their output groups, the base score; prediction and feature
//! importance.

use rayon::prelude::*;

use crate::data::FeatureMatrix;

use super::objective::Objective;
use super::tree::Tree;

/// A boosted ensemble as xgboost defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub objective: Objective,
    /// Output groups: `num_class` for multi-class objectives, else 1.
    pub num_group: usize,
    pub num_feature: usize,
    /// Per group, in prediction space as xgboost's JSON stores it (`learner_model_param.base_score`).
    pub base_score: Vec<f32>,
    pub trees: Vec<Tree>,
    /// The output group of each tree (`tree_info`).
    pub tree_group: Vec<usize>,
    /// The 0-based boosting round early stopping kept (the model holds rounds `0..=best_iteration`).
    pub best_iteration: Option<usize>,
    pub best_score: Option<f64>,
    /// Objective settings carried for export (`scale_pos_weight`, `max_delta_step` of count:poisson).
    pub scale_pos_weight: f64,
    pub max_delta_step: f64,
}

impl Model {
    /// The base margin per group, computed in f32 as xgboost does at load time.
    pub fn base_margin(&self) -> Vec<f32> {
        self.base_score
            .iter()
            .map(|&b| self.objective.base_score_to_margin(b))
            .collect()
    }

    /// The number of boosting rounds (trees per group).
    pub fn num_rounds(&self) -> usize {
        self.trees.len() / self.num_group.max(1)
    }

    /// Raw margins, rows × groups: the base margin plus every tree's leaf value, accumulated in f32 in tree order.
    pub fn predict_margins(&self, features: &FeatureMatrix) -> Vec<f32> {
        let n = features.n_rows();
        let g = self.num_group;
        let base = self.base_margin();
        let mut out = vec![0.0f32; n * g];
        let width = self.num_feature.max(features.n_cols());
        out.par_chunks_mut(g * 256)
            .enumerate()
            .for_each(|(chunk, out)| {
                let mut dense = vec![f32::NAN; width];
                for (i, margins) in out.chunks_mut(g).enumerate() {
                    let row = chunk * 256 + i;
                    margins.copy_from_slice(&base);
                    let values: &[f32] = match features {
                        FeatureMatrix::Dense(matrix) => {
                            let view = matrix.row(row);
                            match view.to_slice() {
                                Some(slice) => slice,
                                None => {
                                    dense.iter_mut().zip(view.iter()).for_each(|(d, &v)| *d = v);
                                    &dense
                                }
                            }
                        }
                        FeatureMatrix::Sparse(csr) => {
                            let (indices, values) = csr.row(row);
                            dense.fill(f32::NAN);
                            for (&j, &v) in indices.iter().zip(values) {
                                if let Some(slot) = dense.get_mut(j as usize) {
                                    *slot = v;
                                }
                            }
                            &dense
                        }
                    };
                    for (tree, &group) in self.trees.iter().zip(&self.tree_group) {
                        margins[group] += tree.predict_dense(values);
                    }
                }
            });
        out
    }

    /// Transformed predictions, rows × groups (probabilities, exponentials, hinge labels).
    pub fn predict(&self, features: &FeatureMatrix) -> Vec<f32> {
        let mut values = self.predict_margins(features);
        let g = self.num_group;
        let objective = self.objective;
        values
            .par_chunks_mut(g)
            .for_each(|row| objective.transform(row));
        values
    }

    /// Feature importance of `kind` (`weight`, `gain`, `cover`, `total_gain`, `total_cover`), as xgboost's
    /// `get_score`: per feature used in a split, the split count, the mean (or total) loss change, or the mean (or
    /// total) hessian sum at its splits. Features never split on are absent.
    pub fn feature_importance(&self, kind: &str) -> Option<Vec<(usize, f64)>> {
        if !matches!(
            kind,
            "weight" | "gain" | "cover" | "total_gain" | "total_cover"
        ) {
            return None;
        }
        let mut count = vec![0usize; self.num_feature];
        let mut gain = vec![0.0f64; self.num_feature];
        let mut cover = vec![0.0f64; self.num_feature];
        for tree in &self.trees {
            for node in 0..tree.n_nodes() {
                if tree.is_leaf(node) {
                    continue;
                }
                let f = tree.split_index[node] as usize;
                if f >= self.num_feature {
                    continue;
                }
                count[f] += 1;
                gain[f] += tree.loss_change[node] as f64;
                cover[f] += tree.sum_hessian[node] as f64;
            }
        }
        let value = |f: usize| -> f64 {
            let c = count[f] as f64;
            match kind {
                "weight" => c,
                "gain" => gain[f] / c,
                "cover" => cover[f] / c,
                "total_gain" => gain[f],
                _ => cover[f],
            }
        };
        Some(
            (0..self.num_feature)
                .filter(|&f| count[f] > 0)
                .map(|f| (f, value(f)))
                .collect(),
        )
    }
}
