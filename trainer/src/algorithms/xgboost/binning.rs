//! Histogram cuts (a weighted quantile sketch per feature, `max_bin` bins) and the binned training matrix.
//!
//! As in xgboost's `hist`, each feature's cut values are upper bounds: a value `v` falls in the first bin whose cut
//! is greater than `v`, and a split after bin `b` sends `v < cut[b]` left. When a feature has at most `max_bin`
//! distinct values every distinct value starts a bin (so `hist` equals exact greedy on the training data); the last
//! cut is `max + |max| + 1e-5` and the feature's lower bound `min - |min| - 1e-5`, as xgboost writes them.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::data::FeatureMatrix;

/// Rows sampled for the quantile sketch of large data.
pub const SKETCH_ROWS: usize = 1 << 18;

/// Per-feature cut values.
#[derive(Debug, Clone)]
pub struct Cuts {
    /// Feature `f`'s cuts are `values[offsets[f]..offsets[f+1]]`.
    pub offsets: Vec<usize>,
    pub values: Vec<f32>,
    /// Per feature, a value below every training value (the threshold that sends all non-missing values right).
    pub min_values: Vec<f32>,
    /// Every distinct value starts a bin (tree_method=exact), so bin `b > 0` holds exactly the value `cut[b - 1]`.
    pub exact: bool,
    /// Per feature, the smallest training value (NaN when all are missing).
    pub observed_min: Vec<f32>,
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

    /// The split threshold after bin `b` of feature `f` (`b = -1`: below every value): the cut itself.
    pub fn threshold(&self, f: usize, b: i64) -> f32 {
        if b < 0 {
            self.min_values[f]
        } else {
            self.feature(f)[b as usize]
        }
    }

    /// The bin of `value` in feature `f` (values beyond the last cut fall into the last bin).
    pub fn bin(&self, f: usize, value: f32) -> usize {
        let cuts = self.feature(f);
        let index = cuts.partition_point(|&c| c <= value);
        index.min(cuts.len().saturating_sub(1))
    }

    /// Builds cuts from the non-missing values of every column of `features`, each weighted by its row weight.
    /// `max_bin = None` keeps every distinct value (tree_method=exact). With more than [`SKETCH_ROWS`] rows and a
    /// `max_bin`, the quantiles are those of a seeded uniform sample of [`SKETCH_ROWS`] rows (rank error about
    /// 0.2%, well inside one bin of 256), as xgboost's own sketch is approximate at that size.
    pub fn build(features: &FeatureMatrix, weights: &[f32], max_bin: Option<usize>) -> Cuts {
        let n_features = features.n_cols();
        let n_rows = features.n_rows();
        let rows: Option<Vec<usize>> = (max_bin.is_some() && n_rows > SKETCH_ROWS).then(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(0x5EED);
            let mut rows = rand::seq::index::sample(&mut rng, n_rows, SKETCH_ROWS).into_vec();
            rows.sort_unstable();
            rows
        });
        let columns: Vec<Vec<(f32, f32)>> = match features {
            FeatureMatrix::Dense(matrix) => {
                // Gather row blocks once, then split per feature: reading the row-major matrix column by column
                // would stride through memory once per feature.
                let mut columns: Vec<Vec<(f32, f32)>> = (0..n_features)
                    .map(|_| Vec::with_capacity(rows.as_ref().map_or(n_rows, Vec::len)))
                    .collect();
                let mut push_row = |row: usize| {
                    let w = weights[row];
                    for (column, &v) in columns.iter_mut().zip(matrix.row(row).iter()) {
                        if !v.is_nan() {
                            column.push((v, w));
                        }
                    }
                };
                match &rows {
                    Some(rows) => rows.iter().for_each(|&r| push_row(r)),
                    None => (0..n_rows).for_each(&mut push_row),
                }
                columns
            }
            FeatureMatrix::Sparse(csr) => {
                let mut columns = vec![Vec::new(); n_features];
                let mut push_row = |row: usize| {
                    let (indices, values) = csr.row(row);
                    for (&j, &v) in indices.iter().zip(values) {
                        if !v.is_nan() && (j as usize) < n_features {
                            columns[j as usize].push((v, weights[row]));
                        }
                    }
                };
                match &rows {
                    Some(rows) => rows.iter().for_each(|&r| push_row(r)),
                    None => (0..n_rows).for_each(&mut push_row),
                }
                columns
            }
        };
        let ranges = value_ranges(features);
        let observed_min: Vec<f32> = ranges
            .iter()
            .map(|r| r.map_or(f32::NAN, |(lo, _)| lo))
            .collect();
        let per_feature: Vec<(Vec<f32>, f32)> = columns
            .into_par_iter()
            .zip(ranges)
            .map(|(column, range)| feature_cuts(column, max_bin, range))
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
            exact: max_bin.is_none(),
            observed_min,
        }
    }
}

