//! What can go wrong when talking to the platform.

use std::time::Duration;

/// A failed platform call. Messages never carry a token or an e-mail address: the platform's own
/// messages are scrubbed of both before they are kept here.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// 409 under `onDuplicate: "ignore"`: the user already holds a credential of this program
    /// ("ignore returns the existing credential").
    #[error("the credential already exists (coreClaimHash {core_claim_hash})")]
    Duplicate {
        /// The existing credential's hash.
        core_claim_hash: String,
        /// Its CAK public key, when the platform says it.
        cak_public_key: Option<String>,
        /// The platform's id of the user, when it says it.
        user_uuid: Option<String>,
        /// Whether an earlier attempt of this call may have been received without its answer
        /// reaching us (a timeout, a broken connection, a 5xx): the existing credential may then
        /// be the one that attempt created.
        after_unconfirmed: bool,
    },
    /// 404: unknown program, credential or hash.
    #[error("not found at the platform: {message}")]
    NotFound {
        /// The platform's message.
        message: String,
    },
    /// Any other 4xx (and a 409 without a `coreClaimHash`): the request itself is wrong; never
    /// retried.
    #[error("the platform rejected the request with HTTP {status}: {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The platform's message.
        message: String,
        /// The platform's `x-request-id`, if it sent one.
        request_id: Option<String>,
    },
    /// 401/403: the platform refused our Partner JWT (a spike means a leaked or rotated key).
    #[error("the platform refused our Partner JWT with HTTP {status}")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The platform's `x-request-id`, if it sent one.
        request_id: Option<String>,
    },
    /// 5xx, timeouts or connection errors after the retries, or no time left for another try.
    #[error("the platform is unavailable after {attempts} attempt(s): {last}")]
    Unavailable {
        /// How many requests were sent.
        attempts: u32,
        /// The last failure, in words.
        last: String,
    },
    /// 429 whose `Retry-After` does not fit in the remaining time (or retries ran out).
    #[error("the platform is rate limiting us (retry after {retry_after:?})")]
    RateLimited {
        /// The platform's `Retry-After`, when it sent one in seconds.
        retry_after: Option<Duration>,
    },
    /// Our own Partner JWT could not be minted.
    #[error("could not mint a Partner JWT: {0}")]
    Token(String),
    /// A 2xx body that cannot be parsed.
    #[error("unexpected answer from the platform: {0}")]
    Protocol(String),
    /// The client cannot be built from its configuration (base URL, TLS backend).
    #[error("invalid platform client configuration: {0}")]
    Config(String),
}

impl PlatformError {
    /// The error's label in metrics and logs: `unavailable`, `rate_limited`, `unauthorized`,
    /// `rejected`, `not_found`, `protocol`, `token`, `config` (a duplicate counts as `rejected`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "unavailable",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Rejected { .. } | Self::Duplicate { .. } => "rejected",
            Self::NotFound { .. } => "not_found",
            Self::Protocol(_) => "protocol",
            Self::Token(_) => "token",
            Self::Config(_) => "config",
        }
    }

    /// Whether the caller may try again later with the same request (the platform was down,
    /// slow or rate limiting, or our deadline ran out).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::RateLimited { .. })
    }
}
