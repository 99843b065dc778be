//! A local identity provider and the emulated API Gateway JWT authorizer.
//!
//! `POST /dev/login {"sub", "email", "mfa", "emailVerified"}` answers `{"idToken"}`: an HS256 token signed with a
//! key made at start (never stored). The authorizer does what API Gateway's JWT authorizer does on
//! the mint route: it verifies the bearer token (signature, issuer, audience, expiry) and passes the
//! claims to the handler as strings (lists as `[a b]`), or answers `401 {"message":"Unauthorized"}`
//! without calling the handler.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The audience of dev ID tokens.
pub const AUDIENCE: &str = "partner-bundle-dev";

/// How long a dev ID token lives.
const LIFETIME_SECS: i64 = 3600;

/// The dev identity provider.
pub struct DevIdp {
    issuer: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdp")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// A login request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The user's subject.
    pub sub: String,
    /// The user's e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether the user passed a second factor.
    #[serde(default)]
    pub mfa: bool,
    /// Whether the e-mail address is verified (default `true`; `false` to try the mint's
    /// refusal of unverified addresses).
    #[serde(default = "verified_by_default", rename = "emailVerified")]
    pub email_verified: bool,
}

fn verified_by_default() -> bool {
    true
}

#[derive(Debug, Serialize, Deserialize)]
struct IdClaims {
    iss: String,
    aud: String,
    sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    amr: Vec<String>,
    iat: i64,
    exp: i64,
}

impl DevIdp {
    /// A provider whose tokens name `issuer`, with a fresh random key.
    pub fn new(issuer: String) -> Self {
        let mut key = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut key);
        Self {
            issuer,
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
        }
    }

    /// An ID token for `login`, issued at `now` (Unix seconds).
    pub fn login(&self, login: &Login, now: i64) -> Result<String, String> {
        if login.sub.trim().is_empty() || login.sub.len() > 256 {
            return Err("sub must be 1-256 characters".into());
        }
        let mut amr = vec!["pwd".to_owned()];
        if login.mfa {
            amr.push("mfa".to_owned());
        }
        let claims = IdClaims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            sub: login.sub.clone(),
            email: login.email.clone(),
            email_verified: login.email.as_ref().map(|_| login.email_verified),
            amr,
            iat: now,
            exp: now + LIFETIME_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| e.to_string())
    }

    /// What the JWT authorizer does with an `Authorization` header: the claims as API Gateway
    /// passes them, or `None` (the caller answers 401).
    pub fn authorize(&self, authorization: Option<&str>) -> Option<HashMap<String, String>> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Value>(token, &self.decoding, &validation).ok()?;
        let Value::Object(map) = data.claims else {
            return None;
        };
        Some(
            map.into_iter()
                .map(|(k, v)| {
                    let text = match v {
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
                    };
                    (k, text)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn a_login_token_passes_the_authorizer_with_its_claims() {
        let idp = DevIdp::new("http://127.0.0.1:3000/dev".into());
        let token = idp
            .login(
                &Login {
                    sub: "alice".into(),
                    email: Some("alice@example.com".into()),
                    mfa: true,
                    email_verified: true,
                },
                now(),
            )
            .unwrap();
        let claims = idp.authorize(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["email"], "alice@example.com");
        assert_eq!(claims["amr"], "[pwd mfa]");
    }

    #[test]
    fn the_authorizer_refuses_missing_foreign_and_expired_tokens() {
        let idp = DevIdp::new("http://a/dev".into());
        let other = DevIdp::new("http://a/dev".into());
        let login = Login {
            sub: "bob".into(),
            email: None,
            mfa: false,
            email_verified: true,
        };
        let foreign = other.login(&login, now()).unwrap();
        let expired = idp.login(&login, now() - 2 * LIFETIME_SECS).unwrap();
        assert!(idp.authorize(None).is_none());
        assert!(idp.authorize(Some("Basic abc")).is_none());
        assert!(idp.authorize(Some(&format!("Bearer {foreign}"))).is_none());
        assert!(idp.authorize(Some(&format!("Bearer {expired}"))).is_none());
    }
}
