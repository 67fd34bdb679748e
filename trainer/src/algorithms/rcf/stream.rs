//! The forest on a stream (Guha et al. 2016, section 3): points are inserted into and deleted from live trees, each
//! tree keeping a uniform reservoir sample of everything inserted so far, and any point can be scored at any time.
//! [`Shingle`] turns a 1-D time series into overlapping windows, the papers' way of scoring a series by its shape.
//!
//! ```
//! use tern_trainer::algorithms::rcf::{Shingle, StreamingForest};
//!
//! let mut forest = StreamingForest::new(50, 64, 4, 7).unwrap();
//! let mut shingle = Shingle::new(4).unwrap();
//! let mut scores = Vec::new();
//! for t in 0..400 {
//!     let value = if t == 300 { 5.0 } else { (t as f32 * 0.2).sin() };
//!     if let Some(window) = shingle.push(value) {
//!         scores.push((t, forest.update(&window).unwrap()));
//!     }
//! }
//! let loudest = scores.iter().skip(100).max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
//! assert!((300..304).contains(&loudest.0));
//! ```

use std::collections::VecDeque;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::train::stream;
use super::tree::Tree;
use crate::data::record_error;
use crate::TrainError;

/// The name stream errors give their source.
const STREAM: &str = "stream";

/// A Random Cut Forest updated point by point.
#[derive(Debug, Clone)]
pub struct StreamingForest {
    feature_dim: usize,
    tree_size: usize,
    trees: Vec<Tree>,
    /// Per tree: the reservoir's slots, each holding the key of a point in the tree.
    slots: Vec<Vec<Option<u64>>>,
    /// Per tree: draws for the reservoir, then for insertion cuts.
    reservoir_rngs: Vec<ChaCha8Rng>,
    cut_rngs: Vec<ChaCha8Rng>,
    /// Points inserted so far (the next key).
    inserted: u64,
}

impl StreamingForest {
    /// An empty forest of `num_trees` trees, each keeping at most `num_samples_per_tree` points of `feature_dim`
    /// features, its random draws seeded by `seed`.
    ///
    /// # Errors
    /// [`TrainError::Config`] when any of the sizes is 0.
    pub fn new(
        num_trees: usize,
        num_samples_per_tree: usize,
        feature_dim: usize,
        seed: u64,
    ) -> Result<StreamingForest, TrainError> {
        if num_trees == 0 || num_samples_per_tree == 0 || feature_dim == 0 {
            return Err(TrainError::Config(format!(
                "a streaming forest needs num_trees, num_samples_per_tree and feature_dim of at least 1, got \
                 {num_trees}, {num_samples_per_tree}, {feature_dim}"
            )));
        }
        Ok(StreamingForest {
            feature_dim,
            tree_size: num_samples_per_tree,
            trees: (0..num_trees).map(|_| Tree::new(feature_dim)).collect(),
            slots: vec![Vec::new(); num_trees],
            reservoir_rngs: (0..num_trees).map(|t| stream(seed, t, 0)).collect(),
            cut_rngs: (0..num_trees).map(|t| stream(seed, t, 1)).collect(),
            inserted: 0,
        })
    }

    fn check(&self, point: &[f32]) -> Result<(), TrainError> {
        let record = self.inserted as usize + 1;
        if point.len() != self.feature_dim {
            return Err(record_error(
                STREAM,
                record,
                "features",
                format!("{} features, expected {}", point.len(), self.feature_dim),
            ));
        }
        if let Some(j) = point.iter().position(|v| !v.is_finite()) {
            return Err(record_error(
                STREAM,
                record,
                &format!("features[{j}]"),
                format!("{}, expected a finite number", point[j]),
            ));
        }
        Ok(())
    }

    /// The anomaly score of `point` against the forest as it stands (nothing is inserted): the trees' expected
    /// CoDisp averaged, as [`super::RcfModel::score_point`]; 0 while the forest is empty.
    ///
    /// # Errors
    /// [`TrainError::Data`] for a point of the wrong width or with a NaN/infinite value.
    pub fn score(&self, point: &[f32]) -> Result<f64, TrainError> {
        self.check(point)?;
        let total: f64 = self.trees.iter().map(|t| t.expected_codisp(point)).sum();
        Ok(total / self.trees.len() as f64)
    }

    /// Inserts `point` under the next key (0, 1, …, returned): each tree with a free slot takes it; a full tree
    /// takes the `n`-th point inserted with probability `num_samples_per_tree / n`, in place of a uniformly chosen
    /// point it holds (reservoir sampling, so each tree holds a uniform sample of the stream).
    ///
    /// # Errors
    /// As [`StreamingForest::score`]; the forest is unchanged.
    pub fn insert(&mut self, point: &[f32]) -> Result<u64, TrainError> {
        self.check(point)?;
        let key = self.inserted;
        self.inserted += 1;
        for t in 0..self.trees.len() {
            let slots = &mut self.slots[t];
            let slot = if let Some(free) = slots.iter().position(Option::is_none) {
                Some(free)
            } else if slots.len() < self.tree_size {
                slots.push(None);
                Some(slots.len() - 1)
            } else {
                let draw = self.reservoir_rngs[t].gen_range(0..self.inserted);
                (draw < self.tree_size as u64).then_some(draw as usize)
            };
            if let Some(slot) = slot {
                if let Some(evicted) = slots[slot].replace(key) {
                    self.trees[t].delete(evicted);
                }
                self.trees[t].insert(point, key, &mut self.cut_rngs[t]);
            }
        }
        Ok(key)
    }

