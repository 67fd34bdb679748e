//! The conformance matrix: every algorithm × precision, on real held-out rows, the trainer's predictions against the
//! compiled package in every runtime — tern-runtime native (in process, `x86_64` on tract and `interpreter` on
//! tern's own interpreter, the engine of the browser build), tern-runtime aarch64 (the
//! `run_package` example cross-built for aarch64-unknown-linux-gnu, run under qemu-aarch64), and onnxruntime
//! (`tests/conformance/run_onnxruntime.py` in the oracle virtualenv), and tern-runtime compiled to wasm in Node
//! (`runtime-wasm/node/run_package.mjs` on the build in runtime-wasm/pkg; when node or that build is missing, its
//! cells are skipped with a note: scripts/setup-web.sh builds it), and tern-gpu's wgpu kernels natively
//! (`native-wgpu`: on lavapipe without a GPU; graphs outside its op subset print as `fallback`, the op named, since
//! the runtimes then run them on tract; no adapter skips the column with a note), and the browser build of the wasm
//! runtime inside headless Chromium (`runtime-wasm/browser/run_packages.mjs`, one Chromium for the whole matrix):
//! `chromium-wasm` on the wasm CPU backend (tern's interpreter), `chromium-webgpu` on WebGPU (SwiftShader's adapter here; graphs
//! the WebGPU backend refuses print as `fallback`, the op named). The interpreter, wasm, native-wgpu and Chromium
//! columns share x86_64's [`IGNORED`] entries: they run the same compiled package. With
//! `TERN_CONFORMANCE_REQUIRE_ALL=1` (scripts/test.sh sets it) a column that cannot run here fails its cells instead
//! of skipping them.
//!
//! A case is defined once in [`CASES`]; a later algorithm joins by adding one entry. Pass criteria per cell:
//! fp32: every score within 1e-5 relative (|package − trainer| ≤ 1e-5 · max(|trainer|, 1)) and identical labels;
//! f16 / int8: every score within the manifest's verified tolerance (|Δ| ≤ max(absolute, relative · |trainer|)) and
//! label agreement at least the manifest's. [`IGNORED`] lists (case, precision, runtime) cells a runtime truly
//! cannot run or the compiler refuses to package, with the reason.
//!
//! Needs scripts/setup-cross.sh (aarch64 column) and scripts/setup-python.sh (onnxruntime column); a missing
//! toolchain fails the test saying which script to run. Run with `cargo test --release -p tern-tests --test
//! conformance -- --nocapture` to see the matrix; `TERN_CONFORMANCE_CASES=rcf` (comma-separated parts of case
//! names) runs only the cases named. [`IGNORED`] cells print as N/A with their reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use tern_compiler::CompileOptions;
use tern_registry::compile;
use tern_runtime::{EngineKind, Package, Precision};
use tern_tests::repo_root;
use tern_trainer::algorithms;
use tern_trainer::data::{Channel, Dataset, TrainingInput};
use tern_trainer::{Hyperparameters, Predictions, TrainingContext};

