//! `tern_edge::lambda::handle_event` on every documented event shape, with a Linear Learner package trained on
//! scikit-learn's breast_cancer set: answers must equal `Package::invoke` on the same request.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use base64::Engine;
use serde_json::{json, Value};
use tern_edge::lambda::{handle_event, LambdaError};
use tern_runtime::Package;
use tern_trainer::algorithms::linear_learner::LinearLearner;
use tern_trainer::data::{Channel, TrainingInput};
use tern_trainer::{Algorithm, Hyperparameters, TrainingContext};

struct Fixture {
    _dir: tempfile::TempDir,
    package: Package,
    rows: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let data =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/generated/breast_cancer");
        assert!(
            data.join("train.csv").exists(),
            "run tests/python/export_datasets.py"
        );
        let raw: BTreeMap<String, String> =
            [("predictor_type", "binary_classifier"), ("epochs", "5")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let hyperparameters =
            Hyperparameters::parse(LinearLearner.name(), LinearLearner.hyperparameters(), &raw)
                .unwrap();
        let train = data.join("train.csv");
        let input = TrainingInput::new(Channel::from_path("train", &train, None).unwrap());
        let artifact = LinearLearner
            .train(&hyperparameters, &input, &mut TrainingContext::new(true))
            .unwrap();
        let options = tern_compiler::CompileOptions {
            held_out: Some(
                Channel::from_path("train", &train, None)
                    .unwrap()
                    .load(None)
                    .unwrap(),
            ),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let package_dir = dir.path().join("package");
        tern_registry::compile(&artifact, &options)
            .unwrap()
            .write(&package_dir)
            .unwrap();
        let rows: Vec<String> = std::fs::read_to_string(data.join("test.csv"))
            .unwrap()
            .lines()
            .take(4)
            .map(|l| l.split_once(',').unwrap().1.to_string())
            .collect();
        Fixture {
            package: Package::load(&package_dir).unwrap(),
            _dir: dir,
            rows: rows.join("\n") + "\n",
        }
    })
}

fn expected(content_type: &str, accept: &str) -> (Vec<u8>, String) {
    fixture()
        .package
        .invoke(fixture().rows.as_bytes(), content_type, accept)
        .unwrap()
}

#[test]
fn plain_event_with_a_csv_body() {
    let f = fixture();
    let answer = handle_event(
        &f.package,
        &json!({"body": f.rows, "contentType": "text/csv", "accept": "application/jsonlines"}),
    )
    .unwrap();
    let (body, mime) = expected("text/csv", "application/jsonlines");
    assert_eq!(answer["contentType"], json!(mime));
    assert_eq!(answer["body"].as_str().unwrap().as_bytes(), body.as_slice());
    // contentType defaults to text/csv for a string body.
    let answer = handle_event(
        &f.package,
        &json!({"body": f.rows, "accept": "application/jsonlines"}),
    )
    .unwrap();
    assert_eq!(answer["body"].as_str().unwrap().as_bytes(), body.as_slice());
}

#[test]
fn plain_event_with_a_json_body_value() {
    let f = fixture();
    let features: Vec<Vec<f64>> = f
        .rows
        .lines()
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    let instances: Vec<Value> = features.iter().map(|f| json!({"features": f})).collect();
    let answer = handle_event(&f.package, &json!({"body": {"instances": instances}})).unwrap();
    let (body, _) = expected("text/csv", "application/json");
    let got: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(got, serde_json::from_slice::<Value>(&body).unwrap());
}

#[test]
fn recordio_answers_are_base64() {
    let f = fixture();
    let answer = handle_event(
        &f.package,
        &json!({"body": f.rows, "accept": "application/x-recordio-protobuf"}),
    )
    .unwrap();
    assert_eq!(answer["isBase64Encoded"], json!(true));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(answer["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        decoded,
        expected("text/csv", "application/x-recordio-protobuf").0
    );
}

#[test]
fn api_gateway_rest_event_with_base64_body_and_mixed_case_headers() {
    let f = fixture();
    let encoded = base64::engine::general_purpose::STANDARD.encode(f.rows.as_bytes());
    let answer = handle_event(
        &f.package,
        &json!({
            "resource": "/invocations",
            "path": "/invocations",
            "httpMethod": "POST",
            "headers": {"Content-Type": "text/csv", "ACCEPT": "application/jsonlines"},
            "requestContext": {"stage": "prod"},
            "body": encoded,
            "isBase64Encoded": true
        }),
    )
    .unwrap();
    assert_eq!(answer["statusCode"], json!(200), "{answer}");
    assert_eq!(
        answer["headers"]["Content-Type"],
        json!("application/jsonlines")
    );
    assert_eq!(
        answer["body"].as_str().unwrap().as_bytes(),
        expected("text/csv", "application/jsonlines").0.as_slice()
    );
}

#[test]
fn http_errors_become_status_codes() {
    let f = fixture();
    let get = handle_event(
        &f.package,
        &json!({"requestContext": {"http": {"method": "GET"}}, "rawPath": "/ping"}),
    )
    .unwrap();
    assert_eq!(
        (get["statusCode"].clone(), get["body"].clone()),
        (json!(200), json!(""))
    );
    let unsupported = handle_event(
        &f.package,
        &json!({"httpMethod": "POST", "headers": {"content-type": "text/plain"}, "body": "1"}),
    )
    .unwrap();
    assert_eq!(unsupported["statusCode"], json!(415));
    let malformed = handle_event(
        &f.package,
        &json!({"httpMethod": "POST", "headers": {"content-type": "text/csv"}, "body": "1,x\n"}),
    )
    .unwrap();
    assert_eq!(malformed["statusCode"], json!(400));
    assert!(
        malformed["body"].as_str().unwrap().contains("line 1"),
        "{malformed}"
    );
    let bad_base64 = handle_event(
        &f.package,
        &json!({"httpMethod": "POST", "headers": {}, "body": "%%%", "isBase64Encoded": true}),
    )
    .unwrap();
    assert_eq!(bad_base64["statusCode"], json!(400));
}

#[test]
fn plain_event_errors_are_typed() {
    let f = fixture();
    let missing = handle_event(&f.package, &json!({"contentType": "text/csv"})).unwrap_err();
    assert!(
        matches!(&missing, LambdaError::Event { field, .. } if field == "body"),
        "{missing}"
    );
    assert_eq!(missing.error_type(), "InvalidEvent");
    let not_object = handle_event(&f.package, &json!([1, 2])).unwrap_err();
    assert_eq!(not_object.error_type(), "InvalidEvent");
    let wrong_type = handle_event(&f.package, &json!({"body": "1", "accept": 3})).unwrap_err();
    assert!(
        wrong_type.to_string().contains("field accept"),
        "{wrong_type}"
    );
    let unsupported = handle_event(
        &f.package,
        &json!({"body": "1", "contentType": "image/png"}),
    )
    .unwrap_err();
    assert_eq!(unsupported.error_type(), "UnsupportedContentType");
    let malformed = handle_event(&f.package, &json!({"body": "1,2\n"})).unwrap_err();
    assert_eq!(malformed.error_type(), "InvalidRequest");
}
