//! SageMaker's k-nearest-neighbours: a seeded reservoir sample of `sample_size` labelled training points, an
//! optional random projection (`sign` or `fjlt`), and an index (`faiss.Flat` exhaustive, `faiss.IVFFlat` inverted
//! lists) under `L2`, `INNER_PRODUCT` or `COSINE`. `faiss.IVFPQ` is refused before training (not implemented).
//!
//! Prediction, for each query `x` (projected like the points; L2-normalised for `COSINE`): the k nearest stored
//! points ([`index`]: exact, ties to the lower point index, i.e. the earlier sampled record), then
//! - `classifier`: the most frequent label among them; on a tie in counts the smallest label wins (as
//!   scikit-learn's `KNeighborsClassifier`, whose `predict` takes the first class of the highest vote share);
//! - `regressor`: the mean of their labels.
//!
//! [`Predictions`] for classifiers: `Task::MulticlassClassifier` over the sorted distinct training labels
//! (`class_values`), `scores` the vote shares `[rows, classes]` (count / k, scikit-learn's `predict_proba`),
//! `predicted_label` the class *index*; for regressors `Task::Regressor`, `scores` the mean `[rows, 1]`. The JSON
//! response is SageMaker's `{"predicted_label": <label value>}`; [`KnnModel::verbose_records`] adds `distances`
//! and `labels` of the k neighbours (`application/json; verbose=true`). Distances are FAISS's: squared Euclidean
//! for `L2` (ascending), inner product / cosine similarity for the other two (descending).
//!
//! Artifact layout (`weights.safetensors`): `points` f32 `[points, dim]` (projected, normalised for `COSINE`),
//! `labels` f32 `[points]`, `projection` f32 `[feature_dim, dim]` with reduction, and for IVF `centroids` f32
//! `[nlists, dim]` and `list_assignment` f32 `[points]` (each point's list). `artifact.json`'s `model` holds
//! SageMaker's metadata (`k`, `predictor_type`, `dimension_reduction`, `normalize`, `version`) and tern's
//! (`index_type`, `index_metric`, `nlists`, `nprobe`, `points`, `records_read`); `k` and `predictor_type` may be
//! edited there to change inference, as SageMaker allows. `label_map` lists the class values of classifiers.

pub mod index;
pub mod projection;
pub mod settings;
pub mod train;

use ndarray::{Array2, ArrayView2, Axis};
use serde_json::{json, Value};

use crate::algorithm::{Algorithm, Predictions, Predictor, Task, TrainingContext};
use crate::artifact::{Artifact, Tensor};
use crate::data::{ChannelSpec, FeatureMatrix, TrainingInput};
use crate::hyperparameters::{HyperparameterError, HyperparameterSpec, Hyperparameters};
use crate::TrainError;
use tern_formats::response::Prediction;

pub use index::{InvertedLists, Neighbours, Scorer};
pub use settings::{IndexType, KnnSettings, Metric, PredictorType, Reduction};

/// The registry entry for SageMaker's k-NN.
pub struct Knn;

/// The registry name.
pub const NAME: &str = "knn";

/// The channels SageMaker documents for the algorithm.
const CONTENT_TYPES: &[&str] = &["text/csv", "application/x-recordio-protobuf"];
const CHANNELS: &[ChannelSpec] = &[
    ChannelSpec::required("train", CONTENT_TYPES, "sampled and indexed"),
    ChannelSpec::optional(
        "test",
        CONTENT_TYPES,
        "scored: accuracy for classifiers, mean squared error for regressors",
    ),
];

