//! Growing one tree on the binned matrix: gradient histograms per node (rayon over rows, the larger child by
//! subtraction from its parent), the best split per node with a learned direction for missing values, and expansion
//! depthwise (level by level) or lossguide (best loss reduction first), as xgboost's `hist` updater does.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::binning::{BinIndices, BinnedMatrix, Cuts};
use super::objective::GradientPair;
use super::params::{GrowPolicy, TrainParams};
use super::tree::Tree;

/// xgboost's smallest loss change that counts as a split.
const RT_EPS: f64 = 1e-6;
/// Rows per rayon task when building a histogram.
const HIST_CHUNK: usize = 4096;

type Hist = Vec<[f64; 2]>;

/// Sums of gradients and hessians.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Stats {
    grad: f64,
    hess: f64,
}

impl Stats {
    fn sub(self, other: Stats) -> Stats {
        Stats {
            grad: self.grad - other.grad,
            hess: self.hess - other.hess,
        }
    }
    fn add(self, other: Stats) -> Stats {
        Stats {
            grad: self.grad + other.grad,
            hess: self.hess + other.hess,
        }
    }
}

/// The regularisation terms of xgboost's gain and leaf weight.
#[derive(Debug, Clone, Copy)]
struct Regularisation {
    lambda: f64,
    alpha: f64,
    max_delta_step: f64,
    min_child_weight: f64,
}

impl Regularisation {
    fn threshold_l1(&self, g: f64) -> f64 {
        if g > self.alpha {
            g - self.alpha
        } else if g < -self.alpha {
            g + self.alpha
        } else {
            0.0
        }
    }

    /// The optimal leaf weight of `s`, clipped to `max_delta_step` and the monotone `bounds`.
    fn weight(&self, s: Stats, bounds: (f64, f64)) -> f64 {
        if s.hess < self.min_child_weight || s.hess <= 0.0 {
            return 0.0;
        }
        let mut w = -self.threshold_l1(s.grad) / (s.hess + self.lambda);
        if self.max_delta_step != 0.0 && w.abs() > self.max_delta_step {
            w = self.max_delta_step.copysign(w);
        }
        w.clamp(bounds.0, bounds.1)
    }

    /// The loss reduction of a node with stats `s` at weight `w`.
    fn gain_given_weight(&self, s: Stats, w: f64) -> f64 {
        -(2.0 * self.threshold_l1(s.grad) * w + (s.hess + self.lambda) * w * w)
    }

    fn gain(&self, s: Stats, bounds: (f64, f64), constrained: bool) -> f64 {
        if s.hess < self.min_child_weight || s.hess <= 0.0 {
            return 0.0;
        }
        if self.max_delta_step == 0.0 && !constrained {
            let t = self.threshold_l1(s.grad);
            return t * t / (s.hess + self.lambda);
        }
        self.gain_given_weight(s, self.weight(s, bounds))
    }
}

/// The best split found for a node.
#[derive(Debug, Clone, Copy)]
struct Split {
    loss_change: f64,
    feature: usize,
    /// Rows whose bin is `<= bin` go left; -1 sends every non-missing value right.
    bin: i64,
    default_left: bool,
    left: Stats,
    right: Stats,
    threshold: f32,
}

impl Split {
    /// Whether `self` beats `other`: a larger loss change, or an equal one on a lower feature.
    fn better_than(&self, other: &Split) -> bool {
        self.loss_change > other.loss_change
            || (self.loss_change == other.loss_change && self.feature < other.feature)
    }
}

/// A node being grown.
struct NodeState {
    begin: usize,
    end: usize,
    depth: usize,
    stats: Stats,
    bounds: (f64, f64),
    /// Features split on along the path from the root (for interaction constraints).
    path: Vec<usize>,
    hist: Option<Hist>,
}

