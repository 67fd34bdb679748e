//! SageMaker's K-Means: Sculley's web-scale mini-batch k-means over `extra_center_factor × k` centres, streamed
//! through the train channel once per epoch, then reduced to `k` centres by a weighted local Lloyd's method.
//!
//! Artifact layout (`weights.safetensors`): `centroids`, f32 `[k, feature_dim]`, row `c` the centre of cluster `c`.
//! Inference is `closest_cluster = argmin_c ‖x − centroids[c]‖²` and `distance_to_cluster = ‖x − centroids[c]‖`
//! (Euclidean), which the compiler lowers to squared distances (`‖x‖² − 2·x·Cᵀ + ‖C‖²`) + ArgMin + Sqrt.
//! `artifact.json`'s `model` holds `{"k": k}`; `training_metrics` holds `test:msd` / `test:ssd` when a test channel
//! was given.

pub mod elbow;
pub mod train;

use ndarray::Array2;
use rayon::prelude::*;
use serde_json::json;

use crate::algorithm::{Algorithm, Predictions, Predictor, Task, TrainingContext};
use crate::artifact::{Artifact, Tensor};
use crate::data::{ChannelSpec, FeatureMatrix, Row, TrainingInput};
use crate::hyperparameters::{
    HyperparameterError, HyperparameterSpec as Spec, Hyperparameters, Kind,
};
use crate::TrainError;

pub use elbow::{elbow, plot_elbow};
pub use train::{fit, KMeansSettings};

/// The registry entry for SageMaker's K-Means.
pub struct KMeans;

const INIT_METHODS: Kind = Kind::Categorical(&["random", "kmeans++"]);

/// SageMaker's K-Means hyperparameters, plus tern's `seed` (an extension: SageMaker documents none).
static HYPERPARAMETERS: &[Spec] = &[
    Spec::required("feature_dim", Kind::at_least(1)),
    Spec::required("k", Kind::at_least(1)),
    Spec::optional("epochs", Kind::at_least(1), "1"),
    Spec::optional("eval_metrics", Kind::Text, "[\"msd\"]"),
    Spec::optional("extra_center_factor", Kind::at_least(1), "auto").auto_means("4"),
    Spec::optional("half_life_time_size", Kind::at_least(0), "0"),
    Spec::optional("init_method", INIT_METHODS, "random"),
    Spec::optional("local_lloyd_init_method", INIT_METHODS, "kmeans++"),
    Spec::optional("local_lloyd_max_iter", Kind::at_least(1), "300"),
    Spec::optional("local_lloyd_num_trials", Kind::at_least(1), "auto").auto_means("10"),
    Spec::optional("local_lloyd_tol", Kind::closed(0.0, 1.0), "0.0001"),
    Spec::optional("mini_batch_size", Kind::at_least(1), "5000"),
    Spec::optional("seed", Kind::at_least(0), "0"),
];

/// The channels SageMaker documents for the algorithm.
const CONTENT_TYPES: &[&str] = &["text/csv", "application/x-recordio-protobuf"];
const CHANNELS: &[ChannelSpec] = &[
    ChannelSpec::required("train", CONTENT_TYPES, "the centres are fitted on it"),
    ChannelSpec::optional("test", CONTENT_TYPES, "scored with eval_metrics (msd, ssd)"),
];

impl Algorithm for KMeans {
    fn name(&self) -> &'static str {
        "kmeans"
    }

    fn hyperparameters(&self) -> &'static [Spec] {
        HYPERPARAMETERS
    }

    fn validate(&self, hyperparameters: &Hyperparameters) -> Result<(), HyperparameterError> {
        KMeansSettings::from_hyperparameters(hyperparameters).map(|_| ())
    }

    fn channels(&self) -> &'static [ChannelSpec] {
        CHANNELS
    }

    fn train(
        &self,
        hyperparameters: &Hyperparameters,
        input: &TrainingInput,
        context: &mut TrainingContext,
    ) -> Result<Artifact, TrainError> {
        let settings = KMeansSettings::from_hyperparameters(hyperparameters)?;
        input.check(self.name(), CHANNELS)?;
        // A mini-batch of rows, and the mini-batch pass's centres with their running sums.
        let d = settings.feature_dim as u128;
        let centres = settings.k as u128 * settings.extra_center_factor as u128;
        crate::memory::ensure(
            d * (settings.mini_batch_size as u128 * 4 + centres * 12),
            || {
                format!(
                "K-Means' mini-batches and {centres} centres of {d} features (from hyperparameters \
                 feature_dim={d}, k={}, mini_batch_size={})",
                settings.k, settings.mini_batch_size
            )
            },
        )?;
        let centroids = fit(&settings, input.train(), context)?;
        let model = KMeansModel {
            centroids,
            feature_dim: settings.feature_dim,
        };
        let mut artifact = Artifact::new(
            self.name(),
            hyperparameters.values().clone(),
            settings.feature_dim,
        );
        artifact.meta.provenance.seed = Some(settings.seed);
        artifact.meta.model = json!({"k": model.k()});
        artifact.tensors.insert(
            "centroids".into(),
            Tensor::new(
                vec![model.k(), settings.feature_dim],
                model.centroids.iter().copied().collect(),
            ),
        );
        if let Some(test) = input.test() {
            let (count, ssd) = train::score_channel(&model, test, 0)?;
            for metric in &settings.eval_metrics {
                let (name, value) = match metric {
                    train::EvalMetric::Msd => ("test:msd", ssd / count as f64),
                    train::EvalMetric::Ssd => ("test:ssd", ssd),
                };
                context.log_metric(name, None, value);
                artifact
                    .meta
                    .training_metrics
                    .insert(name.to_string(), value);
            }
        }
        Ok(artifact)
    }

    fn load(&self, artifact: &Artifact) -> Result<Box<dyn Predictor>, TrainError> {
        Ok(Box::new(KMeansModel::from_artifact(artifact)?))
    }
}

