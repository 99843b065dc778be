//! Credential issuance on behalf of users (DESIGN §5): `POST /v1/credentials` and
//! `GET /v1/credentials/{id}`, both for server callers with API keys (HMAC-signed requests).
//!
//! `POST` authenticates (`credentials:write`), requires an `Idempotency-Key`, validates the
//! subject against the program's JSON Schema, writes the issuance record before calling the
//! platform, calls `issue-on-behalf` with `onDuplicate` chosen from the subject's hash and the
//! program's policy, encrypts the sensitive data to the returned CAK and uploads it, queues the
//! record for the status poller and answers `202 {issuanceId, status, coreClaimHash}`.
#![forbid(unsafe_code)]

mod create;
mod read;

use std::sync::Arc;
use std::time::Duration;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use shared::auth::RequestVerifier;
use shared::clock::SharedClock;
use shared::config::{ConfigError, EnvReader};
use shared::error::{ApiError, ErrorType};
use shared::http::Reply;
use shared::pii::DataKeySource;
use shared::platform::PlatformClient;
use shared::programs::Programs;
use shared::secrets::{SecretName, SecretSource};
use shared::store::RecordStore;
use shared::telemetry::Recorder;

/// The function's configuration.
#[derive(Debug, Clone)]
pub struct IssueConfig {
    /// `ISSUER_DID`: the partner's issuer DID at the platform (required).
    pub issuer_did: String,
    /// `PROGRAMS_JSON`: the issuance programs (default: the sample programs).
    pub programs_json: String,
    /// `DATA_KEYS_SECRET_NAME` (default `partner-bundle/data-keys`).
    pub data_keys_secret: SecretName,
    /// `IDEMPOTENCY_WINDOW_SECONDS` (default 86400).
    pub idempotency_window: Duration,
    /// `MAX_BODY_BYTES` (default 6 MiB: documents travel in `sensitiveData`).
    pub max_body_bytes: usize,
    /// The lease when the request carries no Lambda deadline (local mode): 30 s.
    pub default_lease: Duration,
}

impl IssueConfig {
    /// Reads the configuration; a bad value names its variable.
    pub fn from_env(r: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let programs_json = r
            .optional("PROGRAMS_JSON")
            .unwrap_or_else(|| shared::programs::SAMPLE_PROGRAMS.to_owned());
        Programs::from_json(&programs_json)
            .map_err(|e| ConfigError::new("PROGRAMS_JSON", e.to_string()))?;
        let data_keys = r
            .optional("DATA_KEYS_SECRET_NAME")
            .unwrap_or_else(|| shared::pii::DEFAULT_DATA_KEYS_SECRET.to_owned());
        Ok(Self {
            issuer_did: r.required("ISSUER_DID")?,
            programs_json,
            data_keys_secret: SecretName::new(&data_keys)
                .map_err(|e| ConfigError::new("DATA_KEYS_SECRET_NAME", e.to_string()))?,
            idempotency_window: r.seconds("IDEMPOTENCY_WINDOW_SECONDS", 86_400, 60, 7 * 86_400)?,
            max_body_bytes: r.parsed_or("MAX_BODY_BYTES", 6 * 1024 * 1024)?,
            default_lease: Duration::from_secs(30),
        })
    }

    /// The programs (checked when the configuration was read).
    pub fn programs(&self) -> Programs {
        Programs::from_json(&self.programs_json).unwrap_or_default()
    }
}

/// What the handler needs, built once per container.
pub struct IssueDeps {
    /// Configuration.
    pub config: IssueConfig,
    /// The issuance programs.
    pub programs: Programs,
    /// API-key authentication.
    pub verifier: RequestVerifier,
    /// Issuance and idempotency records.
    pub store: Arc<dyn RecordStore>,
    /// The platform.
    pub platform: PlatformClient,
    /// The keys protecting user identifiers.
    pub data_keys: DataKeySource<Arc<dyn SecretSource>>,
    /// The clock.
    pub clock: SharedClock,
    /// Metrics.
    pub recorder: Recorder,
}

/// Handles one request to either route.
pub async fn handle(req: Request, deps: &IssueDeps) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let result = match (req.method(), path.strip_prefix("/v1/credentials")) {
        (&Method::POST, Some("")) => create::create(&req, deps).await,
        (&Method::GET, Some(rest)) if rest.starts_with('/') => {
            read::read(&req, &rest[1..], deps).await
        }
        (_, Some(_)) => Err(ApiError::new(
            ErrorType::MethodNotAllowed,
            "use POST /v1/credentials or GET /v1/credentials/{id}",
        )),
        _ => Err(ApiError::new(ErrorType::NotFound, "no such route")),
    };
    match result {
        Ok(r) => r,
        Err(e) => Reply::error(&e).build(),
    }
}
