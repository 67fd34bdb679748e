//! SageMaker XGBoost's hyperparameter table and the typed training parameters resolved from it.

use crate::hyperparameters::{HyperparameterError, HyperparameterSpec, Hyperparameters, Kind};

use super::objective::Objective;

const OBJECTIVES: &[&str] = &[
    "reg:squarederror",
    "reg:squaredlogerror",
    "reg:logistic",
    "reg:pseudohubererror",
    "reg:absoluteerror",
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "count:poisson",
    "reg:gamma",
    "reg:tweedie",
    "multi:softmax",
    "multi:softprob",
    "rank:pairwise",
    "rank:ndcg",
];

/// SageMaker's XGBoost hyperparameters (container 1.2-2 and later) with xgboost's own defaults where SageMaker
/// forwards them. `base_score` has no default: unset, it is estimated from the labels as xgboost 3 does.
pub const HYPERPARAMETERS: &[HyperparameterSpec] = &[
    HyperparameterSpec::required("num_round", Kind::at_least(1)),
    HyperparameterSpec::unset("num_class", Kind::at_least(2)),
    HyperparameterSpec::optional("alpha", Kind::NON_NEGATIVE, "0"),
    HyperparameterSpec::unset("base_score", Kind::ANY_FLOAT),
    HyperparameterSpec::optional(
        "booster",
        Kind::Categorical(&["gbtree", "gblinear", "dart"]),
        "gbtree",
    ),
    HyperparameterSpec::optional(
        "colsample_bylevel",
        Kind::Float {
            min: 0.0,
            max: 1.0,
            min_inclusive: false,
            max_inclusive: true,
        },
        "1",
    ),
    HyperparameterSpec::optional(
        "colsample_bynode",
        Kind::Float {
            min: 0.0,
            max: 1.0,
            min_inclusive: false,
            max_inclusive: true,
        },
        "1",
    ),
    HyperparameterSpec::optional(
        "colsample_bytree",
        Kind::Float {
            min: 0.0,
            max: 1.0,
            min_inclusive: false,
            max_inclusive: true,
        },
        "1",
    ),
    HyperparameterSpec::optional("csv_weights", Kind::Integer { min: 0, max: 1 }, "0"),
    HyperparameterSpec::unset("early_stopping_rounds", Kind::at_least(1)),
    HyperparameterSpec::optional("eta", Kind::closed(0.0, 1.0), "0.3"),
    HyperparameterSpec::unset("eval_metric", Kind::Text),
    HyperparameterSpec::optional("gamma", Kind::NON_NEGATIVE, "0"),
    HyperparameterSpec::optional(
        "grow_policy",
        Kind::Categorical(&["depthwise", "lossguide"]),
        "depthwise",
    ),
    HyperparameterSpec::unset("interaction_constraints", Kind::Text),
    HyperparameterSpec::optional("lambda", Kind::NON_NEGATIVE, "1"),
    HyperparameterSpec::optional("max_bin", Kind::at_least(2), "256"),
    HyperparameterSpec::unset("max_delta_step", Kind::NON_NEGATIVE),
    HyperparameterSpec::optional("max_depth", Kind::at_least(0), "6"),
    HyperparameterSpec::optional("max_leaves", Kind::at_least(0), "0"),
    HyperparameterSpec::optional(
        "normalize_type",
        Kind::Categorical(&["tree", "forest"]),
        "tree",
    ),
    HyperparameterSpec::optional("one_drop", Kind::Integer { min: 0, max: 1 }, "0"),
    HyperparameterSpec::optional("rate_drop", Kind::closed(0.0, 1.0), "0"),
    HyperparameterSpec::optional(
        "sample_type",
        Kind::Categorical(&["uniform", "weighted"]),
        "uniform",
    ),
    HyperparameterSpec::optional("skip_drop", Kind::closed(0.0, 1.0), "0"),
    HyperparameterSpec::optional("min_child_weight", Kind::NON_NEGATIVE, "1"),
    HyperparameterSpec::unset("monotone_constraints", Kind::Text),
    HyperparameterSpec::unset("nthread", Kind::at_least(1)),
    HyperparameterSpec::optional(
        "objective",
        Kind::Categorical(OBJECTIVES),
        "reg:squarederror",
    ),
    HyperparameterSpec::optional(
        "sampling_method",
        Kind::Categorical(&["uniform", "gradient_based"]),
        "uniform",
    ),
    HyperparameterSpec::optional("scale_pos_weight", Kind::POSITIVE, "1"),
    HyperparameterSpec::optional("seed", Kind::at_least(0), "0"),
    HyperparameterSpec::optional(
        "subsample",
        Kind::Float {
            min: 0.0,
            max: 1.0,
            min_inclusive: false,
            max_inclusive: true,
        },
        "1",
    ),
    HyperparameterSpec::optional(
        "tree_method",
        Kind::Categorical(&["auto", "exact", "approx", "hist"]),
        "auto",
    ),
    HyperparameterSpec::optional(
        "tweedie_variance_power",
        Kind::Float {
            min: 1.0,
            max: 2.0,
            min_inclusive: false,
            max_inclusive: false,
        },
        "1.5",
    ),
    HyperparameterSpec::optional("huber_slope", Kind::POSITIVE, "1"),
    HyperparameterSpec::optional("verbosity", Kind::Integer { min: 0, max: 3 }, "1"),
];