fn upper_sentinel(max: f32) -> f32 {
    max + (max.abs() + 1e-5)
}

/// One entry of a weighted quantile summary: a value, the weight of everything below it (`rmin`), through it
/// (`rmax`), and its own weight (`wmin`).
#[derive(Debug, Clone, Copy)]
struct SummaryEntry {
    value: f32,
    rmin: f32,
    rmax: f32,
    wmin: f32,
}

/// Prunes the exact summary of `distinct` (value, weight) pairs to at most `max_size` entries, keeping the first
/// and last and, for each of `max_size - 2` evenly spaced ranks, the entry whose rank interval is closest: the rule
/// of xgboost's `WQSummary::SetPrune`, so that tern's cuts equal xgboost's on the same data.
fn prune_summary(distinct: &[(f32, f64)], max_size: usize) -> Vec<SummaryEntry> {
    let mut below = 0.0f64;
    let src: Vec<SummaryEntry> = distinct
        .iter()
        .map(|&(value, w)| {
            let entry = SummaryEntry {
                value,
                rmin: below as f32,
                rmax: (below + w) as f32,
                wmin: w as f32,
            };
            below += w;
            entry
        })
        .collect();
    let size = src.len();
    if size <= max_size {
        return src;
    }
    let begin = src[0].rmax;
    let range = src[size - 1].rmin - src[0].rmax;
    let n = max_size - 1;
    let mut out = vec![src[0]];
    let (mut i, mut last) = (1usize, 0usize);
    for k in 1..n {
        let dx2 = 2.0 * ((k as f32 * range) / n as f32 + begin);
        while i < size - 1 && dx2 >= src[i + 1].rmax + src[i + 1].rmin {
            i += 1;
        }
        if i == size - 1 {
            break;
        }
        let pick = if dx2 < (src[i].rmin + src[i].wmin) + (src[i + 1].rmax - src[i + 1].wmin) {
            i
        } else {
            i + 1
        };
        if pick != last {
            out.push(src[pick]);
            last = pick;
        }
    }
    if last != size - 1 {
        out.push(src[size - 1]);
    }
    out
}

/// Per feature, the smallest and largest non-missing value over every row (`None` when all are missing).
fn value_ranges(features: &FeatureMatrix) -> Vec<Option<(f32, f32)>> {
    let n_features = features.n_cols();
    let merge = |mut a: Vec<Option<(f32, f32)>>, b: Vec<Option<(f32, f32)>>| {
        for (x, y) in a.iter_mut().zip(b) {
            *x = match (*x, y) {
                (Some((lo, hi)), Some((l, h))) => Some((lo.min(l), hi.max(h))),
                (x, None) => x,
                (None, y) => y,
            };
        }
        a
    };
    let update = |acc: &mut Vec<Option<(f32, f32)>>, f: usize, v: f32| {
        if !v.is_nan() {
            acc[f] = Some(match acc[f] {
                Some((lo, hi)) => (lo.min(v), hi.max(v)),
                None => (v, v),
            });
        }
    };
    (0..features.n_rows())
        .into_par_iter()
        .fold(
            || vec![None; n_features],
            |mut acc, row| {
                match features {
                    FeatureMatrix::Dense(m) => m
                        .row(row)
                        .iter()
                        .enumerate()
                        .for_each(|(f, &v)| update(&mut acc, f, v)),
                    FeatureMatrix::Sparse(csr) => {
                        let (indices, values) = csr.row(row);
                        for (&j, &v) in indices.iter().zip(values) {
                            if (j as usize) < n_features {
                                update(&mut acc, j as usize, v);
                            }
                        }
                    }
                }
                acc
            },
        )
        .reduce(|| vec![None; n_features], merge)
}

