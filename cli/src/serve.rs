//! `tern serve`: the SageMaker-compatible endpoint (tern-edge) from the command line, and SageMaker's own container
//! form, `docker run <image> serve`, which serves the package extracted into /opt/ml/model.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use tern_edge::config::{DEFAULT_MAX_QUEUE, MAX_PAYLOAD_CEILING_BYTES, WORKERS_VARIABLE};
use tern_edge::{BatchConfig, ServeConfig, Timeouts, VariantConfig};

/// Where SageMaker extracts `ModelDataUrl` (a `.tar.gz`) before starting the container.
pub const SAGEMAKER_MODEL_DIR: &str = "/opt/ml/model";
/// The environment variable `--auth-token` falls back to.
const AUTH_TOKEN_VARIABLE: &str = "TERN_AUTH_TOKEN";

#[derive(Args)]
pub struct ServeArgs {
    /// A package folder (tern compile's output) served as the variant AllTraffic. Without it, --variant or
    /// --pipeline, the package in --model-dir is served (SageMaker's container contract).
    #[arg(conflicts_with_all = ["variants", "pipeline"])]
    package: Option<PathBuf>,
    /// A production variant, NAME=WEIGHT:PKG_DIR[,PKG_DIR...] (several folders make an inference pipeline);
    /// repeatable. Traffic splits in proportion to the weights; X-Amzn-SageMaker-Target-Variant picks one.
    #[arg(long = "variant", value_name = "NAME=WEIGHT:PKG_DIR")]
    variants: Vec<String>,
    /// An inference pipeline served as AllTraffic: each package's response is the next one's request.
    #[arg(long, value_name = "PKG1,PKG2,...", conflicts_with = "variants")]
    pipeline: Option<String>,
    /// The port (default 8080, or SAGEMAKER_BIND_TO_PORT).
    #[arg(long)]
    port: Option<u16>,
    /// The address to listen on [default: 0.0.0.0 in the container form (no package, --variant or --pipeline), as
    /// SageMaker requires; 127.0.0.1 otherwise: give 0.0.0.0 or an interface's address to listen wider].
    #[arg(long, value_name = "ADDR")]
    bind: Option<IpAddr>,
    /// Requests with larger bodies are answered 413 (SageMaker's real-time limit: 6 MB). At most 100, SageMaker's
    /// largest MaxPayloadInMB: a body is held in memory whole.
    #[arg(long, default_value_t = 6.0)]
    max_payload_mb: f64,
    /// Require `Authorization: Bearer <token>` on every route but /ping. An empty or blank token is refused.
    #[arg(long, env = AUTH_TOKEN_VARIABLE, hide_env_values = true)]
    auth_token: Option<String>,
    /// Invocations decoded and run at once [default: the machine's cores]. A request takes a worker once its body
    /// has arrived; with micro-batching, at most this many batches run at once.
    #[arg(long, env = WORKERS_VARIABLE, value_name = "N")]
    workers: Option<usize>,
    /// Invocations that may wait beyond the workers (receiving their body, or waiting for a worker or batch); with
    /// all places taken, a request is answered 503 at once. Memory for requests stays below about
    /// (workers + max-queue) x (max-payload-mb + the rows of one run + a response).
    #[arg(long, default_value_t = DEFAULT_MAX_QUEUE, value_name = "N")]
    max_queue: usize,
    /// Seconds a connection has to send a request's headers, counted from the connection's opening or its
    /// previous response.
    #[arg(long, default_value_t = Timeouts::default().header.as_secs(), value_name = "SECONDS")]
    header_timeout_s: u64,
    /// Seconds a request's body has to arrive after its headers; 408 and the connection closed after.
    #[arg(long, default_value_t = Timeouts::default().body.as_secs(), value_name = "SECONDS")]
    body_timeout_s: u64,
    /// Seconds a connection may stay open with no request being handled and no byte moving (a kept-alive
    /// connection between requests, a client not reading its response).
    #[arg(long, default_value_t = Timeouts::default().idle.as_secs(), value_name = "SECONDS")]
    idle_timeout_s: u64,
    /// On SIGTERM: seconds requests in flight have to finish before the connections still open are closed and the
    /// server exits (SageMaker sends SIGKILL 30 s after SIGTERM).
    #[arg(long, default_value_t = Timeouts::default().drain.as_secs(), value_name = "SECONDS")]
    drain_timeout_s: u64,
    /// Micro-batching: the most rows one merged run of concurrent requests takes; 1 runs every request alone.
    #[arg(long, default_value_t = BatchConfig::default().max_batch_rows)]
    max_batch: usize,
    /// Micro-batching: how long a batch waits for more requests after its first; 0 merges only requests that
    /// queued while every worker was busy, so a lone request is never delayed.
    #[arg(long, default_value_t = 0)]
    max_wait_ms: u64,
    /// Seed of the weighted variant choice (the traffic split is reproducible).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the package is when no package, --variant or --pipeline is given.
    #[arg(long, default_value = SAGEMAKER_MODEL_DIR)]
    model_dir: PathBuf,
    /// Log lines to stderr as text or as JSON objects (one per line).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// The lowest level logged (RUST_LOG, when set, wins): error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// Parses `NAME=WEIGHT:PKG_DIR[,PKG_DIR...]`.
fn parse_variant(text: &str) -> Result<VariantConfig> {
    let expected = "expected NAME=WEIGHT:PKG_DIR[,PKG_DIR...], e.g. A=0.7:packages/a";
    let (name, rest) = text
        .split_once('=')
        .with_context(|| format!("--variant {text:?}: no '=': {expected}"))?;
    let (weight, packages) = rest
        .split_once(':')
        .with_context(|| format!("--variant {text:?}: no ':' after the weight: {expected}"))?;
    let weight: f64 = weight.trim().parse().with_context(|| {
        format!("--variant {text:?}: weight {weight:?} is not a number: {expected}")
    })?;
    let packages = package_list(packages)
        .with_context(|| format!("--variant {text:?}: no package folder: {expected}"))?;
    Ok(VariantConfig {
        name: name.trim().to_string(),
        weight,
        packages,
    })
}

fn package_list(text: &str) -> Option<Vec<PathBuf>> {
    let packages: Vec<PathBuf> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    (!packages.is_empty()).then_some(packages)
}

/// The package folder inside SageMaker's model directory: the directory itself when `manifest.json` is at its root
/// (`tar czf model.tar.gz -C package .`), else its only subfolder holding one (`tar czf model.tar.gz package`).
fn model_dir_package(dir: &Path) -> Result<PathBuf> {
    if dir.join("manifest.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading the model directory {}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.join("manifest.json").is_file() {
            found.push(path);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 if dir.join("artifact.json").is_file() || dir.join("model.tar.gz").is_file() => bail!(
            "{} holds a trained model, not a package: compile it first (tern compile model.tar.gz -o package; \
             tar czf model.tar.gz -C package .) and serve that",
            dir.display()
        ),
        0 => bail!(
            "{} holds no package (manifest.json + model.onnx, at its root or in one subfolder); give a package \
             folder, --variant or --pipeline",
            dir.display()
        ),
        _ => bail!(
            "{} holds {} packages ({}); name them with --variant",
            dir.display(),
            found.len(),
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Whether no package, --variant or --pipeline is given: SageMaker's container form, serving --model-dir.
fn is_container_form(args: &ServeArgs) -> bool {
    args.variants.is_empty() && args.pipeline.is_none() && args.package.is_none()
}

/// The bearer token, refusing an empty or blank one (an unset `$TOKEN` in a script would otherwise turn
/// authentication off), and naming where it came from.
fn bearer_token(given: Option<&str>, from_environment: Option<&str>) -> Result<Option<String>> {
    let Some(token) = given else {
        return Ok(None);
    };
    if token.trim().is_empty() {
        let source = if from_environment == Some(token) {
            format!("{AUTH_TOKEN_VARIABLE} is set but")
        } else {
            "--auth-token".to_string()
        };
        bail!(
            "{source} empty or blank, which would turn authentication off: give a token, or unset \
             {AUTH_TOKEN_VARIABLE} and leave out --auth-token to serve without authentication"
        );
    }
    Ok(Some(token.to_string()))
}

fn seconds(flag: &str, value: u64) -> Result<Duration> {
    if value == 0 {
        bail!("{flag}: expected at least 1 second");
    }
    Ok(Duration::from_secs(value))
}

fn config(args: &ServeArgs) -> Result<ServeConfig> {
    let variants = if !args.variants.is_empty() {
        args.variants
            .iter()
            .map(|v| parse_variant(v))
            .collect::<Result<Vec<_>>>()?
    } else {
        let packages = match (&args.pipeline, &args.package) {
            (Some(list), _) => package_list(list).context("--pipeline: no package folder")?,
            (None, Some(package)) => vec![package.clone()],
            (None, None) => vec![model_dir_package(&args.model_dir)?],
        };
        vec![VariantConfig {
            name: "AllTraffic".to_string(),
            weight: 1.0,
            packages,
        }]
    };
    let mut config = ServeConfig::from_env(variants)?;
    if let Some(port) = args.port {
        config.port = port;
    }
    config.address = match args.bind {
        Some(address) => address,
        None if is_container_form(args) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    if !(args.max_payload_mb.is_finite() && args.max_payload_mb > 0.0) {
        bail!(
            "--max-payload-mb: expected a positive number of megabytes, found {}",
            args.max_payload_mb
        );
    }
    let ceiling_mb = MAX_PAYLOAD_CEILING_BYTES / (1024 * 1024);
    if args.max_payload_mb > ceiling_mb as f64 {
        bail!(
            "--max-payload-mb: at most {ceiling_mb} (SageMaker's largest MaxPayloadInMB; a request body is held in \
             memory whole), found {}",
            args.max_payload_mb
        );
    }
    config.max_payload_bytes = (args.max_payload_mb * 1024.0 * 1024.0).round() as usize;
    let environment_token = std::env::var(AUTH_TOKEN_VARIABLE).ok();
    config.bearer_token = bearer_token(args.auth_token.as_deref(), environment_token.as_deref())?;
    if let Some(workers) = args.workers {
        if workers == 0 {
            bail!("--workers ({WORKERS_VARIABLE}): expected at least 1 worker");
        }
        config.workers = workers;
    }
    config.max_queue = args.max_queue;
    config.timeouts = Timeouts {
        header: seconds("--header-timeout-s", args.header_timeout_s)?,
        body: seconds("--body-timeout-s", args.body_timeout_s)?,
        idle: seconds("--idle-timeout-s", args.idle_timeout_s)?,
        drain: seconds("--drain-timeout-s", args.drain_timeout_s)?,
    };
    config.seed = args.seed;
    config.batching = match args.max_batch {
        0 => bail!("--max-batch: expected at least 1 row (1 turns micro-batching off)"),
        1 => None,
        rows => Some(BatchConfig {
            max_batch_rows: rows,
            max_wait: Duration::from_millis(args.max_wait_ms),
        }),
    };
    config.validate()?;
    Ok(config)
}

fn install_logging(args: &ServeArgs) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => EnvFilter::try_new(&args.log_level)
            .with_context(|| format!("--log-level {:?}", args.log_level))?,
    };
    // Colours only for a person at a terminal; a log file or collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = if args.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    installed.map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}

/// Runs the endpoint until SIGTERM or Ctrl-C, then finishes the requests in flight and returns.
pub fn serve(args: ServeArgs) -> Result<()> {
    let config = config(&args)?;
    install_logging(&args)?;
    tracing::info!(
        address = %config.address,
        port = config.port,
        variants = ?config.variants.iter().map(|v| &v.name).collect::<Vec<_>>(),
        max_payload_bytes = config.max_payload_bytes,
        authentication = config.bearer_token.is_some(),
        batching = ?config.batching,
        workers = config.workers,
        max_queue = config.max_queue,
        timeouts = ?config.timeouts,
        "starting tern serve"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(tern_edge::serve(config, tern_edge::termination_signal()));
    // A prediction still running on a blocking thread (its client cut off by the drain timeout) is not waited for.
    runtime.shutdown_background();
    served?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_flags_parse_name_weight_and_packages() {
        let variant = parse_variant("Canary=0.25:pkg/a,pkg/b").unwrap();
        assert_eq!(variant.name, "Canary");
        assert_eq!(variant.weight, 0.25);
        assert_eq!(
            variant.packages,
            vec![PathBuf::from("pkg/a"), PathBuf::from("pkg/b")]
        );
        for bad in ["A", "A=1", "A=x:pkg", "A=1:", "A=1: , "] {
            let error = parse_variant(bad).unwrap_err().to_string();
            assert!(error.contains("NAME=WEIGHT:PKG_DIR"), "{bad}: {error}");
        }
    }

    #[test]
    fn an_empty_or_blank_token_is_refused_naming_its_source() {
        assert_eq!(bearer_token(None, None).unwrap(), None);
        assert_eq!(
            bearer_token(Some("s3cret"), None).unwrap().as_deref(),
            Some("s3cret")
        );
        for blank in ["", " ", "\t"] {
            let error = bearer_token(Some(blank), None).unwrap_err().to_string();
            assert!(error.starts_with("--auth-token empty"), "{error}");
            let error = bearer_token(Some(blank), Some(blank))
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with("TERN_AUTH_TOKEN is set but empty"),
                "{error}"
            );
        }
    }

    #[test]
    fn the_model_directory_holds_the_package_at_its_root_or_in_one_subfolder() {
        let dir = tempfile::tempdir().unwrap();
        let error = model_dir_package(dir.path()).unwrap_err().to_string();
        assert!(error.contains("holds no package"), "{error}");
        std::fs::create_dir(dir.path().join("package")).unwrap();
        std::fs::write(dir.path().join("package/manifest.json"), "{}").unwrap();
        assert_eq!(
            model_dir_package(dir.path()).unwrap(),
            dir.path().join("package")
        );
        std::fs::write(dir.path().join("manifest.json"), "{}").unwrap();
        assert_eq!(model_dir_package(dir.path()).unwrap(), dir.path());
        let trained = tempfile::tempdir().unwrap();
        std::fs::write(trained.path().join("artifact.json"), "{}").unwrap();
        let error = model_dir_package(trained.path()).unwrap_err().to_string();
        assert!(error.contains("compile it first"), "{error}");
    }
}
