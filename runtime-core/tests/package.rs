//! Package loading, verification and `/invocations` on hand-built graphs: a logistic-regression binary classifier
//! (MatMul, Add, Sigmoid, Greater, Cast, Squeeze) and a tree-ensemble regressor (the op runtime-core registers).

mod common;

use common::{hex_sha256, logistic_graph, model, node, value_info};
use prost::Message;
use tern_formats::recordio::{proto, RecordIoWriter};
use tern_runtime::{EngineKind, Package, RuntimeError};
use tract_onnx::pb::{AttributeProto, GraphProto};

const WEIGHTS: [f32; 3] = [0.5, -1.0, 2.0];
const BIAS: f32 = 0.25;

/// score = sigmoid(x·w + b) as [N,1]; predicted_label = int64(score > 0.5) as [N].
fn binary_classifier() -> Vec<u8> {
    binary_classifier_with("Sigmoid")
}

/// [`binary_classifier`] with `activation` in place of `Sigmoid`.
fn binary_classifier_with(activation: &str) -> Vec<u8> {
    logistic_graph(&WEIGHTS, BIAS, activation)
}

/// One stump on feature 1 (`x1 <= 0`, NaN → true): 10 on the true side, 20 on the false side, base 0.5.
fn stump_regressor() -> Vec<u8> {
    let ints = |name: &str, v: &[i64]| AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    };
    let floats = |name: &str, v: &[f32]| AttributeProto {
        name: name.into(),
        r#type: 6,
        floats: v.to_vec(),
        ..Default::default()
    };
    let mut ensemble = node(
        "TreeEnsembleRegressor",
        &["input"],
        &["score"],
        vec![
            ints("nodes_treeids", &[0, 0, 0]),
            ints("nodes_nodeids", &[0, 1, 2]),
            ints("nodes_featureids", &[1, 0, 0]),
            floats("nodes_values", &[0.0, 0.0, 0.0]),
            AttributeProto {
                name: "nodes_modes".into(),
                r#type: 8,
                strings: vec![b"BRANCH_LEQ".to_vec(), b"LEAF".to_vec(), b"LEAF".to_vec()],
                ..Default::default()
            },
            ints("nodes_truenodeids", &[1, 0, 0]),
            ints("nodes_falsenodeids", &[2, 0, 0]),
            ints("nodes_missing_value_tracks_true", &[1, 0, 0]),
            ints("target_treeids", &[0, 0]),
            ints("target_nodeids", &[1, 2]),
            ints("target_ids", &[0, 0]),
            floats("target_weights", &[10.0, 20.0]),
            floats("base_values", &[0.5]),
            AttributeProto {
                name: "n_targets".into(),
                r#type: 2,
                i: 1,
                ..Default::default()
            },
        ],
    );
    ensemble.domain = "ai.onnx.ml".into();
    model(GraphProto {
        name: "stump".into(),
        node: vec![ensemble],
        input: vec![value_info("input", 1, &[None, Some(3)])],
        output: vec![value_info("score", 1, &[None, Some(1)])],
        ..Default::default()
    })
}

fn manifest(onnx: &[u8], xgboost: bool) -> serde_json::Value {
    let (outputs, response) = if xgboost {
        (
            serde_json::json!([{"name": "score", "dtype": "float32", "shape": [null, 1]}]),
            serde_json::json!({"kind": "xgboost", "output": "score", "objective": "reg:squarederror"}),
        )
    } else {
        (
            serde_json::json!([
                {"name": "score", "dtype": "float32", "shape": [null, 1]},
                {"name": "predicted_label", "dtype": "int64", "shape": [null]}
            ]),
            serde_json::json!({"kind": "supervised", "task": "binary_classifier", "score": "score",
                "predicted_label": "predicted_label"}),
        )
    };
    serde_json::json!({
        "manifest_version": 1,
        "tern_version": "0.1.0",
        "algorithm": if xgboost { "xgboost" } else { "linear-learner" },
        "precision": "fp32",
        "targets": ["x86_64"],
        "feature_dim": 3,
        "inputs": [{"name": "input", "dtype": "float32", "shape": [null, 3]}],
        "outputs": outputs,
        "accepts": [],
        "produces": [],
        "label_map": null,
        "response": response,
        "missing_values": xgboost,
        "opsets": {"": 13, "ai.onnx.ml": 3},
        "graph_sha256": hex_sha256(onnx),
        "tolerance": {"absolute": 0.0, "relative": 0.0, "label_agreement": 1.0,
            "measured_absolute": 0.0, "measured_label_agreement": 1.0, "verified_rows": 0}
    })
}

