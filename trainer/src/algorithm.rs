//! The one contract every algorithm implements ([`Algorithm`]: hyperparameters → fit on channels → artifact) and the
//! one every trained model implements ([`Predictor`]: features → SageMaker-shaped predictions).

use ndarray::Array2;
use serde_json::{json, Value};

use crate::artifact::Artifact;
use crate::data::{ChannelSpec, FeatureMatrix, TrainingInput};
use crate::hyperparameters::{HyperparameterError, HyperparameterSpec, Hyperparameters};
use crate::TrainError;

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

    /// One JSON object per row in SageMaker's Linear Learner / generic supervised shape: binary
    /// `{"score":0.4,"predicted_label":0}`, multiclass `{"score":[…],"predicted_label":2}`, regression `{"score":0.4}`.
    pub fn to_json_records(&self) -> Vec<Value> {
        (0..self.scores.nrows())
            .map(|i| {
                let row = self.scores.row(i);
                let label = self.predicted_label.as_ref().map(|l| l[i]);
                match (self.task, label) {
                    (Task::MulticlassClassifier { .. }, Some(label)) => {
                        json!({"score": row.to_vec(), "predicted_label": label as i64})
                    }
                    (Task::BinaryClassifier, Some(label)) => {
                        json!({"score": row[0], "predicted_label": label as i64})
                    }
                    _ => json!({"score": row[0]}),
                }
            })
            .collect()
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

    /// One SageMaker JSON response object per row; defaults to [`Predictions::to_json_records`].
    fn response_records(&self, predictions: &Predictions) -> Vec<Value> {
        predictions.to_json_records()
    }

    /// The key of the JSON response's list of records: `predictions` for most algorithms, `projections` for PCA.
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

/// What an algorithm reports through while it trains: a progress bar, per-epoch metrics, log lines; and the
/// [`Device`] it should run on.
pub struct TrainingContext {
    quiet: bool,
    metrics: Vec<MetricRecord>,
    bar: Option<indicatif::ProgressBar>,
    device: Device,
}

impl TrainingContext {
    /// A context that draws progress bars and logs to stderr unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        TrainingContext {
            quiet,
            metrics: Vec::new(),
            bar: None,
            device: Device::Cpu,
        }
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

    /// Starts a progress bar of `total` steps labelled `what` (hidden when quiet or stderr is not a terminal).
    pub fn start_progress(&mut self, total: u64, what: &str) -> indicatif::ProgressBar {
        let bar = if self.quiet {
            indicatif::ProgressBar::hidden()
        } else {
            let bar = indicatif::ProgressBar::new(total);
            let style =
                indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(what.to_string());
            bar
        };
        self.bar = Some(bar.clone());
        bar
    }

    /// Ends the current progress bar, leaving its last line on screen.
    pub fn finish_progress(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }

    /// Records a metric and, unless quiet, prints it as SageMaker's built-ins do (`#metric name=value`), which is
    /// the line automatic model tuning reads.
    pub fn log_metric(&mut self, name: &str, epoch: Option<usize>, value: f64) {
        self.metrics.push(MetricRecord {
            name: name.to_string(),
            epoch,
            value,
        });
        let line = match epoch {
            Some(epoch) => format!("#metric epoch={epoch} {name}={value:.6}"),
            None => format!("#metric {name}={value:.6}"),
        };
        self.log(&line);
    }

    /// Prints an information line to stderr unless quiet, above any progress bar.
    pub fn log(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ => eprintln!("{line}"),
        }
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