/// `booster=dart`: dropout of existing trees each round (Rashmi & Gilad-Bachrach, "DART: Dropouts meet Multiple
/// Additive Regression Trees", 2015), with xgboost's selection and normalisation rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DartParams {
    /// Probability of dropping each tree (`rate_drop`).
    pub rate_drop: f64,
    /// Probability of skipping dropout for a round altogether (`skip_drop`).
    pub skip_drop: f64,
    /// Drop at least one tree when dropout selected none (`one_drop=1`).
    pub one_drop: bool,
    /// `sample_type=weighted`: a tree is dropped with probability proportional to its weight.
    pub weighted: bool,
    /// `normalize_type=forest`: new trees weigh as much as all dropped trees together, rather than as one of them.
    pub forest: bool,
}

/// How trees grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrowPolicy {
    /// Level by level (xgboost's `depthwise`).
    Depthwise,
    /// Best loss reduction first (xgboost's `lossguide`).
    Lossguide,
}

/// The typed, validated parameters of one training run.
#[derive(Debug, Clone)]
pub struct TrainParams {
    pub num_round: usize,
    pub objective: Objective,
    pub num_class: usize,
    pub eta: f64,
    pub gamma: f64,
    pub max_depth: usize,
    pub max_leaves: usize,
    pub min_child_weight: f64,
    pub max_delta_step: f64,
    pub lambda: f64,
    pub alpha: f64,
    pub subsample: f64,
    pub colsample_bytree: f64,
    pub colsample_bylevel: f64,
    pub colsample_bynode: f64,
    pub scale_pos_weight: f64,
    pub base_score: Option<f64>,
    pub max_bin: usize,
    /// `tree_method=exact`: every distinct value is a candidate split.
    pub exact: bool,
    pub grow_policy: GrowPolicy,
    pub early_stopping_rounds: Option<usize>,
    pub eval_metrics: Vec<String>,
    pub monotone: Vec<i8>,
    pub interaction: Vec<Vec<usize>>,
    pub csv_weights: bool,
    pub seed: u64,
    pub nthread: Option<usize>,
    pub verbosity: u8,
    /// `booster=gblinear`: a linear model by coordinate descent instead of trees.
    pub linear: bool,
    /// `booster=dart`.
    pub dart: Option<DartParams>,
    /// `sampling_method=gradient_based`: rows are kept with probability proportional to sqrt(g² + λh²) (capped at
    /// 1, `subsample` of them expected) and their gradients scaled by the inverse probability, as xgboost's GPU
    /// sampler does; xgboost itself offers it only on GPUs, tern on the CPU too.
    pub gradient_based: bool,
}

fn conflict(names: &str, message: impl Into<String>) -> HyperparameterError {
    HyperparameterError::Conflict {
        names: names.to_string(),
        message: message.into(),
    }
}

