//! SageMaker's Random Cut Forest: unsupervised anomaly scores from a forest of random cut trees (Guha, Mishra, Roy,
//! Schrijvers, "Robust Random Cut Forest Based Anomaly Detection on Streams", ICML 2016).
//!
//! Training streams the train channel once: each of `num_trees` trees keeps a seeded reservoir sample (without
//! replacement) of `num_samples_per_tree` records, then is built by cutting bounding boxes, a dimension chosen with
//! probability proportional to its extent and the position uniform along it, until each leaf holds one distinct
//! point. A record's score is its collusive displacement (CoDisp) were it inserted into each tree, in expectation
//! over the insertion's random cuts (computed exactly, see [`tree::expected_codisp`]), averaged over the trees: low
//! for points like the sample, high for anomalies. As SageMaker documents, a score above `mean + 3·std` of the
//! training scores marks an anomaly; that threshold (from a seeded sample of [`train::THRESHOLD_SAMPLE`] training
//! records) gives the test channel's `accuracy` and `precision_recall_fscore` (labels: 1 anomalous, 0 normal).
//!
//! [`StreamingForest`] is the same forest updated point by point (insert, delete, score, reservoir replacement),
//! with [`Shingle`] turning a 1-D time series into windows.
//!
//! Artifact layout (`weights.safetensors`, all f32, integers exact below 2^24): trees one after another, each tree's
//! nodes in preorder (root first) and numbered from 0 within the tree:
//! `tree_node_count` `[num_trees]`; per node `node_left`, `node_right` (child numbers, −1 for a leaf),
//! `node_cut_dimension` (−1 for a leaf), `node_cut_value` (0 for a leaf; points with `x[dim] <= value` go left),
//! `node_mass` (sample points under the node) `[nodes]`; `node_box_min`, `node_box_max` `[nodes, feature_dim]`
//! (for a leaf, its point). `artifact.json`'s `model` holds `num_trees`, `num_samples_per_tree`, `rows`,
//! `score_mean`, `score_std`, `score_threshold` and `threshold_rows`.

pub mod sample;
pub mod stream;
pub mod train;
pub mod tree;

use ndarray::Array2;
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::algorithm::{Algorithm, Predictions, Predictor, Task, TrainingContext};
use crate::artifact::{Artifact, Tensor};
use crate::data::{ChannelSpec, FeatureMatrix, Row, TrainingInput};
use crate::hyperparameters::{
    HyperparameterError, HyperparameterSpec as Spec, Hyperparameters, Kind,
};
use crate::metrics::{self, ConfusionMatrix};
use crate::TrainError;

pub use stream::{Shingle, StreamingForest};
pub use train::{fit, EvalMetric, RcfFit, RcfSettings};
pub use tree::{Node, Tree, NONE};

/// The registry entry for SageMaker's Random Cut Forest.
pub struct RandomCutForest;

/// SageMaker's Random Cut Forest hyperparameters, plus `mini_batch_size` (the SDK's `fit` argument: records read per
/// batch) and tern's `seed`.
static HYPERPARAMETERS: &[Spec] = &[
    Spec::required("feature_dim", Kind::Integer { min: 1, max: 10000 }),
    Spec::optional(
        "eval_metrics",
        Kind::Text,
        "[\"accuracy\", \"precision_recall_fscore\"]",
    ),
    Spec::optional(
        "num_samples_per_tree",
        Kind::Integer { min: 1, max: 2048 },
        "256",
    ),
    Spec::optional("num_trees", Kind::Integer { min: 50, max: 1000 }, "100"),
    Spec::optional("mini_batch_size", Kind::at_least(1), "1000"),
    Spec::optional("seed", Kind::at_least(0), "0"),
];

/// The channels SageMaker documents for the algorithm.
const CONTENT_TYPES: &[&str] = &["text/csv", "application/x-recordio-protobuf"];
const CHANNELS: &[ChannelSpec] = &[
    ChannelSpec::required(
        "train",
        CONTENT_TYPES,
        "unlabelled points the forest samples",
    ),
    ChannelSpec::optional(
        "test",
        CONTENT_TYPES,
        "labelled points (1 anomalous, 0 normal) scored for accuracy, precision, recall and F1",
    ),
];

