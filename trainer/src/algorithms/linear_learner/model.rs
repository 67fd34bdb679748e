//! The trained linear model: its parameters, how it scores rows (dense or sparse, without densifying), and its
//! artifact encoding (see the module documentation of [`super`] for the layout).

use ndarray::Array2;
use serde_json::{json, Value};

use crate::algorithm::{Predictions, Predictor, Task};
use crate::artifact::{Artifact, Tensor};
use crate::data::{FeatureMatrix, Row};
use crate::TrainError;

use super::hyperparameters::PredictorType;
use super::loss::sigmoid;

/// How raw scores `z` become the `score` SageMaker returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `sigmoid(z)`: binary classifier trained with `logistic`.
    Sigmoid,
    /// `softmax(z)`: multiclass classifier.
    Softmax,
    /// `z` itself: binary classifier trained with `hinge_loss`.
    Raw,
    /// `z * label_scale + label_mean`: regressor.
    Regression,
}

impl Output {
    fn name(self) -> &'static str {
        match self {
            Output::Sigmoid => "sigmoid",
            Output::Softmax => "softmax",
            Output::Raw => "identity",
            Output::Regression => "affine",
        }
    }
}

/// The weights folded with the feature normalisation: `z = x · effective + offset`, equal to
/// `((x - mean) / scale) · W + b`, so sparse rows are scored from their stored entries alone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FoldedWeights {
    /// Feature-major, `feature_dim × outputs`.
    pub effective: Vec<f32>,
    /// One per output.
    pub offset: Vec<f32>,
    pub outputs: usize,
}

impl FoldedWeights {
    /// Folds `mean` and `scale` (each `None` for no centring / no scaling) into `weights` (feature-major) and `bias`.
    pub fn fold(
        weights: &[f32],
        bias: &[f32],
        mean: Option<&[f32]>,
        scale: Option<&[f32]>,
    ) -> Self {
        let mut folded = FoldedWeights::default();
        folded.refold(weights, bias, mean, scale);
        folded
    }

    /// [`FoldedWeights::fold`] into the existing buffers.
    pub fn refold(
        &mut self,
        weights: &[f32],
        bias: &[f32],
        mean: Option<&[f32]>,
        scale: Option<&[f32]>,
    ) {
        let outputs = bias.len();
        self.outputs = outputs;
        self.effective.clear();
        self.effective.extend_from_slice(weights);
        if let Some(scale) = scale {
            for (row, &s) in self.effective.chunks_exact_mut(outputs).zip(scale) {
                row.iter_mut().for_each(|w| *w /= s);
            }
        }
        self.offset.clear();
        self.offset.extend_from_slice(bias);
        if let Some(mean) = mean {
            let mut shift = vec![0.0f64; outputs];
            for (row, &m) in self.effective.chunks_exact(outputs).zip(mean) {
                for (acc, &w) in shift.iter_mut().zip(row) {
                    *acc += f64::from(m) * f64::from(w);
                }
            }
            for (b, s) in self.offset.iter_mut().zip(shift) {
                *b = (f64::from(*b) - s) as f32;
            }
        }
    }

    /// The raw scores of `row` into `out` (length `outputs`). Stored entries are visited in feature order, so a
    /// dense row and the sparse row holding its non-zeros give bit-identical scores.
    pub fn scores(&self, row: &Row<'_>, out: &mut [f32]) {
        out.copy_from_slice(&self.offset);
        let k = self.outputs;
        if k == 1 {
            let mut z = out[0];
            row.for_each(|j, x| z += x * self.effective[j]);
            out[0] = z;
        } else {
            row.for_each(|j, x| {
                let weights = &self.effective[j * k..(j + 1) * k];
                for (o, &w) in out.iter_mut().zip(weights) {
                    *o += x * w;
                }
            });
        }
    }
}

/// A trained Linear Learner model.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearModel {
    pub predictor_type: PredictorType,
    pub feature_dim: usize,
    /// Feature-major, `feature_dim × outputs`, in normalised-feature space.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    /// Per-feature mean subtracted before scaling; `None` when the data are not centred.
    pub feature_mean: Option<Vec<f32>>,
    /// Per-feature divisor; `None` when the data are not scaled.
    pub feature_scale: Option<Vec<f32>>,
    /// Regression labels were trained as `(y - label_mean) / label_scale`; 0 and 1 otherwise.
    pub label_mean: f32,
    pub label_scale: f32,
    pub output: Output,
    /// Binary classifiers predict label 1 when `score >= threshold`.
    pub threshold: f32,
    /// The loss the model was trained with (SageMaker's name), recorded for the compiler and for users.
    pub loss: String,
    folded: FoldedWeights,
}

