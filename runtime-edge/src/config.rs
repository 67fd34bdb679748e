//! What `tern serve` serves and how: production variants (each a package or a pipeline of packages), the port,
//! payload limit, authentication, default response type, micro-batching.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::EdgeError;

/// SageMaker's port for `/ping` and `/invocations`.
pub const DEFAULT_PORT: u16 = 8080;
/// SageMaker's `MaxPayloadInMB` default: 6 MB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// The environment variable that overrides the port.
pub const PORT_VARIABLE: &str = "SAGEMAKER_BIND_TO_PORT";
/// The environment variable naming the response type for requests without an `Accept` (or with `*/*`).
pub const DEFAULT_ACCEPT_VARIABLE: &str = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT";

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
    /// The address to listen on (default every IPv4 interface).
    pub address: IpAddr,
    /// The port (default 8080, or `SAGEMAKER_BIND_TO_PORT` via [`ServeConfig::from_env`]).
    pub port: u16,
    /// Bodies larger than this are answered 413.
    pub max_payload_bytes: usize,
    /// When set, every route but `/ping` requires `Authorization: Bearer <token>` (401 otherwise).
    pub bearer_token: Option<String>,
    /// The response type for requests with no `Accept` or `*/*`; `None` lets each package choose (its manifest's
    /// first `produces` entry).
    pub default_accept: Option<String>,
    /// Seeds the weighted variant choice, so a run's traffic split is reproducible.
    pub seed: u64,
    /// Merges concurrent requests to one variant into one package run; `None` runs every request alone.
    pub batching: Option<BatchConfig>,
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
    /// SageMaker's defaults: port 8080 on every interface, 6 MB payloads, no authentication.
    pub fn new(variants: Vec<VariantConfig>) -> Self {
        ServeConfig {
            variants,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: DEFAULT_PORT,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            bearer_token: None,
            default_accept: None,
            seed: 0,
            batching: None,
        }
    }

    /// [`ServeConfig::new`] with the port from `SAGEMAKER_BIND_TO_PORT` and the default accept from
    /// `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`, when set.
    pub fn from_env(variants: Vec<VariantConfig>) -> Result<Self, EdgeError> {
        let mut config = ServeConfig::new(variants);
        config.port = port_from(std::env::var(PORT_VARIABLE).ok().as_deref())?;
        config.default_accept = std::env::var(DEFAULT_ACCEPT_VARIABLE)
            .ok()
            .filter(|value| !value.trim().is_empty());
        Ok(config)
    }

    /// Checks the variants: at least one, each with a non-empty unique name and at least one package, weights
    /// finite and non-negative with a positive sum; and a positive payload limit.
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
}
