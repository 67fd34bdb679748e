//! The one contract every algorithm implements ([`Algorithm`]: hyperparameters → fit on channels → artifact) and the
//! one every trained model implements ([`Predictor`]: features → SageMaker-shaped predictions).

use ndarray::Array2;
use std::sync::Arc;

use serde_json::Value;
use tern_formats::response::{Prediction, Score};

use crate::artifact::Artifact;
use crate::data::{ChannelSpec, FeatureMatrix, TrainingInput};
use crate::hyperparameters::{HyperparameterError, HyperparameterSpec, Hyperparameters};
use crate::TrainError;
use tern_formats::observe::{metric_line, Event, Observer, Progress, StderrLines};

/// A SageMaker built-in algorithm: its hyperparameter table, how it trains, and how its artifact loads.
///
/// Implementations register once in [`crate::algorithms::all`]; the CLI and the job runner find them by
/// [`Algorithm::name`].
pub trait Algorithm: Send + Sync {
    /// The name users pass to `--algorithm`, e.g. `linear-learner`.
    fn name(&self) -> &'static str;

    /// SageMaker's hyperparameters for this algorithm: names, kinds, defaults, required-ness.
    fn hyperparameters(&self) -> &'static [HyperparameterSpec];

    /// Rules across hyperparameters (e.g. `num_classes` required for `multiclass_classifier`), checked before any
    /// data is read.
    fn validate(&self, _hyperparameters: &Hyperparameters) -> Result<(), HyperparameterError> {
        Ok(())
    }

    /// Checks `raw` hyperparameters against the table, then the cross-field rules: everything a job verifies before it
    /// reads any data.
    fn parse_hyperparameters(
        &self,
        raw: &std::collections::BTreeMap<String, String>,
    ) -> Result<Hyperparameters, HyperparameterError> {
        let hyperparameters = Hyperparameters::parse(self.name(), self.hyperparameters(), raw)?;
        self.validate(&hyperparameters)?;
        Ok(hyperparameters)
    }

    /// The channels a job of this algorithm reads (SageMaker's for the algorithm): names, required-ness and the
    /// content types each accepts. Jobs with other channels, or without a required one, fail before data is read.
    fn channels(&self) -> &'static [ChannelSpec];

    /// The content types (MIME types without parameters) the `train` channel accepts.
    fn content_types(&self) -> &'static [&'static str] {
        self.channels()
            .iter()
            .find(|c| c.name == crate::data::TRAIN)
            .map_or(&[], |c| c.content_types)
    }

    /// Fits a model on `input`, reporting progress and metrics through `context`.
    fn train(
        &self,
        hyperparameters: &Hyperparameters,
        input: &TrainingInput,
        context: &mut TrainingContext,
    ) -> Result<Artifact, TrainError>;

    /// Rebuilds the trained model from its artifact, for `tern evaluate`, reference predictions and the compiler.
    fn load(&self, artifact: &Artifact) -> Result<Box<dyn Predictor>, TrainError>;

    /// Other libraries' model formats this algorithm writes with [`Algorithm::export`] and reads with
    /// [`Algorithm::import`] (e.g. `xgboost-json`); none by default.
    fn interchange_formats(&self) -> &'static [&'static str] {
        &[]
    }

    /// The artifact's model in `format`, one of [`Algorithm::interchange_formats`].
    fn export(&self, artifact: &Artifact, format: &str) -> Result<Vec<u8>, TrainError> {
        let _ = artifact;
        Err(no_interchange(
            self.name(),
            format,
            self.interchange_formats(),
        ))
    }

    /// A tern artifact from a model file in `format`, one of [`Algorithm::interchange_formats`]; `source` names
    /// the file in errors.
    fn import(&self, bytes: &[u8], format: &str, source: &str) -> Result<Artifact, TrainError> {
        let _ = (bytes, source);
        Err(no_interchange(
            self.name(),
            format,
            self.interchange_formats(),
        ))
    }

    /// Per-feature importance of the trained model, (feature index, importance) for the features it uses, most
    /// important first, with what the value measures (e.g. `gain`); `None` when the algorithm has no such notion.
    fn feature_importance(
        &self,
        artifact: &Artifact,
    ) -> Result<Option<FeatureImportance>, TrainError> {
        let _ = artifact;
        Ok(None)
    }
}

/// Per-feature importance of a trained model ([`Algorithm::feature_importance`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureImportance {
    /// What the values measure, e.g. `gain` (mean loss reduction of the feature's splits).
    pub measure: &'static str,
    /// (feature index, importance), most important first; features the model does not use are absent.
    pub features: Vec<(usize, f64)>,
}

