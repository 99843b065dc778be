//! A local identity provider, shaped like the ones the deployed JWT authorizer accepts.
//!
//! `POST /dev/login {"sub", "email", "mfa", "emailVerified"}` answers `{"idToken"}`: an RS256
//! token signed with an RSA key made at start (never stored). An API Gateway HTTP API JWT
//! authorizer verifies RSA signatures only, so the dev provider signs as Cognito, Auth0, Okta or
//! Entra ID do, and publishes what they publish: `<issuer>/.well-known/openid-configuration`
//! naming `<issuer>/.well-known/jwks.json`. The emulated authorizer ([`crate::authorizer`])
//! fetches them like API Gateway does.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The audience of dev ID tokens.
pub const AUDIENCE: &str = "partner-bundle-dev";

/// How long a dev ID token lives.
pub const LIFETIME_SECS: i64 = 3600;

/// The dev identity provider cannot make its key.
#[derive(Debug, thiserror::Error)]
#[error("the dev identity provider cannot make its RSA key: {0}")]
pub struct IdpError(String);

/// The dev identity provider.
pub struct DevIdp {
    issuer: String,
    kid: String,
    encoding: EncodingKey,
    jwks: String,
    discovery: String,
}

impl std::fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdp")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
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
    /// A provider whose tokens name `issuer`, with a fresh RSA-2048 key.
    ///
    /// # Errors
    /// The key cannot be generated or encoded.
    pub fn new(issuer: String) -> Result<Self, IdpError> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|e| IdpError(e.to_string()))?;
        let pkcs8: Pkcs8V1Der<'static> = key.as_der().map_err(|e| IdpError(e.to_string()))?;
        // jsonwebtoken signs with the PKCS#1 `RSAPrivateKey` that PKCS#8 wraps.
        let info =
            pkcs8::PrivateKeyInfo::try_from(pkcs8.as_ref()).map_err(|e| IdpError(e.to_string()))?;
        let encoding = EncodingKey::from_rsa_der(info.private_key);
        let public = key.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(n.as_bytes())[..12]);
        let jwks = serde_json::json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e,
        }]})
        .to_string();
        let discovery = serde_json::json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        })
        .to_string();
        Ok(Self {
            issuer,
            kid,
            encoding,
            jwks,
            discovery,
        })
    }

    /// The issuer its tokens name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `<issuer>/.well-known/jwks.json`: its public key.
    pub fn jwks_document(&self) -> &str {
        &self.jwks
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_document(&self) -> &str {
        &self.discovery
    }

    /// An ID token for `login`, issued at `now` (Unix seconds).
    ///
    /// # Errors
    /// An unusable `sub`, or the token cannot be signed.
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
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|e| e.to_string())
    }
}