/// One trained model the matrix checks at every precision.
struct Case {
    name: &'static str,
    algorithm: &'static str,
    /// A folder of tests/data/generated holding train.csv and test.csv (SageMaker CSV, label first).
    dataset: &'static str,
    hyperparameters: &'static [(&'static str, &'static str)],
    /// Replace some feature values by NaN (missing) in training and test rows.
    inject_nan: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "linear-learner binary",
        algorithm: "linear-learner",
        dataset: "breast_cancer",
        hyperparameters: &[("predictor_type", "binary_classifier"), ("epochs", "5")],
        inject_nan: false,
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
        inject_nan: false,
    },
    Case {
        name: "linear-learner regressor",
        algorithm: "linear-learner",
        dataset: "diabetes",
        hyperparameters: &[("predictor_type", "regressor"), ("epochs", "5")],
        inject_nan: false,
    },
    Case {
        name: "xgboost binary (NaN)",
        algorithm: "xgboost",
        dataset: "breast_cancer",
        hyperparameters: &[
            ("objective", "binary:logistic"),
            ("num_round", "20"),
            ("max_depth", "4"),
        ],
        inject_nan: true,
    },
    Case {
        name: "xgboost multiclass",
        algorithm: "xgboost",
        dataset: "digits",
        hyperparameters: &[
            ("objective", "multi:softprob"),
            ("num_class", "10"),
            ("num_round", "10"),
            ("max_depth", "4"),
        ],
        inject_nan: false,
    },
    Case {
        name: "xgboost regression",
        algorithm: "xgboost",
        dataset: "diabetes",
        hyperparameters: &[
            ("objective", "reg:squarederror"),
            ("num_round", "20"),
            ("max_depth", "4"),
        ],
        inject_nan: false,
    },
    Case {
        name: "xgboost dart binary",
        algorithm: "xgboost",
        dataset: "breast_cancer",
        hyperparameters: &[
            ("objective", "binary:logistic"),
            ("booster", "dart"),
            ("rate_drop", "0.2"),
            ("one_drop", "1"),
            ("num_round", "20"),
            ("max_depth", "4"),
        ],
        inject_nan: false,
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
        inject_nan: false,
    },
    Case {
        name: "pca regular",
        algorithm: "pca",
        dataset: "digits",
        hyperparameters: &[
            ("feature_dim", "64"),
            ("num_components", "5"),
            ("mini_batch_size", "200"),
        ],
        inject_nan: false,
    },
    Case {
        name: "pca randomized",
        algorithm: "pca",
        dataset: "digits",
        hyperparameters: &[
            ("feature_dim", "64"),
            ("num_components", "5"),
            ("mini_batch_size", "200"),
            ("algorithm_mode", "randomized"),
            ("seed", "1"),
        ],
        inject_nan: false,
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
        inject_nan: false,
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
        inject_nan: false,
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
        inject_nan: false,
    },
    Case {
        name: "rcf",
        algorithm: "randomcutforest",
        dataset: "digits",
        hyperparameters: &[
            ("feature_dim", "64"),
            ("num_trees", "50"),
            ("num_samples_per_tree", "256"),
            ("seed", "1"),
        ],
        inject_nan: false,
    },
];

const PRECISIONS: [Precision; 3] = [Precision::Fp32, Precision::F16, Precision::Int8];

/// The runtimes, in column order.
const RUNTIMES: [&str; 8] = [
    "x86_64",
    "interpreter",
    "aarch64",
    "onnxruntime",
    "wasm(node)",
    "native-wgpu",
    "chromium-wasm",
    "chromium-webgpu",
];

/// The runtime whose [`IGNORED`] entries apply to `runtime`: the interpreter, wasm and Chromium columns run the same
/// graph as x86_64, and native-wgpu the same package.
fn ignore_as(runtime: &str) -> &str {
    match runtime {
        "interpreter" | "wasm(node)" | "native-wgpu" | "chromium-wasm" | "chromium-webgpu" => {
            "x86_64"
        }
        other => other,
    }
}

/// The Chromium columns' runner: `runtime-wasm/browser/run_packages.mjs` started once, fed one job per stdin line,
/// answering one JSON line per job on stdout.
struct Chromium {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The WebGPU adapter Chromium offers (e.g. "google swiftshader"), or why there is none.
    adapter: Result<String, String>,
}

/// How a Chromium job ran: on the backend asked for, or on wasm because WebGPU refused (with the reason).
struct BrowserRun {
    predictions: RuntimePredictions,
    fallback_reason: Option<String>,
}

impl Chromium {
    /// Starts the runner serving `root` (the matrix's work folder), or says why it cannot run here.
    fn start(root: &Path) -> Result<Chromium, String> {
        let repo = repo_root();
        let needed = [
            ("runtime-wasm/pkg/web/tern_wasm.js", "the browser build"),
            ("web/node_modules/playwright-core", "playwright-core"),
        ];
        for (path, what) in needed {
            if !repo.join(path).exists() {
                return Err(format!(
                    "{what} ({path}) is missing: run scripts/setup-web.sh"
                ));
            }
        }
        let mut child = Command::new("node")
            .arg(repo.join("runtime-wasm/browser/run_packages.mjs"))
            .arg(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start node: {e} (scripts/setup-web.sh installs it)"))?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            let _ = child.wait();
            return Err(format!("run_packages.mjs did not start: {}", stderr.trim()));
        }
        let ready: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| format!("run_packages.mjs: unreadable first line {line:?}: {e}"))?;
        let adapter = match ready["webgpu"]["adapter"].as_str() {
            Some(name) => Ok(name.to_string()),
            None if ready["webgpu"]["navigator_gpu"].as_bool() == Some(true) => {
                Err("Chromium has navigator.gpu but no WebGPU adapter".to_string())
            }
            None => Err("Chromium exposes no navigator.gpu".to_string()),
        };
        Ok(Chromium {
            child,
            stdin,
            stdout,
            adapter,
        })
    }

    /// Runs the package in `dir` on `rows` rows of the float32 file `features` with `backend` ("wasm" or "webgpu").
    fn run(
        &mut self,
        backend: &str,
        dir: &Path,
        features: &Path,
        rows: usize,
        out: &Path,
        manifest: &tern_runtime::Manifest,
    ) -> Result<BrowserRun, String> {
        let job = serde_json::json!({
            "package": dir, "features": features, "rows": rows, "out": out, "backend": backend,
        });
        let stdin = self.stdin.as_mut().ok_or("the runner's stdin is closed")?;
        writeln!(stdin, "{job}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("run_packages.mjs stopped: {e}"))?;
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) | Err(_) => return Err("run_packages.mjs stopped without an answer".to_string()),
            Ok(_) => {}
        }
        let answer: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| format!("run_packages.mjs: unreadable answer {line:?}: {e}"))?;
        if answer["ok"].as_bool() != Some(true) {
            return Err(format!(
                "Chromium: {}",
                answer["error"].as_str().unwrap_or("no reason given")
            ));
        }
        let ran_on = answer["backend"].as_str().unwrap_or_default();
        let fallback_reason = answer["fallbackReason"].as_str().map(str::to_string);
        if ran_on != backend && fallback_reason.is_none() {
            return Err(format!(
                "asked for {backend}, ran on {ran_on:?} without a reason"
            ));
        }
        Ok(BrowserRun {
            predictions: from_runner_file(out, manifest, rows)?,
            fallback_reason: (ran_on != backend).then_some(fallback_reason).flatten(),
        })
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // Closing stdin ends the runner, which closes Chromium.
        self.stdin = None;
        let _ = self.child.wait();
    }
}

