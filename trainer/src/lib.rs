//! tern's trainer: SageMaker's built-in algorithms behind one [`Algorithm`] trait, with SageMaker's hyperparameter
//! names, data formats and `/opt/ml` training-job layout.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use tern_trainer::{algorithms, data::{Channel, TrainingInput}, Hyperparameters, TrainingContext};
//!
//! let algorithm = algorithms::find("linear-learner").unwrap();
//! let raw = BTreeMap::from([("predictor_type".to_string(), "binary_classifier".to_string())]);
//! let hyperparameters = Hyperparameters::parse(algorithm.name(), algorithm.hyperparameters(), &raw).unwrap();
//! let input = TrainingInput::new(Channel::from_path("train", "train.csv".as_ref(), None).unwrap());
//! let artifact = algorithm.train(&hyperparameters, &input, &mut TrainingContext::new(true)).unwrap();
//! artifact.write("out/model.tar.gz".as_ref()).unwrap();
//! ```

pub mod algorithm;
pub mod algorithms;
pub mod artifact;
pub mod cv;
pub mod data;
pub mod error;
pub mod evaluation;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod hyperparameters;
pub mod job;
pub mod memory;
pub mod metrics;
/// Progress, metric and log events (tern-formats' [`tern_formats::observe`], shared with the runtimes).
pub use tern_formats::observe;
pub mod outputs;
pub mod plots;

pub use algorithm::{
    Algorithm, Device, FeatureImportance, MetricRecord, Predictions, Predictor, Task,
    TrainingContext,
};
pub use artifact::Artifact;
pub use error::TrainError;
pub use hyperparameters::{HyperparameterError, HyperparameterSpec, Hyperparameters, Kind};
