//! The error model every HTTP route answers with: `{"errorType": "...", "errorMessage": "..."}`.
//!
//! [`ErrorType`] is the closed, stable list of types from the design (§4) plus `not_found` and
//! `method_not_allowed`, which every HTTP API needs for unknown resources and routes. Each type has
//! one HTTP status. Domain errors are mapped to an [`ApiError`] once, at the edge of a handler; a
//! 5xx answer always carries a fixed message, whatever the cause, so no internal detail leaks.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The stable error types of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// Missing or unknown credentials.
    Unauthorized,
    /// A token whose `exp` has passed.
    TokenExpired,
    /// A request or callback signature that does not match.
    SignatureMismatch,
    /// A signed timestamp outside the accepted window.
    TimestampOutOfWindow,
    /// A signature already seen once.
    ReplayedRequest,
    /// Authenticated, but not allowed to do this.
    Forbidden,
    /// The operation needs multi-factor evidence.
    MfaRequired,
    /// The request is malformed or fails its schema.
    ValidationFailed,
    /// No such resource (or issuance program).
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// An idempotency key reused with another payload.
    IdempotencyKeyReused,
    /// The same idempotency key is being processed right now.
    RequestInProgress,
    /// The request conflicts with the current state.
    Conflict,
    /// The body is larger than the route accepts.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// Too many requests.
    RateLimited,
    /// The credential platform could not be reached or failed.
    UpstreamUnavailable,
    /// Anything else; never explained to the caller.
    InternalError,
}

impl ErrorType {
    /// Every type, for documentation and exhaustive tests.
    pub const ALL: [ErrorType; 18] = [
        Self::Unauthorized,
        Self::TokenExpired,
        Self::SignatureMismatch,
        Self::TimestampOutOfWindow,
        Self::ReplayedRequest,
        Self::Forbidden,
        Self::MfaRequired,
        Self::ValidationFailed,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::IdempotencyKeyReused,
        Self::RequestInProgress,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::RateLimited,
        Self::UpstreamUnavailable,
        Self::InternalError,
    ];

    /// The wire name, e.g. `signature_mismatch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::TokenExpired => "token_expired",
            Self::SignatureMismatch => "signature_mismatch",
            Self::TimestampOutOfWindow => "timestamp_out_of_window",
            Self::ReplayedRequest => "replayed_request",
            Self::Forbidden => "forbidden",
            Self::MfaRequired => "mfa_required",
            Self::ValidationFailed => "validation_failed",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::RequestInProgress => "request_in_progress",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::InternalError => "internal_error",
        }
    }

    /// The HTTP status this type is answered with.
    pub fn status(self) -> u16 {
        match self {
            Self::Unauthorized
            | Self::TokenExpired
            | Self::SignatureMismatch
            | Self::TimestampOutOfWindow
            | Self::ReplayedRequest => 401,
            Self::Forbidden | Self::MfaRequired => 403,
            Self::ValidationFailed => 400,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::IdempotencyKeyReused => 422,
            Self::RequestInProgress | Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RateLimited => 429,
            Self::UpstreamUnavailable => 502,
            Self::InternalError => 500,
        }
    }

    /// The only message a 5xx answer may carry.
    fn public_server_message(self) -> &'static str {
        match self {
            Self::UpstreamUnavailable => "the credential platform is unavailable; retry later",
            _ => "internal error",
        }
    }
}

/// An error as the caller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    error_type: ErrorType,
    message: String,
    retry_after_secs: Option<u64>,
    details: Option<Value>,
}

