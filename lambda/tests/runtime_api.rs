//! The `bootstrap` binary against the Lambda Runtime API, served here on loopback exactly as AWS documents it
//! (`GET /2018-06-01/runtime/invocation/next` with the `Lambda-Runtime-*` headers, `POST …/{id}/response`,
//! `POST …/{id}/error`): events go in, and the answers must equal what the package answers directly.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tern_runtime::Package;
use tern_trainer::algorithms::linear_learner::LinearLearner;
use tern_trainer::data::{Channel, TrainingInput};
use tern_trainer::{Algorithm, Hyperparameters, TrainingContext};
use tokio::sync::{mpsc, Notify};

struct Fixture {
    _dir: tempfile::TempDir,
    package_dir: PathBuf,
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
            .take(5)
            .map(|l| l.split_once(',').unwrap().1.to_string())
            .collect();
        Fixture {
            package: Package::load(&package_dir).unwrap(),
            package_dir,
            _dir: dir,
            rows: rows.join("\n") + "\n",
        }
    })
}

/// What the function posted back for one invocation.
#[derive(Debug)]
enum Answer {
    Response(String, Value),
    Error(String, Value),
}

#[derive(Clone)]
struct RuntimeApi {
    events: Arc<Mutex<VecDeque<(String, Value)>>>,
    more: Arc<Notify>,
    answers: mpsc::UnboundedSender<Answer>,
}

async fn next(State(api): State<RuntimeApi>) -> impl IntoResponse {
    loop {
        let event = api.events.lock().unwrap().pop_front();
        if let Some((id, event)) = event {
            let mut headers = HeaderMap::new();
            headers.insert("Lambda-Runtime-Aws-Request-Id", id.parse().unwrap());
            headers.insert(
                "Lambda-Runtime-Deadline-Ms",
                "4102444800000".parse().unwrap(),
            );
            headers.insert(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:123456789012:function:tern"
                    .parse()
                    .unwrap(),
            );
            headers.insert(
                "Lambda-Runtime-Trace-Id",
                "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700".parse().unwrap(),
            );
            headers.insert("Content-Type", "application/json".parse().unwrap());
            return (headers, event.to_string());
        }
        api.more.notified().await;
    }
}

async fn response(
    State(api): State<RuntimeApi>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let _ = api.answers.send(Answer::Response(id, value));
    StatusCode::ACCEPTED
}

async fn error(
    State(api): State<RuntimeApi>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let _ = api.answers.send(Answer::Error(id, value));
    StatusCode::ACCEPTED
}

struct Harness {
    api: RuntimeApi,
    answers: mpsc::UnboundedReceiver<Answer>,
    address: String,
    _runtime: tokio::runtime::Runtime,
}

impl Harness {
    fn start() -> Harness {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (sender, answers) = mpsc::unbounded_channel();
        let api = RuntimeApi {
            events: Arc::default(),
            more: Arc::default(),
            answers: sender,
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .with_state(api.clone());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap().to_string();
        runtime.spawn(async move { axum::serve(listener, app).await });
        Harness {
            api,
            answers,
            address,
            _runtime: runtime,
        }
    }

    fn invoke(&mut self, id: &str, event: Value) -> Answer {
        self.api
            .events
            .lock()
            .unwrap()
            .push_back((id.to_string(), event));
        self.api.more.notify_waiters();
        self.api.more.notify_one();
        let answer = self
            ._runtime
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(120), self.answers.recv()).await
            })
            .expect("the function answered")
            .expect("the channel is open");
        match &answer {
            Answer::Response(got, _) | Answer::Error(got, _) => assert_eq!(got, id),
        }
        answer
    }

    fn bootstrap(&self, package: Option<&Path>) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", &self.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "tern")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/tern")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(package) = package {
            command.env("TERN_PACKAGE", package);
        }
        command
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bootstrap_answers_plain_and_http_events_through_the_runtime_api() {
    let fixture = fixture();
    let mut harness = Harness::start();
    let _function = Running(
        harness
            .bootstrap(Some(&fixture.package_dir))
            .spawn()
            .unwrap(),
    );

    // A plain event.
    let (expected, mime) = fixture
        .package
        .invoke(fixture.rows.as_bytes(), "text/csv", "application/json")
        .unwrap();
    let answer = harness.invoke(
        "req-1",
        json!({"body": fixture.rows, "contentType": "text/csv", "accept": "application/json"}),
    );
    let Answer::Response(_, value) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(value["contentType"], json!(mime));
    assert_eq!(value["isBase64Encoded"], json!(false));
    assert_eq!(
        value["body"].as_str().unwrap().as_bytes(),
        expected.as_slice()
    );

    // An HTTP API (payload 2.0) / Function URL event.
    let (expected, _) = fixture
        .package
        .invoke(fixture.rows.as_bytes(), "text/csv", "application/jsonlines")
        .unwrap();
    let answer = harness.invoke(
        "req-2",
        json!({
            "version": "2.0",
            "rawPath": "/invocations",
            "headers": {"content-type": "text/csv", "accept": "application/jsonlines"},
            "requestContext": {"http": {"method": "POST", "path": "/invocations"}},
            "body": fixture.rows,
            "isBase64Encoded": false
        }),
    );
    let Answer::Response(_, value) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(value["statusCode"], json!(200));
    assert_eq!(
        value["headers"]["Content-Type"],
        json!("application/jsonlines")
    );
    assert_eq!(
        value["body"].as_str().unwrap().as_bytes(),
        expected.as_slice()
    );

    // An unsupported content type over HTTP: 415, as tern serve answers.
    let answer = harness.invoke(
        "req-3",
        json!({"httpMethod": "POST", "headers": {"Content-Type": "image/png"}, "body": "x"}),
    );
    let Answer::Response(_, value) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(value["statusCode"], json!(415));

    // A malformed plain request: reported to /error with its type and the record at fault.
    let answer = harness.invoke(
        "req-4",
        json!({"body": "1,2,3\n", "contentType": "text/csv"}),
    );
    let Answer::Error(_, value) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(value["errorType"], json!("InvalidRequest"));
    let message = value["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("record 1") && message.contains("expected 30 features"),
        "{message}"
    );

    // The process keeps serving after an error.
    let answer = harness.invoke("req-5", json!({"body": fixture.rows}));
    assert!(matches!(answer, Answer::Response(..)), "{answer:?}");
}

