//! The issuance record: one per credential issued on behalf of a user, written before the platform
//! is called and moved through its states by conditional writes only.
//!
//! `PENDING` (written before the platform call, in the due queue ten minutes past its lease) →
//! `UPLOAD_PENDING` (the platform accepted it and its answer — `coreClaimHash`, the CAK public key,
//! `userUuid` — is persisted before any further call; the encrypted documents are not stored yet)
//! → `WAIT_ONCHAIN` (queued for the status poller in the `poll` due queue) → `ISSUED` (the
//! platform says `ONCHAIN`), or `FAILED` / `TIMED_OUT` with a reason. A `PENDING` or
//! `UPLOAD_PENDING` record whose lease ran out (the request died, or gave up with a retryable
//! answer that was never retried) is found by the status poller through the same due index and
//! becomes `ABANDONED`: visible, counted and alarmed, and resumable by a retry with the same
//! `Idempotency-Key`. The user is stored only as a keyed hash and a sealed e-mail (see
//! `docs/architecture.md`); the credential subject is stored only as a keyed fingerprint.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::{AccessKeyId, KeyOwner};
use crate::clock::Timestamp;
use crate::pii::{DigestPurpose, DocumentDigest, Fingerprint, IdHash, Protector, Sealed};
use crate::store::{InvalidName, RecordKey, RecordKind};

pub use crate::due_queue::{
    DEFAULT_POLL_SHARDS, DEFAULT_SWEEP_MINUTES, LEGACY_POLL_QUEUE, Listing, MAX_POLL_SHARDS,
    MAX_SWEEP_MINUTES, PollShards, ShardGroup, SweepEvery, legacy_poll_queue,
};

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
    /// Written; the platform has not (knowingly) accepted it yet. The call may have been sent:
    /// whoever takes the record over resolves it with `onDuplicate: "ignore"` first.
    Pending,
    /// The platform accepted it (its answer is persisted); the encrypted sensitive data is not
    /// confirmed stored yet. A retry with the same `Idempotency-Key` and body encrypts to the
    /// stored CAK key and uploads again, without issuing again.
    UploadPending,
    /// Its request ended without finishing and was not retried within its lease: found by the
    /// reconciler, counted and alarmed. A retry with the same `Idempotency-Key` resumes it.
    Abandoned,
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
///
/// Its identity (who asked, for which program and user, with which subject) is fixed when it is
/// written first ([`Issuance::pending`]) and typed; its state moves only through the transition
/// methods below, each of which checks the state it starts from, so the record cannot be put in a
/// state the machine does not allow. The state fields are read through accessors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issuance {
    /// The id.
    pub issuance_id: IssuanceId,
    /// The API key that requested it.
    pub caller: AccessKeyId,
    /// The family of that key: the keys that may read it ([`Issuance::readable_by`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<KeyOwner>,
    /// The program.
    pub program_id: ProgramId,
    /// The user's keyed hash.
    pub user_hash: IdHash,
    /// The user's e-mail, sealed with the record key as context.
    pub user: Sealed,
    /// The keyed fingerprint of the credential subject ([`subject_digest`]; decides
    /// `onDuplicate` when the policy is automatic).
    pub subject_hash: Fingerprint,
    /// What was sent as `onDuplicate`.
    pub on_duplicate: OnDuplicate,
    /// When it was first written.
    pub created_at: Timestamp,
    status: IssuanceStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    core_claim_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    storage_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wait_onchain_since: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    onchain_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Anchored::is_empty")]
    anchored: Anchored,
    #[serde(default)]
    poll_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_polled_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alerted_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cak_public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_core_claim_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_until: Option<Timestamp>,
}

/// Who asks for an issuance, of what: the identity of a new record.
#[derive(Debug, Clone)]
pub struct NewIssuance {
    /// The id.
    pub issuance_id: IssuanceId,
    /// The API key that requested it.
    pub caller: AccessKeyId,
    /// The family of that key.
    pub owner: Option<KeyOwner>,
    /// The program.
    pub program_id: ProgramId,
    /// The user's keyed hash.
    pub user_hash: IdHash,
    /// The user's e-mail, sealed.
    pub user: Sealed,
    /// The keyed fingerprint of the credential subject.
    pub subject_hash: Fingerprint,
    /// What is sent as `onDuplicate`.
    pub on_duplicate: OnDuplicate,
    /// The credential the user held for the program when the issuance began (from the resource
    /// lock): how an ambiguous outcome is told apart from an untouched platform.
    pub previous_core_claim_hash: Option<String>,
}

