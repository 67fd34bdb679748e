//! The one error type of runtime-core: which file, record or field is at fault, and what was expected.

use tern_formats::FormatError;

/// Loading, verifying or running a package, or decoding a request / encoding a response, failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A package file could not be read (missing, unreadable).
    #[error("{path}: cannot read: {error}")]
    Read {
        path: String,
        #[source]
        error: std::io::Error,
    },
    /// `manifest.json` is not valid JSON or does not follow the manifest schema.
    #[error("{file}: {message}")]
    Manifest { file: String, message: String },
    /// `manifest.json` declares a schema version this build does not read.
    #[error(
        "{file}: manifest_version {found} is not supported; this build reads versions 1 to {expected}"
    )]
    ManifestVersion {
        file: String,
        found: u32,
        expected: u32,
    },
    /// `model.onnx` does not hash to the manifest's `graph_sha256`: the graph was modified or truncated.
    #[error(
        "{file}: sha256 {actual} ({bytes} bytes) does not match the manifest's graph_sha256 {expected}: \
         the graph was modified or truncated"
    )]
    GraphDigest {
        file: String,
        expected: String,
        actual: String,
        bytes: usize,
    },
    /// The manifest and the graph disagree (an input or output the manifest names is not in the graph, …).
    #[error("{file}: field {field}: {message}")]
    Schema {
        file: String,
        field: String,
        message: String,
    },
    /// The graph could not be parsed, typed or optimised by tract.
    #[error("{file}: cannot prepare the graph: {message}")]
    Graph { file: String, message: String },
    /// A request's or response's content type is not one the package handles (an endpoint answers 415).
    #[error("unsupported {header} {content_type:?}; expected one of: {expected}")]
    UnsupportedContentType {
        /// `Content-Type` or `Accept`.
        header: &'static str,
        content_type: String,
        expected: String,
    },
    /// The request body is malformed (names the record and field).
    #[error(transparent)]
    Request(#[from] FormatError),
    /// A request record does not fit the package's input.
    #[error("{source_name}: record {record}: field {field}: {message}")]
    Record {
        source_name: String,
        /// 1-based record number within the request.
        record: u64,
        field: String,
        message: String,
    },
    /// Running the graph failed.
    #[error("running the graph failed: {message}")]
    Run { message: String },
    /// The graph returned something the manifest does not describe.
    #[error("graph output {output}: {message}")]
    Output { output: String, message: String },
    /// Writing the response failed.
    #[error("writing the response failed: {error}")]
    Write {
        #[source]
        error: std::io::Error,
    },
}
