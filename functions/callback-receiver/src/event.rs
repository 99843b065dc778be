//! The callback body and the consent event it becomes once verified, parsed and pseudonymised.

use std::fmt;

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shared::clock::Timestamp;
use shared::error::{ApiError, ErrorType};
use shared::pii::{IdHash, Protector};
use shared::redact::Pii;
use shared::store::{InvalidName, RecordKey, RecordKind};

/// The longest `userId` accepted.
const MAX_USER_ID: usize = 320;
/// The longest DID, schema id or event id accepted.
const MAX_FIELD: usize = 512;

/// The body the platform POSTs: `{userId, verifierDid, schemaId, issuerDid, authorizedAt,
/// eventId}`. Members the platform may add later are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackBody {
    /// The user who authorized the verifier (personal data: never stored or logged as is).
    pub user_id: Pii<String>,
    /// The verifier's DID.
    pub verifier_did: String,
    /// The schema (issuance program) the authorization is for.
    pub schema_id: String,
    /// The issuer DID.
    pub issuer_did: String,
    /// When the verifier was authorized (RFC 3339).
    pub authorized_at: String,
    /// The platform's event id.
    pub event_id: String,
}

fn check(name: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let problem = if value.trim().is_empty() {
        "must not be empty"
    } else if value.len() > max {
        "is too long"
    } else if value.chars().any(char::is_control) {
        "contains control characters"
    } else {
        return Ok(());
    };
    Err(ApiError::new(
        ErrorType::ValidationFailed,
        format!("{name} {problem}"),
    ))
}

impl CallbackBody {
    /// Checks the members (never quoting a value in the error) and returns the signed time.
    ///
    /// # Errors
    /// `400 validation_failed` naming the member.
    pub fn validate(&self) -> Result<Timestamp, ApiError> {
        check("userId", self.user_id.expose(), MAX_USER_ID)?;
        check("verifierDid", &self.verifier_did, MAX_FIELD)?;
        check("schemaId", &self.schema_id, MAX_FIELD)?;
        check("issuerDid", &self.issuer_did, MAX_FIELD)?;
        check("eventId", &self.event_id, MAX_FIELD)?;
        Timestamp::parse_rfc3339(&self.authorized_at).ok_or_else(|| {
            ApiError::new(
                ErrorType::ValidationFailed,
                "authorizedAt is not an RFC 3339 time",
            )
        })
    }
}

/// The dedup key of an authorization: lowercase hex SHA-256 of the keyed hash of the user id,
/// the verifier DID and the schema id (separated by NUL, which none of them may contain). Stable
/// across deliveries and retries of one authorization; reveals nothing about the user without
/// the pepper.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey(String);

impl DedupKey {
    /// The key of (user, verifier, schema).
    pub fn derive(user: &IdHash, verifier_did: &str, schema_id: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"cak-authorization\0");
        h.update(user.as_str().as_bytes());
        h.update(b"\0");
        h.update(verifier_did.as_bytes());
        h.update(b"\0");
        h.update(schema_id.as_bytes());
        Self(hex::encode(h.finalize()))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `CB#<key>`: the record whose conditional creation deduplicates deliveries.
    ///
    /// # Errors
    /// Never for a derived key (64 hex characters).
    pub fn callback_key(&self) -> Result<RecordKey, InvalidName> {
        RecordKey::new(RecordKind::Callback, &self.0)
    }

    /// `AUDIT#cak-<key>`: the audit trail entry of the authorization.
    ///
    /// # Errors
    /// Never for a derived key.
    pub fn audit_key(&self) -> Result<RecordKey, InvalidName> {
        RecordKey::new(RecordKind::Audit, &format!("cak-{}", self.0))
    }
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The dedup key of an authorization, as the receiver derives it: for tools and tests that need
/// to find its records (`CB#…`, `AUDIT#cak-…`).
pub fn dedup_key(
    protector: &Protector,
    user_id: &str,
    verifier_did: &str,
    schema_id: &str,
) -> DedupKey {
    DedupKey::derive(&protector.hash(user_id), verifier_did, schema_id)
}

/// A verified, parsed authorization: what the audit trail records and the routes receive.
#[derive(Debug, Clone)]
pub struct ConsentEvent {
    /// The delivery id: the `webhook-id`, or the event id when the scheme sends none.
    pub delivery_id: String,
    /// The platform's event id.
    pub event_id: String,
    /// The user (redacted in `Debug`; routes that store it must seal it).
    pub user_id: Pii<String>,
    /// The keyed hash of the user id.
    pub user_hash: IdHash,
    /// The verifier's DID.
    pub verifier_did: String,
    /// The schema id.
    pub schema_id: String,
    /// The issuer DID.
    pub issuer_did: String,
    /// When the verifier was authorized.
    pub authorized_at: Timestamp,
    /// When the receiver accepted the delivery.
    pub received_at: Timestamp,
    /// The dedup key.
    pub dedup: DedupKey,
}

impl ConsentEvent {
    /// The event from a validated body.
    pub fn new(
        body: CallbackBody,
        authorized_at: Timestamp,
        delivery_id: Option<&str>,
        protector: &Protector,
        received_at: Timestamp,
    ) -> Self {
        let user_hash = protector.hash(body.user_id.expose());
        let dedup = DedupKey::derive(&user_hash, &body.verifier_did, &body.schema_id);
        let CallbackBody {
            user_id,
            verifier_did,
            schema_id,
            issuer_did,
            event_id,
            ..
        } = body;
        Self {
            delivery_id: delivery_id.map_or_else(|| event_id.clone(), str::to_owned),
            event_id,
            user_id,
            user_hash,
            verifier_did,
            schema_id,
            issuer_did,
            authorized_at,
            received_at,
            dedup,
        }
    }

    /// The facts of the event without personal data: who (the keyed hash) authorized whom, for
    /// which schema, when, and by which delivery.
    pub fn facts(&self) -> Value {
        json!({
            "userIdHash": self.user_hash,
            "verifierDid": self.verifier_did,
            "schemaId": self.schema_id,
            "issuerDid": self.issuer_did,
            "authorizedAt": self.authorized_at.to_rfc3339(),
            "eventId": self.event_id,
            "deliveryId": self.delivery_id,
            "receivedAt": self.received_at.to_rfc3339(),
        })
    }
}