fn classifier_package() -> Package {
    let onnx = binary_classifier();
    Package::from_bytes(manifest(&onnx, false).to_string().as_bytes(), &onnx).unwrap()
}

fn expected_score(row: &[f32]) -> f32 {
    let logit: f32 = row.iter().zip(WEIGHTS).map(|(x, w)| x * w).sum::<f32>() + BIAS;
    1.0 / (1.0 + (-logit).exp())
}

#[test]
fn runs_a_binary_classifier_in_batches() {
    let package = classifier_package();
    let rows = 2500; // three batches of at most 1024
    let features: Vec<f32> = (0..rows * 3)
        .map(|i| ((i * 37) % 19) as f32 / 5.0 - 2.0)
        .collect();
    let outputs = package.run(&features, rows).unwrap();
    let score = outputs.require("score").unwrap();
    let label = outputs.require("predicted_label").unwrap();
    assert_eq!(score.shape, vec![rows, 1]);
    assert_eq!(label.shape, vec![rows]);
    for (r, row) in features.chunks(3).enumerate() {
        let want = expected_score(row);
        let have = score.row_f32(r)[0];
        assert!((have - want).abs() <= 1e-6, "row {r}: {have} vs {want}");
        assert_eq!(label.row_label(r), (want > 0.5) as i64, "row {r}");
    }
    let empty = package.run(&[], 0).unwrap();
    assert_eq!(empty.require("score").unwrap().shape, vec![0, 1]);
}

#[test]
fn invocations_in_every_content_type() {
    let package = classifier_package();
    let rows = [[1.0f32, 2.0, 3.0], [-1.0, 0.5, -2.0]];
    let expected: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let s = expected_score(r);
            serde_json::json!({"score": s, "predicted_label": (s > 0.5) as i64})
        })
        .collect();
    let want_json = serde_json::json!({ "predictions": expected });

    let csv = b"1,2,3\n-1,0.5,-2\n";
    let json_instances =
        br#"{"instances":[{"features":[1,2,3]},{"data":{"features":{"values":[-1,0.5,-2]}}}]}"#;
    let jsonlines = b"{\"features\":[1,2,3]}\n{\"features\":[-1,0.5,-2]}\n";
    let mut recordio = RecordIoWriter::new(Vec::new());
    recordio
        .write_record(&tern_formats::Record::dense(None, rows[0].to_vec()))
        .unwrap();
    // A sparse record: the absent index 1 is 0 for a linear model.
    recordio
        .write_record(&tern_formats::Record {
            features: tern_formats::Features::Sparse {
                indices: vec![0, 2],
                values: vec![rows[1][0], rows[1][2]],
                dim: Some(3),
            },
            label: None,
            weight: None,
        })
        .unwrap();
    let recordio = recordio.into_inner().unwrap();
    let sparse_row = [rows[1][0], 0.0, rows[1][2]];
    let s_sparse = expected_score(&sparse_row);
    let mut want_recordio = want_json.clone();
    want_recordio["predictions"][1] =
        serde_json::json!({"score": s_sparse, "predicted_label": (s_sparse > 0.5) as i64});
    for (body, content_type, want) in [
        (&csv[..], "text/csv", &want_json),
        (&json_instances[..], "application/json", &want_json),
        (&jsonlines[..], "application/jsonlines", &want_json),
        (
            &recordio[..],
            "application/x-recordio-protobuf",
            &want_recordio,
        ),
    ] {
        let (response, mime) = package
            .invoke(body, content_type, "application/json")
            .unwrap();
        assert_eq!(mime, "application/json");
        let response: serde_json::Value = serde_json::from_slice(&response).unwrap();
        assert_close(&response, want, content_type);
    }

    let (lines, mime) = package
        .invoke(csv, "text/csv", "application/jsonlines")
        .unwrap();
    assert_eq!(mime, "application/jsonlines");
    let lines: Vec<serde_json::Value> = String::from_utf8(lines)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_close(
        &serde_json::json!(lines),
        &serde_json::json!(expected),
        "jsonlines",
    );

    let (text, _) = package.invoke(csv, "text/csv", "text/csv").unwrap();
    let s0 = expected_score(&rows[0]);
    let s1 = expected_score(&rows[1]);
    let csv_lines: Vec<Vec<f32>> = String::from_utf8(text)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(csv_lines.len(), 2);
    assert!((csv_lines[0][0] - s0).abs() < 1e-6 && csv_lines[0][1] == 1.0);
    assert!((csv_lines[1][0] - s1).abs() < 1e-6 && csv_lines[1][1] == 0.0);

    let (records, mime) = package
        .invoke(csv, "text/csv", "application/x-recordio-protobuf")
        .unwrap();
    assert_eq!(mime, "application/x-recordio-protobuf");
    let mut frames = tern_formats::recordio::FrameReader::new(&records[..], "response");
    let mut decoded = vec![];
    while let Some(frame) = frames.next_frame().unwrap() {
        decoded.push(proto::Record::decode(frame).unwrap());
    }
    let tensor = |record: &proto::Record, key: &str| match &record.label[key].value {
        Some(proto::value::Kind::Float32Tensor(t)) => t.values.clone(),
        other => panic!("{key}: {other:?}"),
    };
    assert_eq!(decoded.len(), 2);
    assert!((tensor(&decoded[0], "score")[0] - s0).abs() < 1e-6);
    assert!((tensor(&decoded[1], "score")[0] - s1).abs() < 1e-6);
    assert_eq!(tensor(&decoded[0], "predicted_label"), vec![1.0]);
    assert_eq!(tensor(&decoded[1], "predicted_label"), vec![0.0]);
    assert!(decoded[0].features.is_empty());
}

