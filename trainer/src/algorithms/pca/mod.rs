//! SageMaker's PCA: the top `num_components` principal components of the train channel, streamed in mini-batches.
//! `regular` mode accumulates Σx and Σxᵀx and takes the symmetric eigendecomposition of the covariance (faer);
//! `randomized` mode accumulates a random-sign sketch Σ Sₜ Xₜ of `num_components + extra_components` rows and takes
//! its thin SVD (faer), as SageMaker's documentation describes.
//!
//! Artifact layout (`weights.safetensors`): `components`, f32 `[num_components, feature_dim]` (orthonormal rows,
//! largest explained variance first, each row's largest-magnitude entry positive as scikit-learn's `svd_flip`);
//! `mean`, f32 `[feature_dim]` (zeros when `subtract_mean=false`); `explained_variance`, f32 `[num_components]`.
//! Inference is `projection = (x − mean) · componentsᵀ`, which the compiler lowers to Sub + MatMul.
//! `artifact.json`'s `model` holds `num_components`, `subtract_mean`, `rows`, `total_variance`,
//! `explained_variance` and `explained_variance_ratio` (variances with the n − 1 denominator; in randomized mode the
//! per-component variances are the sketch's estimates, the total variance is exact).

pub mod train;

use ndarray::{Array1, Array2};
use serde_json::json;

use crate::algorithm::{Algorithm, Predictions, Predictor, Task, TrainingContext};
use crate::artifact::{Artifact, Tensor};
use crate::data::{ChannelSpec, FeatureMatrix, Row, TrainingInput};
use crate::hyperparameters::{
    HyperparameterError, HyperparameterSpec as Spec, Hyperparameters, Kind,
};
use crate::TrainError;

pub use train::{fit, Mode, PcaFit, PcaSettings};

/// The registry entry for SageMaker's PCA.
pub struct Pca;

/// SageMaker's PCA hyperparameters, plus tern's `seed` (an extension, for randomized mode's sketch).
static HYPERPARAMETERS: &[Spec] = &[
    Spec::required("feature_dim", Kind::at_least(1)),
    Spec::required("mini_batch_size", Kind::at_least(1)),
    Spec::required("num_components", Kind::at_least(1)),
    Spec::optional(
        "algorithm_mode",
        Kind::Categorical(&["regular", "randomized"]),
        "regular",
    ),
    Spec::optional("extra_components", Kind::at_least(-1), "-1"),
    Spec::optional("subtract_mean", Kind::Boolean, "true"),
    Spec::optional("seed", Kind::at_least(0), "0"),
];

/// The channels SageMaker documents for the algorithm.
const CONTENT_TYPES: &[&str] = &["text/csv", "application/x-recordio-protobuf"];
const CHANNELS: &[ChannelSpec] = &[
    ChannelSpec::required("train", CONTENT_TYPES, "the components are fitted on it"),
    ChannelSpec::optional("test", CONTENT_TYPES, "scored by the final model"),
];

impl Algorithm for Pca {
    fn name(&self) -> &'static str {
        "pca"
    }

    fn hyperparameters(&self) -> &'static [Spec] {
        HYPERPARAMETERS
    }

    /// `num_components` may not exceed `feature_dim`.
    fn validate(&self, hyperparameters: &Hyperparameters) -> Result<(), HyperparameterError> {
        PcaSettings::from_hyperparameters(hyperparameters).map(|_| ())
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
        let settings = PcaSettings::from_hyperparameters(hyperparameters)?;
        input.check(self.name(), CHANNELS)?;
        let (d, batch) = (
            settings.feature_dim as u128,
            settings.mini_batch_size as u128,
        );
        // Regular: the d × d Gram matrix and its eigendecomposition's copies; randomized: the sketch's rows.
        let per_feature = match settings.mode {
            Mode::Regular => d * 8 * 3,
            Mode::Randomized => {
                (settings.num_components + settings.extra_components) as u128 * 8 * 3
            }
        };
        crate::memory::ensure(d * (per_feature + batch * 4 + 16), || {
            format!(
                "PCA's {} mode over {d} features (from hyperparameter feature_dim={d})",
                match settings.mode {
                    Mode::Regular => "regular",
                    Mode::Randomized => "randomized",
                }
            )
        })?;
        let fitted = fit(&settings, input.train(), context)?;
        let d = settings.feature_dim;
        let c = settings.num_components;
        let mut artifact = Artifact::new(self.name(), hyperparameters.values().clone(), d);
        artifact.meta.provenance.seed = Some(settings.seed);
        let ratio: Vec<f64> = fitted
            .explained_variance
            .iter()
            .map(|v| v / fitted.total_variance)
            .collect();
        artifact.meta.model = json!({
            "num_components": c,
            "subtract_mean": settings.subtract_mean,
            "algorithm_mode": match settings.mode { Mode::Regular => "regular", Mode::Randomized => "randomized" },
            "rows": fitted.rows,
            "total_variance": fitted.total_variance,
            "explained_variance": fitted.explained_variance,
            "explained_variance_ratio": ratio,
        });
        let model = PcaModel {
            components: fitted.components.mapv(|v| v as f32),
            mean: fitted.mean.mapv(|v| v as f32),
        };
        artifact.tensors.insert(
            "components".into(),
            Tensor::new(vec![c, d], model.components.iter().copied().collect()),
        );
        artifact
            .tensors
            .insert("mean".into(), Tensor::new(vec![d], model.mean.to_vec()));
        artifact.tensors.insert(
            "explained_variance".into(),
            Tensor::new(
                vec![c],
                fitted
                    .explained_variance
                    .iter()
                    .map(|&v| v as f32)
                    .collect(),
            ),
        );
        if let Some(test) = input.test() {
            let error = train::reconstruction_error_of_channel(&model, test)?;
            context.log_metric("test:reconstruction_error", None, error);
            artifact
                .meta
                .training_metrics
                .insert("test:reconstruction_error".into(), error);
        }
        Ok(artifact)
    }

    fn load(&self, artifact: &Artifact) -> Result<Box<dyn Predictor>, TrainError> {
        Ok(Box::new(PcaModel::from_artifact(artifact)?))
    }
}

