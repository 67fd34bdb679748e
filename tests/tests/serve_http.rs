//! `tern serve` as a user runs it: the real binary spawned on a free loopback port, queried by a real SageMaker
//! client (tests/python/serve_client.py: the sagemaker SDK's serializers and deserializers over `requests`) and, for
//! what needs socket-level control (a half-sent body, SIGTERM), by raw HTTP/1.1 over `TcpStream`. Packages come from
//! `tern train` + `tern compile` on scikit-learn's breast_cancer set; expected bodies from `tern predict`.
//!
//! Not observable from outside the process: `/ping`'s 503 while packages load (loading takes milliseconds); the
//! library suite (runtime-edge/tests/endpoint.rs) checks it with a server whose packages are installed late.
//!
//! The limits are checked from outside too: memory through /proc/PID/status (VmSize for what the process reserved,
//! VmHWM for its peak resident set), timeouts with the shortest settings and a generous bound on when the effect
//! must have happened, never a timing threshold.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tern_tests::{dataset, python, repo_root, tern_binary, tern_ok};

const TIMEOUT: Duration = Duration::from_secs(60);

struct Packages {
    _dir: tempfile::TempDir,
    /// Linear Learner binary classifier, 30 features.
    linear: PathBuf,
    /// XGBoost binary:logistic, 30 features: answers text/csv, one probability per record.
    xgboost: PathBuf,
    /// Linear Learner trained on the XGBoost package's probability: the second stage of a pipeline.
    stage_two: PathBuf,
    /// The breast_cancer test split without its label column, one CSV row per line.
    rows_csv: PathBuf,
    rows: Vec<Vec<f64>>,
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn train_and_compile(
    dir: &Path,
    name: &str,
    train: &Path,
    algorithm: &str,
    hps: &[&str],
) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec![
        "train",
        "--algorithm",
        algorithm,
        "--train",
        path(train),
        "--output-dir",
        path(&out),
        "--quiet",
        "--no-plots",
    ];
    for hp in hps {
        args.extend(["--hp", hp]);
    }
    tern_ok(&args);
    let package = dir.join(format!("{name}-package"));
    tern_ok(&[
        "compile",
        path(&out.join("model.tar.gz")),
        "--held-out",
        path(train),
        "-o",
        path(&package),
    ]);
    package
}

fn packages() -> &'static Packages {
    static PACKAGES: OnceLock<Packages> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let train = dataset("breast_cancer", "train");
        let linear = train_and_compile(
            dir.path(),
            "linear",
            &train,
            "linear-learner",
            &["predictor_type=binary_classifier", "epochs=5"],
        );
        let xgboost = train_and_compile(
            dir.path(),
            "xgboost",
            &train,
            "xgboost",
            &["objective=binary:logistic", "num_round=10"],
        );
        // Stage two learns the label from stage one's response to the training rows.
        let strip = |file: &Path| -> (Vec<String>, String) {
            let text = std::fs::read_to_string(file).unwrap();
            let (labels, rows): (Vec<String>, Vec<String>) = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let (label, row) = l.split_once(',').unwrap();
                    (label.to_string(), row.to_string())
                })
                .unzip();
            (labels, rows.join("\n") + "\n")
        };
        let (labels, train_rows) = strip(&train);
        std::fs::write(dir.path().join("train_rows.csv"), train_rows).unwrap();
        let probabilities = tern_ok(&[
            "predict",
            path(&xgboost),
            "--input",
            path(&dir.path().join("train_rows.csv")),
            "--accept",
            "text/csv",
        ]);
        let stage_two_train: String = labels
            .iter()
            .zip(probabilities.lines())
            .map(|(label, p)| format!("{label},{p}\n"))
            .collect();
        std::fs::write(dir.path().join("stage_two.csv"), stage_two_train).unwrap();
        let stage_two = train_and_compile(
            dir.path(),
            "stage-two",
            &dir.path().join("stage_two.csv"),
            "linear-learner",
            &["predictor_type=binary_classifier", "epochs=5"],
        );
        let (_, test_rows) = strip(&dataset("breast_cancer", "test"));
        let rows_csv = dir.path().join("rows.csv");
        std::fs::write(&rows_csv, &test_rows).unwrap();
        let rows = test_rows
            .lines()
            .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
            .collect();
        Packages {
            _dir: dir,
            linear,
            xgboost,
            stage_two,
            rows_csv,
            rows,
        }
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A raw HTTP/1.1 answer: status and body.
struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Reply {
        status,
        body: raw[split + 4..].to_vec(),
    }
}