/// A node waiting in the expansion queue.
struct Candidate {
    node: usize,
    depth: usize,
    timestamp: usize,
    split: Split,
    lossguide: bool,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// The heap pops the greatest: shallowest first (depthwise) or largest loss change first (lossguide), earlier
    /// nodes first on ties.
    fn cmp(&self, other: &Self) -> Ordering {
        let primary = if self.lossguide {
            self.split.loss_change.total_cmp(&other.split.loss_change)
        } else {
            other.depth.cmp(&self.depth)
        };
        primary.then_with(|| other.timestamp.cmp(&self.timestamp))
    }
}

/// A grown tree, and which training rows ended in which leaf.
pub struct GrownTree {
    pub tree: Tree,
    /// The rows given to the grower, permuted so that each leaf's rows are contiguous.
    pub positions: Vec<u32>,
    /// (leaf node id, begin, end) into `positions`.
    pub leaves: Vec<(usize, usize, usize)>,
    /// Per node, the local bin of its split (`rows with bin <= split_bin go left`), for internal nodes.
    pub split_bins: Vec<i64>,
}

/// Feature constraints and sampling for one tree.
pub struct FeatureRules<'a> {
    /// Features this tree may use (colsample_bytree applied), ascending.
    pub tree_features: Vec<usize>,
    pub monotone: &'a [i8],
    pub interaction: &'a [Vec<usize>],
    pub rng: ChaCha8Rng,
}

