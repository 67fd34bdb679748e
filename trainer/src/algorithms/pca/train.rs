//! PCA training: one streamed pass over the train channel accumulating either the Gram matrix (regular mode) or a
//! random-sign sketch (randomized mode), then one decomposition with faer.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par, Side};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::PcaModel;
use crate::algorithm::TrainingContext;
use crate::data::batches::MiniBatches;
use crate::data::{Channel, FeatureMatrix};
use crate::hyperparameters::{HyperparameterError, Hyperparameters};
use crate::TrainError;

/// SageMaker's `algorithm_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exact: eigendecomposition of the d × d covariance.
    Regular,
    /// Approximate: thin SVD of an ℓ × d random-sign sketch, ℓ = num_components + extra_components.
    Randomized,
}

/// Resolved PCA hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaSettings {
    pub feature_dim: usize,
    pub mini_batch_size: usize,
    pub num_components: usize,
    pub mode: Mode,
    /// Resolved: `-1` becomes `max(10, num_components)`.
    pub extra_components: usize,
    pub subtract_mean: bool,
    pub seed: u64,
}

impl PcaSettings {
    /// Resolves validated hyperparameters; fails when `num_components` exceeds `feature_dim`.
    pub fn from_hyperparameters(hp: &Hyperparameters) -> Result<Self, HyperparameterError> {
        let feature_dim = hp.get::<usize>("feature_dim")?;
        let num_components = hp.get::<usize>("num_components")?;
        if num_components > feature_dim {
            return Err(HyperparameterError::Conflict {
                names: "num_components, feature_dim".into(),
                message: format!(
                    "num_components={num_components} exceeds feature_dim={feature_dim}; at most feature_dim components exist"
                ),
            });
        }
        let extra = hp.get::<i64>("extra_components")?;
        Ok(PcaSettings {
            feature_dim,
            mini_batch_size: hp.get::<usize>("mini_batch_size")?,
            num_components,
            mode: if hp.word("algorithm_mode").as_deref() == Some("randomized") {
                Mode::Randomized
            } else {
                Mode::Regular
            },
            extra_components: if extra < 0 {
                num_components.max(10)
            } else {
                extra as usize
            },
            subtract_mean: hp.get::<bool>("subtract_mean")?,
            seed: hp.get::<i64>("seed")? as u64,
        })
    }
}

/// What [`fit`] found, in f64.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaFit {
    /// `num_components × feature_dim`, orthonormal rows, largest variance first.
    pub components: Array2<f64>,
    /// Zeros when `subtract_mean` is false.
    pub mean: Array1<f64>,
    /// Variance along each component (n − 1 denominator).
    pub explained_variance: Vec<f64>,
    /// Total variance of the data about `mean` (n − 1 denominator), the denominator of the explained variance ratio.
    pub total_variance: f64,
    pub rows: usize,
}

