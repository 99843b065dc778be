//! The outbound client of the credential platform (docs/architecture.md §6), behind the `platform` feature.
//!
//! [`PlatformClient`] calls `POST /credentials/issue-on-behalf`, `GET /credentials/status` and
//! `POST /dstorage/ciphertexts` with our own Partner JWT in `x-partner-auth` ([`PartnerTokens`],
//! minted and cached per user by [`MintingTokens`]). The outbound rules:
//!
//! - HTTPS only, certificates always verified (rustls); plain HTTP only to loopback in local mode
//!   ([`PlatformConfig`] refuses anything else at start); redirects are never followed.
//! - Connect and request timeouts; each attempt is also capped to the caller's [`Deadline`].
//! - Retries with exponential backoff and full jitter on 5xx, timeouts and connection errors
//!   only; `Retry-After` honoured on 429 when it fits before the deadline, else
//!   [`PlatformError::RateLimited`] at once; never a retry on another 4xx. No attempt and no wait
//!   starts that could not finish before the deadline.
//! - A 401 drops the user's cached token and retries once with a fresh one.
//! - Every error is logged with its status and the platform's `x-request-id` (never the token or
//!   the e-mail) and counted: `UpstreamErrors` by `status`, and `PlatformAuthFailures` for
//!   401/403 (a spike means a leaked or rotated key).

mod client;
mod config;
mod deadline;
mod error;
mod retry;
mod tokens;
mod types;

pub use client::{
    AUTH_FAILURES_METRIC, PARTNER_AUTH_HEADER, PlatformClient, REQUEST_ID_HEADER,
    UPSTREAM_ERRORS_METRIC,
};
pub use config::{
    BASE_URL_VAR, LOCAL_CA_VAR, LOCAL_MODE_VAR, LocalCaTrust, PlatformConfig, Url, check_base_url,
    outbound_client,
};
pub use deadline::Deadline;
pub use error::PlatformError;
pub use tokens::{MintingTokens, PartnerTokens, REFRESH_MARGIN};
pub use types::{IssueOnBehalf, Issued, OnDuplicate, StorageId, VcState, VcStatus};
