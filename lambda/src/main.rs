//! `bootstrap`: tern's AWS Lambda custom runtime (`provided.al2023`, x86_64 or arm64). It loads one package at init,
//! then answers invocations through the Lambda Runtime API (`lambda_runtime`) with
//! [`tern_edge::lambda::handle_event`]: API Gateway / Function URL events get HTTP responses, plain
//! `{"body","contentType","accept"}` events get `{"contentType","body","isBase64Encoded"}`.
//!
//! The package, in order:
//! 1. built in, when compiled with the `embed` feature and `TERN_EMBED_PACKAGE=<package folder>` set at build time;
//! 2. `TERN_PACKAGE`, a package folder;
//! 3. `$LAMBDA_TASK_ROOT/package` (the deployment zip holding `bootstrap` and `package/`).
//!
//! A package that fails to load or verify ends the process with status 1 and the reason on stderr (Lambda reports
//! it as `Runtime.ExitError` with that log).
//!
//! This is a separate crate so that `lambda_runtime` and its HTTP stack stay out of the tern-edge library.

use std::sync::Arc;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;
use tern_runtime::Package;

fn load_package() -> Result<Package, String> {
    #[cfg(feature = "embed")]
    {
        let manifest = include_bytes!(concat!(env!("TERN_EMBED_PACKAGE"), "/manifest.json"));
        let graph = include_bytes!(concat!(env!("TERN_EMBED_PACKAGE"), "/model.onnx"));
        Package::from_bytes(manifest, graph).map_err(|e| format!("the embedded package: {e}"))
    }
    #[cfg(not(feature = "embed"))]
    {
        let dir = match std::env::var_os("TERN_PACKAGE") {
            Some(dir) => std::path::PathBuf::from(dir),
            None => match std::env::var_os("LAMBDA_TASK_ROOT") {
                Some(root) => std::path::PathBuf::from(root).join("package"),
                None => {
                    return Err(
                        "no package: set TERN_PACKAGE to a package folder, or deploy one as package/ beside \
                         bootstrap (LAMBDA_TASK_ROOT)"
                            .to_string(),
                    )
                }
            },
        };
        Package::load(&dir).map_err(|e| format!("{}: {e}", dir.display()))
    }
}

fn main() -> std::process::ExitCode {
    let package = match load_package() {
        Ok(package) => Arc::new(package),
        Err(message) => {
            eprintln!("tern bootstrap: cannot load the package: {message}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tern bootstrap: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let package = package.clone();
        async move {
            tern_edge::lambda::handle_event(&package, &event.payload).map_err(|error| Diagnostic {
                error_type: error.error_type().to_string(),
                error_message: error.to_string(),
            })
        }
    });
    match runtime.block_on(lambda_runtime::run(handler)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tern bootstrap: the runtime loop failed: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
