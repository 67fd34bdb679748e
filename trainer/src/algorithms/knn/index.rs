//! Exact k-nearest-neighbour search over stored points (flat), and the inverted-file (IVF) layout on top of it.
//!
//! **Flat search.** Queries and points are compared in blocks: a float32 matrix product gives every score
//! approximately (`‖x‖² − 2x·y + ‖y‖²` for L2, `x·y` for inner products); a point is kept as a candidate when its
//! approximate score is within twice the product's rounding bound of the k-th best approximate score so far; the
//! candidates are then scored exactly (in f64, `Σ(x−y)²` or `Σxy`) and ranked. The result is the exact k nearest
//! points under f64 arithmetic on the stored f32 values, whatever the block sizes or thread count.
//!
//! **Ties** go to the lower point index (the earlier record of the sample): the neighbours are sorted by (score,
//! index), which is the order ONNX `TopK` gives (equal values: lower index first), so compiled graphs agree.
//!
//! **IVF.** `nlists` centroids are trained by Lloyd's k-means on up to 256 points per centroid (FAISS's default
//! sampling), each point is assigned to its nearest centroid (L2 for `L2`, largest inner product for
//! `INNER_PRODUCT` and `COSINE`), and a query searches the lists of its `nprobe` nearest centroids (ranked like
//! points: ties to the lower list index), then further lists in that order while fewer than `k` points were found.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use ndarray::{s, Array2, ArrayView2, Axis};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::settings::Metric;

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

/// Exact search of `queries` (rows) among `points` (rows), `k ≤ points` neighbours each; `norms[i] = ‖pointᵢ‖²`.
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
    // Rounding bound of a float32 dot product of length d (with slack for the norms and the sums around it).
    let unit = 2.0 * (d as f64 + 8.0) * f64::from(f32::EPSILON);
    let blocks: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
        .into_par_iter()
        .step_by(QUERY_BLOCK)
        .map(|start| {
            let end = (start + QUERY_BLOCK).min(n);
            let block = queries.slice(s![start..end, ..]);
            let rows = end - start;
            let query_norms: Vec<f64> = block
                .rows()
                .into_iter()
                .map(|r| r.iter().map(|&v| f64::from(v) * f64::from(v)).sum())
                .collect();
            let margins: Vec<f64> = query_norms
                .iter()
                .map(|&qn| match metric {
                    Metric::L2 => unit * (qn + max_norm),
                    _ => unit * (qn * max_norm).sqrt(),
                })
                .collect();
            let mut heaps: Vec<BinaryHeap<Key>> = vec![BinaryHeap::with_capacity(k + 1); rows];
            let mut candidates: Vec<Vec<(f64, u32)>> = vec![Vec::new(); rows];
            for p_start in (0..m).step_by(POINT_BLOCK) {
                let p_end = (p_start + POINT_BLOCK).min(m);
                let products = block.dot(&points.slice(s![p_start..p_end, ..]).t());
                for (r, row) in products.axis_iter(Axis(0)).enumerate() {
                    let qn = query_norms[r] as f32;
                    let heap = &mut heaps[r];
                    let list = &mut candidates[r];
                    let margin = 2.0 * margins[r];
                    for (offset, &g) in row.iter().enumerate() {
                        let j = p_start + offset;
                        let approx = f64::from(match metric {
                            Metric::L2 => qn + norms_f32[j] - 2.0 * g,
                            _ => -g,
                        });
                        if heap.len() < k {
                            heap.push(Key(approx));
                        } else if approx < heap.peek().map_or(f64::INFINITY, |t| t.0) {
                            heap.pop();
                            heap.push(Key(approx));
                        }
                        let threshold = if heap.len() < k {
                            f64::INFINITY
                        } else {
                            heap.peek().map_or(f64::INFINITY, |t| t.0)
                        };
                        if approx <= threshold + margin {
                            list.push((approx, j as u32));
                        }
                    }
                    if list.len() > 4 * k + 256 {
                        let threshold = heap.peek().map_or(f64::INFINITY, |t| t.0) + margin;
                        list.retain(|&(a, _)| a <= threshold);
                    }
                }
            }
            let mut indices = Vec::with_capacity(rows * k);
            let mut scores = Vec::with_capacity(rows * k);
            for r in 0..rows {
                let threshold = heaps[r].peek().map_or(f64::INFINITY, |t| t.0) + 2.0 * margins[r];
                let x = block.row(r);
                let x = x
                    .as_slice()
                    .map(<[f32]>::to_vec)
                    .unwrap_or_else(|| x.to_vec());
                let mut ranked: Vec<(f64, u32, f64)> = candidates[r]
                    .iter()
                    .filter(|&&(a, _)| a <= threshold)
                    .map(|&(_, j)| {
                        let y = points.row(j as usize);
                        let (key, score) = match y.as_slice() {
                            Some(y) => exact(metric, &x, y),
                            None => exact(metric, &x, &y.to_vec()),
                        };
                        (key, j, score)
                    })
                    .collect();
                ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                for &(_, j, score) in ranked.iter().take(k) {
                    indices.push(j);
                    scores.push(score as f32);
                }
            }
            (indices, scores)
        })
        .collect();
    let mut out = Neighbours {
        k,
        indices: Vec::with_capacity(n * k),
        scores: Vec::with_capacity(n * k),
    };
    for (indices, scores) in blocks {
        out.indices.extend(indices);
        out.scores.extend(scores);
    }
    debug_assert_eq!(out.indices.len(), n * k);
    out
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