/// A trained K-Means model: `k` centres of `feature_dim` features.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansModel {
    /// `k × feature_dim`.
    pub centroids: Array2<f32>,
    pub feature_dim: usize,
}

impl KMeansModel {
    /// Reads `centroids` from a K-Means artifact, checking its shape (`[k, feature_dim]`, k ≥ 1).
    pub fn from_artifact(artifact: &Artifact) -> Result<KMeansModel, TrainError> {
        let tensor = artifact.tensor("centroids")?;
        let feature_dim = artifact.meta.feature_dim;
        let bad = |message: String| TrainError::Artifact {
            path: "kmeans".into(),
            message,
        };
        if tensor.shape.len() != 2 || tensor.shape[1] != feature_dim || tensor.shape[0] == 0 {
            return Err(bad(format!(
                "tensor centroids has shape {:?}, expected [k, {feature_dim}]",
                tensor.shape
            )));
        }
        let centroids = Array2::from_shape_vec((tensor.shape[0], feature_dim), tensor.data.clone())
            .map_err(|e| bad(e.to_string()))?;
        Ok(KMeansModel {
            centroids,
            feature_dim,
        })
    }

    /// The number of clusters.
    pub fn k(&self) -> usize {
        self.centroids.nrows()
    }

    /// For each row: (closest cluster, squared Euclidean distance to it). Rows must have `feature_dim` columns.
    pub fn assign(&self, features: &FeatureMatrix) -> Vec<(u32, f64)> {
        let centres: Vec<f64> = self.centroids.iter().map(|&v| f64::from(v)).collect();
        assign(features, &centres, self.feature_dim)
    }
}

/// For each row of `features`: the index of the closest of the centres (`centres` is `K × d`, row-major) and the
/// squared Euclidean distance to it. Ties go to the lower index.
pub(crate) fn assign(features: &FeatureMatrix, centres: &[f64], d: usize) -> Vec<(u32, f64)> {
    let norms: Vec<f64> = centres
        .chunks_exact(d)
        .map(|c| c.iter().map(|v| v * v).sum())
        .collect();
    let centres_f32: Vec<f32> = centres.iter().map(|&v| v as f32).collect();
    (0..features.n_rows())
        .into_par_iter()
        .with_min_len(64)
        .map(|i| match features.row(i) {
            Row::Dense(x) => {
                let x = x
                    .as_slice()
                    .map(<[f32]>::to_vec)
                    .unwrap_or_else(|| x.to_vec());
                let mut best = (0u32, f64::INFINITY);
                for (c, centre) in centres_f32.chunks_exact(d).enumerate() {
                    let distance: f32 = x.iter().zip(centre).map(|(a, b)| (a - b) * (a - b)).sum();
                    if f64::from(distance) < best.1 {
                        best = (c as u32, f64::from(distance));
                    }
                }
                best
            }
            Row::Sparse { indices, values } => {
                let x_norm: f64 = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
                let mut best = (0u32, f64::INFINITY);
                for (c, centre) in centres.chunks_exact(d).enumerate() {
                    let dot: f64 = indices
                        .iter()
                        .zip(values)
                        .map(|(&j, &v)| f64::from(v) * centre[j as usize])
                        .sum();
                    let distance = (x_norm - 2.0 * dot + norms[c]).max(0.0);
                    if distance < best.1 {
                        best = (c as u32, distance);
                    }
                }
                best
            }
        })
        .collect()
}

impl Predictor for KMeansModel {
    fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    fn task(&self) -> Task {
        Task::Clustering { k: self.k() }
    }

    fn predict(&self, features: &FeatureMatrix) -> Result<Predictions, TrainError> {
        if features.n_cols() != self.feature_dim {
            return Err(TrainError::data(
                "input",
                format!(
                    "records have {} features, the model expects {}",
                    features.n_cols(),
                    self.feature_dim
                ),
            ));
        }
        let assignments = self.assign(features);
        let distances = assignments.iter().map(|&(_, d)| d.sqrt() as f32).collect();
        let scores = Array2::from_shape_vec((assignments.len(), 1), distances).map_err(|e| {
            TrainError::Algorithm {
                algorithm: "kmeans".into(),
                message: e.to_string(),
            }
        })?;
        Ok(Predictions {
            task: self.task(),
            scores,
            predicted_label: Some(assignments.iter().map(|&(c, _)| c as f32).collect()),
        })
    }
}
