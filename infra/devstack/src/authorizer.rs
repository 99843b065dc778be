//! The emulated API Gateway HTTP API JWT authorizer of the mint route.
//!
//! It behaves as the deployed one does, so that nothing works locally that fails deployed:
//! - it finds the issuer's keys through `<issuer>/.well-known/openid-configuration` and its
//!   `jwks_uri`, over HTTPS, each fetch within [`FETCH_TIMEOUT`] (1,500 ms) and at most
//!   [`MAX_DOCUMENT_BYTES`] (150,000 bytes); a slower or larger answer leaves it without keys;
//! - it verifies RSA signatures only (`RS256`, `RS384`, `RS512`): an HMAC- or EC-signed token is
//!   refused even when its `kid` names a published key;
//! - it checks `iss`, `aud` (one of the configured audiences) and `exp` with no leeway, and
//!   passes the claims to the handler as strings (lists as `[a b]`), or the route answers
//!   `401 {"message":"Unauthorized"}` without calling the handler.
//!
//! Keys are cached for [`KEY_CACHE_TTL`] and fetched again, at most once per
//! [`REFETCH_INTERVAL`], for a `kid` the cache does not hold.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::Mutex;

/// The longest API Gateway waits for the issuer's discovery document or JWKS.
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(1500);
/// The largest discovery document or JWKS API Gateway reads.
pub const MAX_DOCUMENT_BYTES: usize = 150_000;
/// How long fetched keys are used before they are fetched again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(600);
/// The shortest interval between two fetches for an unknown `kid`.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(1);

/// Why a request was refused (the route answers 401 for every one of them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `Authorization: Bearer …`.
    #[error("no bearer token")]
    NoToken,
    /// The token is not a JWT with a header.
    #[error("not a JWT: {0}")]
    Malformed(String),
    /// Signed with an algorithm API Gateway does not verify.
    #[error("{0:?} is not an RSA signature algorithm")]
    NotRsa(Algorithm),
    /// No published key has the token's `kid`.
    #[error("no key {0:?} in the issuer's JWKS")]
    UnknownKey(String),
    /// The issuer's documents could not be fetched within the limits.
    #[error("cannot fetch the issuer's keys: {0}")]
    Fetch(String),
    /// Bad signature, issuer, audience or expiry.
    #[error("invalid token: {0}")]
    Invalid(String),
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

/// The authorizer of one issuer and its audiences.
pub struct JwtAuthorizer {
    issuer: String,
    audiences: Vec<String>,
    http: reqwest::Client,
    cache: Mutex<KeyCache>,
}

