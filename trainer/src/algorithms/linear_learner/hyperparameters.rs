//! Linear Learner's hyperparameter table (SageMaker's names, kinds, ranges and defaults), the rules across them, and
//! their resolution (every `auto` replaced by a concrete value) into a [`Config`].

use crate::hyperparameters::{
    HyperparameterError, HyperparameterSpec as Spec, Hyperparameters, Kind,
};

use super::loss::Loss;
use super::optimizer::OptimizerKind;

/// The losses each predictor type accepts (`auto` everywhere).
const REGRESSION_LOSSES: &[&str] = &[
    "auto",
    "squared_loss",
    "absolute_loss",
    "eps_insensitive_squared_loss",
    "eps_insensitive_absolute_loss",
    "quantile_loss",
    "huber_loss",
];
const BINARY_LOSSES: &[&str] = &["auto", "logistic", "hinge_loss"];
const MULTICLASS_LOSSES: &[&str] = &["auto", "softmax_loss"];

/// Every hyperparameter of SageMaker's Linear Learner, plus tern's `seed` (an extension: SageMaker documents none).
pub const SPECS: &[Spec] = &[
    Spec::required(
        "predictor_type",
        Kind::Categorical(&["binary_classifier", "multiclass_classifier", "regressor"]),
    ),
    Spec::unset(
        "num_classes",
        Kind::Integer {
            min: 3,
            max: 1_000_000,
        },
    ),
    Spec::optional("feature_dim", Kind::at_least(1), "auto").or_auto(),
    Spec::optional("accuracy_top_k", Kind::at_least(1), "3"),
    Spec::optional("balance_multiclass_weights", Kind::Boolean, "false"),
    Spec::optional(
        "beta_1",
        Kind::Float {
            min: 0.0,
            max: 1.0,
            min_inclusive: true,
            max_inclusive: false,
        },
        "auto",
    )
    .auto_means("0.9"),
    Spec::optional(
        "beta_2",
        Kind::Float {
            min: 0.0,
            max: 1.0,
            min_inclusive: true,
            max_inclusive: false,
        },
        "auto",
    )
    .auto_means("0.999"),
    Spec::optional("bias_lr_mult", Kind::POSITIVE, "auto").auto_means("1"),
    Spec::optional("bias_wd_mult", Kind::NON_NEGATIVE, "auto").auto_means("0"),
    Spec::optional(
        "binary_classifier_model_selection_criteria",
        Kind::Categorical(&[
            "accuracy",
            "f_beta",
            "precision_at_target_recall",
            "recall_at_target_precision",
            "loss_function",
            "f1",
            "cross_entropy_loss",
        ]),
        "accuracy",
    ),
    Spec::optional("early_stopping_patience", Kind::at_least(1), "3"),
    Spec::optional("early_stopping_tolerance", Kind::POSITIVE, "0.001"),
    Spec::optional("epochs", Kind::at_least(1), "15"),
    Spec::optional("f_beta", Kind::POSITIVE, "1.0"),
    Spec::optional("huber_delta", Kind::POSITIVE, "1.0"),
    Spec::optional("init_bias", Kind::ANY_FLOAT, "0"),
    Spec::optional(
        "init_method",
        Kind::Categorical(&["uniform", "normal"]),
        "uniform",
    ),
    Spec::optional("init_scale", Kind::POSITIVE, "0.07"),
    Spec::optional("init_sigma", Kind::POSITIVE, "0.01"),
    Spec::optional("l1", Kind::NON_NEGATIVE, "auto").or_auto(),
    Spec::optional("learning_rate", Kind::POSITIVE, "auto").or_auto(),
    Spec::optional(
        "loss",
        Kind::Categorical(&[
            "auto",
            "logistic",
            "squared_loss",
            "absolute_loss",
            "hinge_loss",
            "eps_insensitive_squared_loss",
            "eps_insensitive_absolute_loss",
            "quantile_loss",
            "huber_loss",
            "softmax_loss",
        ]),
        "auto",
    ),
    Spec::optional("loss_insensitivity", Kind::POSITIVE, "0.01"),
    Spec::optional("lr_scheduler_factor", Kind::open(0.0, 1.0), "auto").auto_means("0.99"),
    Spec::optional("lr_scheduler_minimum_lr", Kind::POSITIVE, "auto").auto_means("1e-5"),
    Spec::optional("lr_scheduler_step", Kind::at_least(1), "auto").auto_means("100"),
    Spec::optional("margin", Kind::POSITIVE, "1.0"),
    Spec::optional("mini_batch_size", Kind::at_least(1), "1000"),
    Spec::optional(
        "momentum",
        Kind::Float {
            min: 0.0,
            max: 1.0,
            min_inclusive: true,
            max_inclusive: false,
        },
        "auto",
    )
    .auto_means("0.9"),
    Spec::optional("normalize_data", Kind::Boolean, "true").auto_means("true"),
    Spec::optional("normalize_label", Kind::Boolean, "auto").auto_means("true"),
    Spec::optional("num_calibration_samples", Kind::at_least(1), "auto").or_auto(),
    Spec::optional("num_models", Kind::at_least(1), "auto").or_auto(),
    Spec::optional("num_point_for_scaler", Kind::at_least(1), "10000"),
    Spec::optional(
        "optimizer",
        Kind::Categorical(&["auto", "sgd", "adam", "adagrad", "rmsprop"]),
        "auto",
    ),
    Spec::optional("positive_example_weight_mult", Kind::Text, "1.0"),
    Spec::optional("quantile", Kind::open(0.0, 1.0), "0.5"),
    Spec::optional("target_precision", Kind::open(0.0, 1.0), "0.8"),
    Spec::optional("target_recall", Kind::open(0.0, 1.0), "0.8"),
    Spec::optional("unbias_data", Kind::Boolean, "auto").or_auto(),
    Spec::optional("unbias_label", Kind::Boolean, "auto").or_auto(),
    Spec::optional("use_bias", Kind::Boolean, "true"),
    Spec::optional("use_lr_scheduler", Kind::Boolean, "true"),
    Spec::optional("wd", Kind::NON_NEGATIVE, "auto").or_auto(),
    Spec::optional(
        "seed",
        Kind::Integer {
            min: 0,
            max: i64::MAX,
        },
        "0",
    ),
];

