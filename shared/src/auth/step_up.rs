//! Step-up MFA evidence for issuance (docs/security.md, "MFA for issuance").
//!
//! A program with `requireMfa` issues only when the server caller forwards the user's step-up
//! assertion in [`STEP_UP_HEADER`]: an ID token that the partner's identity provider issued right
//! after the user passed a second factor. It is accepted when:
//! - it is signed (RS256 or ES256) by a key of the identity provider's JWKS (`STEP_UP_JWKS_URL`,
//!   fetched over HTTPS and cached [`JWKS_CACHE_TTL`]; an unknown `kid` refetches at most every
//!   [`JWKS_REFRESH_INTERVAL`]);
//! - its `iss` is `STEP_UP_ISSUER` and its `aud` holds `STEP_UP_AUDIENCE` (a token meant for
//!   another client does not count), and it has not expired;
//! - the second factor is recent: `auth_time` (else `iat`) is at most `STEP_UP_MAX_AGE_SECONDS`
//!   (default 300) ago;
//! - `amr` carries multi-factor evidence (`mfa`, `otp` or `hwk`);
//! - its `email` is the e-mail the credential is issued to, so the assertion of one user cannot
//!   issue for another.
//!
//! Every refusal is `403 mfa_required`, with its precise reason in the log; an identity provider
//! that cannot be reached is `502 upstream_unavailable`, so the caller retries.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::has_mfa;
use crate::cache::TtlCache;
use crate::clock::{SharedClock, Timestamp};
use crate::config::{ConfigError, EnvReader};
use crate::error::{ApiError, ErrorType};
use crate::platform::{LocalCaTrust, Url, check_base_url, outbound_client};

/// The request header carrying the step-up assertion.
pub const STEP_UP_HEADER: &str = "x-step-up-token";
/// How long the identity provider's JWKS is kept.
pub const JWKS_CACHE_TTL: Duration = Duration::from_secs(300);
/// The shortest time between two fetches forced by an unknown `kid`.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// The largest JWKS document read (as API Gateway's JWT authorizer allows).
pub const MAX_JWKS_BYTES: usize = 150_000;

/// Where step-up assertions come from and how fresh they must be.
#[derive(Debug, Clone)]
pub struct StepUpConfig {
    /// `STEP_UP_ISSUER`: the identity provider's `iss`.
    pub issuer: String,
    /// `STEP_UP_AUDIENCE`: the `aud` the assertion must be for.
    pub audience: String,
    /// `STEP_UP_JWKS_URL`: the identity provider's JWKS (HTTPS only).
    pub jwks_url: Url,
    /// `STEP_UP_MAX_AGE_SECONDS` (default 300, 30–900): how long ago the second factor may be.
    pub max_age: Duration,
    /// Local mode (`PLATFORM_LOCAL_MODE` with `PLATFORM_LOCAL_CA`): the local CA trusted besides
    /// the platform's roots, for the devstack's identity provider.
    pub local_ca: Option<LocalCaTrust>,
}

impl StepUpConfig {
    /// Reads the settings; `None` when none of them is set. Setting some but not all is an error
    /// naming the first missing one.
    pub fn from_env(r: &EnvReader<'_>) -> Result<Option<Self>, ConfigError> {
        let issuer = r.optional("STEP_UP_ISSUER");
        let audience = r.optional("STEP_UP_AUDIENCE");
        let jwks = r.optional("STEP_UP_JWKS_URL");
        if issuer.is_none() && audience.is_none() && jwks.is_none() {
            return Ok(None);
        }
        let local_ca = LocalCaTrust::from_env(r)?;
        let jwks_url = check_base_url(&r.required("STEP_UP_JWKS_URL")?)
            .map_err(|e| ConfigError::new("STEP_UP_JWKS_URL", e.problem))?;
        Ok(Some(Self {
            issuer: r.required("STEP_UP_ISSUER")?,
            audience: r.required("STEP_UP_AUDIENCE")?,
            jwks_url,
            max_age: r.seconds("STEP_UP_MAX_AGE_SECONDS", 300, 30, 900)?,
            local_ca,
        }))
    }
}

/// Why a step-up assertion was refused.
#[derive(Debug, thiserror::Error)]
pub enum StepUpFailure {
    /// No assertion was sent.
    #[error("this program requires a step-up MFA assertion in X-Step-Up-Token")]
    Missing,
    /// Not a JWT, or signed with an algorithm other than RS256 or ES256.
    #[error("the step-up assertion is not a usable JWT")]
    Malformed,
    /// Its `kid` is not in the identity provider's JWKS.
    #[error("the step-up assertion is signed by an unknown key")]
    UnknownKey,
    /// Signature, issuer, audience or expiry check failed.
    #[error("the step-up assertion does not verify")]
    Invalid,
    /// The second factor is too long ago.
    #[error("the step-up assertion is too old; ask the user for a second factor again")]
    Stale,
    /// `amr` has no multi-factor evidence.
    #[error("the step-up assertion carries no multi-factor evidence")]
    NoMfa,
    /// The assertion is another user's.
    #[error("the step-up assertion is for another user")]
    OtherUser,
    /// The identity provider's JWKS could not be fetched.
    #[error("the identity provider's keys could not be fetched")]
    Unavailable(String),
}

