//! HMAC-SHA256 request signing for server-to-server routes (docs/architecture.md §4).
//!
//! The caller sends `X-Access-Key`, `X-Timestamp` (ISO 8601 or Unix seconds) and `X-Signature`,
//! the lowercase hex HMAC-SHA256, keyed with the secret's UTF-8 bytes, of
//! `METHOD\nPATH\nTIMESTAMP\nBODY` — PATH with its query string as sent, TIMESTAMP the header's
//! exact text, BODY the raw bytes. A request is accepted when the key is active, the timestamp is
//! within ±300 s, the signature matches (constant-time), the key has not expired and is of the
//! stack's environment, the source address and the permission are allowed, and the signature has
//! not been seen before (the replay cache is a record with a TTL, so it holds across containers).
//!
//! Every attempt, accepted or refused, is logged as one structured line for audit: the outcome,
//! the reason of a refusal, the key id, the route and the source address; never a secret or a
//! signature.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::api_keys::{
    AccessKeyId, ApiKeyLookup, KeyOwner, KeyStatus, KeyType, Permission, StackEnvironment,
};
use crate::clock::{SharedClock, Timestamp};
use crate::error::{ApiError, ErrorType};
use crate::store::{NewRecord, RecordKey, RecordKind, RecordStore, StoreError, Write};
use crate::telemetry::Recorder;

type HmacSha256 = Hmac<Sha256>;

/// How far a signed timestamp may be from now.
pub const SIGNATURE_WINDOW: Duration = Duration::from_secs(300);

/// The header names.
pub const ACCESS_KEY_HEADER: &str = "x-access-key";
/// The header names.
pub const TIMESTAMP_HEADER: &str = "x-timestamp";
/// The header names.
pub const SIGNATURE_HEADER: &str = "x-signature";

fn canonical_mac(
    secret: &str,
    method: &str,
    path: &str,
    timestamp: &str,
    body: &[u8],
) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for HMAC.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(method.as_bytes());
    mac.update(b"\n");
    mac.update(path.as_bytes());
    mac.update(b"\n");
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac
}

/// The signature a client computes: lowercase hex HMAC-SHA256 of the canonical string.
pub fn sign(
    secret: &str,
    method: &str,
    path_and_query: &str,
    timestamp: &str,
    body: &[u8],
) -> String {
    hex::encode(
        canonical_mac(secret, method, path_and_query, timestamp, body)
            .finalize()
            .into_bytes(),
    )
}

/// Parses `X-Timestamp`: Unix seconds, or ISO 8601 / RFC 3339 text.
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if !text.is_empty() && text.len() <= 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().ok().map(Timestamp::from_secs);
    }
    Timestamp::parse_rfc3339(text)
}

/// The parts of a request that authentication reads.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    /// The HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The path with its query string as sent.
    pub path_and_query: &'a str,
    /// `X-Access-Key`, if sent.
    pub access_key: Option<&'a str>,
    /// `X-Timestamp`, if sent.
    pub timestamp: Option<&'a str>,
    /// `X-Signature`, if sent.
    pub signature: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
    /// The caller's address (API Gateway's `sourceIp`).
    pub source_ip: Option<IpAddr>,
}

impl SignedParts<'_> {
    /// `METHOD /path` without the query string, as audit lines name the route.
    pub fn route(&self) -> String {
        let path = self
            .path_and_query
            .split_once('?')
            .map_or(self.path_and_query, |(p, _)| p);
        format!("{} {path}", self.method)
    }
}

/// An authenticated server caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key it used.
    pub key_id: AccessKeyId,
    /// The key's type.
    pub key_type: KeyType,
    /// The key's family: the records it may read.
    pub family: KeyOwner,
    /// What the key grants (a `read_only` key's writes already removed).
    pub grants: Vec<Permission>,
}

impl Caller {
    /// Whether the key grants `p` too.
    pub fn may(&self, p: Permission) -> bool {
        self.grants.contains(&p)
    }
}

