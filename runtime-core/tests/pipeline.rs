//! Manifest version 2: packages whose requests are images or text. A package declares its request input's kind and
//! the steps that make the graph's input row (decode, resize, normalise an image; tokenise, hash or look up words),
//! and a postprocessing step that turns class indices into label text; runtime-core runs them on every engine and
//! answers with named fields. Expected values are computed here from the steps' definitions, not by calling them.

mod common;

use common::{hex_sha256, logistic_graph};
use prost::Message;
use tern_formats::recordio::{proto, FrameReader};
use tern_runtime::{EngineKind, Package, RuntimeError};

/// A manifest for `onnx` (a logistic classifier over `feature_dim` values) whose requests are `request_kind`,
/// preprocessed by `preprocess`, answering `{"label": text, "score": number}`.
fn manifest(
    onnx: &[u8],
    feature_dim: usize,
    request_kind: &str,
    preprocess: serde_json::Value,
    accepts: &[&str],
) -> serde_json::Value {
    serde_json::json!({
        "manifest_version": 2,
        "tern_version": "0.1.0",
        "algorithm": "test-classifier",
        "precision": "fp32",
        "targets": ["x86_64"],
        "feature_dim": feature_dim,
        "inputs": [{"name": "input", "dtype": "float32", "shape": [null, feature_dim]}],
        "outputs": [
            {"name": "score", "dtype": "float32", "shape": [null, 1]},
            {"name": "predicted_label", "dtype": "int64", "shape": [null]}
        ],
        "accepts": accepts,
        "produces": ["application/json", "application/jsonlines", "text/csv", "application/x-recordio-protobuf"],
        "label_map": ["ham", "spam"],
        "response": {"kind": "fields", "key": "predictions", "fields": [
            {"name": "label", "output": "label"},
            {"name": "score", "output": "score"}
        ]},
        "missing_values": false,
        "opsets": {"": 13},
        "graph_sha256": hex_sha256(onnx),
        "tolerance": {"absolute": 0.0, "relative": 0.0, "label_agreement": 1.0,
            "measured_absolute": 0.0, "measured_label_agreement": 1.0, "verified_rows": 0},
        "request": [{"name": request_kind.split(':').next().unwrap(), "kind": request_kind.split(':').nth(1).unwrap()}],
        "preprocess": preprocess,
        "postprocess": [{"op": "label_lookup", "output": "predicted_label", "into": "label"}]
    })
}

fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit).exp())
}

/// FNV-1a 32-bit, from its definition (offset basis 2166136261, prime 16777619).
fn fnv1a(text: &str) -> u32 {
    let mut hash: u32 = 2_166_136_261;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(16_777_619);
    }
    hash
}

const BUCKETS: usize = 16;

fn text_weights() -> Vec<f32> {
    // "spam" and "offer" push towards spam, everything else slightly away.
    let mut weights = vec![-0.25f32; BUCKETS];
    weights[(fnv1a("spam") % BUCKETS as u32) as usize] = 3.0;
    weights[(fnv1a("offer") % BUCKETS as u32) as usize] = 2.0;
    weights
}

fn text_package(engine: EngineKind) -> Package {
    let onnx = logistic_graph(&text_weights(), -0.5, "Sigmoid");
    let manifest = manifest(
        &onnx,
        BUCKETS,
        "text:string",
        serde_json::json!([
            {"op": "tokenize", "lowercase": true},
            {"op": "hash_tokens", "buckets": BUCKETS, "ngrams": 1}
        ]),
        &["text/plain", "application/json", "application/jsonlines"],
    );
    Package::from_bytes_with(manifest.to_string().as_bytes(), &onnx, engine).unwrap()
}

