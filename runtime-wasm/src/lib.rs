//! tern packages in the browser, in Node and in WASI hosts.
//!
//! The crate is a thin shell over [`tern_runtime::Package`]: on `wasm32-unknown-unknown` it exports a wasm-bindgen
//! API (the npm package `scripts/build-wasm.sh` writes to `runtime-wasm/pkg/`), and its `tern-wasi` binary answers
//! one request on stdin for WASI hosts. Everything the bindings do is a plain function here, tested natively.
//!
//! ```js
//! import init, { Model } from "./pkg/web/tern_wasm.js";
//! await init();
//! const model = await Model.load("models/breast_cancer/"); // a package folder URL, a .tar URL, or bytes
//! await model.predictCsv("17.99,10.38,…\n");                // {predictions: [{score, predicted_label}]}
//! model.backend;                                          // "webgpu" or "wasm" (then model.fallbackReason says why)
//! ```
//!
//! Backends: the wasm CPU (`"wasm"`) runs every graph the compiler emits, on tern's interpreter
//! (`tern_runtime::interpreter`) or, with the `tract` feature (the default; Node's and WASI's builds), on tract.
//! The browser build leaves tract out: its module is a third of the size. Built with the `webgpu` feature (browsers
//! only), `Model.load` with `backend: "auto"` (the default) or `"webgpu"` runs graphs of tern-gpu's dense op subset
//! on the browser's GPU (`"webgpu"`) when `navigator.gpu` exists and a device opens, and falls back per graph to
//! the wasm CPU otherwise, saying why in `fallbackReason`. Node never reaches the GPU code (it has no
//! `navigator.gpu`). Every prediction method returns a Promise on both backends.

pub mod archive;
pub mod response;
pub mod wasi;

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod bindings;

use serde_json::Value;
use tern_runtime::{Outputs, Package, RuntimeError};

/// What the browser API can fail with; at the JS boundary each becomes an exception carrying this message.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// Loading, verifying or running the package failed (runtime-core's message, naming file, record and field).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A package archive could not be read.
    #[error("{source_name}: byte offset {offset}: {message}")]
    Archive {
        source_name: String,
        offset: usize,
        message: String,
    },
    /// A package source (URL, bytes, options) is not one the loader takes, or fetching it failed.
    #[error("{source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },
    /// The WebGPU backend failed while running a graph it had accepted (a device loss, an out-of-memory).
    #[error("WebGPU backend: {message}")]
    Gpu { message: String },
    /// An argument of an API call is outside its contract.
    #[error("{argument}: {message}")]
    Argument {
        argument: &'static str,
        message: String,
    },
}

/// The backend a model runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The wasm CPU: tern's interpreter, or tract in a build with the `tract` feature.
    Wasm,
    /// tern-gpu's WGSL kernels on the browser's GPU (WebGPU).
    WebGpu,
}

impl Backend {
    /// The name `model.backend` reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Wasm => "wasm",
            Backend::WebGpu => "webgpu",
        }
    }
}

/// The backend a load asks for (`options.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendRequest {
    /// WebGPU where the browser, the device and the graph allow it, else the wasm CPU (the default).
    Auto,
    /// The wasm CPU, without trying WebGPU.
    Wasm,
    /// WebGPU, falling back to the wasm CPU (with the reason) where it cannot run.
    WebGpu,
}

impl BackendRequest {
    /// Parses `options.backend`: `"auto"` (or empty), `"wasm"` or `"webgpu"`; anything else is a
    /// [`WasmError::Argument`].
    pub fn parse(requested: &str) -> Result<BackendRequest, WasmError> {
        match requested {
            "" | "auto" => Ok(BackendRequest::Auto),
            "wasm" => Ok(BackendRequest::Wasm),
            "webgpu" => Ok(BackendRequest::WebGpu),
            other => Err(WasmError::Argument {
                argument: "options.backend",
                message: format!("expected \"auto\", \"wasm\" or \"webgpu\", found {other:?}"),
            }),
        }
    }

    /// Whether the load tries the WebGPU backend.
    pub fn tries_webgpu(self) -> bool {
        self != BackendRequest::Wasm
    }
}

/// The backend a load asked for and the one it got, with the reason when WebGPU was wanted and not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendChoice {
    pub backend: Backend,
    pub fallback_reason: Option<String>,
}

/// Why a build without the `webgpu` feature (the Node build, or a CPU-only browser build) runs on the wasm CPU.
pub const NO_WEBGPU_BUILD: &str =
    "this build of tern-wasm has no WebGPU backend (built without the `webgpu` feature); the graph runs on the \
     wasm CPU backend";