impl LinearModel {
    /// A model from its parts; `weights` is feature-major `feature_dim × bias.len()`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        predictor_type: PredictorType,
        weights: Vec<f32>,
        bias: Vec<f32>,
        feature_mean: Option<Vec<f32>>,
        feature_scale: Option<Vec<f32>>,
        label: (f32, f32),
        output: Output,
        threshold: f32,
        loss: &str,
    ) -> Self {
        let feature_dim = weights.len() / bias.len().max(1);
        let folded = FoldedWeights::fold(
            &weights,
            &bias,
            feature_mean.as_deref(),
            feature_scale.as_deref(),
        );
        LinearModel {
            predictor_type,
            feature_dim,
            weights,
            bias,
            feature_mean,
            feature_scale,
            label_mean: label.0,
            label_scale: label.1,
            output,
            threshold,
            loss: loss.to_string(),
            folded,
        }
    }

    /// The raw linear scores `z` of every row (rows × outputs), after checking the rows' width and values.
    pub fn raw_scores(&self, features: &FeatureMatrix) -> Result<Array2<f32>, TrainError> {
        check_rows(features, self.feature_dim)?;
        let k = self.folded.outputs;
        let mut out = Array2::zeros((features.n_rows(), k));
        for (i, mut row) in out.rows_mut().into_iter().enumerate() {
            let scores = row
                .as_slice_mut()
                .expect("rows of a standard-layout array are contiguous");
            self.folded.scores(&features.row(i), scores);
        }
        Ok(out)
    }

    /// Turns raw scores into SageMaker's `score` (in place) and the predicted labels.
    pub fn finish_scores(&self, raw: &mut Array2<f32>) -> Option<Vec<f32>> {
        match self.output {
            Output::Sigmoid | Output::Raw => {
                if self.output == Output::Sigmoid {
                    raw.mapv_inplace(|z| sigmoid(f64::from(z)) as f32);
                }
                Some(
                    raw.column(0)
                        .iter()
                        .map(|&s| if s >= self.threshold { 1.0 } else { 0.0 })
                        .collect(),
                )
            }
            Output::Softmax => {
                let mut labels = Vec::with_capacity(raw.nrows());
                for mut row in raw.rows_mut() {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0f64;
                    for v in row.iter_mut() {
                        let e = f64::from(*v - max).exp();
                        sum += e;
                        *v = e as f32;
                    }
                    row.mapv_inplace(|e| (f64::from(e) / sum) as f32);
                    labels.push(argmax(row.iter().copied()) as f32);
                }
                Some(labels)
            }
            Output::Regression => {
                raw.mapv_inplace(|z| z * self.label_scale + self.label_mean);
                None
            }
        }
    }

    /// Writes the model into `artifact` (tensors, `meta.model`, `meta.preprocessing`, `meta.label_map`).
    /// `training` is extra information recorded under `meta.model.training`.
    pub fn write_into(&self, artifact: &mut Artifact, training: Value) {
        let k = self.bias.len();
        let d = self.feature_dim;
        artifact.tensors.insert(
            "weight".into(),
            Tensor::new(vec![d, k], self.weights.clone()),
        );
        artifact
            .tensors
            .insert("bias".into(), Tensor::new(vec![k], self.bias.clone()));
        if let Some(mean) = &self.feature_mean {
            artifact
                .tensors
                .insert("feature_mean".into(), Tensor::new(vec![d], mean.clone()));
        }
        if let Some(scale) = &self.feature_scale {
            artifact
                .tensors
                .insert("feature_scale".into(), Tensor::new(vec![d], scale.clone()));
        }
        artifact.meta.preprocessing = json!({
            "features": {
                "center": self.feature_mean.is_some(),
                "scale": self.feature_scale.is_some(),
            },
            "label": {"mean": self.label_mean, "scale": self.label_scale},
        });
        let num_classes = match self.predictor_type {
            PredictorType::MulticlassClassifier { num_classes } => Some(num_classes),
            _ => None,
        };
        artifact.meta.label_map = match self.predictor_type {
            PredictorType::BinaryClassifier => Some(vec!["0".into(), "1".into()]),
            PredictorType::MulticlassClassifier { num_classes } => {
                Some((0..num_classes).map(|c| c.to_string()).collect())
            }
            PredictorType::Regressor => None,
        };
        artifact.meta.model = json!({
            "predictor_type": self.predictor_type.name(),
            "num_classes": num_classes,
            "loss": self.loss,
            "score_function": self.output.name(),
            "threshold": self.threshold,
            "training": training,
        });
    }

    /// Rebuilds a model from an artifact written by [`LinearModel::write_into`], checking every shape.
    pub fn from_artifact(artifact: &Artifact) -> Result<LinearModel, TrainError> {
        let bad = |message: String| TrainError::Artifact {
            path: artifact.meta.algorithm.clone(),
            message,
        };
        let model = &artifact.meta.model;
        let text = |key: &str| {
            model
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("meta.model.{key} is missing or not a string")))
        };
        let predictor_type = match text("predictor_type")? {
            "binary_classifier" => PredictorType::BinaryClassifier,
            "regressor" => PredictorType::Regressor,
            "multiclass_classifier" => {
                let num_classes = model
                    .get("num_classes")
                    .and_then(Value::as_u64)
                    .filter(|&n| n >= 2)
                    .ok_or_else(|| {
                        bad("meta.model.num_classes is missing for a multiclass model".into())
                    })?;
                PredictorType::MulticlassClassifier {
                    num_classes: num_classes as usize,
                }
            }
            other => {
                return Err(bad(format!(
                    "meta.model.predictor_type {other:?} is not a Linear Learner type"
                )))
            }
        };
        let output = match text("score_function")? {
            "sigmoid" => Output::Sigmoid,
            "softmax" => Output::Softmax,
            "identity" => Output::Raw,
            "affine" => Output::Regression,
            other => {
                return Err(bad(format!(
                    "meta.model.score_function {other:?} is unknown"
                )))
            }
        };
        let loss = text("loss")?.to_string();
        let threshold = model
            .get("threshold")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad("meta.model.threshold is missing".into()))?
            as f32;
        let d = artifact.meta.feature_dim;
        let k = predictor_type.outputs();
        let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>, TrainError> {
            let t = artifact.tensor(name)?;
            if t.shape != shape || t.data.len() != shape.iter().product::<usize>() {
                return Err(bad(format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    t.shape
                )));
            }
            Ok(t.data.clone())
        };
        let weights = tensor("weight", &[d, k])?;
        let bias = tensor("bias", &[k])?;
        let features = artifact.meta.preprocessing.get("features");
        let flag = |key: &str| {
            features
                .and_then(|f| f.get(key))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let feature_mean = if flag("center") {
            Some(tensor("feature_mean", &[d])?)
        } else {
            None
        };
        let feature_scale = if flag("scale") {
            Some(tensor("feature_scale", &[d])?)
        } else {
            None
        };
        let label = artifact.meta.preprocessing.get("label");
        let label_value = |key: &str, default: f64| {
            label
                .and_then(|l| l.get(key))
                .and_then(Value::as_f64)
                .unwrap_or(default) as f32
        };
        Ok(LinearModel::new(
            predictor_type,
            weights,
            bias,
            feature_mean,
            feature_scale,
            (label_value("mean", 0.0), label_value("scale", 1.0)),
            output,
            threshold,
            &loss,
        ))
    }
}

