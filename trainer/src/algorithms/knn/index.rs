//! Exact k-nearest-neighbour search over stored points (flat), and the inverted-file (IVF) layout on top of it.
//!
//! **Flat search.** Every query is scored against every point approximately in float32 — on the CPU by a blocked
//! matrix product (`‖x‖² − 2x·y + ‖y‖²` for L2, `x·y` for inner products), on the GPU ([`Scorer::Gpu`], feature
//! `gpu`) by the wgpu kernels (`Σ(x−y)²`, `Σxy`); a point is kept as a candidate when its approximate score is
//! within twice the float32 rounding bound of the k-th best approximate score so far; the candidates are then
//! scored exactly (in f64, `Σ(x−y)²` or `Σxy`) and ranked. The result is the exact k nearest points under f64
//! arithmetic on the stored f32 values, whatever the device, block sizes or thread count: the CPU and the GPU find
//! the same neighbours with the same scores.
//!
//! **Ties** go to the lower point index (the earlier record of the sample): the neighbours are sorted by (score,
//! index), which is the order ONNX `TopK` gives (equal values: lower index first), so compiled graphs agree.
//!
//! **IVF.** `nlists` centroids are trained by Lloyd's k-means on up to 256 points per centroid (FAISS's default
//! sampling), each point is assigned to its nearest centroid (L2 for `L2`, largest inner product for
//! `INNER_PRODUCT` and `COSINE`), and the points are stored grouped by list. A query finds its `nprobe` nearest
//! centroids (a flat search over the centroids, ties to the lower list index) and scans only those lists, in
//! float32, then ranks the candidates exactly as the flat search does; only while the lists probed hold fewer than
//! `k` points are further lists taken, in the order of the query's exact centroid ranking (FAISS would return
//! fewer than k neighbours there). With every list probed the result equals the flat search's.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use ndarray::{s, Array2, ArrayView2, Axis};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::settings::Metric;
use crate::algorithm::{Device, TrainingContext};
use crate::TrainError;

/// Queries per block of the matrix product.
const QUERY_BLOCK: usize = 64;
/// Points per block of the matrix product.
const POINT_BLOCK: usize = 2048;

/// The k nearest points of each query, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    /// Neighbours per query.
    pub k: usize,
    /// `queries × k` point indices, row-major.
    pub indices: Vec<u32>,
    /// `queries × k` scores: squared Euclidean distance for L2 (ascending), inner product / cosine similarity
    /// otherwise (descending), as FAISS reports them.
    pub scores: Vec<f32>,
}

impl Neighbours {
    fn with_capacity(k: usize, queries: usize) -> Neighbours {
        Neighbours {
            k,
            indices: Vec::with_capacity(queries * k),
            scores: Vec::with_capacity(queries * k),
        }
    }

    fn extend(&mut self, ranked: impl IntoIterator<Item = (u32, f32)>) {
        for (index, score) in ranked {
            self.indices.push(index);
            self.scores.push(score);
        }
    }
}

/// Where the approximate scores of a flat search are computed: the training context's [`Device`]. Both find the
/// same neighbours (see the module documentation).
pub enum Scorer {
    /// A float32 matrix product on the CPU (ndarray + rayon).
    Cpu,
    /// The wgpu distance kernels ([`crate::gpu::Gpu::for_each_score_block`]).
    #[cfg(feature = "gpu")]
    Gpu(crate::gpu::Gpu),
}

impl Scorer {
    /// The scorer for `context`'s device, logging the GPU adapter chosen.
    ///
    /// # Errors
    /// [`TrainError::Config`] for `--device gpu` when no adapter opens or tern was built without the `gpu` feature.
    pub fn for_device(context: &TrainingContext) -> Result<Scorer, TrainError> {
        match context.device() {
            Device::Cpu => Ok(Scorer::Cpu),
            #[cfg(feature = "gpu")]
            Device::Gpu => {
                let gpu = crate::gpu::Gpu::new()
                    .map_err(|e| TrainError::Config(format!("knn --device gpu: {e}")))?;
                context.log(&format!("knn: distances on {}", gpu.adapter()));
                Ok(Scorer::Gpu(gpu))
            }
            #[cfg(not(feature = "gpu"))]
            Device::Gpu => Err(TrainError::Config(
                "knn --device gpu: this tern was built without the `gpu` feature (cargo build --release -p tern \
                 --features gpu)"
                    .into(),
            )),
        }
    }
}

