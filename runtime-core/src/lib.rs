//! tern's runtime core: the package format (`model.onnx` + `manifest.json`), its validation, execution, and
//! SageMaker-shaped request decoding and response encoding. Builds for x86_64, aarch64 and wasm32.
//!
//! ```no_run
//! use tern_runtime::Package;
//! # fn main() -> Result<(), tern_runtime::RuntimeError> {
//! let package = Package::load(std::path::Path::new("pkg"))?; // sha256, schema and graph checked here
//! let (body, content_type) = package.invoke(b"1.5,16.0,14.0\n", "text/csv", "application/json")?;
//! println!("{content_type}: {}", String::from_utf8_lossy(&body));
//! # Ok(()) }
//! ```

pub mod error;
pub mod gpu_ops;
pub mod interpreter;
pub mod invoke;
pub mod manifest;
pub mod onnx;
pub mod ops;
pub mod package;
pub mod plan;
pub mod raw_request;
pub mod row_kernels;
pub mod small_matmul;
pub mod steps;

pub use error::RuntimeError;
pub use invoke::{DecodedRequest, ResponseType};
pub use manifest::{
    InputKind, Manifest, Pipeline, PostStep, Precision, RequestInput, ResponseShape, Step,
    TensorSpec, Tolerance,
};
pub use package::{EngineKind, Output, OutputValues, Outputs, Package, BATCH_ROWS};