#[test]
fn bootstrap_without_a_package_exits_with_the_reason() {
    let harness = Harness::start();
    let output = harness.bootstrap(None).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no package: set TERN_PACKAGE"), "{stderr}");

    let missing = tempfile::tempdir().unwrap();
    let output = harness.bootstrap(Some(missing.path())).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("manifest.json"), "{stderr}");
}

/// cargo-lambda's Lambda emulator (`cargo lambda watch`, the PyPI build in the project's virtualenv), serving the
/// Runtime API and the Invoke API while the real `bootstrap` runs against it; events are sent with
/// `cargo lambda invoke`, its client.
#[test]
fn bootstrap_answers_invocations_through_cargo_lambdas_emulator() {
    let fixture = fixture();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo_lambda = root.join(".venv/bin/cargo-lambda");
    assert!(
        cargo_lambda.exists(),
        "{} is missing: run scripts/setup-python.sh (cargo-lambda is in tests/python/requirements.txt)",
        cargo_lambda.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    // Only the APIs: the function is this crate's bootstrap, started below (not rebuilt by `cargo lambda`).
    let _emulator = Running(
        Command::new(&cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port", &port])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let address = format!("127.0.0.1:{port}");
    let ready = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(&address).is_ok()
    });
    assert!(ready, "cargo lambda watch did not open {address}");
    let _function = Running(
        Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://{address}/.rt"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("TERN_PACKAGE", &fixture.package_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let invoke = |event: Value| {
        Command::new(&cargo_lambda)
            .args(["lambda", "invoke", "--invoke-address", "127.0.0.1"])
            .args([
                "--invoke-port",
                &port,
                "--data-ascii",
                &event.to_string(),
                "_",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };

    let (expected, mime) = fixture
        .package
        .invoke(fixture.rows.as_bytes(), "text/csv", "application/json")
        .unwrap();
    let output = invoke(
        json!({"body": fixture.rows, "contentType": "text/csv", "accept": "application/json"}),
    );
    assert!(output.status.success(), "{output:?}");
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["contentType"], json!(mime));
    assert_eq!(
        answer["body"].as_str().unwrap().as_bytes(),
        expected.as_slice()
    );

    let output = invoke(json!({
        "version": "2.0",
        "headers": {"content-type": "text/csv", "accept": "application/jsonlines"},
        "requestContext": {"http": {"method": "POST", "path": "/invocations"}},
        "body": fixture.rows,
        "isBase64Encoded": false
    }));
    assert!(output.status.success(), "{output:?}");
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    let (expected, _) = fixture
        .package
        .invoke(fixture.rows.as_bytes(), "text/csv", "application/jsonlines")
        .unwrap();
    assert_eq!(answer["statusCode"], json!(200));
    assert_eq!(
        answer["body"].as_str().unwrap().as_bytes(),
        expected.as_slice()
    );

    // A malformed request: the emulator reports the function error, type and record included.
    let output = invoke(json!({"body": "1,2,3\n", "contentType": "text/csv"}));
    assert!(!output.status.success());
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(
        report.contains("InvalidRequest") && report.contains("expected 30 features, found 3"),
        "{report}"
    );
}