impl std::fmt::Debug for JwtAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthorizer")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl JwtAuthorizer {
    /// An authorizer trusting `issuer` for `audiences`, fetching with `http` (an HTTPS-only
    /// client; the fetch limits are applied here).
    pub fn new(issuer: String, audiences: Vec<String>, http: reqwest::Client) -> Self {
        Self {
            issuer,
            audiences,
            http,
            cache: Mutex::new(KeyCache::default()),
        }
    }

    /// What API Gateway does with an `Authorization` header: the claims as it passes them.
    ///
    /// # Errors
    /// [`Refusal`]: the request gets 401 without reaching the handler.
    pub async fn authorize(
        &self,
        authorization: Option<&str>,
    ) -> Result<HashMap<String, String>, Refusal> {
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(Refusal::NoToken)?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| Refusal::Malformed(e.to_string()))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
        ) {
            return Err(Refusal::NotRsa(header.alg));
        }
        let kid = header.kid.unwrap_or_default();
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| Refusal::Invalid(e.to_string()))?;
        match data.claims {
            Value::Object(map) => Ok(map.into_iter().map(|(k, v)| (k, as_text(v))).collect()),
            _ => Err(Refusal::Invalid("the claims are not an object".into())),
        }
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, Refusal> {
        let mut cache = self.cache.lock().await;
        let age = cache.fetched_at.map(|t| t.elapsed());
        let stale = age.is_none_or(|a| a >= KEY_CACHE_TTL);
        let unknown = !cache.keys.contains_key(kid);
        if stale || (unknown && age.is_none_or(|a| a >= REFETCH_INTERVAL)) {
            cache.fetched_at = Some(Instant::now());
            cache.keys = self.fetch_keys().await?;
        }
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| Refusal::UnknownKey(kid.to_owned()))
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, DecodingKey>, Refusal> {
        let discovery_url = format!("{}/.well-known/openid-configuration", self.issuer);
        let discovery: Value = serde_json::from_slice(&self.fetch(&discovery_url).await?)
            .map_err(|e| Refusal::Fetch(format!("discovery document: {e}")))?;
        let jwks_uri = discovery["jwks_uri"]
            .as_str()
            .ok_or_else(|| Refusal::Fetch("the discovery document has no jwks_uri".into()))?;
        let set: JwkSet = serde_json::from_slice(&self.fetch(jwks_uri).await?)
            .map_err(|e| Refusal::Fetch(format!("JWKS: {e}")))?;
        Ok(set
            .keys
            .iter()
            .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
            })
            .collect())
    }

    /// One document, within the time and size API Gateway allows.
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, Refusal> {
        tokio::time::timeout(FETCH_TIMEOUT, async {
            let mut answer = self
                .http
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| Refusal::Fetch(format!("{url}: {e}")))?;
            let mut body = Vec::new();
            while let Some(chunk) = answer
                .chunk()
                .await
                .map_err(|e| Refusal::Fetch(format!("{url}: {e}")))?
            {
                if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                    return Err(Refusal::Fetch(format!(
                        "{url}: larger than {MAX_DOCUMENT_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        })
        .await
        .map_err(|_| Refusal::Fetch(format!("{url}: no answer within {FETCH_TIMEOUT:?}")))?
    }
}

/// A claim as API Gateway passes it to the function: text as it is, a list as `[a b]`, anything
/// else as JSON.
fn as_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use axum::routing::get;
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;
    use crate::idp::{AUDIENCE, DevIdp, LIFETIME_SECS, Login};

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    /// The provider's documents served over HTTPS as an identity provider serves them, with a
    /// JWKS that may be padded past the size limit or delayed past the time limit.
    struct Provider {
        idp: Arc<DevIdp>,
        authorizer: JwtAuthorizer,
        _server: local_tls::Server,
    }

    async fn provider(pad: usize, delay: Duration) -> Provider {
        let ca = local_tls::LocalCa::ephemeral().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("https://{}/dev", listener.local_addr().unwrap());
        let idp = Arc::new(DevIdp::new(issuer.clone()).unwrap());
        let (d, j) = (Arc::clone(&idp), Arc::clone(&idp));
        let app = axum::Router::new()
            .route(
                "/dev/.well-known/openid-configuration",
                get(move || {
                    let d = Arc::clone(&d);
                    async move { d.discovery_document().to_owned() }
                }),
            )
            .route(
                "/dev/.well-known/jwks.json",
                get(move || {
                    let j = Arc::clone(&j);
                    async move {
                        tokio::time::sleep(delay).await;
                        let mut doc: Value = serde_json::from_str(j.jwks_document()).unwrap();
                        doc["padding"] = Value::String("x".repeat(pad));
                        doc.to_string()
                    }
                }),
            );
        let server = local_tls::serve(listener, ca.server_config().unwrap(), app).unwrap();
        let http = local_tls::client_builder(ca.cert_pem().as_bytes())
            .unwrap()
            .build()
            .unwrap();
        Provider {
            authorizer: JwtAuthorizer::new(issuer, vec![AUDIENCE.to_owned()], http),
            idp,
            _server: server,
        }
    }

    fn login(mfa: bool) -> Login {
        Login {
            sub: "alice".into(),
            email: Some("alice@example.com".into()),
            mfa,
            email_verified: true,
        }
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[tokio::test]
    async fn an_rs256_login_token_passes_with_its_claims_through_the_issuers_discovery_document() {
        let p = provider(0, Duration::ZERO).await;
        let token = p.idp.login(&login(true), now()).unwrap();
        let claims = p.authorizer.authorize(Some(&bearer(&token))).await.unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["email"], "alice@example.com");
        assert_eq!(claims["amr"], "[pwd mfa]");
        assert_eq!(claims["iss"], p.idp.issuer());
    }

    #[tokio::test]
    async fn a_token_not_signed_with_rsa_is_refused_even_when_its_kid_is_published() {
        let p = provider(0, Duration::ZERO).await;
        let good = p.idp.login(&login(true), now()).unwrap();
        let kid = jsonwebtoken::decode_header(&good).unwrap().kid;
        let claims = serde_json::json!({"iss": p.idp.issuer(), "aud": AUDIENCE, "sub": "mallory",
            "exp": now() + 60, "amr": ["pwd", "mfa"]});
        // HMAC "signed" with the public modulus as the secret: the classic algorithm confusion.
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid.clone_from(&kid);
        let jwks: Value = serde_json::from_str(p.idp.jwks_document()).unwrap();
        let modulus = jwks["keys"][0]["n"].as_str().unwrap().as_bytes().to_vec();
        let forged =
            jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(&modulus)).unwrap();
        assert_eq!(
            p.authorizer.authorize(Some(&bearer(&forged))).await,
            Err(Refusal::NotRsa(Algorithm::HS256))
        );
        let ec = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let der = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&ec).unwrap();
        let mut es = Header::new(Algorithm::ES256);
        es.kid = kid;
        let es_token =
            jsonwebtoken::encode(&es, &claims, &EncodingKey::from_ec_der(der.as_bytes())).unwrap();
        assert_eq!(
            p.authorizer.authorize(Some(&bearer(&es_token))).await,
            Err(Refusal::NotRsa(Algorithm::ES256))
        );
    }

    #[tokio::test]
    async fn missing_foreign_expired_and_wrong_audience_tokens_are_refused() {
        let p = provider(0, Duration::ZERO).await;
        let other = DevIdp::new(p.idp.issuer().to_owned()).unwrap();
        let foreign = other.login(&login(false), now()).unwrap();
        let expired = p
            .idp
            .login(&login(false), now() - 2 * LIFETIME_SECS)
            .unwrap();
        assert_eq!(p.authorizer.authorize(None).await, Err(Refusal::NoToken));
        assert_eq!(
            p.authorizer.authorize(Some("Basic abc")).await,
            Err(Refusal::NoToken)
        );
        assert!(matches!(
            p.authorizer.authorize(Some(&bearer(&foreign))).await,
            Err(Refusal::UnknownKey(_))
        ));
        assert!(matches!(
            p.authorizer.authorize(Some(&bearer(&expired))).await,
            Err(Refusal::Invalid(_))
        ));
        let elsewhere = JwtAuthorizer::new(
            p.idp.issuer().to_owned(),
            vec!["another-client".into()],
            p.authorizer.http.clone(),
        );
        let token = p.idp.login(&login(false), now()).unwrap();
        assert!(matches!(
            elsewhere.authorize(Some(&bearer(&token))).await,
            Err(Refusal::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn a_jwks_larger_than_150000_bytes_or_slower_than_1500_ms_leaves_every_token_refused() {
        let big = provider(MAX_DOCUMENT_BYTES, Duration::ZERO).await;
        let token = big.idp.login(&login(true), now()).unwrap();
        let refusal = big.authorizer.authorize(Some(&bearer(&token))).await;
        assert!(
            matches!(&refusal, Err(Refusal::Fetch(m)) if m.contains("larger than 150000 bytes")),
            "{refusal:?}"
        );
        // Just under the limit is read.
        let fits = provider(MAX_DOCUMENT_BYTES - 2_000, Duration::ZERO).await;
        let token = fits.idp.login(&login(true), now()).unwrap();
        assert!(
            fits.authorizer
                .authorize(Some(&bearer(&token)))
                .await
                .is_ok()
        );

        let slow = provider(0, FETCH_TIMEOUT + Duration::from_millis(300)).await;
        let token = slow.idp.login(&login(true), now()).unwrap();
        let refusal = slow.authorizer.authorize(Some(&bearer(&token))).await;
        assert!(
            // API Gateway's limit itself, not only whatever FETCH_TIMEOUT says.
            matches!(&refusal, Err(Refusal::Fetch(m)) if m.contains("no answer within 1.5s")),
            "{refusal:?}"
        );
    }
}
