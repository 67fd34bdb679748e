//! Training jobs: the plain one (`tern train --train … --output-dir …`) and SageMaker's training-container contract
//! (`tern train --sagemaker-root /opt/ml`): `input/config/{hyperparameters,inputdataconfig,resourceconfig}.json`,
//! channels in `input/data/<channel>/` (File mode) or FIFOs `input/data/<channel>_<epoch>` (Pipe mode), the model to
//! `model/model.tar.gz`, metrics and plots to `output/data/`, and on failure the reason to `output/failure`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tern_formats::ContentType;

use crate::algorithm::{Algorithm, MetricRecord, Task, TrainingContext};
use crate::artifact::{write_atomically, Artifact};
use crate::data::{Channel, ChannelSource, TrainingInput};
use crate::outputs::OutputSet;
use crate::{algorithms, metrics, plots, TrainError};

/// What a job writes besides the model, and how loudly it runs.
#[derive(Clone, Default)]
pub struct JobOptions {
    /// No progress bars or log lines.
    pub quiet: bool,
    /// Where to write the metrics JSON (default: `<output_dir>/metrics.json`).
    pub metrics_path: Option<PathBuf>,
    /// Skip the learning-curve / ROC / PR plots.
    pub no_plots: bool,
    /// Where the algorithm runs its heavy kernels (`--device`; K-Means' assignment step has a GPU kernel).
    pub device: crate::algorithm::Device,
    /// Who hears the job's progress, metrics and log lines; `None`: [`crate::observe::StderrLines`].
    pub observer: Option<std::sync::Arc<dyn crate::observe::Observer>>,
}

/// The result of a finished job.
#[derive(Debug)]
pub struct JobOutcome {
    pub artifact: Artifact,
    pub model_path: PathBuf,
    pub metrics_path: PathBuf,
    /// Plots written, in order.
    pub plots: Vec<PathBuf>,
    pub metrics: Vec<MetricRecord>,
}

/// Runs one training job: checks the hyperparameters (before reading any data), checks each channel's content type is
/// one the algorithm takes, trains, records provenance and final metrics in the artifact, and writes
/// `<model_dir>/model.tar.gz`, the metrics JSON and the plots into `output_dir`.
pub fn run(
    algorithm: &dyn Algorithm,
    raw_hyperparameters: &BTreeMap<String, String>,
    input: &TrainingInput,
    model_dir: &Path,
    output_dir: &Path,
    options: &JobOptions,
) -> Result<JobOutcome, TrainError> {
    let hyperparameters = algorithm.parse_hyperparameters(raw_hyperparameters)?;
    input.check(algorithm.name(), algorithm.channels())?;

    let mut context = TrainingContext::new(options.quiet).with_device(options.device);
    if let Some(observer) = &options.observer {
        context = context.with_observer(observer.clone());
    }
    let mut artifact = algorithm.train(&hyperparameters, input, &mut context)?;
    if let Some((tensor, index, value)) = artifact.first_non_finite() {
        return Err(TrainError::Algorithm {
            algorithm: algorithm.name().to_string(),
            message: format!(
                "training diverged: weight {tensor}[{index}] is {value}; the model would predict NaN \
                 (a smaller learning rate, or normalized data, usually fixes it)"
            ),
        });
    }
    artifact.meta.provenance.data_sha256 = channel_digests(input)?;
    artifact.meta.provenance.seed = hyperparameters.integer("seed").map(|s| s as u64);
    for (name, value) in context.final_metrics() {
        artifact.meta.training_metrics.entry(name).or_insert(value);
    }
    // Every output is staged and then committed as one unit (crate::outputs), the model's folder last.
    let mut outputs = OutputSet::new();
    let model_path = model_dir.join("model.tar.gz");
    outputs.write(&model_path, &artifact.to_bytes()?)?;

    let metrics_path = options
        .metrics_path
        .clone()
        .unwrap_or_else(|| output_dir.join("metrics.json"));
    let metrics_json = serde_json::json!({
        "algorithm": algorithm.name(),
        "hyperparameters": hyperparameters.values(),
        "final": artifact.meta.training_metrics,
        "history": context.metrics(),
    });
    let mut bytes =
        serde_json::to_vec_pretty(&metrics_json).map_err(|e| TrainError::Config(e.to_string()))?;
    bytes.push(b'\n');
    outputs.write(&metrics_path, &bytes)?;

    let mut written = Vec::new();
    if !options.no_plots {
        written = write_plots(
            algorithm,
            &artifact,
            input,
            context.metrics(),
            output_dir,
            &mut outputs,
        )?;
    }
    // Plots an earlier run left in the folder would describe another model.
    for name in PLOTS {
        let path = output_dir.join(name);
        if !written.contains(&path) {
            outputs.retire(&path)?;
        }
    }
    outputs.commit()?;
    Ok(JobOutcome {
        artifact,
        model_path,
        metrics_path,
        plots: written,
        metrics: context.metrics().to_vec(),
    })
}

