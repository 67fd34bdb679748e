//! A test-only text algorithm (never registered in the shipped binary): binary logistic regression over hashed
//! bag-of-words counts, trained from BlazingText's supervised format (`__label__spam free offer`, one example per
//! line), with the manifest-v2 pipeline its package declares (a `string` request input, `tokenize` → `hash_tokens`,
//! a `label_lookup` to label text, named response fields). It shows that an algorithm whose requests are text goes
//! from training through the compiler to every runtime with its specifics in its own folder and lowering only: the
//! trainer featurises with runtime-core's own steps, so training and serving see the same values.

use std::collections::BTreeMap;

use tern_compiler::lower::{spec, GraphBuilder};
use tern_compiler::{CompileError, LabelRule, Lowered, Lowering};
use tern_formats::response::{Field, Prediction};
use tern_runtime::manifest::{
    InputKind, Pipeline, PostStep, RequestInput, ResponseField, ResponseShape, Step,
};
use tern_runtime::onnx::{data_type, AttributeProto, TensorProto};
use tern_runtime::steps::{self, RawInput};
use tern_trainer::algorithm::{Predictions, Task};
use tern_trainer::data::{ChannelSource, ChannelSpec, FeatureMatrix, TrainingInput};
use tern_trainer::hyperparameters::{HyperparameterSpec as Spec, Kind};
use tern_trainer::{
    Algorithm, Artifact, HyperparameterSpec, Hyperparameters, Predictor, TrainError,
    TrainingContext,
};

/// The algorithm's registry name.
pub const NAME: &str = "test-text-classifier";

const HYPERPARAMETERS: &[HyperparameterSpec] = &[
    Spec::optional(
        "buckets",
        Kind::Integer {
            min: 1,
            max: 1 << 20,
        },
        "64",
    ),
    Spec::optional("epochs", Kind::at_least(1), "200"),
    Spec::optional("learning_rate", Kind::POSITIVE, "0.5"),
];

const CHANNELS: &[ChannelSpec] = &[ChannelSpec::required(
    "train",
    &["text/plain"],
    "one example per line: __label__<label> <text>",
)];

/// The preprocessing a package and the trainer share.
fn preprocess_steps(buckets: usize) -> Vec<Step> {
    vec![
        Step::Tokenize { lowercase: true },
        Step::HashTokens {
            buckets: buckets as u32,
            ngrams: 1,
        },
    ]
}

/// The test text classifier.
pub struct TextClassifier;

impl Algorithm for TextClassifier {
    fn name(&self) -> &'static str {
        NAME
    }

    fn hyperparameters(&self) -> &'static [HyperparameterSpec] {
        HYPERPARAMETERS
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
        let buckets = hyperparameters.get::<usize>("buckets")?;
        let epochs = hyperparameters.get::<usize>("epochs")?;
        let learning_rate = hyperparameters.get::<f64>("learning_rate")? as f32;
        let data = |message: String| TrainError::data("train", message);
        let ChannelSource::Files(files) = &input.train().source else {
            return Err(data("reads files only".to_string()));
        };
        let steps = preprocess_steps(buckets);
        let (mut labels, mut examples) = (Vec::<String>::new(), Vec::new());
        for file in files {
            let text = std::fs::read_to_string(file)
                .map_err(|e| data(format!("{}: {e}", file.display())))?;
            for (number, line) in text.lines().enumerate() {
                let Some((label, words)) = line
                    .strip_prefix("__label__")
                    .and_then(|rest| rest.split_once(' '))
                else {
                    return Err(data(format!(
                        "{}: line {}: expected __label__<label> <text>",
                        file.display(),
                        number + 1
                    )));
                };
                if !labels.iter().any(|l| l == label) {
                    labels.push(label.to_string());
                }
                let features =
                    steps::preprocess(RawInput::Text(words.to_string()), &steps, buckets).map_err(
                        |e| data(format!("{}: line {}: {e}", file.display(), number + 1)),
                    )?;
                examples.push((label.to_string(), features));
            }
        }
        labels.sort();
        if labels.len() != 2 {
            return Err(data(format!("expected two labels, found {labels:?}")));
        }
        // Full-batch gradient descent on the logistic loss.
        let (mut weights, mut bias) = (vec![0.0f32; buckets], 0.0f32);
        let progress = context.start_progress(epochs as u64, NAME);
        for _ in 0..epochs {
            let (mut gradient, mut bias_gradient) = (vec![0.0f32; buckets], 0.0f32);
            for (label, features) in &examples {
                let target = if label == &labels[1] { 1.0 } else { 0.0 };
                let logit: f32 = features
                    .iter()
                    .zip(&weights)
                    .map(|(x, w)| x * w)
                    .sum::<f32>()
                    + bias;
                let error = 1.0 / (1.0 + (-logit).exp()) - target;
                for (g, x) in gradient.iter_mut().zip(features) {
                    *g += error * x;
                }
                bias_gradient += error;
            }
            let scale = learning_rate / examples.len() as f32;
            for (w, g) in weights.iter_mut().zip(&gradient) {
                *w -= scale * g;
            }
            bias -= scale * bias_gradient;
            progress.inc(1);
        }
        context.finish_progress();
        let mut artifact = Artifact::new(NAME, hyperparameters.values().clone(), buckets);
        artifact.meta.label_map = Some(labels);
        artifact.tensors.insert(
            "weights".into(),
            tern_trainer::artifact::Tensor::new(vec![buckets], weights),
        );
        artifact.tensors.insert(
            "bias".into(),
            tern_trainer::artifact::Tensor::new(vec![1], vec![bias]),
        );
        Ok(artifact)
    }

    fn load(&self, artifact: &Artifact) -> Result<Box<dyn Predictor>, TrainError> {
        Ok(Box::new(TextModel {
            weights: artifact.tensor("weights")?.data.clone(),
            bias: artifact.tensor("bias")?.data[0],
            labels: artifact.meta.label_map.clone().unwrap_or_default(),
        }))
    }
}

