//! Token mint: `POST /v1/partner-tokens` (behind the API Gateway JWT authorizer on the partner's
//! identity provider) and `POST /v1/server/partner-tokens` (server callers with an API key, minting
//! for a user they authenticated themselves).
//!
//! Body: `{"scope": "issue"}` on the user route; `{"scope": "issue", "user": {"sub", "email",
//! "amr"}}` on the server route. Answer: `{"token", "expiresAt", "kid"}` with `no-store`.
//! A scope outside the configured allow-list is refused; a high-value scope (`issue` by default)
//! needs multi-factor evidence in `amr` (`mfa`, `otp` or `hwk`), else `403 mfa_required`.
//!
//! **The `issue` scope.** A Partner JWT of scope `issue` lets its holder call the platform's
//! issue-on-behalf directly, with any `credentialSubject`: past this bundle's schema checks,
//! idempotency and issuance records. So by default the user route never mints it
//! (`USER_ISSUE_TOKENS=false`: `403 forbidden`), and the server route mints it only for a key that
//! holds `tokens:mint-issue` besides `tokens:mint`. A partner whose browser code must call the
//! platform itself sets `USER_ISSUE_TOKENS=true` and accepts that trade-off.
//!
//! **E-mail.** The user route takes the e-mail from the `EMAIL_CLAIM` claim (default `email`) and
//! trusts it only when `EMAIL_VERIFIED_CLAIM` (default `email_verified`) is `true`
//! (`REQUIRE_VERIFIED_EMAIL`, default `true`); an unverified address gets `403 forbidden`, with
//! the reason logged. Several identity providers let a user set any address on their profile.
//!
//! Every attempt is logged for audit (outcome, reason, key id, route, source address).
#![forbid(unsafe_code)]

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::auth::request::{
    claim_list, json_body, jwt_claims, path_and_query, signed_parts, source_ip,
};
use shared::auth::{Caller, Permission, RequestVerifier, SecretApiKeys, StackEnvironment, has_mfa};
use shared::clock::SharedClock;
use shared::config::{ConfigError, EnvReader};
use shared::error::{ApiError, ErrorType};
use shared::http::{PublicAddress, Reply};
use shared::keys::{
    KeyConfig, KeySetSource, MintError, PartnerId, Scope, ScopeClaim, SecretKeySet, TokenRequest,
};
use shared::secrets::{SecretName, SecretSource};
use shared::store::RecordStore;
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
    /// `API_KEYS_CACHE_SECONDS` (default 60, 0–300): how long a container keeps the API-key
    /// registry, hence how soon a revoked key stops working.
    pub api_keys_ttl: std::time::Duration,
    /// `TABLE_NAME`: the replay cache for the server route. Unset on the user-route deployment,
    /// which then has no table access at all and refuses API-key callers.
    pub table_name: Option<String>,
    /// `STACK_ENVIRONMENT` (`live` or `test`, default `live`): the key type the server route
    /// accepts besides `read_only`.
    pub environment: StackEnvironment,
    /// `USER_ISSUE_TOKENS` (default `false`): whether the user route mints the `issue` scope.
    pub user_issue_tokens: bool,
    /// `EMAIL_CLAIM` (default `email`): the identity token's claim holding the e-mail.
    pub email_claim: String,
    /// `EMAIL_VERIFIED_CLAIM` (default `email_verified`): the claim saying it was verified.
    pub email_verified_claim: String,
    /// `REQUIRE_VERIFIED_EMAIL` (default `true`): refuse an e-mail whose verified claim is not
    /// `true`.
    pub require_verified_email: bool,
    /// `PUBLIC_BASE_URL` (default: the address each request reached) and `API_BASE_PATH`: the
    /// `iss` of the minted tokens, the issuer the JWKS function's OIDC discovery document names.
    pub public: PublicAddress,
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
            public: PublicAddress::from_env(r)?,
            partner_id,
            keys: KeyConfig::from_env(r)?,
            allowed_scopes,
            mfa_scopes,
            api_keys_secret: SecretName::new(&api_keys)
                .map_err(|e| ConfigError::new("API_KEYS_SECRET_NAME", e.to_string()))?,
            api_keys_ttl: r.seconds("API_KEYS_CACHE_SECONDS", 60, 0, 300)?,
            table_name: r.optional("TABLE_NAME"),
            environment: StackEnvironment::from_env(r)?,
            user_issue_tokens: r.flag("USER_ISSUE_TOKENS", false)?,
            email_claim: r
                .optional("EMAIL_CLAIM")
                .unwrap_or_else(|| "email".to_owned()),
            email_verified_claim: r
                .optional("EMAIL_VERIFIED_CLAIM")
                .unwrap_or_else(|| "email_verified".to_owned()),
            require_verified_email: r.flag("REQUIRE_VERIFIED_EMAIL", true)?,
        })
    }
}

