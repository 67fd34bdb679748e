//! The compiler's one error type.

use std::path::PathBuf;

/// Why a compile, a write or an inspection failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The artifact is not what its algorithm's layout requires (missing tensor, bad shape, unknown setting).
    #[error("artifact ({algorithm}): {message}")]
    Artifact { algorithm: String, message: String },

    /// The trainer could not load or run the artifact's model (the reference predictions).
    #[error("trainer: {0}")]
    Trainer(#[from] tern_trainer::TrainError),

    /// The artifact's algorithm has no lowering.
    #[error("no ONNX lowering for algorithm {algorithm:?}; the compiler lowers {known}")]
    UnsupportedAlgorithm { algorithm: String, known: String },

    /// A model feature the lowering cannot express.
    #[error("{algorithm}: {feature} cannot be compiled: {reason}")]
    UnsupportedFeature {
        algorithm: String,
        feature: String,
        reason: String,
    },

    /// A `--target` the compiler does not know.
    #[error("unknown target {target:?}; expected one of {known}")]
    UnknownTarget { target: String, known: String },

    /// The graph uses an op the target cannot run.
    #[error("target {target} does not support op {domain}{op_type} (node {node:?}): {reason}")]
    UnsupportedOp {
        target: String,
        domain: String,
        op_type: String,
        node: String,
        reason: String,
    },

    /// A quantized package drifted from the trainer's model beyond the documented limit.
    #[error(
        "{precision} drift exceeds the limit on {rows} verification rows: {details} (pass --force to package it anyway)"
    )]
    DriftExceeded {
        precision: String,
        rows: usize,
        details: String,
    },

    /// The fp32 graph disagrees with the trainer: a compiler bug, never forced through.
    #[error("fp32 graph disagrees with the trainer on {rows} rows: {details}")]
    Fidelity { rows: usize, details: String },

    /// Verification needs rows; none were given and the algorithm cannot generate them.
    #[error("verification data: {0}")]
    Verification(String),

    /// Running the graph failed.
    #[error("running the graph: {0}")]
    Execution(String),

    /// A graph pass or quantization met a graph it cannot handle.
    #[error("graph: {0}")]
    Graph(String),

    /// `model.onnx` bytes do not decode.
    #[error("model.onnx is not a valid ONNX protobuf: {0}")]
    Decode(String),

    /// The package's destination holds something that is not a tern package, which the writer never replaces.
    #[error("{}: {holds}; a package is written only to a new folder, an empty one or an earlier package: {hint}", path.display())]
    OutputNotPackage {
        path: PathBuf,
        holds: String,
        hint: String,
    },

    /// A file system failure.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CompileError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        CompileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn artifact(algorithm: &str, message: impl Into<String>) -> Self {
        CompileError::Artifact {
            algorithm: algorithm.to_string(),
            message: message.into(),
        }
    }
}