impl Algorithm for Knn {
    fn name(&self) -> &'static str {
        NAME
    }

    fn hyperparameters(&self) -> &'static [HyperparameterSpec] {
        settings::HYPERPARAMETERS
    }

    /// See [`KnnSettings::from_hyperparameters`].
    fn validate(&self, hyperparameters: &Hyperparameters) -> Result<(), HyperparameterError> {
        KnnSettings::from_hyperparameters(hyperparameters).map(|_| ())
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
        let settings = KnnSettings::from_hyperparameters(hyperparameters)?;
        input.check(self.name(), CHANNELS)?;
        let scorer = Scorer::for_device(context)?;
        let (model, records_read) = train::fit(&settings, input.train(), &scorer, context)?;
        let mut artifact = model.to_artifact(hyperparameters, &settings, records_read);
        if let Some(test) = input.test() {
            let (name, value) =
                train::score_channel(&model, test, settings.mini_batch_size, &scorer, context)?;
            context.log_metric(name, None, value);
            artifact
                .meta
                .training_metrics
                .insert(name.to_string(), value);
        }
        Ok(artifact)
    }

    fn load(&self, artifact: &Artifact) -> Result<Box<dyn Predictor>, TrainError> {
        Ok(Box::new(KnnModel::from_artifact(artifact)?))
    }
}

/// The sorted distinct values of `labels`.
pub(crate) fn class_values(labels: &[f32]) -> Vec<f32> {
    let mut values = labels.to_vec();
    values.sort_by(f32::total_cmp);
    values.dedup();
    values
}

/// A trained k-NN model.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnModel {
    pub feature_dim: usize,
    pub k: usize,
    pub predictor_type: PredictorType,
    pub metric: Metric,
    /// `[feature_dim, dim]`, when dimension reduction is on.
    pub projection: Option<Array2<f32>>,
    /// `[points, dim]`: the sample, projected, normalised for `COSINE`.
    pub points: Array2<f32>,
    /// One label per point.
    pub labels: Vec<f32>,
    /// The sorted distinct labels (the classes of a classifier).
    pub class_values: Vec<f32>,
    /// The inverted lists of an IVF index.
    pub ivf: Option<InvertedLists>,
    norms: Vec<f64>,
}

impl KnnModel {
    /// Rows of `feature_dim` values → the index's space: projected (f64 sums), then L2-normalised for `COSINE`
    /// (a zero row stays zero).
    pub fn embed(&self, rows: ArrayView2<f32>) -> Array2<f32> {
        let mut out = match &self.projection {
            Some(r) => rows
                .mapv(f64::from)
                .dot(&r.mapv(f64::from))
                .mapv(|v| v as f32),
            None => rows.to_owned(),
        };
        if train::normalises(self.metric) {
            for mut row in out.axis_iter_mut(Axis(0)) {
                let norm = row
                    .iter()
                    .map(|&v| f64::from(v) * f64::from(v))
                    .sum::<f64>()
                    .sqrt();
                if norm > 0.0 {
                    row.mapv_inplace(|v| (f64::from(v) / norm) as f32);
                }
            }
        }
        out
    }

    /// The k nearest stored points of every row of `features` (see [`index`]), searched on the CPU.
    ///
    /// # Errors
    /// [`TrainError::Data`] naming `source`, the 1-based record and field for a row of the wrong width or a
    /// NaN/infinite value.
    pub fn neighbours_of(
        &self,
        features: &FeatureMatrix,
        source: &str,
    ) -> Result<Neighbours, TrainError> {
        self.neighbours_on(&Scorer::Cpu, features, source)
    }