/// Equal structure and labels; scores within 1e-6 (tract's sigmoid is a rational approximation).
fn assert_close(have: &serde_json::Value, want: &serde_json::Value, what: &str) {
    match (have, want) {
        (serde_json::Value::Number(a), serde_json::Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((a - b).abs() <= 1e-6, "{what}: {a} vs {b}");
        }
        (serde_json::Value::Array(a), serde_json::Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{what}");
            a.iter().zip(b).for_each(|(a, b)| assert_close(a, b, what));
        }
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            assert_eq!(
                a.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>(),
                "{what}"
            );
            a.values()
                .zip(b.values())
                .for_each(|(a, b)| assert_close(a, b, what));
        }
        _ => assert_eq!(have, want, "{what}"),
    }
}

#[test]
fn request_errors_name_the_record_and_field() {
    let package = classifier_package();
    let text = package
        .invoke(
            b"{\"features\":[1,2,3]}\n{\"features\":[1,2]}\n",
            "application/jsonlines",
            "application/json",
        )
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("record 2") && text.contains("expected 3 features, found 2"),
        "{text}"
    );
    let text = package
        .invoke(b"1,2,3\n1,2\n", "text/csv", "application/json")
        .unwrap_err()
        .to_string();
    assert!(text.contains("line 2"), "{text}");
    assert!(matches!(
        package.invoke(b"1,2,3", "image/png", "application/json"),
        Err(RuntimeError::UnsupportedContentType {
            header: "Content-Type",
            ..
        })
    ));
    assert!(matches!(
        package.invoke(b"1,2,3", "text/csv", "application/xml"),
        Err(RuntimeError::UnsupportedContentType {
            header: "Accept",
            ..
        })
    ));
    let text = package
        .invoke(b"1,x,3\n", "text/csv", "application/json")
        .unwrap_err()
        .to_string();
    assert!(text.contains("line 1"), "{text}");
}

#[test]
fn non_finite_features_are_refused_unless_the_model_reads_missing_values() {
    let package = classifier_package();
    let text = package
        .invoke(b"1,2,3\n1,nan,3\n", "text/csv", "application/json")
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("record 2")
            && text.contains("features[1]")
            && text.contains("NaN")
            && text.contains("linear-learner"),
        "{text}"
    );
    let text = package
        .invoke(
            b"{\"instances\":[{\"features\":[1,2,1e39]}]}",
            "application/json",
            "application/json",
        )
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("instances[0].features[2]") && text.contains("float32"),
        "{text}"
    );
    let text = package
        .run(&[1.0, 2.0, 3.0, 4.0, f32::NAN, 6.0], 2)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("record 2") && text.contains("features[1]"),
        "{text}"
    );

    // Trees read NaN as missing: the same row is answered.
    let onnx = stump_regressor();
    let trees = Package::from_bytes(manifest(&onnx, true).to_string().as_bytes(), &onnx).unwrap();
    trees.run(&[0.0, f32::NAN, 0.0], 1).unwrap();
    let text = trees
        .run(&[0.0, f32::INFINITY, 0.0], 1)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("features[1]") && text.contains("finite"),
        "{text}"
    );
}

