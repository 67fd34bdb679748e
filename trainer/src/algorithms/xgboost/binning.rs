//! Histogram cuts (a weighted quantile sketch per feature, `max_bin` bins) and the binned training matrix.
//!
//! As in xgboost's `hist`, each feature's cut values are upper bounds: a value `v` falls in the first bin whose cut
//! is greater than `v`, and a split after bin `b` sends `v < cut[b]` left. When a feature has at most `max_bin`
//! distinct values every distinct value starts a bin (so `hist` equals exact greedy on the training data); the last
//! cut is `max + |max| + 1e-5` and the feature's lower bound `min - |min| - 1e-5`, as xgboost writes them.

use rayon::prelude::*;

use crate::data::FeatureMatrix;

/// Per-feature cut values.
#[derive(Debug, Clone)]
pub struct Cuts {
    /// Feature `f`'s cuts are `values[offsets[f]..offsets[f+1]]`.
    pub offsets: Vec<usize>,
    pub values: Vec<f32>,
    /// Per feature, a value below every training value (the threshold that sends all non-missing values right).
    pub min_values: Vec<f32>,
}

impl Cuts {
    pub fn n_features(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The number of bins of feature `f`.
    pub fn n_bins(&self, f: usize) -> usize {
        self.offsets[f + 1] - self.offsets[f]
    }

    /// Feature `f`'s cuts.
    pub fn feature(&self, f: usize) -> &[f32] {
        &self.values[self.offsets[f]..self.offsets[f + 1]]
    }

    /// The bin of `value` in feature `f` (values beyond the last cut fall into the last bin).
    pub fn bin(&self, f: usize, value: f32) -> usize {
        let cuts = self.feature(f);
        let index = cuts.partition_point(|&c| c <= value);
        index.min(cuts.len().saturating_sub(1))
    }

    /// Builds cuts from the non-missing values of every column of `features`, each weighted by its row weight.
    /// `max_bin = None` keeps every distinct value (tree_method=exact).
    pub fn build(features: &FeatureMatrix, weights: &[f32], max_bin: Option<usize>) -> Cuts {
        let n_features = features.n_cols();
        let columns: Vec<Vec<(f32, f32)>> = match features {
            FeatureMatrix::Dense(matrix) => (0..n_features)
                .into_par_iter()
                .map(|f| {
                    matrix
                        .column(f)
                        .iter()
                        .zip(weights)
                        .filter(|(v, _)| !v.is_nan())
                        .map(|(&v, &w)| (v, w))
                        .collect()
                })
                .collect(),
            FeatureMatrix::Sparse(csr) => {
                let mut columns = vec![Vec::new(); n_features];
                for row in 0..csr.n_rows {
                    let (indices, values) = csr.row(row);
                    for (&j, &v) in indices.iter().zip(values) {
                        if !v.is_nan() {
                            columns[j as usize].push((v, weights[row]));
                        }
                    }
                }
                columns
            }
        };
        let per_feature: Vec<(Vec<f32>, f32)> = columns
            .into_par_iter()
            .map(|column| feature_cuts(column, max_bin))
            .collect();
        let mut offsets = vec![0];
        let mut values = Vec::new();
        let mut min_values = Vec::with_capacity(n_features);
        for (cuts, min) in per_feature {
            values.extend_from_slice(&cuts);
            offsets.push(values.len());
            min_values.push(min);
        }
        Cuts {
            offsets,
            values,
            min_values,
        }
    }
}

fn upper_sentinel(max: f32) -> f32 {
    max + (max.abs() + 1e-5)
}

/// One feature's cuts and lower bound from its (value, weight) pairs.
fn feature_cuts(mut column: Vec<(f32, f32)>, max_bin: Option<usize>) -> (Vec<f32>, f32) {
    if column.is_empty() {
        return (vec![f32::MAX], -f32::MAX);
    }
    column.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut distinct: Vec<(f32, f64)> = Vec::new();
    for (v, w) in column {
        match distinct.last_mut() {
            Some((last, acc)) if *last == v => *acc += w as f64,
            _ => distinct.push((v, w as f64)),
        }
    }
    let min = distinct[0].0;
    let max = distinct[distinct.len() - 1].0;
    let min_value = min - (min.abs() + 1e-5);
    let limit = max_bin.unwrap_or(usize::MAX);
    let mut cuts = Vec::new();
    if distinct.len() <= limit {
        cuts.extend(distinct[1..].iter().map(|(v, _)| *v));
    } else {
        let total: f64 = distinct.iter().map(|(_, w)| w).sum();
        let mut acc = 0.0;
        let mut next_bin = 1;
        for &(v, w) in &distinct {
            let rank_below = acc;
            acc += w;
            while next_bin < limit && rank_below >= total * next_bin as f64 / limit as f64 {
                if v > min && cuts.last().is_none_or(|&last| v > last) {
                    cuts.push(v);
                }
                next_bin += 1;
            }
        }
    }
    cuts.push(upper_sentinel(max));
    (cuts, min_value)
}

/// Bin indices of every (row, feature), row-major, as global histogram slots: feature `f`'s bin `b` is slot
/// `slot_offsets[f] + b`, and a missing value is slot `slot_offsets[f] + n_bins(f)`.
#[derive(Debug, Clone)]
pub enum BinIndices {
    U16(Vec<u16>),
    U32(Vec<u32>),
}

/// The training matrix, binned.
#[derive(Debug, Clone)]
pub struct BinnedMatrix {
    pub n_rows: usize,
    pub n_features: usize,
    /// Per feature, the first histogram slot; `slot_offsets[n_features]` is the histogram length.
    pub slot_offsets: Vec<usize>,
    pub bins: BinIndices,
}

impl BinnedMatrix {
    /// Bins `features` with `cuts`; NaN (dense) and absent entries (sparse) go to each feature's missing slot.
    pub fn new(features: &FeatureMatrix, cuts: &Cuts) -> BinnedMatrix {
        let n_features = cuts.n_features();
        let mut slot_offsets = vec![0usize];
        for f in 0..n_features {
            slot_offsets.push(slot_offsets[f] + cuts.n_bins(f) + 1);
        }
        let n_rows = features.n_rows();
        let total = slot_offsets[n_features];
        let bins = if total <= u16::MAX as usize {
            BinIndices::U16(fill(features, cuts, &slot_offsets, |s| s as u16))
        } else {
            BinIndices::U32(fill(features, cuts, &slot_offsets, |s| s as u32))
        };
        BinnedMatrix {
            n_rows,
            n_features,
            slot_offsets,
            bins,
        }
    }