/// What the platform's status answer said about an anchored credential (each member as the
/// platform wrote it, when it did): what a partner needs to refer to the credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anchored {
    /// The verifiable credential's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vc_id: Option<String>,
    /// When it was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuance_date: Option<String>,
    /// When it expires, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
}

impl Anchored {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an issuance in state {from:?} cannot become {to:?}")]
pub struct InvalidTransition {
    /// The state it is in.
    pub from: IssuanceStatus,
    /// The state asked for.
    pub to: IssuanceStatus,
}

/// What the platform answered when it accepted (or already held) the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The credential.
    pub core_claim_hash: String,
    /// The platform's id of the user, when it said it.
    pub user_uuid: Option<String>,
    /// The CAK public key, when the program has CAK.
    pub cak_public_key: Option<String>,
}

impl Issuance {
    /// A new record, `PENDING`, owned by the request that writes it until `lease_until`.
    pub fn pending(new: NewIssuance, lease_until: Timestamp, now: Timestamp) -> Self {
        Self {
            issuance_id: new.issuance_id,
            caller: new.caller,
            owner: new.owner,
            program_id: new.program_id,
            user_hash: new.user_hash,
            user: new.user,
            subject_hash: new.subject_hash,
            on_duplicate: new.on_duplicate,
            created_at: now,
            status: IssuanceStatus::Pending,
            core_claim_hash: None,
            storage_id: None,
            reason: None,
            updated_at: now,
            wait_onchain_since: None,
            onchain_at: None,
            anchored: Anchored::default(),
            poll_attempts: 0,
            last_polled_at: None,
            alerted_at: None,
            user_uuid: None,
            cak_public_key: None,
            previous_core_claim_hash: new.previous_core_claim_hash,
            lease_until: Some(lease_until),
        }
    }

    /// The state.
    pub fn status(&self) -> IssuanceStatus {
        self.status
    }

    /// The credential at the platform, once known.
    pub fn core_claim_hash(&self) -> Option<&str> {
        self.core_claim_hash.as_deref()
    }

    /// The uploaded CAK ciphertext's storage id, if any.
    pub fn storage_id(&self) -> Option<&str> {
        self.storage_id.as_deref()
    }

    /// Why it failed, timed out or was abandoned.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// When it last changed.
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    /// When the platform accepted it (and its documents were stored).
    pub fn wait_onchain_since(&self) -> Option<Timestamp> {
        self.wait_onchain_since
    }

    /// When the platform said `ONCHAIN`.
    pub fn onchain_at(&self) -> Option<Timestamp> {
        self.onchain_at
    }

    /// What the platform said about the credential when it was anchored.
    pub fn anchored(&self) -> &Anchored {
        &self.anchored
    }

    /// How many status polls were made.
    pub fn poll_attempts(&self) -> u32 {
        self.poll_attempts
    }

    /// When the status poller last claimed it for a poll.
    pub fn last_polled_at(&self) -> Option<Timestamp> {
        self.last_polled_at
    }

    /// When the poller raised the long-`WAIT_ONCHAIN` alert for it (at most once).
    pub fn alerted_at(&self) -> Option<Timestamp> {
        self.alerted_at
    }

    /// The platform's id of the user, from its answer.
    pub fn user_uuid(&self) -> Option<&str> {
        self.user_uuid.as_deref()
    }

    /// The CAK public key the platform returned (uncompressed SEC1 hex; public, not a secret),
    /// kept so that an upload can be retried without issuing again.
    pub fn cak_public_key(&self) -> Option<&str> {
        self.cak_public_key.as_deref()
    }

    /// The credential this user held for this program when the issuance began.
    pub fn previous_core_claim_hash(&self) -> Option<&str> {
        self.previous_core_claim_hash.as_deref()
    }

    /// Until when the request that wrote the record owns it; after it, the reconciler may.
    pub fn lease_until(&self) -> Option<Timestamp> {
        self.lease_until
    }

    /// Whether a key of `family` may read this issuance: one of the family that created it. A
    /// record written before records had an owner belongs to the family of its key alone.
    pub fn readable_by(&self, family: &KeyOwner) -> bool {
        match &self.owner {
            Some(owner) => owner == family,
            None => self.caller.as_str() == family.as_str(),
        }
    }

