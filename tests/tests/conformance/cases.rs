//! The cases: one trained model each, checked at every precision in every column. A later algorithm joins by adding
//! one entry to [`CASES`].

use tern_runtime::Precision;

/// One trained model the matrix checks at every precision.
pub struct Case {
    pub name: &'static str,
    pub algorithm: &'static str,
    /// A folder of tests/data/generated holding train.csv and test.csv (SageMaker CSV, label first).
    pub dataset: &'static str,
    pub hyperparameters: &'static [(&'static str, &'static str)],
    /// Replace some feature values by NaN (missing) in training and test rows.
    pub inject_nan: bool,
}

pub const CASES: &[Case] = &[
    Case {
        name: "linear-learner binary",
        algorithm: "linear-learner",
        dataset: "breast_cancer",
        hyperparameters: &[("predictor_type", "binary_classifier"), ("epochs", "5")],
        inject_nan: false,
    },
    Case {
        name: "linear-learner multiclass",
        algorithm: "linear-learner",
        dataset: "digits",
        hyperparameters: &[
            ("predictor_type", "multiclass_classifier"),
            ("num_classes", "10"),
            ("epochs", "5"),
        ],
        inject_nan: false,
    },
    Case {
        name: "linear-learner regressor",
        algorithm: "linear-learner",
        dataset: "diabetes",
        hyperparameters: &[("predictor_type", "regressor"), ("epochs", "5")],
        inject_nan: false,
    },
    Case {
        name: "xgboost binary (NaN)",
        algorithm: "xgboost",
        dataset: "breast_cancer",
        hyperparameters: &[
            ("objective", "binary:logistic"),
            ("num_round", "20"),
            ("max_depth", "4"),
        ],
        inject_nan: true,
    },
    Case {
        name: "xgboost multiclass",
        algorithm: "xgboost",
        dataset: "digits",
        hyperparameters: &[
            ("objective", "multi:softprob"),
            ("num_class", "10"),
            ("num_round", "10"),
            ("max_depth", "4"),
        ],
        inject_nan: false,
    },
    Case {
        name: "xgboost regression",
        algorithm: "xgboost",
        dataset: "diabetes",
        hyperparameters: &[
            ("objective", "reg:squarederror"),
            ("num_round", "20"),
            ("max_depth", "4"),
        ],
        inject_nan: false,
    },
    Case {
        name: "xgboost dart binary",
        algorithm: "xgboost",
        dataset: "breast_cancer",
        hyperparameters: &[
            ("objective", "binary:logistic"),
            ("booster", "dart"),
            ("rate_drop", "0.2"),
            ("one_drop", "1"),
            ("num_round", "20"),
            ("max_depth", "4"),
        ],
        inject_nan: false,
    },
    Case {
        name: "kmeans",
        algorithm: "kmeans",
        dataset: "digits",
        hyperparameters: &[
            ("feature_dim", "64"),
            ("k", "10"),
            ("init_method", "kmeans++"),
            ("seed", "1"),
        ],
        inject_nan: false,
    },
    Case {
        name: "pca regular",
        algorithm: "pca",
        dataset: "digits",
        hyperparameters: &[
            ("feature_dim", "64"),
            ("num_components", "5"),
            ("mini_batch_size", "200"),
        ],
        inject_nan: false,
    },
    Case {
        name: "pca randomized",
        algorithm: "pca",
        dataset: "digits",
        hyperparameters: &[
            ("feature_dim", "64"),
            ("num_components", "5"),
            ("mini_batch_size", "200"),
            ("algorithm_mode", "randomized"),
            ("seed", "1"),
        ],
        inject_nan: false,
    },
    Case {
        name: "knn classifier",
        algorithm: "knn",
        dataset: "digits",
        hyperparameters: &[
            ("feature_dim", "64"),
            ("k", "5"),
            ("predictor_type", "classifier"),
            ("sample_size", "5000"),
        ],
        inject_nan: false,
    },
    Case {
        name: "knn ivf classifier",
        algorithm: "knn",
        dataset: "digits",
        hyperparameters: &[
            ("feature_dim", "64"),
            ("k", "5"),
            ("predictor_type", "classifier"),
            ("sample_size", "5000"),
            ("index_type", "faiss.IVFFlat"),
            ("faiss_index_ivf_nlists", "12"),
            ("faiss_index_ivf_nprobe", "3"),
        ],
        inject_nan: false,
    },
    Case {
        name: "knn regressor",
        algorithm: "knn",
        dataset: "diabetes",
        hyperparameters: &[
            ("feature_dim", "10"),
            ("k", "7"),
            ("predictor_type", "regressor"),
            ("sample_size", "5000"),
        ],
        inject_nan: false,
    },
    Case {
        name: "rcf",
        algorithm: "randomcutforest",
        dataset: "digits",
        hyperparameters: &[
            ("feature_dim", "64"),
            ("num_trees", "50"),
            ("num_samples_per_tree", "256"),
            ("seed", "1"),
        ],
        inject_nan: false,
    },
];

