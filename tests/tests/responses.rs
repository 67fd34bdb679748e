//! A model and the package compiled from it answer alike: `tern predict MODEL.tar.gz` (the trainer's predictor) and
//! `tern predict PACKAGE/` (runtime-core) write every response content type in the same shape, with the same fields
//! in the same order, and values within the tolerance the package's manifest states, for every algorithm and response
//! shape. Both go through `tern_formats::response`; this suite is what keeps a second encoder from growing back.

use std::fs;
use std::path::{Path, PathBuf};

use prost::Message;
use serde_json::Value;
use tern_formats::recordio::{proto, FrameReader};
use tern_tests::{dataset, tern_ok};

/// One trained model whose two answers are compared.
struct Case {
    name: &'static str,
    algorithm: &'static str,
    dataset: &'static str,
    hyperparameters: &'static [&'static str],
    /// Also compare the `verbose=true` responses (k-NN).
    verbose: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "linear-learner-binary",
        algorithm: "linear-learner",
        dataset: "breast_cancer",
        hyperparameters: &["predictor_type=binary_classifier", "epochs=3"],
        verbose: false,
    },
    Case {
        name: "linear-learner-multiclass",
        algorithm: "linear-learner",
        dataset: "digits",
        hyperparameters: &[
            "predictor_type=multiclass_classifier",
            "num_classes=10",
            "epochs=3",
        ],
        verbose: false,
    },
    Case {
        name: "linear-learner-regressor",
        algorithm: "linear-learner",
        dataset: "diabetes",
        hyperparameters: &["predictor_type=regressor", "epochs=3"],
        verbose: false,
    },
    Case {
        name: "xgboost-binary",
        algorithm: "xgboost",
        dataset: "breast_cancer",
        hyperparameters: &["objective=binary:logistic", "num_round=10", "max_depth=3"],
        verbose: false,
    },
    Case {
        name: "xgboost-softprob",
        algorithm: "xgboost",
        dataset: "digits",
        hyperparameters: &[
            "objective=multi:softprob",
            "num_class=10",
            "num_round=5",
            "max_depth=3",
        ],
        verbose: false,
    },
    Case {
        name: "xgboost-softmax",
        algorithm: "xgboost",
        dataset: "digits",
        hyperparameters: &[
            "objective=multi:softmax",
            "num_class=10",
            "num_round=5",
            "max_depth=3",
        ],
        verbose: false,
    },
    Case {
        name: "kmeans",
        algorithm: "kmeans",
        dataset: "digits",
        hyperparameters: &["feature_dim=64", "k=10", "seed=1"],
        verbose: false,
    },
    Case {
        name: "pca",
        algorithm: "pca",
        dataset: "digits",
        hyperparameters: &["feature_dim=64", "num_components=5", "mini_batch_size=200"],
        verbose: false,
    },
    Case {
        name: "knn-classifier",
        algorithm: "knn",
        dataset: "digits",
        hyperparameters: &[
            "feature_dim=64",
            "k=5",
            "predictor_type=classifier",
            "sample_size=2000",
        ],
        verbose: true,
    },
    Case {
        name: "knn-regressor",
        algorithm: "knn",
        dataset: "diabetes",
        hyperparameters: &[
            "feature_dim=10",
            "k=7",
            "predictor_type=regressor",
            "sample_size=2000",
        ],
        verbose: true,
    },
    Case {
        name: "randomcutforest",
        algorithm: "randomcutforest",
        dataset: "digits",
        hyperparameters: &[
            "feature_dim=64",
            "num_trees=50",
            "num_samples_per_tree=128",
            "seed=1",
        ],
        verbose: false,
    },
];

const ACCEPTS: [&str; 4] = [
    "application/json",
    "application/jsonlines",
    "text/csv",
    "application/x-recordio-protobuf",
];

/// The manifest's stated agreement between a package and its model.
#[derive(Clone, Copy)]
struct Tolerance {
    absolute: f64,
    relative: f64,
}

impl Tolerance {
    fn read(package: &Path) -> Tolerance {
        let manifest: Value =
            serde_json::from_slice(&fs::read(package.join("manifest.json")).unwrap()).unwrap();
        Tolerance {
            absolute: manifest["tolerance"]["absolute"].as_f64().unwrap(),
            relative: manifest["tolerance"]["relative"].as_f64().unwrap(),
        }
    }