/// Grows one tree over `rows` (ids into `binned`) with per-row gradients `gpair`.
pub fn grow_tree(
    binned: &BinnedMatrix,
    cuts: &Cuts,
    gpair: &[GradientPair],
    rows: Vec<u32>,
    params: &TrainParams,
    mut rules: FeatureRules<'_>,
) -> GrownTree {
    let reg = Regularisation {
        lambda: params.lambda,
        alpha: params.alpha,
        max_delta_step: params.max_delta_step,
        min_child_weight: params.min_child_weight,
    };
    let constrained = rules.monotone.iter().any(|&c| c != 0);
    let mut positions = rows;
    let root_stats = positions.iter().fold(Stats::default(), |acc, &r| {
        let g = gpair[r as usize];
        Stats {
            grad: acc.grad + g.grad as f64,
            hess: acc.hess + g.hess as f64,
        }
    });
    let no_bounds = (f64::NEG_INFINITY, f64::INFINITY);
    let root_weight = reg.weight(root_stats, no_bounds);
    let eta = params.eta;
    let mut tree = Tree::leaf(
        (root_weight * eta) as f32,
        (root_weight * eta) as f32,
        root_stats.hess as f32,
    );
    let mut split_bins = vec![-1i64];
    let mut nodes = vec![NodeState {
        begin: 0,
        end: positions.len(),
        depth: 0,
        stats: root_stats,
        bounds: no_bounds,
        path: Vec::new(),
        hist: None,
    }];
    let mut level_features: Vec<Option<Vec<usize>>> = Vec::new();
    let mut heap = BinaryHeap::new();
    let lossguide = params.grow_policy == GrowPolicy::Lossguide;
    let depth_open = |depth: usize| params.max_depth == 0 || depth < params.max_depth;
    let mut timestamp = 0usize;

    let mut evaluate =
        |node: usize, nodes: &mut Vec<NodeState>, rules: &mut FeatureRules<'_>| -> Option<Split> {
            let state = &nodes[node];
            let features = node_features(state, rules, &mut level_features, params);
            let hist = state
                .hist
                .as_ref()
                .expect("histogram built before evaluation");
            best_split(
                hist,
                binned,
                cuts,
                state,
                &features,
                &reg,
                rules.monotone,
                constrained,
            )
        };

    if depth_open(0) && !positions.is_empty() {
        nodes[0].hist = Some(build_hist(binned, gpair, &positions));
        if let Some(split) = evaluate(0, &mut nodes, &mut rules) {
            heap.push(Candidate {
                node: 0,
                depth: 0,
                timestamp,
                split,
                lossguide,
            });
            timestamp += 1;
        }
    }
    let mut num_leaves = 1usize;
    while let Some(first) = heap.pop() {
        // Depthwise growth expands a whole level at once, so the children's histograms build in parallel.
        let mut batch = vec![first];
        while !lossguide && heap.peek().is_some_and(|c| c.depth == batch[0].depth) {
            batch.extend(heap.pop());
        }
        let mut pending: Vec<(usize, usize, usize, Option<Hist>)> = Vec::new();
        for candidate in batch {
            let split = candidate.split;
            let node = candidate.node;
            let valid = split.loss_change > RT_EPS
                && split.loss_change >= params.gamma
                && split.left.hess > 0.0
                && split.right.hess > 0.0
                && depth_open(candidate.depth)
                && (params.max_leaves == 0 || num_leaves < params.max_leaves);
            if !valid {
                nodes[node].hist = None;
                continue;
            }
            // Partition the node's rows: left rows first, in their original order.
            let (begin, end) = (nodes[node].begin, nodes[node].end);
            let n_left = partition(binned, &mut positions[begin..end], &split);
            let depth = candidate.depth + 1;
            let parent_bounds = nodes[node].bounds;
            let (left_bounds, right_bounds) =
                child_bounds(&reg, &split, parent_bounds, rules.monotone);
            let left_weight = reg.weight(split.left, left_bounds);
            let right_weight = reg.weight(split.right, right_bounds);
            let left_value = (left_weight * eta) as f32;
            let right_value = (right_weight * eta) as f32;
            let left_id =
                tree.push_node(node as i32, left_value, left_value, split.left.hess as f32);
            let right_id = tree.push_node(
                node as i32,
                right_value,
                right_value,
                split.right.hess as f32,
            );
            split_bins.extend([-1, -1]);
            tree.left[node] = left_id as i32;
            tree.right[node] = right_id as i32;
            tree.split_index[node] = split.feature as u32;
            tree.split_condition[node] = split.threshold;
            tree.default_left[node] = split.default_left;
            tree.loss_change[node] = split.loss_change as f32;
            tree.base_weight[node] = reg.weight(nodes[node].stats, parent_bounds) as f32;
            split_bins[node] = split.bin;
            num_leaves += 1;
            let mut path = nodes[node].path.clone();
            if !path.contains(&split.feature) {
                path.push(split.feature);
            }
            let parent_hist = nodes[node].hist.take();
            for (id, b, e, stats, bounds) in [
                (left_id, begin, begin + n_left, split.left, left_bounds),
                (right_id, begin + n_left, end, split.right, right_bounds),
            ] {
                debug_assert_eq!(nodes.len(), id);
                nodes.push(NodeState {
                    begin: b,
                    end: e,
                    depth,
                    stats,
                    bounds,
                    path: path.clone(),
                    hist: None,
                });
            }
            if !depth_open(depth) {
                continue;
            }
            let (small, large) = if n_left <= end - begin - n_left {
                (left_id, right_id)
            } else {
                (right_id, left_id)
            };
            pending.push((small, large, node, parent_hist));
        }
        let positions_ref = &positions;
        let nodes_ref = &nodes;
        let built: Vec<(usize, Hist, usize, Hist)> = pending
            .into_par_iter()
            .map(|(small, large, _parent, parent_hist)| {
                let rows = |id: usize| &positions_ref[nodes_ref[id].begin..nodes_ref[id].end];
                let small_hist = build_hist(binned, gpair, rows(small));
                let large_hist = match parent_hist {
                    Some(mut parent) => {
                        parent.iter_mut().zip(&small_hist).for_each(|(p, s)| {
                            p[0] -= s[0];
                            p[1] -= s[1];
                        });
                        parent
                    }
                    None => build_hist(binned, gpair, rows(large)),
                };
                (small, small_hist, large, large_hist)
            })
            .collect();
        for (small, small_hist, large, large_hist) in built {
            nodes[small].hist = Some(small_hist);
            nodes[large].hist = Some(large_hist);
            let (left_id, right_id) = (small.min(large), small.max(large));
            let depth = nodes[left_id].depth;
            for child in [left_id, right_id] {
                match evaluate(child, &mut nodes, &mut rules) {
                    Some(split) => {
                        heap.push(Candidate {
                            node: child,
                            depth,
                            timestamp,
                            split,
                            lossguide,
                        });
                        timestamp += 1;
                    }
                    None => nodes[child].hist = None,
                }
            }
        }
    }
    let leaves = (0..tree.n_nodes())
        .filter(|&n| tree.is_leaf(n))
        .map(|n| (n, nodes[n].begin, nodes[n].end))
        .collect();
    GrownTree {
        tree,
        positions,
        leaves,
        split_bins,
    }
}