fn no_interchange(algorithm: &str, format: &str, formats: &[&str]) -> TrainError {
    TrainError::Config(if formats.is_empty() {
        format!("{algorithm} reads and writes no other library's model format (asked for {format})")
    } else {
        format!(
            "{algorithm} has no model format {format:?}; it reads and writes {}",
            formats.join(", ")
        )
    })
}

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Labels 0/1; `scores` has one column, the strength of belief that the label is 1.
    BinaryClassifier,
    /// Labels `0..num_classes`; `scores` has one column per class.
    MulticlassClassifier { num_classes: usize },
    /// Real-valued labels; `scores` has one column, the prediction.
    Regressor,
    /// Unsupervised clustering into `k` clusters: `predicted_label` is the closest cluster and `scores` has one
    /// column, the Euclidean distance to that cluster's centre.
    Clustering { k: usize },
    /// Unsupervised projection onto `components` directions: `scores` has one column per component; no labels.
    Projection { components: usize },
    /// Unsupervised anomaly scores (Random Cut Forest): `scores` has one column, higher for more anomalous rows; no
    /// labels (SageMaker answers scores only; the model's threshold labels the test channel during training).
    AnomalyDetection,
}

/// The predictions of a model for a batch of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    pub task: Task,
    /// Rows × (1 or num_classes).
    pub scores: Array2<f32>,
    /// The predicted class per row, for classifiers.
    pub predicted_label: Option<Vec<f32>>,
}

impl Predictions {
    /// The first score column: P(label = 1) for binary classifiers, the prediction for regressors.
    pub fn score_column(&self) -> Vec<f32> {
        self.scores.column(0).to_vec()
    }
}

/// A trained model, ready to predict.
pub trait Predictor: Send + Sync {
    /// The number of input features.
    fn feature_dim(&self) -> usize;

    /// What the model predicts.
    fn task(&self) -> Task;

    /// Predicts every row of `features` (which must have [`Predictor::feature_dim`] columns).
    fn predict(&self, features: &FeatureMatrix) -> Result<Predictions, TrainError>;

    /// Each row's prediction in the algorithm's SageMaker response shape, for [`tern_formats::response`]'s encoder
    /// (the one runtime-core answers through too). The default follows [`Predictions::task`]: classifiers answer
    /// `score` (a list for multiclass) and `predicted_label`, regressors and anomaly detectors `score`, clustering
    /// `closest_cluster` and `distance_to_cluster`, projections `projection`.
    fn responses(&self, predictions: &Predictions) -> Vec<Prediction> {
        (0..predictions.scores.nrows())
            .map(|i| {
                let row = predictions.scores.row(i);
                let label = predictions.predicted_label.as_ref().map(|l| l[i]);
                match (predictions.task, label) {
                    (Task::MulticlassClassifier { .. }, Some(label)) => Prediction::Scored {
                        score: Score::List(row.to_vec()),
                        label: Some(label as i64),
                    },
                    (Task::BinaryClassifier, Some(label)) => Prediction::Scored {
                        score: Score::Value(row[0]),
                        label: Some(label as i64),
                    },
                    (Task::Clustering { .. }, Some(cluster)) => Prediction::Cluster {
                        cluster,
                        distance: row[0],
                    },
                    (Task::Projection { .. }, _) => Prediction::Projection(row.to_vec()),
                    _ => Prediction::Scored {
                        score: Score::Value(row[0]),
                        label: None,
                    },
                }
            })
            .collect()
    }

    /// Predicts `features` straight into response records; `verbose`: an `Accept` with `verbose=true`, which
    /// algorithms with a verbose response (k-NN) answer in full and others ignore, as SageMaker's do.
    fn predict_responses(
        &self,
        features: &FeatureMatrix,
        verbose: bool,
    ) -> Result<Vec<Prediction>, TrainError> {
        let _ = verbose;
        Ok(self.responses(&self.predict(features)?))
    }

    /// One SageMaker JSON response object per row: [`Predictor::responses`] as `application/json` lists them.
    fn response_records(&self, predictions: &Predictions) -> Vec<Value> {
        self.responses(predictions)
            .iter()
            .map(Prediction::to_json)
            .collect()
    }

    /// The key of the JSON response's list of records: `predictions` for most algorithms, `projections` for PCA,
    /// `scores` for Random Cut Forest.
    fn response_key(&self) -> &'static str {
        "predictions"
    }
}

/// One metric value a training run reported, e.g. `validation:objective_loss` at epoch 3.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricRecord {
    pub name: String,
    /// The 0-based epoch (or boosting round) it was measured after; `None` for a final value.
    pub epoch: Option<usize>,
    pub value: f64,
}

impl MetricRecord {
    /// SageMaker's metric line, `#metric epoch=3 validation:rmse=0.125000` (no `epoch=` for a final value): what
    /// automatic model tuning's regular expressions read from the log.
    pub fn line(&self) -> String {
        metric_line(&self.name, self.epoch, self.value)
    }
}

