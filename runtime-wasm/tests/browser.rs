//! The web demo in a real browser: web/tests/demo.mjs drives Debian's Chromium (playwright-core, headless) through
//! the page — held-out rows, an edited row, test images and a digit drawn with the mouse, on the wasm backend and
//! on WebGPU (Chromium's `--enable-unsafe-webgpu` adapter, SwiftShader here; the steps must report `webgpu` whenever
//! the page has an adapter) — and every prediction the page showed must equal the native runtime's for the same
//! features (scores within 1e-5 relative, labels equal). The screenshot lands in web/test-results/demo.png. Needs scripts/setup-web.sh (chromium, npm tools,
//! the wasm build and the demo's packages).

mod common;

use std::process::Command;

use serde_json::{json, Value};
use tern_runtime::Package;

#[test]
fn demo_page_predicts_as_the_native_runtime() {
    let root = common::repo_root();
    let web = root.join("web");
    for needed in [
        "pkg/index.js",
        "models/digits/manifest.json",
        "models/breast_cancer/manifest.json",
    ] {
        assert!(
            web.join(needed).exists(),
            "web/{needed} is missing: run scripts/setup-web.sh (or scripts/build-web.sh)"
        );
    }
    assert!(
        web.join("node_modules/playwright-core").exists()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "playwright-core or /usr/bin/chromium is missing: run scripts/setup-web.sh"
    );
    let results_dir = web.join("test-results");
    std::fs::create_dir_all(&results_dir).unwrap();
    let (results, screenshot) = (results_dir.join("demo.json"), results_dir.join("demo.png"));
    let _ = std::fs::remove_file(&screenshot);
    let run = Command::new("node")
        .arg(web.join("tests/demo.mjs"))
        .arg(&results)
        .arg(&screenshot)
        .output()
        .expect("node is required: run scripts/setup-web.sh");
    assert!(
        run.status.success(),
        "demo.mjs failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
    let results: Value = serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();

    let packages = [
        ("digits", Package::load(&web.join("models/digits")).unwrap()),
        (
            "cancer",
            Package::load(&web.join("models/breast_cancer")).unwrap(),
        ),
    ];
    let cases = results["cases"].as_array().unwrap();
    let gpu_available = results["webgpu"]["adapter"] == true;
    if !gpu_available {
        eprintln!("NOTE: Chromium found no WebGPU adapter ({}); the webgpu steps ran on the wasm fallback", results["webgpu"]);
    }
    assert_eq!(cases.len(), 2 * (8 + 1 + 5 + 1), "{results}");
    for case in cases {
        let step = case["step"].as_str().unwrap();
        let package = &packages
            .iter()
            .find(|(name, _)| case["model"] == *name)
            .unwrap()
            .1;
        // Steps are "wasm: …" then "webgpu: …"; the page's WebGPU (SwiftShader here) must really run them.
        let asked = step.split(':').next().unwrap();
        let expected_backend = if asked == "webgpu" && !gpu_available {
            "wasm"
        } else {
            asked
        };
        assert_eq!(case["backend"], expected_backend, "{step}");
        let features: Vec<f32> = case["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(features.len(), package.manifest().feature_dim, "{step}");
        let request = json!({"instances": [{"features": features}]}).to_string();
        let (body, _) = package
            .invoke(request.as_bytes(), "application/json", "application/json")
            .unwrap();
        let native: Value = serde_json::from_slice(&body).unwrap();
        let (have, want) = (
            &case["response"]["predictions"][0],
            &native["predictions"][0],
        );
        assert_eq!(have["predicted_label"], want["predicted_label"], "{step}");
        let scores = |v: &Value| -> Vec<f64> {
            match &v["score"] {
                Value::Array(values) => values.iter().map(|s| s.as_f64().unwrap()).collect(),
                score => vec![score.as_f64().unwrap()],
            }
        };
        let (have, want) = (scores(have), scores(want));
        assert_eq!(have.len(), want.len(), "{step}");
        for (a, b) in have.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{step}: page {a}, native {b}"
            );
        }
        if step.contains("drawn") {
            assert!(
                features.iter().filter(|&&v| v > 0.0).count() >= 4,
                "{step}: the drawing reached no cells"
            );
            assert!(
                features
                    .iter()
                    .all(|&v| (0.0..=16.0).contains(&v) && v.fract() == 0.0),
                "{step}"
            );
        }
    }
    let status = results["status"].as_array().unwrap();
    assert!(
        status[0].as_str().unwrap().starts_with("running on wasm"),
        "{status:?}"
    );
    if gpu_available {
        assert!(
            status[1].as_str().unwrap().starts_with("running on webgpu"),
            "{status:?}"
        );
    } else {
        assert!(
            status[1].as_str().unwrap().contains("WebGPU asked"),
            "{status:?}"
        );
    }
    assert_eq!(
        results["console_errors"],
        json!([]),
        "the page logged errors"
    );
}
