//! XGBoost: gradient-boosted trees compatible with the `xgboost` package (3.2) and SageMaker's built-in XGBoost.
//!
//! Training follows xgboost's `hist` method: per-feature cuts from a weighted quantile summary pruned as xgboost
//! prunes it (`max_bin`; data over 2^18 rows are sketched from a seeded sample), gradient histograms per node with
//! the larger child obtained by subtraction, rayon over rows, features and the nodes of a level, a learned default
//! direction for missing values (NaN in dense data, absent entries in sparse data), depthwise or lossguide growth,
//! xgboost's regularised gain (`lambda`, `alpha`, `gamma`, `min_child_weight`, `max_delta_step`), column and row
//! sampling seeded by `seed`, monotone and interaction constraints. `tree_method=exact` enumerates the values present
//! in each node and splits midway between them, as xgboost's exact method. `booster=gblinear` fits a linear model by
//! coordinate descent ([`linear`]). `booster=dart` drops trees each round (`rate_drop`, `skip_drop`, `one_drop`,
//! `sample_type`, `normalize_type`) with xgboost's selection and weight rules, and stores each tree's weight as
//! xgboost's `weight_drop`; `sampling_method=gradient_based` keeps rows in proportion to sqrt(g² + λh²) with
//! inverse-probability weights (xgboost offers it on GPUs only; tern on the CPU). `base_score`, when not given, is
//! estimated from the labels as xgboost 3 does.
//! Ranking objectives take query groups from `*.group` files beside a channel's data (one group size per line).
//! Training is deterministic for a `seed` and thread count.
//!
//! **Artifact layout.** The model is stored as `xgboost-model.json` in xgboost's own JSON model format (see
//! [`json_model`]), so the artifact file *is* an xgboost model: `xgboost.Booster().load_model()` reads it, and
//! [`export_xgboost_json`] / [`import_xgboost_json`] convert without loss. `artifact.json`'s `model` holds the
//! objective, `num_class`, `base_score` (prediction space, one per output group), `best_iteration`, the tree count
//! and feature importance (`weight`, `gain`, `cover`). When early stopping fires, only rounds up to the best one are
//! kept. Prediction accumulates leaf values in f32 in tree order from the base margin, as xgboost does, so both
//! predict the same model identically.

pub mod binning;
pub mod booster;
pub mod grow;
pub mod json_model;
pub mod linear;
pub mod metric;
pub mod model;
pub mod objective;
pub mod params;
pub mod rank;
pub mod tree;

use std::collections::BTreeMap;
use std::io::BufReader;

use ndarray::Array2;
use serde_json::{json, Value};

use crate::algorithm::{Algorithm, Predictions, Predictor, Task, TrainingContext};
use crate::artifact::Artifact;
use crate::data::{
    Channel, ChannelSource, ChannelSpec, Dataset, DatasetBuilder, FeatureMatrix, TrainingInput,
};
use crate::hyperparameters::{HyperparameterError, HyperparameterSpec, Hyperparameters};
use crate::TrainError;
use tern_formats::response::{Prediction, Score};

use model::Model;
use objective::Objective;
use params::TrainParams;

/// The name of the xgboost JSON model inside the artifact.
pub const MODEL_FILE: &str = "xgboost-model.json";

/// The registry entry.
pub struct XGBoost;

/// The channels SageMaker documents for the algorithm.
const CONTENT_TYPES: &[&str] = &[
    "text/csv",
    "text/libsvm",
    "application/x-recordio-protobuf",
    "application/x-parquet",
];
const CHANNELS: &[ChannelSpec] = &[
    ChannelSpec::required("train", CONTENT_TYPES, "the trees are grown on it"),
    ChannelSpec::optional(
        "validation",
        CONTENT_TYPES,
        "validation:* metrics each round; early_stopping_rounds watches it",
    ),
];

