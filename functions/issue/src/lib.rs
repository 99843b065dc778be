//! Credential issuance on behalf of users (docs/architecture.md §5): `POST /v1/credentials` and
//! `GET /v1/credentials/{id}`, both for server callers with API keys (HMAC-signed requests).
//!
//! `POST` authenticates (`credentials:write`), requires an `Idempotency-Key`, validates the
//! subject against the program's JSON Schema, writes the issuance record before calling the
//! platform, calls `issue-on-behalf` with `onDuplicate` chosen from the subject's hash and the
//! program's policy, encrypts the sensitive data to the returned CAK and uploads it, queues the
//! record for the status poller and answers `202 {issuanceId, status, coreClaimHash}`.
#![forbid(unsafe_code)]

mod create;
mod flow;
mod read;

use std::sync::Arc;
use std::time::Duration;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use shared::auth::step_up::{StepUpConfig, StepUpVerifier};
use shared::auth::{RequestVerifier, SecretApiKeys, StackEnvironment};
use shared::clock::SharedClock;
use shared::config::{ConfigError, EnvReader};
use shared::error::{ApiError, ErrorType};
use shared::http::{ApiBasePath, Reply};
use shared::issuance::PollShards;
use shared::keys::{KeyConfig, PartnerId};
use shared::pii::DataKeySource;
use shared::platform::{MintingTokens, PlatformClient, PlatformConfig, PlatformError};
use shared::programs::Programs;
use shared::secrets::{SecretName, SecretSource};
use shared::store::RecordStore;
use shared::telemetry::Recorder;

/// The function's configuration.
#[derive(Debug, Clone)]
pub struct IssueConfig {
    /// `ISSUER_DID`: the partner's issuer DID at the platform (required).
    pub issuer_did: String,
    /// `PROGRAMS_JSON`: the issuance programs (default: the sample programs), parsed and their
    /// schemas compiled once, when the configuration is read.
    pub programs: Arc<Programs>,
    /// `DATA_KEYS_SECRET_NAME` (default `partner-bundle/data-keys`).
    pub data_keys_secret: SecretName,
    /// `IDEMPOTENCY_WINDOW_SECONDS` (default 86400).
    pub idempotency_window: Duration,
    /// `MAX_BODY_BYTES` (default 6 MiB: documents travel in `sensitiveData`).
    pub max_body_bytes: usize,
    /// The lease when the request carries no Lambda deadline (local mode): 30 s.
    pub default_lease: Duration,
    /// `PARTNER_ID` (required): the `partnerId` of the Partner JWTs sent to the platform.
    pub partner_id: PartnerId,
    /// `API_KEYS_SECRET_NAME` (default `partner-bundle/api-keys`).
    pub api_keys_secret: SecretName,
    /// `API_KEYS_CACHE_SECONDS` (default 60, 0–300): how long a container keeps the API-key
    /// registry, hence how soon a revoked key stops working.
    pub api_keys_ttl: Duration,
    /// `DATA_KEYS_CACHE_SECONDS` (default 300, 1–300): how long a container keeps the data keys.
    pub data_keys_ttl: Duration,
    /// `PLATFORM_TOKEN_CACHE_ENTRIES` (default 10000, 1–1000000): Partner JWTs kept per container,
    /// one per user, each until a minute before it expires.
    pub platform_token_cache: usize,
    /// The signing keys (`KEY_SET_SECRET_NAME`, `TOKEN_LIFETIME_SECONDS`, …).
    pub keys: KeyConfig,
    /// The platform (`PLATFORM_BASE_URL`, timeouts, retries).
    pub platform: PlatformConfig,
    /// `STACK_ENVIRONMENT` (`live` or `test`, default `live`): the key type accepted besides
    /// `read_only`.
    pub environment: StackEnvironment,
    /// `STEP_UP_ISSUER`, `STEP_UP_AUDIENCE`, `STEP_UP_JWKS_URL`, `STEP_UP_MAX_AGE_SECONDS`: where
    /// the step-up MFA assertions of `requireMfa` programs come from. Required when a program
    /// requires MFA.
    pub step_up: Option<StepUpConfig>,
    /// `API_BASE_PATH` (default empty): the custom domain's base path, taken off before routing.
    pub base_path: ApiBasePath,
    /// `POLL_SHARDS` (default 8, 1–64): how many due-queue shards new issuances spread over.
    pub shards: PollShards,
}

