//! What `tern serve` serves and how: production variants (each a package or a pipeline of packages), the address and
//! port, payload limit, authentication, default response type, micro-batching, concurrency and connection timeouts.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::EdgeError;

/// SageMaker's port for `/ping` and `/invocations`.
pub const DEFAULT_PORT: u16 = 8080;
/// SageMaker's `MaxPayloadInMB` default: 6 MB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// The largest payload limit accepted: 100 MB, SageMaker's own maximum `MaxPayloadInMB` (batch transform). A request
/// body is held whole in memory, so the limit is also what one request may take.
pub const MAX_PAYLOAD_CEILING_BYTES: usize = 100 * 1024 * 1024;
/// Requests that may wait for a worker by default (see [`ServeConfig::max_queue`]).
pub const DEFAULT_MAX_QUEUE: usize = 64;
/// The environment variable that overrides the port.
pub const PORT_VARIABLE: &str = "SAGEMAKER_BIND_TO_PORT";
/// The environment variable naming the response type for requests without an `Accept` (or with `*/*`).
pub const DEFAULT_ACCEPT_VARIABLE: &str = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT";
/// The environment variable SageMaker's inference containers read their number of workers from.
pub const WORKERS_VARIABLE: &str = "SAGEMAKER_MODEL_SERVER_WORKERS";

/// One production variant: a name, a traffic weight, and the packages it chains (one package, or an inference
/// pipeline whose package `i`'s response is package `i + 1`'s request).
#[derive(Debug, Clone, PartialEq)]
pub struct VariantConfig {
    /// `VariantName`: what `X-Amzn-SageMaker-Target-Variant` names and `X-Amzn-Invoked-Production-Variant` returns.
    pub name: String,
    /// `InitialVariantWeight`: traffic is split in proportion to the weights; 0 serves only targeted requests.
    pub weight: f64,
    /// Package folders (`model.onnx` + `manifest.json`), in pipeline order; at least one.
    pub packages: Vec<PathBuf>,
}

impl VariantConfig {
    /// A variant serving one package.
    pub fn new(name: impl Into<String>, weight: f64, package: impl Into<PathBuf>) -> Self {
        VariantConfig {
            name: name.into(),
            weight,
            packages: vec![package.into()],
        }
    }
}

/// Everything [`crate::serve`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// At least one; names unique; weights finite, non-negative, and not all 0.
    pub variants: Vec<VariantConfig>,
    /// The address to listen on (default 127.0.0.1: SageMaker's container form listens on 0.0.0.0, which callers
    /// set).
    pub address: IpAddr,
    /// The port (default 8080, or `SAGEMAKER_BIND_TO_PORT` via [`ServeConfig::from_env`]).
    pub port: u16,
    /// Bodies larger than this are answered 413; at most [`MAX_PAYLOAD_CEILING_BYTES`].
    pub max_payload_bytes: usize,
    /// When set, every route but `/ping` requires `Authorization: Bearer <token>` (401 otherwise). An empty or
    /// blank token is refused by [`ServeConfig::validate`]: it would turn authentication off unnoticed.
    pub bearer_token: Option<String>,
    /// The response type for requests with no `Accept` or `*/*`; `None` lets each package choose (its manifest's
    /// first `produces` entry).
    pub default_accept: Option<String>,
    /// Seeds the weighted variant choice, so a run's traffic split is reproducible.
    pub seed: u64,
    /// Merges concurrent requests to one variant into one package run; `None` runs every request alone.
    pub batching: Option<BatchConfig>,
    /// Invocations decoded and run at once (SageMaker's `SAGEMAKER_MODEL_SERVER_WORKERS`; default the machine's
    /// cores). A request takes a worker once its body has arrived, so a slow client never holds one; with batching,
    /// at most this many merged batches run at once.
    pub workers: usize,
    /// Invocations admitted beyond the workers: receiving their body, or waiting for a worker or a batch. When
    /// `workers + max_queue` requests are in progress, another is answered 503 at once. Together with the payload
    /// limit this bounds the memory requests take: each holds its body (at most `max_payload_bytes`), at most
    /// [`tern_runtime::BATCH_ROWS`] decoded rows at a time, and its response.
    pub max_queue: usize,
    /// How long a client may take before its connection is closed.
    pub timeouts: Timeouts,
}

/// How long a connection may make no progress (see [`crate::connections`] for what each bound closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From when the server begins waiting for a request (the connection opened, or its previous response was
    /// sent) until the request's headers are complete.
    pub header: Duration,
    /// From a request's complete headers until its complete body (`/invocations` answers 408 after it).
    pub body: Duration,
    /// A connection on which no byte moved and no request was being handled for this long is closed.
    pub idle: Duration,
    /// On shutdown, how long connections may finish their requests before they are closed (SageMaker sends
    /// SIGKILL 30 s after SIGTERM).
    pub drain: Duration,
}

impl Default for Timeouts {
    /// 60 s for headers, bodies and idle connections (SageMaker's model servers answer within 60 s), 30 s to drain.
    fn default() -> Self {
        Timeouts {
            header: Duration::from_secs(60),
            body: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            drain: Duration::from_secs(30),
        }
    }
}

