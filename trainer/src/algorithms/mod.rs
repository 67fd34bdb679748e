//! The classic algorithms this crate trains, one folder each. [`classic`] lists them; the registry that the CLI,
//! the compiler and the conformance suite read (`tern-registry`) joins them with the algorithms of other trainer
//! crates and with each algorithm's lowering. Adding a classic algorithm is one line in [`classic`] and one in the
//! registry.

pub mod kmeans;
pub mod knn;
pub mod linear_learner;
pub mod pca;
pub mod rcf;
pub mod xgboost;

use crate::{Algorithm, TrainError};

/// The algorithms this crate defines.
pub fn classic() -> &'static [&'static dyn Algorithm] {
    &[
        &linear_learner::LinearLearner,
        &xgboost::XGBoost,
        &kmeans::KMeans,
        &pca::Pca,
        &rcf::RandomCutForest,
        &knn::Knn,
    ]
}

/// The algorithm of `algorithms` called `name` (SageMaker's spelling, with `-` or `_`, any case); the error lists
/// the names there are.
pub fn find_in(
    algorithms: &[&'static dyn Algorithm],
    name: &str,
) -> Result<&'static dyn Algorithm, TrainError> {
    let wanted = name.trim().to_ascii_lowercase().replace('_', "-");
    algorithms
        .iter()
        .copied()
        .find(|a| a.name() == wanted)
        .ok_or_else(|| TrainError::UnknownAlgorithm {
            name: name.to_string(),
            known: algorithms
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The classic algorithm called `name` ([`find_in`] over [`classic`]).
pub fn find(name: &str) -> Result<&'static dyn Algorithm, TrainError> {
    find_in(classic(), name)
}
