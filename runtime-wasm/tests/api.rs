//! The wasm API's plain functions, run natively: predictions equal runtime-core's `/invocations` answers for the
//! same rows, archives load, the WASI runner streams a request, and bad input fails with a clear message.

mod common;

use std::process::Command;

use serde_json::Value;
use tern_runtime::Package;
use tern_wasm::wasi::{parse_arguments, serve, Arguments};
use tern_wasm::{
    choose_backend, package_from_archive, predict_features, predict_request, resolve_backend,
    respond_json, Backend, BackendChoice, BackendRequest,
};

fn native_json(package: &Package, csv: &str) -> Value {
    let (body, _) = package
        .invoke(csv.as_bytes(), "text/csv", "application/json")
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

fn csv_features(csv: &str) -> (Vec<f32>, usize) {
    let features: Vec<f32> = csv
        .lines()
        .flat_map(|line| line.split(',').map(|v| v.parse::<f32>().unwrap()))
        .collect();
    (features, csv.lines().count())
}

#[test]
fn predict_features_equals_the_native_invocations_response() {
    let work = tempfile::tempdir().unwrap();
    let root = common::repo_root();
    for dir in [
        common::breast_cancer_package(&work.path().join("linear")),
        common::xgboost_package(&work.path().join("xgboost")),
    ] {
        let package = Package::load(&dir).unwrap();
        let csv = common::unlabelled_rows(&root.join("examples/breast_cancer/test.csv"), 40);
        let (features, rows) = csv_features(&csv);
        let expected = native_json(&package, &csv);
        assert_eq!(expected["predictions"].as_array().unwrap().len(), 40);
        assert_eq!(
            predict_features(&package, &features, rows).unwrap(),
            expected
        );
        assert_eq!(
            predict_request(&package, csv.as_bytes(), "text/csv").unwrap(),
            expected
        );
        // The WebGPU path encodes its own run's outputs: the same response for the same outputs.
        let outputs = package.run(&features, rows).unwrap();
        assert_eq!(respond_json(&package, &outputs).unwrap(), expected);
        let message = predict_features(&package, &features[1..], rows)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("1199 values given for 40 rows of 30 features"),
            "{message}"
        );
    }
}

#[test]
fn archives_load_and_damaged_ones_are_refused_with_the_runtime_message() {
    let work = tempfile::tempdir().unwrap();
    let dir = common::breast_cancer_package(&work.path().join("package"));
    let archive = work.path().join("package.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(work.path())
        .arg("package")
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&archive).unwrap();
    let from_archive = package_from_archive(&bytes, "package.tar").unwrap();
    let native = Package::load(&dir).unwrap();
    assert_eq!(from_archive.manifest(), native.manifest());

    // Flip one byte inside model.onnx's data: the manifest's sha256 no longer matches.
    let graph = std::fs::read(dir.join("model.onnx")).unwrap();
    let at = bytes
        .windows(graph.len().min(64))
        .position(|w| w == &graph[..graph.len().min(64)])
        .unwrap();
    let mut damaged = bytes.clone();
    damaged[at + 10] ^= 0xff;
    let message = package_from_archive(&damaged, "package.tar")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("model.onnx: sha256") && message.contains("modified or truncated"),
        "{message}"
    );
}

#[test]
fn the_wasi_runner_streams_a_request_as_the_endpoint_answers_it() {
    let work = tempfile::tempdir().unwrap();
    let dir = common::breast_cancer_package(&work.path().join("package"));
    let package = Package::load(&dir).unwrap();
    let csv = common::unlabelled_rows(
        &common::repo_root().join("examples/breast_cancer/test.csv"),
        25,
    );
    let args: Vec<String> = [dir.to_str().unwrap(), "--accept", "application/jsonlines"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let arguments = parse_arguments(&args).unwrap();
    assert_eq!(
        arguments,
        Arguments {
            package: dir.display().to_string(),
            content_type: "text/csv".to_string(),
            accept: "application/jsonlines".to_string(),
        }
    );
    let mut response = Vec::new();
    let mime = serve(&arguments, csv.as_bytes(), &mut response).unwrap();
    assert_eq!(mime, "application/jsonlines");
    let (expected, _) = package
        .invoke(csv.as_bytes(), "text/csv", "application/jsonlines")
        .unwrap();
    assert_eq!(response, expected);

    let mut sink = Vec::new();
    let message = serve(&arguments, &b"1.0,2.0\n"[..], &mut sink)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("record 1") && message.contains("expected 30 features, found 2"),
        "{message}"
    );
    let message = parse_arguments(&["--accept".to_string()])
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("--accept: needs a value"), "{message}");
    let message = parse_arguments(&[]).unwrap_err().to_string();
    assert!(message.starts_with("<package-dir>: missing"), "{message}");
}

#[test]
fn backends_resolve_and_webgpu_falls_back_with_its_reason() {
    assert_eq!(
        choose_backend("wasm").unwrap(),
        BackendChoice {
            backend: Backend::Wasm,
            fallback_reason: None
        }
    );
    for requested in ["", "auto", "webgpu"] {
        let choice = choose_backend(requested).unwrap();
        assert_eq!(choice.backend.name(), "wasm");
        assert!(
            choice
                .fallback_reason
                .unwrap()
                .contains("no WebGPU backend"),
            "{requested}"
        );
    }
    let message = choose_backend("cuda").unwrap_err().to_string();
    assert_eq!(
        message,
        "options.backend: expected \"auto\", \"wasm\" or \"webgpu\", found \"cuda\""
    );
    for request in [BackendRequest::Auto, BackendRequest::WebGpu] {
        assert!(request.tries_webgpu());
        assert_eq!(
            resolve_backend(request, Some(Ok(()))),
            BackendChoice {
                backend: Backend::WebGpu,
                fallback_reason: None
            }
        );
        let refused = resolve_backend(request, Some(Err("no adapter".to_string())));
        assert_eq!(refused.backend, Backend::Wasm);
        assert_eq!(refused.fallback_reason.as_deref(), Some("no adapter"));
    }
    assert!(!BackendRequest::Wasm.tries_webgpu());
    assert_eq!(
        resolve_backend(BackendRequest::Wasm, Some(Ok(())))
            .backend
            .name(),
        "wasm"
    );
    assert_eq!(Backend::WebGpu.name(), "webgpu");
}