#[test]
fn a_graph_with_an_unknown_op_is_refused_naming_the_op() {
    let onnx = binary_classifier_with("Frobnicate");
    let error = Package::from_bytes(manifest(&onnx, false).to_string().as_bytes(), &onnx)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("model.onnx") && error.contains("Frobnicate"),
        "{error}"
    );
}

/// Found by the `package` fuzz target: tract panicked on a graph output that nothing produces.
#[test]
fn a_graph_output_nothing_produces_is_refused_on_both_engines() {
    let mut model = tern_runtime::onnx::ModelProto::from_bytes(&binary_classifier()).unwrap();
    let graph = model.graph.as_mut().unwrap();
    graph.node.last_mut().unwrap().output[0] = "orphan".to_string();
    let onnx = model.to_bytes();
    for engine in [EngineKind::Tract, EngineKind::Interpreter] {
        let error =
            Package::from_bytes_with(manifest(&onnx, false).to_string().as_bytes(), &onnx, engine)
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("graph output \"predicted_label\" is not produced"),
            "{engine:?}: {error}"
        );
    }
}

#[test]
fn tampered_truncated_and_missing_packages_are_refused() {
    let onnx = binary_classifier();
    let manifest = manifest(&onnx, false).to_string();

    let mut tampered = onnx.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let error = Package::from_bytes(manifest.as_bytes(), &tampered).unwrap_err();
    assert!(matches!(error, RuntimeError::GraphDigest { .. }), "{error}");
    assert!(
        error.to_string().contains("modified or truncated"),
        "{error}"
    );

    let truncated = &onnx[..onnx.len() / 2];
    let error = Package::from_bytes(manifest.as_bytes(), truncated).unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&format!("({} bytes)", truncated.len())),
        "{error}"
    );

    let mut newer = serde_json::from_str::<serde_json::Value>(&manifest).unwrap();
    newer["manifest_version"] = serde_json::json!(3);
    let error = Package::from_bytes(newer.to_string().as_bytes(), &onnx).unwrap_err();
    assert!(
        matches!(error, RuntimeError::ManifestVersion { found: 3, .. }),
        "{error}"
    );

    let mut renamed = serde_json::from_str::<serde_json::Value>(&manifest).unwrap();
    renamed["outputs"][1]["name"] = serde_json::json!("label");
    renamed["response"]["predicted_label"] = serde_json::json!("label");
    let error = Package::from_bytes(renamed.to_string().as_bytes(), &onnx)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("outputs[1].name") && error.contains("\"label\""),
        "{error}"
    );

    let error = Package::from_bytes(b"{\"manifest_version\": 1}", &onnx)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("manifest.json") && error.contains("missing field"),
        "{error}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("manifest.json"), &manifest).unwrap();
    let error = Package::load(dir.path()).unwrap_err().to_string();
    assert!(
        error.contains("model.onnx") && error.contains("cannot read"),
        "{error}"
    );
    std::fs::write(dir.path().join("model.onnx"), &onnx).unwrap();
    let package = Package::load(dir.path()).unwrap();
    assert_eq!(package.manifest().feature_dim, 3);
}

#[test]
fn tree_ensemble_regressor_runs_in_tract_with_missing_values() {
    let onnx = stump_regressor();
    let package = Package::from_bytes(manifest(&onnx, true).to_string().as_bytes(), &onnx).unwrap();
    let outputs = package
        .run(&[0.0, -1.0, 0.0, 0.0, 1.0, 0.0, 0.0, f32::NAN, 0.0], 3)
        .unwrap();
    assert_eq!(
        outputs.require("score").unwrap().to_f32(),
        vec![10.5, 20.5, 10.5]
    );

    // XGBoost: CSV in, one value per line out by default.
    let (text, mime) = package.invoke(b"0,-1,0\n0,1,0\n", "text/csv", "").unwrap();
    assert_eq!(String::from_utf8(text).unwrap(), "10.5\n20.5\n");
    assert_eq!(mime, "text/csv");
    // A sparse record's absent feature 1 is missing (NaN), which this stump sends to the true side.
    let (json, _) = package
        .invoke(
            br#"{"instances":[{"data":{"features":{"keys":[0],"shape":[3],"values":[5]}}}]}"#,
            "application/json",
            "application/json",
        )
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&json).unwrap(),
        serde_json::json!({"predictions": [{"score": 10.5}]})
    );
}
