//! AWS Lambda invocations answered with a package: the event handling of tern's custom runtime (the `bootstrap`
//! binary of the `tern-lambda` crate, which adds the Runtime API loop; this module has no Lambda dependency, so it
//! is tested directly).
//!
//! Two event shapes are understood:
//!
//! - **HTTP** — API Gateway REST (payload 1.0), HTTP API (payload 2.0) and Lambda Function URL events, recognised
//!   by `requestContext`, `headers` or `httpMethod`: `Content-Type` / `Accept` come from the headers (any case),
//!   the body from `body` (base64 when `isBase64Encoded`). A `GET` is a health check answered 200 with an empty
//!   body; anything else is an `/invocations` request. The answer is an HTTP response object
//!   `{"statusCode", "headers": {"Content-Type"}, "body", "isBase64Encoded"}`: 200 with the prediction, 415 for an
//!   unsupported content type, 400 for a malformed body (the reason as `text/plain`), 500 otherwise — as
//!   `tern serve` answers.
//! - **Plain** — `{"body": "...", "contentType": "text/csv", "accept": "application/json", "isBase64Encoded": false}`
//!   (a `body` that is JSON rather than a string is sent as `application/json`; `contentType` defaults to
//!   `text/csv` for a string body, `accept` to the package's default). The answer is
//!   `{"contentType": "...", "body": "...", "isBase64Encoded": bool}`; a failure is returned as an error, which the
//!   runtime reports to Lambda's `/error` endpoint.
//!
//! Binary responses (`application/x-recordio-protobuf`) are base64-encoded in either shape.

use base64::Engine;
use serde_json::{json, Map, Value};
use tern_runtime::{Package, RuntimeError};

/// A plain invocation could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// The event is not one of the documented shapes.
    #[error("event: field {field}: {message}")]
    Event { field: String, message: String },
    /// The package refused the request or failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl LambdaError {
    /// The `errorType` Lambda records.
    pub fn error_type(&self) -> &'static str {
        match self {
            LambdaError::Event { .. } => "InvalidEvent",
            LambdaError::Runtime(RuntimeError::UnsupportedContentType { .. }) => {
                "UnsupportedContentType"
            }
            LambdaError::Runtime(RuntimeError::Request(_) | RuntimeError::Record { .. }) => {
                "InvalidRequest"
            }
            LambdaError::Runtime(_) => "PredictionFailed",
        }
    }
}

/// Answers one invocation event (see the module docs for shapes and answers).
///
/// Errors: only for plain events — an event of neither shape, or a request the package refuses or fails. HTTP
/// events always get an HTTP response object, errors included.
pub fn handle_event(package: &Package, event: &Value) -> Result<Value, LambdaError> {
    let Some(fields) = event.as_object() else {
        return Err(event_error("$", "the event is not a JSON object"));
    };
    if ["requestContext", "headers", "httpMethod", "rawPath"]
        .iter()
        .any(|key| fields.contains_key(*key))
    {
        return Ok(handle_http(package, fields));
    }
    handle_plain(package, fields)
}

fn event_error(field: &str, message: &str) -> LambdaError {
    LambdaError::Event {
        field: field.to_string(),
        message: message.to_string(),
    }
}

fn handle_plain(package: &Package, fields: &Map<String, Value>) -> Result<Value, LambdaError> {
    let encoded = fields
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (body, default_type) = match fields.get("body") {
        Some(Value::String(text)) if encoded => (decode(text, "body")?, "text/csv"),
        Some(Value::String(text)) => (text.clone().into_bytes(), "text/csv"),
        Some(Value::Null) | None => {
            return Err(event_error(
                "body",
                "missing: the request payload is required",
            ))
        }
        Some(json) => (json.to_string().into_bytes(), "application/json"),
    };
    let text_field = |name: &str| -> Result<Option<String>, LambdaError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(event_error(name, "expected a string")),
        }
    };
    let content_type = text_field("contentType")?.unwrap_or_else(|| default_type.to_string());
    let accept = text_field("accept")?.unwrap_or_default();
    let (response, mime) = package.invoke(&body, &content_type, &accept)?;
    let (body, encoded) = encode(response, &mime);
    Ok(json!({"contentType": mime, "body": body, "isBase64Encoded": encoded}))
}

fn handle_http(package: &Package, fields: &Map<String, Value>) -> Value {
    let method = fields
        .get("httpMethod")
        .and_then(Value::as_str)
        .or_else(|| {
            fields
                .get("requestContext")
                .and_then(|c| c.pointer("/http/method"))
                .and_then(Value::as_str)
        })
        .unwrap_or("POST");
    if method.eq_ignore_ascii_case("GET") {
        return http_response(200, "text/plain; charset=utf-8", String::new(), false);
    }
    let header = |name: &str| -> String {
        fields
            .get("headers")
            .and_then(Value::as_object)
            .and_then(|headers| {
                headers
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .and_then(|(_, value)| value.as_str())
            })
            .unwrap_or_default()
            .to_string()
    };
    let encoded = fields
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let body = match fields.get("body") {
        Some(Value::String(text)) if encoded => match decode(text, "body") {
            Ok(bytes) => bytes,
            Err(error) => return error_response(400, &error.to_string()),
        },
        Some(Value::String(text)) => text.clone().into_bytes(),
        _ => Vec::new(),
    };
    match package.invoke(&body, &header("content-type"), &header("accept")) {
        Ok((response, mime)) => {
            let (body, encoded) = encode(response, &mime);
            http_response(200, &mime, body, encoded)
        }
        Err(error) => {
            let status = match error {
                RuntimeError::UnsupportedContentType { .. } => 415,
                RuntimeError::Request(_) | RuntimeError::Record { .. } => 400,
                _ => 500,
            };
            error_response(status, &error.to_string())
        }
    }
}

fn error_response(status: u16, message: &str) -> Value {
    http_response(
        status,
        "text/plain; charset=utf-8",
        message.to_string(),
        false,
    )
}

fn http_response(status: u16, content_type: &str, body: String, encoded: bool) -> Value {
    json!({
        "statusCode": status,
        "headers": {"Content-Type": content_type},
        "body": body,
        "isBase64Encoded": encoded,
    })
}

fn decode(text: &str, field: &str) -> Result<Vec<u8>, LambdaError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| {
            event_error(
                field,
                &format!("isBase64Encoded is true but it is not base64: {e}"),
            )
        })
}

/// The body as text, or base64 for a binary response type.
fn encode(response: Vec<u8>, mime: &str) -> (String, bool) {
    if mime.starts_with("application/x-recordio") {
        return (
            base64::engine::general_purpose::STANDARD.encode(response),
            true,
        );
    }
    match String::from_utf8(response) {
        Ok(text) => (text, false),
        Err(error) => (
            base64::engine::general_purpose::STANDARD.encode(error.into_bytes()),
            true,
        ),
    }
}