    fn check(
        &self,
        to: IssuanceStatus,
        allowed: &[IssuanceStatus],
    ) -> Result<(), InvalidTransition> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(InvalidTransition {
                from: self.status,
                to,
            })
        }
    }

    /// The record is taken (over) by a request that owns it until `lease_until`: a fresh or
    /// re-driven `PENDING` (a `FAILED` one is re-driven as `PENDING`), or a resumed
    /// `UPLOAD_PENDING` / `ABANDONED` one.
    pub fn leased(mut self, lease_until: Timestamp, now: Timestamp) -> Self {
        self.lease_until = Some(lease_until);
        if matches!(
            self.status,
            IssuanceStatus::Abandoned | IssuanceStatus::Failed
        ) {
            self.status = if self.core_claim_hash.is_some() {
                IssuanceStatus::UploadPending
            } else {
                IssuanceStatus::Pending
            };
            self.reason = None;
        }
        self.updated_at = now;
        self
    }

    /// `PENDING` → `UPLOAD_PENDING` (documents to upload) or `WAIT_ONCHAIN`: the platform's
    /// answer, persisted before any further call.
    ///
    /// # Errors
    /// From any state but `PENDING` (or `FAILED`, which a retry with the same key re-drives).
    pub fn accepted(
        mut self,
        answer: Accepted,
        upload: bool,
        now: Timestamp,
    ) -> Result<Self, InvalidTransition> {
        let to = if upload {
            IssuanceStatus::UploadPending
        } else {
            IssuanceStatus::WaitOnchain
        };
        self.check(to, &[IssuanceStatus::Pending, IssuanceStatus::Failed])?;
        self.status = to;
        self.core_claim_hash = Some(answer.core_claim_hash);
        self.user_uuid = answer.user_uuid.or(self.user_uuid);
        self.cak_public_key = answer.cak_public_key.or(self.cak_public_key);
        self.reason = None;
        self.updated_at = now;
        if !upload {
            self.wait_onchain_since = Some(now);
            self.lease_until = None;
        }
        Ok(self)
    }

    /// `UPLOAD_PENDING` → `WAIT_ONCHAIN`: the ciphertext is stored at the platform.
    ///
    /// # Errors
    /// From any other state.
    pub fn uploaded(
        mut self,
        storage_id: String,
        now: Timestamp,
    ) -> Result<Self, InvalidTransition> {
        self.check(
            IssuanceStatus::WaitOnchain,
            &[IssuanceStatus::UploadPending],
        )?;
        self.status = IssuanceStatus::WaitOnchain;
        self.storage_id = Some(storage_id);
        self.updated_at = now;
        self.wait_onchain_since = Some(now);
        self.lease_until = None;
        Ok(self)
    }

    /// `PENDING` → `FAILED`: the platform refused it.
    ///
    /// # Errors
    /// From any other state.
    pub fn failed(mut self, reason: String, now: Timestamp) -> Result<Self, InvalidTransition> {
        self.check(IssuanceStatus::Failed, &[IssuanceStatus::Pending])?;
        self.status = IssuanceStatus::Failed;
        self.reason = Some(reason);
        self.updated_at = now;
        self.lease_until = None;
        Ok(self)
    }

    /// `PENDING` / `UPLOAD_PENDING` → `ABANDONED`: its lease ran out and nobody finished it.
    ///
    /// # Errors
    /// From any other state.
    pub fn abandoned(mut self, now: Timestamp) -> Result<Self, InvalidTransition> {
        self.check(
            IssuanceStatus::Abandoned,
            &[IssuanceStatus::Pending, IssuanceStatus::UploadPending],
        )?;
        self.reason = Some(if self.status == IssuanceStatus::Pending {
            "the request ended before the platform confirmed the issuance and was not retried; \
             the platform may hold it: a retry with the same Idempotency-Key and body resolves \
             it without issuing twice"
                .to_owned()
        } else {
            "the platform issued the credential but the encrypted sensitive data was never \
             confirmed stored; a retry with the same Idempotency-Key and body uploads it \
             without issuing again"
                .to_owned()
        });
        self.status = IssuanceStatus::Abandoned;
        self.updated_at = now;
        Ok(self)
    }

    /// A status poll claimed at `at`: one more attempt counted (`WAIT_ONCHAIN` only).
    ///
    /// # Errors
    /// From any other state.
    pub fn poll_claimed(mut self, at: Timestamp) -> Result<Self, InvalidTransition> {
        self.check(IssuanceStatus::WaitOnchain, &[IssuanceStatus::WaitOnchain])?;
        self.poll_attempts = self.poll_attempts.saturating_add(1);
        self.last_polled_at = Some(at);
        Ok(self)
    }

    /// `WAIT_ONCHAIN` → `ISSUED`: the platform says `ONCHAIN`, with what it said about the
    /// credential.
    ///
    /// # Errors
    /// From any other state.
    pub fn onchain(
        mut self,
        anchored: Anchored,
        now: Timestamp,
    ) -> Result<Self, InvalidTransition> {
        self.check(IssuanceStatus::Issued, &[IssuanceStatus::WaitOnchain])?;
        self.status = IssuanceStatus::Issued;
        self.onchain_at = Some(now);
        self.anchored = anchored;
        self.reason = None;
        self.updated_at = now;
        Ok(self)
    }

    /// `WAIT_ONCHAIN` → `FAILED`: the credential will never be anchored (revoked, unknown to
    /// the platform, or accepted without a hash to poll).
    ///
    /// # Errors
    /// From any other state.
    pub fn lost(mut self, reason: String, now: Timestamp) -> Result<Self, InvalidTransition> {
        self.check(IssuanceStatus::Failed, &[IssuanceStatus::WaitOnchain])?;
        self.status = IssuanceStatus::Failed;
        self.reason = Some(reason);
        self.updated_at = now;
        Ok(self)
    }

    /// `WAIT_ONCHAIN` → `TIMED_OUT`: still not anchored at the give-up limit.
    ///
    /// # Errors
    /// From any other state.
    pub fn timed_out(mut self, reason: String, now: Timestamp) -> Result<Self, InvalidTransition> {
        self.check(IssuanceStatus::TimedOut, &[IssuanceStatus::WaitOnchain])?;
        self.status = IssuanceStatus::TimedOut;
        self.reason = Some(reason);
        self.updated_at = now;
        Ok(self)
    }

    /// The long-`WAIT_ONCHAIN` alert raised at `now`; `None` when it was raised already (it is
    /// raised at most once) or the record is not waiting.
    #[must_use]
    pub fn alerted(mut self, now: Timestamp) -> Option<Self> {
        (self.status == IssuanceStatus::WaitOnchain && self.alerted_at.is_none()).then(|| {
            self.alerted_at = Some(now);
            self
        })
    }

    /// Whether the request that owns the record still does at `now`.
    pub fn lease_live(&self, now: Timestamp) -> bool {
        self.lease_until.is_some_and(|until| now < until)
    }

    /// Seconds spent in `WAIT_ONCHAIN`, up to `onchain_at` or `now`.
    pub fn wait_onchain_seconds(&self, now: Timestamp) -> Option<f64> {
        let since = self.wait_onchain_since?;
        let until = self.onchain_at.unwrap_or(now);
        Some(until.since(since).as_secs_f64())
    }
}

