//! Scoring a trained model on labelled data, and k-fold cross-validation, the same way for every algorithm: the
//! metrics depend only on the model's [`Task`].

use std::collections::BTreeMap;

use crate::algorithm::{Algorithm, Predictor, Task, TrainingContext};
use crate::cv;
use crate::data::{Channel, Dataset, TrainingInput};
use crate::hyperparameters::Hyperparameters;
use crate::metrics::{self, ConfusionMatrix};
use crate::{Predictions, TrainError};

/// A model's scores on one labelled dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Metric name → value, e.g. `accuracy`, `roc_auc`, `rmse`.
    pub metrics: BTreeMap<String, f64>,
    /// The confusion matrix, for classifiers.
    pub confusion: Option<ConfusionMatrix>,
}

/// Scores `predictions` against `labels`: binary → accuracy, precision, recall, f1, roc_auc, pr_auc (average
/// precision), log_loss; anomaly scores against 0/1 labels → roc_auc, pr_auc; multiclass → accuracy, macro/micro
/// precision, recall and f1, top-3 accuracy, log_loss; regression → mse, rmse, mae, r2. `probabilistic` says whether
/// scores are probabilities (log loss is skipped if not).
pub fn score(
    predictions: &Predictions,
    labels: &[f32],
    weights: Option<&[f32]>,
    probabilistic: bool,
) -> Evaluation {
    let mut out = BTreeMap::new();
    let mut confusion = None;
    match predictions.task {
        Task::BinaryClassifier => {
            let predicted = predictions.predicted_label.clone().unwrap_or_default();
            let score = predictions.score_column();
            let matrix = ConfusionMatrix::new(labels, &predicted, 2, weights);
            out.insert("accuracy".into(), matrix.accuracy());
            out.insert("precision".into(), matrix.precision(1));
            out.insert("recall".into(), matrix.recall(1));
            out.insert("f1".into(), matrix.f_beta(1, 1.0));
            out.insert("roc_auc".into(), metrics::roc_auc(labels, &score, weights));
            out.insert(
                "pr_auc".into(),
                metrics::average_precision(labels, &score, weights),
            );
            if probabilistic {
                out.insert(
                    "log_loss".into(),
                    metrics::log_loss_binary(labels, &score, weights),
                );
            }
            confusion = Some(matrix);
        }
        Task::MulticlassClassifier { num_classes } => {
            let predicted = predictions.predicted_label.clone().unwrap_or_default();
            let matrix = ConfusionMatrix::new(labels, &predicted, num_classes, weights);
            out.insert("accuracy".into(), matrix.accuracy());
            out.insert("macro_precision".into(), matrix.macro_precision());
            out.insert("macro_recall".into(), matrix.macro_recall());
            out.insert("macro_f1".into(), matrix.macro_f_beta(1.0));
            out.insert("micro_precision".into(), matrix.micro_precision());
            out.insert("micro_recall".into(), matrix.micro_recall());
            out.insert("micro_f1".into(), matrix.micro_f_beta(1.0));
            if num_classes > 3 {
                out.insert(
                    "top_3_accuracy".into(),
                    metrics::top_k_accuracy(labels, predictions.scores.view(), 3, weights),
                );
            }
            if probabilistic {
                out.insert(
                    "log_loss".into(),
                    metrics::log_loss_multiclass(labels, predictions.scores.view(), weights),
                );
            }
            confusion = Some(matrix);
        }
        Task::Regressor => {
            let predicted = predictions.score_column();
            out.insert("mse".into(), metrics::mse(labels, &predicted, weights));
            out.insert("rmse".into(), metrics::rmse(labels, &predicted, weights));
            out.insert("mae".into(), metrics::mae(labels, &predicted, weights));
            out.insert("r2".into(), metrics::r2(labels, &predicted, weights));
        }
        Task::Clustering { .. } => {
            // SageMaker's K-Means metrics: squared distances to the closest centre; labels are not used.
            let ssd: f64 = predictions
                .score_column()
                .iter()
                .map(|&d| f64::from(d) * f64::from(d))
                .sum();
            out.insert("ssd".into(), ssd);
            out.insert("msd".into(), ssd / predictions.scores.nrows().max(1) as f64);
        }
        Task::Projection { .. } => {}
        Task::AnomalyDetection => {
            let score = predictions.score_column();
            out.insert("roc_auc".into(), metrics::roc_auc(labels, &score, weights));
            out.insert(
                "pr_auc".into(),
                metrics::average_precision(labels, &score, weights),
            );
        }
    }
    Evaluation {
        metrics: out,
        confusion,
    }
}

