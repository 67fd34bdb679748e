//! SageMaker's Linear Learner (`linear-learner`): binary, multiclass and regression linear models trained by
//! mini-batch stochastic optimisation, several models at once, the best chosen on validation data.
//!
//! # Training
//! - **Data.** The `train` channel is streamed once per epoch through [`Channel::open`](crate::data::Channel::open)
//!   (File mode re-reads the files, Pipe mode opens `train_<epoch>`), never held whole in memory: records pass through
//!   a bounded shuffle buffer (10 mini-batches, at least 10,000 records) into mini-batches. `validation` and `test`
//!   are loaded. Dense and sparse records are both accepted; sparse rows stay sparse (CSR math, updates of the full
//!   weight vector per mini-batch). Every record is checked as it is read: its width against `feature_dim` (`auto`
//!   takes the first record's width, or for sparse data the widest of the scaler sample), finite features, labels in
//!   {0, 1} (binary), integers in `[0, num_classes)` (multiclass) or finite (regression); a failure names the
//!   channel, the record and the field.
//! - **Normalisation.** Statistics come from the first `num_point_for_scaler` records. `normalize_data` scales each
//!   feature by its standard deviation; `unbias_data` subtracts its mean (`auto`: when normalising dense data; sparse
//!   data are scaled but not centred unless `unbias_data=true`, which is computed without densifying).
//!   `normalize_label` / `unbias_label` do the same to regression labels (`auto`: on for regressors, off otherwise).
//! - **Models.** `num_models` (`auto` = 32) models train side by side (rayon) on the same mini-batches. Model 0 uses
//!   the given hyperparameters exactly; model `i` multiplies the learning rate by the `(i mod 8)`-th entry of
//!   `[1, 0.5, 2, 0.25, 4, 0.7, 1.4, 0.1]` (or, with `learning_rate=auto`, of `[1, 10, 100, 3, 30, 0.3, 300, 0.1]`
//!   around the optimizer's default: sgd 0.01, adam 0.001, adagrad 0.01, rmsprop 0.001), and takes regularisation
//!   slot `(i / 8) mod 4`: `wd=auto` → `[0, 1e-4, 1e-2, 1e-6]`, `l1=auto` → `[0, 0, 0, 1e-5]`, given values times
//!   `[1, 0.3, 3, 1]` (`wd`) and `[1, 1, 1, 3]` (`l1`).
//! - **Updates.** Each mini-batch gives the weighted mean gradient of the loss (`loss`, with `margin`, `quantile`,
//!   `huber_delta`, `loss_insensitivity`) plus `wd`·w (the bias gets `wd`·`bias_wd_mult`, default 0, and learning
//!   rate × `bias_lr_mult`, default 1), applied by `optimizer` (`auto` = adam; `momentum` auto 0.9, `beta_1` 0.9,
//!   `beta_2` 0.999). `l1` is applied as a proximal (soft-threshold) step, so weights reach exact zeros. With
//!   `use_lr_scheduler` the rate is multiplied by `lr_scheduler_factor` (auto 0.99) every `lr_scheduler_step` (auto
//!   100) updates, down to `lr_scheduler_minimum_lr` (auto 1e-5). Example weights are the record weight times
//!   `positive_example_weight_mult` for positives (`balanced`: negatives / positives in the scaler sample) or, with
//!   `balance_multiclass_weights`, `n / (num_classes · n_class)` from the scaler sample.
//! - **Early stopping.** After each epoch every model's objective loss is measured on the validation channel (on the
//!   epoch's progressive training loss without one); each model keeps the weights of its best epoch. Training stops
//!   when the best loss has not improved by a relative `early_stopping_tolerance` for `early_stopping_patience`
//!   epochs.
//! - **Selection.** The models' best epochs are compared on the first `num_calibration_samples` (auto 10,000)
//!   validation rows, or a uniform reservoir sample of that many training records without validation: binary
//!   classifiers by `binary_classifier_model_selection_criteria` (the threshold is calibrated there on the sample for
//!   `accuracy`, `f_beta`, `precision_at_target_recall`, `recall_at_target_precision`; `loss_function` keeps 0.5, or
//!   0 for `hinge_loss`), the others by objective loss.
//! - **Metrics.** Per epoch: `train:objective_loss`, `validation:objective_loss`, the selection metric
//!   (`validation:binary_classification_accuracy`, …, `validation:multiclass_accuracy`, `validation:rmse`) and
//!   `train:progress`. At the end, for `validation` and `test`: `objective_loss`; binary
//!   `binary_classification_accuracy`, `binary_f_beta`, `precision`, `recall`, `roc_auc_score`; multiclass
//!   `multiclass_accuracy`, `multiclass_top_k_accuracy` (k = `accuracy_top_k`), `macro_precision`, `macro_recall`,
//!   `macro_f_beta`, `dcg`; regression `mse`, `rmse`, `absolute_loss`, `r2`; all in `meta.training_metrics`. The
//!   objective loss is reported on the user's label scale.
//! - **Determinism.** `seed` (a tern extension; SageMaker documents none; default 0) fixes the initial weights, the
//!   shuffle and the selection sample: the same seed and data give the same artifact bytes whatever the thread
//!   count, as each model's arithmetic is sequential.
//!
//! # Artifact layout
//! Tensors (f32, in `weights.safetensors`):
//! - `weight` `[feature_dim, k]` and `bias` `[k]`, `k` = `num_classes` for multiclass, else 1;
//! - `feature_mean` `[feature_dim]` when `meta.preprocessing.features.center`, `feature_scale` `[feature_dim]` when
//!   `meta.preprocessing.features.scale`.
//!
//! `meta.preprocessing` = `{"features": {"center": bool, "scale": bool}, "label": {"mean": μ, "scale": σ}}`;
//! `meta.model` = `{"predictor_type", "num_classes", "loss", "score_function", "threshold", "training": {…}}` where
//! `training` records the selected model, its epoch, rates and the other candidates' scores.
//!
//! Scoring, with `x̂ = (x - feature_mean) / feature_scale` (each step only when present) and `z = x̂ · weight + bias`:
//! - `score_function = "sigmoid"` (binary, logistic): `score = sigmoid(z)`, `predicted_label = score >= threshold`;
//! - `"identity"` (binary, hinge): `score = z`, `predicted_label = score >= threshold`;
//! - `"softmax"` (multiclass): `score = softmax(z)`, `predicted_label = argmax(score)` (first on ties);
//! - `"affine"` (regression): `score = z · label.scale + label.mean`.