impl Algorithm for XGBoost {
    fn name(&self) -> &'static str {
        "xgboost"
    }

    fn hyperparameters(&self) -> &'static [HyperparameterSpec] {
        params::HYPERPARAMETERS
    }

    fn validate(&self, hyperparameters: &Hyperparameters) -> Result<(), HyperparameterError> {
        TrainParams::from_hyperparameters(hyperparameters).map(|_| ())
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
        let params = TrainParams::from_hyperparameters(hyperparameters)?;
        if let Some(threads) = params.nthread {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| TrainError::Config(format!("nthread={threads}: {e}")))?;
            return pool.install(|| self.train_with(&params, hyperparameters, input, context));
        }
        self.train_with(&params, hyperparameters, input, context)
    }

    fn load(&self, artifact: &Artifact) -> Result<Box<dyn Predictor>, TrainError> {
        Ok(Box::new(XGBoostPredictor {
            model: model_of(artifact)?,
        }))
    }

    fn interchange_formats(&self) -> &'static [&'static str] {
        &[XGBOOST_JSON]
    }

    fn export(&self, artifact: &Artifact, format: &str) -> Result<Vec<u8>, TrainError> {
        check_format(format)?;
        export_xgboost_json(artifact)
    }

    fn import(&self, bytes: &[u8], format: &str, source: &str) -> Result<Artifact, TrainError> {
        check_format(format)?;
        import_xgboost_json(bytes, source)
    }

    fn feature_importance(
        &self,
        artifact: &Artifact,
    ) -> Result<Option<crate::FeatureImportance>, TrainError> {
        let mut features = feature_importance(artifact, "gain")?;
        features.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(Some(crate::FeatureImportance {
            measure: "gain",
            features,
        }))
    }
}

/// xgboost's own JSON model format (`Booster.save_model("model.json")`).
pub const XGBOOST_JSON: &str = "xgboost-json";

fn check_format(format: &str) -> Result<(), TrainError> {
    if format == XGBOOST_JSON {
        Ok(())
    } else {
        Err(TrainError::Config(format!(
            "xgboost has no model format {format:?}; it reads and writes {XGBOOST_JSON}"
        )))
    }
}

impl XGBoost {
    fn train_with(
        &self,
        params: &TrainParams,
        hyperparameters: &Hyperparameters,
        input: &TrainingInput,
        context: &mut TrainingContext,
    ) -> Result<Artifact, TrainError> {
        let (train, train_groups) = load_channel(input.train(), params.csv_weights, None)?;
        // The binned matrix (row-major and column-major bin indices) and the per-feature cut tables.
        let (rows, features) = (train.n_rows() as u128, train.n_features() as u128);
        crate::memory::ensure(features * 64 + rows * features * 8, || {
            format!(
                "XGBoost's binned matrix of {rows} rows × {features} features (from {})",
                train.width_origin(&input.train().name)
            )
        })?;
        let validation = input
            .validation()
            .map(|c| load_channel(c, params.csv_weights, Some(train.n_features())))
            .transpose()?;
        let (validation, validation_groups) = match validation {
            Some((dataset, groups)) => (Some(dataset), groups),
            None => (None, None),
        };
        let outcome = train_datasets(
            params,
            &train,
            validation.as_ref(),
            train_groups.as_deref(),
            validation_groups.as_deref(),
            context,
        )?;
        Ok(to_artifact(
            &outcome.model,
            hyperparameters.values().clone(),
            &outcome.final_metrics,
            params.seed,
        ))
    }
}

/// Trains on in-memory datasets (optionally with query group sizes for ranking): the library entry point behind
/// [`Algorithm::train`], checking every label, weight and group before training starts.
pub fn train_datasets(
    params: &TrainParams,
    train: &Dataset,
    validation: Option<&Dataset>,
    train_groups: Option<&[usize]>,
    validation_groups: Option<&[usize]>,
    context: &mut TrainingContext,
) -> Result<booster::TrainingOutcome, TrainError> {
    let train_set = booster::TrainingSet::new("train", train, params, train_groups)?;
    let validation_set = match validation {
        Some(v) => {
            if v.n_features() > train.n_features()
                || (matches!(v.features, FeatureMatrix::Dense(_))
                    && v.n_features() != train.n_features())
            {
                return Err(TrainError::data(
                    "validation",
                    format!(
                        "records have {} features, the train channel {}",
                        v.n_features(),
                        train.n_features()
                    ),
                ));
            }
            Some(booster::TrainingSet::new(
                "validation",
                v,
                params,
                validation_groups,
            )?)
        }
        None => None,
    };
    booster::train(params, &train_set, validation_set.as_ref(), context)
}