/// `num_models=auto` trains this many models.
pub const AUTO_NUM_MODELS: usize = 32;
/// `num_calibration_samples=auto` uses this many examples for model selection and threshold calibration.
pub const AUTO_CALIBRATION_SAMPLES: usize = 10_000;

/// What the model predicts, `predictor_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictorType {
    BinaryClassifier,
    MulticlassClassifier { num_classes: usize },
    Regressor,
}

impl PredictorType {
    /// SageMaker's spelling.
    pub fn name(self) -> &'static str {
        match self {
            PredictorType::BinaryClassifier => "binary_classifier",
            PredictorType::MulticlassClassifier { .. } => "multiclass_classifier",
            PredictorType::Regressor => "regressor",
        }
    }

    /// The number of scores per example: `num_classes` for multiclass, else 1.
    pub fn outputs(self) -> usize {
        match self {
            PredictorType::MulticlassClassifier { num_classes } => num_classes,
            _ => 1,
        }
    }
}

/// How the best of the `num_models` models is chosen for a binary classifier, and how its threshold is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SelectionCriterion {
    Accuracy,
    FBeta(f64),
    PrecisionAtTargetRecall(f64),
    RecallAtTargetPrecision(f64),
    LossFunction,
}

impl SelectionCriterion {
    /// The metric name logged for this criterion (without the channel prefix).
    pub fn metric_name(self) -> &'static str {
        match self {
            SelectionCriterion::Accuracy => "binary_classification_accuracy",
            SelectionCriterion::FBeta(_) => "binary_f_beta",
            SelectionCriterion::PrecisionAtTargetRecall(_) => "precision_at_target_recall",
            SelectionCriterion::RecallAtTargetPrecision(_) => "recall_at_target_precision",
            SelectionCriterion::LossFunction => "objective_loss",
        }
    }
}

/// `positive_example_weight_mult`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PositiveWeight {
    /// Positives weigh this much (negatives 1).
    Fixed(f64),
    /// Positives weigh (negatives / positives) in the scaler sample, so both classes weigh the same in total.
    Balanced,
}

/// `init_method` with its parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Uniform { scale: f64 },
    Normal { sigma: f64 },
}

/// A tri-state switch (`auto`, `true`, `false`).
pub type Switch = Option<bool>;