pub mod hyperparameters;
pub mod loss;
pub mod model;
pub mod optimizer;
mod train;

pub use hyperparameters::{resolve, Config, PredictorType, SelectionCriterion, SPECS};
pub use model::{FoldedWeights, LinearModel, Output};

use crate::algorithm::{Algorithm, Predictor, TrainingContext};
use crate::artifact::Artifact;
use crate::data::{ChannelSpec, TrainingInput};
use crate::hyperparameters::{HyperparameterError, HyperparameterSpec, Hyperparameters};
use crate::TrainError;

/// The registry name.
pub const NAME: &str = "linear-learner";

/// SageMaker's Linear Learner.
pub struct LinearLearner;

/// The channels SageMaker documents for the algorithm.
const CONTENT_TYPES: &[&str] = &["text/csv", "application/x-recordio-protobuf"];
const CHANNELS: &[ChannelSpec] = &[
    ChannelSpec::required("train", CONTENT_TYPES, "the models are trained on it"),
    ChannelSpec::optional(
        "validation",
        CONTENT_TYPES,
        "loss logged each epoch; the best model is chosen and its threshold calibrated on it",
    ),
    ChannelSpec::optional("test", CONTENT_TYPES, "the final model is scored on it"),
];

impl Algorithm for LinearLearner {
    fn name(&self) -> &'static str {
        NAME
    }

    fn hyperparameters(&self) -> &'static [HyperparameterSpec] {
        SPECS
    }

    fn validate(&self, hyperparameters: &Hyperparameters) -> Result<(), HyperparameterError> {
        resolve(hyperparameters).map(|_| ())
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
        input.check(self.name(), CHANNELS)?;
        let config = resolve(hyperparameters)?;
        train::train(&config, hyperparameters, input, context)
    }

    fn load(&self, artifact: &Artifact) -> Result<Box<dyn Predictor>, TrainError> {
        if artifact.meta.algorithm != NAME {
            return Err(TrainError::Artifact {
                path: artifact.meta.algorithm.clone(),
                message: format!(
                    "the artifact is a {} model, not {NAME}",
                    artifact.meta.algorithm
                ),
            });
        }
        Ok(Box::new(LinearModel::from_artifact(artifact)?))
    }
}