impl Algorithm for RandomCutForest {
    fn name(&self) -> &'static str {
        "randomcutforest"
    }

    fn hyperparameters(&self) -> &'static [Spec] {
        HYPERPARAMETERS
    }

    fn validate(&self, hyperparameters: &Hyperparameters) -> Result<(), HyperparameterError> {
        RcfSettings::from_hyperparameters(hyperparameters).map(|_| ())
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
        let settings = RcfSettings::from_hyperparameters(hyperparameters)?;
        input.check(self.name(), CHANNELS)?;
        let fitted = fit(&settings, input.train(), context)?;
        let mut artifact = Artifact::new(
            self.name(),
            hyperparameters.values().clone(),
            settings.feature_dim,
        );
        artifact.meta.provenance.seed = Some(settings.seed);
        artifact.meta.model = json!({
            "num_trees": settings.num_trees,
            "num_samples_per_tree": settings.num_samples_per_tree,
            "rows": fitted.rows,
            "score_mean": fitted.score_mean,
            "score_std": fitted.score_std,
            "score_threshold": fitted.model.threshold,
            "threshold_rows": fitted.threshold_rows,
        });
        artifact.tensors = fitted.model.tensors();
        if let Some(test) = input.test() {
            let dataset = test.load(Some(settings.feature_dim))?;
            let labels = dataset.require_labels(&test.name)?;
            metrics::check_binary_labels(&test.name, labels)?;
            let scores = fitted.model.score(&dataset.features);
            let predicted = fitted.model.labels(&scores);
            let matrix = ConfusionMatrix::new(labels, &predicted, 2, None);
            for metric in &settings.eval_metrics {
                let values = match metric {
                    EvalMetric::Accuracy => vec![("test:accuracy", matrix.accuracy())],
                    EvalMetric::PrecisionRecallFscore => vec![
                        ("test:precision", matrix.precision(1)),
                        ("test:recall", matrix.recall(1)),
                        ("test:f1", matrix.f_beta(1, 1.0)),
                        ("test:precision_negative", matrix.precision(0)),
                        ("test:recall_negative", matrix.recall(0)),
                        ("test:f1_negative", matrix.f_beta(0, 1.0)),
                    ],
                };
                for (name, value) in values {
                    context.log_metric(name, None, value);
                    artifact
                        .meta
                        .training_metrics
                        .insert(name.to_string(), value);
                }
            }
        }
        Ok(artifact)
    }

    fn load(&self, artifact: &Artifact) -> Result<Box<dyn Predictor>, TrainError> {
        Ok(Box::new(RcfModel::from_artifact(artifact)?))
    }
}

/// A trained forest.
#[derive(Debug, Clone, PartialEq)]
pub struct RcfModel {
    pub feature_dim: usize,
    pub trees: Vec<Tree>,
    /// Scores above it are anomalies: `mean + 3·std` of the training scores.
    pub threshold: f64,
}

impl RcfModel {
    /// The score of one point (`feature_dim` values): the trees' [`Tree::expected_codisp`] summed in tree order in
    /// f64 and divided by the number of trees.
    pub fn score_point(&self, point: &[f32]) -> f64 {
        let total: f64 = self.trees.iter().map(|t| t.expected_codisp(point)).sum();
        total / self.trees.len().max(1) as f64
    }

    /// Scores of row-major points, `feature_dim` values each.
    pub fn score_rows(&self, points: &[f32]) -> Vec<f64> {
        points
            .par_chunks(self.feature_dim.max(1))
            .with_min_len(16)
            .map(|p| self.score_point(p))
            .collect()
    }

    /// Scores every row of `features` (which must have `feature_dim` columns).
    pub fn score(&self, features: &FeatureMatrix) -> Vec<f64> {
        (0..features.n_rows())
            .into_par_iter()
            .with_min_len(16)
            .map(|i| match features.row(i) {
                Row::Dense(values) => match values.as_slice() {
                    Some(slice) => self.score_point(slice),
                    None => self.score_point(&values.to_vec()),
                },
                sparse => {
                    let mut dense = vec![0.0; self.feature_dim];
                    sparse.for_each(|j, v| dense[j] = v);
                    self.score_point(&dense)
                }
            })
            .collect()
    }

    /// 1 where a score exceeds the threshold, else 0.
    pub fn labels(&self, scores: &[f64]) -> Vec<f32> {
        scores
            .iter()
            .map(|&s| if s > self.threshold { 1.0 } else { 0.0 })
            .collect()
    }