/// The expected (label, score) of `text` under [`text_package`].
fn text_expected(text: &str) -> (&'static str, f32) {
    let weights = text_weights();
    let logit: f32 = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| weights[(fnv1a(&t.to_lowercase()) % BUCKETS as u32) as usize])
        .sum::<f32>()
        - 0.5;
    let score = sigmoid(logit);
    (if score > 0.5 { "spam" } else { "ham" }, score)
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[test]
fn text_requests_are_tokenised_hashed_and_answered_with_label_text_on_every_engine() {
    // The empty line in the middle is a record of no words.
    let texts = ["SPAM offer, spam!", "", "see you at lunch"];
    for engine in [EngineKind::Tract, EngineKind::Interpreter] {
        let package = text_package(engine);
        let (body, mime) = package
            .invoke(
                texts.join("\n").as_bytes(),
                "text/plain",
                "application/json",
            )
            .unwrap();
        assert_eq!(mime, "application/json");
        let predictions = json(&body)["predictions"].as_array().unwrap().clone();
        assert_eq!(predictions.len(), texts.len(), "{engine:?}");
        for (text, prediction) in texts.iter().zip(&predictions) {
            let (label, score) = text_expected(text);
            assert_eq!(prediction["label"], label, "{engine:?} {text:?}");
            let have = prediction["score"].as_f64().unwrap() as f32;
            assert!(
                (have - score).abs() < 1e-6,
                "{engine:?} {text:?}: {have} vs {score}"
            );
        }
        // The same records as a JSON document and as JSON lines answer the same.
        let document = serde_json::json!({"instances": texts}).to_string();
        let (from_json, _) = package
            .invoke(document.as_bytes(), "application/json", "application/json")
            .unwrap();
        assert_eq!(from_json, body, "{engine:?}");
        let lines: String = texts
            .iter()
            .map(|t| format!("{}\n", serde_json::json!({"source": t})))
            .collect();
        let (from_lines, _) = package
            .invoke(
                lines.as_bytes(),
                "application/jsonlines",
                "application/json",
            )
            .unwrap();
        assert_eq!(from_lines, body, "{engine:?}");
    }
}

#[test]
fn label_text_in_every_response_type() {
    let package = text_package(EngineKind::Tract);
    let (label, score) = text_expected("spam, spam");
    let (csv, _) = package
        .invoke(b"spam, spam\n", "text/plain", "text/csv")
        .unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let (csv_label, csv_score) = csv.trim_end().split_once(',').unwrap();
    assert_eq!(csv_label, label, "{csv}");
    assert!(
        (csv_score.parse::<f32>().unwrap() - score).abs() < 1e-6,
        "{csv}"
    );
    let (lines, _) = package
        .invoke(b"spam, spam\n", "text/plain", "application/jsonlines")
        .unwrap();
    assert_eq!(json(lines.trim_ascii_end())["label"], label);
    let (recordio, _) = package
        .invoke(
            b"spam, spam\n",
            "text/plain",
            "application/x-recordio-protobuf",
        )
        .unwrap();
    let mut frames = FrameReader::new(&recordio[..], "response");
    let record = proto::Record::decode(frames.next_frame().unwrap().unwrap()).unwrap();
    let Some(proto::value::Kind::Bytes(bytes)) = &record.label["label"].value else {
        panic!("label is not a Bytes tensor: {record:?}");
    };
    assert_eq!(bytes.value, [label.as_bytes().to_vec()]);
    assert!(frames.next_frame().unwrap().is_none());
}

#[test]
fn text_packages_refuse_feature_rows_and_bad_records_by_name() {
    let package = text_package(EngineKind::Tract);
    let error = package
        .invoke(b"1,2,3\n", "text/csv", "application/json")
        .unwrap_err();
    assert!(
        matches!(error, RuntimeError::UnsupportedContentType { .. })
            && error.to_string().contains("text/plain"),
        "{error}"
    );
    let error = package
        .invoke(
            b"{\"instances\": [\"fine\", 7]}",
            "application/json",
            "application/json",
        )
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("record 2") && error.contains("text") && error.contains("a number"),
        "{error}"
    );
}

/// An 8×8 RGB PNG: the left half red (200, 0, 0), the right half blue (0, 0, 100).
fn two_colour_png() -> Vec<u8> {
    let image = image::RgbImage::from_fn(8, 8, |x, _| {
        if x < 4 {
            image::Rgb([200, 0, 0])
        } else {
            image::Rgb([0, 0, 100])
        }
    });
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageOutputFormat::Png,
        )
        .unwrap();
    bytes
}

/// 2×2 RGB, channels first: 12 values.
const IMAGE_DIM: usize = 12;

fn image_weights() -> Vec<f32> {
    // Red in the left column pushes towards class 1 ("spam"), blue in the right column away from it.
    let mut weights = vec![0.0f32; IMAGE_DIM];
    weights[0] = 1.0; // red at row 0, column 0
    weights[2] = 1.0; // red at row 1, column 0
    weights[8 + 1] = -0.5; // blue at row 0, column 1
    weights
}

