//! tern's compiler: a trained artifact → a portable package, `model.onnx` + `manifest.json`.
//!
//! [`compile`] lowers the artifact (the algorithm's [`Lowering`], found through the registry, `tern-registry`; the
//! classic algorithms' lowerings are in [`lower`]), runs the graph passes ([`passes`]),
//! quantizes the weights ([`quantize`]) to the requested precision, checks the ops against the `--target`s
//! ([`targets`]), then runs the finished graph through runtime-core's executor (tract, with runtime-core's
//! `TreeEnsembleRegressor`) on verification rows and compares it with the trainer's own predictor. The drift it
//! measures and the limit it verified are written into the manifest's `tolerance`.
//!
//! ```no_run
//! use tern_compiler::{compile, lower, CompileOptions};
//! use tern_runtime::Precision;
//! let artifact = tern_trainer::Artifact::read("model.tar.gz".as_ref()).unwrap();
//! let algorithm = tern_trainer::algorithms::find(&artifact.meta.algorithm).unwrap();
//! let lowering = lower::find_in(lower::classic(), &artifact.meta.algorithm).unwrap();
//! let options = CompileOptions { precision: Precision::F16, ..CompileOptions::default() };
//! let package = compile(&artifact, algorithm, lowering, &options).unwrap();
//! package.write("pkg".as_ref()).unwrap();
//! println!("{}", tern_compiler::inspect(&package.onnx).unwrap());
//! ```
//!
//! # Drift limits
//! A score is within a limit when `|package − trainer| ≤ absolute` **or** `|package − trainer| / max(|trainer|,
//! 1e-6) ≤ relative`; labels must agree on at least `label_agreement` of the rows ([`DriftLimit::for_precision`]):
//!
//! | precision | absolute | relative | label agreement |
//! |---|---|---|---|
//! | fp32 | 1e-5 | 1e-5 | 100% |
//! | f16  | 1e-2 | 1e-2 | 99% |
//! | int8 | 1e-1 | 1e-1 | 99% |
//!
//! fp32's bound is the conformance suite's, `|Δ| ≤ 1e-5 · max(|trainer|, 1)`. An absolute floor is needed: the
//! trainer and the runtimes sum a row's products in different orders, so a logit near 0 (a probability near ½, a
//! regression near 0) moves by a few float32 ulps of the sum of |products|, which on verification rows 3σ from the
//! mean in every feature reaches 4e-6 on a probability.
//!
//! `absolute` is in units of the largest |score| the trainer gives on the verification rows when that exceeds 1
//! (regressors), so it is written into the manifest multiplied by that magnitude. int8's score limit is wider than
//! f16's because per-channel int8 weights move a 10-class softmax (digits) by up to ~0.09.
//!
//! A package beyond its limit is refused ([`CompileError::DriftExceeded`]) unless `force`; a forced package's
//! manifest records the larger drift it actually has as its tolerance.
//!
//! # Verification rows
//! `held_out` rows when given, else up to 2,000 rows spread evenly over `calibration`, else (fp32 and f16 only)
//! 512 deterministic synthetic rows: for Linear Learner `mean + scale · u` with `u` uniform in [-3, 3] (per the
//! artifact's normalisation statistics), for trees values on both sides of every split threshold. Tree models are
//! also verified on a copy of up to 256 rows with about one value in seven replaced by NaN (missing), so the learned
//! default directions are checked. int8 requires `calibration` rows.

pub mod error;
pub mod inspect;
pub mod lower;
pub mod passes;
pub mod quantize;
pub mod synthetic;
pub mod targets;
pub mod write;

use ndarray::Array2;
use sha2::{Digest, Sha256};
use tern_runtime::manifest::{Manifest, Tolerance, MANIFEST_VERSION};
use tern_runtime::onnx::{GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto};
use tern_trainer::data::{Dataset, FeatureMatrix};
use tern_trainer::{Algorithm, Artifact};

pub use error::CompileError;
pub use inspect::inspect;
pub use lower::{LabelRule, Lowered, Lowering};
pub use passes::PassReport;
pub use tern_runtime::Precision;
pub use write::Overwrite;

/// ONNX IR version of every package (opset 17 needs IR 8).
pub const IR_VERSION: i64 = 8;
/// The rows [`compile`] takes from `calibration` at most, for verification and int8 calibration.
pub const MAX_SAMPLE_ROWS: usize = 2000;

/// How to compile.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    pub precision: Precision,
    /// `x86_64`, `aarch64`, `wasm32`, `gpu`; empty means the three CPU targets.
    pub targets: Vec<String>,
    /// Rows for int8 calibration (and verification when `held_out` is absent).
    pub calibration: Option<Dataset>,
    /// Rows the package is verified on.
    pub held_out: Option<Dataset>,
    /// Package even when drift exceeds the limit.
    pub force: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            precision: Precision::Fp32,
            targets: Vec::new(),
            calibration: None,
            held_out: None,
            force: false,
        }
    }
}

