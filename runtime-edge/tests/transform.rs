//! `tern transform` on a Linear Learner trained on scikit-learn's breast_cancer set (tests/data/generated): local
//! folders and a real S3 API (moto's server on loopback), outputs compared with `tern predict` / `Package` on the same
//! rows, DataProcessing cases worked by hand from SageMaker's documented examples, and kill-and-resume of the CLI.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tern_edge::transform::{
    self, BatchStrategy, DataProcessing, JsonPath, Location, SplitType, TransformConfig,
    TransformError,
};
use tern_formats::observe::Progress;
use tern_runtime::Package;
use tern_trainer::algorithms::linear_learner::LinearLearner;
use tern_trainer::algorithms::xgboost::XGBoost;
use tern_trainer::data::{Channel, TrainingInput};
use tern_trainer::{Algorithm, Hyperparameters, TrainingContext};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Fixture {
    _dir: tempfile::TempDir,
    /// Linear Learner: takes text/csv, application/json, RecordIO; answers JSON, JSON Lines, RecordIO.
    package_dir: PathBuf,
    package: Package,
    /// XGBoost (binary:logistic): takes text/csv, libsvm, RecordIO; answers text/csv (one score per row), JSON.
    xgboost: Package,
    /// The test split's feature rows (label dropped), as CSV lines.
    rows: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let data = repo_root().join("tests/data/generated/breast_cancer");
        assert!(
            data.join("train.csv").exists(),
            "{} is missing: run tests/python/export_datasets.py",
            data.display()
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
        let raw: BTreeMap<String, String> = [("objective", "binary:logistic"), ("num_round", "20")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let hyperparameters =
            Hyperparameters::parse(XGBoost.name(), XGBoost.hyperparameters(), &raw).unwrap();
        let artifact = XGBoost
            .train(&hyperparameters, &input, &mut TrainingContext::new(true))
            .unwrap();
        tern_registry::compile(&artifact, &options)
            .unwrap()
            .write(&dir.path().join("xgboost"))
            .unwrap();
        let rows = fs::read_to_string(data.join("test.csv"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_once(',').unwrap().1.to_string())
            .collect();
        Fixture {
            package: Package::load(&package_dir).unwrap(),
            xgboost: Package::load(&dir.path().join("xgboost")).unwrap(),
            package_dir,
            _dir: dir,
            rows,
        }
    })
}

/// What `tern predict` answers (Package::predict_stream, the function it calls) for `rows` as `accept`.
fn predicted(rows: &[String], accept: &str) -> String {
    predicted_by(&fixture().package, rows, accept)
}

fn predicted_by(package: &Package, rows: &[String], accept: &str) -> String {
    let body = rows.join("\n") + "\n";
    let mut out = Vec::new();
    package
        .predict_stream(body.as_bytes(), "text/csv", accept, &mut out)
        .unwrap();
    String::from_utf8(out).unwrap()
}

/// One prediction per row as JSON (`{"score":…,"predicted_label":…}`).
fn predictions(rows: &[String]) -> Vec<Value> {
    predicted(rows, "application/jsonlines")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn tern_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("tern");
    assert!(
        binary.exists(),
        "{} is missing: build it first (scripts/test.sh does: cargo build --release --workspace --bins)",
        binary.display()
    );
    binary
}

fn base_config(content_type: &str, accept: &str) -> TransformConfig {
    TransformConfig {
        content_type: content_type.to_string(),
        accept: accept.to_string(),
        ..TransformConfig::default()
    }
}

fn run_local(
    input: &Path,
    output: &Path,
    config: &TransformConfig,
) -> Result<transform::TransformSummary, TransformError> {
    run_local_with(&fixture().package, input, output, config)
}

fn run_local_with(
    package: &Package,
    input: &Path,
    output: &Path,
    config: &TransformConfig,
) -> Result<transform::TransformSummary, TransformError> {
    transform::transform(
        package,
        &Location::Local(input.to_path_buf()),
        &Location::Local(output.to_path_buf()),
        config,
        &Progress::hidden(),
    )
}

/// Writes the test rows into `parts` files `part-<i>.csv` under `dir`; returns each file's rows.
fn write_parts(dir: &Path, parts: usize) -> Vec<Vec<String>> {
    fs::create_dir_all(dir).unwrap();
    let rows = &fixture().rows;
    let chunk = rows.len().div_ceil(parts);
    rows.chunks(chunk)
        .enumerate()
        .map(|(i, part)| {
            fs::write(dir.join(format!("part-{i}.csv")), part.join("\n") + "\n").unwrap();
            part.to_vec()
        })
        .collect()
}

#[test]
fn folder_of_csv_files_equals_predict_for_every_batch_strategy() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in");
    let parts = write_parts(&input, 3);
    for (strategy, max_mb, accept, name) in [
        (
            BatchStrategy::MultiRecord,
            6,
            "application/jsonlines",
            "multi",
        ),
        (
            BatchStrategy::SingleRecord,
            6,
            "application/jsonlines",
            "single",
        ),
        (BatchStrategy::MultiRecord, 1, "application/json", "json"),
    ] {
        let output = work.path().join(name);
        let config = TransformConfig {
            batch_strategy: strategy,
            max_payload_mb: max_mb,
            ..base_config("text/csv", accept)
        };
        let summary = run_local(&input, &output, &config).unwrap();
        assert_eq!(summary.transformed.len(), 3);
        let rows: usize = parts.iter().map(Vec::len).sum();
        assert_eq!(summary.records as usize, rows);
        if strategy == BatchStrategy::SingleRecord {
            assert_eq!(summary.requests as usize, rows);
        } else {
            assert_eq!(summary.requests, 3, "each small file fits one request");
        }
        for (i, part) in parts.iter().enumerate() {
            let got = fs::read_to_string(output.join(format!("part-{i}.csv.out"))).unwrap();
            // AssembleWith Line ends each request's output with a line break (JSON Lines already do).
            let mut expected = predicted(part, accept);
            if !expected.ends_with('\n') {
                expected.push('\n');
            }
            assert_eq!(got, expected, "{name} part {i}");
        }
    }
}