/// The wasm(node) column's runner (runtime-wasm/node/run_package.mjs) when node and the wasm build
/// (runtime-wasm/pkg, from scripts/build-wasm.sh) are there; `None` skips that column's cells with a note.
fn wasm_node_runner() -> Option<PathBuf> {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let built = repo_root()
        .join("runtime-wasm/pkg/node/tern_wasm.js")
        .exists();
    (node && built).then(|| repo_root().join("runtime-wasm/node/run_package.mjs"))
}

/// (case, precision, runtime, reason) cells that are not run, or whose compile the compiler refuses, with the reason.
const IGNORED: &[(&str, Precision, &str, &str)] = &[
    ("rcf", Precision::Fp32, "onnxruntime", RCF_ORT),
    ("rcf", Precision::F16, "x86_64", RCF_PRECISION),
    ("rcf", Precision::F16, "aarch64", RCF_PRECISION),
    ("rcf", Precision::F16, "onnxruntime", RCF_PRECISION),
    ("rcf", Precision::Int8, "x86_64", RCF_PRECISION),
    ("rcf", Precision::Int8, "aarch64", RCF_PRECISION),
    ("rcf", Precision::Int8, "onnxruntime", RCF_PRECISION),
    ("knn classifier", Precision::Int8, "x86_64", KNN_INT8),
    ("knn classifier", Precision::Int8, "aarch64", KNN_INT8),
    ("knn classifier", Precision::Int8, "onnxruntime", KNN_INT8),
    ("knn regressor", Precision::F16, "x86_64", KNN_F16),
    ("knn regressor", Precision::F16, "aarch64", KNN_F16),
    ("knn regressor", Precision::F16, "onnxruntime", KNN_F16),
];

/// Why the f16 k-NN regressor (diabetes) has no package: the compiler's drift check refuses it.
const KNN_F16: &str = "the compiler refuses f16 stored points (drift check): rounding diabetes' standardised \
    features to float16 swaps one neighbour of one row, moving its mean by 11.9 beyond the 1% limit";

/// Why the int8 k-NN classifier has no package: the compiler's drift check refuses it.
const KNN_INT8: &str = "the compiler refuses int8 stored points (drift check): per-point int8 scales move \
    distances enough to change some neighbours, so vote shares differ by up to 0.2 beyond the 0.1 limit";

/// Why onnxruntime cannot run the Random Cut Forest package.
const RCF_ORT: &str =
    "the graph's RandomCutForestScore is an ai.tern op (docs/ai.tern.md), implemented in \
    tern-runtime only; onnxruntime has no implementation of it";

/// Why Random Cut Forest has no f16 or int8 package.
const RCF_PRECISION: &str =
    "the compiler refuses f16 and int8 for Random Cut Forest: the forest's cuts and boxes \
    are op attributes, not weights, so there is nothing to quantize";

/// A runtime's predictions: flattened scores (rows × columns) and labels for classifiers.
struct RuntimePredictions {
    scores: Vec<f32>,
    labels: Option<Vec<i64>>,
}