/// Fits PCA on one pass of `channel`.
///
/// # Errors
/// Parse errors and bad records (wrong width, NaN) with their record number; [`TrainError::Data`] for fewer than two
/// records; [`TrainError::Algorithm`] when the decomposition fails to converge.
pub fn fit(
    settings: &PcaSettings,
    channel: &Channel,
    context: &mut TrainingContext,
) -> Result<PcaFit, TrainError> {
    let d = settings.feature_dim;
    let mut batches = MiniBatches::new(channel.open(0)?, &channel.name, d);
    let sketch_rows = settings.num_components + settings.extra_components;
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    // Dense data are accumulated about the first batch's mean (a shift that leaves the covariance unchanged and keeps
    // the sums well conditioned); sparse data about 0, so they stay sparse.
    let mut shift: Option<Vec<f64>> = None;
    let mut sum = vec![0.0f64; d];
    let mut sum_squares = 0.0f64;
    let mut gram = Mat::<f64>::zeros(if settings.mode == Mode::Regular { d } else { 0 }, d);
    let mut sketch = Mat::<f64>::zeros(
        if settings.mode == Mode::Randomized {
            sketch_rows
        } else {
            0
        },
        d,
    );
    let mut sketch_ones = vec![0.0f64; sketch_rows];
    let sign = 1.0 / (sketch_rows as f64).sqrt();
    let mut rows = 0usize;
    let bar = context.start_progress(1, "pca");
    while let Some(batch) = batches.next_batch(settings.mini_batch_size)? {
        let b = batch.n_rows();
        let shift = shift.get_or_insert_with(|| match (&batch, settings.subtract_mean) {
            (FeatureMatrix::Dense(x), true) => (0..d)
                .map(|j| x.column(j).iter().map(|&v| f64::from(v)).sum::<f64>() / b as f64)
                .collect(),
            _ => vec![0.0; d],
        });
        let signs: Vec<f64> = match settings.mode {
            Mode::Randomized => (0..sketch_rows * b)
                .map(|_| if rng.gen::<bool>() { sign } else { -sign })
                .collect(),
            Mode::Regular => Vec::new(),
        };
        match &batch {
            FeatureMatrix::Dense(x) => {
                let xm = Mat::<f64>::from_fn(b, d, |i, j| f64::from(x[[i, j]]) - shift[j]);
                for i in 0..b {
                    for j in 0..d {
                        sum[j] += xm[(i, j)];
                        sum_squares += xm[(i, j)] * xm[(i, j)];
                    }
                }
                match settings.mode {
                    Mode::Regular => matmul(
                        gram.as_mut(),
                        Accum::Add,
                        xm.transpose(),
                        xm.as_ref(),
                        1.0,
                        Par::rayon(0),
                    ),
                    Mode::Randomized => {
                        let s = Mat::<f64>::from_fn(sketch_rows, b, |r, i| signs[r * b + i]);
                        matmul(
                            sketch.as_mut(),
                            Accum::Add,
                            s.as_ref(),
                            xm.as_ref(),
                            1.0,
                            Par::rayon(0),
                        );
                    }
                }
            }
            FeatureMatrix::Sparse(csr) => {
                for i in 0..b {
                    let (indices, values) = csr.row(i);
                    for (&j, &v) in indices.iter().zip(values) {
                        let v = f64::from(v);
                        sum[j as usize] += v;
                        sum_squares += v * v;
                        match settings.mode {
                            Mode::Regular => {
                                for (&l, &w) in indices.iter().zip(values) {
                                    gram[(j as usize, l as usize)] += v * f64::from(w);
                                }
                            }
                            Mode::Randomized => {
                                for r in 0..sketch_rows {
                                    sketch[(r, j as usize)] += signs[r * b + i] * v;
                                }
                            }
                        }
                    }
                }
            }
        }
        if settings.mode == Mode::Randomized {
            for (r, total) in sketch_ones.iter_mut().enumerate() {
                *total += signs[r * b..(r + 1) * b].iter().sum::<f64>();
            }
        }
        rows += b;
    }
    bar.inc(1);
    context.finish_progress();
    if rows < 2 {
        return Err(TrainError::data(
            &channel.name,
            format!("PCA needs at least 2 records, the channel holds {rows}"),
        ));
    }
    let shift = shift.unwrap_or_else(|| vec![0.0; d]);
    let n = rows as f64;
    let centred_mean: Vec<f64> = if settings.subtract_mean {
        sum.iter().map(|s| s / n).collect()
    } else {
        vec![0.0; d]
    };
    let total_variance =
        (sum_squares - n * centred_mean.iter().map(|m| m * m).sum::<f64>()) / (n - 1.0);
    let c = settings.num_components;
    let failed = |what: &str| TrainError::Algorithm {
        algorithm: "pca".into(),
        message: format!("the {what} did not converge"),
    };
    let (mut components, explained_variance) = match settings.mode {
        Mode::Regular => {
            let covariance = Mat::<f64>::from_fn(d, d, |i, j| {
                gram[(i, j)] - n * centred_mean[i] * centred_mean[j]
            });
            let eigen = covariance
                .self_adjoint_eigen(Side::Lower)
                .map_err(|_| failed("eigendecomposition"))?;
            let values = eigen.S().column_vector();
            let vectors = eigen.U();
            let mut components = Array2::zeros((c, d));
            let mut variance = Vec::with_capacity(c);
            for p in 0..c {
                let source = d - 1 - p;
                variance.push(values[source].max(0.0) / (n - 1.0));
                for j in 0..d {
                    components[[p, j]] = vectors[(j, source)];
                }
            }
            (components, variance)
        }
        Mode::Randomized => {
            let centred = Mat::<f64>::from_fn(sketch_rows, d, |r, j| {
                sketch[(r, j)] - sketch_ones[r] * centred_mean[j]
            });
            let svd = centred
                .thin_svd()
                .map_err(|_| failed("singular value decomposition"))?;
            let singular = svd.S().column_vector();
            let v = svd.V();
            let available = singular.nrows().min(c);
            let mut components = Array2::zeros((c, d));
            let mut variance = vec![0.0; c];
            for p in 0..available {
                variance[p] = singular[p] * singular[p] / (n - 1.0);
                for j in 0..d {
                    components[[p, j]] = v[(j, p)];
                }
            }
            (components, variance)
        }
    };
    for mut row in components.rows_mut() {
        let largest = row
            .iter()
            .copied()
            .fold(0.0f64, |a, v| if v.abs() > a.abs() { v } else { a });
        if largest < 0.0 {
            row.mapv_inplace(|v| -v);
        }
    }
    let mean = if settings.subtract_mean {
        Array1::from_iter((0..d).map(|j| shift[j] + centred_mean[j]))
    } else {
        Array1::zeros(d)
    };
    context.log_metric("train:total_variance", None, total_variance);
    Ok(PcaFit {
        components,
        mean,
        explained_variance,
        total_variance,
        rows,
    })
}

/// Mean squared reconstruction error per value over the records of `channel` (pass 0):
/// Σ‖x − x̂‖² / (records × feature_dim), as scikit-learn's `mean((X − inverse_transform(transform(X)))²)`.
pub fn reconstruction_error_of_channel(
    model: &PcaModel,
    channel: &Channel,
) -> Result<f64, TrainError> {
    let d = model.components.ncols();
    let mut batches = MiniBatches::new(channel.open(0)?, &channel.name, d);
    let mut total = 0.0;
    while let Some(batch) = batches.next_batch(8192)? {
        total += model.reconstruction_squared_error(&batch).1;
    }
    if batches.records_read() == 0 {
        return Err(TrainError::data(
            &channel.name,
            "the channel holds no records",
        ));
    }
    Ok(total / (batches.records_read() * d) as f64)
}