/// A compiled package.
#[derive(Debug, Clone)]
pub struct CompiledPackage {
    /// `model.onnx`.
    pub onnx: Vec<u8>,
    pub manifest: Manifest,
    /// What the graph passes did.
    pub passes: PassReport,
}

/// The drift a precision may show against the trainer (see the crate documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftLimit {
    pub absolute: f64,
    pub relative: f64,
    pub label_agreement: f64,
}

impl DriftLimit {
    /// The documented limit of `precision`.
    pub fn for_precision(precision: Precision) -> DriftLimit {
        match precision {
            Precision::Fp32 => DriftLimit {
                absolute: 1e-5,
                relative: 1e-5,
                label_agreement: 1.0,
            },
            Precision::F16 => DriftLimit {
                absolute: 1e-2,
                relative: 1e-2,
                label_agreement: 0.99,
            },
            Precision::Int8 => DriftLimit {
                absolute: 1e-1,
                relative: 1e-1,
                label_agreement: 0.99,
            },
        }
    }
}

impl DriftLimit {
    /// The limit with `absolute` multiplied by `magnitude` (the largest |score|, at least 1).
    pub fn scaled(self, magnitude: f64) -> DriftLimit {
        DriftLimit {
            absolute: self.absolute * magnitude.max(1.0),
            ..self
        }
    }
}

/// Drift measured between the package and the trainer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drift {
    /// The limit the scores were checked against (absolute scaled by the score magnitude).
    pub limit: DriftLimit,
    pub max_absolute: f64,
    pub max_relative: f64,
    /// Scores beyond both the absolute and the relative limit.
    pub scores_outside: usize,
    pub label_agreement: f64,
    pub rows: usize,
}

fn precision_name(precision: Precision) -> &'static str {
    match precision {
        Precision::Fp32 => "fp32",
        Precision::F16 => "f16",
        Precision::Int8 => "int8",
    }
}

/// Compiles `artifact` into a package: lowering, passes, quantization, target checks, verification against the
/// trainer's predictor. Errors: the artifact's layout ([`CompileError::Artifact`], [`CompileError::Trainer`]), an
/// algorithm or model feature without a lowering, an unknown target or an op a target lacks, verification rows of
/// the wrong width, and drift beyond the limit without `force`.
///
/// `algorithm` rebuilds the trained model for the reference predictions; `lowering` lowers it. Both are the
/// artifact's algorithm's, as the registry (`tern-registry`) pairs them.
pub fn compile(
    artifact: &Artifact,
    algorithm: &dyn Algorithm,
    lowering: &dyn Lowering,
    options: &CompileOptions,
) -> Result<CompiledPackage, CompileError> {
    let targets = targets::resolve(&options.targets)?;
    for name in [algorithm.name(), lowering.algorithm()] {
        if name != artifact.meta.algorithm {
            return Err(CompileError::artifact(
                &artifact.meta.algorithm,
                format!(
                    "the artifact is a {} model, compiled as {name}",
                    artifact.meta.algorithm
                ),
            ));
        }
    }
    if let Some((tensor, index, value)) = artifact.first_non_finite() {
        return Err(CompileError::artifact(
            &artifact.meta.algorithm,
            format!("weight {tensor}[{index}] is {value}; a model with non-finite weights predicts NaN (retrain it)"),
        ));
    }
    if !lowering.precisions().contains(&options.precision) {
        return Err(CompileError::UnsupportedFeature {
            algorithm: artifact.meta.algorithm.clone(),
            feature: format!("precision {}", precision_name(options.precision)),
            reason: lowering.precision_reason().to_string(),
        });
    }
    let lowered = lowering.lower(artifact)?;
    let mut graph = lowered.graph.clone();
    let report = passes::optimise(&mut graph)?;
    let d = lowered.feature_dim;
    // Verification holds its rows about four times over: the rows, the trainer's dense copy, the graph's input
    // and the tree models' missing-value copies.
    let verified_rows = [&options.held_out, &options.calibration]
        .into_iter()
        .flatten()
        .map(|data| data.n_rows().min(MAX_SAMPLE_ROWS))
        .next()
        .unwrap_or(SYNTHETIC_ROWS);
    tern_trainer::memory::ensure(verified_rows as u128 * d as u128 * 16, || {
        format!(
            "verifying {} on {verified_rows} rows of {d} features (feature_dim of the artifact)",
            artifact.meta.algorithm
        )
    })?;

    let calibration = match &options.calibration {
        Some(data) => sample_rows(data, d, "calibration")?,
        None => Vec::new(),
    };
    if options.precision == Precision::Int8 && calibration.is_empty() {
        return Err(CompileError::Verification(
            "int8 needs calibration rows (--calibration) to choose its scales".into(),
        ));
    }
    quantize::quantize(&mut graph, options.precision, &calibration, d)?;
    targets::check(&graph, &targets)?;

    let mut rows = match &options.held_out {
        Some(data) => sample_rows(data, d, "held_out")?,
        None if !calibration.is_empty() => calibration.clone(),
        None => lowering.verification_rows(artifact, &lowered, SYNTHETIC_ROWS),
    };
    if lowered.accepts_missing {
        let n = rows.len() / d.max(1);
        let mut missing: Vec<f32> = rows[..n.min(256) * d].to_vec();
        for (i, row) in missing.chunks_mut(d.max(1)).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                if (i * 31 + j * 17) % 7 == 0 {
                    *v = f32::NAN;
                }
            }
        }
        rows.extend(missing);
    }
    let n = if d == 0 { 0 } else { rows.len() / d };
    if n == 0 {
        return Err(CompileError::Verification(
            "no rows to verify the package on".into(),
        ));
    }

    let onnx = model_bytes(&lowered, graph, options.precision);
    let mut manifest = manifest(&lowered, artifact, options.precision, targets, &onnx);
    let drift = measure(artifact, algorithm, &lowered, &manifest, &onnx, &rows, n)?;
    let limit = drift.limit;
    let within = drift.scores_outside == 0 && drift.label_agreement >= limit.label_agreement;
    if !within && !options.force {
        return Err(CompileError::DriftExceeded {
            precision: precision_name(options.precision).into(),
            rows: n,
            details: format!(
                "max |Δ| {:.3e}, max relative {:.3e}, {} scores beyond |Δ| ≤ {:e} or relative ≤ {:e}, label agreement {:.4} (limit {})",
                drift.max_absolute, drift.max_relative, drift.scores_outside, limit.absolute, limit.relative,
                drift.label_agreement, limit.label_agreement
            ),
        });
    }
    manifest.tolerance = Tolerance {
        absolute: if within {
            limit.absolute
        } else {
            limit.absolute.max(drift.max_absolute)
        },
        relative: if within {
            limit.relative
        } else {
            limit.relative.max(drift.max_relative)
        },
        label_agreement: limit.label_agreement.min(drift.label_agreement),
        measured_absolute: drift.max_absolute,
        measured_label_agreement: drift.label_agreement,
        verified_rows: n,
    };
    Ok(CompiledPackage {
        onnx,
        manifest,
        passes: report,
    })
}

