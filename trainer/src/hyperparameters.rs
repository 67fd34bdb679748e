//! Hyperparameters by SageMaker's names, arriving as strings (as in `hyperparameters.json`) and checked against each
//! algorithm's table of [`HyperparameterSpec`]s before anything trains.

use std::collections::BTreeMap;
use std::fmt;

/// What values a hyperparameter takes.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// An integer in `[min, max]`.
    Integer { min: i64, max: i64 },
    /// A float between `min` and `max`; each bound inclusive or not.
    Float {
        min: f64,
        max: f64,
        min_inclusive: bool,
        max_inclusive: bool,
    },
    /// `true` or `false` (SageMaker also sends `True`/`False`, `1`/`0`).
    Boolean,
    /// One of a fixed set of words.
    Categorical(&'static [&'static str]),
    /// Free text the algorithm parses itself (e.g. `eval_metric` lists, `monotone_constraints`).
    Text,
}

impl Kind {
    /// An integer at least `min`.
    pub const fn at_least(min: i64) -> Kind {
        Kind::Integer { min, max: i64::MAX }
    }
    /// A float in `[min, max]`.
    pub const fn closed(min: f64, max: f64) -> Kind {
        Kind::Float {
            min,
            max,
            min_inclusive: true,
            max_inclusive: true,
        }
    }
    /// A float in `(min, max)`.
    pub const fn open(min: f64, max: f64) -> Kind {
        Kind::Float {
            min,
            max,
            min_inclusive: false,
            max_inclusive: false,
        }
    }
    /// A float `> 0`.
    pub const POSITIVE: Kind = Kind::open(0.0, f64::INFINITY);
    /// A float `>= 0`.
    pub const NON_NEGATIVE: Kind = Kind::Float {
        min: 0.0,
        max: f64::INFINITY,
        min_inclusive: true,
        max_inclusive: false,
    };
    /// Any finite float.
    pub const ANY_FLOAT: Kind = Kind::open(f64::NEG_INFINITY, f64::INFINITY);
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Integer { min, max } if *max == i64::MAX => write!(f, "an integer >= {min}"),
            Kind::Integer { min, max } => write!(f, "an integer in [{min}, {max}]"),
            Kind::Float {
                min,
                max,
                min_inclusive,
                max_inclusive,
            } => {
                let open = if *min_inclusive { '[' } else { '(' };
                let close = if *max_inclusive { ']' } else { ')' };
                let show = |v: &f64| {
                    if v.is_infinite() {
                        if *v > 0.0 {
                            "inf".to_string()
                        } else {
                            "-inf".to_string()
                        }
                    } else {
                        v.to_string()
                    }
                };
                write!(f, "a number in {open}{}, {}{close}", show(min), show(max))
            }
            Kind::Boolean => write!(f, "true or false"),
            Kind::Categorical(words) => write!(f, "one of {}", words.join(", ")),
            Kind::Text => write!(f, "text"),
        }
    }
}

/// One hyperparameter of one algorithm, as SageMaker documents it.
#[derive(Debug, Clone, Copy)]
pub struct HyperparameterSpec {
    /// SageMaker's name, e.g. `mini_batch_size`.
    pub name: &'static str,
    pub kind: Kind,
    /// Whether the word `auto` is also accepted (the algorithm resolves it).
    pub accepts_auto: bool,
    /// The default as SageMaker writes it (`"auto"`, `"15"`, …); `None` when there is none.
    pub default: Option<&'static str>,
    /// Whether the job fails without it. Conditional requirements live in [`crate::Algorithm::validate`].
    pub required: bool,
}

impl HyperparameterSpec {
    /// An optional hyperparameter with a default.
    pub const fn optional(name: &'static str, kind: Kind, default: &'static str) -> Self {
        HyperparameterSpec {
            name,
            kind,
            accepts_auto: false,
            default: Some(default),
            required: false,
        }
    }
    /// An optional hyperparameter with no default (unset unless given).
    pub const fn unset(name: &'static str, kind: Kind) -> Self {
        HyperparameterSpec {
            name,
            kind,
            accepts_auto: false,
            default: None,
            required: false,
        }
    }
    /// A required hyperparameter.
    pub const fn required(name: &'static str, kind: Kind) -> Self {
        HyperparameterSpec {
            name,
            kind,
            accepts_auto: false,
            default: None,
            required: true,
        }
    }
    /// The same, also accepting `auto`.
    pub const fn or_auto(mut self) -> Self {
        self.accepts_auto = true;
        self
    }

