//! Partner JWT verification, as the platform does it: ES256 against our JWKS, fetched from the
//! configured URL and cached by `kid`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::clock::SimClock;
use crate::config::TokenTimes;

/// Maximum `exp - iat` the platform accepts.
pub const MAX_LIFETIME_SECS: i64 = 300;
/// Clock leeway on `exp`, `iat` and `nbf`.
pub const LEEWAY_SECS: i64 = 60;

/// Why a Partner JWT was refused, with the claims seen (unverified when the signature failed).
#[derive(Debug, Clone)]
pub struct AuthFailure {
    /// A human-readable reason, safe to return to the caller.
    pub reason: String,
    /// The payload, when it could be read.
    pub claims: Option<Value>,
}

impl AuthFailure {
    fn new(reason: impl Into<String>, claims: Option<Value>) -> Self {
        Self {
            reason: reason.into(),
            claims,
        }
    }
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Jwk>,
    fetched_at: Option<SystemTime>,
    fetches: u64,
}

/// Verifies `x-partner-auth` tokens. `exp`/`iat`/`nbf` are checked against the wall clock unless
/// [`TokenTimes::Simulator`] is chosen; the JWKS cache age and refetch throttle follow the
/// simulator clock (so tests can skip 10 s).
pub struct Verifier {
    partner_id: String,
    jwks_url: String,
    client: reqwest::Client,
    clock: SimClock,
    refetch_interval: Duration,
    cache_ttl: Duration,
    timeout: Duration,
    token_times: TokenTimes,
    cache: Mutex<Cache>,
}

impl Verifier {
    /// A verifier for `partner_id` that fetches keys from `jwks_url` with `client`.
    pub fn new(
        partner_id: String,
        jwks_url: String,
        client: reqwest::Client,
        clock: SimClock,
        refetch_interval: Duration,
        cache_ttl: Duration,
    ) -> Self {
        Self {
            partner_id,
            jwks_url,
            client,
            clock,
            refetch_interval,
            cache_ttl,
            timeout: Duration::from_secs(5),
            token_times: TokenTimes::Wall,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Sets the clock token times are checked on.
    #[must_use]
    pub fn with_token_times(mut self, token_times: TokenTimes) -> Self {
        self.token_times = token_times;
        self
    }

    /// The current time in Unix seconds on the clock tokens are checked on.
    fn token_now(&self) -> i64 {
        match self.token_times {
            TokenTimes::Wall => wall_clock_unix(),
            TokenTimes::Simulator => self.clock.now_unix(),
        }
    }

    /// Sets the timeout of a JWKS fetch.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times the JWKS was fetched.
    pub async fn jwks_fetches(&self) -> u64 {
        self.cache.lock().await.fetches
    }

    /// Checks `token` and that its `scope` grants every space-separated scope of `scope`;
    /// returns the verified claims.
    pub async fn verify(&self, token: Option<&str>, scope: &str) -> Result<Value, AuthFailure> {
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(AuthFailure::new("missing x-partner-auth header", None));
        };
        let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
        let mut segments = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(_sig), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(AuthFailure::new(
                "malformed token: expected three segments",
                None,
            ));
        };
        let unverified = decode_segment(payload_b64);
        let header = decode_segment(header_b64)
            .ok_or_else(|| AuthFailure::new("malformed token header", unverified.clone()))?;
        let fail = |reason: String| AuthFailure::new(reason, unverified.clone());

        match header.get("alg").and_then(Value::as_str) {
            Some("ES256") => {}
            Some(other) => return Err(fail(format!("alg {other:?} not accepted: ES256 required"))),
            None => return Err(fail("missing alg: ES256 required".to_owned())),
        }
        match header.get("typ").and_then(Value::as_str) {
            Some(typ) if typ.eq_ignore_ascii_case("JWT") => {}
            Some(other) => return Err(fail(format!("typ {other:?} not accepted: JWT required"))),
            None => return Err(fail("missing typ: JWT required".to_owned())),
        }
        let Some(kid) = header.get("kid").and_then(Value::as_str) else {
            return Err(fail("missing kid".to_owned()));
        };
        let key = self.key_for(kid).await.map_err(fail)?;

        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| fail(format!("invalid signature or token: {e}")))?
            .claims;
        check_claims(&claims, &self.partner_id, scope, self.token_now())
            .map_err(|reason| AuthFailure::new(reason, Some(claims.clone())))?;
        Ok(claims)
    }

    async fn key_for(&self, kid: &str) -> Result<DecodingKey, String> {
        let mut cache = self.cache.lock().await;
        let now = self.clock.now();
        let age = cache
            .fetched_at
            .map(|t| now.duration_since(t).unwrap_or_default());
        let stale = age.is_none_or(|a| a >= self.cache_ttl);
        let known = cache.keys.contains_key(kid);
        if stale || !known {
            let may_fetch = age.is_none_or(|a| a >= self.refetch_interval);
            if may_fetch {
                cache.fetched_at = Some(now);
                cache.fetches += 1;
                match self.fetch().await {
                    Ok(keys) => cache.keys = keys,
                    Err(e) if cache.keys.contains_key(kid) => {
                        tracing::warn!(error = %e, "JWKS refresh failed; keeping the cached keys");
                    }
                    Err(e) => return Err(e),
                }
            } else if !known {
                return Err(format!("unknown kid {kid:?} (JWKS refetch throttled)"));
            }
        }
        let jwk = cache
            .keys
            .get(kid)
            .ok_or_else(|| format!("unknown kid {kid:?}: not in the JWKS"))?;
        DecodingKey::from_jwk(jwk).map_err(|e| format!("kid {kid:?}: unusable JWK: {e}"))
    }

    async fn fetch(&self) -> Result<HashMap<String, Jwk>, String> {
        let response = self
            .client
            .get(&self.jwks_url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| format!("could not fetch JWKS: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("could not fetch JWKS: HTTP {}", response.status()));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let keys = body
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| "JWKS has no keys array".to_owned())?;
        Ok(keys
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .filter_map(|jwk| jwk.common.key_id.clone().map(|kid| (kid, jwk)))
            .collect())
    }
}