    /// Scores `point` against the forest, then inserts it: the usual step on a stream. Returns the score.
    ///
    /// # Errors
    /// As [`StreamingForest::score`]; the forest is unchanged.
    pub fn update(&mut self, point: &[f32]) -> Result<f64, TrainError> {
        let score = self.score(point)?;
        self.insert(point)?;
        Ok(score)
    }

    /// Removes the point inserted under `key` from every tree holding it, freeing its slots for the next points
    /// inserted. Returns whether any tree held it.
    pub fn delete(&mut self, key: u64) -> bool {
        let mut found = false;
        for (tree, slots) in self.trees.iter_mut().zip(&mut self.slots) {
            if tree.delete(key) {
                found = true;
                if let Some(slot) = slots.iter_mut().find(|s| **s == Some(key)) {
                    *slot = None;
                }
            }
        }
        found
    }

    /// Whether any tree holds the point inserted under `key`.
    pub fn contains(&self, key: u64) -> bool {
        self.trees.iter().any(|t| t.contains(key))
    }

    /// The trees, for inspection.
    pub fn trees(&self) -> &[Tree] {
        &self.trees
    }
}

/// Overlapping windows of a 1-D series: after `size` values, each new value yields the last `size` values, oldest
/// first.
#[derive(Debug, Clone, PartialEq)]
pub struct Shingle {
    size: usize,
    window: VecDeque<f32>,
}

impl Shingle {
    /// A shingle of `size` values.
    ///
    /// # Errors
    /// [`TrainError::Config`] for size 0.
    pub fn new(size: usize) -> Result<Shingle, TrainError> {
        if size == 0 {
            return Err(TrainError::Config("shingle_size must be at least 1".into()));
        }
        Ok(Shingle {
            size,
            window: VecDeque::with_capacity(size),
        })
    }

    /// Appends `value`; returns the window once `size` values have arrived.
    pub fn push(&mut self, value: f32) -> Option<Vec<f32>> {
        if self.window.len() == self.size {
            self.window.pop_front();
        }
        self.window.push_back(value);
        (self.window.len() == self.size).then(|| self.window.iter().copied().collect())
    }

    /// The windows of a whole series: `series.len() − size + 1` of them (none for a shorter series).
    pub fn windows(series: &[f32], size: usize) -> Result<Vec<Vec<f32>>, TrainError> {
        let mut shingle = Shingle::new(size)?;
        Ok(series.iter().filter_map(|&v| shingle.push(v)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shingles_overlap_oldest_first() {
        let windows = Shingle::windows(&[1.0, 2.0, 3.0, 4.0], 3).unwrap();
        assert_eq!(windows, vec![vec![1.0, 2.0, 3.0], vec![2.0, 3.0, 4.0]]);
        assert!(Shingle::windows(&[1.0], 2).unwrap().is_empty());
        assert!(Shingle::new(0).is_err());
    }

    #[test]
    fn trees_keep_at_most_their_size_and_deletes_free_slots() {
        let mut forest = StreamingForest::new(5, 8, 2, 1).unwrap();
        for i in 0..100 {
            forest.insert(&[i as f32, (i % 7) as f32]).unwrap();
        }
        for tree in forest.trees() {
            assert_eq!(tree.mass(), 8);
        }
        // Later points replace earlier ones: some tree holds a point from the second half.
        assert!((50..100).any(|k| forest.contains(k)));
        let held: Vec<u64> = (0..100).filter(|&k| forest.contains(k)).collect();
        for &k in &held {
            assert!(forest.delete(k));
        }
        assert!(forest.trees().iter().all(|t| t.mass() == 0));
        assert!(!forest.delete(held[0]));
        forest.insert(&[0.5, 0.5]).unwrap();
        assert!(forest.trees().iter().all(|t| t.mass() == 1));
    }

    #[test]
    fn bad_points_are_refused_and_leave_the_forest_unchanged() {
        let mut forest = StreamingForest::new(3, 4, 2, 0).unwrap();
        let error = forest.insert(&[1.0]).unwrap_err().to_string();
        assert!(
            error.contains("record 1, field features: 1 features, expected 2"),
            "{error}"
        );
        let error = forest.update(&[1.0, f32::NAN]).unwrap_err().to_string();
        assert!(error.contains("features[1]"), "{error}");
        assert!(forest.trees().iter().all(|t| t.mass() == 0));
        assert!(StreamingForest::new(0, 4, 2, 0).is_err());
    }
}