fn invalid(name: &str, value: &str, expected: &str) -> HyperparameterError {
    HyperparameterError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Parses `(1,0,-1)` / `[1,0,-1]` into per-feature monotone directions.
pub fn parse_monotone(text: &str) -> Result<Vec<i8>, HyperparameterError> {
    let inner = text
        .trim()
        .trim_start_matches(['(', '['])
        .trim_end_matches([')', ']']);
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|part| match part.trim() {
            "1" => Ok(1),
            "0" => Ok(0),
            "-1" => Ok(-1),
            _ => Err(invalid(
                "monotone_constraints",
                text,
                "a tuple of -1, 0 or 1 per feature, e.g. (0,1,-1)",
            )),
        })
        .collect()
}

/// Parses `[[0,1],[2,3,4]]` into sets of feature indices that may interact.
pub fn parse_interaction(text: &str) -> Result<Vec<Vec<usize>>, HyperparameterError> {
    let expected = "a nested list of feature indices, e.g. [[0,1],[2,3,4]]";
    let value: serde_json::Value = serde_json::from_str(&text.replace('(', "[").replace(')', "]"))
        .map_err(|_| invalid("interaction_constraints", text, expected))?;
    let outer = value
        .as_array()
        .ok_or_else(|| invalid("interaction_constraints", text, expected))?;
    outer
        .iter()
        .map(|set| {
            set.as_array()
                .ok_or_else(|| invalid("interaction_constraints", text, expected))?
                .iter()
                .map(|f| {
                    f.as_u64()
                        .map(|f| f as usize)
                        .ok_or_else(|| invalid("interaction_constraints", text, expected))
                })
                .collect()
        })
        .collect()
}