/// One cell of the matrix.
struct Cell {
    max_abs_diff: f64,
    label_agreement: Option<f64>,
    pass: bool,
    /// An [`IGNORED`] cell: printed as N/A with its reason, neither a pass nor a failure.
    not_applicable: bool,
    note: String,
}

fn read_dataset(name: &str, split: &str, inject_nan: bool) -> Dataset {
    let path = repo_root()
        .join("tests/data/generated")
        .join(name)
        .join(format!("{split}.csv"));
    let mut dataset = Channel::from_path(split, &path, None)
        .and_then(|channel| channel.load(None))
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run tests/python/export_datasets.py)",
                path.display()
            )
        });
    if inject_nan {
        // Every 5th row loses one feature, a different one per row: both missing directions get exercised.
        let mut dense = dataset.features.to_dense();
        let columns = dense.ncols();
        for row in (0..dense.nrows()).step_by(5) {
            dense[[row, (row * 7) % columns]] = f32::NAN;
        }
        let records: Vec<_> = dense
            .rows()
            .into_iter()
            .zip(dataset.labels.as_ref().unwrap())
            .map(|(row, &label)| Ok(tern_formats::Record::dense(Some(label), row.to_vec())))
            .collect();
        dataset = Dataset::from_records(Box::new(records.into_iter()), split, None).unwrap();
    }
    dataset
}

fn train(
    case: &Case,
    train: &Dataset,
) -> (tern_trainer::Artifact, Box<dyn tern_trainer::Predictor>) {
    let algorithm = algorithms::find(case.algorithm).unwrap();
    let raw: BTreeMap<String, String> = case
        .hyperparameters
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hyperparameters =
        Hyperparameters::parse(algorithm.name(), algorithm.hyperparameters(), &raw).unwrap();
    algorithm.validate(&hyperparameters).unwrap();
    let input = TrainingInput::new(Channel::from_dataset("train", train.clone()));
    let artifact = algorithm
        .train(&hyperparameters, &input, &mut TrainingContext::new(true))
        .unwrap_or_else(|e| panic!("{}: training failed: {e}", case.name));
    let predictor = algorithm.load(&artifact).unwrap();
    (artifact, predictor)
}

fn trainer_labels(predictions: &Predictions) -> Option<Vec<i64>> {
    predictions
        .predicted_label
        .as_ref()
        .map(|labels| labels.iter().map(|&l| l as i64).collect())
}

/// Reads the runner's / onnxruntime's `{"outputs":[{"name","shape","values"}]}` into a name → values map.
fn read_outputs(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    document["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let shape = o["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let values = o["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap_or(f64::NAN))
                .collect();
            (o["name"].as_str().unwrap().to_string(), (shape, values))
        })
        .collect()
}

/// The score output's name and the label output's, from the manifest's response shape.
fn output_names(manifest: &tern_runtime::Manifest) -> (String, Option<String>) {
    match &manifest.response {
        tern_runtime::ResponseShape::Supervised {
            score,
            predicted_label,
            ..
        } => (score.clone(), predicted_label.clone()),
        tern_runtime::ResponseShape::Xgboost { output, .. } => (output.clone(), None),
        tern_runtime::ResponseShape::Clustering {
            closest_cluster,
            distance_to_cluster,
        } => (distance_to_cluster.clone(), Some(closest_cluster.clone())),
        tern_runtime::ResponseShape::Projection { projection } => (projection.clone(), None),
        tern_runtime::ResponseShape::AnomalyScore { score } => (score.clone(), None),
        tern_runtime::ResponseShape::NearestNeighbors { score, .. } => (score.clone(), None),
        tern_runtime::ResponseShape::Fields { fields, .. } => (
            fields
                .first()
                .map(|field| field.output.clone())
                .unwrap_or_default(),
            None,
        ),
    }
}

/// Labels from scores where the graph has no label output: argmax over columns, else score > 0.5 (binary).
fn labels_from_scores(scores: &[f32], rows: usize) -> Vec<i64> {
    let columns = scores.len() / rows.max(1);
    scores
        .chunks(columns.max(1))
        .map(|row| {
            if columns == 1 {
                (row[0] > 0.5) as i64
            } else {
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                        if v > bv {
                            (i, v)
                        } else {
                            (bi, bv)
                        }
                    })
                    .0 as i64
            }
        })
        .collect()
}