/// A `tern serve` process on 127.0.0.1; killed when dropped if still running.
struct Served {
    child: Child,
    port: u16,
    stderr: PathBuf,
    _logs: tempfile::TempDir,
}

/// `tern serve ARGS` with `env` and none of the variables the tests set inherited.
fn serve_command(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = Command::new(tern_binary());
    command.arg("serve").args(args);
    for inherited in [
        "TERN_AUTH_TOKEN",
        "SAGEMAKER_BIND_TO_PORT",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT",
        "SAGEMAKER_MODEL_SERVER_WORKERS",
        "RUST_LOG",
    ] {
        command.env_remove(inherited);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// A `/proc/PID/status` field in KiB (`VmSize`, `VmHWM`, …).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The IPv4 address a socket listens on at `port` (from /proc/net/tcp), e.g. `127.0.0.1`.
fn listening_address(port: u16) -> Option<std::net::Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (address, local_port) = fields.get(1)?.split_once(':')?;
        let listening = fields.get(3) == Some(&"0A");
        let port_matches = u16::from_str_radix(local_port, 16).ok() == Some(port);
        (listening && port_matches)
            .then(|| u32::from_str_radix(address, 16).ok())
            .flatten()
            .map(|raw| std::net::Ipv4Addr::from(raw.to_le_bytes()))
    })
}

/// Waits up to `limit` for `child` to exit; `None` (and the child killed) if it is still running then.
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Reads until the server closes the connection; `Err` when it has not within the stream's read timeout.
fn read_until_closed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        // A reset closes the connection as well.
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => Ok(raw),
        Err(error) => Err(error),
    }
}

impl Served {
    /// Starts `tern serve ARGS --bind 127.0.0.1` with `env`, on `SAGEMAKER_BIND_TO_PORT` when `env` sets it, else
    /// on a free port given as `--port`; waits for `/ping` 200.
    fn start(args: &[&str], env: &[(&str, String)]) -> Served {
        let mut with_bind = args.to_vec();
        with_bind.extend(["--bind", "127.0.0.1"]);
        Served::start_as_given(&with_bind, env)
    }

    /// [`Served::start`] without `--bind`: the address is the command line's own.
    fn start_as_given(args: &[&str], env: &[(&str, String)]) -> Served {
        let logs = tempfile::tempdir().unwrap();
        let stderr = logs.path().join("stderr.log");
        let mut command = serve_command(args, env);
        let port = match env.iter().find(|(k, _)| *k == "SAGEMAKER_BIND_TO_PORT") {
            Some((_, value)) => value.parse().unwrap(),
            None => {
                let port = free_port();
                command.args(["--port", &port.to_string()]);
                port
            }
        };
        let mut served = Served::spawn(command, port, stderr, logs);
        served.wait_ready();
        served
    }

