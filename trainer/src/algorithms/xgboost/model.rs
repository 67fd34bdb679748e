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
    /// The `gblinear` booster's weights; `None` for tree models.
    pub linear: Option<super::linear::LinearWeights>,
    /// `booster=dart`: each tree's weight (xgboost's `weight_drop`), multiplying its leaf values; `None` for
    /// `gbtree`, whose trees all weigh 1.
    pub tree_weights: Option<Vec<f32>>,
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
        if let Some(linear) = &self.linear {
            return linear.rounds;
        }
        self.trees.len() / self.num_group.max(1)
    }

    /// The weight of tree `t`: its dart weight, else 1.
    pub fn tree_weight(&self, t: usize) -> f32 {
        self.tree_weights
            .as_ref()
            .and_then(|w| w.get(t).copied())
            .unwrap_or(1.0)
    }

    /// Raw margins, rows × groups: the base margin plus every tree's leaf value (times its dart weight),
    /// accumulated in f32 in tree order.
    /// Rows are predicted in blocks (every tree over a block of rows) with trees packed into 16-byte nodes.
    pub fn predict_margins(&self, features: &FeatureMatrix) -> Vec<f32> {
        if let Some(linear) = &self.linear {
            return super::linear::predict(
                &linear.weights,
                features,
                self.num_group,
                &self.base_margin(),
            );
        }
        const BLOCK: usize = 64;
        let n = features.n_rows();
        let g = self.num_group;
        let base = self.base_margin();
        let forest: Vec<PackedTree> = self.trees.iter().map(PackedTree::new).collect();
        let weights: Vec<f32> = (0..self.trees.len()).map(|t| self.tree_weight(t)).collect();
        let width = self.num_feature.max(features.n_cols());
        let mut out = vec![0.0f32; n * g];
        let contiguous = match features {
            FeatureMatrix::Dense(m) if m.ncols() == width => m.as_slice(),
            _ => None,
        };
        out.par_chunks_mut(g * BLOCK)
            .enumerate()
            .for_each(|(chunk, out)| {
                let first = chunk * BLOCK;
                let rows = out.len() / g;
                let mut buffer = Vec::new();
                let block: &[f32] = match contiguous {
                    Some(all) => &all[first * width..(first + rows) * width],
                    None => {
                        buffer.resize(rows * width, f32::NAN);
                        for (r, slot) in buffer.chunks_mut(width).enumerate() {
                            match features {
                                FeatureMatrix::Dense(m) => slot
                                    .iter_mut()
                                    .zip(m.row(first + r).iter())
                                    .for_each(|(d, &v)| *d = v),
                                FeatureMatrix::Sparse(csr) => {
                                    let (indices, values) = csr.row(first + r);
                                    for (&j, &v) in indices.iter().zip(values) {
                                        if let Some(d) = slot.get_mut(j as usize) {
                                            *d = v;
                                        }
                                    }
                                }
                            }
                        }
                        &buffer
                    }
                };
                for margins in out.chunks_mut(g) {
                    margins.copy_from_slice(&base);
                }
                // A weight of 1 (every gbtree) multiplies exactly, so gbtree sums are unchanged by it.
                for ((tree, &group), &weight) in forest.iter().zip(&self.tree_group).zip(&weights) {
                    let mut lanes = block.chunks_exact(width * LANES);
                    let mut r = 0;
                    for rows in &mut lanes {
                        let values = tree.predict_lanes(rows, width);
                        for value in values {
                            out[r * g + group] += weight * value;
                            r += 1;
                        }
                    }
                    for row in lanes.remainder().chunks_exact(width) {
                        out[r * g + group] += weight * tree.predict(row);
                        r += 1;
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
        // Per split feature: (split count, summed loss change, summed hessian); memory follows the splits, not
        // num_feature (which an imported model may declare far beyond the features it uses).
        let mut used: std::collections::BTreeMap<usize, (usize, f64, f64)> = Default::default();
        for tree in &self.trees {
            for node in 0..tree.n_nodes() {
                if tree.is_leaf(node) {
                    continue;
                }
                let f = tree.split_index[node] as usize;
                if f >= self.num_feature {
                    continue;
                }
                let entry = used.entry(f).or_default();
                entry.0 += 1;
                entry.1 += tree.loss_change[node] as f64;
                entry.2 += tree.sum_hessian[node] as f64;
            }
        }
        Some(
            used.into_iter()
                .map(|(f, (count, gain, cover))| {
                    let c = count as f64;
                    let value = match kind {
                        "weight" => c,
                        "gain" => gain / c,
                        "cover" => cover / c,
                        "total_gain" => gain,
                        _ => cover,
                    };
                    (f, value)
                })
                .collect(),
        )
    }
}

/// A tree node packed for prediction: a leaf has `left == u32::MAX` and its value in `threshold`.
#[derive(Debug, Clone, Copy)]
struct PackedNode {
    /// The split feature; the top bit set sends missing values left.
    feature: u32,
    threshold: f32,
    left: u32,
    right: u32,
}

const DEFAULT_LEFT: u32 = 1 << 31;

/// Rows walked through a tree together, so the CPU overlaps their dependent node loads.
const LANES: usize = 8;

/// A tree as one contiguous array of [`PackedNode`]s.
struct PackedTree {
    nodes: Vec<PackedNode>,
}

impl PackedTree {
    fn new(tree: &Tree) -> PackedTree {
        let nodes = (0..tree.n_nodes())
            .map(|n| {
                if tree.is_leaf(n) {
                    PackedNode {
                        feature: 0,
                        threshold: tree.split_condition[n],
                        left: u32::MAX,
                        right: u32::MAX,
                    }
                } else {
                    let flag = if tree.default_left[n] {
                        DEFAULT_LEFT
                    } else {
                        0
                    };
                    PackedNode {
                        feature: tree.split_index[n] | flag,
                        threshold: tree.split_condition[n],
                        left: tree.left[n] as u32,
                        right: tree.right[n] as u32,
                    }
                }
            })
            .collect();
        PackedTree { nodes }
    }

    /// The leaf values of `LANES` consecutive rows of `width` values each, walked in lockstep.
    #[inline]
    fn predict_lanes(&self, rows: &[f32], width: usize) -> [f32; LANES] {
        let mut node = [0u32; LANES];
        loop {
            let mut moving = false;
            for lane in 0..LANES {
                let current = self.nodes[node[lane] as usize];
                if current.left == u32::MAX {
                    continue;
                }
                moving = true;
                let feature = (current.feature & !DEFAULT_LEFT) as usize;
                let x = if feature < width {
                    rows[lane * width + feature]
                } else {
                    f32::NAN
                };
                let left = if x.is_nan() {
                    current.feature & DEFAULT_LEFT != 0
                } else {
                    x < current.threshold
                };
                node[lane] = if left { current.left } else { current.right };
            }
            if !moving {
                break;
            }
        }
        node.map(|n| self.nodes[n as usize].threshold)
    }

    /// The leaf value for `row` (NaN marks missing values; features beyond the row are missing).
    #[inline]
    fn predict(&self, row: &[f32]) -> f32 {
        let mut node = self.nodes[0];
        while node.left != u32::MAX {
            let x = row
                .get((node.feature & !DEFAULT_LEFT) as usize)
                .copied()
                .unwrap_or(f32::NAN);
            let left = if x.is_nan() {
                node.feature & DEFAULT_LEFT != 0
            } else {
                x < node.threshold
            };
            node = self.nodes[if left { node.left } else { node.right } as usize];
        }
        node.threshold
    }
}