/// A trained PCA model.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaModel {
    /// `num_components × feature_dim`, orthonormal rows.
    pub components: Array2<f32>,
    /// `feature_dim`; zeros when the mean is not subtracted.
    pub mean: Array1<f32>,
}

impl PcaModel {
    /// Reads `components` and `mean` from a PCA artifact, checking their shapes.
    pub fn from_artifact(artifact: &Artifact) -> Result<PcaModel, TrainError> {
        let d = artifact.meta.feature_dim;
        let bad = |message: String| TrainError::Artifact {
            path: "pca".into(),
            message,
        };
        let components = artifact.tensor("components")?;
        let mean = artifact.tensor("mean")?;
        if components.shape.len() != 2 || components.shape[1] != d || components.shape[0] == 0 {
            return Err(bad(format!(
                "tensor components has shape {:?}, expected [num_components, {d}]",
                components.shape
            )));
        }
        if mean.shape != [d] {
            return Err(bad(format!(
                "tensor mean has shape {:?}, expected [{d}]",
                mean.shape
            )));
        }
        Ok(PcaModel {
            components: Array2::from_shape_vec((components.shape[0], d), components.data.clone())
                .map_err(|e| bad(e.to_string()))?,
            mean: Array1::from(mean.data.clone()),
        })
    }

    /// The projections of `features` (rows × num_components), computed in f64.
    pub fn project(&self, features: &FeatureMatrix) -> Array2<f64> {
        let c = self.components.nrows();
        let components = self.components.mapv(f64::from);
        let offset = components.dot(&self.mean.mapv(f64::from));
        let mut out = Array2::zeros((features.n_rows(), c));
        match features {
            FeatureMatrix::Dense(x) => {
                out.assign(&x.mapv(f64::from).dot(&components.t()));
            }
            FeatureMatrix::Sparse(_) => {
                for i in 0..features.n_rows() {
                    if let Row::Sparse { indices, values } = features.row(i) {
                        for (&j, &v) in indices.iter().zip(values) {
                            for p in 0..c {
                                out[[i, p]] += f64::from(v) * components[[p, j as usize]];
                            }
                        }
                    }
                }
            }
        }
        out -= &offset
            .broadcast((features.n_rows(), c))
            .expect("offset has c entries");
        out
    }

    /// (rows, Σ over rows of ‖x − x̂‖²) where x̂ = mean + projection · components is the reconstruction, computed
    /// explicitly in f64 (not as ‖x − mean‖² − ‖projection‖², which cancels badly for large-scale features).
    pub fn reconstruction_squared_error(&self, features: &FeatureMatrix) -> (usize, f64) {
        let projections = self.project(features);
        let components = self.components.mapv(f64::from);
        let mut total = 0.0;
        for i in 0..features.n_rows() {
            let mut residual: Vec<f64> = self.mean.iter().map(|&m| -f64::from(m)).collect();
            features.row(i).for_each(|j, v| residual[j] += f64::from(v));
            for (p, component) in components.rows().into_iter().enumerate() {
                let weight = projections[[i, p]];
                for (r, &c) in residual.iter_mut().zip(component.iter()) {
                    *r -= weight * c;
                }
            }
            total += residual.iter().map(|r| r * r).sum::<f64>();
        }
        (features.n_rows(), total)
    }
}

impl Predictor for PcaModel {
    fn feature_dim(&self) -> usize {
        self.components.ncols()
    }

    fn task(&self) -> Task {
        Task::Projection {
            components: self.components.nrows(),
        }
    }

    fn predict(&self, features: &FeatureMatrix) -> Result<Predictions, TrainError> {
        if features.n_cols() != self.feature_dim() {
            return Err(TrainError::data(
                "input",
                format!(
                    "records have {} features, the model expects {}",
                    features.n_cols(),
                    self.feature_dim()
                ),
            ));
        }
        Ok(Predictions {
            task: self.task(),
            scores: self.project(features).mapv(|v| v as f32),
            predicted_label: None,
        })
    }

    /// `{"projection": [..num_components]}` per row, as SageMaker's PCA answers.
    fn response_key(&self) -> &'static str {
        "projections"
    }
}
