//! A regression tree in xgboost's array layout (the layout of its JSON model), and prediction through it.

use serde::{Deserialize, Serialize};

/// A tree as parallel per-node arrays; node 0 is the root. A leaf has `left == -1`, and its value (learning rate
/// applied) is `split_condition`. Internal nodes send `x[split_index] < split_condition` left, a missing value to
/// the left child when `default_left`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tree {
    pub left: Vec<i32>,
    pub right: Vec<i32>,
    pub parent: Vec<i32>,
    pub split_index: Vec<u32>,
    pub split_condition: Vec<f32>,
    pub default_left: Vec<bool>,
    pub loss_change: Vec<f32>,
    pub sum_hessian: Vec<f32>,
    pub base_weight: Vec<f32>,
}

/// The parent of the root in xgboost's JSON.
pub const NO_PARENT: i32 = i32::MAX;

impl Tree {
    /// A tree of one leaf.
    pub fn leaf(value: f32, weight: f32, sum_hessian: f32) -> Tree {
        let mut tree = Tree::default();
        tree.push_node(NO_PARENT, value, weight, sum_hessian);
        tree
    }

    /// Appends a leaf node and returns its id.
    pub fn push_node(&mut self, parent: i32, value: f32, weight: f32, sum_hessian: f32) -> usize {
        self.left.push(-1);
        self.right.push(-1);
        self.parent.push(parent);
        self.split_index.push(0);
        self.split_condition.push(value);
        self.default_left.push(false);
        self.loss_change.push(0.0);
        self.sum_hessian.push(sum_hessian);
        self.base_weight.push(weight);
        self.left.len() - 1
    }

    pub fn n_nodes(&self) -> usize {
        self.left.len()
    }

    pub fn is_leaf(&self, node: usize) -> bool {
        self.left[node] < 0
    }

    /// The leaf reached by a row whose feature `f` has value `value(f)` (NaN when missing).
    #[inline]
    pub fn leaf_of(&self, value: impl Fn(usize) -> f32) -> usize {
        let mut node = 0usize;
        while self.left[node] >= 0 {
            let x = value(self.split_index[node] as usize);
            node = if x.is_nan() {
                if self.default_left[node] {
                    self.left[node] as usize
                } else {
                    self.right[node] as usize
                }
            } else if x < self.split_condition[node] {
                self.left[node] as usize
            } else {
                self.right[node] as usize
            };
        }
        node
    }

    /// The leaf value for a dense row with NaN for missing values.
    #[inline]
    pub fn predict_dense(&self, row: &[f32]) -> f32 {
        self.split_condition[self.leaf_of(|f| row.get(f).copied().unwrap_or(f32::NAN))]
    }

    /// The depth of the deepest leaf (a single leaf has depth 0).
    pub fn depth(&self) -> usize {
        let mut depth = vec![0usize; self.n_nodes()];
        let mut max = 0;
        for node in 0..self.n_nodes() {
            if self.left[node] >= 0 {
                for child in [self.left[node], self.right[node]] {
                    depth[child as usize] = depth[node] + 1;
                    max = max.max(depth[node] + 1);
                }
            }
        }
        max
    }

    /// Checks the arrays are consistent (lengths, child ids in range, a tree shape); `Err` says what is wrong.
    pub fn check(&self, n_features: usize) -> Result<(), String> {
        let n = self.n_nodes();
        if n == 0 {
            return Err("tree has no nodes".into());
        }
        let lengths = [
            self.right.len(),
            self.parent.len(),
            self.split_index.len(),
            self.split_condition.len(),
            self.default_left.len(),
            self.loss_change.len(),
            self.sum_hessian.len(),
            self.base_weight.len(),
        ];
        if lengths.iter().any(|&l| l != n) {
            return Err(format!(
                "node arrays have different lengths (left_children has {n})"
            ));
        }
        let mut seen = vec![false; n];
        for node in 0..n {
            let (l, r) = (self.left[node], self.right[node]);
            if l < 0 && r < 0 {
                continue;
            }
            if l <= node as i32 || r <= node as i32 || l as usize >= n || r as usize >= n {
                return Err(format!(
                    "node {node} has children {l}, {r}, expected ids in ({node}, {n})"
                ));
            }
            if seen[l as usize] || seen[r as usize] {
                return Err(format!(
                    "node {node}'s children are shared with another node"
                ));
            }
            seen[l as usize] = true;
            seen[r as usize] = true;
            if self.split_index[node] as usize >= n_features {
                return Err(format!(
                    "node {node} splits on feature {}, but the model has {n_features} features",
                    self.split_index[node]
                ));
            }
        }
        Ok(())
    }
}