/// The monotone bounds of the two children of a split on a constrained feature: the midpoint of the children's
/// weights caps one side and floors the other.
fn child_bounds(
    reg: &Regularisation,
    split: &Split,
    bounds: (f64, f64),
    monotone: &[i8],
) -> ((f64, f64), (f64, f64)) {
    let constraint = monotone.get(split.feature).copied().unwrap_or(0);
    if constraint == 0 {
        return (bounds, bounds);
    }
    let wl = reg.weight(split.left, bounds);
    let wr = reg.weight(split.right, bounds);
    let mid = (wl + wr) / 2.0;
    if constraint > 0 {
        ((bounds.0, mid), (mid, bounds.1))
    } else {
        ((mid, bounds.1), (bounds.0, mid))
    }
}

/// The features a node may split on: the tree's sample, then the level's and the node's samples, then interaction
/// constraints.
fn node_features(
    state: &NodeState,
    rules: &mut FeatureRules<'_>,
    level_features: &mut Vec<Option<Vec<usize>>>,
    params: &TrainParams,
) -> Vec<usize> {
    let depth = state.depth;
    if level_features.len() <= depth {
        level_features.resize(depth + 1, None);
    }
    if level_features[depth].is_none() {
        let sampled = sample(
            &rules.tree_features,
            params.colsample_bylevel,
            &mut rules.rng,
        );
        level_features[depth] = Some(sampled);
    }
    let level = level_features[depth]
        .as_ref()
        .expect("level sample set above");
    let mut features = sample(level, params.colsample_bynode, &mut rules.rng);
    if !rules.interaction.is_empty() && !state.path.is_empty() {
        let allowed: Vec<usize> = rules
            .interaction
            .iter()
            .filter(|set| state.path.iter().all(|f| set.contains(f)))
            .flatten()
            .copied()
            .chain(state.path.iter().copied())
            .collect();
        features.retain(|f| allowed.contains(f));
    }
    features
}

/// A sorted random subset of `features` of size `round(fraction * len)`, at least one.
pub fn sample(features: &[usize], fraction: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    if fraction >= 1.0 || features.is_empty() {
        return features.to_vec();
    }
    let n = ((features.len() as f64 * fraction).round() as usize).clamp(1, features.len());
    let mut chosen: Vec<usize> = features.choose_multiple(rng, n).copied().collect();
    chosen.sort_unstable();
    chosen
}