/// A trained text classifier, predicting hashed bag-of-words rows.
struct TextModel {
    weights: Vec<f32>,
    bias: f32,
    labels: Vec<String>,
}

impl Predictor for TextModel {
    fn feature_dim(&self) -> usize {
        self.weights.len()
    }

    fn task(&self) -> Task {
        Task::BinaryClassifier
    }

    fn predict(&self, features: &FeatureMatrix) -> Result<Predictions, TrainError> {
        let dense = features.to_dense();
        let scores: Vec<f32> = dense
            .rows()
            .into_iter()
            .map(|row| {
                let logit: f32 = row
                    .iter()
                    .zip(&self.weights)
                    .map(|(x, w)| x * w)
                    .sum::<f32>()
                    + self.bias;
                1.0 / (1.0 + (-logit).exp())
            })
            .collect();
        let rows = scores.len();
        Ok(Predictions {
            task: Task::BinaryClassifier,
            predicted_label: Some(
                scores
                    .iter()
                    .map(|&s| f32::from(u8::from(s >= 0.5)))
                    .collect(),
            ),
            scores: ndarray::Array2::from_shape_vec((rows, 1), scores)
                .map_err(|e| TrainError::Config(e.to_string()))?,
        })
    }

    /// `{"label": "spam", "score": 0.93}`: the label's text beside the probability of the second label.
    fn responses(&self, predictions: &Predictions) -> Vec<Prediction> {
        let classes = predictions.predicted_label.clone().unwrap_or_default();
        predictions
            .scores
            .column(0)
            .iter()
            .zip(classes)
            .map(|(&score, class)| {
                let label = self.labels.get(class as usize).cloned().unwrap_or_default();
                Prediction::Fields(vec![
                    ("label".to_string(), Field::Text(label)),
                    ("score".to_string(), Field::Number(score)),
                ])
            })
            .collect()
    }
}

/// The test text classifier's lowering: the logistic graph over the hashed counts, and the pipeline around it.
pub struct TextClassifierLowering;

impl Lowering for TextClassifierLowering {
    fn algorithm(&self) -> &'static str {
        NAME
    }

    fn lower(&self, artifact: &Artifact) -> Result<Lowered, CompileError> {
        let weights = artifact.tensor("weights")?;
        let bias = artifact.tensor("bias")?;
        let buckets = weights.data.len();
        let mut graph = GraphBuilder::new(NAME, buckets);
        let w = graph.initializer(TensorProto::from_f32("w", &[buckets, 1], &weights.data));
        let b = graph.initializer(TensorProto::from_f32("b", &[1], &bias.data));
        let half = graph.initializer(TensorProto::from_f32("half", &[], &[0.5]));
        let flat = graph.initializer(TensorProto::from_i64("flat_shape", &[1], &[-1]));
        let product = graph.node("MatMul", "", &["input", &w], "product", vec![]);
        let logit = graph.node("Add", "", &[&product, &b], "logit", vec![]);
        let score = graph.logistic(&logit, "score");
        let positive = graph.node("GreaterOrEqual", "", &[&score, &half], "positive", vec![]);
        let to_int64 = AttributeProto::int("to", i64::from(data_type::INT64));
        let label = graph.node("Cast", "", &[&positive], "label_2d", vec![to_int64]);
        graph.node("Reshape", "", &[&label, &flat], "predicted_label", vec![]);
        let outputs = vec![
            spec("score", "float32", &[None, Some(1)]),
            spec("predicted_label", "int64", &[None]),
        ];
        for output in &outputs {
            graph.output(output);
        }
        Ok(Lowered {
            algorithm: NAME.to_string(),
            graph: graph.finish(),
            opsets: BTreeMap::from([(String::new(), tern_compiler::lower::ONNX_OPSET)]),
            feature_dim: buckets,
            outputs,
            response: ResponseShape::Fields {
                key: "predictions".to_string(),
                fields: vec![
                    ResponseField {
                        name: "label".to_string(),
                        output: "label".to_string(),
                        list: false,
                    },
                    ResponseField {
                        name: "score".to_string(),
                        output: "score".to_string(),
                        list: false,
                    },
                ],
            },
            label_map: artifact.meta.label_map.clone(),
            accepts: vec![
                "text/plain".to_string(),
                "application/json".to_string(),
                "application/jsonlines".to_string(),
            ],
            produces: vec![
                "application/json".to_string(),
                "application/jsonlines".to_string(),
                "text/csv".to_string(),
                "application/x-recordio-protobuf".to_string(),
            ],
            score_output: "score".to_string(),
            label_rule: LabelRule::Output("predicted_label".to_string()),
            accepts_missing: false,
            pipeline: Pipeline {
                request: vec![RequestInput {
                    name: "text".to_string(),
                    kind: InputKind::String,
                }],
                preprocess: preprocess_steps(buckets),
                postprocess: vec![PostStep::LabelLookup {
                    output: "predicted_label".to_string(),
                    into: "label".to_string(),
                }],
            },
        })
    }
}
