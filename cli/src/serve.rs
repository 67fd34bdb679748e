//! `tern serve`: the SageMaker-compatible endpoint (tern-edge) from the command line, and SageMaker's own container
//! form, `docker run <image> serve`, which serves the package extracted into /opt/ml/model.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use tern_edge::{BatchConfig, ServeConfig, VariantConfig};

/// Where SageMaker extracts `ModelDataUrl` (a `.tar.gz`) before starting the container.
pub const SAGEMAKER_MODEL_DIR: &str = "/opt/ml/model";

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
    /// The address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Requests with larger bodies are answered 413 (SageMaker's limit: 6 MB).
    #[arg(long, default_value_t = 6.0)]
    max_payload_mb: f64,
    /// Require `Authorization: Bearer <token>` on every route but /ping.
    #[arg(long, env = "TERN_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
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
    config.address = args.bind;
    if !(args.max_payload_mb.is_finite() && args.max_payload_mb > 0.0) {
        bail!(
            "--max-payload-mb: expected a positive number of megabytes, found {}",
            args.max_payload_mb
        );
    }
    config.max_payload_bytes = (args.max_payload_mb * 1024.0 * 1024.0).round() as usize;
    config.bearer_token = args.auth_token.clone().filter(|t| !t.is_empty());
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
        "starting tern serve"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(tern_edge::serve(config, tern_edge::termination_signal()))?;
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