    /// [`KnnModel::neighbours_of`] with the query-to-point scores of the brute-force search (Flat: every point;
    /// IVF: the centroids) computed by `scorer`: the same neighbours and scores on the CPU and the GPU.
    ///
    /// # Errors
    /// As [`KnnModel::neighbours_of`], and [`TrainError::Algorithm`] when the GPU fails.
    pub fn neighbours_on(
        &self,
        scorer: &Scorer,
        features: &FeatureMatrix,
        source: &str,
    ) -> Result<Neighbours, TrainError> {
        if features.n_cols() != self.feature_dim {
            return Err(TrainError::data(
                source,
                format!(
                    "records have {} features, the model expects {}",
                    features.n_cols(),
                    self.feature_dim
                ),
            ));
        }
        let dense = features.to_dense();
        for (i, row) in dense.rows().into_iter().enumerate() {
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(crate::data::record_error(
                    source,
                    i + 1,
                    &format!("features[{j}]"),
                    format!("{}, expected a finite number", row[j]),
                ));
            }
        }
        let queries = self.embed(dense.view());
        match &self.ivf {
            Some(lists) => lists.search_on(
                scorer,
                queries.view(),
                self.points.view(),
                self.metric,
                self.k,
            ),
            None => index::flat_search_on(
                scorer,
                queries.view(),
                self.points.view(),
                &self.norms,
                self.metric,
                self.k,
            ),
        }
    }

    /// The class index of a label value (labels come from the stored points, so they are always classes).
    fn class_of(&self, label: f32) -> usize {
        self.class_values
            .binary_search_by(|v| v.total_cmp(&label))
            .unwrap_or(0)
    }

    /// Per query: the vote counts over `class_values`.
    fn votes(&self, neighbours: &Neighbours) -> Vec<Vec<usize>> {
        neighbours
            .indices
            .chunks(neighbours.k.max(1))
            .map(|row| {
                let mut counts = vec![0usize; self.class_values.len()];
                for &j in row {
                    counts[self.class_of(self.labels[j as usize])] += 1;
                }
                counts
            })
            .collect()
    }

    /// The class index with the most votes, the smallest on a tie.
    fn winner(counts: &[usize]) -> usize {
        let mut best = 0;
        for (c, &n) in counts.iter().enumerate() {
            if n > counts[best] {
                best = c;
            }
        }
        best
    }

    /// SageMaker's `predicted_label` per query: the winning label value (classifier) or the neighbours' mean label
    /// (regressor, summed in f64).
    pub fn predicted_values(&self, neighbours: &Neighbours) -> Vec<f32> {
        match self.predictor_type {
            PredictorType::Classifier => self
                .votes(neighbours)
                .iter()
                .map(|counts| self.class_values[Self::winner(counts)])
                .collect(),
            PredictorType::Regressor => neighbours
                .indices
                .chunks(neighbours.k.max(1))
                .map(|row| {
                    let sum: f64 = row
                        .iter()
                        .map(|&j| f64::from(self.labels[j as usize]))
                        .sum();
                    (sum / row.len().max(1) as f64) as f32
                })
                .collect(),
        }
    }

    /// `{"predicted_label": …, "distances": [k], "labels": [k]}` per row: SageMaker's verbose response
    /// (`application/json; verbose=true`), neighbours nearest first.
    pub fn verbose_responses(
        &self,
        features: &FeatureMatrix,
    ) -> Result<Vec<Prediction>, TrainError> {
        let neighbours = self.neighbours_of(features, "input")?;
        let predicted = self.predicted_values(&neighbours);
        let k = neighbours.k.max(1);
        Ok(predicted
            .iter()
            .zip(
                neighbours
                    .indices
                    .chunks(k)
                    .zip(neighbours.scores.chunks(k)),
            )
            .map(|(&label, (indices, distances))| {
                let labels: Vec<f32> = indices.iter().map(|&j| self.labels[j as usize]).collect();
                Prediction::Neighbours {
                    label,
                    verbose: Some((distances.to_vec(), labels)),
                }
            })
            .collect())
    }

    /// [`KnnModel::verbose_responses`] as the JSON objects of an `application/json` response.
    pub fn verbose_records(&self, features: &FeatureMatrix) -> Result<Vec<Value>, TrainError> {
        Ok(self
            .verbose_responses(features)?
            .iter()
            .map(Prediction::to_json)
            .collect())
    }

    /// Reads a k-NN artifact (layout in the module documentation), checking every tensor's shape.
    pub fn from_artifact(artifact: &Artifact) -> Result<KnnModel, TrainError> {
        let bad = |message: String| TrainError::Artifact {
            path: NAME.into(),
            message,
        };
        let model = &artifact.meta.model;
        let feature_dim = artifact.meta.feature_dim;
        let k = model["k"].as_u64().filter(|&k| k > 0).ok_or_else(|| {
            bad(format!(
                "model.k is {}, expected a positive integer",
                model["k"]
            ))
        })? as usize;
        let predictor_type = model["predictor_type"]
            .as_str()
            .and_then(PredictorType::parse)
            .ok_or_else(|| {
                bad(format!(
                    "model.predictor_type is {}, expected \"classifier\" or \"regressor\"",
                    model["predictor_type"]
                ))
            })?;
        let metric = model["index_metric"]
            .as_str()
            .and_then(Metric::parse)
            .ok_or_else(|| {
                bad(format!(
                    "model.index_metric is {}, expected L2, INNER_PRODUCT or COSINE",
                    model["index_metric"]
                ))
            })?;
        let points = artifact.tensor("points")?;
        if points.shape.len() != 2 || points.shape[0] == 0 || points.shape[1] == 0 {
            return Err(bad(format!(
                "tensor points has shape {:?}, expected [points, dim]",
                points.shape
            )));
        }
        let (m, dim) = (points.shape[0], points.shape[1]);
        let labels = artifact.tensor("labels")?;
        if labels.shape != [m] {
            return Err(bad(format!(
                "tensor labels has shape {:?}, expected [{m}]",
                labels.shape
            )));
        }
        if k > m {
            return Err(bad(format!("model.k={k} exceeds the {m} stored points")));
        }
        let projection = match artifact.tensors.get("projection") {
            Some(t) if t.shape == [feature_dim, dim] => Some(
                Array2::from_shape_vec((feature_dim, dim), t.data.clone())
                    .map_err(|e| bad(e.to_string()))?,
            ),
            Some(t) => {
                return Err(bad(format!(
                    "tensor projection has shape {:?}, expected [{feature_dim}, {dim}]",
                    t.shape
                )))
            }
            None if dim != feature_dim => {
                return Err(bad(format!(
                    "points have {dim} dimensions but feature_dim is {feature_dim} and there is no projection"
                )))
            }
            None => None,
        };
        let points = Array2::from_shape_vec((m, dim), points.data.clone())
            .map_err(|e| bad(e.to_string()))?;
        let ivf = match (
            artifact.tensors.get("centroids"),
            artifact.tensors.get("list_assignment"),
        ) {
            (None, None) => None,
            (Some(centroids), Some(assignment)) => {
                if centroids.shape.len() != 2
                    || centroids.shape[1] != dim
                    || centroids.shape[0] == 0
                {
                    return Err(bad(format!(
                        "tensor centroids has shape {:?}, expected [nlists, {dim}]",
                        centroids.shape
                    )));
                }
                let nlists = centroids.shape[0];
                if assignment.shape != [m]
                    || assignment
                        .data
                        .iter()
                        .any(|&l| l < 0.0 || l.fract() != 0.0 || l as usize >= nlists)
                {
                    return Err(bad(format!(
                        "tensor list_assignment must hold {m} list indices in [0, {nlists})"
                    )));
                }
                let nprobe = model["nprobe"].as_u64().unwrap_or(1) as usize;
                Some(InvertedLists::from_parts(
                    points.view(),
                    Array2::from_shape_vec((nlists, dim), centroids.data.clone())
                        .map_err(|e| bad(e.to_string()))?,
                    Some(assignment.data.iter().map(|&l| l as u32).collect()),
                    metric,
                    nprobe,
                ))
            }
            _ => {
                return Err(bad(
                    "an IVF index needs both tensors centroids and list_assignment".into(),
                ))
            }
        };
        let norms = index::squared_norms(points.view());
        Ok(KnnModel {
            feature_dim,
            k,
            predictor_type,
            metric,
            projection,
            class_values: class_values(&labels.data),
            labels: labels.data.clone(),
            points,
            ivf,
            norms,
        })
    }

    /// The artifact of this model (layout in the module documentation).
    pub fn to_artifact(
        &self,
        hyperparameters: &Hyperparameters,
        settings: &KnnSettings,
        records_read: usize,
    ) -> Artifact {
        let (m, dim) = self.points.dim();
        let mut artifact = Artifact::new(NAME, hyperparameters.values().clone(), self.feature_dim);
        artifact.meta.provenance.seed = Some(settings.seed);
        let reduction = settings.reduction.map(|(kind, target)| {
            json!({"type": kind.as_str(), "seed": settings.seed, "target_dim": target, "input_dim": self.feature_dim})
        });
        artifact.meta.model = json!({
            "k": self.k,
            "predictor_type": self.predictor_type.as_str(),
            "dimension_reduction": reduction,
            "normalize": train::normalises(self.metric),
            "version": "1.0",
            "index_type": settings.index_type.as_str(),
            "index_metric": self.metric.as_str(),
            "nlists": self.ivf.as_ref().map(InvertedLists::nlists),
            "nprobe": self.ivf.as_ref().map(|l| l.nprobe),
            "points": m,
            "records_read": records_read,
        });
        if self.predictor_type == PredictorType::Classifier {
            artifact.meta.label_map =
                Some(self.class_values.iter().map(|v| v.to_string()).collect());
        }
        artifact.tensors.insert(
            "points".into(),
            Tensor::new(vec![m, dim], self.points.iter().copied().collect()),
        );
        artifact
            .tensors
            .insert("labels".into(), Tensor::new(vec![m], self.labels.clone()));
        if let Some(r) = &self.projection {
            artifact.tensors.insert(
                "projection".into(),
                Tensor::new(vec![self.feature_dim, dim], r.iter().copied().collect()),
            );
        }
        if let Some(lists) = &self.ivf {
            artifact.tensors.insert(
                "centroids".into(),
                Tensor::new(
                    vec![lists.nlists(), dim],
                    lists.centroids.iter().copied().collect(),
                ),
            );
            artifact.tensors.insert(
                "list_assignment".into(),
                Tensor::new(
                    vec![m],
                    lists.assignment.iter().map(|&l| l as f32).collect(),
                ),
            );
        }
        artifact
    }
}

