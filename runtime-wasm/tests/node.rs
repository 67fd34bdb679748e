//! The npm package's Node build (runtime-wasm/pkg/node, from scripts/build-wasm.sh) against the native runtime on
//! the same package and rows: every prediction method, every load path, and the exceptions bad input raises.
//! Needs node and the built package (scripts/setup-web.sh).

mod common;

use std::process::Command;

use serde_json::Value;
use tern_runtime::Package;

/// |a − b| ≤ 1e-5 · max(|b|, 1) for every number, everything else equal: the fp32 conformance criterion (tract's
/// wasm kernels may round differently from its native SIMD ones).
fn assert_close(have: &Value, want: &Value, path: &str) {
    match (have, want) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{path}: wasm {a}, native {b}"
            );
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: lengths differ");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_close(x, y, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(a), keys(b), "{path}: keys differ");
            for (key, value) in a {
                assert_close(value, &b[key], &format!("{path}.{key}"));
            }
        }
        _ => assert_eq!(have, want, "{path}"),
    }
}

fn native(package: &Package, body: &str, content_type: &str, accept: &str) -> Vec<u8> {
    package
        .invoke(body.as_bytes(), content_type, accept)
        .unwrap()
        .0
}

#[test]
fn node_build_answers_as_the_native_runtime_and_throws_its_messages() {
    let script = common::repo_root().join("runtime-wasm/node/api_check.mjs");
    common::built("node/tern_wasm.js");
    let work = tempfile::tempdir().unwrap();
    for (name, dir) in [
        (
            "linear",
            common::breast_cancer_package(&work.path().join("linear")),
        ),
        (
            "xgboost",
            common::xgboost_package(&work.path().join("xgboost")),
        ),
    ] {
        let archive = work.path().join(format!("{name}.tar"));
        let tar = Command::new("tar")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(&dir)
            .args(["manifest.json", "model.onnx"])
            .status()
            .unwrap();
        assert!(tar.success());
        let csv = common::unlabelled_rows(
            &common::repo_root().join("examples/breast_cancer/test.csv"),
            30,
        );
        let rows = work.path().join("rows.csv");
        std::fs::write(&rows, &csv).unwrap();
        let out = work.path().join(format!("{name}.json"));
        let run = Command::new("node")
            .arg(&script)
            .arg(&dir)
            .arg(&archive)
            .arg(&rows)
            .arg(&out)
            .output()
            .expect("node is required: run scripts/setup-web.sh");
        assert!(
            run.status.success(),
            "api_check.mjs failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let result: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let package = Package::load(&dir).unwrap();

        let json: Value =
            serde_json::from_slice(&native(&package, &csv, "text/csv", "application/json"))
                .unwrap();
        assert_eq!(json["predictions"].as_array().unwrap().len(), 30);
        let accepts_json = package
            .manifest()
            .accepts
            .iter()
            .any(|a| a == "application/json");
        for key in ["predict_csv", "predict", "predict_json"] {
            if key == "predict_json" && !accepts_json {
                let message = result[key]["error"].as_str().unwrap_or_default();
                assert!(
                    message.starts_with("unsupported Content-Type \"application/json\""),
                    "{name}.{key}: {}",
                    result[key]
                );
                continue;
            }
            assert_close(&result[key], &json, &format!("{name}.{key}"));
        }
        for (loader, response) in result["loaded"].as_object().unwrap() {
            assert_close(response, &json, &format!("{name}.loaded.{loader}"));
        }
        assert_eq!(result["loaded"].as_object().unwrap().len(), 6);
        let first_row = csv.lines().next().unwrap();
        let first: Value = serde_json::from_slice(&native(
            &package,
            &format!("{first_row}\n"),
            "text/csv",
            "application/json",
        ))
        .unwrap();
        if accepts_json {
            assert_close(
                &result["predict_json_text"],
                &first,
                &format!("{name}.predict_json_text"),
            );
        }
        let accept = result["invoke_accept"].as_str().unwrap();
        assert!(
            accept != "application/json" && !accept.contains("recordio"),
            "{accept}"
        );
        let lines = String::from_utf8(native(&package, &csv, "text/csv", accept)).unwrap();
        let wasm_lines = result["invoke"].as_str().unwrap();
        assert_eq!(wasm_lines.lines().count(), lines.lines().count());
        for (have, want) in wasm_lines.lines().zip(lines.lines()) {
            let parsed = |line: &str| -> Value {
                serde_json::from_str(line).unwrap_or_else(|_| {
                    line.split(',').map(|v| v.parse::<f64>().unwrap()).collect()
                })
            };
            assert_close(
                &parsed(have),
                &parsed(want),
                &format!("{name}.invoke {accept}"),
            );
        }
        let features: Vec<f32> = first_row.split(',').map(|v| v.parse().unwrap()).collect();
        let native_outputs = package.run(&features, 1).unwrap();
        let outputs = result["run"].as_array().unwrap();
        assert_eq!(outputs.len(), native_outputs.outputs.len());
        for (have, want) in outputs.iter().zip(&native_outputs.outputs) {
            assert_eq!(have["name"], want.name.as_str());
            assert_eq!(have["shape"], serde_json::json!(want.shape));
            let typed = match want.values {
                tern_runtime::OutputValues::F32(_) => "Float32Array",
                tern_runtime::OutputValues::I64(_) => "BigInt64Array",
                tern_runtime::OutputValues::Text(_) => "Array",
            };
            assert_eq!(have["type"], typed, "{name}.run {}", want.name);
            let values: Vec<f32> = have["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            for (a, b) in values.iter().zip(want.to_f32()) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{name}.run: {a} vs {b}"
                );
            }
        }

        assert_eq!(result["backend"], "wasm");
        // fromParts loads synchronously, so on the wasm backend, saying why.
        assert!(result["fallback_reason"]
            .as_str()
            .unwrap()
            .contains("load synchronously"));
        assert_eq!(result["predict_returns_promise"], true);
        assert_eq!(result["feature_dim"], 30);
        assert_eq!(result["webgpu"]["backend"], "wasm");
        assert!(result["webgpu"]["fallback_reason"]
            .as_str()
            .unwrap()
            .contains("load synchronously"));
        // The Node build has no WebGPU backend: never reaching wgpu, Model.load falls back with the reason.
        assert_eq!(result["webgpu_load"]["backend"], "wasm");
        assert!(result["webgpu_load"]["fallback_reason"]
            .as_str()
            .unwrap()
            .contains("no WebGPU backend"));
        assert_eq!(result["wasm_load"]["backend"], "wasm");
        assert_eq!(result["wasm_load"]["fallback_reason"], Value::Null);

        let errors = &result["errors"];
        let expect = |case: &str, parts: &[&str]| {
            let error = &errors[case];
            assert_eq!(error["threw"], true, "{name}.{case} did not throw");
            assert_eq!(error["is_error"], true, "{name}.{case}: not an Error");
            let message = error["message"].as_str().unwrap();
            for part in parts {
                assert!(
                    message.contains(part),
                    "{name}.{case}: {message:?} lacks {part:?}"
                );
            }
        };
        expect(
            "tampered_graph",
            &["model.onnx: sha256", "modified or truncated"],
        );
        expect(
            "bad_manifest",
            &["manifest.json", "manifest_version 99 is not supported"],
        );
        expect("short_row", &["record 1", "expected 30 features, found 2"]);
        expect("bad_field", &["request", "abc"]);
        expect(
            "wrong_length",
            &["features: 7 values given for 1 rows of 30 features"],
        );
        expect("bad_accept", &["unsupported Accept \"image/png\""]);
        expect("bad_backend", &["options.backend", "\"cuda\""]);
        expect(
            "missing_url",
            &["/nothing/manifest.json", "HTTP status 404"],
        );
        expect(
            "not_a_source",
            &["Model.load: expected a package folder URL"],
        );
        expect("not_an_archive", &["archive: byte offset 0", "checksum"]);
    }
}

/// The browser entry (pkg/web/index.js) refuses to load, saying why, in an engine without WebAssembly SIMD, and
/// re-exports the module's API (runtime-wasm/node/simd_check.mjs).
#[test]
fn browser_entry_refuses_engines_without_wasm_simd() {
    common::built("web/index.js");
    let script = common::repo_root().join("runtime-wasm/node/simd_check.mjs");
    let run = Command::new("node").arg(&script).output().unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}