/// Every hyperparameter resolved for training; `auto` values that depend on the data (`feature_dim`, `unbias_data`)
/// stay `None` until the data are seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub predictor_type: PredictorType,
    pub feature_dim: Option<usize>,
    pub loss: Loss,
    pub optimizer: OptimizerKind,
    /// The learning rate of model 0; `None` when `auto` (each model then takes its own from a wide grid).
    pub learning_rate: Option<f64>,
    pub default_learning_rate: f64,
    pub momentum: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub bias_lr_mult: f64,
    pub bias_wd_mult: f64,
    pub use_lr_scheduler: bool,
    pub lr_scheduler_step: usize,
    pub lr_scheduler_factor: f64,
    pub lr_scheduler_minimum_lr: f64,
    pub mini_batch_size: usize,
    pub epochs: usize,
    /// `None` when `auto`.
    pub l1: Option<f64>,
    /// `None` when `auto`.
    pub wd: Option<f64>,
    pub init: Init,
    pub init_bias: f64,
    pub use_bias: bool,
    pub num_models: usize,
    pub num_calibration_samples: usize,
    pub num_point_for_scaler: usize,
    pub normalize_data: bool,
    pub unbias_data: Switch,
    pub normalize_label: bool,
    pub unbias_label: bool,
    pub selection: SelectionCriterion,
    /// `f_beta`, for the `binary_f_beta` metric.
    pub f_beta: f64,
    pub positive_example_weight_mult: PositiveWeight,
    pub balance_multiclass_weights: bool,
    pub accuracy_top_k: usize,
    pub early_stopping_patience: usize,
    pub early_stopping_tolerance: f64,
    pub seed: u64,
}

fn conflict(names: &str, message: impl Into<String>) -> HyperparameterError {
    HyperparameterError::Conflict {
        names: names.to_string(),
        message: message.into(),
    }
}

/// Parses `positive_example_weight_mult`: `auto` (= 1), `balanced`, or a positive float.
fn positive_weight(hp: &Hyperparameters) -> Result<PositiveWeight, HyperparameterError> {
    let text = hp.text("positive_example_weight_mult").unwrap_or("1.0");
    if text.eq_ignore_ascii_case("balanced") {
        return Ok(PositiveWeight::Balanced);
    }
    if text.eq_ignore_ascii_case("auto") {
        return Ok(PositiveWeight::Fixed(1.0));
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(PositiveWeight::Fixed(value)),
        _ => Err(HyperparameterError::Invalid {
            name: "positive_example_weight_mult".to_string(),
            value: text.to_string(),
            expected: "a number in (0, inf), auto or balanced".to_string(),
        }),
    }
}