/// The backend a load ends on: `webgpu` is the outcome of trying WebGPU (`None`: not tried, because the request is
/// `wasm` or this build has no WebGPU backend; `Some(Err(reason))`: it could not run, and why).
pub fn resolve_backend(
    request: BackendRequest,
    webgpu: Option<Result<(), String>>,
) -> BackendChoice {
    match (request, webgpu) {
        (BackendRequest::Wasm, _) => BackendChoice {
            backend: Backend::Wasm,
            fallback_reason: None,
        },
        (_, Some(Ok(()))) => BackendChoice {
            backend: Backend::WebGpu,
            fallback_reason: None,
        },
        (_, Some(Err(reason))) => BackendChoice {
            backend: Backend::Wasm,
            fallback_reason: Some(reason),
        },
        (_, None) => BackendChoice {
            backend: Backend::Wasm,
            fallback_reason: Some(NO_WEBGPU_BUILD.to_string()),
        },
    }
}

/// Resolves a requested backend without trying WebGPU (synchronous loads, builds without the `webgpu` feature):
/// `"auto"`, `"wasm"` and `"webgpu"` all run on the wasm CPU, `auto` and `webgpu` with the reason.
pub fn choose_backend(requested: &str) -> Result<BackendChoice, WasmError> {
    Ok(resolve_backend(BackendRequest::parse(requested)?, None))
}

/// Loads a package from a tar archive's bytes (see [`archive::read_package`]).
pub fn package_from_archive(bytes: &[u8], source: &str) -> Result<Package, WasmError> {
    let files = archive::read_package(bytes, source)?;
    Ok(Package::from_bytes(&files.manifest, &files.graph)?)
}

/// Predicts `rows` rows of `features` (row-major, `feature_dim` values per row) and returns the SageMaker JSON
/// response the native runtime gives for the same rows (`{"predictions":[…]}`), parsed.
pub fn predict_features(
    package: &Package,
    features: &[f32],
    rows: usize,
) -> Result<Value, WasmError> {
    parse_response(&predict_features_json(package, features, rows)?)
}

/// The JSON text of [`predict_features`]: byte for byte what `POST /invocations` answers with
/// `Accept: application/json` for the same rows sent as dense float32 records, errors included (a refused value
/// names the request's record and feature). The rows run through [`Package::run`] and
/// [`Package::encode_response`] directly, without encoding them into a request body.
pub fn predict_features_json(
    package: &Package,
    features: &[f32],
    rows: usize,
) -> Result<Vec<u8>, WasmError> {
    check_features(package, features, rows)?;
    let response_type = package.response_type("application/json")?;
    let outputs = run_as_request(package, features, rows)?;
    Ok(package.encode_response(&outputs, 0..rows, response_type)?)
}

/// The rows of [`predict_features`] run through [`Package::run`] (a refused value names the request's record and
/// feature, as `/invocations` does), their response in columns ([`response::response_columns`]).
pub fn predict_features_columns(
    package: &Package,
    features: &[f32],
    rows: usize,
) -> Result<response::ResponseColumns, WasmError> {
    check_features(package, features, rows)?;
    let outputs = run_as_request(package, features, rows)?;
    response::response_columns(package, &outputs)
}

/// [`Package::run`], with a refused value's error naming the request's record (as `/invocations` names it) rather
/// than the run's input.
fn run_as_request(package: &Package, features: &[f32], rows: usize) -> Result<Outputs, WasmError> {
    package.run(features, rows).map_err(|error| {
        WasmError::Runtime(match error {
            RuntimeError::Record {
                record,
                field,
                message,
                ..
            } => RuntimeError::Record {
                source_name: "request".to_string(),
                record,
                field,
                message,
            },
            other => other,
        })
    })
}

/// The SageMaker JSON response for every row of `outputs` (from [`Package::run`] or another backend's run of the
/// same graph), as [`predict_request`] answers.
pub fn respond_json(package: &Package, outputs: &Outputs) -> Result<Value, WasmError> {
    parse_response(&respond_json_text(package, outputs)?)
}

/// The JSON text of [`respond_json`].
pub fn respond_json_text(package: &Package, outputs: &Outputs) -> Result<Vec<u8>, WasmError> {
    let response_type = package.response_type("application/json")?;
    Ok(package.encode_response(outputs, 0..outputs.rows, response_type)?)
}

/// Answers a request body of `content_type` with the SageMaker JSON response (as `POST /invocations` with
/// `Accept: application/json`).
pub fn predict_request(
    package: &Package,
    body: &[u8],
    content_type: &str,
) -> Result<Value, WasmError> {
    let (response, _) = package.invoke(body, content_type, "application/json")?;
    parse_response(&response)
}

pub(crate) fn parse_response(body: &[u8]) -> Result<Value, WasmError> {
    serde_json::from_slice(body).map_err(|e| {
        WasmError::Runtime(RuntimeError::Output {
            output: "response".to_string(),
            message: format!("the JSON response does not parse: {e}"),
        })
    })
}

/// Checks that `features` holds `rows` whole rows for `package`.
pub fn check_features(package: &Package, features: &[f32], rows: usize) -> Result<(), WasmError> {
    let dim = package.manifest().feature_dim;
    if rows.checked_mul(dim) != Some(features.len()) {
        return Err(WasmError::Argument {
            argument: "features",
            message: format!(
                "{} values given for {rows} rows of {dim} features (expected {})",
                features.len(),
                rows.saturating_mul(dim)
            ),
        });
    }
    Ok(())
}