    fn agree(self, model: f64, package: f64) -> bool {
        (model - package).abs() <= self.absolute + self.relative * model.abs()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Trains `case` with `tern train`, compiles it with `tern compile` (fp32), and writes 16 unlabelled test rows;
/// returns (model.tar.gz, package folder, rows file).
fn model_and_package(case: &Case, work: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let out = work.join(case.name);
    let mut args = vec![
        "train",
        "--algorithm",
        case.algorithm,
        "--output-dir",
        path(&out),
        "--quiet",
    ];
    let train = dataset(case.dataset, "train");
    args.extend(["--train", path(&train)]);
    for hp in case.hyperparameters {
        args.extend(["--hp", hp]);
    }
    tern_ok(&args);
    let model = out.join("model.tar.gz");
    let package = out.join("package");
    tern_ok(&["compile", path(&model), "-o", path(&package)]);
    let test = fs::read_to_string(dataset(case.dataset, "test")).unwrap();
    let rows: String = test
        .lines()
        .take(16)
        .map(|line| format!("{}\n", line.split_once(',').unwrap().1))
        .collect();
    let rows_file = out.join("rows.csv");
    fs::write(&rows_file, rows).unwrap();
    (model, package, rows_file)
}

fn predict(model: &Path, rows: &Path, accept: &str) -> Vec<u8> {
    let output = tern_tests::tern(&[
        "predict",
        path(model),
        "--input",
        path(rows),
        "--content-type",
        "text/csv",
        "--accept",
        accept,
    ]);
    assert!(
        output.status.success(),
        "tern predict {} --accept {accept} failed:\n{}",
        model.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Every difference between two JSON values, at its path: a different shape, key order, or a number beyond
/// `tolerance` (integers, the labels of classifiers, must be equal).
fn json_differences(at: &str, model: &Value, package: &Value, tolerance: Tolerance) -> Vec<String> {
    match (model, package) {
        (Value::Object(a), Value::Object(b)) => {
            let (keys_a, keys_b): (Vec<_>, Vec<_>) = (a.keys().collect(), b.keys().collect());
            if keys_a != keys_b {
                return vec![format!("{at}: keys {keys_a:?} vs {keys_b:?}")];
            }
            a.iter()
                .flat_map(|(key, value)| {
                    json_differences(&format!("{at}.{key}"), value, &b[key], tolerance)
                })
                .collect()
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return vec![format!("{at}: {} values vs {}", a.len(), b.len())];
            }
            a.iter()
                .zip(b)
                .enumerate()
                .flat_map(|(i, (x, y))| json_differences(&format!("{at}[{i}]"), x, y, tolerance))
                .collect()
        }
        (Value::Number(a), Value::Number(b)) => {
            let agree = match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => x == y,
                _ => tolerance.agree(a.as_f64().unwrap(), b.as_f64().unwrap()),
            };
            if agree {
                Vec::new()
            } else {
                vec![format!("{at}: {a} vs {b}")]
            }
        }
        (a, b) if a == b => Vec::new(),
        (a, b) => vec![format!("{at}: {a} vs {b}")],
    }
}

/// The decoded records of a RecordIO-protobuf response, each as {label key: values}.
fn recordio_records(body: &[u8]) -> Value {
    let mut frames = FrameReader::new(body, "response");
    let mut records = Vec::new();
    while let Some(frame) = frames.next_frame().unwrap() {
        let record = proto::Record::decode(frame).unwrap();
        assert!(record.features.is_empty(), "a response record has features");
        let label: serde_json::Map<String, Value> = record
            .label
            .iter()
            .map(|(key, value)| {
                let Some(proto::value::Kind::Float32Tensor(tensor)) = &value.value else {
                    panic!("label {key} is not a Float32Tensor");
                };
                (key.clone(), serde_json::json!(tensor.values))
            })
            .collect();
        records.push(Value::Object(label));
    }
    Value::Array(records)
}

/// A response body as a JSON value for [`json_differences`]: CSV as a list of lines of numbers.
fn parsed(accept: &str, body: &[u8]) -> Value {
    let text = || String::from_utf8(body.to_vec()).unwrap();
    match accept.split(';').next().unwrap() {
        "application/json" => serde_json::from_slice(body).unwrap(),
        "application/jsonlines" => Value::Array(
            text()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect(),
        ),
        "text/csv" => Value::Array(
            text()
                .lines()
                .map(|line| {
                    Value::Array(
                        line.split(',')
                            .map(|field| {
                                let value: f64 = field.parse().unwrap();
                                if field.contains(['.', 'e', 'E', 'N', 'i']) {
                                    serde_json::json!(value)
                                } else {
                                    serde_json::json!(value as i64)
                                }
                            })
                            .collect(),
                    )
                })
                .collect(),
        ),
        _ => recordio_records(body),
    }
}

#[test]
fn a_model_and_its_package_answer_alike_in_every_response_type() {
    let work = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in CASES {
        let (model, package, rows) = model_and_package(case, work.path());
        let tolerance = Tolerance::read(&package);
        let mut accepts: Vec<String> = ACCEPTS.iter().map(|a| a.to_string()).collect();
        if case.verbose {
            accepts.push("application/json; verbose=true".to_string());
            accepts.push("text/csv; verbose=true".to_string());
        }
        // The response types the package produces (SageMaker documents no CSV for some algorithms; a package
        // refuses what its manifest does not list).
        let manifest: Value =
            serde_json::from_slice(&fs::read(package.join("manifest.json")).unwrap()).unwrap();
        let produces: Vec<&str> = manifest["produces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        for accept in &accepts {
            let mime = accept.split(';').next().unwrap();
            if !produces.is_empty() && !produces.contains(&mime) {
                continue;
            }
            let from_model = predict(&model, &rows, accept);
            let from_package = predict(&package, &rows, accept);
            let differences = json_differences(
                "response",
                &parsed(accept, &from_model),
                &parsed(accept, &from_package),
                tolerance,
            );
            compared += 1;
            if !differences.is_empty() {
                failures.push(format!(
                    "{} --accept {accept}: {}\n  model:   {}\n  package: {}",
                    case.name,
                    differences
                        .into_iter()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join("; "),
                    String::from_utf8_lossy(&from_model[..from_model.len().min(200)]),
                    String::from_utf8_lossy(&from_package[..from_package.len().min(200)]),
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} responses differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