    /// The histogram length.
    pub fn n_slots(&self) -> usize {
        self.slot_offsets[self.n_features]
    }

    /// The local bin of (row, feature); `None` when missing.
    pub fn local_bin(&self, row: usize, f: usize) -> Option<usize> {
        let slot = match &self.bins {
            BinIndices::U16(b) => b[row * self.n_features + f] as usize,
            BinIndices::U32(b) => b[row * self.n_features + f] as usize,
        };
        let local = slot - self.slot_offsets[f];
        (slot + 1 < self.slot_offsets[f + 1]).then_some(local)
    }
}

fn fill<T: Copy + Send + Sync + Default>(
    features: &FeatureMatrix,
    cuts: &Cuts,
    slot_offsets: &[usize],
    cast: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let n_features = cuts.n_features();
    let n_rows = features.n_rows();
    let mut out = vec![T::default(); n_rows * n_features];
    if n_features == 0 {
        return out;
    }
    let missing = |f: usize| cast(slot_offsets[f + 1] - 1);
    out.par_chunks_mut(n_features)
        .enumerate()
        .for_each(|(row, slots)| match features {
            FeatureMatrix::Dense(matrix) => {
                for (f, (slot, &v)) in slots.iter_mut().zip(matrix.row(row).iter()).enumerate() {
                    *slot = if v.is_nan() {
                        missing(f)
                    } else {
                        cast(slot_offsets[f] + cuts.bin(f, v))
                    };
                }
            }
            FeatureMatrix::Sparse(csr) => {
                for (f, slot) in slots.iter_mut().enumerate() {
                    *slot = missing(f);
                }
                let (indices, values) = csr.row(row);
                for (&j, &v) in indices.iter().zip(values) {
                    let f = j as usize;
                    if f < n_features && !v.is_nan() {
                        slots[f] = cast(slot_offsets[f] + cuts.bin(f, v));
                    }
                }
            }
        });
    out
}
