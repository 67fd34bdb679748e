//! The GPU executor against tract (runtime-core's `Package::run`) on real packages: every algorithm the compiler
//! lowers to dense ops (Linear Learner binary / multiclass / regressor, K-Means, PCA, k-NN classifier / regressor
//! with a Flat index, and with an IVF index, whose exact probe rule needs CumSum and GatherElements),
//! trained by the trainer on scikit-learn's bundled data sets and compiled at fp32, f16 and int8, run on the
//! held-out and training rows (more than one 1,024-row batch). Every output must agree: float outputs within
//! 1e-5 relative at fp32 (|gpu − tract| ≤ 1e-5 · max(|tract|, 1)) and within the manifest's verified tolerance at
//! f16 / int8; integer outputs (labels, clusters, neighbour indices) exactly. Graphs with ops outside the subset
//! (XGBoost's TreeEnsemble, Random Cut Forest's ai.tern op) must be refused naming the op.
//!
//! Needs a GPU adapter: without a GPU, Mesa's lavapipe (scripts/setup-gpu.sh) with XDG_RUNTIME_DIR set. When none
//! is found the tests print why and return, unless `TERN_REQUIRE_GPU=1` or `CI` is set, where they fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tern_compiler::CompileOptions;
use tern_registry::compile;
mod common;

use common::gpu;
use tern_gpu::{Gpu, GpuError, GpuModel};
use tern_runtime::onnx::ModelProto;
use tern_runtime::{OutputValues, Package, Precision};
use tern_trainer::data::{Channel, Dataset, TrainingInput};
use tern_trainer::{algorithms, TrainingContext};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime-gpu/ sits in the repository")
        .to_path_buf()
}

fn read_csv(path: &Path) -> Dataset {
    Channel::from_path("data", path, None)
        .and_then(|channel| channel.load(None))
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run tests/python/export_datasets.py)",
                path.display()
            )
        })
}

struct Case {
    name: &'static str,
    algorithm: &'static str,
    dataset: &'static str,
    hyperparameters: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        name: "linear-learner binary",
        algorithm: "linear-learner",
        dataset: "breast_cancer",
        hyperparameters: &[("predictor_type", "binary_classifier"), ("epochs", "5")],
    },
    Case {
        name: "linear-learner multiclass",
        algorithm: "linear-learner",
        dataset: "digits",
        hyperparameters: &[
            ("predictor_type", "multiclass_classifier"),
            ("num_classes", "10"),
            ("epochs", "5"),
        ],
    },
    Case {
        name: "linear-learner regressor",
        algorithm: "linear-learner",
        dataset: "diabetes",
        hyperparameters: &[("predictor_type", "regressor"), ("epochs", "5")],
    },
    Case {
        name: "kmeans",
        algorithm: "kmeans",
        dataset: "digits",
        hyperparameters: &[
            ("feature_dim", "64"),
            ("k", "10"),
            ("init_method", "kmeans++"),
            ("seed", "1"),
        ],
    },
    Case {
        name: "pca",
        algorithm: "pca",
        dataset: "digits",
        hyperparameters: &[
            ("feature_dim", "64"),
            ("num_components", "5"),
            ("mini_batch_size", "200"),
        ],
    },
    Case {
        name: "knn classifier",
        algorithm: "knn",
        dataset: "digits",
        hyperparameters: &[
            ("feature_dim", "64"),
            ("k", "5"),
            ("predictor_type", "classifier"),
            ("sample_size", "5000"),
        ],
    },
    Case {
        name: "knn ivf classifier",
        algorithm: "knn",
        dataset: "digits",
        hyperparameters: &[
            ("feature_dim", "64"),
            ("k", "5"),
            ("predictor_type", "classifier"),
            ("sample_size", "5000"),
            ("index_type", "faiss.IVFFlat"),
            ("faiss_index_ivf_nlists", "12"),
            ("faiss_index_ivf_nprobe", "3"),
        ],
    },
    Case {
        name: "knn ivf regressor (inner product)",
        algorithm: "knn",
        dataset: "diabetes",
        hyperparameters: &[
            ("feature_dim", "10"),
            ("k", "7"),
            ("predictor_type", "regressor"),
            ("sample_size", "5000"),
            ("index_type", "faiss.IVFFlat"),
            ("index_metric", "INNER_PRODUCT"),
            ("faiss_index_ivf_nlists", "6"),
            ("faiss_index_ivf_nprobe", "1"),
        ],
    },
    Case {
        name: "knn regressor",
        algorithm: "knn",
        dataset: "diabetes",
        hyperparameters: &[
            ("feature_dim", "10"),
            ("k", "7"),
            ("predictor_type", "regressor"),
            ("sample_size", "5000"),
        ],
    },
];

