//! The `wasm32-wasip1` runner (runtime-wasm/pkg/wasi/tern-wasi.wasm, from scripts/build-wasm.sh) under wasmtime (the
//! PyPI engine in .venv, runtime-wasm/wasi/run_wasmtime.py): a request on stdin answers on stdout as the native
//! runtime answers it, and a bad request exits 1 with the runtime's message. Needs scripts/setup-web.sh.

mod common;

use std::process::Command;

use serde_json::Value;
use tern_runtime::Package;

fn run_wasi(dir: &std::path::Path, request: &[u8], options: &[&str]) -> (i32, Vec<u8>, String) {
    let wasm = common::built("wasi/tern-wasi.wasm");
    let python = common::repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh",
        python.display()
    );
    let work = tempfile::tempdir().unwrap();
    let (input, output) = (work.path().join("request"), work.path().join("response"));
    std::fs::write(&input, request).unwrap();
    let run = Command::new(python)
        .arg(common::repo_root().join("runtime-wasm/wasi/run_wasmtime.py"))
        .arg(&wasm)
        .arg(dir)
        .arg(&input)
        .arg(&output)
        .args(options)
        .output()
        .unwrap();
    (
        run.status.code().unwrap_or(-1),
        std::fs::read(&output).unwrap_or_default(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    )
}

#[test]
fn wasi_runner_under_wasmtime_answers_as_the_native_runtime() {
    let work = tempfile::tempdir().unwrap();
    let dir = common::breast_cancer_package(&work.path().join("package"));
    let package = Package::load(&dir).unwrap();
    let csv = common::unlabelled_rows(
        &common::repo_root().join("examples/breast_cancer/test.csv"),
        50,
    );

    let (code, response, stderr) = run_wasi(&dir, csv.as_bytes(), &[]);
    assert_eq!(code, 0, "tern-wasi failed: {stderr}");
    let (native, _) = package
        .invoke(csv.as_bytes(), "text/csv", "application/json")
        .unwrap();
    let (have, want): (Value, Value) = (
        serde_json::from_slice(&response).unwrap(),
        serde_json::from_slice(&native).unwrap(),
    );
    let (have, want) = (
        have["predictions"].as_array().unwrap(),
        want["predictions"].as_array().unwrap(),
    );
    assert_eq!(have.len(), 50);
    for (row, (a, b)) in have.iter().zip(want).enumerate() {
        assert_eq!(a["predicted_label"], b["predicted_label"], "row {row}");
        let (a, b) = (a["score"].as_f64().unwrap(), b["score"].as_f64().unwrap());
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "row {row}: wasi {a}, native {b}"
        );
    }

    let (code, response, stderr) =
        run_wasi(&dir, csv.as_bytes(), &["--accept", "application/jsonlines"]);
    assert_eq!(code, 0, "tern-wasi failed: {stderr}");
    assert_eq!(String::from_utf8(response).unwrap().lines().count(), 50);

    let (code, _, stderr) = run_wasi(&dir, b"1.0,2.0\n", &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("tern-wasi: request: record 1")
            && stderr.contains("expected 30 features, found 2"),
        "{stderr}"
    );
    let (code, _, stderr) = run_wasi(&dir, csv.as_bytes(), &["--content-type", "image/png"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("unsupported Content-Type \"image/png\""),
        "{stderr}"
    );
}