/// Micro-batching: requests to the same variant that arrive together are decoded, merged into one run of at most
/// `max_batch_rows` rows, and split back into one response each, byte for byte what each would get alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// The most rows one merged run takes (> 1); a request is never split, so one with more rows runs alone.
    pub max_batch_rows: usize,
    /// How long a batch waits, from its first request, for more requests; zero merges only the requests already
    /// queued (those that arrived while every worker was busy).
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    /// 64 rows, no waiting: merging happens only under load, so a lone request is never delayed.
    fn default() -> Self {
        BatchConfig {
            max_batch_rows: 64,
            max_wait: Duration::ZERO,
        }
    }
}

impl ServeConfig {
    /// SageMaker's defaults on the loopback interface: port 8080, 6 MB payloads, no authentication, a worker per
    /// core, [`DEFAULT_MAX_QUEUE`] waiting requests, [`Timeouts::default`].
    pub fn new(variants: Vec<VariantConfig>) -> Self {
        ServeConfig {
            variants,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            bearer_token: None,
            default_accept: None,
            seed: 0,
            batching: None,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_queue: DEFAULT_MAX_QUEUE,
            timeouts: Timeouts::default(),
        }
    }

    /// [`ServeConfig::new`] with the port from `SAGEMAKER_BIND_TO_PORT`, the default accept from
    /// `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` and the workers from `SAGEMAKER_MODEL_SERVER_WORKERS`, when set.
    pub fn from_env(variants: Vec<VariantConfig>) -> Result<Self, EdgeError> {
        let mut config = ServeConfig::new(variants);
        config.port = port_from(std::env::var(PORT_VARIABLE).ok().as_deref())?;
        config.default_accept = std::env::var(DEFAULT_ACCEPT_VARIABLE)
            .ok()
            .filter(|value| !value.trim().is_empty());
        let workers = std::env::var(WORKERS_VARIABLE).ok();
        let parsed =
            workers_from(workers.as_deref()).map_err(|message| EdgeError::Environment {
                name: WORKERS_VARIABLE,
                value: workers.clone().unwrap_or_default(),
                message,
            })?;
        if let Some(workers) = parsed {
            config.workers = workers;
        }
        Ok(config)
    }

    /// Checks the variants: at least one, each with a non-empty unique name and at least one package, weights
    /// finite and non-negative with a positive sum; a payload limit in `1..=`[`MAX_PAYLOAD_CEILING_BYTES`]; a
    /// bearer token, when set, that is not blank; at least one worker; non-zero timeouts.
    pub fn validate(&self) -> Result<(), EdgeError> {
        let error = |field: String, message: String| Err(EdgeError::Config { field, message });
        if self.variants.is_empty() {
            return error("variants".into(), "at least one variant is needed".into());
        }
        for (i, variant) in self.variants.iter().enumerate() {
            let field = |name: &str| format!("variants[{i}].{name}");
            if variant.name.trim().is_empty() {
                return error(field("name"), "a variant needs a name".into());
            }
            if self.variants[..i].iter().any(|v| v.name == variant.name) {
                return error(field("name"), format!("{:?} is used twice", variant.name));
            }
            if !variant.weight.is_finite() || variant.weight < 0.0 {
                return error(
                    field("weight"),
                    format!("expected a finite weight >= 0, found {}", variant.weight),
                );
            }
            if variant.packages.is_empty() {
                return error(
                    field("packages"),
                    "a variant needs at least one package".into(),
                );
            }
        }
        if self.variants.iter().map(|v| v.weight).sum::<f64>() <= 0.0 {
            return error(
                "variants[].weight".into(),
                "the weights sum to 0: no variant would receive untargeted traffic".into(),
            );
        }
        if self.max_payload_bytes == 0 {
            return error("max_payload_bytes".into(), "expected a limit > 0".into());
        }
        if self.max_payload_bytes > MAX_PAYLOAD_CEILING_BYTES {
            return error(
                "max_payload_bytes".into(),
                format!(
                    "{} bytes is above the ceiling of {MAX_PAYLOAD_CEILING_BYTES} (100 MB, SageMaker's largest \
                     MaxPayloadInMB): a request body is held in memory whole",
                    self.max_payload_bytes
                ),
            );
        }
        if self
            .bearer_token
            .as_ref()
            .is_some_and(|token| token.trim().is_empty())
        {
            return error(
                "bearer_token".into(),
                "the token is empty or blank, which would turn authentication off; give a token, or none to \
                 serve without authentication"
                    .into(),
            );
        }
        if self.workers == 0 {
            return error("workers".into(), "expected at least 1 worker".into());
        }
        let timeouts = [
            ("timeouts.header", self.timeouts.header),
            ("timeouts.body", self.timeouts.body),
            ("timeouts.idle", self.timeouts.idle),
            ("timeouts.drain", self.timeouts.drain),
        ];
        if let Some((field, _)) = timeouts.iter().find(|(_, timeout)| timeout.is_zero()) {
            return error(field.to_string(), "expected a timeout > 0".into());
        }
        if let Some(batching) = &self.batching {
            if batching.max_batch_rows < 2 {
                return error(
                    "batching.max_batch_rows".into(),
                    format!(
                        "expected at least 2 rows (found {}); disable batching instead",
                        batching.max_batch_rows
                    ),
                );
            }
        }
        Ok(())
    }
}