/// The key of the record of a (user, program): the resource lock of its issuances, the last
/// subject hash and the last credential issued.
pub fn subject_key(user_hash: &IdHash, program_id: &ProgramId) -> Result<RecordKey, InvalidName> {
    RecordKey::new(
        RecordKind::Issuance,
        &format!("subject:{}:{program_id}", user_hash.as_str()),
    )
}

/// The body of a (user, program) record: the lock that keeps two issuances of one user and
/// program from running at once (AC-112: one job of a kind per resource), and what the last
/// finished issuance left. Taking or releasing the lock is a conditional write at the record's
/// version; a lock whose lease ran out is free, so a crash never wedges it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceLock {
    /// The keyed fingerprint of the last subject issued ([`subject_digest`]; decides an
    /// automatic `onDuplicate`). Locks written before fingerprints were keyed hold its plain
    /// SHA-256, which [`DocumentDigest::matches`] still accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_hash: Option<Fingerprint>,
    /// The last credential issued to the user for the program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_claim_hash: Option<String>,
    /// The issuance that finished last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuance_id: Option<IssuanceId>,
    /// The issuance holding the lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<IssuanceId>,
    /// Until when it holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<Timestamp>,
}

impl ResourceLock {
    /// Who else holds the lock at `now`, and until when; `None` when it is free or ours.
    pub fn held_by_other(&self, us: &IssuanceId, now: Timestamp) -> Option<Timestamp> {
        match (&self.held_by, self.held_until) {
            (Some(holder), Some(until)) if holder != us && now < until => Some(until),
            _ => None,
        }
    }