impl Predictor for KnnModel {
    fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    fn task(&self) -> Task {
        match self.predictor_type {
            PredictorType::Classifier => Task::MulticlassClassifier {
                num_classes: self.class_values.len(),
            },
            PredictorType::Regressor => Task::Regressor,
        }
    }

    fn predict(&self, features: &FeatureMatrix) -> Result<Predictions, TrainError> {
        let neighbours = self.neighbours_of(features, "input")?;
        let rows = features.n_rows();
        let invalid = |e: ndarray::ShapeError| TrainError::Algorithm {
            algorithm: NAME.into(),
            message: e.to_string(),
        };
        Ok(match self.predictor_type {
            PredictorType::Classifier => {
                let votes = self.votes(&neighbours);
                let k = neighbours.k as f32;
                let shares: Vec<f32> = votes
                    .iter()
                    .flat_map(|counts| counts.iter().map(move |&n| n as f32 / k))
                    .collect();
                Predictions {
                    task: self.task(),
                    scores: Array2::from_shape_vec((rows, self.class_values.len()), shares)
                        .map_err(invalid)?,
                    predicted_label: Some(
                        votes
                            .iter()
                            .map(|counts| Self::winner(counts) as f32)
                            .collect(),
                    ),
                }
            }
            PredictorType::Regressor => Predictions {
                task: self.task(),
                scores: Array2::from_shape_vec((rows, 1), self.predicted_values(&neighbours))
                    .map_err(invalid)?,
                predicted_label: None,
            },
        })
    }

    /// `{"predicted_label": 2.0}` per row, as SageMaker's k-NN answers (the label value; the mean for regressors).
    fn responses(&self, predictions: &Predictions) -> Vec<Prediction> {
        let labels: Vec<f32> = match &predictions.predicted_label {
            Some(classes) => classes
                .iter()
                .map(|&c| self.class_values.get(c as usize).copied().unwrap_or(c))
                .collect(),
            None => predictions.scores.column(0).to_vec(),
        };
        labels
            .into_iter()
            .map(|label| Prediction::Neighbours {
                label,
                verbose: None,
            })
            .collect()
    }

    /// With `verbose`, every row's neighbours' distances and labels as well ([`KnnModel::verbose_responses`]).
    fn predict_responses(
        &self,
        features: &FeatureMatrix,
        verbose: bool,
    ) -> Result<Vec<Prediction>, TrainError> {
        if verbose {
            self.verbose_responses(features)
        } else {
            Ok(self.responses(&self.predict(features)?))
        }
    }
}