/// What the function runs on: the ports its adapters implement, and its telemetry.
pub struct MintPorts {
    /// The signing keys and the API-key registry.
    pub secrets: Arc<dyn SecretSource>,
    /// The server route's replay cache; `None` where only the user route is deployed.
    pub replay: Option<Arc<dyn RecordStore>>,
    /// The clock.
    pub clock: SharedClock,
    /// Metrics.
    pub recorder: Recorder,
}

impl MintDeps {
    /// The function's dependencies, built once per container: the one wiring the Lambda `main`,
    /// the devstack and the tests use. The server route is enabled when `ports.replay` is given.
    pub fn build(config: MintConfig, ports: MintPorts) -> Self {
        let MintPorts {
            secrets,
            replay,
            clock,
            recorder,
        } = ports;
        let keys = SecretKeySet::new(
            Arc::clone(&secrets),
            config.keys.secret_name.clone(),
            config.keys.timings,
            clock.clone(),
        );
        let server_auth = replay.map(|replay| {
            let api_keys = SecretApiKeys::new(
                secrets,
                config.api_keys_secret.clone(),
                config.api_keys_ttl,
                clock.clone(),
            );
            RequestVerifier::new(
                Arc::new(api_keys),
                replay,
                config.environment,
                clock.clone(),
                recorder.clone(),
            )
        });
        Self {
            config,
            keys: Arc::new(keys),
            server_auth,
            clock,
            recorder,
        }
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

impl shared::entry::ServesHttp for MintDeps {
    fn serve(&self, req: Request) -> impl Future<Output = Response<Body>> + Send {
        handle(req, self)
    }
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
    let attempt = Attempt::of(req, deps);
    // Authenticate before reading the body: the user from the authorizer's claims, or the
    // server caller from its signature (which covers the raw body).
    let user = authenticate(req, &attempt)?;
    let server = match user {
        Some(_) => None,
        None => Some(verify_server(req, &attempt).await?),
    };
    let body: MintBody = json_body(req, MAX_BODY_BYTES)?;
    let subject = match (user, &server, body.user) {
        (Some(s), _, None) => s,
        (Some(_), _, Some(_)) => {
            return Err(ApiError::new(
                ErrorType::ValidationFailed,
                "user is taken from the identity token on this route",
            ));
        }
        (None, caller, user) => server_subject(caller.as_ref().map(|c| &c.key_id), user)?,
    };
    let scope = Scope::new(&body.scope)
        .ok()
        .filter(|s| deps.config.allowed_scopes.contains(s))
        .ok_or_else(|| ApiError::new(ErrorType::ValidationFailed, "scope is not allowed"))?;
    if scope.as_str() == Scope::ISSUE {
        may_mint_issue(server.as_ref(), &attempt)?;
    }
    if deps.config.mfa_scopes.contains(&scope) && !has_mfa(&subject.amr) {
        attempt.refused("mfa_required", subject.key_id.as_deref());
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
    let issuer = deps.config.public.of(req);
    let minted = keys
        .mint(
            &TokenRequest {
                partner_id: &deps.config.partner_id,
                scope: &ScopeClaim::from(scope.clone()),
                email: subject.email.as_deref(),
                sub: subject.sub.as_deref(),
                issuer: issuer.as_deref(),
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

/// One request's authentication attempt: where it came from, for the audit lines.
struct Attempt<'a> {
    deps: &'a MintDeps,
    route: String,
    source_ip: Option<String>,
}

impl<'a> Attempt<'a> {
    fn of(req: &Request, deps: &'a MintDeps) -> Self {
        Self {
            deps,
            route: format!("{} {}", req.method(), req.uri().path()),
            source_ip: source_ip(req).map(|ip| ip.to_string()),
        }
    }

    fn refused(&self, reason: &str, key_id: Option<&str>) {
        self.deps
            .recorder
            .auth_failure(reason, key_id, &self.route, self.source_ip.as_deref());
    }
}

/// Whether this caller may be given an `issue` token (see the module documentation).
fn may_mint_issue(server: Option<&Caller>, attempt: &Attempt<'_>) -> Result<(), ApiError> {
    match server {
        None if attempt.deps.config.user_issue_tokens => Ok(()),
        None => {
            attempt.refused("issue_scope_on_user_route", None);
            Err(ApiError::new(
                ErrorType::Forbidden,
                "this route does not mint the issue scope; issuance goes through POST /v1/credentials",
            ))
        }
        Some(caller) if caller.may(Permission::TokensMintIssue) => Ok(()),
        Some(caller) => {
            attempt.refused("missing_permission", Some(caller.key_id.as_str()));
            Err(ApiError::new(
                ErrorType::Forbidden,
                "the key lacks the tokens:mint-issue permission",
            ))
        }
    }
}

/// The user from the JWT authorizer's claims, if the route has the authorizer; `None` means the
/// request came without claims and must be a server call.
fn authenticate(req: &Request, attempt: &Attempt<'_>) -> Result<Option<Subject>, ApiError> {
    let config = &attempt.deps.config;
    let Some(claims) = jwt_claims(req) else {
        if req
            .headers()
            .contains_key(shared::auth::signing::ACCESS_KEY_HEADER)
        {
            return Ok(None);
        }
        attempt.refused("no_authorizer_claims", None);
        return Err(ApiError::new(
            ErrorType::Unauthorized,
            "authentication required",
        ));
    };
    if claims.get("sub").is_none_or(|s| s.is_empty()) {
        attempt.refused("no_subject_claim", None);
        return Err(ApiError::new(
            ErrorType::Unauthorized,
            "the identity token has no subject",
        ));
    }
    let email = claims.get(&config.email_claim).filter(|e| !e.is_empty());
    if email.is_some()
        && config.require_verified_email
        && claims.get(&config.email_verified_claim).map(String::as_str) != Some("true")
    {
        attempt.refused("email_not_verified", None);
        return Err(ApiError::new(
            ErrorType::Forbidden,
            "the identity token's e-mail address is not verified",
        ));
    }
    attempt.deps.recorder.auth_success(
        "user_token",
        None,
        &attempt.route,
        attempt.source_ip.as_deref(),
    );
    Ok(Some(Subject {
        sub: claims.get("sub").cloned(),
        email: email.cloned(),
        amr: claims.get("amr").map(|a| claim_list(a)).unwrap_or_default(),
        via: "user",
        key_id: None,
    }))
}

async fn verify_server(req: &Request, attempt: &Attempt<'_>) -> Result<Caller, ApiError> {
    let Some(verifier) = &attempt.deps.server_auth else {
        attempt.refused("server_route_disabled", None);
        return Err(ApiError::new(
            ErrorType::Unauthorized,
            "API-key minting is not enabled on this route",
        ));
    };
    let pq = path_and_query(req);
    verifier
        .verify(&signed_parts(req, &pq), Permission::TokensMint)
        .await
        .map_err(|f| f.to_api_error())
}

fn server_subject(
    key_id: Option<&shared::auth::AccessKeyId>,
    user: Option<ServerUser>,
) -> Result<Subject, ApiError> {
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
        key_id: key_id.map(|k| k.as_str().to_owned()),
    })
}
