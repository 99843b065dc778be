//! JWKS: `GET /.well-known/jwks.json`, the public keys the platform verifies Partner JWTs with,
//! and `GET /.well-known/openid-configuration`, the OIDC discovery document that lets generic
//! verifiers (an API Gateway JWT authorizer, an OIDC library) find that JWKS from the tokens'
//! issuer (`issuer`, `jwks_uri`, `id_token_signing_alg_values_supported: ["ES256"]`). The
//! discovery document follows the same cache and `ETag` rules as the JWKS.
//!
//! Public members only (`kty crv x y kid use alg`), every pending, active and still-verifiable key;
//! `Cache-Control: public, max-age=<JWKS_MAX_AGE_SECONDS>`, a strong `ETag`, and `304` on a
//! matching `If-None-Match`. The document is rendered once per change of the published key list,
//! so a warm request only reads the cached key set and compares an ETag.
#![forbid(unsafe_code)]

use std::sync::Arc;

use lambda_http::http::Method;
use lambda_http::http::header::ETAG;
use lambda_http::{Body, Request, Response};
use shared::clock::SharedClock;
use shared::config::{ConfigError, EnvReader};
use shared::error::{ApiError, ErrorType};
use shared::http::{CachePolicy, PublicAddress, Reply};
use shared::keys::{JwksCache, KeyConfig, KeySetSource, SecretKeySet, discovery_document};
use shared::secrets::SecretSource;
use shared::telemetry::Recorder;

/// The JWKS function's configuration: the key settings and the public address.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    /// `KEY_SET_SECRET_NAME`, `JWKS_MAX_AGE_SECONDS`, … .
    pub keys: KeyConfig,
    /// `PUBLIC_BASE_URL` (default: the address each request reached) and `API_BASE_PATH`: the
    /// issuer the discovery document names.
    pub public: PublicAddress,
}

impl JwksConfig {
    /// Reads the configuration.
    pub fn from_env(r: &EnvReader<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: KeyConfig::from_env(r)?,
            public: PublicAddress::from_env(r)?,
        })
    }
}

/// The JWKS route.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The OIDC discovery route.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// What the handler needs, built once per container.
pub struct JwksDeps {
    /// Configuration.
    pub config: JwksConfig,
    /// The key set (cached).
    pub keys: Arc<dyn KeySetSource>,
    /// The last rendering.
    pub rendered: JwksCache,
    /// The clock.
    pub clock: SharedClock,
    /// Metrics.
    pub recorder: Recorder,
}

/// The ports the JWKS function runs on.
pub struct JwksPorts {
    /// The key set secret.
    pub secrets: Arc<dyn SecretSource>,
    /// The clock.
    pub clock: SharedClock,
    /// Metrics.
    pub recorder: Recorder,
}

impl JwksDeps {
    /// The function's dependencies, built once per container: the one wiring the Lambda `main`,
    /// the devstack and the tests share. The key set is cached for `KEY_SET_CACHE_SECONDS`.
    pub fn build(config: JwksConfig, ports: JwksPorts) -> Self {
        let JwksPorts {
            secrets,
            clock,
            recorder,
        } = ports;
        let keys = SecretKeySet::new(
            secrets,
            config.keys.secret_name.clone(),
            config.keys.timings,
            clock.clone(),
        );
        Self {
            config,
            keys: Arc::new(keys),
            rendered: JwksCache::default(),
            clock,
            recorder,
        }
    }
}

impl shared::entry::ServesHttp for JwksDeps {
    fn serve(&self, req: Request) -> impl Future<Output = Response<Body>> + Send {
        handle(req, self)
    }
}

/// Handles one request.
pub async fn handle(req: Request, deps: &JwksDeps) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Reply::error(&ApiError::new(ErrorType::MethodNotAllowed, "use GET")).build();
    }
    let cache = CachePolicy::Public {
        max_age_secs: deps.config.keys.jwks_max_age_secs(),
    };
    match deps.config.public.base_path().route(req.uri().path()) {
        JWKS_PATH => {}
        DISCOVERY_PATH => {
            let Some(issuer) = deps.config.public.of(&req) else {
                tracing::error!("cannot tell the public address: set PUBLIC_BASE_URL");
                return Reply::error(&ApiError::internal()).build();
            };
            let (body, etag) = discovery_document(&issuer);
            return answer(&req, body, &etag, cache);
        }
        _ => return Reply::error(&ApiError::new(ErrorType::NotFound, "no such route")).build(),
    }
    let keys = match deps.keys.keys().await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "cannot load the key set");
            return Reply::error(&ApiError::internal().with_retry_after(5)).build();
        }
    };
    let jwks = deps
        .rendered
        .get(keys.set(), deps.clock.now(), keys.timings());
    answer(&req, jwks.body.clone(), &jwks.etag, cache)
}

/// A public document with its `ETag`: `304` on a matching `If-None-Match`, headers only on
/// `HEAD`.
fn answer(req: &Request, body: String, etag: &str, cache: CachePolicy) -> Response<Body> {
    let not_modified = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| shared::keys::etag_matches(v, etag));
    let reply = if not_modified {
        Reply::empty(304)
    } else if req.method() == Method::HEAD {
        Reply::empty(200)
    } else {
        Reply::json_text(200, body)
    };
    reply.cache(cache).header(ETAG, etag).build()
}