/// One feature's cuts and lower bound from its (value, weight) pairs (all rows, or a sample of them) and the range
/// of its values over all rows.
fn feature_cuts(
    mut column: Vec<(f32, f32)>,
    max_bin: Option<usize>,
    range: Option<(f32, f32)>,
) -> (Vec<f32>, f32) {
    let Some((min, max)) = range else {
        return (vec![f32::MAX], -f32::MAX);
    };
    if column.is_empty() {
        return (vec![upper_sentinel(max)], min - (min.abs() + 1e-5));
    }
    column.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut distinct: Vec<(f32, f64)> = Vec::new();
    for (v, w) in column {
        match distinct.last_mut() {
            Some((last, acc)) if *last == v => *acc += w as f64,
            _ => distinct.push((v, w as f64)),
        }
    }
    let min_value = min - (min.abs() + 1e-5);
    let limit = max_bin.unwrap_or(usize::MAX);
    let mut cuts = Vec::new();
    if distinct.len() <= limit {
        cuts.extend(distinct.iter().map(|(v, _)| *v).filter(|&v| v > min));
    } else {
        let pruned = prune_summary(&distinct, limit + 1);
        for entry in &pruned[1..pruned.len().min(limit)] {
            if entry.value > min && cuts.last().is_none_or(|&last| entry.value > last) {
                cuts.push(entry.value);
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
    /// Local bins (`slot - slot_offsets[f]`), when no value is missing and no feature has more than 256 bins.
    U8Local(Vec<u8>),
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
    /// Row-major slots (row `r`'s are `[r * n_features, (r + 1) * n_features)`), for histograms.
    pub bins: BinIndices,
    /// The same slots column-major (feature `f`'s are `[f * n_rows, (f + 1) * n_rows)`), for partitioning rows.
    pub columns: BinIndices,
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
        let (bins, columns) = if total <= u16::MAX as usize {
            let bins = fill(features, cuts, &slot_offsets, |s| s as u16);
            let columns = transpose(&bins, n_rows, n_features);
            let narrow = (0..n_features).all(|f| cuts.n_bins(f) <= 256)
                && bins.par_chunks(n_features.max(1)).all(|row| {
                    row.iter()
                        .enumerate()
                        .all(|(f, &s)| (s as usize) + 1 < slot_offsets[f + 1])
                });
            let bins = if narrow {
                // No missing value and at most 256 bins per feature: one byte per cell, the local bin.
                BinIndices::U8Local(
                    bins.par_iter()
                        .enumerate()
                        .map(|(i, &s)| (s as usize - slot_offsets[i % n_features]) as u8)
                        .collect(),
                )
            } else {
                BinIndices::U16(bins)
            };
            (bins, BinIndices::U16(columns))
        } else {
            let bins = fill(features, cuts, &slot_offsets, |s| s as u32);
            let columns = transpose(&bins, n_rows, n_features);
            (BinIndices::U32(bins), BinIndices::U32(columns))
        };
        BinnedMatrix {
            n_rows,
            n_features,
            slot_offsets,
            bins,
            columns,
        }
    }

    /// The histogram length.
    pub fn n_slots(&self) -> usize {
        self.slot_offsets[self.n_features]
    }

    /// The local bin of (row, feature); `None` when missing.
    pub fn local_bin(&self, row: usize, f: usize) -> Option<usize> {
        let slot = match &self.bins {
            BinIndices::U8Local(b) => return Some(b[row * self.n_features + f] as usize),
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

/// The column-major copy of a row-major `n_rows × n_features` matrix, built in row blocks: each task reads its rows
/// contiguously and writes one contiguous run per feature.
fn transpose<T: Copy + Default + Send + Sync>(
    rows: &[T],
    n_rows: usize,
    n_features: usize,
) -> Vec<T> {
    const BLOCK: usize = 8192;
    let mut out = vec![T::default(); n_rows * n_features];
    if n_rows == 0 || n_features == 0 {
        return out;
    }
    let n_blocks = n_rows.div_ceil(BLOCK);
    let mut tasks: Vec<Vec<&mut [T]>> = (0..n_blocks)
        .map(|_| Vec::with_capacity(n_features))
        .collect();
    for column in out.chunks_mut(n_rows) {
        for (block, run) in column.chunks_mut(BLOCK).enumerate() {
            tasks[block].push(run);
        }
    }
    tasks
        .into_par_iter()
        .enumerate()
        .for_each(|(block, mut runs)| {
            let first = block * BLOCK;
            for (f, run) in runs.iter_mut().enumerate() {
                for (i, slot) in run.iter_mut().enumerate() {
                    *slot = rows[(first + i) * n_features + f];
                }
            }
        });
    out
}
