//! tern's runtime core: the package format (`model.onnx` + `manifest.json`), its validation, execution, and
//! SageMaker-shaped request decoding and response encoding. Builds for x86_64, aarch64 and wasm32.

pub mod manifest;

pub use manifest::{Manifest, Precision};
