//! The registry: every algorithm tern trains, one folder each. Adding an algorithm is one line in [`all`].

pub mod kmeans;
pub mod knn;
pub mod linear_learner;
pub mod pca;
pub mod rcf;
pub mod xgboost;

use crate::{Algorithm, TrainError};

/// Every registered algorithm.
pub fn all() -> &'static [&'static dyn Algorithm] {
    &[
        &linear_learner::LinearLearner,
        &xgboost::XGBoost,
        &kmeans::KMeans,
        &pca::Pca,
        &rcf::RandomCutForest,
        &knn::Knn,
    ]
}

/// The algorithm called `name` (SageMaker's spelling, with `-` or `_`, any case).
pub fn find(name: &str) -> Result<&'static dyn Algorithm, TrainError> {
    let wanted = name.trim().to_ascii_lowercase().replace('_', "-");
    all()
        .iter()
        .copied()
        .find(|a| a.name() == wanted)
        .ok_or_else(|| TrainError::UnknownAlgorithm {
            name: name.to_string(),
            known: all()
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
}
