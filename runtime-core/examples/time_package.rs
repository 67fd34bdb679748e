//! Times a package in tern-runtime for bench/runtime: latency of single-row runs and throughput of batched runs.
//!
//! `time_package <package-dir> <features.f32> <rows> <batch> <runs> [tract|interpreter]`: `features.f32` holds
//! `rows × feature_dim` little-endian float32 values; the last argument picks the engine (default: the build's). Each of `runs` timed calls runs `batch` consecutive rows (wrapping around the
//! file), after one untimed warm-up call. Prints one JSON object: `{"batch", "runs", "median_us", "p99_us",
//! "rows_per_s"}` (throughput from the median call).

mod common;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;
use tern_runtime::{EngineKind, Package};

fn parse_count(name: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(format!("{name} {text:?}: expected a positive count")),
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let usage = "usage: time_package <package-dir> <features.f32> <rows> <batch> <runs> [tract|interpreter]";
    let (engine, args) = match args {
        [rest @ .., last] if args.len() == 6 => {
            let engine = match last.as_str() {
                "tract" => EngineKind::Tract,
                "interpreter" => EngineKind::Interpreter,
                other => return Err(format!("engine {other:?}: expected tract or interpreter")),
            };
            (engine, rest)
        }
        _ => (EngineKind::DEFAULT, args),
    };
    let [package, features, rows, batch, runs] = args else {
        return Err(usage.to_string());
    };
    let package = Package::load_with(Path::new(package), engine).map_err(|e| e.to_string())?;
    let dim = package.manifest().feature_dim;
    let (rows, batch, runs) = (
        parse_count("rows", rows)?,
        parse_count("batch", batch)?,
        parse_count("runs", runs)?,
    );
    let values = common::read_f32_file(features)?;
    if values.len() != rows * dim {
        return Err(format!(
            "{features}: {} values, expected {rows} rows × {dim} features",
            values.len()
        ));
    }
    // Calls read `batch` consecutive rows; the file is repeated so that a call never wraps mid-batch.
    let repeated: Vec<f32> = values
        .iter()
        .copied()
        .cycle()
        .take((rows + batch) * dim)
        .collect();
    let call = |start: usize| -> Result<f64, String> {
        let slice = &repeated[start * dim..(start + batch) * dim];
        let begin = Instant::now();
        let outputs = package.run(slice, batch).map_err(|e| e.to_string())?;
        let elapsed = begin.elapsed().as_secs_f64();
        std::hint::black_box(outputs);
        Ok(elapsed)
    };
    call(0)?;
    let mut times = (0..runs)
        .map(|i| call((i * batch) % rows))
        .collect::<Result<Vec<f64>, String>>()?;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let p99 = times[((times.len() * 99) / 100).min(times.len() - 1)];
    Ok(json!({
        "batch": batch,
        "runs": runs,
        "median_us": median * 1e6,
        "p99_us": p99 * 1e6,
        "rows_per_s": batch as f64 / median,
    })
    .to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("time_package: {message}");
            ExitCode::FAILURE
        }
    }
}