/// The learning curve (when the algorithm reported per-epoch metrics) and, for binary classifiers, ROC and PR curves
/// on the validation channel (else the training channel), as SVG.
/// The plots a job may write into its output folder.
const PLOTS: [&str; 3] = ["learning_curve.svg", "roc_curve.svg", "pr_curve.svg"];

/// Stages the plots in `outputs` and returns their final paths.
fn write_plots(
    algorithm: &dyn Algorithm,
    artifact: &Artifact,
    input: &TrainingInput,
    history: &[MetricRecord],
    output_dir: &Path,
    outputs: &mut OutputSet,
) -> Result<Vec<PathBuf>, TrainError> {
    let mut written = Vec::new();
    if history.iter().any(|m| m.epoch.is_some()) {
        let path = output_dir.join(PLOTS[0]);
        plots::plot_learning_curve(
            history,
            &format!("{} learning curve", algorithm.name()),
            &outputs.stage(&path)?,
        )?;
        written.push(path);
    }
    let predictor = algorithm.load(artifact)?;
    if predictor.task() != Task::BinaryClassifier {
        return Ok(written);
    }
    let channel = input.validation().unwrap_or(input.train());
    if matches!(channel.source, ChannelSource::Pipe { .. }) {
        return Ok(written);
    }
    let dataset = channel.load(Some(predictor.feature_dim()))?;
    let labels = dataset.require_labels(&channel.name)?;
    let predictions = predictor.predict(&dataset.features)?;
    let score = predictions.score_column();
    let weights = dataset.weights.as_deref();
    let roc = metrics::roc_curve(labels, &score, weights);
    let roc_path = output_dir.join(PLOTS[1]);
    plots::plot_roc_curve(
        &roc,
        metrics::roc_auc(labels, &score, weights),
        &outputs.stage(&roc_path)?,
    )?;
    let pr = metrics::precision_recall_curve(labels, &score, weights);
    let pr_path = output_dir.join(PLOTS[2]);
    plots::plot_pr_curve(
        &pr,
        metrics::average_precision(labels, &score, weights),
        &outputs.stage(&pr_path)?,
    )?;
    written.extend([roc_path, pr_path]);
    Ok(written)
}