/// Loads a channel and its query groups. With `csv_weights` a CSV channel's second column is the instance weight.
/// Files named `*.group` beside the data (xgboost's convention: one group size per line, groups in row order) give
/// the query groups for ranking; they are read as group sizes, not as data.
fn load_channel(
    channel: &Channel,
    csv_weights: bool,
    feature_dim: Option<usize>,
) -> Result<(Dataset, Option<Vec<usize>>), TrainError> {
    let ChannelSource::Files(files) = &channel.source else {
        return Ok((channel.load(feature_dim)?, None));
    };
    let (group_files, data_files): (Vec<_>, Vec<_>) = files
        .iter()
        .partition(|p| p.extension().is_some_and(|e| e == "group"));
    let csv = matches!(channel.content_type, tern_formats::ContentType::Csv { .. });
    let mut builder = DatasetBuilder::new(&channel.name, feature_dim);
    for path in data_files {
        let file = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
        let name = path.display().to_string();
        let input = BufReader::with_capacity(1 << 20, file);
        let stream: tern_formats::RecordStream<'_> = if csv && csv_weights {
            let options = tern_formats::csv::CsvOptions {
                label_size: 1,
                weight_column: true,
                ..Default::default()
            };
            Box::new(tern_formats::csv::CsvReader::new(input, &name, options))
        } else {
            tern_formats::open_reader(&channel.content_type, input, &name)?
        };
        for record in stream {
            builder.push(record?)?;
        }
    }
    let dataset = builder.finish()?;
    if group_files.is_empty() {
        return Ok((dataset, None));
    }
    let mut sizes = Vec::new();
    for path in group_files {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        for (line, value) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let size = value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&s| s > 0)
                .ok_or_else(|| {
                    TrainError::data(
                        &channel.name,
                        format!(
                            "{} line {}: {value:?} is not a group size (a positive integer)",
                            path.display(),
                            line + 1
                        ),
                    )
                })?;
            sizes.push(size);
        }
    }
    Ok((dataset, Some(sizes)))
}

/// The artifact of a trained model.
pub fn to_artifact(
    model: &Model,
    hyperparameters: BTreeMap<String, String>,
    final_metrics: &[(String, f64)],
    seed: u64,
) -> Artifact {
    let mut artifact = Artifact::new("xgboost", hyperparameters, model.num_feature);
    let importance = |kind: &str| -> Value {
        let pairs = model.feature_importance(kind).unwrap_or_default();
        Value::Object(
            pairs
                .into_iter()
                .map(|(f, v)| (format!("f{f}"), json!(v)))
                .collect(),
        )
    };
    artifact.meta.model = json!({
        "objective": model.objective.name(),
        "num_class": if model.objective.is_multiclass() { model.num_group } else { 0 },
        "base_score": model.base_score,
        "best_iteration": model.best_iteration,
        "num_trees": model.trees.len(),
        "model_file": MODEL_FILE,
        "feature_importance": {
            "weight": importance("weight"),
            "gain": importance("gain"),
            "cover": importance("cover"),
        },
    });
    artifact.meta.training_metrics = final_metrics.iter().cloned().collect();
    artifact.meta.provenance.seed = Some(seed);
    let bytes = serde_json::to_vec(&json_model::to_json(model)).unwrap_or_default();
    artifact.files.insert(MODEL_FILE.to_string(), bytes);
    artifact
}

fn artifact_error(artifact: &Artifact, message: String) -> TrainError {
    TrainError::Artifact {
        path: artifact.meta.algorithm.clone(),
        message,
    }
}

/// The model inside an xgboost artifact.
pub fn model_of(artifact: &Artifact) -> Result<Model, TrainError> {
    let bytes = artifact.files.get(MODEL_FILE).ok_or_else(|| {
        artifact_error(
            artifact,
            format!("{MODEL_FILE} is missing; is this an xgboost model?"),
        )
    })?;
    let model = json_model::from_json(bytes)
        .map_err(|e| artifact_error(artifact, format!("{MODEL_FILE}: {e}")))?;
    if model.num_feature != artifact.meta.feature_dim {
        return Err(artifact_error(
            artifact,
            format!(
                "{MODEL_FILE} has {} features but artifact.json says {}",
                model.num_feature, artifact.meta.feature_dim
            ),
        ));
    }
    Ok(model)
}

/// The artifact's model in xgboost's JSON format, for `tern export --format xgboost-json`.
pub fn export_xgboost_json(artifact: &Artifact) -> Result<Vec<u8>, TrainError> {
    if artifact.meta.algorithm != "xgboost" {
        return Err(artifact_error(
            artifact,
            "only xgboost models export to xgboost-json".into(),
        ));
    }
    let model = model_of(artifact)?;
    serde_json::to_vec(&json_model::to_json(&model))
        .map_err(|e| artifact_error(artifact, e.to_string()))
}