    fn check(&self, value: &str) -> Result<(), HyperparameterError> {
        let bad = |expected: String| HyperparameterError::Invalid {
            name: self.name.to_string(),
            value: value.to_string(),
            expected,
        };
        let trimmed = value.trim();
        if self.accepts_auto && trimmed.eq_ignore_ascii_case("auto") {
            return Ok(());
        }
        let expected = || {
            if self.accepts_auto {
                format!("{} or auto", self.kind)
            } else {
                self.kind.to_string()
            }
        };
        match self.kind {
            Kind::Integer { min, max } => {
                let parsed = parse_integer(trimmed).ok_or_else(|| bad(expected()))?;
                if parsed < min || parsed > max {
                    return Err(bad(expected()));
                }
            }
            Kind::Float {
                min,
                max,
                min_inclusive,
                max_inclusive,
            } => {
                let parsed: f64 = trimmed.parse().map_err(|_| bad(expected()))?;
                let above = if min_inclusive {
                    parsed >= min
                } else {
                    parsed > min
                };
                let below = if max_inclusive {
                    parsed <= max
                } else {
                    parsed < max
                };
                if !parsed.is_finite() || !above || !below {
                    return Err(bad(expected()));
                }
            }
            Kind::Boolean => {
                parse_bool(trimmed).ok_or_else(|| bad(expected()))?;
            }
            Kind::Categorical(words) => {
                if !words.iter().any(|w| w.eq_ignore_ascii_case(trimmed)) {
                    return Err(bad(expected()));
                }
            }
            Kind::Text => {}
        }
        Ok(())
    }
}

/// Integers as SageMaker clients send them: `10`, and also `10.0` from SDKs that stringify floats.
fn parse_integer(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().or_else(|| {
        let float: f64 = text.parse().ok()?;
        (float.fract() == 0.0 && float.abs() < 9.0e15).then_some(float as i64)
    })
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// A hyperparameter problem, found before training starts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HyperparameterError {
    #[error("unknown hyperparameter {name:?} for {algorithm}; allowed: {allowed}")]
    Unknown {
        algorithm: String,
        name: String,
        allowed: String,
    },
    #[error("hyperparameter {name}={value:?} is invalid: expected {expected}")]
    Invalid {
        name: String,
        value: String,
        expected: String,
    },
    #[error("missing required hyperparameter {name} ({expected})")]
    Missing { name: String, expected: String },
    #[error("hyperparameters {names}: {message}")]
    Conflict { names: String, message: String },
}

/// Validated hyperparameters: every given value checked, defaults filled in, typed accessors.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperparameters {
    algorithm: String,
    values: BTreeMap<String, String>,
    given: BTreeMap<String, String>,
}

impl Hyperparameters {
    /// Checks `raw` against `specs`: rejects unknown names (listing the allowed ones), values of the wrong type or
    /// range (stating what is expected), and missing required names; fills defaults. Names starting with `_`
    /// (SageMaker's own, e.g. `_tuning_objective_metric`) and `sagemaker_*` are accepted and ignored.
    pub fn parse(
        algorithm: &str,
        specs: &[HyperparameterSpec],
        raw: &BTreeMap<String, String>,
    ) -> Result<Self, HyperparameterError> {
        let mut values = BTreeMap::new();
        let mut given = BTreeMap::new();
        for (name, value) in raw {
            if name.starts_with('_') || name.starts_with("sagemaker_") {
                continue;
            }
            let spec = specs.iter().find(|s| s.name == name).ok_or_else(|| {
                let mut allowed: Vec<_> = specs.iter().map(|s| s.name).collect();
                allowed.sort_unstable();
                HyperparameterError::Unknown {
                    algorithm: algorithm.to_string(),
                    name: name.clone(),
                    allowed: allowed.join(", "),
                }
            })?;
            spec.check(value)?;
            values.insert(name.clone(), value.trim().to_string());
            // A value spelled exactly as its default counts as not given, so an artifact's recorded hyperparameters
            // (every value in force) parse back to the same configuration, cross-field rules included.
            if spec.default != Some(value.trim()) {
                given.insert(name.clone(), value.trim().to_string());
            }
        }
        for spec in specs {
            if values.contains_key(spec.name) {
                continue;
            }
            if spec.required {
                return Err(HyperparameterError::Missing {
                    name: spec.name.to_string(),
                    expected: spec.kind.to_string(),
                });
            }
            if let Some(default) = spec.default {
                values.insert(spec.name.to_string(), default.to_string());
            }
        }
        Ok(Hyperparameters {
            algorithm: algorithm.to_string(),
            values,
            given,
        })
    }

    /// Every value in force (given or default), as strings; what the artifact records.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// Only the values the user gave that differ from the default's spelling.
    pub fn given(&self) -> &BTreeMap<String, String> {
        &self.given
    }

    /// Whether the user gave `name` (as opposed to it taking its default, or being given as the default's exact text).
    pub fn is_given(&self, name: &str) -> bool {
        self.given.contains_key(name)
    }