/// The port for a `SAGEMAKER_BIND_TO_PORT` value: 8080 when unset or empty, else the value as a port number.
pub fn port_from(value: Option<&str>) -> Result<u16, EdgeError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_PORT),
        Some(text) => text.parse().map_err(|e| EdgeError::Environment {
            name: PORT_VARIABLE,
            value: text.to_string(),
            message: format!("expected a port number 0..=65535 ({e})"),
        }),
    }
}

/// The workers for a `SAGEMAKER_MODEL_SERVER_WORKERS` value: `None` when unset or empty, else the value as a
/// number of workers (at least 1); `Err` says what was expected.
fn workers_from(value: Option<&str>) -> Result<Option<usize>, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => match text.parse::<usize>() {
            Ok(workers) if workers > 0 => Ok(Some(workers)),
            _ => Err("expected a number of workers >= 1".to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_defaults_to_8080_and_reads_sagemaker_bind_to_port() {
        assert_eq!(port_from(None).unwrap(), 8080);
        assert_eq!(port_from(Some(" ")).unwrap(), 8080);
        assert_eq!(port_from(Some("9091")).unwrap(), 9091);
        let error = port_from(Some("80a")).unwrap_err().to_string();
        assert!(error.contains("SAGEMAKER_BIND_TO_PORT=\"80a\""), "{error}");
        assert!(port_from(Some("70000")).is_err());
    }

    #[test]
    fn validation_names_the_faulty_variant_field() {
        let variant = |name: &str, weight: f64| VariantConfig::new(name, weight, "pkg");
        let field = |variants: Vec<VariantConfig>| match ServeConfig::new(variants).validate() {
            Err(EdgeError::Config { field, .. }) => field,
            other => panic!("expected a configuration error, got {other:?}"),
        };
        assert!(ServeConfig::new(vec![variant("A", 1.0), variant("B", 0.0)])
            .validate()
            .is_ok());
        assert_eq!(field(vec![]), "variants");
        assert_eq!(
            field(vec![variant("A", 1.0), variant("A", 2.0)]),
            "variants[1].name"
        );
        assert_eq!(field(vec![variant("A", -1.0)]), "variants[0].weight");
        assert_eq!(field(vec![variant("A", f64::NAN)]), "variants[0].weight");
        assert_eq!(field(vec![variant("A", 0.0)]), "variants[].weight");
        assert_eq!(field(vec![variant(" ", 1.0)]), "variants[0].name");
        let mut batched = ServeConfig::new(vec![variant("A", 1.0)]);
        batched.batching = Some(BatchConfig {
            max_batch_rows: 1,
            max_wait: Duration::ZERO,
        });
        assert!(matches!(
            batched.validate(),
            Err(EdgeError::Config { field, .. }) if field == "batching.max_batch_rows"
        ));
        let mut empty = variant("A", 1.0);
        empty.packages.clear();
        assert_eq!(field(vec![empty]), "variants[0].packages");
    }

    #[test]
    fn validation_refuses_a_blank_token_a_payload_limit_above_the_ceiling_and_zero_bounds() {
        let field = |change: &dyn Fn(&mut ServeConfig)| {
            let mut config = ServeConfig::new(vec![VariantConfig::new("A", 1.0, "pkg")]);
            change(&mut config);
            match config.validate() {
                Err(EdgeError::Config { field, message }) => format!("{field}: {message}"),
                other => panic!("expected a configuration error, got {other:?}"),
            }
        };
        for blank in ["", " ", "\t\n"] {
            let error = field(&|c| c.bearer_token = Some(blank.to_string()));
            assert!(error.starts_with("bearer_token: "), "{error}");
        }
        let error = field(&|c| c.max_payload_bytes = MAX_PAYLOAD_CEILING_BYTES + 1);
        assert!(error.starts_with("max_payload_bytes: "), "{error}");
        assert!(error.contains("100 MB"), "{error}");
        assert!(field(&|c| c.workers = 0).starts_with("workers: "));
        assert!(field(&|c| c.timeouts.body = Duration::ZERO).starts_with("timeouts.body: "));
        let mut largest = ServeConfig::new(vec![VariantConfig::new("A", 1.0, "pkg")]);
        largest.max_payload_bytes = MAX_PAYLOAD_CEILING_BYTES;
        largest.bearer_token = Some("token".to_string());
        assert!(largest.validate().is_ok());
    }

    #[test]
    fn workers_read_sagemaker_model_server_workers() {
        assert_eq!(workers_from(None).unwrap(), None);
        assert_eq!(workers_from(Some(" ")).unwrap(), None);
        assert_eq!(workers_from(Some("3")).unwrap(), Some(3));
        for bad in ["0", "-1", "two"] {
            let error = workers_from(Some(bad)).unwrap_err();
            assert!(error.contains("number of workers"), "{error}");
        }
    }
}