/// sha256 of each File-mode channel's bytes, files in the order they are read; Pipe-mode channels (read once, by the
/// algorithm) are recorded as `pipe`.
fn channel_digests(input: &TrainingInput) -> Result<BTreeMap<String, String>, TrainError> {
    let mut digests = BTreeMap::new();
    for channel in input.channels() {
        let digest = match &channel.source {
            ChannelSource::Files(files) => {
                let mut hasher = Sha256::new();
                let mut buffer = vec![0u8; 1 << 20];
                for file in files {
                    let mut reader =
                        std::fs::File::open(file).map_err(|e| TrainError::io(file, e))?;
                    loop {
                        let n = reader
                            .read(&mut buffer)
                            .map_err(|e| TrainError::io(file, e))?;
                        if n == 0 {
                            break;
                        }
                        hasher.update(&buffer[..n]);
                    }
                }
                hex(&hasher.finalize())
            }
            ChannelSource::Pipe { .. } => "pipe".to_string(),
            ChannelSource::Memory(_) => "memory".to_string(),
        };
        digests.insert(channel.name.clone(), digest);
    }
    Ok(digests)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `/opt/ml` layout of a SageMaker training container, rooted anywhere (tests use a temp dir).
#[derive(Debug, Clone)]
pub struct SageMakerLayout {
    pub root: PathBuf,
}

impl SageMakerLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SageMakerLayout { root: root.into() }
    }
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("input/config")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("input/data")
    }
    pub fn model_dir(&self) -> PathBuf {
        self.root.join("model")
    }
    pub fn output_data_dir(&self) -> PathBuf {
        self.root.join("output/data")
    }
    pub fn failure_path(&self) -> PathBuf {
        self.root.join("output/failure")
    }

    /// `hyperparameters.json`: a JSON object of strings (numbers and booleans are accepted and stringified, as
    /// hand-written configs have them). Missing file = no hyperparameters.
    pub fn hyperparameters(&self) -> Result<BTreeMap<String, String>, TrainError> {
        let path = self.config_dir().join("hyperparameters.json");
        let Some(value) = read_json(&path)? else {
            return Ok(BTreeMap::new());
        };
        let object = value.as_object().ok_or_else(|| {
            TrainError::Config(format!(
                "{}: expected a JSON object of strings",
                path.display()
            ))
        })?;
        object
            .iter()
            .map(|(name, value)| {
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(TrainError::Config(format!(
                            "{}: hyperparameter {name} is {other}, expected a string",
                            path.display()
                        )))
                    }
                };
                Ok((name.clone(), text))
            })
            .collect()
    }

    /// The channels: those `inputdataconfig.json` names (with their ContentType and TrainingInputMode), else every
    /// folder under `input/data/`. Whether the algorithm reads them is checked by [`run`].
    pub fn channels(&self) -> Result<TrainingInput, TrainError> {
        let config_path = self.config_dir().join("inputdataconfig.json");
        let mut declared: BTreeMap<String, (Option<ContentType>, bool)> = BTreeMap::new();
        if let Some(config) = read_json(&config_path)? {
            let object = config.as_object().ok_or_else(|| {
                TrainError::Config(format!(
                    "{}: expected a JSON object of channels",
                    config_path.display()
                ))
            })?;
            for (name, settings) in object {
                let content_type = match settings.get("ContentType").and_then(|v| v.as_str()) {
                    Some(text) => Some(ContentType::parse(text).map_err(|e| {
                        TrainError::Config(format!(
                            "{}: channel {name}: {e}",
                            config_path.display()
                        ))
                    })?),
                    None => None,
                };
                let mode = settings
                    .get("TrainingInputMode")
                    .and_then(|v| v.as_str())
                    .unwrap_or("File");
                let pipe = match mode {
                    "Pipe" => true,
                    "File" | "FastFile" => false,
                    other => {
                        return Err(TrainError::Config(format!(
                            "{}: channel {name}: TrainingInputMode {other:?}, expected File, FastFile or Pipe",
                            config_path.display()
                        )))
                    }
                };
                if settings.get("RecordWrapperType").and_then(|v| v.as_str()) == Some("RecordIO")
                    && content_type != Some(ContentType::RecordIoProtobuf)
                {
                    return Err(TrainError::Config(format!(
                        "{}: channel {name}: RecordWrapperType RecordIO is only read for application/x-recordio-protobuf",
                        config_path.display()
                    )));
                }
                declared.insert(name.clone(), (content_type, pipe));
            }
        } else {
            let data_dir = self.data_dir();
            let entries = std::fs::read_dir(&data_dir).map_err(|e| TrainError::io(&data_dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| TrainError::io(&data_dir, e))?;
                if entry.path().is_dir() {
                    declared.insert(
                        entry.file_name().to_string_lossy().to_string(),
                        (None, false),
                    );
                }
            }
        }
        let others: Vec<String> = declared.keys().filter(|n| *n != "train").cloned().collect();
        let mut channel = |name: &str| -> Result<Option<Channel>, TrainError> {
            let Some((content_type, pipe)) = declared.remove(name) else {
                return Ok(None);
            };
            if pipe {
                return Ok(Some(Channel {
                    name: name.to_string(),
                    content_type: content_type.unwrap_or(ContentType::Csv { label_size: 1 }),
                    source: ChannelSource::Pipe {
                        dir: self.data_dir(),
                        name: name.to_string(),
                    },
                }));
            }
            Channel::from_path(name, &self.data_dir().join(name), content_type).map(Some)
        };
        let train = channel("train")?.ok_or_else(|| {
            TrainError::Config(format!(
                "no train channel: expected {} or a train entry in {}",
                self.data_dir().join("train").display(),
                config_path.display()
            ))
        })?;
        let mut input = TrainingInput::new(train);
        // Which channels the algorithm reads is its declaration, checked by the job before data is read.
        for name in &others {
            input = input.with(channel(name)?);
        }
        Ok(input)
    }

    /// Writes the failure reason to `output/failure` (SageMaker shows its first 1024 characters as FailureReason).
    pub fn write_failure(&self, reason: &str) -> Result<(), TrainError> {
        write_atomically(&self.failure_path(), format!("{reason}\n").as_bytes())
    }
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>, TrainError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TrainError::Config(format!("{}: not valid JSON: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TrainError::io(path, e)),
    }
}