/// A tern artifact from an xgboost JSON model (`Booster.save_model("m.json")`); `source` names it in errors.
pub fn import_xgboost_json(bytes: &[u8], source: &str) -> Result<Artifact, TrainError> {
    let model = json_model::from_json(bytes).map_err(|message| TrainError::Artifact {
        path: source.to_string(),
        message,
    })?;
    let mut hyperparameters = BTreeMap::new();
    hyperparameters.insert("objective".to_string(), model.objective.name().to_string());
    hyperparameters.insert("num_round".to_string(), model.num_rounds().to_string());
    if model.objective.is_multiclass() {
        hyperparameters.insert("num_class".to_string(), model.num_group.to_string());
    }
    let mut artifact = to_artifact(&model, hyperparameters, &[], 0);
    artifact.meta.provenance.seed = None;
    artifact.meta.preprocessing = json!({"imported_from": source});
    Ok(artifact)
}

/// Feature importance of `kind` (`weight`, `gain`, `cover`, `total_gain`, `total_cover`) as (feature, value) for
/// every feature used in a split, as xgboost's `Booster.get_score`.
pub fn feature_importance(
    artifact: &Artifact,
    kind: &str,
) -> Result<Vec<(usize, f64)>, TrainError> {
    model_of(artifact)?.feature_importance(kind).ok_or_else(|| {
        TrainError::Config(format!(
            "feature importance {kind:?} is unknown; expected weight, gain, cover, total_gain or total_cover"
        ))
    })
}

/// A loaded xgboost model.
pub struct XGBoostPredictor {
    pub model: Model,
}

impl Predictor for XGBoostPredictor {
    fn feature_dim(&self) -> usize {
        self.model.num_feature
    }

    fn task(&self) -> Task {
        match self.model.objective {
            o if o.is_multiclass() => Task::MulticlassClassifier {
                num_classes: self.model.num_group,
            },
            o if o.is_binary() => Task::BinaryClassifier,
            _ => Task::Regressor,
        }
    }

    fn predict(&self, features: &FeatureMatrix) -> Result<Predictions, TrainError> {
        let expected = self.model.num_feature;
        let fits = match features {
            FeatureMatrix::Dense(m) => m.ncols() == expected,
            FeatureMatrix::Sparse(m) => m.n_cols <= expected,
        };
        if !fits {
            return Err(TrainError::data(
                "input",
                format!(
                    "records have {} features, the model expects {expected}",
                    features.n_cols()
                ),
            ));
        }
        if let FeatureMatrix::Sparse(_) = features {
            // Sparse rows are densified a block of 64 at a time on each thread, num_feature wide.
            let threads = rayon::current_num_threads() as u128;
            crate::memory::ensure_elements::<f32>(64 * threads * expected as u128, || {
                format!(
                    "XGBoost's dense row blocks of {expected} features (the model's num_feature)"
                )
            })?;
        }
        let g = self.model.num_group;
        let n = features.n_rows();
        let values = match self.model.objective {
            Objective::MultiSoftmax => {
                let mut margins = self.model.predict_margins(features);
                margins.chunks_mut(g).for_each(objective::softmax);
                margins
            }
            _ => self.model.predict(features),
        };
        let scores = Array2::from_shape_vec((n, g), values).map_err(|e| TrainError::Algorithm {
            algorithm: "xgboost".into(),
            message: e.to_string(),
        })?;
        let predicted_label = match self.task() {
            Task::MulticlassClassifier { .. } => Some(
                scores
                    .rows()
                    .into_iter()
                    .map(|row| {
                        let mut best = 0;
                        for (k, &v) in row.iter().enumerate() {
                            if v > row[best] {
                                best = k;
                            }
                        }
                        best as f32
                    })
                    .collect(),
            ),
            Task::BinaryClassifier => {
                let threshold = if self.model.objective == Objective::BinaryLogitRaw {
                    0.0
                } else {
                    0.5
                };
                Some(
                    scores
                        .column(0)
                        .iter()
                        .map(|&s| if s > threshold { 1.0 } else { 0.0 })
                        .collect(),
                )
            }
            _ => None,
        };
        Ok(Predictions {
            task: self.task(),
            scores,
            predicted_label,
        })
    }

    /// SageMaker XGBoost's shape: `{"score": p}` per row, a list of class probabilities for `multi:softprob`, the
    /// class index for `multi:softmax`.
    fn responses(&self, predictions: &Predictions) -> Vec<Prediction> {
        (0..predictions.scores.nrows())
            .map(|i| {
                let score = match self.model.objective {
                    Objective::MultiSoftprob => Score::List(predictions.scores.row(i).to_vec()),
                    Objective::MultiSoftmax => {
                        Score::Value(predictions.predicted_label.as_ref().map_or(0.0, |l| l[i]))
                    }
                    _ => Score::Value(predictions.scores[[i, 0]]),
                };
                Prediction::Scored { score, label: None }
            })
            .collect()
    }
}