impl StepUpFailure {
    /// The stable reason for logs and the `AuthFailures` metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "step_up_missing",
            Self::Malformed => "step_up_malformed",
            Self::UnknownKey => "step_up_unknown_key",
            Self::Invalid => "step_up_invalid",
            Self::Stale => "step_up_stale",
            Self::NoMfa => "step_up_no_mfa",
            Self::OtherUser => "step_up_other_user",
            Self::Unavailable(_) => "step_up_idp_unavailable",
        }
    }

    /// The answer: `403 mfa_required`, or `502` when the identity provider is unreachable.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Self::Unavailable(_) => {
                ApiError::new(ErrorType::UpstreamUnavailable, "").with_retry_after(2)
            }
            other => ApiError::new(ErrorType::MfaRequired, other.to_string()),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    auth_time: Option<i64>,
    #[serde(default)]
    amr: Vec<String>,
    #[serde(default)]
    email: Option<String>,
}

/// Verifies step-up assertions against the identity provider's JWKS.
pub struct StepUpVerifier {
    config: StepUpConfig,
    http: OnceLock<reqwest::Client>,
    keys: TtlCache<(), Arc<JwkSet>>,
    last_fetch: Mutex<Option<Timestamp>>,
    clock: SharedClock,
}

impl std::fmt::Debug for StepUpVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepUpVerifier")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl StepUpVerifier {
    /// A verifier for `config`; the JWKS is fetched on first use.
    pub fn new(config: StepUpConfig, clock: SharedClock) -> Self {
        Self {
            config,
            http: OnceLock::new(),
            keys: TtlCache::new(1, JWKS_CACHE_TTL, clock.clone()),
            last_fetch: Mutex::new(None),
            clock,
        }
    }

    /// Checks `assertion` (the header's value, if sent) for a credential issued to `email`.
    ///
    /// # Errors
    /// A [`StepUpFailure`] saying why it is refused.
    pub async fn verify(&self, assertion: Option<&str>, email: &str) -> Result<(), StepUpFailure> {
        let token = assertion
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(StepUpFailure::Missing)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| StepUpFailure::Malformed)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(StepUpFailure::Malformed);
        }
        let kid = header.kid.ok_or(StepUpFailure::Malformed)?;
        let jwk = self.key(&kid).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| StepUpFailure::UnknownKey)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|_| StepUpFailure::Invalid)?
            .claims;
        let now = self.clock.now().as_secs();
        let authenticated = claims
            .auth_time
            .or(claims.iat)
            .ok_or(StepUpFailure::Stale)?;
        let max_age = i64::try_from(self.config.max_age.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(authenticated) > max_age || authenticated > now + 60 {
            return Err(StepUpFailure::Stale);
        }
        if !has_mfa(&claims.amr) {
            return Err(StepUpFailure::NoMfa);
        }
        if !claims
            .email
            .is_some_and(|e| e.trim().eq_ignore_ascii_case(email.trim()))
        {
            return Err(StepUpFailure::OtherUser);
        }
        Ok(())
    }

    /// The JWK `kid`, from the cached JWKS, or from a fresh one when the cache lacks it and the
    /// last fetch is old enough.
    async fn key(&self, kid: &str) -> Result<jsonwebtoken::jwk::Jwk, StepUpFailure> {
        let find = |set: &JwkSet| set.find(kid).cloned();
        if let Some(set) = self.keys.get(&()) {
            if let Some(k) = find(&set) {
                return Ok(k);
            }
            let now = self.clock.now();
            let recent = self
                .last_fetch
                .lock()
                .ok()
                .and_then(|g| *g)
                .is_some_and(|t| now.since(t) < JWKS_REFRESH_INTERVAL);
            if recent {
                return Err(StepUpFailure::UnknownKey);
            }
        }
        let set = Arc::new(self.fetch().await?);
        self.keys.insert((), Arc::clone(&set));
        find(&set).ok_or(StepUpFailure::UnknownKey)
    }

    async fn fetch(&self) -> Result<JwkSet, StepUpFailure> {
        if let Ok(mut g) = self.last_fetch.lock() {
            *g = Some(self.clock.now());
        }
        let unavailable = |what: &str| StepUpFailure::Unavailable(what.to_owned());
        let http = match self.http.get() {
            Some(c) => c,
            None => {
                let built = outbound_client(self.config.local_ca.as_ref())
                    .connect_timeout(Duration::from_millis(500))
                    .timeout(Duration::from_millis(1_500))
                    .build()
                    .map_err(|_| unavailable("cannot build the HTTP client"))?;
                self.http.get_or_init(|| built)
            }
        };
        let mut response = http
            .get(self.config.jwks_url.clone())
            .send()
            .await
            .map_err(|_| unavailable("the JWKS request failed"))?;
        if !response.status().is_success() {
            return Err(unavailable("the JWKS answer is not a success"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| unavailable("the JWKS body could not be read"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(unavailable("the JWKS is larger than 150000 bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| unavailable("the JWKS is not a JWK set"))
    }
}