    fn spawn(mut command: Command, port: u16, stderr: PathBuf, logs: tempfile::TempDir) -> Served {
        command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        Served {
            child: command.spawn().expect("spawn tern serve"),
            port,
            stderr,
            _logs: logs,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        for _ in 0..2400 {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "tern serve exited ({status}) before ready:\n{}",
                    self.logs()
                );
            }
            if let Ok(reply) = self.try_request("GET", "/ping", &[], b"") {
                if reply.status == 200 {
                    assert!(reply.body.is_empty(), "/ping answers an empty body");
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("tern serve never answered /ping 200:\n{}", self.logs());
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn try_request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let mut stream = TcpStream::connect(self.address())?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes())?;
        stream.write_all(body)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        Ok(parse_reply(&raw))
    }

    fn request(&self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.try_request(method, target, headers, body)
            .unwrap_or_else(|e| panic!("{method} {target}: {e}\n{}", self.logs()))
    }

    /// Sends `specs` through the sagemaker-SDK client; one result per request sent.
    fn client(&self, specs: Value) -> Vec<Value> {
        let script = repo_root().join("tests/python/serve_client.py");
        let mut child = Command::new(python())
            .arg(script)
            .env("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the python client");
        let job = json!({"url": self.url(), "requests": specs});
        child
            .stdin
            .take()
            .unwrap()
            .write_all(job.to_string().as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "serve_client.py failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout)
            .expect("the client prints JSON")
            .as_array()
            .unwrap()
            .clone()
    }

    fn metrics(&self) -> String {
        let reply = self.request("GET", "/metrics", &[], b"");
        assert_eq!(reply.status, 200);
        reply.text()
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited successfully.
    fn terminate(&mut self) -> bool {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> bool {
        for _ in 0..2400 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("tern serve did not exit:\n{}", self.logs());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The value of series `series` (name and labels, exactly) in Prometheus text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn header<'a>(result: &'a Value, name: &str) -> &'a str {
    result["headers"][name].as_str().unwrap_or_default()
}

#[test]
fn content_types_status_codes_payload_limit_and_metrics() {
    let packages = packages();
    let mut server = Served::start(
        &[
            path(&packages.linear),
            "--max-payload-mb",
            "0.02",
            "--max-batch",
            "16",
        ],
        &[],
    );
    let rows: Vec<Vec<f64>> = packages.rows.iter().take(20).cloned().collect();
    let mut specs = Vec::new();
    for serializer in ["csv", "json", "recordio"] {
        for (accept, deserializer) in [
            ("application/json", "json"),
            ("application/jsonlines", "jsonlines"),
            ("application/x-recordio-protobuf", "recordio"),
        ] {
            specs.push(json!({
                "name": format!("{serializer}->{deserializer}"), "rows": rows, "serializer": serializer,
                "accept": accept, "deserializer": deserializer,
            }));
        }
    }
    let results = server.client(Value::Array(specs));
    assert_eq!(results.len(), 9);

    // Every request type and response type carries the same predictions.
    let mut reference: Option<Vec<(f64, f64)>> = None;
    for result in &results {
        let name = result["name"].as_str().unwrap();
        assert_eq!(result["status"], 200, "{name}: {}", result["text"]);
        assert_eq!(
            header(result, "x-amzn-invoked-production-variant"),
            "AllTraffic"
        );
        let records: Vec<&Value> = match result["decoded"].as_object() {
            Some(document) => document["predictions"].as_array().unwrap().iter().collect(),
            None => result["decoded"].as_array().unwrap().iter().collect(),
        };
        assert_eq!(records.len(), rows.len(), "{name}");
        let pairs: Vec<(f64, f64)> = records
            .iter()
            .map(|r| {
                let value = |key: &str| match &r[key] {
                    Value::Array(list) => list[0].as_f64().unwrap(),
                    other => other.as_f64().unwrap(),
                };
                (value("score"), value("predicted_label"))
            })
            .collect();
        for (score, label) in &pairs {
            assert!((0.0..=1.0).contains(score), "{name}: score {score}");
            assert_eq!(*label, f64::from(*score >= 0.5), "{name}");
        }
        match &reference {
            None => reference = Some(pairs),
            Some(expected) => {
                for ((s, l), (es, el)) in pairs.iter().zip(expected) {
                    // RecordIO carries float32; JSON the float32 printed shortest.
                    assert!(
                        (s - es).abs() <= 1e-6 * es.abs().max(1.0),
                        "{name}: {s} vs {es}"
                    );
                    assert_eq!(l, el, "{name}");
                }
            }
        }
    }

    // Byte for byte what `tern predict` answers for the same rows.
    let twenty = tempfile::NamedTempFile::new().unwrap();
    let csv: String = rows
        .iter()
        .map(|r| r.iter().map(f64::to_string).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    std::fs::write(twenty.path(), &csv).unwrap();
    let expected = tern_ok(&[
        "predict",
        path(&packages.linear),
        "--input",
        path(twenty.path()),
        "--accept",
        "application/json",
    ]);
    let reply = server.request(
        "POST",
        "/invocations",
        &[("Content-Type", "text/csv"), ("Accept", "application/json")],
        csv.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), expected);

    let failures = server.client(json!([
        {"name": "unknown content type", "body": "1,2,3\n", "serializer": "raw", "content_type": "text/plain"},
        {"name": "csv answer refused", "rows": [rows[0]], "serializer": "csv", "accept": "text/csv"},
        {"name": "jsonlines request refused", "rows": [rows[0]], "serializer": "jsonlines"},
        {"name": "not a number", "body": "1.0,2.0,oops\n", "serializer": "raw", "content_type": "text/csv"},
        {"name": "wrong width", "rows": [[1.0, 2.0, 3.0]], "serializer": "json"},
        {"name": "truncated json", "body": "{\"instances\": [", "serializer": "raw", "content_type": "application/json"},
        {"name": "too large", "rows": packages.rows.iter().cycle().take(400).collect::<Vec<_>>(), "serializer": "csv"},
        {"name": "unknown variant", "rows": [rows[0]], "serializer": "csv",
         "headers": {"X-Amzn-SageMaker-Target-Variant": "Nope"}},
    ]));
    let expect = |index: usize, status: u64, reason: &str| {
        let result = &failures[index];
        assert_eq!(
            result["status"], status,
            "{}: {}",
            result["name"], result["text"]
        );
        let text = result["text"].as_str().unwrap();
        assert!(text.contains(reason), "{}: {text}", result["name"]);
    };
    expect(0, 415, "text/plain");
    expect(1, 415, "Accept");
    expect(2, 415, "application/jsonlines");
    expect(3, 400, "oops");
    expect(4, 400, "expected 30 features, found 3");
    expect(5, 400, "");
    expect(6, 413, &(0.02f64 * 1024.0 * 1024.0).round().to_string());
    expect(7, 400, "\"Nope\"");

    let parameters = server.request("GET", "/execution-parameters", &[], b"");
    let parameters: Value = serde_json::from_slice(&parameters.body).unwrap();
    assert_eq!(parameters["BatchStrategy"], "MULTI_RECORD");

    let metrics = server.metrics();
    let count = |code: u16| {
        metric(
            &metrics,
            &format!("tern_invocations_total{{variant=\"AllTraffic\",code=\"{code}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(count(200), 10.0, "{metrics}");
    assert_eq!(count(415), 3.0, "{metrics}");
    assert_eq!(count(400), 3.0, "{metrics}");
    assert_eq!(count(413), 1.0, "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "tern_invocations_total{variant=\"\",code=\"400\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "tern_invocation_duration_seconds_count{variant=\"AllTraffic\"}"
        ),
        Some(17.0),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE tern_invocation_duration_seconds histogram"));
    // Micro-batching is on: every successful request went through a batch.
    assert_eq!(
        metric(
            &metrics,
            "tern_batch_size_requests_sum{variant=\"AllTraffic\"}"
        ),
        Some(10.0),
        "{metrics}"
    );
    assert!(
        server.terminate(),
        "tern serve exits 0 on SIGTERM:\n{}",
        server.logs()
    );
}

#[test]
fn variants_split_traffic_by_weight_and_the_target_header_picks_one() {
    let packages = packages();
    let a = format!("A=3:{}", path(&packages.linear));
    let b = format!("B=1:{}", path(&packages.linear));
    let shadow = format!("Shadow=0:{}", path(&packages.xgboost));
    let mut server = Served::start(
        &[
            "--variant",
            &a,
            "--variant",
            &b,
            "--variant",
            &shadow,
            "--seed",
            "11",
        ],
        &[],
    );
    let row = vec![packages.rows[0].clone()];
    let requests = 400;
    let results = server.client(json!([
        {"rows": row, "serializer": "csv", "accept": "application/json", "repeat": requests},
        {"name": "targeted", "rows": row, "serializer": "csv", "repeat": 3,
         "headers": {"X-Amzn-SageMaker-Target-Variant": "Shadow"}},
    ]));
    let served = |name: &str| {
        results[..requests]
            .iter()
            .filter(|r| header(r, "x-amzn-invoked-production-variant") == name)
            .count()
    };
    let (count_a, count_b) = (served("A"), served("B"));
    assert_eq!(
        count_a + count_b,
        requests,
        "the weight-0 variant takes no untargeted traffic"
    );
    // 3 : 1 of 400 is 300 : 100; the binomial standard deviation is under 9.
    assert!(
        (255..=345).contains(&count_a),
        "A served {count_a} of {requests}"
    );
    for targeted in &results[requests..] {
        assert_eq!(targeted["status"], 200);
        assert_eq!(
            header(targeted, "x-amzn-invoked-production-variant"),
            "Shadow"
        );
        // The XGBoost package's own default answer: one probability as text/csv.
        assert_eq!(header(targeted, "content-type"), "text/csv");
        let p: f64 = targeted["text"].as_str().unwrap().trim().parse().unwrap();
        assert!((0.0..=1.0).contains(&p));
    }
    let metrics = server.metrics();
    assert_eq!(
        metric(
            &metrics,
            "tern_invocations_total{variant=\"A\",code=\"200\"}"
        ),
        Some(count_a as f64),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "tern_invocations_total{variant=\"Shadow\",code=\"200\"}"
        ),
        Some(3.0),
        "{metrics}"
    );
    assert!(server.terminate());
}

#[test]
fn a_pipeline_answers_as_its_packages_chained() {
    let packages = packages();
    let chain = format!("{},{}", path(&packages.xgboost), path(&packages.stage_two));
    let mut server = Served::start(&["--pipeline", &chain], &[]);
    let intermediate = tern_ok(&[
        "predict",
        path(&packages.xgboost),
        "--input",
        path(&packages.rows_csv),
        "--accept",
        "text/csv",
    ]);
    let stage_one = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(stage_one.path(), intermediate).unwrap();
    let expected = tern_ok(&[
        "predict",
        path(&packages.stage_two),
        "--input",
        path(stage_one.path()),
        "--accept",
        "application/json",
    ]);
    let results = server.client(json!([
        {"rows": packages.rows, "serializer": "csv", "accept": "application/json", "deserializer": "json"},
    ]));
    assert_eq!(results[0]["status"], 200, "{}", results[0]["text"]);
    assert_eq!(results[0]["text"].as_str().unwrap(), expected);
    assert_eq!(
        results[0]["decoded"]["predictions"]
            .as_array()
            .unwrap()
            .len(),
        packages.rows.len()
    );
    assert!(server.terminate());
}

#[test]
fn the_bearer_token_guards_every_route_but_ping() {
    let packages = packages();
    let mut server = Served::start(
        &[path(&packages.linear)],
        &[("TERN_AUTH_TOKEN", "s3cret-token".to_string())],
    );
    let row = vec![packages.rows[0].clone()];
    let results = server.client(json!([
        {"name": "no token", "rows": row, "serializer": "csv"},
        {"name": "wrong token", "rows": row, "serializer": "csv", "headers": {"Authorization": "Bearer nope"}},
        {"name": "token", "rows": row, "serializer": "csv", "headers": {"Authorization": "Bearer s3cret-token"}},
        {"name": "metrics without token", "method": "GET", "path": "/metrics"},
        {"name": "metrics", "method": "GET", "path": "/metrics", "headers": {"Authorization": "Bearer s3cret-token"}},
        {"name": "ping", "method": "GET", "path": "/ping"},
    ]));
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [401, 401, 200, 401, 200, 200], "{results:?}");
    assert_eq!(header(&results[0], "www-authenticate"), "Bearer");
    assert!(server.terminate());
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_logs_are_json() {
    let packages = packages();
    let mut server = Served::start(&[path(&packages.linear), "--log-format", "json"], &[]);
    let body = std::fs::read(&packages.rows_csv).unwrap();
    let head = format!(
        "POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let half = body.len() / 2;
    let mut stream = TcpStream::connect(server.address()).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..half]).unwrap();
    let mut in_flight = false;
    for _ in 0..2400 {
        if server.metrics().contains("tern_invocations_in_flight 1\n") {
            in_flight = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(in_flight, "the half-sent request never reached the handler");

    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    // Shutdown has begun once new connections are refused; the process waits for the open request.
    let mut refused = false;
    for _ in 0..2400 {
        if TcpStream::connect(server.address()).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(refused, "still accepting connections after SIGTERM");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "tern serve exited with a request in flight"
    );
    stream.write_all(&body[half..]).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let reply = parse_reply(&raw);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let expected = tern_ok(&[
        "predict",
        path(&packages.linear),
        "--input",
        path(&packages.rows_csv),
        "--accept",
        "application/json",
    ]);
    assert_eq!(reply.text(), expected);
    assert!(
        server.wait_exit(),
        "tern serve exits 0 after SIGTERM:\n{}",
        server.logs()
    );

    let logs = server.logs();
    let events: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let message = |event: &Value| {
        event["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        events
            .iter()
            .any(|e| message(e) == "invocation" && e["fields"]["status"] == 200),
        "{logs}"
    );
    assert!(
        events
            .iter()
            .any(|e| message(e).starts_with("shutting down")),
        "{logs}"
    );
}

#[test]
fn the_container_form_serves_the_model_directory_on_sagemaker_bind_to_port() {
    let packages = packages();
    // What SageMaker does with ModelDataUrl: a model.tar.gz of the package, extracted into /opt/ml/model.
    let work = tempfile::tempdir().unwrap();
    let tarball = work.path().join("model.tar.gz");
    let model_dir = work.path().join("model");
    std::fs::create_dir(&model_dir).unwrap();
    let tar = |args: &[&str]| {
        let status = Command::new("tar").args(args).status().expect("tar");
        assert!(status.success(), "tar {args:?}");
    };
    tar(&["czf", path(&tarball), "-C", path(&packages.linear), "."]);
    tar(&["xzf", path(&tarball), "-C", path(&model_dir)]);
    let port = free_port();
    let mut server = Served::start(
        &["--model-dir", path(&model_dir)],
        &[("SAGEMAKER_BIND_TO_PORT", port.to_string())],
    );
    assert_eq!(server.port, port);
    let results = server.client(json!([
        {"rows": [packages.rows[0]], "serializer": "csv", "deserializer": "json"},
    ]));
    assert_eq!(results[0]["status"], 200, "{}", results[0]["text"]);
    assert_eq!(header(&results[0], "content-type"), "application/json");
    assert!(server.terminate());

    // A trained (uncompiled) model in the model directory is refused with what to do.
    let trained = tempfile::tempdir().unwrap();
    std::fs::write(trained.path().join("artifact.json"), "{}").unwrap();
    let output = Command::new(tern_binary())
        .args([
            "serve",
            "--model-dir",
            path(trained.path()),
            "--port",
            &free_port().to_string(),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tern compile"), "{stderr}");
}

#[test]
fn an_empty_token_and_a_payload_limit_above_the_ceiling_are_refused_before_listening() {
    let packages = packages();
    let refused = |args: &[&str], env: &[(&str, String)], expected: &str| {
        let port = free_port().to_string();
        let mut all = vec![path(&packages.linear), "--port", &port];
        all.extend(args);
        let logs = tempfile::NamedTempFile::new().unwrap();
        let mut child = serve_command(&all, env)
            .stdout(Stdio::null())
            .stderr(logs.reopen().unwrap())
            .spawn()
            .unwrap();
        let status = exit_within(&mut child, TIMEOUT / 2);
        let stderr = std::fs::read_to_string(logs.path()).unwrap();
        let status = status.unwrap_or_else(|| panic!("{args:?} {env:?}: still serving:\n{stderr}"));
        assert!(!status.success(), "{args:?} {env:?}: {status}");
        assert!(stderr.contains(expected), "{args:?} {env:?}: {stderr}");
        assert!(
            !stderr.contains("listening"),
            "{args:?} {env:?}: listened first:\n{stderr}"
        );
    };
    refused(&["--auth-token", ""], &[], "--auth-token empty");
    refused(&["--auth-token", "  "], &[], "--auth-token empty");
    refused(
        &[],
        &[("TERN_AUTH_TOKEN", String::new())],
        "TERN_AUTH_TOKEN is set but empty",
    );
    refused(
        &["--max-payload-mb", "100000"],
        &[],
        "--max-payload-mb: at most 100",
    );
    refused(&["--workers", "0"], &[], "--workers");
}

#[test]
fn the_address_is_loopback_by_default_and_every_interface_in_the_container_form() {
    let packages = packages();
    let mut server = Served::start_as_given(&[path(&packages.linear)], &[]);
    assert_eq!(
        listening_address(server.port),
        Some(std::net::Ipv4Addr::LOCALHOST)
    );
    assert!(server.terminate());

    let mut server = Served::start_as_given(&[path(&packages.linear), "--bind", "0.0.0.0"], &[]);
    assert_eq!(
        listening_address(server.port),
        Some(std::net::Ipv4Addr::UNSPECIFIED)
    );
    assert!(server.terminate());

    // The package folder holds manifest.json at its root, as /opt/ml/model does once SageMaker extracted it.
    let port = free_port();
    let mut server = Served::start_as_given(
        &["--model-dir", path(&packages.linear)],
        &[("SAGEMAKER_BIND_TO_PORT", port.to_string())],
    );
    assert_eq!(
        listening_address(port),
        Some(std::net::Ipv4Addr::UNSPECIFIED)
    );
    assert!(server.terminate());
}

#[test]
fn a_declared_content_length_reserves_no_memory() {
    let packages = packages();
    let mut server = Served::start(&[path(&packages.linear), "--max-payload-mb", "100"], &[]);
    let pid = server.child.id();
    let reserved_before = status_kib(pid, "VmSize");
    // Clients that declare the largest body allowed and send a few bytes of it.
    let declared = 100 * 1024 * 1024;
    let head = format!(
        "POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nContent-Length: {declared}\r\n\r\n1.0,"
    );
    let clients = 16;
    let mut streams: Vec<TcpStream> = (0..clients)
        .map(|_| {
            let mut stream = TcpStream::connect(server.address()).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    let expected = format!("tern_invocations_in_flight {clients}\n");
    let mut all_in_flight = false;
    for _ in 0..2400 {
        if server.metrics().contains(&expected) {
            all_in_flight = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(all_in_flight, "{}", server.metrics());
    let reserved = status_kib(pid, "VmSize").saturating_sub(reserved_before);
    // Reserving each declared body would take 1600 MiB of address space.
    assert!(
        reserved < 800 * 1024,
        "{clients} bodies declared at {declared} bytes reserved {reserved} KiB"
    );

    // A declared length past the limit is refused before any byte of the body is read.
    let mut stream = TcpStream::connect(server.address()).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(
            b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nContent-Length: 50000000000\r\n\r\n",
        )
        .unwrap();
    let reply = parse_reply(&read_until_closed(&mut stream).unwrap());
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(
        reply.text().contains("50000000000 bytes"),
        "{}",
        reply.text()
    );

    assert_eq!(server.request("GET", "/ping", &[], b"").status, 200);
    streams.clear();
    assert_eq!(server.request("GET", "/ping", &[], b"").status, 200);
    assert!(server.terminate(), "{}", server.logs());
}

#[test]
fn a_json_request_takes_memory_in_proportion_to_its_payload() {
    let packages = packages();
    let mut server = Served::start(&[path(&packages.linear), "--max-payload-mb", "7"], &[]);
    let pid = server.child.id();
    let payload = 6 * 1024 * 1024;
    let json = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ];
    let peak_before = status_kib(pid, "VmHWM");

    // 1.5 million one-number records: refused at the first, which has 1 feature of 30.
    let mut tiny = String::from("[");
    while tiny.len() < payload {
        tiny.push_str("[0],");
    }
    tiny.pop();
    tiny.push(']');
    let reply = server.request("POST", "/invocations", &json, tiny.as_bytes());
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.text().contains("expected 30 features, found 1"),
        "{}",
        reply.text()
    );

    // A valid request of about 6 MB: the test rows, repeated.
    let rows: Vec<String> = packages
        .rows
        .iter()
        .map(|row| json!({ "features": row }).to_string())
        .collect();
    let mut valid = String::from("{\"instances\": [");
    let mut count = 0;
    while valid.len() < payload {
        if count > 0 {
            valid.push(',');
        }
        valid.push_str(&rows[count % rows.len()]);
        count += 1;
    }
    valid.push_str("]}");
    let reply = server.request("POST", "/invocations", &json, valid.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["predictions"].as_array().unwrap().len(), count);

    let growth = status_kib(pid, "VmHWM").saturating_sub(peak_before) * 1024;
    assert!(
        growth < 8 * payload as u64,
        "two {payload}-byte JSON requests raised the peak resident set by {growth} bytes"
    );
    assert!(server.terminate(), "{}", server.logs());
}

#[test]
fn slow_and_idle_clients_are_disconnected_after_the_timeouts() {
    let packages = packages();
    let mut server = Served::start(
        &[
            path(&packages.linear),
            "--header-timeout-s",
            "1",
            "--body-timeout-s",
            "1",
            "--idle-timeout-s",
            "1",
        ],
        &[],
    );
    let connect = |first_bytes: &[u8]| {
        let mut stream = TcpStream::connect(server.address()).unwrap();
        // The bound on "eventually": thirty times the configured timeouts.
        stream.set_read_timeout(Some(TIMEOUT / 2)).unwrap();
        stream.write_all(first_bytes).unwrap();
        stream
    };
    let partial_head =
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n";
    let partial_body =
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\n1.0,2.0";
    let mut slow_heads: Vec<TcpStream> = (0..50).map(|_| connect(partial_head)).collect();
    let mut slow_bodies: Vec<TcpStream> = (0..50).map(|_| connect(partial_body)).collect();
    let mut idle = connect(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");

    for stream in &mut slow_heads {
        read_until_closed(stream).expect("a connection sending its headers slowly is closed");
    }
    for stream in &mut slow_bodies {
        let raw =
            read_until_closed(stream).expect("a connection sending its body slowly is closed");
        let reply = parse_reply(&raw);
        assert_eq!(reply.status, 408, "{}", reply.text());
        assert!(reply.text().contains("body timeout"), "{}", reply.text());
    }
    // The kept-alive connection got its answer, then was closed for idling.
    let raw = read_until_closed(&mut idle).expect("an idle kept-alive connection is closed");
    assert_eq!(parse_reply(&raw).status, 200);

    assert_eq!(server.request("GET", "/ping", &[], b"").status, 200);
    let metrics = server.metrics();
    assert_eq!(
        metric(
            &metrics,
            "tern_invocations_total{variant=\"AllTraffic\",code=\"408\"}"
        ),
        Some(50.0),
        "{metrics}"
    );
    assert!(server.terminate(), "{}", server.logs());
}

#[test]
fn sigterm_stops_the_server_within_the_drain_timeout_while_a_slow_client_holds_a_connection() {
    let packages = packages();
    let mut server = Served::start(&[path(&packages.linear), "--drain-timeout-s", "1"], &[]);
    let mut stream = TcpStream::connect(server.address()).unwrap();
    stream
        .write_all(
            b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\n1.0,",
        )
        .unwrap();
    let mut in_flight = false;
    for _ in 0..2400 {
        if server.metrics().contains("tern_invocations_in_flight 1\n") {
            in_flight = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(in_flight, "the slow request never reached the handler");

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The client never finishes its body: the server must stop anyway, thirty times the drain timeout at the most.
    let exited = exit_within(&mut server.child, TIMEOUT / 2);
    let logs = server.logs();
    let exited = exited.unwrap_or_else(|| panic!("still running after SIGTERM:\n{logs}"));
    assert!(exited.success(), "{exited}:\n{logs}");
    assert!(logs.contains("drain timeout"), "{logs}");
}