/// A seeded generator for tree `tree_index` of a run seeded `seed`.
pub fn tree_rng(seed: u64, tree_index: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (tree_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

trait Slot: Copy + Send + Sync {
    fn index(self) -> usize;
}
impl Slot for u16 {
    #[inline(always)]
    fn index(self) -> usize {
        self as usize
    }
}
impl Slot for u32 {
    #[inline(always)]
    fn index(self) -> usize {
        self as usize
    }
}

/// The gradient histogram of `rows`: per slot, the sums of gradient and hessian.
fn build_hist(binned: &BinnedMatrix, gpair: &[GradientPair], rows: &[u32]) -> Hist {
    match &binned.bins {
        BinIndices::U8Local(bins) => build_hist_typed(
            &LocalBins {
                bins,
                offsets: &binned.slot_offsets[..binned.n_features],
            },
            binned.n_features,
            binned.n_slots(),
            gpair,
            rows,
        ),
        BinIndices::U16(bins) => build_hist_typed(
            &GlobalBins(bins),
            binned.n_features,
            binned.n_slots(),
            gpair,
            rows,
        ),
        BinIndices::U32(bins) => build_hist_typed(
            &GlobalBins(bins),
            binned.n_features,
            binned.n_slots(),
            gpair,
            rows,
        ),
    }
}

/// Row-major bins as the histogram kernel reads them.
trait RowBins: Sync {
    /// Adds (grad, hess) to the slots of `row`'s cells.
    fn add_row(&self, hist: &mut Hist, row: usize, n_features: usize, grad: f64, hess: f64);
    /// Starts loading `row`'s cells into cache.
    fn prefetch_row(&self, row: usize, n_features: usize);
}

/// Global slot indices per cell.
struct GlobalBins<'a, T>(&'a [T]);

impl<T: Slot> RowBins for GlobalBins<'_, T> {
    #[inline(always)]
    fn add_row(&self, hist: &mut Hist, row: usize, n_features: usize, grad: f64, hess: f64) {
        for &slot in &self.0[row * n_features..(row + 1) * n_features] {
            let entry = &mut hist[slot.index()];
            entry[0] += grad;
            entry[1] += hess;
        }
    }
    #[inline(always)]
    fn prefetch_row(&self, row: usize, n_features: usize) {
        prefetch(&self.0[row * n_features..]);
    }
}

/// One-byte local bins per cell, offset per feature.
struct LocalBins<'a> {
    bins: &'a [u8],
    offsets: &'a [usize],
}

impl RowBins for LocalBins<'_> {
    #[inline(always)]
    fn add_row(&self, hist: &mut Hist, row: usize, n_features: usize, grad: f64, hess: f64) {
        let cells = &self.bins[row * n_features..(row + 1) * n_features];
        for (&bin, &offset) in cells.iter().zip(self.offsets) {
            let entry = &mut hist[offset + bin as usize];
            entry[0] += grad;
            entry[1] += hess;
        }
    }
    #[inline(always)]
    fn prefetch_row(&self, row: usize, n_features: usize) {
        prefetch(&self.bins[row * n_features..]);
    }
}

fn accumulate<B: RowBins>(
    hist: &mut Hist,
    bins: &B,
    n_features: usize,
    gpair: &[GradientPair],
    rows: &[u32],
) {
    const PREFETCH_DISTANCE: usize = 16;
    for (i, &row) in rows.iter().enumerate() {
        if let Some(&ahead) = rows.get(i + PREFETCH_DISTANCE) {
            bins.prefetch_row(ahead as usize, n_features);
        }
        let row = row as usize;
        let g = gpair[row];
        bins.add_row(hist, row, n_features, g.grad as f64, g.hess as f64);
    }
}