impl Predictor for LinearModel {
    fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    fn task(&self) -> Task {
        match self.predictor_type {
            PredictorType::BinaryClassifier => Task::BinaryClassifier,
            PredictorType::MulticlassClassifier { num_classes } => {
                Task::MulticlassClassifier { num_classes }
            }
            PredictorType::Regressor => Task::Regressor,
        }
    }

    fn predict(&self, features: &FeatureMatrix) -> Result<Predictions, TrainError> {
        let mut scores = self.raw_scores(features)?;
        let predicted_label = self.finish_scores(&mut scores);
        Ok(Predictions {
            task: self.task(),
            scores,
            predicted_label,
        })
    }
}

/// The index of the largest value (the first on ties).
pub fn argmax(values: impl IntoIterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, v) in values.into_iter().enumerate() {
        if v > best.1 || i == 0 {
            best = (i, v);
        }
    }
    best.0
}

/// Checks rows to be predicted: width `feature_dim`, sparse indices in range, every value finite.
fn check_rows(features: &FeatureMatrix, feature_dim: usize) -> Result<(), TrainError> {
    if features.n_cols() != feature_dim {
        return Err(TrainError::data(
            "input",
            format!(
                "rows have {} features, the model expects {feature_dim} (feature_dim)",
                features.n_cols()
            ),
        ));
    }
    for i in 0..features.n_rows() {
        let mut problem = None;
        features.row(i).for_each(|j, x| {
            if problem.is_none() && (j >= feature_dim || !x.is_finite()) {
                problem = Some((j, x));
            }
        });
        if let Some((j, x)) = problem {
            let message = if j >= feature_dim {
                format!("feature index {j} is beyond feature_dim {feature_dim}")
            } else {
                format!("value {x} is not a finite number")
            };
            return Err(crate::data::record_error(
                "input",
                i + 1,
                &format!("features[{j}]"),
                message,
            ));
        }
    }
    Ok(())
}
