//! Runs a package on raw features and writes every output as JSON: the conformance suite's runner for targets it
//! cannot run in process (aarch64 under qemu-user).
//!
//! `run_package <package-dir> <features.f32> <rows> <out.json>`: `features.f32` holds `rows × feature_dim`
//! little-endian float32 values, row-major; `out.json` receives
//! `{"outputs":[{"name":…,"shape":[…],"values":[…]}]}` (NaN written as `null`).

mod common;

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;
use tern_runtime::{OutputValues, Package};

fn run(args: &[String]) -> Result<(), String> {
    let [package, features, rows, out] = args else {
        return Err(
            "usage: run_package <package-dir> <features.f32> <rows> <out.json>".to_string(),
        );
    };
    let package = Package::load(Path::new(package)).map_err(|e| e.to_string())?;
    let rows: usize = rows
        .parse()
        .map_err(|e| format!("rows {rows:?}: expected a count ({e})"))?;
    let values = common::read_f32_file(features)?;
    let outputs = package.run(&values, rows).map_err(|e| e.to_string())?;
    let outputs: Vec<_> = outputs
        .outputs
        .iter()
        .map(|output| {
            let values = match &output.values {
                OutputValues::F32(values) => json!(values),
                OutputValues::I64(values) => json!(values),
                OutputValues::Text(values) => json!(values),
            };
            json!({"name": output.name, "shape": output.shape, "values": values})
        })
        .collect();
    let document = json!({ "outputs": outputs });
    std::fs::write(out, document.to_string()).map_err(|e| format!("{out}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("run_package: {message}");
            ExitCode::FAILURE
        }
    }
}