impl IssueConfig {
    /// Reads the configuration; a bad value names its variable.
    pub fn from_env(r: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let programs_json = r
            .optional("PROGRAMS_JSON")
            .unwrap_or_else(|| shared::programs::SAMPLE_PROGRAMS.to_owned());
        let programs = Programs::from_json(&programs_json)
            .map_err(|e| ConfigError::new("PROGRAMS_JSON", e.to_string()))?;
        let step_up = StepUpConfig::from_env(r)?;
        if step_up.is_none()
            && let Some(p) = programs.iter().find(|p| p.require_mfa)
        {
            return Err(ConfigError::new(
                "STEP_UP_ISSUER",
                format!(
                    "program {} requires MFA: set STEP_UP_ISSUER, STEP_UP_AUDIENCE and STEP_UP_JWKS_URL",
                    p.id
                ),
            ));
        }
        let data_keys = r
            .optional("DATA_KEYS_SECRET_NAME")
            .unwrap_or_else(|| shared::pii::DEFAULT_DATA_KEYS_SECRET.to_owned());
        let partner_id = PartnerId::new(&r.required("PARTNER_ID")?)
            .map_err(|e| ConfigError::new("PARTNER_ID", e.0))?;
        let api_keys = r
            .optional("API_KEYS_SECRET_NAME")
            .unwrap_or_else(|| shared::auth::DEFAULT_API_KEYS_SECRET.to_owned());
        let platform_token_cache: usize = r.parsed_or("PLATFORM_TOKEN_CACHE_ENTRIES", 10_000)?;
        if !(1..=1_000_000).contains(&platform_token_cache) {
            return Err(ConfigError::new(
                "PLATFORM_TOKEN_CACHE_ENTRIES",
                "must be between 1 and 1000000",
            ));
        }
        Ok(Self {
            base_path: ApiBasePath::from_env(r)?,
            shards: PollShards::from_env(r)?,
            partner_id,
            api_keys_secret: SecretName::new(&api_keys)
                .map_err(|e| ConfigError::new("API_KEYS_SECRET_NAME", e.to_string()))?,
            api_keys_ttl: r.seconds("API_KEYS_CACHE_SECONDS", 60, 0, 300)?,
            data_keys_ttl: r.seconds("DATA_KEYS_CACHE_SECONDS", 300, 1, 300)?,
            platform_token_cache,
            keys: KeyConfig::from_env(r)?,
            platform: PlatformConfig::from_env(r)?,
            issuer_did: r.required("ISSUER_DID")?,
            programs: Arc::new(programs),
            data_keys_secret: SecretName::new(&data_keys)
                .map_err(|e| ConfigError::new("DATA_KEYS_SECRET_NAME", e.to_string()))?,
            idempotency_window: r.seconds("IDEMPOTENCY_WINDOW_SECONDS", 86_400, 60, 7 * 86_400)?,
            max_body_bytes: r.parsed_or("MAX_BODY_BYTES", 6 * 1024 * 1024)?,
            default_lease: Duration::from_secs(30),
            environment: StackEnvironment::from_env(r)?,
            step_up,
        })
    }

    /// The programs (parsed and checked when the configuration was read).
    pub fn programs(&self) -> Arc<Programs> {
        Arc::clone(&self.programs)
    }
}

/// What the handler needs, built once per container.
pub struct IssueDeps {
    /// Configuration.
    pub config: IssueConfig,
    /// The issuance programs.
    pub programs: Arc<Programs>,
    /// API-key authentication.
    pub verifier: RequestVerifier,
    /// Issuance and idempotency records.
    pub store: Arc<dyn RecordStore>,
    /// The platform.
    pub platform: PlatformClient,
    /// The keys protecting user identifiers.
    pub data_keys: DataKeySource<Arc<dyn SecretSource>>,
    /// The step-up MFA check of `requireMfa` programs, where configured.
    pub step_up: Option<StepUpVerifier>,
    /// The clock.
    pub clock: SharedClock,
    /// Metrics.
    pub recorder: Recorder,
}

/// What the function runs on: the ports its adapters implement, and its telemetry.
pub struct IssuePorts {
    /// Issuance, idempotency and replay records.
    pub store: Arc<dyn RecordStore>,
    /// The signing keys, the API keys and the data keys.
    pub secrets: Arc<dyn SecretSource>,
    /// The clock.
    pub clock: SharedClock,
    /// Metrics.
    pub recorder: Recorder,
}

/// Why the dependencies could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The platform client refused its settings.
    #[error("the platform client cannot be built")]
    Platform(#[source] PlatformError),
}

impl IssueDeps {
    /// The function's dependencies, built once per container from its configuration and its
    /// ports: the one wiring the Lambda `main`, the devstack and the tests all use, so every
    /// cache size and TTL is the configured one everywhere.
    ///
    /// # Errors
    /// [`BuildError::Platform`] when the platform settings cannot make a client.
    pub fn build(config: IssueConfig, ports: IssuePorts) -> Result<Self, BuildError> {
        let IssuePorts {
            store,
            secrets,
            clock,
            recorder,
        } = ports;
        let tokens = Arc::new(MintingTokens::over_secret(
            Arc::clone(&secrets),
            &config.keys,
            config.partner_id.clone(),
            config.platform.token_scope.clone(),
            clock.clone(),
            config.platform_token_cache,
        ));
        let platform = PlatformClient::new(config.platform.clone(), tokens, recorder.clone())
            .map_err(BuildError::Platform)?;
        let api_keys = SecretApiKeys::new(
            Arc::clone(&secrets),
            config.api_keys_secret.clone(),
            config.api_keys_ttl,
            clock.clone(),
        );
        let verifier = RequestVerifier::new(
            Arc::new(api_keys),
            Arc::clone(&store),
            config.environment,
            clock.clone(),
            recorder.clone(),
        );
        Ok(Self {
            step_up: config
                .step_up
                .clone()
                .map(|c| StepUpVerifier::new(c, clock.clone())),
            programs: config.programs(),
            data_keys: DataKeySource::new(
                secrets,
                config.data_keys_secret.clone(),
                config.data_keys_ttl,
                clock.clone(),
            ),
            config,
            verifier,
            store,
            platform,
            clock,
            recorder,
        })
    }
}

impl shared::entry::ServesHttp for IssueDeps {
    fn serve(&self, req: Request) -> impl Future<Output = Response<Body>> + Send {
        handle(req, self)
    }
}

/// Handles one request to either route.
pub async fn handle(req: Request, deps: &IssueDeps) -> Response<Body> {
    let path = deps.config.base_path.route(req.uri().path()).to_owned();
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