/// The cross-field rules, then every value resolved. Fails on the first rule broken, naming the hyperparameters.
pub fn resolve(hp: &Hyperparameters) -> Result<Config, HyperparameterError> {
    let word = |name: &str| hp.word(name).unwrap_or_default();
    let predictor_type = match word("predictor_type").as_str() {
        "binary_classifier" => PredictorType::BinaryClassifier,
        "regressor" => PredictorType::Regressor,
        _ => {
            let num_classes = hp.usize("num_classes").ok_or_else(|| HyperparameterError::Missing {
                name: "num_classes".to_string(),
                expected: "an integer in [3, 1000000]; it is required when predictor_type=multiclass_classifier"
                    .to_string(),
            })?;
            PredictorType::MulticlassClassifier { num_classes }
        }
    };
    let binary = predictor_type == PredictorType::BinaryClassifier;
    let multiclass = matches!(predictor_type, PredictorType::MulticlassClassifier { .. });
    let regressor = predictor_type == PredictorType::Regressor;

    let loss_word = word("loss");
    let allowed = match predictor_type {
        PredictorType::BinaryClassifier => BINARY_LOSSES,
        PredictorType::MulticlassClassifier { .. } => MULTICLASS_LOSSES,
        PredictorType::Regressor => REGRESSION_LOSSES,
    };
    if !allowed.contains(&loss_word.as_str()) {
        return Err(conflict(
            "loss, predictor_type",
            format!(
                "loss={loss_word} does not apply to predictor_type={}; allowed: {}",
                predictor_type.name(),
                allowed.join(", ")
            ),
        ));
    }
    let loss_parameter = |name: &str, used_by: &str| -> Result<f64, HyperparameterError> {
        if hp.is_given(name) && loss_word != used_by {
            return Err(conflict(
                &format!("{name}, loss"),
                format!("{name} is only used by loss={used_by} (loss is {loss_word})"),
            ));
        }
        Ok(hp.float(name).unwrap_or(f64::NAN))
    };
    let margin = loss_parameter("margin", "hinge_loss")?;
    let quantile = loss_parameter("quantile", "quantile_loss")?;
    let huber_delta = loss_parameter("huber_delta", "huber_loss")?;
    if hp.is_given("loss_insensitivity")
        && !matches!(
            loss_word.as_str(),
            "eps_insensitive_squared_loss" | "eps_insensitive_absolute_loss"
        )
    {
        return Err(conflict(
            "loss_insensitivity, loss",
            format!(
                "loss_insensitivity is only used by loss=eps_insensitive_squared_loss or \
                 eps_insensitive_absolute_loss (loss is {loss_word})"
            ),
        ));
    }
    let epsilon = hp.get::<f64>("loss_insensitivity")?;
    let loss = match loss_word.as_str() {
        "logistic" => Loss::Logistic,
        "hinge_loss" => Loss::Hinge { margin },
        "squared_loss" => Loss::Squared,
        "absolute_loss" => Loss::Absolute,
        "eps_insensitive_squared_loss" => Loss::EpsilonInsensitiveSquared { epsilon },
        "eps_insensitive_absolute_loss" => Loss::EpsilonInsensitiveAbsolute { epsilon },
        "quantile_loss" => Loss::Quantile { quantile },
        "huber_loss" => Loss::Huber { delta: huber_delta },
        "softmax_loss" => Loss::Softmax,
        _ => match predictor_type {
            PredictorType::BinaryClassifier => Loss::Logistic,
            PredictorType::MulticlassClassifier { .. } => Loss::Softmax,
            PredictorType::Regressor => Loss::Squared,
        },
    };

    let optimizer = hp.choice(
        "optimizer",
        &[
            ("sgd", OptimizerKind::Sgd),
            ("adagrad", OptimizerKind::Adagrad),
            ("rmsprop", OptimizerKind::RmsProp),
            ("adam", OptimizerKind::Adam),
            ("auto", OptimizerKind::Adam),
        ],
    )?;
    let optimizer_parameter =
        |name: &str, used_by: OptimizerKind| -> Result<(), HyperparameterError> {
            if hp.is_given(name) && !hp.is_auto(name) && optimizer != used_by {
                return Err(conflict(
                    &format!("{name}, optimizer"),
                    format!(
                        "{name} is only used by optimizer={} (optimizer is {})",
                        used_by.name(),
                        optimizer.name()
                    ),
                ));
            }
            Ok(())
        };
    optimizer_parameter("momentum", OptimizerKind::Sgd)?;
    optimizer_parameter("beta_1", OptimizerKind::Adam)?;
    optimizer_parameter("beta_2", OptimizerKind::Adam)?;

    let use_lr_scheduler = hp.get::<bool>("use_lr_scheduler")?;
    for name in [
        "lr_scheduler_step",
        "lr_scheduler_factor",
        "lr_scheduler_minimum_lr",
    ] {
        if !use_lr_scheduler && hp.is_given(name) && !hp.is_auto(name) {
            return Err(conflict(
                &format!("{name}, use_lr_scheduler"),
                format!("{name} has no effect when use_lr_scheduler=false"),
            ));
        }
    }

    let init = match word("init_method").as_str() {
        "normal" => {
            if hp.is_given("init_scale") {
                return Err(conflict(
                    "init_scale, init_method",
                    "init_scale is only used by init_method=uniform (init_method is normal; use init_sigma)",
                ));
            }
            Init::Normal {
                sigma: hp.get::<f64>("init_sigma")?,
            }
        }
        _ => {
            if hp.is_given("init_sigma") {
                return Err(conflict(
                    "init_sigma, init_method",
                    "init_sigma is only used by init_method=normal (init_method is uniform; use init_scale)",
                ));
            }
            Init::Uniform {
                scale: hp.get::<f64>("init_scale")?,
            }
        }
    };

    let criterion_word = word("binary_classifier_model_selection_criteria");
    if !binary && hp.is_given("binary_classifier_model_selection_criteria") {
        return Err(conflict(
            "binary_classifier_model_selection_criteria, predictor_type",
            format!(
                "binary_classifier_model_selection_criteria only applies to predictor_type=binary_classifier \
                 (predictor_type is {})",
                predictor_type.name()
            ),
        ));
    }
    let target_recall = hp.get::<f64>("target_recall")?;
    let target_precision = hp.get::<f64>("target_precision")?;
    if hp.is_given("target_recall") && criterion_word != "precision_at_target_recall" {
        return Err(conflict(
            "target_recall, binary_classifier_model_selection_criteria",
            format!(
                "target_recall is only used with binary_classifier_model_selection_criteria=\
                 precision_at_target_recall (it is {criterion_word})"
            ),
        ));
    }
    if hp.is_given("target_precision") && criterion_word != "recall_at_target_precision" {
        return Err(conflict(
            "target_precision, binary_classifier_model_selection_criteria",
            format!(
                "target_precision is only used with binary_classifier_model_selection_criteria=\
                 recall_at_target_precision (it is {criterion_word})"
            ),
        ));
    }
    let f_beta = hp.get::<f64>("f_beta")?;
    let selection = hp.choice(
        "binary_classifier_model_selection_criteria",
        &[
            ("accuracy", SelectionCriterion::Accuracy),
            ("f_beta", SelectionCriterion::FBeta(f_beta)),
            ("f1", SelectionCriterion::FBeta(1.0)),
            (
                "precision_at_target_recall",
                SelectionCriterion::PrecisionAtTargetRecall(target_recall),
            ),
            (
                "recall_at_target_precision",
                SelectionCriterion::RecallAtTargetPrecision(target_precision),
            ),
            ("loss_function", SelectionCriterion::LossFunction),
            ("cross_entropy_loss", SelectionCriterion::LossFunction),
        ],
    )?;

    if !binary && hp.is_given("positive_example_weight_mult") {
        return Err(conflict(
            "positive_example_weight_mult, predictor_type",
            format!(
                "positive_example_weight_mult only applies to predictor_type=binary_classifier (it is {})",
                predictor_type.name()
            ),
        ));
    }
    let positive_example_weight_mult = positive_weight(hp)?;
    let balance_multiclass_weights = hp.get::<bool>("balance_multiclass_weights")?;
    if balance_multiclass_weights && !multiclass {
        return Err(conflict(
            "balance_multiclass_weights, predictor_type",
            format!(
                "balance_multiclass_weights=true only applies to predictor_type=multiclass_classifier (it is {})",
                predictor_type.name()
            ),
        ));
    }
    if let PredictorType::MulticlassClassifier { num_classes } = predictor_type {
        let k = hp.get::<usize>("accuracy_top_k")?;
        if k > num_classes {
            return Err(conflict(
                "accuracy_top_k, num_classes",
                format!("accuracy_top_k={k} exceeds num_classes={num_classes}"),
            ));
        }
    }
    if !regressor {
        for name in ["normalize_label", "unbias_label"] {
            if hp.boolean(name) == Some(true) {
                return Err(conflict(
                    &format!("{name}, predictor_type"),
                    format!("{name}=true only applies to predictor_type=regressor (labels of a classifier are classes)"),
                ));
            }
        }
    }

    let normalize_data = hp.get::<bool>("normalize_data")?;
    let normalize_label = regressor && hp.get::<bool>("normalize_label")?;
    let unbias_label = regressor && hp.boolean("unbias_label").unwrap_or(normalize_label);

    Ok(Config {
        predictor_type,
        feature_dim: hp.usize("feature_dim"),
        loss,
        optimizer,
        learning_rate: hp.float("learning_rate"),
        default_learning_rate: optimizer.default_learning_rate(),
        momentum: hp.get::<f64>("momentum")?,
        beta_1: hp.get::<f64>("beta_1")?,
        beta_2: hp.get::<f64>("beta_2")?,
        bias_lr_mult: hp.get::<f64>("bias_lr_mult")?,
        bias_wd_mult: hp.get::<f64>("bias_wd_mult")?,
        use_lr_scheduler,
        lr_scheduler_step: hp.get::<usize>("lr_scheduler_step")?,
        lr_scheduler_factor: hp.get::<f64>("lr_scheduler_factor")?,
        lr_scheduler_minimum_lr: hp.get::<f64>("lr_scheduler_minimum_lr")?,
        mini_batch_size: hp.get::<usize>("mini_batch_size")?,
        epochs: hp.get::<usize>("epochs")?,
        l1: hp.float("l1"),
        wd: hp.float("wd"),
        init,
        init_bias: hp.get::<f64>("init_bias")?,
        use_bias: hp.get::<bool>("use_bias")?,
        num_models: hp.usize("num_models").unwrap_or(AUTO_NUM_MODELS),
        num_calibration_samples: hp
            .usize("num_calibration_samples")
            .unwrap_or(AUTO_CALIBRATION_SAMPLES),
        num_point_for_scaler: hp.get::<usize>("num_point_for_scaler")?,
        normalize_data,
        unbias_data: hp.boolean("unbias_data"),
        normalize_label,
        unbias_label,
        selection,
        f_beta,
        positive_example_weight_mult,
        balance_multiclass_weights,
        accuracy_top_k: hp.get::<usize>("accuracy_top_k")?,
        early_stopping_patience: hp.get::<usize>("early_stopping_patience")?,
        early_stopping_tolerance: hp.get::<f64>("early_stopping_tolerance")?,
        seed: hp.get::<i64>("seed")? as u64,
    })
}
