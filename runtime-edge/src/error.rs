//! The one error type of runtime-edge.

use std::path::PathBuf;

/// Configuring, loading or running the endpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The configuration is inconsistent (no variants, a duplicate variant name, a negative weight, …).
    #[error("configuration: {field}: {message}")]
    Config { field: String, message: String },
    /// An environment variable holds a value that cannot be used.
    #[error("environment variable {name}={value:?}: {message}")]
    Environment {
        name: &'static str,
        value: String,
        message: String,
    },
    /// A variant's package could not be loaded or verified.
    #[error("variant {variant:?}: package {}: {error}", package.display())]
    Package {
        variant: String,
        package: PathBuf,
        #[source]
        error: tern_runtime::RuntimeError,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}: {error}")]
    Bind {
        address: String,
        #[source]
        error: std::io::Error,
    },
    /// The HTTP server failed while running.
    #[error("the HTTP server failed: {error}")]
    Server {
        #[source]
        error: std::io::Error,
    },
}
