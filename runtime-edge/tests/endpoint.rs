//! `tern serve` over real HTTP on 127.0.0.1: a Linear Learner trained on scikit-learn's breast_cancer set
//! (tests/data/generated/breast_cancer), compiled to a package, served and queried with reqwest. Every response is
//! compared with what `tern_runtime::Package::invoke` answers for the same request.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tern_edge::{
    load_variants, router, serve_on, BatchConfig, EdgeError, EdgeState, ServeConfig, VariantConfig,
};
use tern_runtime::Package;
use tern_trainer::algorithms::linear_learner::LinearLearner;
use tern_trainer::algorithms::xgboost::XGBoost;
use tern_trainer::data::{Channel, TrainingInput};
use tern_trainer::{Algorithm, Hyperparameters, TrainingContext};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const TIMEOUT: Duration = Duration::from_secs(60);

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/generated/breast_cancer")
}

struct Fixture {
    _dir: tempfile::TempDir,
    /// The compiled binary classifier (30 features).
    classifier: PathBuf,
    /// The test split without its label column, as a CSV request body.
    test_csv: String,
    test_rows: usize,
}

/// Trains `algorithm` with `pairs` on `train` (label first, no header) and writes the compiled package to `dir`.
fn train_and_compile(algorithm: &dyn Algorithm, train: &Path, pairs: &[(&str, &str)], dir: &Path) {
    let raw: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hyperparameters =
        Hyperparameters::parse(algorithm.name(), algorithm.hyperparameters(), &raw)
            .expect("valid hyperparameters");
    let input =
        TrainingInput::new(Channel::from_path("train", train, None).expect("training data"));
    let artifact = algorithm
        .train(&hyperparameters, &input, &mut TrainingContext::new(true))
        .expect("training succeeds");
    let held_out = Channel::from_path("train", train, None)
        .unwrap()
        .load(None)
        .unwrap();
    let options = tern_compiler::CompileOptions {
        held_out: Some(held_out),
        ..Default::default()
    };
    tern_registry::compile(&artifact, &options)
        .expect("compiles")
        .write(dir)
        .expect("package written");
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let data = data_dir();
        assert!(
            data.join("train.csv").exists(),
            "{} is missing: run tests/python/export_datasets.py",
            data.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let classifier = dir.path().join("classifier");
        train_and_compile(
            &LinearLearner,
            &data.join("train.csv"),
            &[("predictor_type", "binary_classifier"), ("epochs", "5")],
            &classifier,
        );
        let test = std::fs::read_to_string(data.join("test.csv")).unwrap();
        let rows: Vec<&str> = test
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_once(',').expect("label, features").1)
            .collect();
        Fixture {
            _dir: dir,
            classifier,
            test_csv: rows.join("\n") + "\n",
            test_rows: rows.len(),
        }
    })
}

struct Server {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), EdgeError>>,
    client: reqwest::Client,
}

impl Server {
    async fn start(config: ServeConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(serve_on(listener, config, async move {
            let _ = stopped.await;
        }));
        let server = Server {
            url,
            stop: Some(stop),
            handle,
            client: reqwest::Client::builder().timeout(TIMEOUT).build().unwrap(),
        };
        server.wait_ready().await;
        server
    }

