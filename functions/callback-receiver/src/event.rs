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

/// The body the platform POSTs. Its documented members are exactly `userId`, `verifierDid` and
/// `schemaId`: those are required. `issuerDid`, `authorizedAt` and `eventId` are read when present
/// (a richer platform sends them) and otherwise absent; any other member is ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackBody {
    /// The user who authorized the verifier (personal data: never stored or logged as is).
    pub user_id: Pii<String>,
    /// The verifier's DID.
    pub verifier_did: String,
    /// The schema (issuance program) the authorization is for.
    pub schema_id: String,
    /// The issuer DID, when the platform sends it.
    #[serde(default)]
    pub issuer_did: Option<String>,
    /// When the verifier was authorized (RFC 3339), when the platform sends it.
    #[serde(default)]
    pub authorized_at: Option<String>,
    /// The platform's event id, when it sends one.
    #[serde(default)]
    pub event_id: Option<String>,
}

/// What the optional members of a body said, once checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Optional {
    /// The issuer DID.
    pub issuer_did: Option<String>,
    /// When the verifier was authorized.
    pub authorized_at: Option<Timestamp>,
    /// The event id.
    pub event_id: Option<String>,
}

fn problem(value: &str, max: usize) -> Option<&'static str> {
    if value.trim().is_empty() {
        Some("must not be empty")
    } else if value.len() > max {
        Some("is too long")
    } else if value.chars().any(char::is_control) {
        Some("contains control characters")
    } else {
        None
    }
}

fn check(name: &str, value: &str, max: usize) -> Result<(), ApiError> {
    match problem(value, max) {
        None => Ok(()),
        Some(problem) => Err(ApiError::new(
            ErrorType::ValidationFailed,
            format!("{name} {problem}"),
        )),
    }
}

/// An optional member: kept when usable, else dropped with a warning that names the member and
/// never its value. Refusing the delivery instead would make the platform retry it forever and
/// leave the consent unrecorded.
fn optional(name: &str, value: Option<String>, max: usize) -> Option<String> {
    let value = value?;
    match problem(&value, max) {
        None => Some(value),
        Some(problem) => {
            tracing::warn!(member = name, problem, "optional callback member ignored");
            None
        }
    }
}

impl CallbackBody {
    /// Checks the required members (never quoting a value in the error) and reads the optional
    /// ones.
    ///
    /// # Errors
    /// `400 validation_failed` naming the required member that is empty, too long or has
    /// control characters.
    pub fn validate(&mut self) -> Result<Optional, ApiError> {
        check("userId", self.user_id.expose(), MAX_USER_ID)?;
        check("verifierDid", &self.verifier_did, MAX_FIELD)?;
        check("schemaId", &self.schema_id, MAX_FIELD)?;
        let authorized_at = optional("authorizedAt", self.authorized_at.take(), MAX_FIELD)
            .and_then(|text| {
                let parsed = Timestamp::parse_rfc3339(&text);
                if parsed.is_none() {
                    tracing::warn!(
                        member = "authorizedAt",
                        problem = "is not an RFC 3339 time",
                        "optional callback member ignored"
                    );
                }
                parsed
            });
        Ok(Optional {
            issuer_did: optional("issuerDid", self.issuer_did.take(), MAX_FIELD),
            authorized_at,
            event_id: optional("eventId", self.event_id.take(), MAX_FIELD),
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
}

/// The dedup key of a platform event id: a retry of one event keeps its id for as long as the
/// platform retries, even past the triple's window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventIdKey(String);

impl EventIdKey {
    /// The key of the event with this id.
    pub fn derive(event_id: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"cak-event\0");
        h.update(event_id.as_bytes());
        Self(hex::encode(h.finalize()))
    }

    /// `CB#event-<key>`: the record whose conditional creation deduplicates retries of one event.
    ///
    /// # Errors
    /// Never for a derived key.
    pub fn callback_key(&self) -> Result<RecordKey, InvalidName> {
        RecordKey::new(RecordKind::Callback, &format!("event-{}", self.0))
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
    /// The delivery id: the `webhook-id`, else the event id, when there is one.
    pub delivery_id: Option<String>,
    /// The platform's event id, when it sent one.
    pub event_id: Option<String>,
    /// The user (redacted in `Debug`; routes that store it must seal it).
    pub user_id: Pii<String>,
    /// The keyed hash of the user id.
    pub user_hash: IdHash,
    /// The verifier's DID.
    pub verifier_did: String,
    /// The schema id.
    pub schema_id: String,
    /// The issuer DID, when the platform sent it.
    pub issuer_did: Option<String>,
    /// When the verifier was authorized, when the platform said it.
    pub authorized_at: Option<Timestamp>,
    /// When the receiver accepted the delivery.
    pub received_at: Timestamp,
    /// The dedup key of (user, verifier, schema).
    pub dedup: DedupKey,
}

impl ConsentEvent {
    /// The event from a validated body.
    pub fn new(
        body: CallbackBody,
        optional: Optional,
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
            ..
        } = body;
        Self {
            delivery_id: delivery_id
                .map(str::to_owned)
                .or_else(|| optional.event_id.clone()),
            event_id: optional.event_id,
            user_id,
            user_hash,
            verifier_did,
            schema_id,
            issuer_did: optional.issuer_did,
            authorized_at: optional.authorized_at,
            received_at,
            dedup,
        }
    }

    /// The id of this consent event among all of the same (user, verifier, schema): the dedup key
    /// and the instant it was received. Each recorded consent has its own, so a re-consent after
    /// the dedup window gets audit and route records of its own.
    pub fn occurrence(&self) -> String {
        format!(
            "{}-{:013}",
            self.dedup.as_str(),
            self.received_at.as_millis()
        )
    }

    /// `AUDIT#cak-<occurrence>`: the audit trail entry of this consent event.
    ///
    /// # Errors
    /// Never for a derived key.
    pub fn audit_key(&self) -> Result<RecordKey, InvalidName> {
        RecordKey::new(RecordKind::Audit, &format!("cak-{}", self.occurrence()))
    }

    /// When the event happened: `authorizedAt` when the platform said it, else when it arrived.
    pub fn time(&self) -> Timestamp {
        self.authorized_at.unwrap_or(self.received_at)
    }

    /// The facts of the event without personal data: who (the keyed hash) authorized whom, for
    /// which schema, when, and by which delivery. Members the platform did not send are `null`.
    pub fn facts(&self) -> Value {
        json!({
            "userIdHash": self.user_hash,
            "verifierDid": self.verifier_did,
            "schemaId": self.schema_id,
            "issuerDid": self.issuer_did,
            "authorizedAt": self.authorized_at.map(|t| t.to_rfc3339()),
            "eventId": self.event_id,
            "deliveryId": self.delivery_id,
            "receivedAt": self.received_at.to_rfc3339(),
        })
    }
}