/// Total order on f64 for heaps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Key(f64);

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The exact score of `x` against `y`, as a ranking key (smaller = nearer) and as reported.
fn exact(metric: Metric, x: &[f32], y: &[f32]) -> (f64, f64) {
    match metric {
        Metric::L2 => {
            let d: f64 = x
                .iter()
                .zip(y)
                .map(|(&a, &b)| {
                    let t = f64::from(a) - f64::from(b);
                    t * t
                })
                .sum();
            (d, d)
        }
        Metric::InnerProduct | Metric::Cosine => {
            let p: f64 = x
                .iter()
                .zip(y)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            (0.0 - p, p)
        }
    }
}

/// Twice the rounding bound of a float32 score of `metric` between a query of squared norm `query_norm` and points
/// of squared norm at most `max_norm`, in dimension `d` (any summation order, with slack for the norms and the sums
/// around the products): two approximate scores within it may be in either order exactly.
fn margin(metric: Metric, d: usize, query_norm: f64, max_norm: f64) -> f64 {
    let unit = 2.0 * (d as f64 + 8.0) * f64::from(f32::EPSILON);
    2.0 * match metric {
        Metric::L2 => unit * (query_norm + max_norm),
        _ => unit * (query_norm * max_norm).sqrt(),
    }
}

/// `Σ vᵢ²` in f64.
fn squared_norm(row: &[f32]) -> f64 {
    row.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

/// One query's k best approximate scores so far (smaller = nearer) and every point whose approximate score may
/// still rank among the exact k best.
struct Candidates {
    k: usize,
    margin: f64,
    best: BinaryHeap<Key>,
    kept: Vec<(f64, u32)>,
}

impl Candidates {
    fn new(k: usize, margin: f64) -> Candidates {
        Candidates {
            k,
            margin,
            best: BinaryHeap::with_capacity(k + 1),
            kept: Vec::new(),
        }
    }

    /// The k-th best approximate score so far (+∞ before k were offered).
    fn threshold(&self) -> f64 {
        if self.best.len() < self.k {
            f64::INFINITY
        } else {
            self.best.peek().map_or(f64::INFINITY, |t| t.0)
        }
    }

    #[inline]
    fn offer(&mut self, approx: f64, point: u32) {
        if self.best.len() < self.k {
            self.best.push(Key(approx));
        } else if approx < self.threshold() {
            self.best.pop();
            self.best.push(Key(approx));
        }
        if approx <= self.threshold() + self.margin {
            self.kept.push((approx, point));
            if self.kept.len() > 4 * self.k + 256 {
                let limit = self.threshold() + self.margin;
                self.kept.retain(|&(a, _)| a <= limit);
            }
        }
    }

    /// The exact k nearest of the candidates to `x` among `points`, nearest first (ties to the lower index), with
    /// their reported scores.
    fn rank(self, x: &[f32], points: ArrayView2<f32>, metric: Metric) -> Vec<(u32, f32)> {
        let limit = self.threshold() + self.margin;
        let mut ranked: Vec<(f64, u32, f64)> = self
            .kept
            .iter()
            .filter(|&&(a, _)| a <= limit)
            .map(|&(_, j)| {
                let y = points.row(j as usize);
                let (key, score) = match y.as_slice() {
                    Some(y) => exact(metric, x, y),
                    None => exact(metric, x, &y.to_vec()),
                };
                (key, j, score)
            })
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        ranked
            .iter()
            .take(self.k)
            .map(|&(_, j, score)| (j, score as f32))
            .collect()
    }
}

/// Exact search of `queries` (rows) among `points` (rows), `k ≤ points` neighbours each, on the CPU;
/// `norms[i] = ‖pointᵢ‖²`.
pub fn flat_search(
    queries: ArrayView2<f32>,
    points: ArrayView2<f32>,
    norms: &[f64],
    metric: Metric,
    k: usize,
) -> Neighbours {
    let n = queries.nrows();
    let m = points.nrows();
    let d = points.ncols();
    let k = k.min(m);
    let max_norm = norms.iter().copied().fold(0.0f64, f64::max);
    let norms_f32: Vec<f32> = norms.iter().map(|&v| v as f32).collect();
    let blocks: Vec<Vec<(u32, f32)>> = (0..n)
        .into_par_iter()
        .step_by(QUERY_BLOCK)
        .map(|start| {
            let end = (start + QUERY_BLOCK).min(n);
            let block = queries.slice(s![start..end, ..]);
            let rows: Vec<Vec<f32>> = block.rows().into_iter().map(|r| r.to_vec()).collect();
            let query_norms: Vec<f64> = rows.iter().map(|r| squared_norm(r)).collect();
            let mut candidates: Vec<Candidates> = query_norms
                .iter()
                .map(|&qn| Candidates::new(k, margin(metric, d, qn, max_norm)))
                .collect();
            for p_start in (0..m).step_by(POINT_BLOCK) {
                let p_end = (p_start + POINT_BLOCK).min(m);
                let products = block.dot(&points.slice(s![p_start..p_end, ..]).t());
                for (r, row) in products.axis_iter(Axis(0)).enumerate() {
                    let qn = query_norms[r] as f32;
                    let found = &mut candidates[r];
                    for (offset, &g) in row.iter().enumerate() {
                        let j = p_start + offset;
                        let approx = match metric {
                            Metric::L2 => qn + norms_f32[j] - 2.0 * g,
                            _ => -g,
                        };
                        found.offer(f64::from(approx), j as u32);
                    }
                }
            }
            candidates
                .into_iter()
                .zip(&rows)
                .flat_map(|(found, x)| found.rank(x, points, metric))
                .collect()
        })
        .collect();
    let mut out = Neighbours::with_capacity(k, n);
    for block in blocks {
        out.extend(block);
    }
    debug_assert_eq!(out.indices.len(), n * k);
    out
}

/// [`flat_search`] with the approximate scores computed by `scorer`; the same neighbours and scores on every
/// scorer.
///
/// # Errors
/// [`TrainError::Algorithm`] when the GPU fails.
pub fn flat_search_on(
    scorer: &Scorer,
    queries: ArrayView2<f32>,
    points: ArrayView2<f32>,
    norms: &[f64],
    metric: Metric,
    k: usize,
) -> Result<Neighbours, TrainError> {
    match scorer {
        Scorer::Cpu => Ok(flat_search(queries, points, norms, metric, k)),
        #[cfg(feature = "gpu")]
        Scorer::Gpu(gpu) => gpu_flat_search(gpu, queries, points, norms, metric, k).map_err(|e| {
            TrainError::Algorithm {
                algorithm: super::NAME.into(),
                message: format!("distances on the GPU: {e}"),
            }
        }),
    }
}

/// [`flat_search`] with the approximate scores from the GPU, one block of queries at a time.
#[cfg(feature = "gpu")]
fn gpu_flat_search(
    gpu: &crate::gpu::Gpu,
    queries: ArrayView2<f32>,
    points: ArrayView2<f32>,
    norms: &[f64],
    metric: Metric,
    k: usize,
) -> Result<Neighbours, crate::gpu::GpuError> {
    use crate::gpu::Score;
    let (n, m, d) = (queries.nrows(), points.nrows(), points.ncols());
    let k = k.min(m);
    let max_norm = norms.iter().copied().fold(0.0f64, f64::max);
    let queries = queries.as_standard_layout();
    let points = points.as_standard_layout();
    let flat =
        |a: &ndarray::CowArray<f32, ndarray::Ix2>| -> Vec<f32> { a.iter().copied().collect() };
    let (query_values, point_values) = (flat(&queries), flat(&points));
    let score = match metric {
        Metric::L2 => Score::SquaredEuclidean,
        _ => Score::InnerProduct,
    };
    let mut out = Neighbours::with_capacity(k, n);
    gpu.for_each_score_block(&query_values, &point_values, d, score, |start, block| {
        let ranked: Vec<Vec<(u32, f32)>> = block
            .par_chunks_exact(m)
            .enumerate()
            .map(|(r, scores)| {
                let x = &query_values[(start + r) * d..(start + r + 1) * d];
                let mut found = Candidates::new(k, margin(metric, d, squared_norm(x), max_norm));
                for (j, &value) in scores.iter().enumerate() {
                    let approx = match metric {
                        Metric::L2 => f64::from(value),
                        _ => -f64::from(value),
                    };
                    found.offer(approx, j as u32);
                }
                found.rank(x, points.view(), metric)
            })
            .collect();
        for row in ranked {
            out.extend(row);
        }
    })?;
    debug_assert_eq!(out.indices.len(), n * k);
    Ok(out)
}

/// `‖row‖²` of every row, in f64.
pub fn squared_norms(points: ArrayView2<f32>) -> Vec<f64> {
    points
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|&v| f64::from(v) * f64::from(v)).sum())
        .collect()
}