impl ApiError {
    /// An error of `error_type`. For 5xx types the message is replaced by a fixed public one:
    /// pass whatever helps a 4xx caller, knowing it is never shown for a 5xx.
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        let message = if error_type.status() >= 500 {
            error_type.public_server_message().to_owned()
        } else {
            message.into()
        };
        Self {
            error_type,
            message,
            retry_after_secs: None,
            details: None,
        }
    }

    /// A 500 with the fixed message.
    pub fn internal() -> Self {
        Self::new(ErrorType::InternalError, "")
    }

    /// Adds a `Retry-After` (seconds) to the answer.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Adds structured detail (4xx only; ignored on 5xx), e.g. the failing JSON pointers.
    pub fn with_details(mut self, details: Value) -> Self {
        if self.error_type.status() < 500 {
            self.details = Some(details);
        }
        self
    }

    /// The error type.
    pub fn error_type(&self) -> ErrorType {
        self.error_type
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.error_type.status()
    }

    /// The message shown to the caller.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Seconds for a `Retry-After` header, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = serde_json::json!({
            "errorType": self.error_type.as_str(),
            "errorMessage": self.message,
        });
        if let (Some(details), Some(obj)) = (&self.details, body.as_object_mut()) {
            obj.insert("details".into(), details.clone());
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// An error and its causes on one line (`a: b: c`), each cause once: a layer's message that
/// already quotes its cause (as `#[error("…: {0}")]` does) does not print it twice. At most eight
/// causes; line breaks become spaces so that a report stays one log or terminal line. The one
/// printer of error chains: start-up failures, the platform client's error detail and `opsctl`
/// all go through it.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    let mut depth = 0;
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        depth += 1;
        if depth == 8 {
            break;
        }
        cause = c.source();
    }
    line.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Layer {
        #[error("reading the key set")]
        Keeps(#[source] std::io::Error),
        #[error("reading the key set: {0}")]
        Quotes(#[source] std::io::Error),
    }

    #[test]
    fn a_chain_lists_each_cause_once_on_one_line() {
        let io = || std::io::Error::other("connection refused\nby peer");
        assert_eq!(
            chain(&Layer::Keeps(io())),
            "reading the key set: connection refused by peer"
        );
        assert_eq!(
            chain(&Layer::Quotes(io())),
            "reading the key set: connection refused by peer",
            "a message that already quotes its cause does not repeat it"
        );
    }

    #[test]
    fn every_type_serializes_to_its_wire_name() {
        for t in ErrorType::ALL {
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                Value::String(t.as_str().into())
            );
        }
    }

    #[test]
    fn every_type_maps_to_a_client_or_server_status() {
        for t in ErrorType::ALL {
            assert!((400..600).contains(&t.status()), "{t:?}");
        }
        assert_eq!(ErrorType::MfaRequired.status(), 403);
        assert_eq!(ErrorType::IdempotencyKeyReused.status(), 422);
        assert_eq!(ErrorType::RequestInProgress.status(), 409);
        assert_eq!(ErrorType::ReplayedRequest.status(), 401);
    }

    #[test]
    fn a_server_error_never_carries_the_given_message() {
        let e = ApiError::new(
            ErrorType::InternalError,
            "dynamodb: ConditionalCheckFailed on table prod-records",
        )
        .with_details(serde_json::json!({"table": "prod-records"}));
        let body = e.body().to_string();
        assert!(!body.contains("dynamodb"), "{body}");
        assert!(!body.contains("prod-records"), "{body}");
        assert_eq!(e.body()["errorType"], "internal_error");

        let e = ApiError::new(
            ErrorType::UpstreamUnavailable,
            "connect to 10.0.0.1 refused",
        );
        assert!(!e.body().to_string().contains("10.0.0.1"));
    }

    #[test]
    fn a_client_error_keeps_its_message_and_details() {
        let e = ApiError::new(ErrorType::ValidationFailed, "credentialSubject is invalid")
            .with_details(serde_json::json!({"pointers": ["/age"]}));
        let body = e.body();
        assert_eq!(body["errorType"], "validation_failed");
        assert_eq!(body["errorMessage"], "credentialSubject is invalid");
        assert_eq!(body["details"]["pointers"][0], "/age");
    }
}
