//! Minting Partner JWTs (ES256, `kid`, `typ: JWT`) with the key the key set says signs now.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::jwk::{InvalidKey, Kid};
use super::set::{KeySet, KeyState, KeyTimings};
use crate::clock::Timestamp;

/// The hard cap on a Partner JWT's lifetime (the platform refuses longer ones).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// The partner's id at the platform: 1–128 characters from `A-Za-z0-9._:-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PartnerId(String);

impl PartnerId {
    /// A validated partner id.
    pub fn new(id: &str) -> Result<Self, InvalidValue> {
        let ok = !id.is_empty()
            && id.len() <= 128
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
        ok.then(|| Self(id.to_owned())).ok_or(InvalidValue(
            "partner id must be 1-128 characters of A-Za-z0-9._:-",
        ))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token scope, e.g. `issue`: 1–64 characters from `a-z0-9_:-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    /// The scope for issuing credentials on behalf of users: a high-value scope.
    pub const ISSUE: &'static str = "issue";

    /// The issue scope ([`Scope::ISSUE`]).
    pub fn issue() -> Self {
        Self(Self::ISSUE.to_owned())
    }

    /// A syntactically valid scope.
    pub fn new(scope: &str) -> Result<Self, InvalidValue> {
        let ok = !scope.is_empty()
            && scope.len() <= 64
            && scope
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_:-".contains(c));
        ok.then(|| Self(scope.to_owned()))
            .ok_or(InvalidValue("scope must be 1-64 characters of a-z0-9_:-"))
    }

    /// The scope.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `scope` claim of a token: one or more [`Scope`]s separated by single spaces (OAuth's
/// scope syntax), e.g. `issue` or `issue on-behalf`. The user routes of the token mint only ever
/// mint one scope; the platform client sends the claim its configuration names, because the
/// platform's documents name the issue-on-behalf scope both ways.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeClaim(String);

impl ScopeClaim {
    /// A claim of one or more valid scopes separated by whitespace (written back with single
    /// spaces), at most 8 of them.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let scopes = text
            .split_whitespace()
            .map(Scope::new)
            .collect::<Result<Vec<_>, _>>()?;
        if scopes.is_empty() || scopes.len() > 8 {
            return Err(InvalidValue("a scope claim holds 1-8 scopes"));
        }
        let names: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
        Ok(Self(names.join(" ")))
    }

    /// Whether the claim grants `scope` (one of its space-separated scopes is it).
    pub fn grants(&self, scope: &str) -> bool {
        self.0.split(' ').any(|s| s == scope)
    }

    /// The claim as it is written into the token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Scope> for ScopeClaim {
    fn from(scope: Scope) -> Self {
        Self(scope.0)
    }
}

/// A value refused by its constructor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

/// A token lifetime: 1 to 300 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetime(Duration);

impl TokenLifetime {
    /// A lifetime within the hard cap.
    pub fn new(d: Duration) -> Result<Self, InvalidValue> {
        (d >= Duration::from_secs(1) && d <= MAX_TOKEN_LIFETIME)
            .then_some(Self(d))
            .ok_or(InvalidValue(
                "token lifetime must be between 1 and 300 seconds",
            ))
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// A minted token. `Debug` is redacted: a bearer token is a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PartnerJwt(String);

impl PartnerJwt {
    /// The compact JWS, for the response body or the outbound header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PartnerJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PartnerJwt([REDACTED])")
    }
}

/// What to put in a token.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    /// The partner.
    pub partner_id: &'a PartnerId,
    /// The `scope` claim.
    pub scope: &'a ScopeClaim,
    /// The user's e-mail (issue-on-behalf and user sessions).
    pub email: Option<&'a str>,
    /// The user's subject, when known.
    pub sub: Option<&'a str>,
    /// The `iss` claim: the public base URL whose OIDC discovery document and JWKS verify the
    /// token (tokens the token mint hands out); `None` for tokens only the platform reads.
    pub issuer: Option<&'a str>,
    /// How long the token lives.
    pub lifetime: TokenLifetime,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Claims<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    partner_id: &'a str,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: &'a str,
}

/// A minted token and what the caller may want to know about it.
#[derive(Debug, Clone)]
pub struct MintedToken {
    /// The token.
    pub token: PartnerJwt,
    /// The key that signed it.
    pub kid: Kid,
    /// Its `exp`.
    pub expires_at: Timestamp,
    /// Its `jti`.
    pub jti: String,
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// No key signs at this instant (empty or fully revoked key set).
    #[error("no signing key is active")]
    NoSigningKey,
    /// The signature could not be computed.
    #[error("signing failed: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
}

/// A key set with its signing keys decoded once, ready to mint.
pub struct PreparedKeys {
    set: KeySet,
    timings: KeyTimings,
    encoders: HashMap<Kid, EncodingKey>,
}

impl fmt::Debug for PreparedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedKeys")
            .field("version", &self.set.version)
            .field("keys", &self.encoders.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PreparedKeys {
    /// Decodes every key that may still sign. A key that cannot be decoded makes the whole set
    /// invalid: the document is authoritative and a broken key means a corrupted secret.
    pub fn new(set: KeySet, timings: KeyTimings, now: Timestamp) -> Result<Self, InvalidKey> {
        let mut encoders = HashMap::new();
        for k in &set.keys {
            if matches!(
                set.state(k, now, &timings),
                KeyState::Revoked | KeyState::Expired
            ) {
                continue;
            }
            let der = k.private_jwk.to_pkcs8_der()?;
            encoders.insert(k.kid.clone(), EncodingKey::from_ec_der(&der));
        }
        Ok(Self {
            set,
            timings,
            encoders,
        })
    }

    /// The key set.
    pub fn set(&self) -> &KeySet {
        &self.set
    }

    /// The timing rules it was prepared with.
    pub fn timings(&self) -> &KeyTimings {
        &self.timings
    }

    /// Mints a token at `now` with the key that signs at `now`.
    pub fn mint(&self, req: &TokenRequest<'_>, now: Timestamp) -> Result<MintedToken, MintError> {
        let entry = self
            .set
            .signer(now, &self.timings)
            .ok_or(MintError::NoSigningKey)?;
        let key = self
            .encoders
            .get(&entry.kid)
            .ok_or(MintError::NoSigningKey)?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(entry.kid.as_str().to_owned());
        header.typ = Some("JWT".into());
        let jti = uuid::Uuid::new_v4().to_string();
        let iat = now.as_secs();
        let exp = now.plus(req.lifetime.get()).as_secs();
        let claims = Claims {
            iss: req.issuer,
            partner_id: req.partner_id.as_str(),
            scope: req.scope.as_str(),
            email: req.email,
            sub: req.sub,
            iat,
            nbf: iat,
            exp,
            jti: &jti,
        };
        let token = jsonwebtoken::encode(&header, &claims, key)?;
        Ok(MintedToken {
            token: PartnerJwt(token),
            kid: entry.kid.clone(),
            expires_at: Timestamp::from_secs(exp),
            jti,
        })
    }
}

impl PreparedKeys {
    /// Signs a test token with key `kid` (whatever its state) and verifies it with the key's
    /// published half: the `testSecret` step of a rotation.
    pub fn self_test(&self, kid: &Kid) -> Result<(), SelfTestError> {
        let entry = self.set.get(kid).ok_or(SelfTestError::UnknownKey)?;
        let key = self.encoders.get(kid).ok_or(SelfTestError::UnknownKey)?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.as_str().to_owned());
        let claims = serde_json::json!({"purpose": "rotation self-test", "jti": uuid::Uuid::new_v4().to_string()});
        let token = jsonwebtoken::encode(&header, &claims, key)?;
        let public = entry.private_jwk.public();
        let decoding = jsonwebtoken::DecodingKey::from_ec_components(&public.x, &public.y)?;
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation)?;
        Ok(())
    }
}

/// Why a key failed its self-test.
#[derive(Debug, thiserror::Error)]
pub enum SelfTestError {
    /// No usable key with that kid.
    #[error("no usable key with that kid")]
    UnknownKey,
    /// Signing or verification failed.
    #[error("sign/verify failed: {0}")]
    Crypto(#[from] jsonwebtoken::errors::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::policy::{RotationPolicy, plan};

    fn prepared(now: Timestamp) -> PreparedKeys {
        let t = KeyTimings::default();
        let p = RotationPolicy::new(Duration::from_secs(86_400), t.min_lead(), t).unwrap();
        let (set, _) = plan(&KeySet::default(), now, &p).unwrap();
        PreparedKeys::new(set, t, now).unwrap()
    }

    #[test]
    fn a_minted_token_verifies_with_its_published_key_and_carries_every_claim() {
        let now = Timestamp::from_secs(1_795_262_400);
        let keys = prepared(now);
        let partner = PartnerId::new("partner-1").unwrap();
        let scope = ScopeClaim::parse("issue").unwrap();
        let minted = keys
            .mint(
                &TokenRequest {
                    partner_id: &partner,
                    scope: &scope,
                    email: Some("dana@example.com"),
                    sub: Some("user-42"),
                    issuer: None,
                    lifetime: TokenLifetime::new(Duration::from_secs(120)).unwrap(),
                },
                now,
            )
            .unwrap();
        let header = jsonwebtoken::decode_header(minted.token.expose()).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid.as_deref(), Some(minted.kid.as_str()));

        let public = keys.set().published(now, keys.timings())[0].clone();
        let key = jsonwebtoken::DecodingKey::from_ec_components(&public.x, &public.y).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.validate_exp = false; // the test's clock is not the system's
        validation.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<serde_json::Value>(minted.token.expose(), &key, &validation)
                .unwrap();
        let c = data.claims;
        assert_eq!(c["partnerId"], "partner-1");
        assert_eq!(c["scope"], "issue");
        assert_eq!(c["email"], "dana@example.com");
        assert_eq!(c["sub"], "user-42");
        assert_eq!(c["iat"], now.as_secs());
        assert_eq!(c["nbf"], now.as_secs());
        assert_eq!(c["exp"], now.as_secs() + 120);
        assert_eq!(c["jti"], minted.jti.as_str());
    }

    #[test]
    fn every_token_has_a_fresh_jti() {
        let now = Timestamp::from_secs(1_000_000);
        let keys = prepared(now);
        let partner = PartnerId::new("p").unwrap();
        let scope = ScopeClaim::parse("session").unwrap();
        let req = TokenRequest {
            partner_id: &partner,
            scope: &scope,
            email: None,
            sub: None,
            issuer: None,
            lifetime: TokenLifetime::new(Duration::from_secs(60)).unwrap(),
        };
        let a = keys.mint(&req, now).unwrap();
        let b = keys.mint(&req, now).unwrap();
        assert_ne!(a.jti, b.jti);
    }

    #[test]
    fn lifetimes_above_300_seconds_are_refused() {
        assert!(TokenLifetime::new(Duration::from_secs(300)).is_ok());
        assert!(TokenLifetime::new(Duration::from_secs(301)).is_err());
        assert!(TokenLifetime::new(Duration::ZERO).is_err());
    }

    #[test]
    fn an_empty_key_set_cannot_mint() {
        let keys = PreparedKeys::new(
            KeySet::default(),
            KeyTimings::default(),
            Timestamp::from_secs(0),
        )
        .unwrap();
        let partner = PartnerId::new("p").unwrap();
        let scope = ScopeClaim::parse("issue").unwrap();
        let err = keys
            .mint(
                &TokenRequest {
                    partner_id: &partner,
                    scope: &scope,
                    email: None,
                    sub: None,
                    issuer: None,
                    lifetime: TokenLifetime::new(Duration::from_secs(60)).unwrap(),
                },
                Timestamp::from_secs(0),
            )
            .unwrap_err();
        assert!(matches!(err, MintError::NoSigningKey));
    }

    #[test]
    fn a_pending_key_passes_its_self_test() {
        let now = Timestamp::from_secs(1_000_000);
        let keys = prepared(now);
        let kid = keys.set().keys[0].kid.clone();
        keys.self_test(&kid).unwrap();
        let other = crate::keys::PrivateJwk::generate().kid();
        assert!(matches!(
            keys.self_test(&other),
            Err(SelfTestError::UnknownKey)
        ));
    }

    #[test]
    fn tokens_debug_is_redacted() {
        let t = PartnerJwt("eyJhbGciOi.secret.sig".into());
        assert!(!format!("{t:?}").contains("eyJ"));
    }

    #[test]
    fn a_scope_claim_is_one_or_more_valid_scopes_written_with_single_spaces() {
        let claim = ScopeClaim::parse("issue   on-behalf").unwrap();
        assert_eq!(claim.as_str(), "issue on-behalf");
        assert!(claim.grants("issue") && claim.grants("on-behalf"));
        assert!(!claim.grants("issue on-behalf") && !claim.grants("on"));
        assert_eq!(
            ScopeClaim::from(Scope::new("issue").unwrap()).as_str(),
            "issue"
        );
        for bad in ["", "   ", "Issue", "issue on_behalf!", "a b c d e f g h i"] {
            assert!(ScopeClaim::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_and_partner_ids_are_parsed_strictly() {
        assert!(Scope::new("issue").is_ok());
        assert!(Scope::new("Issue").is_err());
        assert!(Scope::new("").is_err());
        assert!(PartnerId::new("acme-corp.eu").is_ok());
        assert!(PartnerId::new("acme corp").is_err());
    }
}