/// Whether a model's scores are probabilities, judged from its range: every score in [0, 1] and, for multiclass,
/// rows summing to 1.
pub fn scores_are_probabilities(predictions: &Predictions) -> bool {
    let in_range = predictions.scores.iter().all(|&s| (0.0..=1.0).contains(&s));
    match predictions.task {
        Task::MulticlassClassifier { .. } => {
            in_range
                && predictions
                    .scores
                    .rows()
                    .into_iter()
                    .all(|row| (row.sum() - 1.0).abs() < 1e-3)
        }
        Task::BinaryClassifier => in_range,
        Task::Regressor
        | Task::Clustering { .. }
        | Task::Projection { .. }
        | Task::AnomalyDetection => false,
    }
}

/// Predicts `dataset` with `predictor` and scores it against the dataset's labels. Clustering and projection models
/// need no labels (K-Means reports `msd` and `ssd`, as on SageMaker's test channel); other tasks fail without them.
pub fn evaluate(
    predictor: &dyn Predictor,
    dataset: &Dataset,
    channel: &str,
) -> Result<Evaluation, TrainError> {
    let unsupervised = matches!(
        predictor.task(),
        Task::Clustering { .. } | Task::Projection { .. }
    );
    let labels = match (&dataset.labels, unsupervised) {
        (Some(labels), _) => labels.as_slice(),
        (None, true) => &[],
        (None, false) => dataset.require_labels(channel)?,
    };
    if dataset.n_features() != predictor.feature_dim() {
        return Err(TrainError::data(
            channel,
            format!(
                "records have {} features but the model expects {}",
                dataset.n_features(),
                predictor.feature_dim()
            ),
        ));
    }
    let predictions = predictor.predict(&dataset.features)?;
    let probabilistic = scores_are_probabilities(&predictions);
    Ok(score(
        &predictions,
        labels,
        dataset.weights.as_deref(),
        probabilistic,
    ))
}

/// One fold's result and the summary over folds.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossValidation {
    pub folds: Vec<BTreeMap<String, f64>>,
    /// Metric → (mean, sample standard deviation) over folds.
    pub summary: BTreeMap<String, (f64, f64)>,
}

/// k-fold cross-validation: trains `algorithm` with `hyperparameters` on k−1 folds of `dataset` and scores the held-out
/// fold, k times. `stratified` keeps class proportions per fold (classifiers only).
pub fn cross_validate(
    algorithm: &dyn Algorithm,
    hyperparameters: &Hyperparameters,
    dataset: &Dataset,
    k: usize,
    stratified: bool,
    seed: u64,
    context: &mut TrainingContext,
) -> Result<CrossValidation, TrainError> {
    let labels = dataset.require_labels("test")?;
    let folds = if stratified {
        cv::stratified_kfold(labels, k, Some(seed))?
    } else {
        cv::kfold(dataset.n_rows(), k, Some(seed))?
    };
    let mut results = Vec::with_capacity(folds.len());
    for (index, fold) in folds.iter().enumerate() {
        context.log(&format!(
            "fold {}/{}: training on {} rows",
            index + 1,
            k,
            fold.train.len()
        ));
        let input = TrainingInput::new(Channel::from_dataset("train", dataset.select(&fold.train)));
        let mut fold_context = TrainingContext::new(true);
        let artifact = algorithm.train(hyperparameters, &input, &mut fold_context)?;
        let predictor = algorithm.load(&artifact)?;
        let held_out = dataset.select(&fold.test);
        results.push(evaluate(predictor.as_ref(), &held_out, "test")?.metrics);
    }
    let mut summary = BTreeMap::new();
    for name in results[0].keys() {
        let values: Vec<f64> = results
            .iter()
            .filter_map(|r| r.get(name).copied())
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let variance = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64
        } else {
            0.0
        };
        summary.insert(name.clone(), (mean, variance.sqrt()));
    }
    Ok(CrossValidation {
        folds: results,
        summary,
    })
}
