//! The WASI runner's logic: one `/invocations` request read from a stream, its response written to another, as a
//! serverless wasm host (or a shell pipe) calls it. The `tern-wasi` binary is a thin shell over [`serve`].

use std::io::{Read, Write};
use std::path::Path;

use tern_runtime::Package;

use crate::WasmError;

/// The command line: `tern-wasi <package-dir> [--content-type TYPE] [--accept TYPE]`.
pub const USAGE: &str = "usage: tern-wasi <package-dir> [--content-type TYPE] [--accept TYPE]\n\
  reads one request body on stdin (default Content-Type text/csv) and writes the SageMaker response to stdout \
  (default Accept: the package's default, application/json for most algorithms)";

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arguments {
    pub package: String,
    pub content_type: String,
    pub accept: String,
}

/// Parses the arguments after the program name; errors name the argument and repeat [`USAGE`].
pub fn parse_arguments(args: &[String]) -> Result<Arguments, WasmError> {
    let mut package = None;
    let mut content_type = "text/csv".to_string();
    let mut accept = String::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |argument: &'static str| {
            args.next().cloned().ok_or_else(|| WasmError::Argument {
                argument,
                message: format!("needs a value\n{USAGE}"),
            })
        };
        match arg.as_str() {
            "--content-type" => content_type = value("--content-type")?,
            "--accept" => accept = value("--accept")?,
            flag if flag.starts_with("--") => {
                return Err(WasmError::Argument {
                    argument: "arguments",
                    message: format!("unknown option {flag:?}\n{USAGE}"),
                })
            }
            path if package.is_none() => package = Some(path.to_string()),
            extra => {
                return Err(WasmError::Argument {
                    argument: "arguments",
                    message: format!("unexpected argument {extra:?}\n{USAGE}"),
                })
            }
        }
    }
    let package = package.ok_or_else(|| WasmError::Argument {
        argument: "<package-dir>",
        message: format!("missing\n{USAGE}"),
    })?;
    Ok(Arguments {
        package,
        content_type,
        accept,
    })
}

/// Loads the package named by `arguments`, then streams `input` (a request of `content_type`) through it into
/// `output` (as `accept`), batch by batch. Returns the response content type.
pub fn serve<R: Read + Send, W: Write>(
    arguments: &Arguments,
    input: R,
    output: W,
) -> Result<String, WasmError> {
    let package = Package::load(Path::new(&arguments.package))?;
    Ok(package.predict_stream(input, &arguments.content_type, &arguments.accept, output)?)
}