fn from_runner_file(
    path: &Path,
    manifest: &tern_runtime::Manifest,
    rows: usize,
) -> Result<RuntimePredictions, String> {
    let outputs = read_outputs(path);
    let (score, label) = output_names(manifest);
    let (_, scores) = outputs
        .get(&score)
        .ok_or_else(|| format!("no output {score}"))?;
    let labels = match label {
        Some(name) => Some(
            outputs
                .get(&name)
                .ok_or_else(|| format!("no output {name}"))?
                .1
                .iter()
                .map(|&v| v as i64)
                .collect(),
        ),
        None => None,
    };
    let _ = rows;
    Ok(RuntimePredictions {
        scores: scores.iter().map(|&v| v as f32).collect(),
        labels,
    })
}

fn run_native(
    dir: &Path,
    features: &[f32],
    rows: usize,
    engine: EngineKind,
) -> Result<RuntimePredictions, String> {
    let package = Package::load_with(dir, engine).map_err(|e| e.to_string())?;
    let outputs = package.run(features, rows).map_err(|e| e.to_string())?;
    let (score, label) = output_names(package.manifest());
    let scores = outputs.require(&score).map_err(|e| e.to_string())?.to_f32();
    let labels = match label {
        Some(name) => {
            let output = outputs.require(&name).map_err(|e| e.to_string())?;
            Some((0..rows).map(|r| output.row_label(r)).collect())
        }
        None => None,
    };
    Ok(RuntimePredictions { scores, labels })
}