/// The algorithm of `algorithms` a SageMaker job runs: `explicit` when given, else the one whose hyperparameter
/// table accepts every given name and has each of its required names given.
pub fn resolve_algorithm(
    algorithms: &[&'static dyn Algorithm],
    explicit: Option<&str>,
    hyperparameters: &BTreeMap<String, String>,
) -> Result<&'static dyn Algorithm, TrainError> {
    if let Some(name) = explicit {
        return algorithms::find_in(algorithms, name);
    }
    let fits = |algorithm: &&&dyn Algorithm| {
        let specs = algorithm.hyperparameters();
        let all_known = hyperparameters
            .keys()
            .filter(|n| !n.starts_with('_') && !n.starts_with("sagemaker_"))
            .all(|n| specs.iter().any(|s| s.name == n));
        let required_given = specs
            .iter()
            .filter(|s| s.required)
            .all(|s| hyperparameters.contains_key(s.name));
        all_known && required_given
    };
    let candidates: Vec<_> = algorithms.iter().filter(fits).collect();
    match candidates.as_slice() {
        [one] => Ok(**one),
        [] => Err(TrainError::Config(
            "no algorithm takes these hyperparameters; pass --algorithm (or set TERN_ALGORITHM)".to_string(),
        )),
        many => Err(TrainError::Config(format!(
            "these hyperparameters fit several algorithms ({}); pass --algorithm (or set TERN_ALGORITHM)",
            many.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Runs a whole SageMaker training job under `layout`, choosing among `algorithms` ([`resolve_algorithm`]). On
/// failure the reason is also written to `output/failure` before the error is returned (the caller exits non-zero).
pub fn run_sagemaker(
    layout: &SageMakerLayout,
    algorithms: &[&'static dyn Algorithm],
    algorithm: Option<&str>,
    options: &JobOptions,
) -> Result<JobOutcome, TrainError> {
    let result = (|| {
        let hyperparameters = layout.hyperparameters()?;
        let algorithm = resolve_algorithm(algorithms, algorithm, &hyperparameters)?;
        // Hyperparameters are checked before channels are opened: a bad value fails at once, with no data read.
        algorithm.parse_hyperparameters(&hyperparameters)?;
        let input = layout.channels()?;
        let output_dir = layout.output_data_dir();
        let options = JobOptions {
            metrics_path: options
                .metrics_path
                .clone()
                .or_else(|| Some(output_dir.join("metrics.json"))),
            ..options.clone()
        };
        run(
            algorithm,
            &hyperparameters,
            &input,
            &layout.model_dir(),
            &output_dir,
            &options,
        )
    })();
    if let Err(error) = &result {
        // The original error matters more than a failure to record it; both go to stderr via the caller.
        let _ = layout.write_failure(&error.to_string());
    }
    result
}
