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
    /// What `auto` means when it means one fixed value (e.g. Linear Learner's `bias_lr_mult`); `None` when the
    /// algorithm resolves `auto` from the data or other hyperparameters, reading [`Hyperparameters::is_auto`].
    pub auto_value: Option<&'static str>,
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
            auto_value: None,
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
            auto_value: None,
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
            auto_value: None,
        }
    }
    /// The same, also accepting `auto`.
    pub const fn or_auto(mut self) -> Self {
        self.accepts_auto = true;
        self
    }
    /// The same, also accepting `auto`, which means `value`: [`Hyperparameters::get`] reads `value` for it.
    pub const fn auto_means(mut self, value: &'static str) -> Self {
        self.accepts_auto = true;
        self.auto_value = Some(value);
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
    /// The fixed meaning of `auto` per name that accepts it ([`HyperparameterSpec::or_auto`]): `None` where the
    /// algorithm resolves it ([`HyperparameterSpec::auto_value`]).
    auto_values: BTreeMap<String, Option<String>>,
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
        let auto_values = specs
            .iter()
            .filter(|spec| spec.accepts_auto)
            .map(|spec| (spec.name.to_string(), spec.auto_value.map(str::to_string)))
            .collect();
        Ok(Hyperparameters {
            algorithm: algorithm.to_string(),
            values,
            given,
            auto_values,
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

    /// The value in force for `name` as a `T`: the one given, else the table's default; `auto` reads as the table's
    /// [`HyperparameterSpec::auto_value`]. Training code reads defaults only through here, so a default is written
    /// once, in the table. Errors (a table without a default, an `auto` the algorithm must resolve itself) name the
    /// hyperparameter; hyperparameters with no default are read with [`Hyperparameters::float`] and its siblings.
    pub fn get<T: HyperparameterValue>(&self, name: &str) -> Result<T, HyperparameterError> {
        let text = self
            .text(name)
            .ok_or_else(|| HyperparameterError::Missing {
                name: name.to_string(),
                expected: format!("a value ({} gives it no default)", self.algorithm),
            })?;
        // `auto` is the table's marker only where the spec accepts it; elsewhere it is an ordinary word (XGBoost's
        // `tree_method=auto`, Linear Learner's `optimizer=auto`).
        let text =
            match self.auto_values.get(name) {
                Some(meaning) if text.eq_ignore_ascii_case("auto") => meaning
                    .as_deref()
                    .ok_or_else(|| HyperparameterError::Invalid {
                        name: name.to_string(),
                        value: text.to_string(),
                        expected: format!(
                            "{}; {} resolves auto itself",
                            T::EXPECTED,
                            self.algorithm
                        ),
                    })?,
                _ => text,
            };
        T::parse(text).ok_or_else(|| HyperparameterError::Invalid {
            name: name.to_string(),
            value: text.to_string(),
            expected: T::EXPECTED.to_string(),
        })
    }

    /// The value in force for the categorical `name`, as the `choices` entry whose word it is (any case). A word
    /// with no entry is an error naming it and the words the algorithm handles: never a silent default.
    pub fn choice<T: Copy>(
        &self,
        name: &str,
        choices: &[(&str, T)],
    ) -> Result<T, HyperparameterError> {
        let word = self.get::<String>(name)?;
        choices
            .iter()
            .find(|(choice, _)| choice.eq_ignore_ascii_case(&word))
            .map(|&(_, value)| value)
            .ok_or_else(|| HyperparameterError::Invalid {
                name: name.to_string(),
                value: word,
                expected: format!(
                    "one of {}",
                    choices
                        .iter()
                        .map(|(c, _)| *c)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}

/// A type [`Hyperparameters::get`] reads a value as.
pub trait HyperparameterValue: Sized {
    /// What a value of the type looks like, for errors.
    const EXPECTED: &'static str;
    fn parse(text: &str) -> Option<Self>;
}

impl HyperparameterValue for f64 {
    const EXPECTED: &'static str = "a number";
    fn parse(text: &str) -> Option<f64> {
        text.trim().parse().ok().filter(|v: &f64| v.is_finite())
    }
}

impl HyperparameterValue for i64 {
    const EXPECTED: &'static str = "an integer";
    fn parse(text: &str) -> Option<i64> {
        parse_integer(text.trim())
    }
}

impl HyperparameterValue for usize {
    const EXPECTED: &'static str = "a non-negative integer";
    fn parse(text: &str) -> Option<usize> {
        parse_integer(text.trim()).and_then(|v| usize::try_from(v).ok())
    }
}

impl HyperparameterValue for bool {
    const EXPECTED: &'static str = "true or false";
    fn parse(text: &str) -> Option<bool> {
        parse_bool(text.trim())
    }
}

/// Words, lower-cased for comparisons (categorical values are checked against the table when parsed).
impl HyperparameterValue for String {
    const EXPECTED: &'static str = "a word";
    fn parse(text: &str) -> Option<String> {
        Some(text.trim().to_ascii_lowercase())
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
        HyperparameterSpec::optional("bias_lr_mult", Kind::POSITIVE, "auto").auto_means("1.5"),
        HyperparameterSpec::unset("margin", Kind::POSITIVE),
    ];

    #[test]
    fn get_reads_the_tables_default_and_auto_meaning() {
        let hp = Hyperparameters::parse(
            "linear-learner",
            SPECS,
            &raw(&[("predictor_type", "regressor"), ("use_bias", "False")]),
        )
        .unwrap();
        assert_eq!(hp.get::<usize>("epochs").unwrap(), 15);
        assert!(!hp.get::<bool>("use_bias").unwrap());
        assert_eq!(hp.get::<f64>("bias_lr_mult").unwrap(), 1.5);
        assert_eq!(hp.get::<String>("predictor_type").unwrap(), "regressor");
        // A categorical word "auto" (no or_auto) is read as the word.
        let words: &[HyperparameterSpec] = &[HyperparameterSpec::optional(
            "optimizer",
            Kind::Categorical(&["auto", "sgd"]),
            "auto",
        )];
        let optimizer = Hyperparameters::parse("linear-learner", words, &raw(&[])).unwrap();
        assert_eq!(optimizer.get::<String>("optimizer").unwrap(), "auto");
        // auto resolved by the algorithm, and no default at all: errors naming the hyperparameter, never a guess.
        let auto = hp.get::<f64>("learning_rate").unwrap_err().to_string();
        assert!(
            auto.contains("learning_rate") && auto.contains("auto"),
            "{auto}"
        );
        let unset = hp.get::<f64>("margin").unwrap_err().to_string();
        assert!(
            unset.contains("margin") && unset.contains("no default"),
            "{unset}"
        );
        assert_eq!(hp.float("margin"), None);
        assert_eq!(
            hp.choice(
                "predictor_type",
                &[("binary_classifier", 0), ("regressor", 1)]
            )
            .unwrap(),
            1
        );
        let unhandled = hp
            .choice("predictor_type", &[("binary_classifier", 0)])
            .unwrap_err()
            .to_string();
        assert!(
            unhandled.contains("regressor") && unhandled.contains("binary_classifier"),
            "{unhandled}"
        );
    }

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