/// The metric the coarse quantizer ranks centroids by: L2 for L2, inner product for the other two.
pub fn coarse_metric(metric: Metric) -> Metric {
    match metric {
        Metric::L2 => Metric::L2,
        _ => Metric::InnerProduct,
    }
}

/// `Σ (xᵢ − yᵢ)²` in f32 over eight interleaved partial sums (vectorised by the compiler).
#[inline]
fn squared_distance_f32(x: &[f32], y: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (xs, ys) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(a, b)| (a - b) * (a - b))
        .sum();
    for (a, b) in xs.zip(ys) {
        for i in 0..8 {
            let t = a[i] - b[i];
            lanes[i] += t * t;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `Σ xᵢ yᵢ` in f32 over eight interleaved partial sums (vectorised by the compiler).
#[inline]
fn inner_product_f32(x: &[f32], y: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (xs, ys) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in xs.zip(ys) {
        for i in 0..8 {
            lanes[i] += a[i] * b[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// An inverted-file layout: centroids, each point's list, and the points grouped by list.
#[derive(Debug, Clone, PartialEq)]
pub struct InvertedLists {
    /// `nlists × dim`.
    pub centroids: Array2<f32>,
    /// The list of every point.
    pub assignment: Vec<u32>,
    /// Lists searched per query (at least; more while fewer than k points were found).
    pub nprobe: usize,
    /// Point indices of each list, ascending.
    lists: Vec<Vec<u32>>,
    centroid_norms: Vec<f64>,
    /// The points' values list by list (list 0's points in `lists[0]` order, then list 1's, …), row-major.
    grouped: Vec<f32>,
    /// Where each list's points start in `grouped`, in points; `nlists + 1` entries.
    offsets: Vec<usize>,
    /// The largest `‖point‖²`.
    max_norm: f64,
}

impl InvertedLists {
    /// Trains `nlists` centroids on `points` (Lloyd's k-means, 20 iterations, from `seed`; the assignments computed
    /// by `scorer`) and assigns every point.
    ///
    /// # Errors
    /// [`TrainError::Algorithm`] when the GPU fails.
    pub fn train(
        scorer: &Scorer,
        points: ArrayView2<f32>,
        metric: Metric,
        nlists: usize,
        nprobe: usize,
        seed: u64,
    ) -> Result<InvertedLists, TrainError> {
        let m = points.nrows();
        let nlists = nlists.clamp(1, m.max(1));
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6976_665f_6b6d_6561);
        let train_rows = m.min(256 * nlists);
        let mut picked = sample(&mut rng, m, train_rows).into_vec();
        picked.sort_unstable();
        let training = points.select(Axis(0), &picked);
        let initial = sample(&mut rng, train_rows, nlists).into_vec();
        let mut centroids = training.select(Axis(0), &initial);
        let d = points.ncols();
        for _ in 0..20 {
            let norms = squared_norms(centroids.view());
            let nearest = flat_search_on(
                scorer,
                training.view(),
                centroids.view(),
                &norms,
                Metric::L2,
                1,
            )?;
            let mut sums = vec![0.0f64; nlists * d];
            let mut counts = vec![0usize; nlists];
            for (row, &c) in training.rows().into_iter().zip(&nearest.indices) {
                let c = c as usize;
                counts[c] += 1;
                for (s, &v) in sums[c * d..(c + 1) * d].iter_mut().zip(row.iter()) {
                    *s += f64::from(v);
                }
            }
            for c in 0..nlists {
                // An empty list keeps its centroid.
                if counts[c] > 0 {
                    for j in 0..d {
                        centroids[[c, j]] = (sums[c * d + j] / counts[c] as f64) as f32;
                    }
                }
            }
        }
        let norms = squared_norms(centroids.view());
        let assignment = flat_search_on(
            scorer,
            points,
            centroids.view(),
            &norms,
            coarse_metric(metric),
            1,
        )?
        .indices;
        Ok(InvertedLists::from_parts(
            points,
            centroids,
            Some(assignment),
            metric,
            nprobe,
        ))
    }

    /// Rebuilds the lists from `centroids` and each point's list (`assignment`, computed when `None`).
    pub fn from_parts(
        points: ArrayView2<f32>,
        centroids: Array2<f32>,
        assignment: Option<Vec<u32>>,
        metric: Metric,
        nprobe: usize,
    ) -> InvertedLists {
        let centroid_norms = squared_norms(centroids.view());
        let assignment = assignment.unwrap_or_else(|| {
            flat_search(
                points,
                centroids.view(),
                &centroid_norms,
                coarse_metric(metric),
                1,
            )
            .indices
        });
        let mut lists = vec![Vec::new(); centroids.nrows()];
        for (i, &list) in assignment.iter().enumerate() {
            lists[list as usize].push(i as u32);
        }
        let mut grouped = Vec::with_capacity(points.len());
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        offsets.push(0);
        for list in &lists {
            for &j in list {
                grouped.extend(points.row(j as usize).iter().copied());
            }
            offsets.push(offsets.last().copied().unwrap_or(0) + list.len());
        }
        let max_norm = squared_norms(points).into_iter().fold(0.0f64, f64::max);
        InvertedLists {
            nprobe: nprobe.clamp(1, centroids.nrows()),
            centroids,
            assignment,
            lists,
            centroid_norms,
            grouped,
            offsets,
            max_norm,
        }
    }

    /// The number of lists.
    pub fn nlists(&self) -> usize {
        self.centroids.nrows()
    }

    /// Searches `queries` among `points` (the points these lists index) for `k` neighbours each, on the CPU.
    pub fn search(
        &self,
        queries: ArrayView2<f32>,
        points: ArrayView2<f32>,
        metric: Metric,
        k: usize,
    ) -> Neighbours {
        let coarse = flat_search(
            queries,
            self.centroids.view(),
            &self.centroid_norms,
            coarse_metric(metric),
            self.nprobe,
        );
        self.scan(queries, points, metric, k, &coarse)
    }

    /// [`InvertedLists::search`] with the centroids ranked by `scorer` (the probed lists are scanned on the CPU);
    /// the same neighbours on every scorer.
    ///
    /// # Errors
    /// [`TrainError::Algorithm`] when the GPU fails.
    pub fn search_on(
        &self,
        scorer: &Scorer,
        queries: ArrayView2<f32>,
        points: ArrayView2<f32>,
        metric: Metric,
        k: usize,
    ) -> Result<Neighbours, TrainError> {
        let coarse = flat_search_on(
            scorer,
            queries,
            self.centroids.view(),
            &self.centroid_norms,
            coarse_metric(metric),
            self.nprobe,
        )?;
        Ok(self.scan(queries, points, metric, k, &coarse))
    }

    /// Every list of the exact centroid ranking of `x`, nearest first (ties to the lower list index).
    fn ranked_lists(&self, x: &[f32], metric: Metric) -> Vec<u32> {
        let coarse = coarse_metric(metric);
        let mut ranked: Vec<(f64, u32)> = self
            .centroids
            .rows()
            .into_iter()
            .enumerate()
            .map(|(l, c)| {
                let key = match c.as_slice() {
                    Some(c) => exact(coarse, x, c).0,
                    None => exact(coarse, x, &c.to_vec()).0,
                };
                (key, l as u32)
            })
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        ranked.into_iter().map(|(_, l)| l).collect()
    }

    /// Scans the lists `coarse` ranks first (its `nprobe` nearest centroids per query; more, in the exact centroid
    /// order, while fewer than `k` points were found) in float32, and ranks the candidates exactly.
    fn scan(
        &self,
        queries: ArrayView2<f32>,
        points: ArrayView2<f32>,
        metric: Metric,
        k: usize,
        coarse: &Neighbours,
    ) -> Neighbours {
        let k = k.min(points.nrows());
        let d = points.ncols();
        let probe = coarse.k;
        let size = |list: u32| self.lists[list as usize].len();
        let rows: Vec<Vec<(u32, f32)>> = (0..queries.nrows())
            .into_par_iter()
            .map(|q| {
                let x = queries.row(q).to_vec();
                let nearest = &coarse.indices[q * probe..(q + 1) * probe];
                let found: usize = nearest.iter().map(|&l| size(l)).sum();
                let probed: Vec<u32> = if found >= k {
                    nearest.to_vec()
                } else {
                    let mut probed = Vec::new();
                    let mut found = 0;
                    for (rank, list) in self.ranked_lists(&x, metric).into_iter().enumerate() {
                        if rank >= self.nprobe && found >= k {
                            break;
                        }
                        found += size(list);
                        probed.push(list);
                    }
                    probed
                };
                let mut candidates =
                    Candidates::new(k, margin(metric, d, squared_norm(&x), self.max_norm));
                for list in probed {
                    let list = list as usize;
                    let values = &self.grouped[self.offsets[list] * d..self.offsets[list + 1] * d];
                    for (&j, y) in self.lists[list].iter().zip(values.chunks_exact(d)) {
                        let approx = match metric {
                            Metric::L2 => squared_distance_f32(&x, y),
                            _ => -inner_product_f32(&x, y),
                        };
                        candidates.offer(f64::from(approx), j);
                    }
                }
                candidates.rank(&x, points, metric)
            })
            .collect();
        let mut out = Neighbours::with_capacity(k, queries.nrows());
        for row in rows {
            out.extend(row);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force with the same ranking rule, for reference.
    fn naive(queries: &Array2<f32>, points: &Array2<f32>, metric: Metric, k: usize) -> Neighbours {
        let mut out = Neighbours {
            k,
            indices: Vec::new(),
            scores: Vec::new(),
        };
        for q in queries.rows() {
            let mut all: Vec<(f64, u32, f64)> = points
                .rows()
                .into_iter()
                .enumerate()
                .map(|(j, p)| {
                    let (key, score) = exact(metric, &q.to_vec(), &p.to_vec());
                    (key, j as u32, score)
                })
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for r in all.iter().take(k) {
                out.indices.push(r.1);
                out.scores.push(r.2 as f32);
            }
        }
        out
    }

    fn data(rows: usize, d: usize, seed: u64, integer: bool) -> Array2<f32> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        Array2::from_shape_fn((rows, d), |_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 40) as f32 / (1u64 << 24) as f32;
            if integer {
                (u * 4.0).floor()
            } else {
                u * 1000.0 - 500.0
            }
        })
    }

    #[test]
    fn blocked_search_equals_brute_force_with_ties_to_the_lower_index() {
        // Integer data in [0, 4) over 3 dimensions: many exact ties, spread over several point blocks.
        for (integer, d) in [(true, 3), (false, 17)] {
            let points = data(5000, d, 1, integer);
            let queries = data(150, d, 2, integer);
            for metric in [Metric::L2, Metric::InnerProduct] {
                let norms = squared_norms(points.view());
                let got = flat_search(queries.view(), points.view(), &norms, metric, 7);
                assert_eq!(got, naive(&queries, &points, metric, 7), "{metric:?}");
            }
        }
    }

    #[test]
    fn ivf_with_every_list_probed_is_exact_and_finds_k_when_lists_are_short() {
        let points = data(3000, 8, 3, false);
        let queries = data(40, 8, 4, false);
        let lists =
            InvertedLists::train(&Scorer::Cpu, points.view(), Metric::L2, 30, 30, 0).unwrap();
        assert_eq!(
            lists.search(queries.view(), points.view(), Metric::L2, 5),
            naive(&queries, &points, Metric::L2, 5)
        );
        // One probed list may hold fewer than k = 400 points: further lists are searched.
        let one = InvertedLists::from_parts(
            points.view(),
            lists.centroids.clone(),
            Some(lists.assignment.clone()),
            Metric::L2,
            1,
        );
        let found = one.search(queries.view(), points.view(), Metric::L2, 400);
        assert_eq!(found.indices.len(), 40 * 400);
    }

    #[test]
    fn ivf_scans_only_the_probed_lists_and_ranks_them_exactly() {
        let points = data(4000, 12, 5, false);
        let queries = data(60, 12, 6, false);
        for metric in [Metric::L2, Metric::InnerProduct] {
            for nprobe in [1, 3] {
                let lists =
                    InvertedLists::train(&Scorer::Cpu, points.view(), metric, 20, nprobe, 1)
                        .unwrap();
                let found = lists.search(queries.view(), points.view(), metric, 6);
                for (q, query) in queries.rows().into_iter().enumerate() {
                    // The naive answer: brute force over the points of the query's nprobe nearest lists.
                    let x = query.to_vec();
                    let probed = &lists.ranked_lists(&x, metric)[..nprobe];
                    let members: Vec<usize> = (0..points.nrows())
                        .filter(|&j| probed.contains(&lists.assignment[j]))
                        .collect();
                    let subset = points.select(Axis(0), &members);
                    let want = naive(&query.to_owned().insert_axis(Axis(0)), &subset, metric, 6);
                    let want: Vec<u32> = want
                        .indices
                        .iter()
                        .map(|&i| members[i as usize] as u32)
                        .collect();
                    assert_eq!(
                        found.indices[q * 6..(q + 1) * 6],
                        want[..],
                        "{metric:?} nprobe {nprobe} query {q}"
                    );
                }
            }
        }
    }
}