/// Where an algorithm runs its heavy kernels (tern's `--device`; not a SageMaker hyperparameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// ndarray + rayon on the CPU.
    #[default]
    Cpu,
    /// wgpu compute kernels ([`crate::gpu`], built with the `gpu` feature). Algorithms without GPU kernels run on
    /// the CPU; K-Means runs its assignment step here, k-NN its query-to-index distances and IVF coarse quantizer.
    Gpu,
}

impl std::str::FromStr for Device {
    type Err = String;

    /// `cpu` or `gpu` (any case).
    fn from_str(text: &str) -> Result<Device, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu),
            other => Err(format!("unknown device {other:?}; expected cpu or gpu")),
        }
    }
}

/// What an algorithm reports through while it trains — progress, per-epoch metrics, log lines, as [`Event`]s to an
/// [`Observer`] — and the [`Device`] it should run on.
pub struct TrainingContext {
    quiet: bool,
    metrics: Vec<MetricRecord>,
    observer: Arc<dyn Observer>,
    device: Device,
}

impl TrainingContext {
    /// A context that writes metric and log lines to stderr ([`StderrLines`]) unless `quiet`, when it reports
    /// nothing (metrics are still recorded).
    pub fn new(quiet: bool) -> Self {
        TrainingContext {
            quiet,
            metrics: Vec::new(),
            observer: Arc::new(StderrLines),
            device: Device::Cpu,
        }
    }

    /// The context reporting to `observer` (the CLI's progress bars, the Python wheel's callback).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// The context with `device` selected (the default is [`Device::Cpu`]).
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// The device the algorithm should run on.
    pub fn device(&self) -> Device {
        self.device
    }

    fn report(&self, event: Event<'_>) {
        if !self.quiet {
            self.observer.observe(&event);
        }
    }

    /// Starts a stage of `total` steps labelled `what`.
    pub fn start_progress(&mut self, total: u64, what: &str) -> Progress {
        if self.quiet {
            Progress::hidden()
        } else {
            Progress::start(self.observer.clone(), what, total)
        }
    }

    /// Ends the current stage.
    pub fn finish_progress(&mut self) {
        self.report(Event::Finished);
    }

    /// Records a metric and reports it; [`StderrLines`] prints it as SageMaker's built-ins do (`#metric
    /// name=value`), the line automatic model tuning reads.
    pub fn log_metric(&mut self, name: &str, epoch: Option<usize>, value: f64) {
        self.report(Event::Metric { name, epoch, value });
        self.metrics.push(MetricRecord {
            name: name.to_string(),
            epoch,
            value,
        });
    }

    /// Reports an information line.
    pub fn log(&self, line: &str) {
        self.report(Event::Log(line));
    }

    /// Every metric recorded so far, in order.
    pub fn metrics(&self) -> &[MetricRecord] {
        &self.metrics
    }

    /// The last value recorded for each metric name with no epoch (the final values).
    pub fn final_metrics(&self) -> std::collections::BTreeMap<String, f64> {
        self.metrics
            .iter()
            .filter(|m| m.epoch.is_none())
            .map(|m| (m.name.clone(), m.value))
            .collect()
    }

    /// Whether output is suppressed.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Keeps every event as text.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Observer for Recorder {
        fn observe(&self, event: &Event<'_>) {
            self.0.lock().unwrap().push(format!("{event:?}"));
        }
    }

    #[test]
    fn a_context_reports_progress_metrics_and_logs_as_events() {
        let recorder = Arc::new(Recorder::default());
        let mut context = TrainingContext::new(false).with_observer(recorder.clone());
        let progress = context.start_progress(3, "epochs");
        progress.inc(2);
        progress.set_message("loss 0.5");
        context.log_metric("train:loss", Some(0), 0.5);
        context.log("done");
        context.finish_progress();
        let events = recorder.0.lock().unwrap().clone();
        assert_eq!(
            events,
            [
                r#"Started { stage: "epochs", total: 3 }"#,
                "Advanced { steps: 2 }",
                r#"Message("loss 0.5")"#,
                r#"Metric { name: "train:loss", epoch: Some(0), value: 0.5 }"#,
                r#"Log("done")"#,
                "Finished",
            ]
        );
        assert_eq!(context.metrics().len(), 1);
        assert_eq!(
            context.metrics()[0].line(),
            "#metric epoch=0 train:loss=0.500000"
        );
    }

    #[test]
    fn a_quiet_context_still_records_metrics_but_reports_nothing() {
        let recorder = Arc::new(Recorder::default());
        let mut context = TrainingContext::new(true).with_observer(recorder.clone());
        context.log_metric("train:loss", None, 0.25);
        context.start_progress(2, "epochs").inc(1);
        assert!(recorder.0.lock().unwrap().is_empty());
        assert_eq!(context.final_metrics()["train:loss"], 0.25);
    }
}
