//! tern's native runtime: `tern serve`, the SageMaker-compatible inference endpoint over tern packages.
//!
//! The endpoint honours SageMaker's inference-container contract: `GET /ping` (200 once loaded, 503 before),
//! `POST /invocations` on port 8080 (or `SAGEMAKER_BIND_TO_PORT`) with `Content-Type`/`Accept` negotiation and
//! each algorithm's response shape, `GET /execution-parameters`, and production variants chosen by weight or by
//! `X-Amzn-SageMaker-Target-Variant`, named in `X-Amzn-Invoked-Production-Variant`. `/metrics` speaks Prometheus
//! text; logs are `tracing` events (the binary installs the subscriber).
//!
//! Bounded by design: a request body is received as it arrives up to the payload limit (at most 100 MB), JSON is
//! decoded record by record, at most `workers` invocations are decoded and run at once and `max_queue` more wait
//! (503 beyond), and connections that make no progress are closed after the header, body and idle timeouts (see
//! [`connections`]). On shutdown, requests in flight have the drain timeout to finish.
//!
//! ```no_run
//! use tern_edge::{serve, ServeConfig, VariantConfig};
//! # async fn run() -> Result<(), tern_edge::EdgeError> {
//! let config = ServeConfig::from_env(vec![VariantConfig::new("AllTraffic", 1.0, "package")])?;
//! serve(config, tern_edge::termination_signal()).await // returns once in-flight requests have finished
//! # }
//! ```

pub mod batching;
pub mod config;
pub mod connections;
pub mod device;
pub mod error;
pub mod lambda;
pub mod metrics;
pub mod pipeline;
pub mod routes;
pub mod transform;
pub mod variants;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tern_runtime::Package;
use tokio::net::TcpListener;

pub use config::{BatchConfig, ServeConfig, Timeouts, VariantConfig};
pub use error::EdgeError;
pub use pipeline::Pipeline;
pub use routes::{router, EdgeState};
pub use variants::{Variant, Variants};

/// Serves `config` on its address and port until `shutdown` completes, then stops accepting connections and
/// returns once the requests in flight have been answered, or the drain timeout has passed (the connections still
/// open are then closed). The port is bound first and the packages are loaded afterwards, so `/ping` answers 503
/// while they load.
///
/// Errors: an invalid configuration, a port that cannot be bound, a package that fails to load or verify (the
/// server then stops), or an I/O failure of the server.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EdgeError> {
    config.validate()?;
    let address = SocketAddr::new(config.address, config.port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|error| EdgeError::Bind {
            address: address.to_string(),
            error,
        })?;
    serve_on(listener, config, shutdown).await
}

/// [`serve`] on an already bound `listener` (its address and port win over `config`'s).
pub async fn serve_on(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EdgeError> {
    config.validate()?;
    let state = EdgeState::new(&config);
    let app = router(state.clone());
    let timeouts = config.timeouts;
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, variants = config.variants.len(), "listening");
    }

    let (failed, load_failure) = tokio::sync::oneshot::channel::<EdgeError>();
    let loader_state = state.clone();
    tokio::spawn(async move {
        let loaded = tokio::task::spawn_blocking(move || load_variants(&config)).await;
        let error = match loaded {
            Ok(Ok(variants)) => {
                loader_state.install(variants);
                tracing::info!("every variant loaded: ready");
                return;
            }
            Ok(Err(error)) => error,
            Err(join) => EdgeError::Server {
                error: std::io::Error::other(format!("the loading task failed: {join}")),
            },
        };
        tracing::error!(%error, "loading failed: stopping");
        let _ = failed.send(error);
    });

    let failure: Arc<Mutex<Option<EdgeError>>> = Arc::default();
    let failure_slot = failure.clone();
    let signal = async move {
        tokio::pin!(shutdown);
        tokio::select! {
            _ = &mut shutdown => {}
            loaded = load_failure => match loaded {
                Ok(error) => *failure_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(error),
                // Loading succeeded (the sender was dropped): run until told to stop.
                Err(_) => shutdown.await,
            },
        }
        tracing::info!("shutting down: finishing requests in flight");
    };
    connections::serve_connections(listener, app, timeouts, signal).await;
    let failure = failure.lock().unwrap_or_else(|p| p.into_inner()).take();
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Loads and verifies every variant's packages (blocking: graphs are parsed and optimised here).
pub fn load_variants(config: &ServeConfig) -> Result<Variants, EdgeError> {
    config.validate()?;
    let mut variants = Vec::with_capacity(config.variants.len());
    for variant in &config.variants {
        let mut packages = Vec::with_capacity(variant.packages.len());
        for path in &variant.packages {
            let package = Package::load(path).map_err(|error| EdgeError::Package {
                variant: variant.name.clone(),
                package: path.clone(),
                error,
            })?;
            packages.push(package);
        }
        let pipeline = Pipeline::new(packages).map_err(|message| EdgeError::Config {
            field: format!("variant {:?} packages", variant.name),
            message,
        })?;
        variants.push(Variant {
            name: variant.name.clone(),
            weight: variant.weight,
            pipeline: Arc::new(pipeline),
        });
    }
    Ok(Variants::new(variants, config.seed))
}

/// Completes on SIGTERM (what SageMaker sends before stopping a container) or Ctrl-C.
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