/// Why a signed request was refused. Each has a stable reason (logs, metrics) and error type.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    /// A header is missing.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// No active key has this id.
    #[error("unknown access key")]
    UnknownKey,
    /// The key is revoked.
    #[error("revoked access key")]
    RevokedKey,
    /// The key's `expiresAt` has passed.
    #[error("the access key has expired; ask for a new one")]
    ExpiredKey,
    /// The key is of the other environment (`test` on a live stack, `live` on a test stack).
    #[error("this key's type is not accepted by a {0} stack")]
    WrongEnvironment(&'static str),
    /// `X-Timestamp` is not a time.
    #[error("malformed X-Timestamp")]
    MalformedTimestamp,
    /// The timestamp is too old or too far ahead.
    #[error("X-Timestamp is outside the accepted window of 300 seconds")]
    TimestampOutOfWindow,
    /// The signature does not match.
    #[error("signature does not match")]
    SignatureMismatch,
    /// The source address is not allowed for this key.
    #[error("source address not allowed for this key")]
    IpNotAllowed,
    /// The key lacks the permission (or is read-only on a write).
    #[error("the key lacks the {0} permission")]
    MissingPermission(&'static str),
    /// The signature was used before.
    #[error("request already seen (replayed signature)")]
    Replayed,
    /// The key registry or the replay cache could not be consulted.
    #[error("authentication backend unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AuthFailure {
    /// The stable reason, for logs and the `AuthFailures` metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::UnknownKey => "unknown_key",
            Self::RevokedKey => "revoked_key",
            Self::ExpiredKey => "expired_key",
            Self::WrongEnvironment(_) => "wrong_environment",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::TimestampOutOfWindow => "timestamp_out_of_window",
            Self::SignatureMismatch => "signature_mismatch",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::MissingPermission(_) => "missing_permission",
            Self::Replayed => "replayed_request",
            Self::Unavailable(_) => "backend_unavailable",
        }
    }

    /// The answer to the caller. An unknown and a revoked key get the same answer, so a caller
    /// without the secret cannot tell which ids exist; the log keeps the precise reason.
    pub fn to_api_error(&self) -> ApiError {
        if matches!(self, Self::UnknownKey | Self::RevokedKey) {
            return ApiError::new(ErrorType::Unauthorized, "unknown or revoked access key");
        }
        let t = match self {
            Self::MissingHeader(_)
            | Self::UnknownKey
            | Self::RevokedKey
            | Self::MalformedTimestamp => ErrorType::Unauthorized,
            Self::TimestampOutOfWindow => ErrorType::TimestampOutOfWindow,
            Self::ExpiredKey => ErrorType::TokenExpired,
            Self::WrongEnvironment(_) => ErrorType::Forbidden,
            Self::SignatureMismatch => ErrorType::SignatureMismatch,
            Self::IpNotAllowed | Self::MissingPermission(_) => ErrorType::Forbidden,
            Self::Replayed => ErrorType::ReplayedRequest,
            Self::Unavailable(_) => ErrorType::InternalError,
        };
        ApiError::new(t, self.to_string())
    }
}

/// Verifies signed requests against the key registry and the replay cache.
pub struct RequestVerifier {
    keys: Arc<dyn ApiKeyLookup>,
    replay: Arc<dyn RecordStore>,
    environment: StackEnvironment,
    clock: SharedClock,
    recorder: Recorder,
}

impl std::fmt::Debug for RequestVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestVerifier").finish_non_exhaustive()
    }
}

impl RequestVerifier {
    /// A verifier over these ports for a stack of `environment`; every attempt is logged, and
    /// failures counted, through `recorder`.
    pub fn new(
        keys: Arc<dyn ApiKeyLookup>,
        replay: Arc<dyn RecordStore>,
        environment: StackEnvironment,
        clock: SharedClock,
        recorder: Recorder,
    ) -> Self {
        Self {
            keys,
            replay,
            environment,
            clock,
            recorder,
        }
    }