impl TrainParams {
    /// Resolves and cross-checks the hyperparameters; every rule that needs no data is checked here.
    pub fn from_hyperparameters(hp: &Hyperparameters) -> Result<TrainParams, HyperparameterError> {
        let objective_name = hp
            .word("objective")
            .unwrap_or_else(|| "reg:squarederror".into());
        let tweedie = hp.get::<f64>("tweedie_variance_power")?;
        let huber = hp.get::<f64>("huber_slope")?;
        let objective = Objective::from_name(&objective_name, tweedie, huber).ok_or_else(|| {
            invalid(
                "objective",
                &objective_name,
                "a supported xgboost objective",
            )
        })?;
        let num_class = hp.usize("num_class");
        let num_class = if objective.is_multiclass() {
            num_class.ok_or_else(|| {
                conflict(
                    "objective, num_class",
                    format!("num_class is required for objective {objective_name}"),
                )
            })?
        } else {
            if num_class.is_some_and(|k| k > 1) {
                return Err(conflict(
                    "objective, num_class",
                    format!("num_class is only valid with multi:softmax or multi:softprob, not {objective_name}"),
                ));
            }
            1
        };
        let booster = hp.get::<String>("booster")?;
        let linear = booster == "gblinear";
        let dart = if booster == "dart" {
            Some(DartParams {
                rate_drop: hp.get::<f64>("rate_drop")?,
                skip_drop: hp.get::<f64>("skip_drop")?,
                one_drop: hp.integer("one_drop") == Some(1),
                weighted: hp.word("sample_type").as_deref() == Some("weighted"),
                forest: hp.word("normalize_type").as_deref() == Some("forest"),
            })
        } else {
            None
        };
        let gradient_based = hp.word("sampling_method").as_deref() == Some("gradient_based");
        if gradient_based && linear {
            return Err(conflict(
                "sampling_method, booster",
                "sampling_method=gradient_based samples rows for trees; booster=gblinear grows none",
            ));
        }
        let tree_method = hp.get::<String>("tree_method")?;
        let grow_policy = hp.choice(
            "grow_policy",
            &[
                ("depthwise", GrowPolicy::Depthwise),
                ("lossguide", GrowPolicy::Lossguide),
            ],
        )?;
        let exact = tree_method == "exact";
        if exact && grow_policy == GrowPolicy::Lossguide {
            return Err(conflict(
                "tree_method, grow_policy",
                "grow_policy=lossguide requires tree_method hist, approx or auto",
            ));
        }
        let max_depth = hp.get::<usize>("max_depth")?;
        let max_leaves = hp.get::<usize>("max_leaves")?;
        if max_depth == 0 && grow_policy == GrowPolicy::Depthwise && max_leaves == 0 {
            return Err(conflict(
                "max_depth, grow_policy",
                "max_depth=0 (no limit) needs grow_policy=lossguide or max_leaves > 0",
            ));
        }
        let eval_metrics = match hp.text("eval_metric") {
            Some(text) => text
                .split(',')
                .map(|m| m.trim().to_ascii_lowercase())
                .filter(|m| !m.is_empty())
                .collect::<Vec<_>>(),
            None => vec![objective.default_metric().to_string()],
        };
        for metric in &eval_metrics {
            if (metric == "merror" || metric == "mlogloss") && !objective.is_multiclass() {
                return Err(conflict(
                    "eval_metric, objective",
                    format!("eval_metric {metric} needs a multi:softmax or multi:softprob objective, not {objective_name}"),
                ));
            }
            if !super::metric::is_known(metric) {
                return Err(invalid("eval_metric", metric, "rmse, rmsle, mae, mape, logloss, error, error@t, merror, mlogloss, auc, aucpr, ndcg[@n][-], map[@n][-], poisson-nloglik, gamma-nloglik, tweedie-nloglik[@rho]"));
            }
        }
        let monotone = match hp.text("monotone_constraints") {
            Some(text) => parse_monotone(text)?,
            None => Vec::new(),
        };
        let interaction = match hp.text("interaction_constraints") {
            Some(text) => parse_interaction(text)?,
            None => Vec::new(),
        };
        if let Some(base) = hp.float("base_score") {
            if objective.is_logistic() && !(0.0 < base && base < 1.0) {
                return Err(invalid(
                    "base_score",
                    &base.to_string(),
                    "a probability in (0, 1) for logistic objectives",
                ));
            }
            if objective.log_link() && base <= 0.0 {
                return Err(invalid(
                    "base_score",
                    &base.to_string(),
                    "a positive number for log-link objectives",
                ));
            }
        }
        let max_delta_step =
            hp.float("max_delta_step")
                .unwrap_or(if matches!(objective, Objective::Poisson) {
                    0.7
                } else {
                    0.0
                });
        Ok(TrainParams {
            num_round: hp.get::<usize>("num_round")?,
            objective,
            num_class,
            // gblinear's defaults differ from the trees': learning rate 0.5 and no L2 unless given.
            eta: if linear && !hp.is_given("eta") {
                0.5
            } else {
                hp.get::<f64>("eta")?
            },
            gamma: hp.get::<f64>("gamma")?,
            max_depth,
            max_leaves,
            min_child_weight: hp.get::<f64>("min_child_weight")?,
            max_delta_step,
            lambda: if linear && !hp.is_given("lambda") {
                0.0
            } else {
                hp.get::<f64>("lambda")?
            },
            alpha: hp.get::<f64>("alpha")?,
            subsample: hp.get::<f64>("subsample")?,
            colsample_bytree: hp.get::<f64>("colsample_bytree")?,
            colsample_bylevel: hp.get::<f64>("colsample_bylevel")?,
            colsample_bynode: hp.get::<f64>("colsample_bynode")?,
            scale_pos_weight: hp.get::<f64>("scale_pos_weight")?,
            base_score: hp.float("base_score"),
            max_bin: hp.get::<usize>("max_bin")?,
            exact,
            grow_policy,
            early_stopping_rounds: hp.usize("early_stopping_rounds"),
            eval_metrics,
            monotone,
            interaction,
            csv_weights: hp.integer("csv_weights") == Some(1),
            seed: hp.get::<i64>("seed")? as u64,
            nthread: hp.usize("nthread"),
            verbosity: hp.get::<i64>("verbosity")? as u8,
            linear,
            dart,
            gradient_based,
        })
    }
}