#[test]
fn multi_record_batches_never_exceed_max_payload() {
    // 1 MB of rows per request: a file of ~3 MB needs several requests, and the output is still the same rows in order.
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("big.csv");
    let rows: Vec<String> = fixture()
        .rows
        .iter()
        .cycle()
        .take(12_000)
        .cloned()
        .collect();
    fs::write(&input, rows.join("\n") + "\n").unwrap();
    let size = fs::metadata(&input).unwrap().len() as usize;
    let config = TransformConfig {
        max_payload_mb: 1,
        ..base_config("text/csv", "application/jsonlines")
    };
    let summary = run_local(&input, &work.path().join("out"), &config).unwrap();
    assert!(
        summary.requests as usize >= size.div_ceil(1024 * 1024),
        "{summary:?}"
    );
    let got = fs::read_to_string(work.path().join("out/big.csv.out")).unwrap();
    assert_eq!(got, predicted(&rows, "application/jsonlines"));
}

#[test]
fn a_record_over_max_payload_names_its_line() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in.csv");
    let long = vec!["1.0"; 400_000].join(",");
    fs::write(&input, format!("{}\n{long}\n", fixture().rows[0])).unwrap();
    let config = TransformConfig {
        max_payload_mb: 1,
        ..base_config("text/csv", "application/jsonlines")
    };
    match run_local(&input, &work.path().join("out"), &config) {
        Err(TransformError::PayloadTooLarge { record, .. }) => assert_eq!(record, 2),
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    assert!(
        !work.path().join("out/in.csv.out").exists(),
        "nothing half-written"
    );
    let leftovers: Vec<_> = fs::read_dir(work.path().join("out")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn split_none_and_recordio_inputs() {
    let work = tempfile::tempdir().unwrap();
    let rows = &fixture().rows[..20];
    // SplitType None: the whole file is one request.
    let csv = work.path().join("whole.csv");
    fs::write(&csv, rows.join("\n") + "\n").unwrap();
    let config = TransformConfig {
        split_type: SplitType::None,
        ..base_config("text/csv", "application/json")
    };
    let summary = run_local(&csv, &work.path().join("none"), &config).unwrap();
    assert_eq!((summary.records, summary.requests), (1, 1));
    let got = fs::read_to_string(work.path().join("none/whole.csv.out")).unwrap();
    assert_eq!(
        got,
        predicted(rows, "application/json") + "\n",
        "AssembleWith Line adds the line break"
    );

    // SplitType RecordIO over RecordIO-protobuf records written by tern-formats, single-record requests.
    let mut body = Vec::new();
    {
        let mut writer = tern_formats::recordio::RecordIoWriter::new(&mut body);
        for row in rows {
            let values: Vec<f32> = row.split(',').map(|v| v.parse().unwrap()).collect();
            writer
                .write_record(&tern_formats::Record {
                    features: tern_formats::Features::Dense(values),
                    label: None,
                    weight: None,
                })
                .unwrap();
        }
        writer.into_inner().unwrap();
    }
    let recordio = work.path().join("rows.rec");
    fs::write(&recordio, &body).unwrap();
    let config = TransformConfig {
        split_type: SplitType::RecordIo,
        batch_strategy: BatchStrategy::SingleRecord,
        ..base_config("application/x-recordio-protobuf", "application/jsonlines")
    };
    let summary = run_local(&recordio, &work.path().join("rec"), &config).unwrap();
    assert_eq!((summary.records, summary.requests), (20, 20));
    let got = fs::read_to_string(work.path().join("rec/rows.rec.out")).unwrap();
    assert_eq!(got, predicted(rows, "application/jsonlines"));
}

#[test]
fn csv_id_column_filtered_out_then_joined_back() {
    // SageMaker's documented CSV case: InputFilter "$[1:]" drops the id column, JoinSource Input appends the
    // output to the row, OutputFilter "$[0,-1]" keeps the id and the last output column.
    let work = tempfile::tempdir().unwrap();
    let rows = &fixture().rows[..25];
    let input = work.path().join("ids.csv");
    let lines: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| format!("id-{i},{row}"))
        .collect();
    fs::write(&input, lines.join("\n") + "\n").unwrap();
    let config = TransformConfig {
        data_processing: DataProcessing {
            input_filter: JsonPath::parse("$[1:]").unwrap(),
            join_input: true,
            output_filter: JsonPath::parse("$[0,-1]").unwrap(),
        },
        ..base_config("text/csv", "text/csv")
    };
    let xgboost = &fixture().xgboost;
    run_local_with(xgboost, &input, &work.path().join("out"), &config).unwrap();
    let got = fs::read_to_string(work.path().join("out/ids.csv.out")).unwrap();
    // XGBoost's text/csv answer is one score per row: the last column of the joined row.
    let csv_out = predicted_by(xgboost, rows, "text/csv");
    let expected: String = csv_out
        .lines()
        .enumerate()
        .map(|(i, score)| format!("id-{i},{score}\n"))
        .collect();
    assert_eq!(got, expected);

    // Without an output filter the whole joined row is written: the input row, then the output columns.
    let config = TransformConfig {
        data_processing: DataProcessing {
            output_filter: JsonPath::parse("$").unwrap(),
            ..config.data_processing.clone()
        },
        ..config.clone()
    };
    run_local_with(xgboost, &input, &work.path().join("joined"), &config).unwrap();
    let got = fs::read_to_string(work.path().join("joined/ids.csv.out")).unwrap();
    let expected: String = lines
        .iter()
        .zip(csv_out.lines())
        .map(|(line, output)| format!("{line},{output}\n"))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn json_lines_features_filtered_and_joined_as_sagemaker_output() {
    // SageMaker's documented JSON case: InputFilter "$.features", JoinSource Input, OutputFilter
    // "$['id','SageMakerOutput']". Each line is one application/json request (Linear Learner takes no JSON Lines),
    // so requests carry one record each.
    let work = tempfile::tempdir().unwrap();
    let rows = &fixture().rows[..10];
    let input = work.path().join("records.jsonl");
    let records: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let features: Vec<f64> = row.split(',').map(|v| v.parse().unwrap()).collect();
            json!({"id": i, "source": "clinic", "features": features})
        })
        .collect();
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    fs::write(&input, text).unwrap();
    let expected: Vec<Value> = predictions(rows)
        .into_iter()
        .enumerate()
        .map(|(i, p)| json!({"id": i, "SageMakerOutput": p}))
        .collect();
    for strategy in [BatchStrategy::SingleRecord] {
        let config = TransformConfig {
            batch_strategy: strategy,
            data_processing: DataProcessing {
                input_filter: JsonPath::parse("$.features").unwrap(),
                join_input: true,
                output_filter: JsonPath::parse("$['id','SageMakerOutput']").unwrap(),
            },
            ..base_config("application/json", "application/jsonlines")
        };
        let output = work.path().join(format!("{strategy:?}"));
        run_local(&input, &output, &config).unwrap();
        let got: Vec<Value> = fs::read_to_string(output.join("records.jsonl.out"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got, expected, "{strategy:?}");
    }

    // Accept application/json: each record's output is its own {"predictions":[…]} response.
    let config = TransformConfig {
        batch_strategy: BatchStrategy::SingleRecord,
        data_processing: DataProcessing {
            input_filter: JsonPath::parse("$.features").unwrap(),
            join_input: true,
            output_filter: JsonPath::parse("$.SageMakerOutput.predictions[0].score").unwrap(),
        },
        ..base_config("application/json", "application/json")
    };
    run_local(&input, &work.path().join("scores"), &config).unwrap();
    let got: Vec<Value> = fs::read_to_string(work.path().join("scores/records.jsonl.out"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let scores: Vec<Value> = predictions(rows)
        .into_iter()
        .map(|p| p["score"].clone())
        .collect();
    assert_eq!(got, scores);
}

#[test]
fn non_object_json_inputs_are_wrapped_in_sagemaker_input() {
    let work = tempfile::tempdir().unwrap();
    let rows = &fixture().rows[..3];
    let input = work.path().join("arrays.jsonl");
    let arrays: Vec<Value> = rows
        .iter()
        .map(|row| {
            Value::Array(
                row.split(',')
                    .map(|v| json!(v.parse::<f64>().unwrap()))
                    .collect(),
            )
        })
        .collect();
    fs::write(
        &input,
        arrays.iter().map(|a| format!("{a}\n")).collect::<String>(),
    )
    .unwrap();
    let config = TransformConfig {
        batch_strategy: BatchStrategy::SingleRecord,
        data_processing: DataProcessing {
            join_input: true,
            ..DataProcessing::default()
        },
        ..base_config("application/json", "application/jsonlines")
    };
    run_local(&input, &work.path().join("out"), &config).unwrap();
    let got: Vec<Value> = fs::read_to_string(work.path().join("out/arrays.jsonl.out"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: Vec<Value> = arrays
        .into_iter()
        .zip(predictions(rows))
        .map(|(input, p)| json!({"SageMakerInput": input, "SageMakerOutput": p}))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn filter_errors_name_the_expression_file_and_line() {
    let error = JsonPath::parse("$..features").unwrap_err().to_string();
    assert!(
        error.contains("recursive descent") && error.contains("character 2"),
        "{error}"
    );

    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("records.jsonl");
    fs::write(&input, "{\"features\": [1]}\n{\"f\": [1]}\n").unwrap();
    let config = TransformConfig {
        data_processing: DataProcessing {
            input_filter: JsonPath::parse("$.features").unwrap(),
            ..DataProcessing::default()
        },
        ..base_config("application/json", "application/jsonlines")
    };
    let error = run_local(&input, &work.path().join("out"), &config).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("records.jsonl: record 2: InputFilter")
            && message.contains("no field \"features\""),
        "{message}"
    );

    // Filters need CSV or JSON.
    let config = TransformConfig {
        data_processing: DataProcessing {
            input_filter: JsonPath::parse("$[1:]").unwrap(),
            ..DataProcessing::default()
        },
        ..base_config("application/x-recordio-protobuf", "application/jsonlines")
    };
    assert!(matches!(
        config.validate(),
        Err(TransformError::Config { .. })
    ));
}

#[test]
fn the_model_refusing_a_row_names_the_records_of_the_request() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("bad.csv");
    let rows = &fixture().rows;
    fs::write(&input, format!("{}\n{}\n1,2,3\n", rows[0], rows[1])).unwrap();
    let config = TransformConfig {
        batch_strategy: BatchStrategy::SingleRecord,
        ..base_config("text/csv", "application/jsonlines")
    };
    let message = run_local(&input, &work.path().join("out"), &config)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("bad.csv: records 3..=3") && message.contains("expected 30 features"),
        "{message}"
    );
    assert!(!work.path().join("out/bad.csv.out").exists());
}

/// Every file under `dir` (name → bytes), partial outputs included.
fn folder_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect()
}

#[test]
fn max_concurrent_transforms_writes_what_the_sequential_run_writes() {
    let work = tempfile::tempdir().unwrap();
    let rows = &fixture().rows;
    let parts = work.path().join("parts");
    write_parts(&parts, 5);
    // SplitType None: one request per file, so concurrency spans inputs.
    let singles = work.path().join("singles");
    fs::create_dir_all(&singles).unwrap();
    for (i, row) in rows.iter().take(23).enumerate() {
        fs::write(singles.join(format!("row-{i:02}.csv")), format!("{row}\n")).unwrap();
    }
    // An id column in front, filtered out of the request and joined back.
    let with_ids = work.path().join("with-ids");
    fs::create_dir_all(&with_ids).unwrap();
    for (part, chunk) in rows.chunks(rows.len().div_ceil(4)).enumerate() {
        let text: String = chunk
            .iter()
            .enumerate()
            .map(|(i, row)| format!("id-{part}-{i},{row}\n"))
            .collect();
        fs::write(with_ids.join(format!("part-{part}.csv")), text).unwrap();
    }
    let joined = DataProcessing {
        input_filter: JsonPath::parse("$[1:]").unwrap(),
        join_input: true,
        output_filter: JsonPath::parse("$[0,-1]").unwrap(),
    };
    let cases = [
        (
            &parts,
            TransformConfig {
                batch_strategy: BatchStrategy::SingleRecord,
                ..base_config("text/csv", "application/jsonlines")
            },
            "single-record",
        ),
        (
            &with_ids,
            TransformConfig {
                batch_strategy: BatchStrategy::SingleRecord,
                data_processing: joined,
                ..base_config("text/csv", "application/json")
            },
            "single-record, joined and filtered",
        ),
        (
            &parts,
            base_config("text/csv", "application/json"),
            "multi-record",
        ),
        (
            &singles,
            TransformConfig {
                split_type: SplitType::None,
                ..base_config("text/csv", "application/jsonlines")
            },
            "split none",
        ),
    ];
    for (number, (input, config, name)) in cases.into_iter().enumerate() {
        let sequential_dir = work.path().join(format!("out-{number}-1"));
        let sequential = run_local(input, &sequential_dir, &config).unwrap();
        let expected = folder_contents(&sequential_dir);
        assert_eq!(
            expected.len(),
            fs::read_dir(input).unwrap().count(),
            "{name}"
        );
        for concurrency in [2, 4, 16] {
            let dir = work.path().join(format!("out-{number}-{concurrency}"));
            let config = TransformConfig {
                max_concurrent_transforms: concurrency,
                ..config.clone()
            };
            let summary = run_local(input, &dir, &config).unwrap();
            assert_eq!(summary, sequential, "{name}, {concurrency} in flight");
            assert!(
                folder_contents(&dir) == expected,
                "{name}: {concurrency} in flight wrote other outputs than one at a time"
            );
        }
    }

    // A record the model refuses in the third of five inputs: the same error, the same finished outputs, no
    // partial files, whatever the concurrency.
    let faulty = work.path().join("faulty");
    let parts_rows = write_parts(&faulty, 5);
    let mut third = parts_rows[2].clone();
    third.insert(3, "1,2,3".to_string());
    fs::write(faulty.join("part-2.csv"), third.join("\n") + "\n").unwrap();
    let config = TransformConfig {
        batch_strategy: BatchStrategy::SingleRecord,
        ..base_config("text/csv", "application/jsonlines")
    };
    let sequential_dir = work.path().join("faulty-1");
    let sequential = run_local(&faulty, &sequential_dir, &config)
        .unwrap_err()
        .to_string();
    assert!(
        sequential.contains("part-2.csv: records 4..=4"),
        "{sequential}"
    );
    let expected = folder_contents(&sequential_dir);
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        ["part-0.csv.out", "part-1.csv.out"]
    );
    for concurrency in [4, 16] {
        let dir = work.path().join(format!("faulty-{concurrency}"));
        let config = TransformConfig {
            max_concurrent_transforms: concurrency,
            ..config.clone()
        };
        let error = run_local(&faulty, &dir, &config).unwrap_err().to_string();
        assert_eq!(error, sequential, "{concurrency} in flight");
        assert!(folder_contents(&dir) == expected, "{concurrency} in flight");
    }

    // SageMaker's bound on what may be in flight.
    let config = TransformConfig {
        max_concurrent_transforms: 20,
        ..base_config("text/csv", "application/jsonlines")
    };
    match run_local(&parts, &work.path().join("refused"), &config) {
        Err(TransformError::Config { field, .. }) => assert_eq!(field, "MaxConcurrentTransforms"),
        other => panic!("{other:?}"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// moto's S3 server on a free loopback port, stopped on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let binary = repo_root().join(".venv/bin/moto_server");
        assert!(
            binary.exists(),
            "{} is missing: run scripts/setup-python.sh (moto[server] is in tests/python/requirements.txt)",
            binary.display()
        );
        let port = free_port();
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto_server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, endpoint }
    }

    /// Runs a boto3 snippet against the server (`s3` is the client).
    fn boto3(&self, code: &str) -> String {
        let script = format!(
            "import boto3, sys\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='testing', aws_secret_access_key='testing')\n{code}",
            self.endpoint
        );
        let output = Command::new(repo_root().join(".venv/bin/python"))
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn s3_prefix_to_s3_prefix_through_the_cli_on_a_real_s3_api() {
    let moto = Moto::start();
    let work = tempfile::tempdir().unwrap();
    let parts = write_parts(&work.path().join("in"), 4);
    moto.boto3("s3.create_bucket(Bucket='data')\ns3.create_bucket(Bucket='results')");
    for i in 0..parts.len() {
        let local = work.path().join(format!("in/part-{i}.csv"));
        moto.boto3(&format!(
            "s3.upload_file('{}', 'data', 'batch/input/sub/part-{i}.csv')",
            local.display()
        ));
    }
    // An object outside the prefix is not an input.
    moto.boto3("s3.put_object(Bucket='data', Key='batch/other.csv', Body=b'1,2\\n')");
    let run = || {
        Command::new(tern_binary())
            .args([
                "transform",
                fixture().package_dir.to_str().unwrap(),
                "--input",
                "s3://data/batch/input",
                "--output",
                "s3://results/job-1",
                "--accept",
                "application/jsonlines",
                "--quiet",
            ])
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap()
    };
    let output = run();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing =
        moto.boto3("for o in s3.list_objects_v2(Bucket='results')['Contents']: print(o['Key'])");
    let keys: Vec<&str> = listing.lines().collect();
    assert_eq!(
        keys,
        (0..parts.len())
            .map(|i| format!("job-1/sub/part-{i}.csv.out"))
            .collect::<Vec<_>>()
    );
    for (i, part) in parts.iter().enumerate() {
        let body = moto.boto3(&format!(
            "sys.stdout.write(s3.get_object(Bucket='results', Key='job-1/sub/part-{i}.csv.out')['Body'].read().decode())"
        ));
        assert_eq!(body, predicted(part, "application/jsonlines"), "part {i}");
    }
    // A re-run finds every output and skips it.
    let modified = moto.boto3(
        "for o in s3.list_objects_v2(Bucket='results')['Contents']: print(o['LastModified'].isoformat(), o['ETag'])",
    );
    let output = run();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let again = moto.boto3(
        "for o in s3.list_objects_v2(Bucket='results')['Contents']: print(o['LastModified'].isoformat(), o['ETag'])",
    );
    assert_eq!(modified, again);
}

#[test]
fn cli_output_equals_tern_predict() {
    let work = tempfile::tempdir().unwrap();
    let parts = write_parts(&work.path().join("in"), 2);
    let status = Command::new(tern_binary())
        .args([
            "transform",
            fixture().package_dir.to_str().unwrap(),
            "--input",
            work.path().join("in").to_str().unwrap(),
            "--output",
            work.path().join("out").to_str().unwrap(),
            "--accept",
            "application/json",
            "--batch-strategy",
            "SingleRecord",
            "--assemble-with",
            "None",
            "--quiet",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    for (i, part) in parts.iter().enumerate() {
        let input = work.path().join(format!("in/part-{i}.csv"));
        let predict = Command::new(tern_binary())
            .args([
                "predict",
                fixture().package_dir.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--accept",
                "application/json",
            ])
            .output()
            .unwrap();
        assert!(predict.status.success());
        let expected: Vec<Value> = serde_json::from_slice::<Value>(&predict.stdout).unwrap()
            ["predictions"]
            .as_array()
            .unwrap()
            .clone();
        // SingleRecord + AssembleWith None: one {"predictions":[…]} document per row, concatenated.
        let got = fs::read_to_string(work.path().join(format!("out/part-{i}.csv.out"))).unwrap();
        let documents: Vec<Value> = serde_json::Deserializer::from_str(&got)
            .into_iter::<Value>()
            .map(|d| d.unwrap())
            .collect();
        assert_eq!(documents.len(), part.len());
        let got: Vec<Value> = documents
            .into_iter()
            .map(|d| d["predictions"][0].clone())
            .collect();
        assert_eq!(got, expected, "part {i}");
    }
}

#[test]
fn killed_mid_way_then_resumed_keeps_finished_outputs_and_completes_the_rest() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in");
    let output = work.path().join("out");
    fs::create_dir_all(&input).unwrap();
    let rows: Vec<String> = fixture().rows.iter().cycle().take(2_000).cloned().collect();
    let inputs = 24;
    for i in 0..inputs {
        fs::write(
            input.join(format!("input-{i:02}.csv")),
            rows.join("\n") + "\n",
        )
        .unwrap();
    }
    let expected = predicted(&rows, "application/jsonlines");
    let command = || {
        let mut command = Command::new(tern_binary());
        command
            .args([
                "transform",
                fixture().package_dir.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--batch-strategy",
                "SingleRecord",
                "--quiet",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    };
    let finished = |dir: &Path| -> BTreeMap<String, SystemTime> {
        fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".out"))
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            e.metadata().unwrap().modified().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };

    let mut child = command().spawn().unwrap();
    let start = Instant::now();
    while finished(&output).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "tern transform ended before any output appeared"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no output appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = finished(&output);
    assert!(
        before.len() < inputs,
        "the run finished all {inputs} inputs before it was killed; nothing was left to resume"
    );
    for name in before.keys() {
        assert_eq!(
            fs::read_to_string(output.join(name)).unwrap(),
            expected,
            "{name} is complete"
        );
    }

    let mut stderr = String::new();
    let mut child = command().stderr(Stdio::piped()).spawn().unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");

    let after = finished(&output);
    assert_eq!(after.len(), inputs);
    for (name, modified) in &before {
        assert_eq!(after[name], *modified, "{name} was rewritten");
    }
    for i in 0..inputs {
        let name = format!("input-{i:02}.csv.out");
        assert_eq!(
            fs::read_to_string(output.join(&name)).unwrap(),
            expected,
            "{name}"
        );
    }
    let leftovers: Vec<String> = fs::read_dir(&output)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".out"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}