    /// The weights tensors of the artifact (see the module documentation for the layout).
    pub fn tensors(&self) -> std::collections::BTreeMap<String, Tensor> {
        let d = self.feature_dim;
        let (mut counts, mut left, mut right, mut dims, mut cuts, mut masses) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut low, mut high) = (vec![], vec![]);
        for tree in &self.trees {
            let nodes = tree.preorder();
            counts.push(nodes.len() as f32);
            for (node, l, h) in nodes {
                let leaf = node.is_leaf();
                let index = |id: u32| if leaf { -1.0 } else { id as f32 };
                left.push(index(node.left));
                right.push(index(node.right));
                dims.push(if leaf {
                    -1.0
                } else {
                    node.cut_dimension as f32
                });
                cuts.push(if leaf { 0.0 } else { node.cut_value });
                masses.push(node.mass as f32);
                low.extend_from_slice(l);
                high.extend_from_slice(h);
            }
        }
        let n = left.len();
        [
            ("tree_node_count", Tensor::new(vec![counts.len()], counts)),
            ("node_left", Tensor::new(vec![n], left)),
            ("node_right", Tensor::new(vec![n], right)),
            ("node_cut_dimension", Tensor::new(vec![n], dims)),
            ("node_cut_value", Tensor::new(vec![n], cuts)),
            ("node_mass", Tensor::new(vec![n], masses)),
            ("node_box_min", Tensor::new(vec![n, d], low)),
            ("node_box_max", Tensor::new(vec![n, d], high)),
        ]
        .into_iter()
        .map(|(name, tensor)| (name.to_string(), tensor))
        .collect()
    }

    /// Reads the forest of a Random Cut Forest artifact, checking every tree (see [`Tree::from_nodes`]).
    ///
    /// # Errors
    /// [`TrainError::Artifact`] naming the tensor, tree or node that is missing, misshapen or malformed.
    pub fn from_artifact(artifact: &Artifact) -> Result<RcfModel, TrainError> {
        let d = artifact.meta.feature_dim;
        let bad = |message: String| TrainError::Artifact {
            path: "randomcutforest".into(),
            message,
        };
        let counts = artifact.tensor("tree_node_count")?;
        let vector = |name: &str| -> Result<&Tensor, TrainError> {
            let tensor = artifact.tensor(name)?;
            if tensor.shape.len() != 1 {
                return Err(bad(format!(
                    "tensor {name} has shape {:?}, expected [nodes]",
                    tensor.shape
                )));
            }
            Ok(tensor)
        };
        let (left, right, dims, cuts, masses) = (
            vector("node_left")?,
            vector("node_right")?,
            vector("node_cut_dimension")?,
            vector("node_cut_value")?,
            vector("node_mass")?,
        );
        let n = left.data.len();
        for (name, tensor) in [
            ("node_right", right),
            ("node_cut_dimension", dims),
            ("node_cut_value", cuts),
            ("node_mass", masses),
        ] {
            if tensor.data.len() != n {
                return Err(bad(format!(
                    "tensor {name} has {} entries, node_left has {n}",
                    tensor.data.len()
                )));
            }
        }
        let (low, high) = (
            artifact.tensor("node_box_min")?,
            artifact.tensor("node_box_max")?,
        );
        for (name, tensor) in [("node_box_min", low), ("node_box_max", high)] {
            if tensor.shape != [n, d] {
                return Err(bad(format!(
                    "tensor {name} has shape {:?}, expected [{n}, {d}]",
                    tensor.shape
                )));
            }
        }
        let whole = |v: f32, name: &str, i: usize| -> Result<i64, TrainError> {
            if v.fract() != 0.0 || !(-1.0..16_777_216.0).contains(&v) {
                return Err(bad(format!(
                    "{name}[{i}] = {v} is not a node number, dimension or mass"
                )));
            }
            Ok(v as i64)
        };
        let mut trees = Vec::with_capacity(counts.data.len());
        let mut start = 0usize;
        for (t, &count) in counts.data.iter().enumerate() {
            let count = whole(count, "tree_node_count", t)? as usize;
            if count == 0 || start + count > n {
                return Err(bad(format!(
                    "tree {t} claims {count} nodes from node {start}, but there are {n} nodes"
                )));
            }
            let mut nodes = Vec::with_capacity(count);
            for i in start..start + count {
                let child = |tensor: &Tensor, name: &str| -> Result<u32, TrainError> {
                    Ok(match whole(tensor.data[i], name, i)? {
                        -1 => NONE,
                        c => c as u32,
                    })
                };
                let mass = whole(masses.data[i], "node_mass", i)?;
                let dimension = whole(dims.data[i], "node_cut_dimension", i)?;
                nodes.push(Node {
                    parent: NONE,
                    left: child(left, "node_left")?,
                    right: child(right, "node_right")?,
                    cut_dimension: if dimension < 0 { 0 } else { dimension as u32 },
                    cut_value: cuts.data[i],
                    mass: mass.max(0) as u32,
                });
            }
            let mut boxes = Vec::with_capacity(count * 2 * d);
            for i in start..start + count {
                boxes.extend_from_slice(&low.data[i * d..(i + 1) * d]);
                boxes.extend_from_slice(&high.data[i * d..(i + 1) * d]);
            }
            let tree = Tree::from_nodes(d, nodes, boxes, 0)
                .map_err(|message| bad(format!("tree {t}: {message}")))?;
            trees.push(tree);
            start += count;
        }
        if start != n {
            return Err(bad(format!(
                "tree_node_count adds up to {start} nodes, the node tensors hold {n}"
            )));
        }
        if trees.is_empty() {
            return Err(bad("the forest has no trees".into()));
        }
        let threshold = artifact
            .meta
            .model
            .get("score_threshold")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad("artifact.json model.score_threshold is missing".into()))?;
        Ok(RcfModel {
            feature_dim: d,
            trees,
            threshold,
        })
    }
}

impl Predictor for RcfModel {
    fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    fn task(&self) -> Task {
        Task::AnomalyDetection
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
        let scores = self.score(features);
        let scores = Array2::from_shape_vec(
            (scores.len(), 1),
            scores.iter().map(|&s| s as f32).collect(),
        )
        .map_err(|e| TrainError::Algorithm {
            algorithm: "randomcutforest".into(),
            message: e.to_string(),
        })?;
        Ok(Predictions {
            task: self.task(),
            scores,
            predicted_label: None,
        })
    }

    /// `{"score": 1.7}` per row, as SageMaker's Random Cut Forest answers.
    fn response_key(&self) -> &'static str {
        "scores"
    }
}