    /// The raw string in force for `name`, `None` when unset.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether `name` is set to `auto` (or unset with no default).
    pub fn is_auto(&self, name: &str) -> bool {
        self.text(name)
            .is_none_or(|v| v.eq_ignore_ascii_case("auto"))
    }

    /// The value as a float; `None` when unset or `auto`. Values were validated by [`Hyperparameters::parse`].
    pub fn float(&self, name: &str) -> Option<f64> {
        self.text(name)
            .filter(|v| !v.eq_ignore_ascii_case("auto"))
            .and_then(|v| v.parse().ok())
    }

    /// The value as an integer; `None` when unset or `auto`.
    pub fn integer(&self, name: &str) -> Option<i64> {
        self.text(name)
            .filter(|v| !v.eq_ignore_ascii_case("auto"))
            .and_then(parse_integer)
    }

    /// The value as a non-negative integer; `None` when unset, `auto` or negative.
    pub fn usize(&self, name: &str) -> Option<usize> {
        self.integer(name).and_then(|v| usize::try_from(v).ok())
    }

    /// The value as a boolean; `None` when unset or `auto`.
    pub fn boolean(&self, name: &str) -> Option<bool> {
        self.text(name).and_then(parse_bool)
    }

    /// The value lower-cased for categorical comparisons; `None` when unset.
    pub fn word(&self, name: &str) -> Option<String> {
        self.text(name).map(str::to_ascii_lowercase)
    }

    /// The algorithm these belong to.
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[HyperparameterSpec] = &[
        HyperparameterSpec::required(
            "predictor_type",
            Kind::Categorical(&["binary_classifier", "regressor"]),
        ),
        HyperparameterSpec::optional("epochs", Kind::at_least(1), "15"),
        HyperparameterSpec::optional("learning_rate", Kind::POSITIVE, "auto").or_auto(),
        HyperparameterSpec::optional("use_bias", Kind::Boolean, "true"),
    ];

    fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fills_defaults_and_types_values() {
        let hp = Hyperparameters::parse(
            "linear-learner",
            SPECS,
            &raw(&[
                ("predictor_type", "regressor"),
                ("epochs", "3.0"),
                ("use_bias", "False"),
            ]),
        )
        .unwrap();
        assert_eq!(hp.usize("epochs"), Some(3));
        assert_eq!(hp.boolean("use_bias"), Some(false));
        assert!(hp.is_auto("learning_rate"));
        assert_eq!(hp.float("learning_rate"), None);
        assert!(hp.is_given("epochs") && !hp.is_given("learning_rate"));
    }

    #[test]
    fn rejects_unknown_missing_and_out_of_range_with_what_is_allowed() {
        let unknown = Hyperparameters::parse(
            "ll",
            SPECS,
            &raw(&[("predictor_type", "regressor"), ("epoch", "3")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            unknown.contains("\"epoch\"") && unknown.contains("epochs, learning_rate"),
            "{unknown}"
        );
        let missing = Hyperparameters::parse("ll", SPECS, &raw(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("predictor_type") && missing.contains("binary_classifier"),
            "{missing}"
        );
        let range = Hyperparameters::parse(
            "ll",
            SPECS,
            &raw(&[("predictor_type", "regressor"), ("epochs", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(range.contains("an integer >= 1"), "{range}");
        let word = Hyperparameters::parse("ll", SPECS, &raw(&[("predictor_type", "classifier")]))
            .unwrap_err()
            .to_string();
        assert!(
            word.contains("one of binary_classifier, regressor"),
            "{word}"
        );
        let float = Hyperparameters::parse(
            "ll",
            SPECS,
            &raw(&[("predictor_type", "regressor"), ("learning_rate", "-1")]),
        )
        .unwrap_err()
        .to_string();
        assert!(float.contains("or auto"), "{float}");
    }

    #[test]
    fn values_in_force_parse_back_to_the_same_configuration() {
        let hp = Hyperparameters::parse(
            "ll",
            SPECS,
            &raw(&[("predictor_type", "regressor"), ("epochs", "4")]),
        )
        .unwrap();
        let again = Hyperparameters::parse("ll", SPECS, hp.values()).unwrap();
        assert_eq!(again.values(), hp.values());
        assert!(
            again.is_given("epochs")
                && !again.is_given("use_bias")
                && !again.is_given("learning_rate")
        );
    }

    #[test]
    fn ignores_sagemaker_internal_names() {
        let hp = Hyperparameters::parse(
            "ll",
            SPECS,
            &raw(&[
                ("predictor_type", "regressor"),
                ("_tuning_objective_metric", "validation:rmse"),
            ]),
        )
        .unwrap();
        assert_eq!(hp.text("_tuning_objective_metric"), None);
    }
}