/// An inverted-file layout: centroids, each point's list, and the lists.
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
}

impl InvertedLists {
    /// Trains `nlists` centroids on `points` (Lloyd's k-means, 20 iterations, from `seed`) and assigns every point.
    pub fn train(
        points: ArrayView2<f32>,
        metric: Metric,
        nlists: usize,
        nprobe: usize,
        seed: u64,
    ) -> InvertedLists {
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
            let nearest = flat_search(training.view(), centroids.view(), &norms, Metric::L2, 1);
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
        InvertedLists::from_parts(points, centroids, None, metric, nprobe)
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
        InvertedLists {
            nprobe: nprobe.clamp(1, centroids.nrows()),
            centroids,
            assignment,
            lists,
            centroid_norms,
        }
    }

    /// The number of lists.
    pub fn nlists(&self) -> usize {
        self.centroids.nrows()
    }

    /// Searches `queries` among `points` (the points these lists index) for `k` neighbours each.
    pub fn search(
        &self,
        queries: ArrayView2<f32>,
        points: ArrayView2<f32>,
        metric: Metric,
        k: usize,
    ) -> Neighbours {
        let nlists = self.nlists();
        let order = flat_search(
            queries,
            self.centroids.view(),
            &self.centroid_norms,
            coarse_metric(metric),
            nlists,
        );
        let k = k.min(points.nrows());
        let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..queries.nrows())
            .into_par_iter()
            .map(|q| {
                let mut candidates: Vec<u32> = Vec::new();
                for (rank, &list) in order.indices[q * nlists..(q + 1) * nlists]
                    .iter()
                    .enumerate()
                {
                    if rank >= self.nprobe && candidates.len() >= k {
                        break;
                    }
                    candidates.extend_from_slice(&self.lists[list as usize]);
                }
                let x = queries.row(q).to_vec();
                let mut ranked: Vec<(f64, u32, f64)> = candidates
                    .iter()
                    .map(|&j| {
                        let y = points.row(j as usize);
                        let (key, score) = match y.as_slice() {
                            Some(y) => exact(metric, &x, y),
                            None => exact(metric, &x, &y.to_vec()),
                        };
                        (key, j, score)
                    })
                    .collect();
                ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                ranked.truncate(k);
                (
                    ranked.iter().map(|r| r.1).collect(),
                    ranked.iter().map(|r| r.2 as f32).collect(),
                )
            })
            .collect();
        let mut out = Neighbours {
            k,
            indices: Vec::with_capacity(queries.nrows() * k),
            scores: Vec::with_capacity(queries.nrows() * k),
        };
        for (indices, scores) in rows {
            out.indices.extend(indices);
            out.scores.extend(scores);
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
        let lists = InvertedLists::train(points.view(), Metric::L2, 30, 30, 0);
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
}