    /// Polls `/ping` until it answers 200 (bounded: 1200 polls).
    async fn wait_ready(&self) {
        for _ in 0..1200 {
            if let Ok(response) = self.client.get(format!("{}/ping", self.url)).send().await {
                if response.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{}/ping never answered 200", self.url);
    }

    fn post(&self, body: impl Into<reqwest::Body>, content_type: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/invocations", self.url))
            .header("Content-Type", content_type)
            .body(body)
    }

    async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn stop(mut self) -> Result<(), EdgeError> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(TIMEOUT, self.handle)
            .await
            .expect("the server stops")
            .expect("the server task does not panic")
    }
}

fn single(package: &Path) -> ServeConfig {
    let mut config = ServeConfig::new(vec![VariantConfig::new("AllTraffic", 1.0, package)]);
    config.address = "127.0.0.1".parse().unwrap();
    config
}

struct Answer {
    status: u16,
    content_type: String,
    variant: String,
    body: Vec<u8>,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("the request is answered");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    Answer {
        status: response.status().as_u16(),
        content_type: header("content-type"),
        variant: header("x-amzn-invoked-production-variant"),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn responses_equal_the_package_for_every_content_type_and_accept() {
    let fixture = fixture();
    let package = Package::load(&fixture.classifier).unwrap();
    let server = Server::start(single(&fixture.classifier)).await;

    let csv_rows: Vec<&str> = fixture.test_csv.lines().collect();
    let json_body = serde_json::json!({
        "instances": csv_rows.iter().take(5).map(|row| {
            let features: Vec<f64> = row.split(',').map(|v| v.parse().unwrap()).collect();
            serde_json::json!({"features": features})
        }).collect::<Vec<_>>()
    })
    .to_string();
    let jsonlines_body: String = csv_rows
        .iter()
        .take(4)
        .map(|row| format!("{{\"features\":[{row}]}}\n"))
        .collect();
    let mut writer = tern_formats::recordio::RecordIoWriter::new(Vec::new());
    for row in csv_rows.iter().take(3) {
        let features = row.split(',').map(|v| v.parse().unwrap()).collect();
        let record = tern_formats::Record {
            features: tern_formats::Features::Dense(features),
            label: None,
            weight: None,
        };
        writer.write_record(&record).unwrap();
    }
    let recordio_body = writer.into_inner().unwrap();

    let cases: Vec<(Vec<u8>, &str, &str, &str)> = vec![
        (
            fixture.test_csv.clone().into_bytes(),
            "text/csv",
            "application/json",
            "application/json",
        ),
        (
            fixture.test_csv.clone().into_bytes(),
            "text/csv",
            "application/jsonlines",
            "application/jsonlines",
        ),
        (
            fixture.test_csv.clone().into_bytes(),
            "text/csv",
            "application/x-recordio-protobuf",
            "application/x-recordio-protobuf",
        ),
        (
            json_body.clone().into_bytes(),
            "application/json",
            "application/json",
            "application/json",
        ),
        (
            recordio_body.clone(),
            "application/x-recordio-protobuf",
            "application/json",
            "application/json",
        ),
        (
            recordio_body.clone(),
            "application/x-recordio-protobuf",
            "application/x-recordio-protobuf",
            "application/x-recordio-protobuf",
        ),
        (
            json_body.clone().into_bytes(),
            "application/json",
            "image/png, application/jsonlines",
            "application/jsonlines",
        ),
        // No Accept, or */*: the package's default, JSON for Linear Learner.
        (
            fixture.test_csv.clone().into_bytes(),
            "text/csv",
            "",
            "application/json",
        ),
        (
            fixture.test_csv.clone().into_bytes(),
            "text/csv",
            "*/*",
            "application/json",
        ),
    ];
    for (body, content_type, accept, expected_type) in cases {
        let mut request = server.post(body.clone(), content_type);
        if !accept.is_empty() {
            request = request.header("Accept", accept);
        }
        let answer = send(request).await;
        assert_eq!(
            answer.status,
            200,
            "{content_type} → {accept}: {}",
            text(&answer.body)
        );
        assert_eq!(answer.content_type, expected_type);
        assert_eq!(answer.variant, "AllTraffic");
        let (expected, _) = package.invoke(&body, content_type, accept).unwrap();
        assert_eq!(answer.body, expected, "{content_type} → {accept}");
    }

    // SageMaker documents Linear Learner's responses as JSON, JSON Lines and RecordIO only, and its requests as CSV,
    // JSON and RecordIO: a CSV response or a JSON Lines request is refused with 415, naming what is supported.
    for (body, content_type, accept, named) in [
        (
            fixture.test_csv.clone().into_bytes(),
            "text/csv",
            "text/csv",
            "application/jsonlines",
        ),
        (
            jsonlines_body.into_bytes(),
            "application/jsonlines",
            "application/json",
            "text/csv",
        ),
    ] {
        let answer = send(server.post(body, content_type).header("Accept", accept)).await;
        assert_eq!(answer.status, 415, "{content_type} → {accept}");
        assert!(text(&answer.body).contains(named), "{}", text(&answer.body));
        assert_eq!(answer.variant, "AllTraffic");
    }

    // SageMaker's JSON shape: one {"score", "predicted_label"} per record.
    let answer = send(
        server
            .post(fixture.test_csv.clone(), "text/csv")
            .header("Accept", "application/json"),
    )
    .await;
    let document: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let predictions = document["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), fixture.test_rows);
    for prediction in predictions {
        let score = prediction["score"].as_f64().unwrap();
        let label = prediction["predicted_label"].as_i64().unwrap();
        assert!((0.0..=1.0).contains(&score), "{prediction}");
        assert_eq!(label, i64::from(score >= 0.5), "{prediction}");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_codes_name_the_reason() {
    let fixture = fixture();
    let mut config = single(&fixture.classifier);
    config.max_payload_bytes = 4096;
    let server = Server::start(config).await;
    let first_row = fixture.test_csv.lines().next().unwrap().to_string() + "\n";

    let answer = send(server.post(first_row.clone(), "text/csv")).await;
    assert_eq!(answer.status, 200, "{}", text(&answer.body));

    let answer = send(server.post(first_row.clone(), "image/png")).await;
    assert_eq!(answer.status, 415);
    assert!(
        text(&answer.body).contains("image/png"),
        "{}",
        text(&answer.body)
    );

    let answer = send(
        server
            .post(first_row.clone(), "text/csv")
            .header("Accept", "image/png"),
    )
    .await;
    assert_eq!(answer.status, 415);
    assert!(
        text(&answer.body).contains("Accept"),
        "{}",
        text(&answer.body)
    );

    let answer = send(server.post("1.0,2.0,oops\n", "text/csv")).await;
    assert_eq!(answer.status, 400);
    assert!(
        text(&answer.body).contains("oops"),
        "{}",
        text(&answer.body)
    );

    let answer = send(server.post("1.0,2.0,3.0\n", "text/csv")).await;
    assert_eq!(answer.status, 400);
    assert!(
        text(&answer.body).contains("expected 30 features, found 3"),
        "{}",
        text(&answer.body)
    );

    let answer = send(server.post("{\"instances\": [", "application/json")).await;
    assert_eq!(answer.status, 400, "{}", text(&answer.body));

    // Above the 4096-byte limit: declared by Content-Length, and streamed without one.
    let large = first_row.repeat(4096 / first_row.len() + 1);
    assert!(large.len() > 4096);
    let answer = send(server.post(large.clone(), "text/csv")).await;
    assert_eq!(answer.status, 413);
    assert!(
        text(&answer.body).contains("4096"),
        "{}",
        text(&answer.body)
    );
    let (status, reason) =
        chunked_request(&server.url, "/invocations", "text/csv", large.as_bytes()).await;
    assert_eq!(status, 413, "{reason}");

    let (status, metrics) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    for code in [200, 400, 413, 415] {
        assert!(
            metrics.contains(&format!(
                "tern_invocations_total{{variant=\"AllTraffic\",code=\"{code}\"}}"
            )),
            "{metrics}"
        );
    }
    assert!(
        metrics.contains("tern_invocations_total{variant=\"AllTraffic\",code=\"400\"} 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tern_invocation_duration_seconds_count{variant=\"AllTraffic\"} 8\n"),
        "{metrics}"
    );

    let (status, parameters) = server.get_text("/execution-parameters").await;
    assert_eq!(status, 200);
    let parameters: serde_json::Value = serde_json::from_str(&parameters).unwrap();
    assert_eq!(parameters["BatchStrategy"], "MULTI_RECORD");
    assert_eq!(parameters["MaxPayloadInMB"], 1);
    assert!(parameters["MaxConcurrentTransforms"].as_u64().unwrap() >= 1);
    server.stop().await.unwrap();
}

/// POSTs `body` in 1000-byte chunks with `Transfer-Encoding: chunked` (no Content-Length) over a plain socket;
/// returns the status and the response text.
async fn chunked_request(url: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let address = url.trim_start_matches("http://").to_string();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(1000) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        // The server may answer 413 and close before the whole body is written.
        let _ = stream.write_all(&request);
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        parse_status(&response)
    })
    .await
    .unwrap()
}

fn parse_status(response: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ping_answers_503_until_the_variants_are_loaded() {
    let fixture = fixture();
    let config = single(&fixture.classifier);
    let state = EdgeState::new(&config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(state.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder().timeout(TIMEOUT).build().unwrap();
    let row = fixture.test_csv.lines().next().unwrap().to_string();

    let ping = client.get(format!("{url}/ping")).send().await.unwrap();
    assert_eq!(ping.status(), 503);
    let invoke = || {
        client
            .post(format!("{url}/invocations"))
            .header("Content-Type", "text/csv")
            .body(row.clone())
    };
    let answer = send(invoke()).await;
    assert_eq!(answer.status, 503, "{}", text(&answer.body));

    assert!(state.install(load_variants(&config).unwrap()));
    let ping = client.get(format!("{url}/ping")).send().await.unwrap();
    assert_eq!(ping.status(), 200);
    assert!(ping.bytes().await.unwrap().is_empty());
    let answer = send(invoke()).await;
    assert_eq!(answer.status, 200, "{}", text(&answer.body));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_package_that_fails_to_load_stops_the_server_with_its_error() {
    let missing = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = single(&missing.path().join("no-package"));
    let result = tokio::time::timeout(
        TIMEOUT,
        serve_on(listener, config, std::future::pending::<()>()),
    )
    .await
    .expect("serve returns");
    match result {
        Err(EdgeError::Package {
            variant, package, ..
        }) => {
            assert_eq!(variant, "AllTraffic");
            assert!(package.ends_with("no-package"));
        }
        other => panic!("expected a package error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bearer_token_guards_every_route_but_ping() {
    let fixture = fixture();
    let mut config = single(&fixture.classifier);
    config.bearer_token = Some("s3cret".to_string());
    let server = Server::start(config).await;
    let row = fixture.test_csv.lines().next().unwrap().to_string();

    for (token, expected) in [(None, 401), (Some("wrong"), 401), (Some("s3cret"), 200)] {
        let mut request = server.post(row.clone(), "text/csv");
        let mut metrics = server.client.get(format!("{}/metrics", server.url));
        let mut parameters = server
            .client
            .get(format!("{}/execution-parameters", server.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
            metrics = metrics.bearer_auth(token);
            parameters = parameters.bearer_auth(token);
        }
        let answer = send(request).await;
        assert_eq!(
            answer.status,
            expected,
            "token {token:?}: {}",
            text(&answer.body)
        );
        assert_eq!(metrics.send().await.unwrap().status(), expected);
        assert_eq!(parameters.send().await.unwrap().status(), expected);
    }
    let (status, _) = server.get_text("/ping").await;
    assert_eq!(status, 200);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_empty_or_blank_token_stops_the_server_before_it_listens() {
    let fixture = fixture();
    for blank in ["", "   "] {
        let mut config = single(&fixture.classifier);
        config.bearer_token = Some(blank.to_string());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let result = tokio::time::timeout(
            TIMEOUT,
            serve_on(listener, config, std::future::pending::<()>()),
        )
        .await
        .expect("serve returns");
        match result {
            Err(EdgeError::Config { field, .. }) => assert_eq!(field, "bearer_token"),
            other => panic!("{blank:?}: expected a configuration error, got {other:?}"),
        }
    }
}

/// Sends the headers of a CSV request declaring `length` body bytes (and `Connection: close`) and `part` of the body,
/// then nothing more.
fn hold_request(address: &str, length: usize, part: &[u8]) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let head = format!(
        "POST /invocations HTTP/1.1\r\nHost: {address}\r\nContent-Type: text/csv\r\nContent-Length: {length}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(part).unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_beyond_the_workers_and_the_queue_are_answered_503() {
    let fixture = fixture();
    let mut config = single(&fixture.classifier);
    config.workers = 1;
    config.max_queue = 1;
    let server = Server::start(config).await;
    let address = server.url.trim_start_matches("http://").to_string();
    let row = fixture.test_csv.lines().next().unwrap().to_string() + "\n";

    // Two requests still receiving their bodies take both places.
    let held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| hold_request(&address, row.len(), &row.as_bytes()[..4]))
        .collect();
    let mut both_in_flight = false;
    for _ in 0..1200 {
        let (_, metrics) = server.get_text("/metrics").await;
        if metrics.contains("tern_invocations_in_flight 2\n") {
            both_in_flight = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        both_in_flight,
        "the held requests never reached the handler"
    );
    let answer = send(server.post(row.clone(), "text/csv")).await;
    assert_eq!(answer.status, 503, "{}", text(&answer.body));
    assert!(
        text(&answer.body).contains("1 workers, 1 waiting"),
        "{}",
        text(&answer.body)
    );

    // Once they are answered, the places are free again.
    let rest = row.as_bytes()[4..].to_vec();
    let statuses = tokio::task::spawn_blocking(move || {
        held.into_iter()
            .map(|mut stream| {
                stream.write_all(&rest).unwrap();
                let mut response = Vec::new();
                stream.read_to_end(&mut response).unwrap();
                parse_status(&response).0
            })
            .collect::<Vec<u16>>()
    })
    .await
    .unwrap();
    assert_eq!(statuses, [200, 200]);
    let answer = send(server.post(row.clone(), "text/csv")).await;
    assert_eq!(answer.status, 200, "{}", text(&answer.body));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_slower_than_the_body_timeout_is_answered_408() {
    let fixture = fixture();
    let mut config = single(&fixture.classifier);
    config.timeouts.body = Duration::from_secs(1);
    let server = Server::start(config).await;
    let address = server.url.trim_start_matches("http://").to_string();
    let row = fixture.test_csv.lines().next().unwrap().to_string() + "\n";
    let (status, response) = tokio::task::spawn_blocking(move || {
        let mut stream = hold_request(&address, row.len(), &row.as_bytes()[..4]);
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        parse_status(&response)
    })
    .await
    .unwrap();
    assert_eq!(status, 408, "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    let answer = send(server.post(fixture.test_csv.clone(), "text/csv")).await;
    assert_eq!(answer.status, 200, "{}", text(&answer.body));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn variants_split_traffic_by_weight_and_honour_the_target_header() {
    let fixture = fixture();
    let mut config = ServeConfig::new(vec![
        VariantConfig::new("A", 3.0, &fixture.classifier),
        VariantConfig::new("B", 1.0, &fixture.classifier),
        VariantConfig::new("Shadow", 0.0, &fixture.classifier),
    ]);
    config.address = "127.0.0.1".parse().unwrap();
    config.seed = 7;
    let server = Server::start(config).await;
    let row = fixture.test_csv.lines().next().unwrap().to_string();

    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    let requests = 400;
    for _ in 0..requests {
        let answer = send(server.post(row.clone(), "text/csv")).await;
        assert_eq!(answer.status, 200);
        *served.entry(answer.variant).or_default() += 1;
    }
    let a = served.get("A").copied().unwrap_or(0);
    let b = served.get("B").copied().unwrap_or(0);
    assert_eq!(
        a + b,
        requests,
        "{served:?}: the weight-0 variant takes no untargeted traffic"
    );
    // Expected 300 : 100; the binomial standard deviation is under 9 requests.
    assert!((255..=345).contains(&a), "{served:?}");

    for _ in 0..5 {
        let answer = send(
            server
                .post(row.clone(), "text/csv")
                .header("X-Amzn-SageMaker-Target-Variant", "Shadow"),
        )
        .await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.variant, "Shadow");
    }
    let answer = send(
        server
            .post(row.clone(), "text/csv")
            .header("X-Amzn-SageMaker-Target-Variant", "C"),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(
        text(&answer.body).contains("\"C\""),
        "{}",
        text(&answer.body)
    );

    let (_, metrics) = server.get_text("/metrics").await;
    assert!(
        metrics.contains(&format!(
            "tern_invocations_total{{variant=\"A\",code=\"200\"}} {a}\n"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "tern_invocations_total{{variant=\"B\",code=\"200\"}} {b}\n"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("tern_invocations_total{variant=\"Shadow\",code=\"200\"} 5\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tern_invocations_total{variant=\"\",code=\"400\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "tern_invocation_duration_seconds_bucket{{variant=\"A\",le=\"+Inf\"}} {a}\n"
        )),
        "{metrics}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_finishes_the_request_in_flight() {
    let fixture = fixture();
    let server = Server::start(single(&fixture.classifier)).await;
    let body = fixture.test_csv.clone().into_bytes();
    let address = server.url.trim_start_matches("http://").to_string();
    let head = format!(
        "POST /invocations HTTP/1.1\r\nHost: {address}\r\nContent-Type: text/csv\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let half = body.len() / 2;
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..half]).unwrap();

    // The request is in flight once the handler has started on it.
    let mut in_flight = false;
    for _ in 0..1200 {
        let (_, metrics) = server.get_text("/metrics").await;
        if metrics.contains("tern_invocations_in_flight 1\n") {
            in_flight = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(in_flight, "the half-sent request never reached the handler");

    let url = server.url.clone();
    let stopping = tokio::spawn(server.stop());
    // New connections are refused once shutdown has begun; the open one is still served.
    let mut refused = false;
    for _ in 0..1200 {
        if std::net::TcpStream::connect(&address).is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        refused,
        "{url} still accepts connections after shutdown began"
    );
    assert!(
        !stopping.is_finished(),
        "the server stopped with a request in flight"
    );

    let rest = body[half..].to_vec();
    let response = tokio::task::spawn_blocking(move || {
        stream.write_all(&rest).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        response
    })
    .await
    .unwrap();
    let (status, text) = parse_status(&response);
    assert_eq!(status, 200, "{text}");
    let package = Package::load(&fixture.classifier).unwrap();
    let (expected, _) = package
        .invoke(&body, "text/csv", "application/json")
        .unwrap();
    assert!(response.ends_with(&expected), "{text}");
    tokio::time::timeout(TIMEOUT, stopping)
        .await
        .expect("the server stops after the last request")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pipeline_feeds_each_package_the_previous_response() {
    let fixture = fixture();
    // Stage one: XGBoost (binary:logistic) answers text/csv, one probability per record, which is what stage two, a
    // Linear Learner trained on that probability, reads.
    let dir = tempfile::tempdir().unwrap();
    let first_dir = dir.path().join("first");
    train_and_compile(
        &XGBoost,
        &data_dir().join("train.csv"),
        &[("objective", "binary:logistic"), ("num_round", "10")],
        &first_dir,
    );
    let first = Package::load(&first_dir).unwrap();
    let train = std::fs::read_to_string(data_dir().join("train.csv")).unwrap();
    let (labels, rows): (Vec<&str>, Vec<&str>) = train
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_once(',').unwrap())
        .unzip();
    let (stage_one, mime) = first
        .invoke((rows.join("\n") + "\n").as_bytes(), "text/csv", "text/csv")
        .unwrap();
    assert_eq!(mime, "text/csv");
    let stage_two_train: String = labels
        .iter()
        .zip(text(&stage_one).lines())
        .map(|(label, features)| format!("{label},{features}\n"))
        .collect();
    std::fs::write(dir.path().join("stage2.csv"), stage_two_train).unwrap();
    let second_dir = dir.path().join("second");
    train_and_compile(
        &LinearLearner,
        &dir.path().join("stage2.csv"),
        &[("predictor_type", "binary_classifier"), ("epochs", "5")],
        &second_dir,
    );
    let second = Package::load(&second_dir).unwrap();

    let mut config = ServeConfig::new(vec![VariantConfig {
        name: "Pipeline".to_string(),
        weight: 1.0,
        packages: vec![first_dir.clone(), second_dir.clone()],
    }]);
    config.address = "127.0.0.1".parse().unwrap();
    let (intermediate, mime) = first
        .invoke(fixture.test_csv.as_bytes(), "text/csv", "text/csv")
        .unwrap();
    let (expected, _) = second
        .invoke(&intermediate, &mime, "application/json")
        .unwrap();
    // Unbatched, then with micro-batching: the same bytes.
    for batching in [None, Some(BatchConfig::default())] {
        config.batching = batching;
        let server = Server::start(config.clone()).await;
        let answer = send(
            server
                .post(fixture.test_csv.clone(), "text/csv")
                .header("Accept", "application/json"),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", text(&answer.body));
        assert_eq!(answer.variant, "Pipeline");
        assert_eq!(answer.body, expected, "batching {batching:?}");
        let document: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(
            document["predictions"].as_array().unwrap().len(),
            fixture.test_rows
        );
        // The pipeline's request types are the first package's: XGBoost takes no JSON.
        let answer = send(
            server
                .post("{\"instances\": []}", "application/json")
                .header("Accept", "application/json"),
        )
        .await;
        assert_eq!(answer.status, 415, "{}", text(&answer.body));
        server.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn micro_batching_merges_concurrent_requests_and_answers_each_as_if_alone() {
    let fixture = fixture();
    let package = Package::load(&fixture.classifier).unwrap();
    let rows: Vec<&str> = fixture.test_csv.lines().collect();

    // Requests of 1 to 3 rows in every request type and response type the package handles.
    let mut requests: Vec<(Vec<u8>, &str, &str)> = Vec::new();
    let accepts = [
        "application/json",
        "application/jsonlines",
        "application/x-recordio-protobuf",
    ];
    for i in 0..24 {
        let take = &rows[i..i + i % 3 + 1];
        let body = match i % 3 {
            0 => (take.join("\n") + "\n").into_bytes(),
            1 => serde_json::json!({
                "instances": take.iter().map(|row| {
                    let features: Vec<f64> = row.split(',').map(|v| v.parse().unwrap()).collect();
                    serde_json::json!({"features": features})
                }).collect::<Vec<_>>()
            })
            .to_string()
            .into_bytes(),
            _ => {
                let mut writer = tern_formats::recordio::RecordIoWriter::new(Vec::new());
                for row in take {
                    let record = tern_formats::Record {
                        features: tern_formats::Features::Dense(
                            row.split(',').map(|v| v.parse().unwrap()).collect(),
                        ),
                        label: None,
                        weight: None,
                    };
                    writer.write_record(&record).unwrap();
                }
                writer.into_inner().unwrap()
            }
        };
        let content_type = [
            "text/csv",
            "application/json",
            "application/x-recordio-protobuf",
        ][i % 3];
        requests.push((body, content_type, accepts[(i / 3) % 3]));
    }
    let total_rows: usize = (0..24).map(|i| i % 3 + 1).sum();

    let mut config = single(&fixture.classifier);
    // The batch closes when every request's rows are in; the long wait only matters if the clients stall.
    config.batching = Some(BatchConfig {
        max_batch_rows: total_rows,
        max_wait: Duration::from_secs(5),
    });
    let server = std::sync::Arc::new(Server::start(config).await);
    let mut tasks = Vec::new();
    for (body, content_type, accept) in requests.clone() {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            send(server.post(body, content_type).header("Accept", accept)).await
        }));
    }
    // A malformed request among them fails alone, with the unbatched error.
    let bad = send(server.post("1.0,2.0,3.0\n", "text/csv")).await;
    assert_eq!(bad.status, 400);
    let unbatched = package
        .invoke(b"1.0,2.0,3.0\n", "text/csv", "")
        .unwrap_err();
    assert_eq!(text(&bad.body), format!("{unbatched}\n"));

    for ((body, content_type, accept), task) in requests.iter().zip(tasks) {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, 200, "{}", text(&answer.body));
        let (expected, mime) = package.invoke(body, content_type, accept).unwrap();
        assert_eq!(answer.content_type, mime);
        assert_eq!(answer.body, expected, "{content_type} → {accept}");
    }

    let (_, metrics) = server.get_text("/metrics").await;
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing from\n{metrics}"))
    };
    let batches = value("tern_batches_total{variant=\"AllTraffic\"} ");
    assert!(
        batches < requests.len() as f64,
        "{batches} batches for {} requests: nothing was merged\n{metrics}",
        requests.len()
    );
    assert_eq!(
        value("tern_batch_size_requests_sum{variant=\"AllTraffic\"} "),
        requests.len() as f64
    );
    assert_eq!(
        value("tern_batch_size_rows_sum{variant=\"AllTraffic\"} "),
        total_rows as f64
    );
    match std::sync::Arc::try_unwrap(server) {
        Ok(server) => server.stop().await.unwrap(),
        Err(_) => panic!("the request tasks still hold the server"),
    }
}
