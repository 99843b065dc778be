//! Token mint: `POST /v1/partner-tokens` (behind the API Gateway JWT authorizer on the partner's
//! identity provider) and `POST /v1/server/partner-tokens` (server callers with an API key, minting
//! for a user they authenticated themselves).
//!
//! Body: `{"scope": "issue"}` on the user route; `{"scope": "issue", "user": {"sub", "email",
//! "amr"}}` on the server route. Answer: `{"token", "expiresAt", "kid"}` with `no-store`.
//! A scope outside the configured allow-list is refused; a high-value scope (`issue` by default)
//! needs multi-factor evidence in `amr` (`mfa`, `otp` or `hwk`), else `403 mfa_required`.
#![forbid(unsafe_code)]

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::auth::request::{claim_list, json_body, jwt_claims, path_and_query, signed_parts};
use shared::auth::{Permission, RequestVerifier, has_mfa};
use shared::clock::SharedClock;
use shared::config::{ConfigError, EnvReader};
use shared::error::{ApiError, ErrorType};
use shared::http::Reply;
use shared::keys::{KeyConfig, KeySetSource, MintError, PartnerId, Scope, TokenRequest};
use shared::secrets::SecretName;
use shared::telemetry::Recorder;

/// The largest body the route accepts.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// The mint function's configuration.
#[derive(Debug, Clone)]
pub struct MintConfig {
    /// `PARTNER_ID`: the partner's id at the platform (required).
    pub partner_id: PartnerId,
    /// Key settings (`KEY_SET_SECRET_NAME`, `TOKEN_LIFETIME_SECONDS`, …).
    pub keys: KeyConfig,
    /// `ALLOWED_SCOPES` (default `issue,session`).
    pub allowed_scopes: Vec<Scope>,
    /// `MFA_SCOPES`: scopes that need multi-factor evidence (default `issue`).
    pub mfa_scopes: Vec<Scope>,
    /// `API_KEYS_SECRET_NAME` (default `partner-bundle/api-keys`).
    pub api_keys_secret: SecretName,
    /// `TABLE_NAME`: the replay cache for the server route. Unset on the user-route deployment,
    /// which then has no table access at all and refuses API-key callers.
    pub table_name: Option<String>,
}

fn scopes(r: &EnvReader<'_>, var: &str, default: &str) -> Result<Vec<Scope>, ConfigError> {
    let mut list = r.list(var);
    if list.is_empty() {
        list = default.split(',').map(str::to_owned).collect();
    }
    list.iter()
        .map(|s| Scope::new(s).map_err(|e| ConfigError::new(var, format!("{e}: {s:?}"))))
        .collect()
}

impl MintConfig {
    /// Reads the configuration; a bad value names its variable.
    pub fn from_env(r: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let partner_id = PartnerId::new(&r.required("PARTNER_ID")?)
            .map_err(|e| ConfigError::new("PARTNER_ID", e.0))?;
        let allowed_scopes = scopes(r, "ALLOWED_SCOPES", "issue,session")?;
        let mfa_scopes = scopes(r, "MFA_SCOPES", Scope::ISSUE)?;
        let api_keys = r
            .optional("API_KEYS_SECRET_NAME")
            .unwrap_or_else(|| shared::auth::DEFAULT_API_KEYS_SECRET.to_owned());
        Ok(Self {
            partner_id,
            keys: KeyConfig::from_env(r)?,
            allowed_scopes,
            mfa_scopes,
            api_keys_secret: SecretName::new(&api_keys)
                .map_err(|e| ConfigError::new("API_KEYS_SECRET_NAME", e.to_string()))?,
            table_name: r.optional("TABLE_NAME"),
        })
    }
}