/// Token times are checked against the wall clock, like the partner that minted them: moving
/// the simulator clock forward (to age credentials) must not expire every token in flight.
fn wall_clock_unix() -> i64 {
    crate::clock::unix_secs(SystemTime::now())
}

fn decode_segment(segment: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn check_claims(claims: &Value, partner_id: &str, scope: &str, now: i64) -> Result<(), String> {
    match claims.get("partnerId").and_then(Value::as_str) {
        Some(p) if p == partner_id => {}
        Some(p) => return Err(format!("partnerId {p:?} does not match")),
        None => return Err("missing partnerId".to_owned()),
    }
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    let exp = number("exp").ok_or("missing or non-numeric exp")?;
    let iat = number("iat").ok_or("missing or non-numeric iat")?;
    if exp - iat > MAX_LIFETIME_SECS {
        return Err(format!(
            "token lifetime {} s exceeds {MAX_LIFETIME_SECS} s",
            exp - iat
        ));
    }
    if exp <= iat {
        return Err("exp is not after iat".to_owned());
    }
    if now > exp + LEEWAY_SECS {
        return Err("token expired".to_owned());
    }
    if iat > now + LEEWAY_SECS {
        return Err("iat is in the future".to_owned());
    }
    if let Some(nbf) = claims.get("nbf") {
        match nbf.as_i64() {
            Some(nbf) if nbf > now + LEEWAY_SECS => {
                return Err("token not yet valid (nbf)".to_owned());
            }
            Some(_) => {}
            None => return Err("non-numeric nbf".to_owned()),
        }
    }
    let held: Vec<&str> = match claims.get("scope") {
        Some(Value::String(s)) => s.split_whitespace().collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let granted = scope
        .split_whitespace()
        .all(|needed| held.contains(&needed));
    if !granted || scope.trim().is_empty() {
        return Err(format!("scope {scope:?} required"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(exp_offset: i64, lifetime: i64, scope: &str) -> Value {
        let now = 1_000_000;
        json!({"partnerId": "p", "scope": scope, "exp": now + exp_offset, "iat": now + exp_offset - lifetime})
    }

    fn verifier(clock: &SimClock) -> Verifier {
        Verifier::new(
            "p".into(),
            "https://127.0.0.1:1/jwks.json".into(),
            reqwest::Client::new(),
            clock.clone(),
            Duration::from_secs(10),
            Duration::from_secs(300),
        )
    }

    #[test]
    fn token_times_follow_the_wall_clock_by_default_and_the_simulator_clock_when_chosen() {
        let clock = SimClock::default();
        clock.advance(Duration::from_secs(3600));
        let wall = verifier(&clock);
        let simulated = verifier(&clock).with_token_times(TokenTimes::Simulator);
        let wall_now = wall_clock_unix();
        assert!((wall.token_now() - wall_now).abs() <= 1);
        assert!((simulated.token_now() - (wall_now + 3600)).abs() <= 1);
    }

    #[test]
    fn a_two_word_required_scope_needs_both_words_granted() {
        let required = "issue on-behalf";
        let both = check_claims(
            &claims(100, 300, "issue on-behalf"),
            "p",
            required,
            1_000_000,
        );
        assert!(both.is_ok());
        let listed = json!({"partnerId": "p", "scope": ["on-behalf", "issue"],
            "exp": 1_000_100, "iat": 999_800});
        assert!(check_claims(&listed, "p", required, 1_000_000).is_ok());
        let err = check_claims(&claims(100, 300, "issue"), "p", required, 1_000_000).unwrap_err();
        assert_eq!(err, "scope \"issue on-behalf\" required");
        // The default requirement is met by either claim.
        assert!(
            check_claims(
                &claims(100, 300, "issue on-behalf"),
                "p",
                "issue",
                1_000_000
            )
            .is_ok()
        );
    }

    #[test]
    fn claims_within_the_rules_pass() {
        assert!(check_claims(&claims(100, 300, "issue"), "p", "issue", 1_000_000).is_ok());
        assert!(check_claims(&claims(100, 300, "read issue"), "p", "issue", 1_000_000).is_ok());
    }

    #[test]
    fn leeway_of_sixty_seconds_applies_to_expiry() {
        assert!(check_claims(&claims(-60, 100, "issue"), "p", "issue", 1_000_000).is_ok());
        let err = check_claims(&claims(-61, 100, "issue"), "p", "issue", 1_000_000).unwrap_err();
        assert_eq!(err, "token expired");
    }

    #[test]
    fn lifetime_over_three_hundred_seconds_is_refused() {
        let err = check_claims(&claims(100, 301, "issue"), "p", "issue", 1_000_000).unwrap_err();
        assert!(err.contains("lifetime"));
    }

    #[test]
    fn wrong_partner_and_scope_are_refused() {
        assert!(check_claims(&claims(100, 300, "issue"), "q", "issue", 1_000_000).is_err());
        assert!(check_claims(&claims(100, 300, "issues"), "p", "issue", 1_000_000).is_err());
    }
}