    /// The lock taken by `us` until `until`.
    pub fn taken(mut self, us: &IssuanceId, until: Timestamp) -> Self {
        self.held_by = Some(us.clone());
        self.held_until = Some(until);
        self
    }

    /// The lock released by a finished issuance, remembering what it issued.
    pub fn released(
        mut self,
        by: &IssuanceId,
        subject_hash: &Fingerprint,
        core_claim_hash: &str,
    ) -> Self {
        if self.held_by.as_ref() == Some(by) {
            self.held_by = None;
            self.held_until = None;
        }
        self.subject_hash = Some(subject_hash.clone());
        self.core_claim_hash = Some(core_claim_hash.to_owned());
        self.issuance_id = Some(by.clone());
        self
    }
}

/// The keyed fingerprint of a credential subject in canonical JSON form (object keys sorted):
/// what decides an automatic `onDuplicate` and tells a retry from another request. Keyed, because
/// the resource lock keeps it for as long as the user holds the credential (see
/// [`Protector::digest`]).
pub fn subject_digest(protector: &Protector, subject: &serde_json::Value) -> DocumentDigest {
    let document = zeroize::Zeroizing::new(subject.to_string());
    protector.digest(DigestPurpose::CredentialSubject, document.as_bytes())
}

/// What to do when the user already holds a credential of the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDuplicate {
    /// Keep the existing credential: the platform answers 409 with its hash
    /// (the platform client's `Duplicate` error).
    Ignore,
    /// Revoke the existing credential and issue a new one (e.g. a tier upgrade). Never sent
    /// twice by the client: an attempt after an unconfirmed one goes out with `ignore`.
    Revoke,
}

/// A program id (`credentialId` at the platform): 1–128 characters of `A-Za-z0-9._:-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProgramId(String);

impl ProgramId {
    /// The id, if the platform would accept it.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= 128
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
        ok.then(|| Self(text.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProgramId {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text).ok_or_else(|| "not a program id".to_owned())
    }
}

impl From<ProgramId> for String {
    fn from(id: ProgramId) -> Self {
        id.0
    }
}

impl std::fmt::Display for ProgramId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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

    fn pending() -> Issuance {
        let t = Timestamp::from_millis(1_000);
        serde_json::from_value(serde_json::json!({
            "issuanceId": "iss_00000000000000000000000000000000", "caller": "pk_0123456789abcdef",
            "programId": "p", "userHash": "00", "user": {"v": "k", "n": "AA==", "c": "AA=="},
            "subjectHash": "00", "onDuplicate": "ignore", "status": "PENDING",
            "createdAt": t, "updatedAt": t
        }))
        .unwrap()
    }

    #[test]
    fn an_issuance_is_readable_by_its_family_only_and_an_old_record_by_its_key_alone() {
        use crate::auth::KeyOwner;
        let mut i = pending();
        assert!(
            i.readable_by(&KeyOwner::parse("pk_0123456789abcdef").unwrap()),
            "no owner: the key"
        );
        assert!(!i.readable_by(&KeyOwner::parse("billing").unwrap()));
        i.owner = KeyOwner::parse("billing");
        assert!(i.readable_by(&KeyOwner::parse("billing").unwrap()));
        assert!(!i.readable_by(&KeyOwner::parse("pk_0123456789abcdef").unwrap()));
        assert!(!i.readable_by(&KeyOwner::parse("support").unwrap()));
    }

    fn answer() -> Accepted {
        Accepted {
            core_claim_hash: "0x1".into(),
            user_uuid: Some("u".into()),
            cak_public_key: Some("04ab".into()),
        }
    }

    #[test]
    fn an_accepted_issuance_with_documents_waits_for_its_upload_before_the_poller() {
        let t = Timestamp::from_millis(2_000);
        let i = pending().accepted(answer(), true, t).unwrap();
        assert_eq!(i.status, IssuanceStatus::UploadPending);
        assert_eq!(i.cak_public_key.as_deref(), Some("04ab"));
        assert_eq!(i.wait_onchain_since, None);
        let i = i.uploaded("ct_1".into(), t).unwrap();
        assert_eq!(i.status, IssuanceStatus::WaitOnchain);
        assert_eq!(i.wait_onchain_since, Some(t));
        assert!(i.clone().uploaded("ct_2".into(), t).is_err());
        assert!(i.accepted(answer(), false, t).is_err());
    }