/// What the handler needs, built once per container.
pub struct MintDeps {
    /// Configuration.
    pub config: MintConfig,
    /// The key set (cached).
    pub keys: Arc<dyn KeySetSource>,
    /// API-key authentication for the server route; `None` where it is not deployed.
    pub server_auth: Option<RequestVerifier>,
    /// The clock.
    pub clock: SharedClock,
    /// Metrics.
    pub recorder: Recorder,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintBody {
    scope: String,
    #[serde(default)]
    user: Option<ServerUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerUser {
    sub: Option<String>,
    email: Option<String>,
    #[serde(default)]
    amr: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MintAnswer<'a> {
    token: &'a str,
    expires_at: String,
    kid: &'a str,
}

/// Who the token is for, and how we know.
struct Subject {
    sub: Option<String>,
    email: Option<String>,
    amr: Vec<String>,
    via: &'static str,
    key_id: Option<String>,
}

/// Handles one request; every outcome is an HTTP answer.
pub async fn handle(req: Request, deps: &MintDeps) -> Response<Body> {
    match mint(&req, deps).await {
        Ok(r) => r,
        Err(e) => Reply::error(&e).build(),
    }
}

async fn mint(req: &Request, deps: &MintDeps) -> Result<Response<Body>, ApiError> {
    if req.method() != lambda_http::http::Method::POST {
        return Err(ApiError::new(ErrorType::MethodNotAllowed, "use POST"));
    }
    // Authenticate before reading the body: the user from the authorizer's claims, or the
    // server caller from its signature (which covers the raw body).
    let user = authenticate(req, deps).await?;
    let server_key = match user {
        Some(_) => None,
        None => Some(verify_server(req, deps).await?),
    };
    let body: MintBody = json_body(req, MAX_BODY_BYTES)?;
    let subject = match (user, server_key, body.user) {
        (Some(s), _, None) => s,
        (Some(_), _, Some(_)) => {
            return Err(ApiError::new(
                ErrorType::ValidationFailed,
                "user is taken from the identity token on this route",
            ));
        }
        (None, key_id, user) => server_subject(key_id, user)?,
    };
    let scope = Scope::new(&body.scope)
        .ok()
        .filter(|s| deps.config.allowed_scopes.contains(s))
        .ok_or_else(|| ApiError::new(ErrorType::ValidationFailed, "scope is not allowed"))?;
    if deps.config.mfa_scopes.contains(&scope) && !has_mfa(&subject.amr) {
        deps.recorder
            .auth_failure("mfa_required", subject.key_id.as_deref(), None);
        return Err(ApiError::new(
            ErrorType::MfaRequired,
            format!(
                "scope {} requires multi-factor authentication",
                scope.as_str()
            ),
        ));
    }
    if scope.as_str() == Scope::ISSUE && subject.email.is_none() {
        return Err(ApiError::new(
            ErrorType::ValidationFailed,
            "scope issue needs the user's email",
        ));
    }
    let keys = deps.keys.keys().await.map_err(|e| {
        tracing::error!(error = %e, "cannot load the signing key set");
        ApiError::internal()
    })?;
    let minted = keys
        .mint(
            &TokenRequest {
                partner_id: &deps.config.partner_id,
                scope: &scope,
                email: subject.email.as_deref(),
                sub: subject.sub.as_deref(),
                lifetime: deps.config.keys.token_lifetime,
            },
            deps.clock.now(),
        )
        .map_err(|e| {
            match &e {
                MintError::NoSigningKey => tracing::error!("no signing key is active yet"),
                MintError::Signing(err) => tracing::error!(error = %err, "signing failed"),
            }
            ApiError::internal().with_retry_after(5)
        })?;
    tracing::info!(
        kid = minted.kid.as_str(),
        jti = minted.jti.as_str(),
        scope = scope.as_str(),
        via = subject.via,
        key_id = subject.key_id.as_deref().unwrap_or("-"),
        "partner token minted"
    );
    let mut m = deps.recorder.batch();
    m.count("TokensMinted");
    deps.recorder.flush(&mut m);
    Ok(Reply::json(
        200,
        &MintAnswer {
            token: minted.token.expose(),
            expires_at: minted.expires_at.to_rfc3339(),
            kid: minted.kid.as_str(),
        },
    )
    .build())
}

/// The user from the JWT authorizer's claims, if the route has the authorizer; `None` means the
/// request came without claims and must be a server call.
async fn authenticate(req: &Request, deps: &MintDeps) -> Result<Option<Subject>, ApiError> {
    let Some(claims) = jwt_claims(req) else {
        if req
            .headers()
            .contains_key(shared::auth::signing::ACCESS_KEY_HEADER)
        {
            return Ok(None);
        }
        deps.recorder
            .auth_failure("no_authorizer_claims", None, None);
        return Err(ApiError::new(
            ErrorType::Unauthorized,
            "authentication required",
        ));
    };
    if claims.get("sub").is_none_or(|s| s.is_empty()) {
        deps.recorder.auth_failure("no_subject_claim", None, None);
        return Err(ApiError::new(
            ErrorType::Unauthorized,
            "the identity token has no subject",
        ));
    }
    Ok(Some(Subject {
        sub: claims.get("sub").cloned(),
        email: claims.get("email").cloned(),
        amr: claims.get("amr").map(|a| claim_list(a)).unwrap_or_default(),
        via: "user",
        key_id: None,
    }))
}

async fn verify_server(req: &Request, deps: &MintDeps) -> Result<String, ApiError> {
    let Some(verifier) = &deps.server_auth else {
        deps.recorder
            .auth_failure("server_route_disabled", None, None);
        return Err(ApiError::new(
            ErrorType::Unauthorized,
            "API-key minting is not enabled on this route",
        ));
    };
    let pq = path_and_query(req);
    let caller = verifier
        .verify(&signed_parts(req, &pq), Permission::TokensMint)
        .await
        .map_err(|f| f.to_api_error())?;
    Ok(caller.key_id.as_str().to_owned())
}

fn server_subject(key_id: Option<String>, user: Option<ServerUser>) -> Result<Subject, ApiError> {
    let user = user.ok_or_else(|| {
        ApiError::new(
            ErrorType::ValidationFailed,
            "user is required on the server route",
        )
    })?;
    if user.sub.is_none() && user.email.is_none() {
        return Err(ApiError::new(
            ErrorType::ValidationFailed,
            "user needs a sub or an email",
        ));
    }
    Ok(Subject {
        sub: user.sub,
        email: user.email,
        amr: user.amr,
        via: "server",
        key_id,
    })
}