pub const PRECISIONS: [Precision; 3] = [Precision::Fp32, Precision::F16, Precision::Int8];

/// The precision as trial names and the matrix spell it: `fp32`, `f16`, `int8`.
pub fn precision_name(precision: Precision) -> String {
    format!("{precision:?}").to_lowercase()
}

/// (case, precision, column, reason) cells that are not run, or whose compile the compiler refuses, with the reason.
/// The column is the one whose entries apply ([`crate::columns::Column::ignored_as`]).
pub const IGNORED: &[(&str, Precision, &str, &str)] = &[
    ("rcf", Precision::Fp32, "onnxruntime", RCF_ORT),
    ("rcf", Precision::F16, "x86_64", RCF_PRECISION),
    ("rcf", Precision::F16, "aarch64", RCF_PRECISION),
    ("rcf", Precision::F16, "onnxruntime", RCF_PRECISION),
    ("rcf", Precision::Int8, "x86_64", RCF_PRECISION),
    ("rcf", Precision::Int8, "aarch64", RCF_PRECISION),
    ("rcf", Precision::Int8, "onnxruntime", RCF_PRECISION),
    ("knn classifier", Precision::Int8, "x86_64", KNN_INT8),
    ("knn classifier", Precision::Int8, "aarch64", KNN_INT8),
    ("knn classifier", Precision::Int8, "onnxruntime", KNN_INT8),
    ("knn regressor", Precision::F16, "x86_64", KNN_F16),
    ("knn regressor", Precision::F16, "aarch64", KNN_F16),
    ("knn regressor", Precision::F16, "onnxruntime", KNN_F16),
];

/// Why the f16 k-NN regressor (diabetes) has no package: the compiler's drift check refuses it.
const KNN_F16: &str = "the compiler refuses f16 stored points (drift check): rounding diabetes' standardised \
    features to float16 swaps one neighbour of one row, moving its mean by 11.9 beyond the 1% limit";

/// Why the int8 k-NN classifier has no package: the compiler's drift check refuses it.
const KNN_INT8: &str = "the compiler refuses int8 stored points (drift check): per-point int8 scales move \
    distances enough to change some neighbours, so vote shares differ by up to 0.2 beyond the 0.1 limit";

/// Why onnxruntime cannot run the Random Cut Forest package.
const RCF_ORT: &str =
    "the graph's RandomCutForestScore is an ai.tern op (docs/ai.tern.md), implemented in \
    tern-runtime only; onnxruntime has no implementation of it";

/// Why Random Cut Forest has no f16 or int8 package.
const RCF_PRECISION: &str =
    "the compiler refuses f16 and int8 for Random Cut Forest: the forest's cuts and boxes \
    are op attributes, not weights, so there is nothing to quantize";

/// The reason [`IGNORED`] gives for (`case`, `precision`) in `column`'s entries, if it lists that cell.
pub fn ignored(case: &str, precision: Precision, column: &str) -> Option<&'static str> {
    IGNORED
        .iter()
        .find(|(c, p, r, _)| *c == case && *p == precision && *r == column)
        .map(|(.., reason)| *reason)
}

/// Whether `case` is selected by `TERN_CONFORMANCE_CASES` (comma-separated case names or parts of them, e.g.
/// `rcf` or `knn,xgboost`); every case when it is unset or empty.
pub fn selected(case: &str) -> bool {
    match std::env::var("TERN_CONFORMANCE_CASES") {
        Ok(filter) if !filter.trim().is_empty() => filter
            .split(',')
            .any(|part| !part.trim().is_empty() && case.contains(part.trim())),
        _ => true,
    }
}
