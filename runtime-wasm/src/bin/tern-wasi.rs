//! `tern-wasi <package-dir> [--content-type TYPE] [--accept TYPE]`: one SageMaker `/invocations` request on stdin,
//! its response on stdout, for WASI hosts (`wasmtime run --dir <package-dir> tern-wasi.wasm <package-dir>`).
//! Exit status 1 with the error on stderr when the package or the request is bad.

use std::io::Write;
use std::process::ExitCode;

use tern_wasm::wasi::{parse_arguments, serve};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = std::io::stdout();
    let result = parse_arguments(&args).and_then(|arguments| {
        serve(
            &arguments,
            std::io::BufReader::new(std::io::stdin()),
            stdout.lock(),
        )
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = std::io::stdout().flush();
            eprintln!("tern-wasi: {error}");
            ExitCode::FAILURE
        }
    }
}