    #[test]
    fn only_unfinished_issuances_can_be_abandoned_and_a_retry_resumes_them() {
        let t = Timestamp::from_millis(2_000);
        let later = Timestamp::from_millis(9_000);
        let a = pending().abandoned(t).unwrap();
        assert_eq!(a.status, IssuanceStatus::Abandoned);
        assert!(a.reason.as_deref().unwrap().contains("Idempotency-Key"));
        assert_eq!(a.leased(later, t).status, IssuanceStatus::Pending);
        let failed = pending().failed("refused".into(), t).unwrap();
        assert_eq!(
            failed.leased(later, t).status,
            IssuanceStatus::Pending,
            "re-driven"
        );
        let u = pending()
            .accepted(answer(), true, t)
            .unwrap()
            .abandoned(t)
            .unwrap();
        let resumed = u.leased(later, t);
        assert_eq!(resumed.status, IssuanceStatus::UploadPending);
        assert!(resumed.lease_live(t) && !resumed.lease_live(later));
        let done = pending().accepted(answer(), false, t).unwrap();
        assert!(done.abandoned(t).is_err());
    }

    #[test]
    fn only_a_waiting_issuance_is_polled_anchored_lost_timed_out_or_alerted_and_alerted_once() {
        let t = Timestamp::from_millis(2_000);
        let waiting = pending().accepted(answer(), false, t).unwrap();
        assert!(pending().poll_claimed(t).is_err());
        assert!(pending().onchain(Anchored::default(), t).is_err());
        let claimed = waiting.clone().poll_claimed(t).unwrap();
        assert_eq!(
            (claimed.poll_attempts(), claimed.last_polled_at()),
            (1, Some(t))
        );
        let anchored = Anchored {
            vc_id: Some("urn:uuid:1".into()),
            issuance_date: Some("2026-12-01T00:00:00Z".into()),
            expiration_date: None,
        };
        let issued = claimed.clone().onchain(anchored.clone(), t).unwrap();
        assert_eq!(issued.anchored(), &anchored);
        assert_eq!(issued.status(), IssuanceStatus::Issued);
        assert_eq!(issued.onchain_at(), Some(t));
        assert!(issued.clone().lost("x".into(), t).is_err());
        assert!(issued.clone().timed_out("x".into(), t).is_err());
        assert!(issued.alerted(t).is_none(), "only a waiting record");
        let lost = claimed.clone().lost("revoked".into(), t).unwrap();
        assert_eq!(
            (lost.status(), lost.reason()),
            (IssuanceStatus::Failed, Some("revoked"))
        );
        let timed_out = claimed.clone().timed_out("late".into(), t).unwrap();
        assert_eq!(timed_out.status(), IssuanceStatus::TimedOut);
        let alerted = claimed.alerted(t).unwrap();
        assert_eq!(alerted.alerted_at(), Some(t));
        assert!(alerted.alerted(t).is_none(), "at most once");
    }

    #[test]
    fn a_lock_held_by_another_issuance_is_free_once_its_lease_ends() {
        let us = IssuanceId::derive("pk", "a");
        let them = IssuanceId::derive("pk", "b");
        let lock = ResourceLock::default().taken(&them, Timestamp::from_millis(5_000));
        assert_eq!(
            lock.held_by_other(&us, Timestamp::from_millis(4_999)),
            Some(Timestamp::from_millis(5_000))
        );
        assert_eq!(lock.held_by_other(&us, Timestamp::from_millis(5_000)), None);
        assert_eq!(lock.held_by_other(&them, Timestamp::from_millis(1)), None);
        let released = lock.taken(&us, Timestamp::from_millis(9_000)).released(
            &us,
            &Fingerprint::from_stored("s"),
            "0x2",
        );
        assert_eq!(released.held_by, None);
        assert_eq!(released.core_claim_hash.as_deref(), Some("0x2"));
    }

    #[test]
    fn the_subject_digest_ignores_key_order_but_not_values() {
        let p = Protector::new(std::sync::Arc::new(crate::pii::DataKeys::generate()));
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":2,"b":1}"#).unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"a":2,"b":3}"#).unwrap();
        assert_eq!(subject_digest(&p, &a), subject_digest(&p, &b));
        assert_ne!(subject_digest(&p, &a), subject_digest(&p, &c));
    }
}