/// The native-wgpu column: the package's graph on tern-gpu's kernels. `Ok(Err(reason))`: the GPU backend refuses
/// the graph (its op named), so runtimes fall back to the CPU for it.
fn run_wgpu(
    gpu: &tern_gpu::Gpu,
    dir: &Path,
    features: &[f32],
    rows: usize,
) -> Result<Result<RuntimePredictions, String>, String> {
    let bytes = std::fs::read(dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let proto = tern_runtime::onnx::ModelProto::from_bytes(&bytes).map_err(|e| e.to_string())?;
    let model = match pollster::block_on(tern_gpu::GpuModel::new(gpu, &proto)) {
        Ok(model) => model,
        Err(tern_gpu::GpuError::Unsupported(refused)) => return Ok(Err(refused.to_string())),
        Err(e) => return Err(e.to_string()),
    };
    let outputs = pollster::block_on(model.run(features, rows)).map_err(|e| e.to_string())?;
    let manifest = Package::load(dir)
        .map_err(|e| e.to_string())?
        .manifest()
        .clone();
    let (score, label) = output_names(&manifest);
    let scores = outputs.require(&score).map_err(|e| e.to_string())?.to_f32();
    let labels = match label {
        Some(name) => {
            let output = outputs.require(&name).map_err(|e| e.to_string())?;
            Some((0..rows).map(|r| output.row_label(r)).collect())
        }
        None => None,
    };
    Ok(Ok(RuntimePredictions { scores, labels }))
}

/// Whether tern-gpu's op check accepts the package's graph (what every WebGPU build must then run).
fn gpu_accepts(dir: &Path) -> bool {
    std::fs::read(dir.join("model.onnx"))
        .ok()
        .and_then(|bytes| tern_runtime::onnx::ModelProto::from_bytes(&bytes).ok())
        .is_some_and(|proto| tern_gpu::check(&proto).is_ok())
}

fn run_command(mut command: Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Compares a runtime's predictions with the trainer's.
fn compare(
    trainer: &Predictions,
    runtime: &RuntimePredictions,
    precision: Precision,
    tolerance: &tern_runtime::Tolerance,
    rows: usize,
) -> Cell {
    let expected: Vec<f32> = trainer.scores.iter().copied().collect();
    if expected.len() != runtime.scores.len() {
        return Cell {
            max_abs_diff: f64::NAN,
            label_agreement: None,
            pass: false,
            not_applicable: false,
            note: format!(
                "{} scores, the trainer has {}",
                runtime.scores.len(),
                expected.len()
            ),
        };
    }
    let mut max_abs_diff = 0f64;
    let mut within = true;
    for (&have, &want) in runtime.scores.iter().zip(&expected) {
        let (have, want) = (have as f64, want as f64);
        let diff = (have - want).abs();
        let diff = if have.is_nan() || want.is_nan() {
            f64::INFINITY
        } else {
            diff
        };
        max_abs_diff = max_abs_diff.max(diff);
        let allowed = match precision {
            Precision::Fp32 => 1e-5 * want.abs().max(1.0),
            _ => tolerance.absolute.max(tolerance.relative * want.abs()),
        };
        within &= diff <= allowed;
    }
    let trainer_labels = trainer_labels(trainer);
    let label_agreement = trainer_labels.as_ref().map(|want| {
        let have = runtime
            .labels
            .clone()
            .unwrap_or_else(|| labels_from_scores(&runtime.scores, rows));
        let same = have.iter().zip(want).filter(|(a, b)| a == b).count();
        same as f64 / want.len().max(1) as f64
    });
    let labels_ok = match (precision, label_agreement) {
        (_, None) => true,
        (Precision::Fp32, Some(agreement)) => agreement == 1.0,
        (_, Some(agreement)) => agreement >= tolerance.label_agreement,
    };
    Cell {
        max_abs_diff,
        label_agreement,
        pass: within && labels_ok,
        not_applicable: false,
        note: String::new(),
    }
}

fn failed_cell(note: String) -> Cell {
    Cell {
        max_abs_diff: f64::NAN,
        label_agreement: None,
        pass: false,
        not_applicable: false,
        note,
    }
}

/// A cell whose runtime is missing here (no node or wasm build, no GPU adapter): printed as `not run` with
/// `why`; a failure when `TERN_CONFORMANCE_REQUIRE_ALL` is set (non-empty, not 0), as the CI test command sets it,
/// so a broken setup cannot pass as a skipped column.
fn not_run(why: &str) -> Cell {
    let required = std::env::var("TERN_CONFORMANCE_REQUIRE_ALL")
        .map(|v| !v.is_empty() && v != "0")
        .unwrap_or(false);
    Cell {
        max_abs_diff: 0.0,
        label_agreement: None,
        pass: !required,
        not_applicable: false,
        note: format!("not run: {why}"),
    }
}

/// A cell [`IGNORED`] lists: N/A, with `reason`.
fn not_applicable_cell(reason: String) -> Cell {
    Cell {
        max_abs_diff: f64::NAN,
        label_agreement: None,
        pass: false,
        not_applicable: true,
        note: format!("N/A: {reason}"),
    }
}

/// Whether `case` is selected by `TERN_CONFORMANCE_CASES` (comma-separated case names or parts of them, e.g.
/// `rcf` or `knn,xgboost`); every case when it is unset or empty.
fn selected(case: &str) -> bool {
    match std::env::var("TERN_CONFORMANCE_CASES") {
        Ok(filter) if !filter.trim().is_empty() => filter
            .split(',')
            .any(|part| !part.trim().is_empty() && case.contains(part.trim())),
        _ => true,
    }
}

/// Fails (panics) unless the aarch64 cross toolchain is installed; builds the runner once; returns its path.
fn build_aarch64_runner() -> PathBuf {
    let missing: Vec<&str> = [
        ("aarch64-linux-gnu-gcc", "--version"),
        ("qemu-aarch64", "--version"),
    ]
    .into_iter()
    .filter(|(tool, flag)| Command::new(tool).arg(flag).output().is_err())
    .map(|(tool, _)| tool)
    .collect();
    let target_installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("aarch64-unknown-linux-gnu"))
        .unwrap_or(false);
    assert!(
        missing.is_empty() && target_installed,
        "the aarch64 column needs the cross toolchain (missing: {missing:?}{}): run scripts/setup-cross.sh",
        if target_installed {
            ""
        } else {
            ", rust target aarch64-unknown-linux-gnu"
        }
    );
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "build",
            "--release",
            "--target",
            "aarch64-unknown-linux-gnu",
            "-p",
            "tern-runtime",
            "--example",
            "run_package",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .expect("run cargo");
    assert!(status.success(), "cross-building the aarch64 runner failed");
    target_dir.join("aarch64-unknown-linux-gnu/release/examples/run_package")
}

#[test]
fn conformance_matrix() {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh (onnxruntime column)",
        python.display()
    );
    let runner = build_aarch64_runner();
    let ort_script = repo_root().join("tests/conformance/run_onnxruntime.py");
    let wasm_node = wasm_node_runner();
    let gpu = pollster::block_on(tern_gpu::Gpu::request()).map_err(|e| e.to_string());
    let work = tempfile::tempdir().unwrap();
    let mut chromium = Chromium::start(work.path());

    let mut table = String::new();
    let mut failures = 0;
    write!(table, "{:<28} {:<6}", "case", "prec").unwrap();
    for runtime in RUNTIMES {
        write!(table, " | {runtime:<24}").unwrap();
    }
    writeln!(table).unwrap();
    for (case_index, case) in CASES.iter().enumerate() {
        if !selected(case.name) {
            continue;
        }
        let train_data = read_dataset(case.dataset, "train", case.inject_nan);
        let test_data = read_dataset(case.dataset, "test", case.inject_nan);
        let (artifact, predictor) = train(case, &train_data);
        let expected = predictor.predict(&test_data.features).unwrap();
        let rows = test_data.n_rows();
        let dense = test_data.features.to_dense();
        let features: Vec<f32> = dense.iter().copied().collect();
        let features_path = work.path().join(format!("case{case_index}.f32"));
        let bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&features_path, bytes).unwrap();

        for precision in PRECISIONS {
            let dir = work.path().join(format!("case{case_index}-{precision:?}"));
            let options = CompileOptions {
                precision,
                targets: vec!["x86_64".into(), "aarch64".into(), "wasm32".into()],
                calibration: Some(train_data.clone()),
                held_out: Some(test_data.clone()),
                force: false,
            };
            let compiled = compile(&artifact, &options);
            let cells: Vec<Cell> = match compiled.and_then(|package| package.write(&dir)) {
                Err(error) => RUNTIMES
                    .iter()
                    .map(|&runtime| {
                        match IGNORED.iter().find(|(c, p, r, _)| {
                            *c == case.name && *p == precision && *r == ignore_as(runtime)
                        }) {
                            Some((.., reason)) => {
                                not_applicable_cell(format!("{reason} (compile: {error})"))
                            }
                            None => failed_cell(format!("compile: {error}")),
                        }
                    })
                    .collect(),
                Ok(_) => {
                    let manifest = Package::load(&dir).map(|p| p.manifest().clone());
                    RUNTIMES
                        .iter()
                        .map(|&runtime| {
                            if let Some((.., reason)) = IGNORED.iter().find(|(c, p, r, _)| {
                                *c == case.name && *p == precision && *r == ignore_as(runtime)
                            }) {
                                return not_applicable_cell(reason.to_string());
                            }
                            let manifest = match &manifest {
                                Ok(m) => m,
                                Err(e) => return failed_cell(format!("load: {e}")),
                            };
                            let out = work
                                .path()
                                .join(format!("case{case_index}-{precision:?}-{runtime}.json"));
                            let predictions = match runtime {
                                "x86_64" => run_native(&dir, &features, rows, EngineKind::Tract),
                                "interpreter" => {
                                    run_native(&dir, &features, rows, EngineKind::Interpreter)
                                }
                                "aarch64" => {
                                    let mut command = Command::new("qemu-aarch64");
                                    command
                                        .args(["-L", "/usr/aarch64-linux-gnu"])
                                        .arg(&runner)
                                        .arg(&dir)
                                        .arg(&features_path)
                                        .arg(rows.to_string())
                                        .arg(&out);
                                    run_command(command)
                                        .and_then(|()| from_runner_file(&out, manifest, rows))
                                }
                                "wasm(node)" => match &wasm_node {
                                    Some(script) => {
                                        let mut command = Command::new("node");
                                        command
                                            .arg(script)
                                            .arg(&dir)
                                            .arg(&features_path)
                                            .arg(rows.to_string())
                                            .arg(&out);
                                        run_command(command)
                                            .and_then(|()| from_runner_file(&out, manifest, rows))
                                    }
                                    None => {
                                        return not_run(
                                            "node or runtime-wasm/pkg is missing \
                                             (scripts/setup-web.sh)",
                                        )
                                    }
                                },
                                "native-wgpu" => match &gpu {
                                    Ok(gpu) => match run_wgpu(gpu, &dir, &features, rows) {
                                        Ok(Err(refused)) => {
                                            return Cell {
                                                max_abs_diff: 0.0,
                                                label_agreement: None,
                                                pass: true,
                                                not_applicable: false,
                                                note: format!("fallback to the CPU (tract): {refused}"),
                                            }
                                        }
                                        Ok(Ok(p)) => Ok(p),
                                        Err(e) => Err(e),
                                    },
                                    Err(e) => return not_run(&e.to_string()),
                                },
                                "chromium-wasm" | "chromium-webgpu" => {
                                    let chromium = match &mut chromium {
                                        Ok(chromium) => chromium,
                                        Err(why) => return not_run(why),
                                    };
                                    let backend = runtime.trim_start_matches("chromium-");
                                    if backend == "webgpu" {
                                        if let Err(why) = &chromium.adapter {
                                            return not_run(why);
                                        }
                                    }
                                    let run = chromium.run(
                                        backend,
                                        &dir,
                                        &features_path,
                                        rows,
                                        &out,
                                        manifest,
                                    );
                                    match run {
                                        Ok(BrowserRun {
                                            fallback_reason: Some(reason),
                                            ..
                                        }) => {
                                            // Only a graph the WebGPU backend refuses may fall back; an adapter or
                                            // device failure is a failure of the column.
                                            if !reason.contains("cannot run this graph") {
                                                return failed_cell(format!(
                                                    "fell back to wasm: {reason}"
                                                ));
                                            }
                                            // ... and only a graph tern-gpu's own check refuses too (else the
                                            // browser build is stale: scripts/build-wasm.sh).
                                            if gpu_accepts(&dir) {
                                                return failed_cell(format!(
                                                    "fell back to wasm although tern-gpu runs this graph \
                                                     natively: {reason}"
                                                ));
                                            }
                                            return Cell {
                                                max_abs_diff: 0.0,
                                                label_agreement: None,
                                                pass: true,
                                                not_applicable: false,
                                                note: format!("fallback to the wasm CPU: {reason}"),
                                            };
                                        }
                                        Ok(run) => Ok(run.predictions),
                                        Err(e) => Err(e),
                                    }
                                }
                                _ => {
                                    let mut command = Command::new(&python);
                                    command
                                        .arg(&ort_script)
                                        .arg(&dir)
                                        .arg(&features_path)
                                        .arg(rows.to_string())
                                        .arg(&out);
                                    run_command(command)
                                        .and_then(|()| from_runner_file(&out, manifest, rows))
                                }
                            };
                            match predictions {
                                Ok(p) => {
                                    compare(&expected, &p, precision, &manifest.tolerance, rows)
                                }
                                Err(e) => failed_cell(e),
                            }
                        })
                        .collect()
                }
            };
            let text: Vec<String> = cells
                .iter()
                .map(|cell| {
                    if cell.not_applicable {
                        return "N/A".to_string();
                    }
                    if cell.note.starts_with("fallback") {
                        return "fallback (CPU)".to_string();
                    }
                    if cell.note.starts_with("not run") {
                        return if cell.pass {
                            "not run"
                        } else {
                            "not run / FAIL"
                        }
                        .to_string();
                    }
                    let labels = cell
                        .label_agreement
                        .map(|a| format!("{:.4}", a))
                        .unwrap_or_else(|| "-".to_string());
                    format!(
                        "{:.2e} / {} / {}",
                        cell.max_abs_diff,
                        labels,
                        if cell.pass { "PASS" } else { "FAIL" }
                    )
                })
                .collect();
            write!(
                table,
                "{:<28} {:<6}",
                case.name,
                format!("{precision:?}").to_lowercase()
            )
            .unwrap();
            for text in &text {
                write!(table, " | {text:<24}").unwrap();
            }
            writeln!(table).unwrap();
            // Each note once, after the runtimes that gave it.
            let mut notes: Vec<(Vec<&str>, &str)> = Vec::new();
            for (cell, runtime) in cells.iter().zip(RUNTIMES) {
                if !cell.pass && !cell.not_applicable {
                    failures += 1;
                }
                if cell.note.is_empty() {
                    continue;
                }
                match notes.iter_mut().find(|(_, note)| *note == cell.note) {
                    Some((runtimes, _)) => runtimes.push(runtime),
                    None => notes.push((vec![runtime], &cell.note)),
                }
            }
            for (runtimes, note) in notes {
                writeln!(table, "    {}: {note}", runtimes.join(", ")).unwrap();
            }
        }
    }
    if let Ok(Chromium {
        adapter: Ok(adapter),
        ..
    }) = &chromium
    {
        writeln!(
            table,
            "chromium-webgpu ran on Chromium's WebGPU adapter {adapter:?}"
        )
        .unwrap();
    }
    drop(chromium);
    println!("\nconformance matrix (cells: max |package − trainer| / label agreement / verdict; N/A: cannot run there, reason below)\n{table}");
    assert_eq!(failures, 0, "{failures} cell(s) failed:\n{table}");
}

/// Every algorithm the binary ships has a lowering (the registry pairs them) and at least one conformance case, so an
/// algorithm cannot join without the matrix proving its packages in every runtime.
#[test]
fn every_shipped_algorithm_has_a_lowering_and_a_conformance_case() {
    let registry = tern_registry::Registry::shipped();
    let missing: Vec<&str> = registry
        .entries()
        .iter()
        .map(|entry| entry.name())
        .filter(|&name| !CASES.iter().any(|case| case.algorithm == name))
        .collect();
    assert!(
        missing.is_empty(),
        "algorithms without a conformance case in CASES: {missing:?}"
    );
    for case in CASES {
        assert!(
            registry.find(case.algorithm).is_ok(),
            "case {:?} names {:?}, which the registry does not ship",
            case.name,
            case.algorithm
        );
    }
}