fn image_package(engine: EngineKind) -> Package {
    let onnx = logistic_graph(&image_weights(), 0.0, "Sigmoid");
    let manifest = manifest(
        &onnx,
        IMAGE_DIM,
        "image:image_bytes",
        serde_json::json!([
            {"op": "decode_image", "channels": 3},
            {"op": "resize", "width": 2, "height": 2, "filter": "nearest"},
            {"op": "normalize", "scale": 1.0 / 255.0, "mean": [0.5, 0.0, 0.0],
             "std": [0.5, 1.0, 0.25], "layout": "chw"}
        ]),
        &["image/png", "image/jpeg", "application/x-image"],
    );
    Package::from_bytes_with(manifest.to_string().as_bytes(), &onnx, engine).unwrap()
}

#[test]
fn images_are_decoded_resized_and_normalised_on_every_engine() {
    // Nearest-neighbour 8×8 → 2×2 keeps one pixel per 4×4 block: red on the left, blue on the right. Channels
    // first: red plane [r00, r01, r10, r11], green plane, blue plane.
    let red = (200.0 / 255.0 - 0.5) / 0.5;
    let blue = (100.0 / 255.0 - 0.0) / 0.25;
    let no_red = (0.0 - 0.5) / 0.5;
    let features = [
        red, no_red, red, no_red, // red plane, rows (0,0) (0,1) (1,0) (1,1)
        0.0, 0.0, 0.0, 0.0, // green plane
        0.0, blue, 0.0, blue, // blue plane
    ];
    let weights = image_weights();
    let logit: f32 = features.iter().zip(&weights).map(|(x, w)| x * w).sum();
    let score = sigmoid(logit);
    for engine in [EngineKind::Tract, EngineKind::Interpreter] {
        let package = image_package(engine);
        for content_type in ["image/png", "application/x-image"] {
            let (body, _) = package
                .invoke(&two_colour_png(), content_type, "application/json")
                .unwrap();
            let prediction = &json(&body)["predictions"][0];
            let have = prediction["score"].as_f64().unwrap() as f32;
            assert!((have - score).abs() < 1e-6, "{engine:?}: {have} vs {score}");
            assert_eq!(
                prediction["label"],
                if score > 0.5 { "spam" } else { "ham" }
            );
        }
    }
}

#[test]
fn a_corrupt_image_is_refused_naming_the_record_and_input() {
    let package = image_package(EngineKind::Tract);
    let mut truncated = two_colour_png();
    truncated.truncate(truncated.len() / 2);
    for body in [&b"not an image"[..], &truncated[..], &[][..]] {
        let error = package
            .invoke(body, "image/png", "application/json")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("record 1") && error.contains("image"),
            "{error}"
        );
    }
}

#[test]
fn step_chains_are_checked_at_load_naming_the_step() {
    let onnx = logistic_graph(&text_weights(), 0.0, "Sigmoid");
    let broken = [
        // Hashing before tokenising.
        (
            serde_json::json!([{"op": "hash_tokens", "buckets": BUCKETS, "ngrams": 1}]),
            "preprocess[0]",
        ),
        // Steps that never reach float values.
        (
            serde_json::json!([{"op": "tokenize", "lowercase": true}]),
            "preprocess",
        ),
        // A zero-sized hash.
        (
            serde_json::json!([{"op": "tokenize", "lowercase": true},
                               {"op": "hash_tokens", "buckets": 0, "ngrams": 1}]),
            "preprocess[1]",
        ),
    ];
    for (steps, field) in broken {
        let manifest = manifest(&onnx, BUCKETS, "text:string", steps, &[]);
        let error = Package::from_bytes(manifest.to_string().as_bytes(), &onnx)
            .unwrap_err()
            .to_string();
        assert!(error.contains(&format!("field {field}:")), "{error}");
    }
    // A label lookup without a label map.
    let mut manifest = manifest(
        &onnx,
        BUCKETS,
        "text:string",
        serde_json::json!([{"op": "tokenize", "lowercase": true},
                           {"op": "hash_tokens", "buckets": BUCKETS, "ngrams": 1}]),
        &[],
    );
    manifest["label_map"] = serde_json::Value::Null;
    let error = Package::from_bytes(manifest.to_string().as_bytes(), &onnx)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("postprocess[0]") && error.contains("label_map"),
        "{error}"
    );
}
