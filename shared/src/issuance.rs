//! The issuance record: one per credential issued on behalf of a user, written before the platform
//! is called and moved through its states by conditional writes only.
//!
//! `PENDING` (written before the platform call) → `WAIT_ONCHAIN` (the platform accepted it; queued
//! for the status poller in the `poll` due queue) → `ISSUED` (the platform says `ONCHAIN`), or
//! `FAILED` / `TIMED_OUT` with a reason. The user is stored only as a keyed hash and a sealed
//! e-mail (DESIGN §9); the credential subject is stored only as a hash.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::pii::{IdHash, Sealed};
use crate::store::{InvalidName, QueueName, RecordKey, RecordKind};

/// The due queue the status poller reads.
pub const POLL_QUEUE: &str = "poll";

/// The poll queue's name.
pub fn poll_queue() -> QueueName {
    QueueName::new(POLL_QUEUE).unwrap_or_else(|_| unreachable!("a valid constant queue name"))
}

/// An issuance id: `iss_` and 32 hex characters, derived from the caller and its idempotency key
/// so that every retry of one request addresses the same record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IssuanceId(String);

impl IssuanceId {
    /// The id of the issuance requested by `caller` under `idempotency_key`.
    pub fn derive(caller: &str, idempotency_key: &str) -> Self {
        let digest = Sha256::digest(format!("issuance\n{caller}\n{idempotency_key}").as_bytes());
        Self(format!("iss_{}", hex::encode(&digest[..16])))
    }

    /// Parses an id from a URL.
    pub fn parse(text: &str) -> Option<Self> {
        let hex_part = text.strip_prefix("iss_")?;
        (hex_part.len() == 32
            && hex_part
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| Self(text.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The record key.
    pub fn record_key(&self) -> Result<RecordKey, InvalidName> {
        RecordKey::new(RecordKind::Issuance, &self.0)
    }
}

/// Where an issuance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IssuanceStatus {
    /// Written; the platform has not (knowingly) accepted it yet.
    Pending,
    /// Accepted by the platform, waiting to be anchored.
    WaitOnchain,
    /// Anchored: issued.
    Issued,
    /// The platform refused it or forgot it.
    Failed,
    /// Still not anchored at the give-up limit; never re-issued automatically.
    TimedOut,
}

/// The stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issuance {
    /// The id.
    pub issuance_id: IssuanceId,
    /// The API key that requested it.
    pub caller: String,
    /// The program.
    pub program_id: String,
    /// The user's keyed hash.
    pub user_hash: IdHash,
    /// The user's e-mail, sealed with the record key as context.
    pub user: Sealed,
    /// The hash of the credential subject (decides `onDuplicate` when the policy is automatic).
    pub subject_hash: String,
    /// What was sent as `onDuplicate`.
    pub on_duplicate: String,
    /// The state.
    pub status: IssuanceStatus,
    /// The credential at the platform, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_claim_hash: Option<String>,
    /// The uploaded CAK ciphertext's storage id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_id: Option<String>,
    /// Why it failed or timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was first written.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When the platform accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_onchain_since: Option<Timestamp>,
    /// When the platform said `ONCHAIN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onchain_at: Option<Timestamp>,
    /// How many status polls were made.
    #[serde(default)]
    pub poll_attempts: u32,
    /// When the status poller last claimed it for a poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_polled_at: Option<Timestamp>,
    /// When the poller raised the long-`WAIT_ONCHAIN` alert for it (at most once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerted_at: Option<Timestamp>,
}

impl Issuance {
    /// Seconds spent in `WAIT_ONCHAIN`, up to `onchain_at` or `now`.
    pub fn wait_onchain_seconds(&self, now: Timestamp) -> Option<f64> {
        let since = self.wait_onchain_since?;
        let until = self.onchain_at.unwrap_or(now);
        Some(until.since(since).as_secs_f64())
    }
}

/// The key of the record remembering the last subject hash issued to a user for a program.
pub fn subject_key(user_hash: &IdHash, program_id: &str) -> Result<RecordKey, InvalidName> {
    RecordKey::new(
        RecordKind::Issuance,
        &format!("subject:{}:{program_id}", user_hash.as_str()),
    )
}

/// The hash of a credential subject in canonical JSON form.
pub fn subject_hash(subject: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(subject.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuance_id_is_stable_per_caller_and_key_and_parses_back() {
        let a = IssuanceId::derive("pk_a", "k1");
        assert_eq!(a, IssuanceId::derive("pk_a", "k1"));
        assert_ne!(a, IssuanceId::derive("pk_b", "k1"));
        assert_eq!(IssuanceId::parse(a.as_str()), Some(a));
        assert_eq!(IssuanceId::parse("iss_../../etc"), None);
        assert_eq!(IssuanceId::parse("ISSUE#x"), None);
    }

    #[test]
    fn the_subject_hash_ignores_key_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":2,"b":1}"#).unwrap();
        assert_eq!(subject_hash(&a), subject_hash(&b));
    }
}
