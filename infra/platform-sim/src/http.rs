//! The platform's error shape and request-body helpers.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// What the request log should know about a response; travels in the response extensions.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Claims seen in the Partner JWT.
    pub claims: Option<Value>,
    /// Why the JWT was refused.
    pub auth_error: Option<String>,
    /// Whether the answer was an injected fault.
    pub fault: bool,
}

/// An error answered in the platform's shape `{"error": <status>, "message": …}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Message for the caller.
    pub message: String,
    /// Extra members merged into the body (e.g. `coreClaimHash` on 409).
    pub extra: serde_json::Map<String, Value>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            extra: serde_json::Map::new(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// Adds a member to the body.
    #[must_use]
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.status.as_u16(), "message": self.message });
        if let Some(map) = body.as_object_mut() {
            for (key, value) in self.extra {
                map.entry(key).or_insert(value);
            }
        }
        (self.status, Json(body)).into_response()
    }
}

/// A platform error response.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError::new(status, message).into_response()
}

/// Attaches what the request log should record.
pub fn with_seen(mut response: Response, seen: Seen) -> Response {
    response.extensions_mut().insert(seen);
    response
}

/// Maps a body rejection (413 over the limit, 400 otherwise) to the platform shape.
pub fn body_or_error(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "request body too large")
        } else {
            ApiError::new(
                status,
                format!("could not read the body: {}", rejection.body_text()),
            )
        }
    })
}

/// Parses a JSON body into `T`, answering 400 with serde's reason otherwise.
pub fn parse_json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body_or_error(body)?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "request body is empty: JSON expected",
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// The `x-partner-auth` header as text, if present and readable.
pub fn partner_token(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-partner-auth").and_then(|v| v.to_str().ok())
}