/// Trains `case` on its train.csv; returns the artifact, the train and the test data.
fn train(
    algorithm: &str,
    dataset: &str,
    hyperparameters: &[(&str, &str)],
) -> (tern_trainer::Artifact, Dataset, Dataset) {
    let dir = repo_root().join("tests/data/generated").join(dataset);
    let train = read_csv(&dir.join("train.csv"));
    let test = read_csv(&dir.join("test.csv"));
    let algorithm = algorithms::find(algorithm).unwrap();
    let raw: BTreeMap<String, String> = hyperparameters
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hyperparameters = algorithm.parse_hyperparameters(&raw).unwrap();
    let input = TrainingInput::new(Channel::from_dataset("train", train.clone()));
    let artifact = algorithm
        .train(&hyperparameters, &input, &mut TrainingContext::new(true))
        .unwrap();
    (artifact, train, test)
}

fn compile_to(
    artifact: &tern_trainer::Artifact,
    precision: Precision,
    train: &Dataset,
    test: &Dataset,
    dir: &Path,
) -> Result<(), String> {
    let options = CompileOptions {
        precision,
        targets: vec!["x86_64".into(), "wasm32".into()],
        calibration: Some(train.clone()),
        held_out: Some(test.clone()),
        force: false,
    };
    compile(artifact, &options)
        .and_then(|package| package.write(dir))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn model_proto(dir: &Path) -> ModelProto {
    ModelProto::from_bytes(&std::fs::read(dir.join("model.onnx")).unwrap()).unwrap()
}

fn rows_of(data: &[&Dataset]) -> (Vec<f32>, usize) {
    let mut features = Vec::new();
    let mut rows = 0;
    for dataset in data {
        features.extend(dataset.features.to_dense().iter().copied());
        rows += dataset.n_rows();
    }
    (features, rows)
}

#[test]
fn gpu_outputs_equal_tract_for_every_dense_package() {
    let Some(gpu) = gpu() else { return };
    let work = tempfile::tempdir().unwrap();
    let mut report = String::new();
    let mut failures = Vec::new();
    for (index, case) in CASES.iter().enumerate() {
        let (artifact, train_data, test_data) =
            train(case.algorithm, case.dataset, case.hyperparameters);
        let (features, rows) = rows_of(&[&test_data, &train_data]);
        for precision in [Precision::Fp32, Precision::F16, Precision::Int8] {
            let dir = work.path().join(format!("case{index}-{precision:?}"));
            if let Err(error) = compile_to(&artifact, precision, &train_data, &test_data, &dir) {
                // The compiler's drift check refuses some quantized packages (see the conformance IGNORED list).
                report.push_str(&format!(
                    "{:<26} {precision:?}: no package ({error})\n",
                    case.name
                ));
                continue;
            }
            let package = Package::load(&dir).unwrap();
            let tolerance = package.manifest().tolerance.clone();
            let expected = package.run(&features, rows).unwrap();
            let model = pollster::block_on(GpuModel::new(&gpu, &model_proto(&dir)))
                .unwrap_or_else(|e| panic!("{} {precision:?}: {e}", case.name));
            let actual = pollster::block_on(model.run(&features, rows))
                .unwrap_or_else(|e| panic!("{} {precision:?}: {e}", case.name));
            assert_eq!(actual.rows, rows);
            assert_eq!(
                actual.outputs.iter().map(|o| &o.name).collect::<Vec<_>>(),
                expected.outputs.iter().map(|o| &o.name).collect::<Vec<_>>(),
                "{}: output names",
                case.name
            );
            let mut worst = 0f64;
            let mut worst_relative = 0f64;
            for (have, want) in actual.outputs.iter().zip(&expected.outputs) {
                let context = format!("{} {precision:?} output {}", case.name, want.name);
                if have.shape != want.shape {
                    failures.push(format!(
                        "{context}: shape {:?}, tract {:?}",
                        have.shape, want.shape
                    ));
                    continue;
                }
                match (&have.values, &want.values) {
                    (OutputValues::F32(have), OutputValues::F32(want)) => {
                        for (i, (&h, &w)) in have.iter().zip(want).enumerate() {
                            let (h, w) = (f64::from(h), f64::from(w));
                            let diff = (h - w).abs();
                            let allowed = match precision {
                                Precision::Fp32 => 1e-5 * w.abs().max(1.0),
                                _ => tolerance.absolute.max(tolerance.relative * w.abs()),
                            };
                            worst = worst.max(diff);
                            worst_relative = worst_relative.max(diff / w.abs().max(1.0));
                            if !(diff <= allowed) {
                                failures.push(format!(
                                    "{context}[{i}]: gpu {h}, tract {w} (|Δ| {diff:.3e} > {allowed:.3e})"
                                ));
                            }
                        }
                    }
                    (OutputValues::I64(have), OutputValues::I64(want)) => {
                        let differ = have.iter().zip(want).filter(|(a, b)| a != b).count();
                        if differ > 0 {
                            failures.push(format!(
                                "{context}: {differ} of {} integer values differ",
                                want.len()
                            ));
                        }
                    }
                    // tract may fold a Cast into a float output (LL's Cast<int64>(score >= threshold)); the GPU
                    // keeps the graph's integer type. The values must still be equal.
                    _ => {
                        let differ = have
                            .to_f32()
                            .iter()
                            .zip(want.to_f32())
                            .filter(|(a, b)| **a != *b)
                            .count();
                        if differ > 0 {
                            failures.push(format!(
                                "{context}: {differ} of {} label values differ",
                                want.to_f32().len()
                            ));
                        }
                    }
                }
            }
            report.push_str(&format!(
                "{:<26} {:<5} {rows} rows: max |gpu − tract| {worst:.2e}, max relative {worst_relative:.2e}, integer outputs equal\n",
                case.name,
                format!("{precision:?}").to_lowercase()
            ));
        }
    }
    println!("GPU ({}) against tract:\n{report}", gpu.adapter);
    assert!(
        failures.is_empty(),
        "{} disagreement(s):\n{}\n{report}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn graphs_outside_the_op_subset_are_refused_naming_the_op() {
    let cases: [(&str, &str, &[(&str, &str)], &str); 2] = [
        (
            "xgboost",
            "breast_cancer",
            &[
                ("objective", "binary:logistic"),
                ("num_round", "5"),
                ("max_depth", "3"),
            ],
            "TreeEnsemble",
        ),
        (
            "randomcutforest",
            "digits",
            &[
                ("feature_dim", "64"),
                ("num_trees", "50"),
                ("num_samples_per_tree", "256"),
                ("seed", "1"),
            ],
            "RandomCutForestScore",
        ),
    ];
    let work = tempfile::tempdir().unwrap();
    for (algorithm, dataset, hyperparameters, op) in cases {
        let (artifact, train_data, test_data) = train(algorithm, dataset, hyperparameters);
        let dir = work.path().join(algorithm);
        compile_to(&artifact, Precision::Fp32, &train_data, &test_data, &dir).unwrap();
        let error = tern_gpu::check(&model_proto(&dir)).unwrap_err();
        assert!(
            error.op_type.contains(op) && error.to_string().contains(op),
            "{algorithm}: {error}"
        );
        // The device-level constructor refuses the same way (only where an adapter exists).
        if let Ok(gpu) = pollster::block_on(Gpu::request()) {
            match pollster::block_on(GpuModel::new(&gpu, &model_proto(&dir))) {
                Err(GpuError::Unsupported(refused)) => assert_eq!(refused, error),
                other => panic!("{algorithm}: expected Unsupported, got {other:?}"),
            }
        }
    }
}

#[test]
fn bad_rows_are_refused_naming_record_and_feature() {
    let Some(gpu) = gpu() else { return };
    let (artifact, train_data, test_data) = train(
        "pca",
        "diabetes",
        &[
            ("feature_dim", "10"),
            ("num_components", "2"),
            ("mini_batch_size", "100"),
        ],
    );
    let work = tempfile::tempdir().unwrap();
    compile_to(
        &artifact,
        Precision::Fp32,
        &train_data,
        &test_data,
        work.path(),
    )
    .unwrap();
    let model = pollster::block_on(GpuModel::new(&gpu, &model_proto(work.path()))).unwrap();
    let mut features = vec![0.5f32; 30];
    match pollster::block_on(model.run(&features, 2)) {
        Err(GpuError::Input { message }) => {
            assert!(message.contains("30 feature values"), "{message}")
        }
        other => panic!("expected an input error, got {other:?}"),
    }
    features[13] = f32::NAN;
    match pollster::block_on(model.run(&features, 3)) {
        Err(error @ GpuError::Record { .. }) => {
            let text = error.to_string();
            assert!(
                text.contains("record 2") && text.contains("features[3]") && text.contains("NaN"),
                "{text}"
            );
        }
        other => panic!("expected a record error, got {other:?}"),
    }
    let empty = pollster::block_on(model.run(&[], 0)).unwrap();
    assert_eq!(empty.rows, 0);
    assert_eq!(empty.outputs[0].shape, vec![0, 2]);
}