    /// Authenticates a request that needs `permission`. Every attempt is logged with its outcome,
    /// the key id, the route and the source address; every failure with its reason, and counted.
    pub async fn verify(
        &self,
        parts: &SignedParts<'_>,
        permission: Permission,
    ) -> Result<Caller, AuthFailure> {
        let result = self.check(parts, permission).await;
        let ip = parts.source_ip.map(|ip| ip.to_string());
        let route = parts.route();
        match &result {
            Ok(caller) => self.recorder.auth_success(
                "api_key",
                Some(caller.key_id.as_str()),
                &route,
                ip.as_deref(),
            ),
            Err(failure) => {
                let key_id = parts.access_key.and_then(AccessKeyId::parse);
                self.recorder.auth_failure(
                    failure.reason(),
                    key_id.as_ref().map(AccessKeyId::as_str),
                    &route,
                    ip.as_deref(),
                );
            }
        }
        result
    }

    async fn check(
        &self,
        parts: &SignedParts<'_>,
        permission: Permission,
    ) -> Result<Caller, AuthFailure> {
        let access_key = parts
            .access_key
            .ok_or(AuthFailure::MissingHeader("X-Access-Key"))?;
        let timestamp_text = parts
            .timestamp
            .ok_or(AuthFailure::MissingHeader("X-Timestamp"))?;
        let signature = parts
            .signature
            .ok_or(AuthFailure::MissingHeader("X-Signature"))?;

        let id = AccessKeyId::parse(access_key).ok_or(AuthFailure::UnknownKey)?;
        let key = self
            .keys
            .find(&id)
            .await
            .map_err(|e| AuthFailure::Unavailable(Box::new(e)))?
            .ok_or(AuthFailure::UnknownKey)?;
        if key.status == KeyStatus::Revoked {
            return Err(AuthFailure::RevokedKey);
        }

        let timestamp = parse_timestamp(timestamp_text).ok_or(AuthFailure::MalformedTimestamp)?;
        let now = self.clock.now();
        if now.since(timestamp) > SIGNATURE_WINDOW || timestamp.since(now) > SIGNATURE_WINDOW {
            return Err(AuthFailure::TimestampOutOfWindow);
        }

        let given = hex::decode(signature.trim()).map_err(|_| AuthFailure::SignatureMismatch)?;
        canonical_mac(
            &key.secret,
            parts.method,
            parts.path_and_query,
            timestamp_text,
            parts.body,
        )
        .verify_slice(&given) // constant-time
        .map_err(|_| AuthFailure::SignatureMismatch)?;

        // Only a caller holding the secret learns that its key expired or is of the wrong type.
        if key.is_expired(now) {
            return Err(AuthFailure::ExpiredKey);
        }
        if !self.environment.accepts(key.key_type) {
            return Err(AuthFailure::WrongEnvironment(self.environment.as_str()));
        }
        if !key.allows_ip(parts.source_ip) {
            return Err(AuthFailure::IpNotAllowed);
        }
        if !key.grants(permission) {
            return Err(AuthFailure::MissingPermission(permission.as_str()));
        }

        // Accept each signature once: one conditional create, expiring when the timestamp would be
        // refused anyway.
        let digest = hex::encode(Sha256::digest(&given));
        let replay_key = RecordKey::new(RecordKind::Replay, &format!("{}:{digest}", id.as_str()))
            .map_err(|e| AuthFailure::Unavailable(Box::new(e)))?;
        let expires = timestamp
            .max(now)
            .plus(SIGNATURE_WINDOW)
            .plus(Duration::from_secs(1));
        let record = NewRecord::new(
            replay_key,
            json!({"keyId": id.as_str(), "seenAt": now.as_millis()}),
        )
        .expiring_at(expires);
        match self.replay.write(Write::Create(record)).await {
            Ok(_) => {}
            Err(StoreError::AlreadyExists { .. }) => return Err(AuthFailure::Replayed),
            Err(e) => return Err(AuthFailure::Unavailable(Box::new(e))),
        }
        let grants = key
            .permissions
            .iter()
            .copied()
            .filter(|p| key.grants(*p))
            .collect();
        Ok(Caller {
            family: key.family(),
            key_id: id,
            key_type: key.key_type,
            grants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_as_unix_seconds_or_iso_8601() {
        assert_eq!(
            parse_timestamp("1700000000"),
            Some(Timestamp::from_secs(1_700_000_000))
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z"),
            Some(Timestamp::from_secs(1_700_000_000))
        );
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn the_signature_covers_method_path_timestamp_and_body() {
        let base = sign("sk_x", "POST", "/v1/credentials?a=1", "1700000000", b"{}");
        assert_eq!(base.len(), 64);
        assert!(
            base.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        for other in [
            sign("sk_y", "POST", "/v1/credentials?a=1", "1700000000", b"{}"),
            sign("sk_x", "GET", "/v1/credentials?a=1", "1700000000", b"{}"),
            sign("sk_x", "POST", "/v1/credentials?a=2", "1700000000", b"{}"),
            sign("sk_x", "POST", "/v1/credentials?a=1", "1700000001", b"{}"),
            sign("sk_x", "POST", "/v1/credentials?a=1", "1700000000", b"{ }"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn the_signature_matches_an_independent_hmac_computation() {
        // The canonical string built by hand, MACed directly.
        let sig = sign(
            "key",
            "The quick",
            "brown fox",
            "jumps over",
            b"the lazy dog",
        );
        let mut mac = <HmacSha256 as Mac>::new_from_slice(b"key").unwrap();
        mac.update(b"The quick\nbrown fox\njumps over\nthe lazy dog");
        assert_eq!(sig, hex::encode(mac.finalize().into_bytes()));
    }
}

#[cfg(all(test, feature = "embedded"))]
#[allow(clippy::unwrap_used)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::auth::api_keys::{ApiKey, ApiKeyRegistry, KeyType};
    use crate::clock::ManualClock;
    use crate::store::embedded::EmbeddedStore;

    struct Registry(ApiKeyRegistry);

    #[async_trait::async_trait]
    impl ApiKeyLookup for Registry {
        async fn find(
            &self,
            id: &AccessKeyId,
        ) -> Result<Option<super::super::ApiKey>, super::super::api_keys::RegistryError> {
            Ok(self.0.get(id).cloned())
        }
    }

    fn verifier(key: &ApiKey, dir: &std::path::Path) -> RequestVerifier {
        let clock: SharedClock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
        let store = EmbeddedStore::open(dir.join("r.sqlite3"), clock.clone()).unwrap();
        let recorder = Recorder::new(
            "Test",
            "p",
            Arc::new(crate::telemetry::MemorySink::default()),
            clock.clone(),
        );
        RequestVerifier::new(
            Arc::new(Registry(ApiKeyRegistry {
                keys: vec![key.clone()],
            })),
            Arc::new(store),
            StackEnvironment::Live,
            clock,
            recorder,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_timestamp_text_parses_or_is_refused_without_panicking(text in "\\PC{0,40}") {
            let _ = parse_timestamp(&text);
            let _ = AccessKeyId::parse(&text);
        }

        #[test]
        fn any_header_values_get_a_documented_refusal_never_a_5xx(
            key_id in prop_oneof![Just(None), "\\PC{0,80}".prop_map(Some)],
            timestamp in prop_oneof![Just(None), "\\PC{0,40}".prop_map(Some), Just(Some("1700000000".to_owned()))],
            signature in prop_oneof![Just(None), "\\PC{0,130}".prop_map(Some), "[0-9a-f]{64}".prop_map(Some)],
            body in proptest::collection::vec(any::<u8>(), 0..256),
            known_key in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let key = ApiKey::generate(KeyType::Live, vec![Permission::CredentialsWrite], vec![], "", Timestamp::from_secs(1_700_000_000));
            let v = verifier(&key, dir.path());
            let key_id = if known_key { Some(key.id.as_str().to_owned()) } else { key_id };
            let parts = SignedParts {
                method: "POST",
                path_and_query: "/v1/credentials",
                access_key: key_id.as_deref(),
                timestamp: timestamp.as_deref(),
                signature: signature.as_deref(),
                body: &body,
                source_ip: None,
            };
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let failure = rt.block_on(v.verify(&parts, Permission::CredentialsWrite)).unwrap_err();
            let answer = failure.to_api_error();
            prop_assert!((400..500).contains(&answer.status()), "{failure:?}");
        }
    }
}