fn model_bytes(lowered: &Lowered, graph: GraphProto, precision: Precision) -> Vec<u8> {
    let entry = |key: &str, value: &str| StringStringEntryProto {
        key: Some(key.to_string()),
        value: Some(value.to_string()),
    };
    ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: lowered
            .opsets
            .iter()
            .map(|(domain, version)| OperatorSetIdProto {
                domain: Some(domain.clone()),
                version: Some(*version),
            })
            .collect(),
        producer_name: Some("tern".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!(
            "{} compiled by tern at {}",
            lowered.algorithm,
            precision_name(precision)
        )),
        graph: Some(graph),
        metadata_props: vec![
            entry("algorithm", &lowered.algorithm),
            entry("precision", precision_name(precision)),
        ],
        ..Default::default()
    }
    .to_bytes()
}

fn manifest(
    lowered: &Lowered,
    artifact: &Artifact,
    precision: Precision,
    targets: Vec<String>,
    onnx: &[u8],
) -> Manifest {
    Manifest {
        manifest_version: MANIFEST_VERSION,
        tern_version: env!("CARGO_PKG_VERSION").to_string(),
        algorithm: artifact.meta.algorithm.clone(),
        precision,
        targets,
        feature_dim: lowered.feature_dim,
        inputs: vec![lower::spec(
            lower::INPUT,
            "float32",
            &[None, Some(lowered.feature_dim)],
        )],
        outputs: lowered.outputs.clone(),
        accepts: lowered.accepts.clone(),
        produces: lowered.produces.clone(),
        label_map: lowered.label_map.clone(),
        response: lowered.response.clone(),
        missing_values: lowered.accepts_missing,
        opsets: lowered.opsets.clone(),
        graph_sha256: Sha256::digest(onnx)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        tolerance: Tolerance {
            absolute: 0.0,
            relative: 0.0,
            label_agreement: 1.0,
            measured_absolute: 0.0,
            measured_label_agreement: 1.0,
            verified_rows: 0,
        },
        pipeline: lowered.pipeline.clone(),
    }
}

