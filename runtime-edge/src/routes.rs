//! The HTTP layer: SageMaker's inference-container routes over [`EdgeState`], thin handlers around
//! [`crate::pipeline::Pipeline::invoke`].
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /ping` | 200, empty body, once every variant is loaded; 503 before. Never authenticated. |
//! | `POST /invocations` | the chosen variant's response, `Content-Type` set and `X-Amzn-Invoked-Production-Variant` naming the variant; 400 malformed body or unknown target variant, 401 bad token, 408 body not complete within the body timeout, 413 body above the limit, 415 unsupported `Content-Type`/`Accept`, 500 graph failure, 503 not ready or every worker and queue place taken |
//! | `GET /execution-parameters` | `{"MaxConcurrentTransforms":…,"BatchStrategy":"MULTI_RECORD","MaxPayloadInMB":…}` |
//! | `GET /metrics` | Prometheus text (see [`crate::metrics`]) |
//!
//! An invocation first takes a place among the `workers + max_queue` admitted (503 at once when none is left), then
//! receives its body as it arrives (never reserving what `Content-Length` declares; 413 past the limit, 408 past the
//! body timeout, both closing the connection), then takes a worker to be decoded and run.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use tern_runtime::{DecodedRequest, RuntimeError, BATCH_ROWS};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::batching::Batcher;
use crate::config::{BatchConfig, ServeConfig};
use crate::metrics::{Metrics, NO_VARIANT};
use crate::variants::{Variant, Variants};

/// Request header naming the variant to serve, overriding the weights.
pub const TARGET_VARIANT_HEADER: &str = "x-amzn-sagemaker-target-variant";
/// Response header naming the variant that served the request.
pub const INVOKED_VARIANT_HEADER: &str = "x-amzn-invoked-production-variant";

/// What the routes share: settings, the variants once loaded, and the metrics.
#[derive(Debug)]
pub struct EdgeState {
    max_payload_bytes: usize,
    bearer_token: Option<String>,
    default_accept: Option<String>,
    batching: Option<BatchConfig>,
    body_timeout: Duration,
    /// Places for the invocations in progress: `workers + max_queue`.
    admitted: Arc<Semaphore>,
    /// One permit per worker: held while a request is decoded and, unbatched, run.
    workers: Arc<Semaphore>,
    worker_count: usize,
    max_queue: usize,
    variants: OnceLock<Variants>,
    /// Variant name → its micro-batcher, when batching is on.
    batchers: OnceLock<BTreeMap<String, Batcher>>,
    metrics: Arc<Metrics>,
}

impl EdgeState {
    /// A state that answers 503 until [`EdgeState::install`] gives it its variants.
    pub fn new(config: &ServeConfig) -> Arc<EdgeState> {
        Arc::new(EdgeState {
            max_payload_bytes: config.max_payload_bytes,
            bearer_token: config.bearer_token.clone(),
            default_accept: config.default_accept.clone(),
            batching: config.batching,
            body_timeout: config.timeouts.body,
            admitted: Arc::new(Semaphore::new(config.workers + config.max_queue)),
            workers: Arc::new(Semaphore::new(config.workers)),
            worker_count: config.workers,
            max_queue: config.max_queue,
            variants: OnceLock::new(),
            batchers: OnceLock::new(),
            metrics: Arc::default(),
        })
    }

    /// Makes the endpoint ready with `variants`, starting each variant's micro-batcher when batching is configured
    /// (on the current tokio runtime; outside one, requests run unbatched). `false` (and `variants` dropped) when
    /// it already was ready.
    pub fn install(&self, variants: Variants) -> bool {
        if self.variants.get().is_some() {
            return false;
        }
        if let (Some(config), Ok(_)) = (self.batching, tokio::runtime::Handle::try_current()) {
            let batchers = variants
                .all()
                .iter()
                .map(|variant| {
                    let batcher = Batcher::start(
                        variant.name.clone(),
                        variant.pipeline.clone(),
                        config,
                        self.worker_count,
                        self.metrics.clone(),
                    );
                    (variant.name.clone(), batcher)
                })
                .collect();
            let _ = self.batchers.set(batchers);
        }
        self.variants.set(variants).is_ok()
    }

    /// Whether `/ping` answers 200.
    pub fn is_ready(&self) -> bool {
        self.variants.get().is_some()
    }

    /// The endpoint's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// The endpoint's routes over `state`, with bearer-token authentication on every route but `/ping` when the
/// state has a token.
pub fn router(state: Arc<EdgeState>) -> Router {
    Router::new()
        .route("/ping", get(ping))
        .route("/invocations", post(invocations))
        .route("/execution-parameters", get(execution_parameters))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

async fn ping(State(state): State<Arc<EdgeState>>) -> StatusCode {
    if state.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn execution_parameters(State(state): State<Arc<EdgeState>>) -> Response {
    let megabytes = (state.max_payload_bytes / (1024 * 1024)).max(1);
    let body = serde_json::json!({
        "MaxConcurrentTransforms": state.worker_count,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": megabytes,
    });
    ([(CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn metrics(State(state): State<Arc<EdgeState>>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn authenticate(
    State(state): State<Arc<EdgeState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.bearer_token else {
        return next.run(request).await;
    };
    if request.uri().path() == "/ping" {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if given.is_some_and(|given| same_secret(given.trim().as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    tracing::warn!(path, status = 401, "request without a valid bearer token");
    if path == "/invocations" {
        state
            .metrics
            .record(NO_VARIANT, 401, std::time::Duration::ZERO);
    }
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, "Bearer")],
        "missing or wrong bearer token: send Authorization: Bearer <token>\n",
    )
        .into_response()
}

/// Compares without returning early on the first differing byte.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn invocations(
    State(state): State<Arc<EdgeState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let _in_flight = state.metrics.start();
    let content_type = header_text(&headers, CONTENT_TYPE.as_str());
    let accept = header_text(&headers, ACCEPT.as_str());
    let (variant, response) = answer(&state, &headers, body, &content_type, &accept).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state.metrics.record(&variant, status, elapsed);
    tracing::info!(
        variant,
        status,
        content_type,
        accept,
        elapsed_ms = elapsed.as_secs_f64() * 1e3,
        "invocation"
    );
    response
}

/// A failed invocation's status and the reason sent back as the body.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut body = self.1;
        body.push('\n');
        let mut response =
            (self.0, [(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response();
        let headers = response.headers_mut();
        match self.0 {
            // The rest of the body is not read: the connection cannot carry another request.
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// Answers `/invocations`; returns the serving variant's name ([`NO_VARIANT`] when none was chosen) and the response.
async fn answer(
    state: &Arc<EdgeState>,
    headers: &HeaderMap,
    body: Body,
    content_type: &str,
    accept: &str,
) -> (String, Response) {
    let Some(variants) = state.variants.get() else {
        let failure = Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model is still loading; retry when GET /ping answers 200".to_string(),
        );
        return (NO_VARIANT.to_string(), failure.into_response());
    };
    let variant = match choose_variant(variants, headers) {
        Ok(variant) => variant,
        Err(failure) => return (NO_VARIANT.to_string(), failure.into_response()),
    };
    let name = variant.name.clone();
    let response = match invoke(state, variant, headers, body, content_type, accept).await {
        Ok(response) => response,
        Err(failure) => {
            tracing::warn!(
                variant = name,
                status = failure.0.as_u16(),
                reason = failure.1,
                "invocation failed"
            );
            failure.into_response()
        }
    };
    let mut response = response;
    if let Ok(value) = HeaderValue::from_str(&name) {
        response.headers_mut().insert(INVOKED_VARIANT_HEADER, value);
    }
    (name, response)
}

fn choose_variant<'a>(variants: &'a Variants, headers: &HeaderMap) -> Result<&'a Variant, Failure> {
    match headers.get(TARGET_VARIANT_HEADER) {
        None => Ok(variants.choose()),
        Some(value) => {
            let name = value.to_str().unwrap_or_default().trim();
            variants.named(name).ok_or_else(|| {
                let names: Vec<&str> = variants.all().iter().map(|v| v.name.as_str()).collect();
                Failure(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "header X-Amzn-SageMaker-Target-Variant: no production variant {name:?}; the endpoint has {names:?}"
                    ),
                )
            })
        }
    }
}

async fn invoke(
    state: &Arc<EdgeState>,
    variant: &Variant,
    headers: &HeaderMap,
    body: Body,
    content_type: &str,
    accept: &str,
) -> Result<Response, Failure> {
    let Ok(_admitted) = state.admitted.clone().try_acquire_owned() else {
        return Err(Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "every worker and queue place is taken ({} workers, {} waiting): retry later",
                state.worker_count, state.max_queue
            ),
        ));
    };
    let bytes = read_body(headers, body, state.max_payload_bytes, state.body_timeout).await?;
    let accept = match (&state.default_accept, accept.trim()) {
        (Some(default), "" | "*/*") => default.clone(),
        _ => accept.to_string(),
    };
    let pipeline = variant.pipeline.clone();
    let content_type = content_type.to_string();
    let task_failed = |e: tokio::task::JoinError| {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the prediction task failed: {e}"),
        )
    };
    let batcher = state
        .batchers
        .get()
        .and_then(|batchers| batchers.get(&variant.name));
    // The worker moves into the blocking task: it stays taken until the work ends, even if the client has gone.
    let worker = worker(state).await?;
    let result = match batcher {
        None => tokio::task::spawn_blocking(move || {
            let _worker = worker;
            pipeline.invoke(&bytes, &content_type, &accept)
        })
        .await
        .map_err(task_failed)?
        .map_err(|error| failure_for(&error)),
        Some(batcher) => {
            // The worker is given back once the request is decoded: the batcher runs at most `workers` batches.
            let prepared = tokio::task::spawn_blocking(move || {
                let _worker = worker;
                match pipeline.decode_up_to(&bytes, &content_type, &accept, BATCH_ROWS) {
                    Ok(Some(decoded)) => Prepared::Decoded(decoded),
                    // More rows than one run takes: streamed through the package alone, on this worker.
                    Ok(None) => Prepared::Answered(pipeline.invoke(&bytes, &content_type, &accept)),
                    Err(error) => Prepared::Answered(Err(error)),
                }
            })
            .await
            .map_err(task_failed)?;
            match prepared {
                Prepared::Decoded(decoded) => batcher
                    .submit(decoded, &variant.pipeline)
                    .await
                    .map_err(|error| failure_for(&error)),
                Prepared::Answered(answer) => answer.map_err(|error| failure_for(&error)),
            }
        }
    };
    let (body, mime) = result?;
    Ok(([(CONTENT_TYPE, mime)], body).into_response())
}

/// A request made ready for the micro-batcher, or already answered.
enum Prepared {
    Decoded(DecodedRequest),
    Answered(Result<(Vec<u8>, String), RuntimeError>),
}

/// Waits for a worker.
async fn worker(state: &EdgeState) -> Result<OwnedSemaphorePermit, Failure> {
    state.workers.clone().acquire_owned().await.map_err(|_| {
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the endpoint is shutting down".to_string(),
        )
    })
}

/// The status SageMaker clients expect for a runtime error: 415 for content types, 400 for the request's own
/// faults, 500 for the package's.
fn failure_for(error: &RuntimeError) -> Failure {
    let status = match error {
        RuntimeError::UnsupportedContentType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        RuntimeError::Request(_) | RuntimeError::Record { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Failure(status, error.to_string())
}

/// Reads the whole body as it arrives, growing the buffer with the data received (a declared `Content-Length` only
/// serves to refuse early): 413 as soon as the body (or its declared length) exceeds `limit` bytes, 408 when it is
/// not complete `timeout` after the call.
async fn read_body(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    let too_large = |size: String| {
        Failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body ({size}) exceeds the endpoint's limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(declared) = declared.filter(|&d| d > limit as u64) {
        return Err(too_large(format!("{declared} bytes")));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut bytes = Vec::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(bytes),
            Err(_) => {
                return Err(Failure(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body was not complete within the body timeout of {} s ({} bytes arrived)",
                        timeout.as_secs_f64(),
                        bytes.len()
                    ),
                ))
            }
        };
        let frame = frame.map_err(|e| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(too_large(format!("more than {limit} bytes")));
            }
            bytes.extend_from_slice(&data);
        }
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}