/// Asks the CPU to start loading the cache line holding `data[0]` (rows of deep nodes are scattered in memory).
#[inline(always)]
fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(first) = data.first() {
        // SAFETY: a prefetch is a hint that never faults and reads no memory architecturally; the pointer comes
        // from a live reference.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (first as *const T).cast::<i8>(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

fn build_hist_typed<B: RowBins>(
    bins: &B,
    n_features: usize,
    n_slots: usize,
    gpair: &[GradientPair],
    rows: &[u32],
) -> Hist {
    let blocks = (rows.len() / HIST_CHUNK).clamp(1, 2 * rayon::current_num_threads());
    if blocks == 1 {
        let mut hist = vec![[0.0; 2]; n_slots];
        accumulate(&mut hist, bins, n_features, gpair, rows);
        return hist;
    }
    // A fixed number of contiguous row blocks per thread count, summed slot by slot in block order: the result
    // does not depend on how rayon schedules the blocks.
    let block_len = rows.len().div_ceil(blocks);
    let partials: Vec<Hist> = rows
        .par_chunks(block_len)
        .map(|block| {
            let mut hist = vec![[0.0; 2]; n_slots];
            accumulate(&mut hist, bins, n_features, gpair, block);
            hist
        })
        .collect();
    let (first, rest) = partials.split_first().expect("at least two blocks");
    let mut total = first.clone();
    total.par_chunks_mut(1024).enumerate().for_each(|(c, out)| {
        for partial in rest {
            for (t, p) in out.iter_mut().zip(&partial[c * 1024..]) {
                t[0] += p[0];
                t[1] += p[1];
            }
        }
    });
    total
}

/// Reorders `rows` so the rows going left come first (each side in its original order); returns the left count.
/// Large nodes are partitioned in parallel chunks whose results are concatenated in chunk order.
fn partition(binned: &BinnedMatrix, rows: &mut [u32], split: &Split) -> usize {
    let f = split.feature;
    let (n, begin) = (binned.n_rows, binned.slot_offsets[f]);
    match &binned.columns {
        BinIndices::U16(columns) => {
            let column = &columns[f * n..(f + 1) * n];
            partition_by(|row| column[row] as usize, binned, rows, split)
        }
        BinIndices::U32(columns) => {
            let column = &columns[f * n..(f + 1) * n];
            partition_by(|row| column[row] as usize, binned, rows, split)
        }
        BinIndices::U8Local(columns) => {
            let column = &columns[f * n..(f + 1) * n];
            partition_by(|row| begin + column[row] as usize, binned, rows, split)
        }
    }
}

/// [`partition`] with `slot_of(row)` the global histogram slot of the split feature's cell in `row`.
fn partition_by(
    slot_of: impl Fn(usize) -> usize + Sync,
    binned: &BinnedMatrix,
    rows: &mut [u32],
    split: &Split,
) -> usize {
    let f = split.feature;
    let begin = binned.slot_offsets[f];
    let missing = binned.slot_offsets[f + 1] - 1;
    let goes_left = |row: u32| {
        let slot = slot_of(row as usize);
        (slot == missing && split.default_left)
            || (slot != missing && (slot - begin) as i64 <= split.bin)
    };
    // Branch-free: every row is written to both sides and only the side it belongs to advances.
    let split_chunk = |chunk: &mut [u32]| -> (usize, Vec<u32>) {
        let mut right = vec![0u32; chunk.len()];
        let (mut n_left, mut n_right) = (0, 0);
        for i in 0..chunk.len() {
            let row = chunk[i];
            let left = goes_left(row);
            chunk[n_left] = row;
            right[n_right] = row;
            n_left += left as usize;
            n_right += !left as usize;
        }
        right.truncate(n_right);
        (n_left, right)
    };
    if rows.len() <= HIST_CHUNK {
        let (n_left, right) = split_chunk(rows);
        rows[n_left..].copy_from_slice(&right);
        return n_left;
    }
    let parts: Vec<(usize, Vec<u32>)> = rows.par_chunks_mut(HIST_CHUNK).map(split_chunk).collect();
    let mut lefts = Vec::with_capacity(rows.len());
    let mut rights = Vec::with_capacity(rows.len());
    for ((n_left, right), chunk) in parts.iter().zip(rows.chunks(HIST_CHUNK)) {
        lefts.extend_from_slice(&chunk[..*n_left]);
        rights.extend_from_slice(right);
    }
    let n_left = lefts.len();
    rows[..n_left].copy_from_slice(&lefts);
    rows[n_left..].copy_from_slice(&rights);
    n_left
}

/// The best split of a node over `features`, or `None` when no split satisfies `min_child_weight`.
#[allow(clippy::too_many_arguments)]
fn best_split(
    hist: &Hist,
    binned: &BinnedMatrix,
    cuts: &Cuts,
    state: &NodeState,
    features: &[usize],
    reg: &Regularisation,
    monotone: &[i8],
    constrained: bool,
) -> Option<Split> {
    let parent_gain = reg.gain(state.stats, state.bounds, constrained);
    let evaluate_feature = |&f: &usize| -> Option<Split> {
        let begin = binned.slot_offsets[f];
        let n_bins = cuts.n_bins(f);
        let bins = &hist[begin..begin + n_bins];
        let missing = Stats {
            grad: hist[begin + n_bins][0],
            hess: hist[begin + n_bins][1],
        };
        let total = state.stats;
        let constraint = monotone.get(f).copied().unwrap_or(0);
        let mut best: Option<Split> = None;
        let mut consider =
            |left: Stats, right: Stats, bin: i64, default_left: bool, threshold: f32| {
                if left.hess < reg.min_child_weight || right.hess < reg.min_child_weight {
                    return;
                }
                let (gain_left, gain_right) = if constrained {
                    let wl = reg.weight(left, state.bounds);
                    let wr = reg.weight(right, state.bounds);
                    if (constraint > 0 && wl > wr) || (constraint < 0 && wl < wr) {
                        return;
                    }
                    (
                        reg.gain_given_weight(left, wl),
                        reg.gain_given_weight(right, wr),
                    )
                } else {
                    (
                        reg.gain(left, state.bounds, false),
                        reg.gain(right, state.bounds, false),
                    )
                };
                let loss_change = gain_left + gain_right - parent_gain;
                if best.as_ref().is_none_or(|b| loss_change > b.loss_change) {
                    best = Some(Split {
                        loss_change,
                        feature: f,
                        bin,
                        default_left,
                        left,
                        right,
                        threshold,
                    });
                }
            };
        let entry = |b: usize| Stats {
            grad: bins[b][0],
            hess: bins[b][1],
        };
        let has_missing = missing.hess > 0.0 || missing.grad != 0.0;
        if cuts.exact {
            // xgboost's exact method: walk the values present in the node, largest first (missing values left),
            // splitting midway between adjacent present values; then smallest first when values are missing.
            let value = |b: usize| {
                if b == 0 {
                    cuts.observed_min[f]
                } else {
                    cuts.feature(f)[b - 1]
                }
            };
            let present = |b: usize| bins[b][0] != 0.0 || bins[b][1] != 0.0;
            let mut right = Stats::default();
            let mut above: Option<usize> = None;
            for b in (0..n_bins).rev().filter(|&b| present(b)) {
                if let Some(upper) = above {
                    let threshold = (value(b) + value(upper)) * 0.5;
                    consider(total.sub(right), right, b as i64, true, threshold);
                }
                right = right.add(entry(b));
                above = Some(b);
            }
            if has_missing {
                consider(total.sub(right), right, -1, true, cuts.min_values[f]);
                let mut left = Stats::default();
                let mut below: Option<usize> = None;
                for b in (0..n_bins).filter(|&b| present(b)) {
                    if let Some(lower) = below {
                        let threshold = (value(lower) + value(b)) * 0.5;
                        consider(left, total.sub(left), lower as i64, false, threshold);
                    }
                    left = left.add(entry(b));
                    below = Some(b);
                }
                if let Some(last) = below {
                    consider(
                        left,
                        total.sub(left),
                        last as i64,
                        false,
                        cuts.threshold(f, last as i64),
                    );
                }
            }
            return best;
        }
        // Missing values right: left takes bins 0..=b.
        let mut left = Stats::default();
        for b in 0..n_bins {
            left = left.add(entry(b));
            consider(
                left,
                total.sub(left),
                b as i64,
                false,
                cuts.threshold(f, b as i64),
            );
        }
        // Missing values left, when the node has any: right takes bins b..
        if has_missing {
            let mut right = Stats::default();
            for b in (0..n_bins).rev() {
                right = right.add(entry(b));
                let bin = b as i64 - 1;
                consider(total.sub(right), right, bin, true, cuts.threshold(f, bin));
            }
        }
        best
    };
    let pick = |a: Option<Split>, b: Option<Split>| match (a, b) {
        (Some(a), Some(b)) => Some(if b.better_than(&a) { b } else { a }),
        (a, None) => a,
        (None, b) => b,
    };
    if features.len() >= 32 && state.end - state.begin >= 1024 {
        features
            .par_iter()
            .map(evaluate_feature)
            .reduce(|| None, pick)
    } else {
        features.iter().map(evaluate_feature).fold(None, pick)
    }
}
