//! The conformance matrix: every algorithm × precision, on real held-out rows, the trainer's predictions against the
//! compiled package in every runtime — tern-runtime native (in process, `x86_64` on tract and `interpreter` on
//! tern's own interpreter, the engine of the browser build), tern-runtime aarch64 (the `run_package` example
//! cross-built for aarch64-unknown-linux-gnu, run under qemu-aarch64), and onnxruntime
//! (`tests/conformance/run_onnxruntime.py` in the oracle virtualenv), and tern-runtime compiled to wasm in Node
//! (`runtime-wasm/node/run_package.mjs` on the build in runtime-wasm/pkg; when node or that build is missing, its
//! cells are skipped with a note: scripts/setup-web.sh builds it), and tern-gpu's wgpu kernels natively
//! (`native-wgpu`: on lavapipe without a GPU; graphs outside its op subset print as `fallback`, the op named, since
//! the runtimes then run them on tract; no adapter skips the column with a note), and the browser build of the wasm
//! runtime inside headless Chromium (`runtime-wasm/browser/run_packages.mjs`, one Chromium for the whole run):
//! `chromium-wasm` on the wasm CPU backend (tern's interpreter), `chromium-webgpu` on WebGPU (SwiftShader's adapter
//! here; graphs the WebGPU backend refuses print as `fallback`, the op named). The interpreter, wasm, native-wgpu
//! and Chromium columns share x86_64's [`cases::IGNORED`] entries: they run the same compiled package. With
//! `TERN_CONFORMANCE_REQUIRE_ALL=1` (scripts/test.sh sets it) a column that cannot run here fails its cells instead
//! of skipping them.
//!
//! Each runtime is a column behind [`columns::Column`] (one module each under `columns/`); the comparison they
//! share is [`compare`]. A case is defined once in [`cases::CASES`]; a later algorithm joins by adding one entry.
//! Pass criteria per cell: fp32: every score within 1e-5 relative (|package − trainer| ≤ 1e-5 · max(|trainer|, 1))
//! and identical labels; f16 / int8: every score within the manifest's verified tolerance (|Δ| ≤ max(absolute,
//! relative · |trainer|)) and label agreement at least the manifest's. [`cases::IGNORED`] lists (case, precision,
//! runtime) cells a runtime truly cannot run or the compiler refuses to package, with the reason; they print as N/A.
//!
//! The suite has its own harness (libtest-mimic): one trial per (case, precision), named `<case>/<precision>`, each
//! running its row in every column, and the guard trial `guard/every shipped algorithm has a lowering and a case`.
//! A case trains once per process whichever of its trials comes first. Trials take libtest's arguments:
//!
//! ```text
//! cargo test --release -p tern-tests --test conformance -- --list          # every trial
//! cargo test --release -p tern-tests --test conformance -- 'rcf/int8'      # one row (a name filter, as in libtest)
//! cargo test --release -p tern-tests --test conformance -- --nocapture     # everything, then the matrix printed
//! ```
//!
//! `TERN_CONFORMANCE_CASES=knn,xgboost` (comma-separated parts of case names) narrows the trials to those cases, for
//! several cases at once. With `--nocapture` the rows that ran print as one matrix once every trial has finished;
//! a failing trial shows its row in its failure message either way.
//!
//! Needs scripts/setup-cross.sh (aarch64 column) and scripts/setup-python.sh (onnxruntime column); a missing
//! toolchain fails that column's cells saying which script to run.

mod cases;
mod columns;
mod compare;
mod matrix;
mod trained;

use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};

use cases::{precision_name, selected, CASES, PRECISIONS};
use matrix::Matrix;

fn main() {
    let arguments = Arguments::from_args();
    let matrix = Arc::new(Matrix::new());
    let mut trials = vec![Trial::test(
        "guard/every shipped algorithm has a lowering and a case",
        every_shipped_algorithm_has_a_lowering_and_a_case,
    )];
    for (case_index, case) in CASES.iter().enumerate() {
        if !selected(case.name) {
            continue;
        }
        for (precision_index, &precision) in PRECISIONS.iter().enumerate() {
            let matrix = Arc::clone(&matrix);
            trials.push(Trial::test(
                format!("{}/{}", case.name, precision_name(precision)),
                move || matrix.run_row(case_index, precision_index),
            ));
        }
    }
    let conclusion = libtest_mimic::run(&arguments, trials);
    if arguments.nocapture && matrix.ran() {
        println!(
            "\nconformance matrix (cells: max |package − trainer| / label agreement / verdict; N/A: cannot run \
             there, reason below)\n{}",
            matrix.table()
        );
    }
    // The trials are gone, so this is the last reference: closing Chromium and removing the work folder.
    drop(matrix);
    conclusion.exit();
}

/// Every algorithm the binary ships has a lowering (the registry pairs them) and at least one case in
/// [`CASES`], so an algorithm cannot join without the matrix proving its packages in every runtime; every case
/// names a shipped algorithm.
fn every_shipped_algorithm_has_a_lowering_and_a_case() -> Result<(), Failed> {
    // Registry::shipped pairs every algorithm with its lowering, and panics (failing this trial) when one has none.
    let registry = tern_registry::Registry::shipped();
    let without_case: Vec<&str> = registry
        .entries()
        .iter()
        .map(|entry| entry.name())
        .filter(|&name| !CASES.iter().any(|case| case.algorithm == name))
        .collect();
    if !without_case.is_empty() {
        return Err(
            format!("algorithms without a conformance case in CASES: {without_case:?}").into(),
        );
    }
    for case in CASES {
        if registry.find(case.algorithm).is_err() {
            return Err(format!(
                "case {:?} names {:?}, which the registry does not ship",
                case.name, case.algorithm
            )
            .into());
        }
    }
    Ok(())
}