/// Up to [`MAX_SAMPLE_ROWS`] rows spread evenly over `data`, dense and row-major.
fn sample_rows(data: &Dataset, d: usize, what: &str) -> Result<Vec<f32>, CompileError> {
    if data.n_features() != d {
        return Err(CompileError::Verification(format!(
            "{what} rows have {} features, the model expects {d}",
            data.n_features()
        )));
    }
    let n = data.n_rows();
    let take = n.min(MAX_SAMPLE_ROWS);
    let picked: Vec<usize> = (0..take).map(|i| i * n / take.max(1)).collect();
    let dense = data.features.select(&picked).to_dense();
    Ok(dense.iter().copied().collect())
}

/// The rows a compile given no data is verified on ([`Lowering::verification_rows`]).
const SYNTHETIC_ROWS: usize = 512;

/// Runs the package on `rows` and the trainer's predictor on the same rows, and compares them.
fn measure(
    artifact: &Artifact,
    algorithm: &dyn Algorithm,
    lowered: &Lowered,
    manifest: &Manifest,
    onnx: &[u8],
    rows: &[f32],
    n: usize,
) -> Result<Drift, CompileError> {
    let d = lowered.feature_dim;
    let features = FeatureMatrix::Dense(
        Array2::from_shape_vec((n, d), rows.to_vec())
            .map_err(|e| CompileError::Verification(e.to_string()))?,
    );
    let reference = algorithm.load(artifact)?.predict(&features)?;

    let manifest_json =
        serde_json::to_vec(manifest).map_err(|e| CompileError::Execution(e.to_string()))?;
    let package = tern_runtime::Package::from_bytes(&manifest_json, onnx)
        .map_err(|e| CompileError::Execution(e.to_string()))?;
    let outputs = package
        .run(rows, n)
        .map_err(|e| CompileError::Execution(e.to_string()))?;
    let score = outputs.get(&lowered.score_output).ok_or_else(|| {
        CompileError::Execution(format!("the graph returned no {:?}", lowered.score_output))
    })?;
    let scores = score.to_f32();
    let expected: Vec<f32> = reference.scores.iter().copied().collect();
    // A model whose scores are not numbers cannot be verified: NaN agrees with nothing, not even NaN.
    if let Some(i) = expected.iter().position(|s| !s.is_finite()) {
        let columns = reference.scores.ncols().max(1);
        return Err(CompileError::Verification(format!(
            "the trained model scores verification row {} as {}; a model whose predictions are not finite \
             cannot be packaged (retrain it: its weights or training diverged)",
            i / columns + 1,
            expected[i]
        )));
    }
    if scores.len() != expected.len() {
        return Err(CompileError::Execution(format!(
            "the graph returned {} scores, the trainer {}",
            scores.len(),
            expected.len()
        )));
    }
    let magnitude = expected.iter().fold(1.0f64, |m, &r| {
        if r.is_finite() {
            m.max(f64::from(r.abs()))
        } else {
            m
        }
    });
    let limit = DriftLimit::for_precision(manifest.precision).scaled(magnitude);
    let mut drift = Drift {
        limit,
        max_absolute: 0.0,
        max_relative: 0.0,
        scores_outside: 0,
        label_agreement: 1.0,
        rows: n,
    };
    for (&p, &r) in scores.iter().zip(&expected) {
        let (absolute, relative) = if p.is_nan() && r.is_nan() {
            (0.0, 0.0)
        } else {
            let delta = (f64::from(p) - f64::from(r)).abs();
            let delta = if delta.is_nan() { f64::INFINITY } else { delta };
            (delta, delta / f64::from(r.abs()).max(1e-6))
        };
        drift.max_absolute = drift.max_absolute.max(absolute);
        drift.max_relative = drift.max_relative.max(relative);
        if absolute > limit.absolute && relative > limit.relative {
            drift.scores_outside += 1;
        }
    }
    if let Some(expected_labels) = &reference.predicted_label {
        let columns = reference.scores.ncols().max(1);
        let labels: Vec<i64> = match &lowered.label_rule {
            LabelRule::Output(name) => {
                let output = outputs.get(name).ok_or_else(|| {
                    CompileError::Execution(format!("the graph returned no {name:?}"))
                })?;
                (0..n).map(|row| output.row_label(row)).collect()
            }
            LabelRule::Threshold { threshold, strict } => (0..n)
                .map(|row| {
                    let s = scores[row * columns];
                    i64::from(if *strict {
                        s > *threshold
                    } else {
                        s >= *threshold
                    })
                })
                .collect(),
            LabelRule::Argmax => scores
                .chunks(columns)
                .map(|row| {
                    let mut best = 0;
                    for (k, &v) in row.iter().enumerate() {
                        if v > row[best] {
                            best = k;
                        }
                    }
                    best as i64
                })
                .collect(),
            LabelRule::None => Vec::new(),
        };
        if !labels.is_empty() {
            let agree = labels
                .iter()
                .zip(expected_labels)
                .filter(|(&a, &b)| a == b as i64)
                .count();
            drift.label_agreement = agree as f64 / n as f64;
        }
    }
    Ok(drift)
}
