//! The trainer's error type: every failure a training job or a prediction can meet, with where it happened.

use std::path::PathBuf;

use tern_formats::FormatError;

use crate::hyperparameters::HyperparameterError;

/// A failed training job, evaluation or prediction.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Malformed input data (the error names the file and line/record).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A hyperparameter is unknown, missing or out of range.
    #[error(transparent)]
    Hyperparameter(#[from] HyperparameterError),
    /// The data parse but cannot train this model: wrong feature count, label out of range, empty channel, ….
    #[error("channel {channel}: {message}")]
    Data { channel: String, message: String },
    /// A file or folder could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// A model artifact is missing, truncated, of another schema version or inconsistent.
    #[error("model artifact {path}: {message}")]
    Artifact { path: String, message: String },
    /// `--algorithm` names nothing the registry holds.
    #[error("unknown algorithm {name:?}; known algorithms: {known}")]
    UnknownAlgorithm { name: String, known: String },
    /// The job configuration (channels, inputdataconfig.json, options) is inconsistent.
    #[error("{0}")]
    Config(String),
    /// A size taken from input (a feature index, a declared shape, a hyperparameter, an archive entry) needs more
    /// memory than the job may allocate ([`crate::memory`]).
    #[error(
        "{what} needs {}, more than the {} this process may still allocate (see TERN_MEMORY_LIMIT_MB)",
        crate::memory::human_bytes(*bytes),
        crate::memory::human_bytes(u128::from(*available))
    )]
    TooLarge {
        what: String,
        bytes: u128,
        available: u64,
    },
    /// Training diverged or otherwise failed inside the algorithm.
    #[error("{algorithm}: {message}")]
    Algorithm { algorithm: String, message: String },
}

impl TrainError {
    /// A [`TrainError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            error,
        }
    }

    /// A [`TrainError::Data`] for `channel`.
    pub fn data(channel: &str, message: impl Into<String>) -> Self {
        TrainError::Data {
            channel: channel.to_string(),
            message: message.into(),
        }
    }
}
