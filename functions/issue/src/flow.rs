//! The issuance flow (docs/architecture.md §5): the record and the resource lock written before
//! the platform is called, the platform's answer persisted before any further call, the upload,
//! and the final atomic write — each step leaving a state a retry or the reconciler can finish.

use std::time::Duration;

use lambda_http::{Body, Response};
use serde_json::{Map, Value, json};
use shared::auth::Caller;
use shared::clock::Timestamp;
use shared::ecies::{PublicKey, encrypt};
use shared::error::{ApiError, ErrorType};
use shared::http::Reply;
use shared::idempotency::{Idempotency, Lease, StoredResponse};
use shared::issuance::{
    Accepted, Issuance, IssuanceId, IssuanceStatus, NewIssuance, PollShards, ResourceLock,
    subject_digest, subject_key,
};
use shared::pii::{DocumentDigest, Fingerprint, IdHash, Protector};
use shared::platform::{Deadline, IssueOnBehalf, OnDuplicate, PlatformError};
use shared::programs::Program;
use shared::store::{NewRecord, Record, RecordKey, StoreError, Version, Write};
use zeroize::Zeroizing;

use crate::IssueDeps;
use crate::create::{IssueBody, choose_on_duplicate};

/// How long after acceptance the first status poll is due.
const FIRST_POLL_AFTER: Duration = Duration::from_secs(1);

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "{what}");
    ApiError::internal()
}

/// How long past its lease an unfinished record becomes due for the reconciler (the status
/// poller): time for the caller's documented retry after a retryable answer, so that only an
/// issuance nobody came back for is reported `ABANDONED`.
const RECONCILE_GRACE: Duration = Duration::from_secs(600);

/// The record of `issuance` with its place in the due queue: an unfinished record (`PENDING`,
/// `UPLOAD_PENDING`) is due for the reconciler ten minutes past its lease, a `WAIT_ONCHAIN` one for its
/// first status poll; any other state is in no queue.
fn to_record(
    id: &IssuanceId,
    issuance: &Issuance,
    shards: PollShards,
) -> Result<NewRecord, ApiError> {
    let key = id.record_key().map_err(|e| internal("bad record key", e))?;
    let data =
        serde_json::to_value(issuance).map_err(|e| internal("cannot encode the issuance", e))?;
    let mut record = NewRecord::new(key, data);
    match issuance.status() {
        IssuanceStatus::WaitOnchain => {
            record = record.due_at(
                shards.queue_for(id),
                issuance.updated_at().plus(FIRST_POLL_AFTER),
            );
        }
        IssuanceStatus::Pending | IssuanceStatus::UploadPending => {
            let until = issuance.lease_until().unwrap_or(issuance.updated_at());
            record = record.due_at(shards.queue_for(id), until.plus(RECONCILE_GRACE));
        }
        _ => {}
    }
    Ok(record)
}

/// The version a conditional write leaves: 1 for a create, one more for a replace.
fn version_after(write: &Write) -> Version {
    match write {
        Write::Replace { expected, .. } => Version(expected.0 + 1),
        Write::Create(_) | Write::Remove { .. } => Version(1),
    }
}

/// Where an issuance is in its flow, as far as this request is concerned.
struct Job<'a> {
    id: &'a IssuanceId,
    program: &'a Program,
    deps: &'a IssueDeps,
    idem: &'a Idempotency<'a>,
    lease: &'a Lease,
    deadline: Deadline,
    /// The issuance as last written, and the version it was written at.
    issuance: Issuance,
    version: Version,
    /// The (user, program) record: the resource lock and the last issued credential.
    lock: ResourceLock,
    lock_version: Option<Version>,
    subj_key: RecordKey,
    /// Whether the request carries documents to encrypt and upload.
    has_documents: bool,
}

/// What the first step found.
enum Start {
    /// Call the platform; `resolve` when an earlier attempt may have reached it.
    Issue { resolve: bool },
    /// The platform accepted it already: only the upload is left.
    Upload,
}

/// One issuance request, checked by the handler and holding its idempotency lease.
pub(crate) struct IssueRequest<'a> {
    pub id: &'a IssuanceId,
    pub caller: &'a Caller,
    pub body: IssueBody,
    pub program: &'a Program,
    pub protector: &'a Protector,
    pub lease: &'a Lease,
    pub idem: &'a Idempotency<'a>,
    pub deadline: Deadline,
    pub lease_until: Timestamp,
}

/// What the request is about, derived once: the record keys and the keyed fingerprints.
struct Subject {
    record_key: RecordKey,
    user_hash: IdHash,
    digest: DocumentDigest,
    lock_key: RecordKey,
    has_documents: bool,
}

/// What step 1 read: the issuance record, if any, and the (user, program) lock.
struct Found {
    existing: Option<Record>,
    lock: ResourceLock,
    lock_version: Option<Version>,
}

/// What step 1 decided.
enum Plan {
    /// The platform accepted this issuance already: answer from the record, call nothing.
    Answer(Issuance),
    /// Take the record (create it, or replace it at `expected`) and go on with `start`.
    Take {
        issuance: Issuance,
        expected: Option<Version>,
        start: Start,
    },
}

/// Issues the credential of `request` (docs/architecture.md §5): read, take, call, persist,
/// upload, commit — each step leaving a state a retry or the reconciler can finish.
pub(crate) async fn issue(
    request: IssueRequest<'_>,
    deps: &IssueDeps,
) -> Result<Response<Body>, ApiError> {
    let subject = Subject::of(&request)?;
    let found = read_state(&subject, deps).await?;
    let now = deps.clock.now();
    if let Some(until) = found.lock.held_by_other(request.id, now) {
        // AC-112: one issuance job per (user, program) at a time, whatever its key.
        return Err(ApiError::new(
            ErrorType::Conflict,
            "another issuance for this user and program is in progress; retry later",
        )
        .with_retry_after(until.since(now).as_secs().max(1)));
    }
    match plan(&request, &subject, &found, now)? {
        Plan::Answer(earlier) => {
            let response = accepted_response(request.id, &earlier);
            request
                .idem
                .complete(request.lease, &response)
                .await
                .map_err(|e| e.to_api_error())?;
            Ok(Reply::json(202, &response.body).build())
        }
        Plan::Take {
            issuance,
            expected,
            start,
        } => {
            let job = take(&request, subject, found, issuance, expected, deps).await?;
            job.run(start, request.body).await
        }
    }
}

impl Subject {
    fn of(request: &IssueRequest<'_>) -> Result<Self, ApiError> {
        let user_hash = request.protector.hash(request.body.user.email.expose());
        let lock_key = subject_key(&user_hash, &request.program.id)
            .map_err(|e| internal("bad subject key", e))?;
        Ok(Self {
            record_key: request
                .id
                .record_key()
                .map_err(|e| internal("bad record key", e))?,
            digest: subject_digest(request.protector, &request.body.credential_subject),
            user_hash,
            lock_key,
            has_documents: request
                .body
                .sensitive_data
                .as_ref()
                .is_some_and(|d| !d.is_empty()),
        })
    }
}

/// Step 1: the issuance record and the (user, program) lock, read together.
async fn read_state(subject: &Subject, deps: &IssueDeps) -> Result<Found, ApiError> {
    let existing = deps
        .store
        .get(&subject.record_key)
        .await
        .map_err(|e| internal("cannot read the issuance record", e))?;
    let lock_record = deps
        .store
        .get(&subject.lock_key)
        .await
        .map_err(|e| internal("cannot read the subject record", e))?;
    let (lock, lock_version) = match &lock_record {
        Some(r) => (
            serde_json::from_value::<ResourceLock>(r.data.clone()).unwrap_or_default(),
            Some(r.version),
        ),
        None => (ResourceLock::default(), None),
    };
    Ok(Found {
        existing,
        lock,
        lock_version,
    })
}

/// Step 1, decided: a new record, an earlier one to resume, or an answer from the record.
fn plan(
    request: &IssueRequest<'_>,
    subject: &Subject,
    found: &Found,
    now: Timestamp,
) -> Result<Plan, ApiError> {
    let Some(old) = &found.existing else {
        let on_duplicate = choose_on_duplicate(
            request.body.on_duplicate,
            request.program.on_duplicate,
            found.lock.subject_hash.as_ref(),
            &subject.digest,
        );
        let sealed = request
            .protector
            .seal(&request.body.user.email, subject.record_key.as_str())
            .map_err(|e| internal("cannot seal the user", e))?;
        let issuance = Issuance::pending(
            NewIssuance {
                issuance_id: request.id.clone(),
                caller: request.caller.key_id.clone(),
                owner: Some(request.caller.family.clone()),
                program_id: request.program.id.clone(),
                user_hash: subject.user_hash.clone(),
                user: sealed,
                subject_hash: Fingerprint::from(&subject.digest),
                on_duplicate,
                previous_core_claim_hash: found.lock.core_claim_hash.clone(),
            },
            request.lease_until,
            now,
        );
        return Ok(Plan::Take {
            issuance,
            expected: None,
            start: Start::Issue { resolve: false },
        });
    };
    let earlier: Issuance = serde_json::from_value(old.data.clone())
        .map_err(|e| internal("unreadable issuance record", e))?;
    // The same Idempotency-Key must mean the same issuance, even once the idempotency record
    // itself has been released or has expired. Only its documents are missing: a retry without
    // them is another payload.
    let documents_differ = earlier.core_claim_hash().is_some()
        && matches!(
            earlier.status(),
            IssuanceStatus::UploadPending | IssuanceStatus::Abandoned
        )
        && !subject.has_documents;
    if earlier.user_hash != subject.user_hash
        || !subject.digest.matches(&earlier.subject_hash)
        || earlier.program_id != request.program.id
        || documents_differ
    {
        return Err(ApiError::new(
            ErrorType::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different payload",
        ));
    }
    if matches!(
        earlier.status(),
        IssuanceStatus::WaitOnchain | IssuanceStatus::Issued | IssuanceStatus::TimedOut
    ) {
        return Ok(Plan::Answer(earlier));
    }
    let start = if earlier.core_claim_hash().is_some() {
        Start::Upload
    } else {
        // It may have reached the platform: resolve before anything else.
        Start::Issue { resolve: true }
    };
    Ok(Plan::Take {
        issuance: earlier.leased(request.lease_until, now),
        expected: Some(old.version),
        start,
    })
}

/// Step 2: the record and the lock taken in one atomic write, before any platform call.
async fn take<'a>(
    request: &IssueRequest<'a>,
    subject: Subject,
    found: Found,
    issuance: Issuance,
    expected: Option<Version>,
    deps: &'a IssueDeps,
) -> Result<Job<'a>, ApiError> {
    let id = request.id;
    let issuance_write = match expected {
        None => Write::Create(to_record(id, &issuance, deps.config.shards)?),
        Some(v) => Write::Replace {
            record: to_record(id, &issuance, deps.config.shards)?,
            expected: v,
        },
    };
    let lock_write = lock_write(
        &subject.lock_key,
        found.lock.clone().taken(id, request.lease_until),
        found.lock_version,
    )?;
    let version = version_after(&issuance_write);
    let lock_version = version_after(&lock_write);
    deps.store
        .write_all(vec![issuance_write, lock_write])
        .await
        .map_err(|e| conflict_or_internal("cannot take the issuance record and its lock", e))?;
    Ok(Job {
        id,
        program: request.program,
        deps,
        idem: request.idem,
        lease: request.lease,
        deadline: request.deadline,
        issuance,
        version,
        lock: found.lock,
        lock_version: Some(lock_version),
        subj_key: subject.lock_key,
        has_documents: subject.has_documents,
    })
}

fn lock_write(
    key: &shared::store::RecordKey,
    lock: ResourceLock,
    version: Option<Version>,
) -> Result<Write, ApiError> {
    let data = serde_json::to_value(&lock).map_err(|e| internal("cannot encode the lock", e))?;
    let record = NewRecord::new(key.clone(), data);
    Ok(match version {
        None => Write::Create(record),
        Some(expected) => Write::Replace { record, expected },
    })
}

fn accepted_response(id: &IssuanceId, issuance: &Issuance) -> StoredResponse {
    let mut body = json!({
        "issuanceId": id.as_str(),
        "status": issuance.status(),
        "coreClaimHash": issuance.core_claim_hash(),
    });
    if let (Some(storage), Some(map)) = (issuance.storage_id(), body.as_object_mut()) {
        map.insert("storageId".into(), json!(storage));
    }
    StoredResponse { status: 202, body }
}

impl Job<'_> {
    /// Steps 3 and 4: the platform call with its answer persisted before any further call, the
    /// upload, and the final write.
    async fn run(mut self, start: Start, body: IssueBody) -> Result<Response<Body>, ApiError> {
        let email = body.user.email.expose().as_str();
        if let Start::Issue { resolve } = start {
            let request = IssueOnBehalf {
                issuer_did: self.deps.config.issuer_did.clone(),
                credential_id: self.program.id.to_string(),
                credential_subject: body.credential_subject,
                on_duplicate: self.issuance.on_duplicate,
            };
            let answer = self.call_platform(email, request, resolve).await?;
            // Step 3: the platform's answer is persisted before any further call.
            let upload = self.has_documents && self.program.cak.is_some();
            let next = self
                .issuance
                .clone()
                .accepted(answer, upload, self.deps.clock.now())
                .map_err(|e| internal("invalid transition", e))?;
            if !upload {
                return self.commit(next).await;
            }
            self.save(next).await?;
        }
        // Step 4: encrypt to the stored CAK key, upload, forget the plaintext.
        let Some(data) = body.sensitive_data.filter(|d| !d.is_empty()) else {
            return Err(ApiError::new(
                ErrorType::IdempotencyKeyReused,
                "this Idempotency-Key was used with a different payload",
            ));
        };
        let stored = self.upload(email, data).await?;
        let next = self
            .issuance
            .clone()
            .uploaded(stored, self.deps.clock.now())
            .map_err(|e| internal("invalid transition", e))?;
        self.commit(next).await
    }

    /// Replaces the issuance record at the version this request last wrote.
    async fn save(&mut self, next: Issuance) -> Result<(), ApiError> {
        let write = Write::Replace {
            record: to_record(self.id, &next, self.deps.config.shards)?,
            expected: self.version,
        };
        self.version = version_after(&write);
        self.deps
            .store
            .write(write)
            .await
            .map_err(|e| conflict_or_internal("cannot record the platform's answer", e))?;
        self.issuance = next;
        Ok(())
    }

    /// Calls `issue-on-behalf`, never revoking what an earlier attempt may have issued.
    ///
    /// When an earlier attempt (of this request, or of an earlier request with this key) may
    /// have reached the platform without its answer reaching us, the platform is asked with
    /// `ignore` first: a new credential means the earlier attempt did nothing; an existing one
    /// other than the credential the user held before this issuance began is the one the earlier
    /// attempt created, and is adopted. Only when the existing one *is* the earlier credential —
    /// the earlier attempt did nothing — is a `revoke` sent again.
    async fn call_platform(
        &mut self,
        email: &str,
        mut request: IssueOnBehalf,
        resolve: bool,
    ) -> Result<Accepted, ApiError> {
        let intent = request.on_duplicate;
        let mut unconfirmed = resolve;
        if resolve {
            request.on_duplicate = OnDuplicate::Ignore;
        }
        loop {
            let answer = self
                .deps
                .platform
                .issue_on_behalf(email, &request, self.deadline)
                .await;
            let accepted = match answer {
                // A platform that answers `ignore` with a 200 naming the existing credential
                // (one reading of its documents) is told apart the same way as a 409.
                Ok(issued)
                    if (unconfirmed || issued.after_unconfirmed)
                        && intent == OnDuplicate::Revoke
                        && self.issuance.previous_core_claim_hash()
                            == Some(issued.core_claim_hash.as_str()) =>
                {
                    request.on_duplicate = OnDuplicate::Revoke;
                    unconfirmed = false;
                    continue;
                }
                Ok(issued) => Accepted {
                    core_claim_hash: issued.core_claim_hash,
                    user_uuid: Some(issued.user_uuid),
                    cak_public_key: issued.cak_public_key,
                },
                Err(PlatformError::Duplicate {
                    core_claim_hash,
                    cak_public_key,
                    user_uuid,
                    after_unconfirmed,
                }) => {
                    let ambiguous = unconfirmed || after_unconfirmed;
                    let untouched =
                        self.issuance.previous_core_claim_hash() == Some(core_claim_hash.as_str());
                    if ambiguous && intent == OnDuplicate::Revoke && untouched {
                        // The earlier attempt did nothing: the user still holds the old one.
                        tracing::info!(
                            issuance_id = self.id.as_str(),
                            "the unconfirmed attempt had no effect; revoking as asked"
                        );
                        request.on_duplicate = OnDuplicate::Revoke;
                        unconfirmed = false;
                        continue;
                    }
                    tracing::info!(
                        issuance_id = self.id.as_str(),
                        resolved = ambiguous,
                        "the platform holds this credential already; adopting it"
                    );
                    Accepted {
                        core_claim_hash,
                        user_uuid,
                        cak_public_key,
                    }
                }
                Err(e) if e.is_transient() => {
                    // The record stays PENDING with its lease: a retry with the same key (or,
                    // after the lease, the reconciler) resolves it.
                    return Err(platform_error(e));
                }
                Err(e) => {
                    let now = self.deps.clock.now();
                    if let Ok(failed) = self
                        .issuance
                        .clone()
                        .failed(format!("issue-on-behalf failed: {}", kind(&e)), now)
                    {
                        let released = self.release_lock_writes(&failed);
                        if let Err(store) = self.deps.store.write_all(released).await {
                            tracing::error!(error = %store, issuance_id = self.id.as_str(),
                                "could not mark the issuance failed");
                        }
                    }
                    return Err(platform_error(e));
                }
            };
            // The record says what was finally sent.
            self.issuance.on_duplicate = request.on_duplicate;
            return Ok(accepted);
        }
    }

    /// The writes that mark the record `failed` and free the lock (its hashes unchanged).
    fn release_lock_writes(&self, failed: &Issuance) -> Vec<Write> {
        let mut writes = Vec::new();
        if let Ok(record) = to_record(self.id, failed, self.deps.config.shards) {
            writes.push(Write::Replace {
                record,
                expected: self.version,
            });
        }
        let mut lock = self.lock.clone();
        lock.held_by = None;
        lock.held_until = None;
        if let Ok(w) = lock_write(&self.subj_key, lock, self.lock_version) {
            writes.push(w);
        }
        writes
    }

    /// Encrypts `data` to the CAK key the platform gave (persisted in the record) and uploads
    /// it. A failure leaves the record `UPLOAD_PENDING` and answers 503 with `Retry-After`: the
    /// documents are never reported stored unless the platform said so.
    ///
    /// The plaintext is wiped as soon as it is no longer needed: the parsed `sensitiveData` once
    /// encoded ([`shared::redact::wipe_json`]), its encoding once encrypted ([`Zeroizing`]). The raw request body and
    /// the runtime's own copy of the event are outside this function's reach and are freed
    /// without being wiped when the invocation ends.
    async fn upload(&self, email: &str, mut data: Map<String, Value>) -> Result<String, ApiError> {
        let (Some(curve), Some(hex), Some(hash)) = (
            self.program.cak,
            self.issuance.cak_public_key().map(str::to_owned),
            self.issuance.core_claim_hash().map(str::to_owned),
        ) else {
            return Err(ApiError::new(
                ErrorType::Conflict,
                "the platform holds this credential without a CAK key to encrypt sensitiveData to",
            ));
        };
        let key = PublicKey::from_hex(curve, &hex)
            .map_err(|e| internal("the platform sent an unusable CAK", e))?;
        let plaintext = Zeroizing::new(
            serde_json::to_vec(&data).map_err(|e| internal("cannot encode sensitiveData", e))?,
        );
        data.values_mut().for_each(shared::redact::wipe_json);
        drop(data);
        let ciphertext =
            encrypt(&key, &plaintext).map_err(|e| internal("CAK encryption failed", e))?;
        drop(plaintext);
        match self
            .deps
            .platform
            .upload_ciphertext(email, &hash, &ciphertext, self.deadline)
            .await
        {
            Ok(stored) => Ok(stored.0),
            Err(e) => {
                tracing::warn!(
                    issuance_id = self.id.as_str(),
                    error = %kind(&e),
                    "the encrypted sensitive data could not be uploaded; the issuance stays UPLOAD_PENDING"
                );
                Err(match e {
                    PlatformError::RateLimited { retry_after } => ApiError::new(
                        ErrorType::RateLimited,
                        "the credential platform is rate limiting; retry with the same Idempotency-Key",
                    )
                    .with_retry_after(retry_after.map_or(5, |d| d.as_secs().max(1))),
                    _ => ApiError::new(
                        ErrorType::UpstreamUnavailable,
                        "the credential was issued but its sensitive data is not stored yet; retry with the same Idempotency-Key and body",
                    )
                    .with_retry_after(2),
                })
            }
        }
    }

    /// The last write: the record queued for the poller, the stored response and the released
    /// lock remembering what was issued, all at once.
    async fn commit(&mut self, next: Issuance) -> Result<Response<Body>, ApiError> {
        let hash = next.core_claim_hash().unwrap_or_default().to_owned();
        let response = accepted_response(self.id, &next);
        let issuance_write = Write::Replace {
            record: to_record(self.id, &next, self.deps.config.shards)?,
            expected: self.version,
        };
        let lock = self
            .lock
            .clone()
            .released(self.id, &next.subject_hash, &hash);
        let lock_w = lock_write(&self.subj_key, lock, self.lock_version)?;
        let writes = vec![
            issuance_write.clone(),
            self.idem.completion(self.lease, &response),
            lock_w,
        ];
        match self.deps.store.write_all(writes).await {
            Ok(()) => {}
            Err(StoreError::BatchConditionFailed { index: 2 }) => {
                // Our lease on the lock ran out and another issuance took it; ours still stands.
                self.deps
                    .store
                    .write_all(vec![
                        issuance_write,
                        self.idem.completion(self.lease, &response),
                    ])
                    .await
                    .map_err(|e| conflict_or_internal("cannot record the issuance", e))?;
            }
            Err(e) => return Err(conflict_or_internal("cannot record the issuance", e)),
        }
        tracing::info!(
            issuance_id = self.id.as_str(),
            program = self.program.id.as_str(),
            core_claim_hash = hash.as_str(),
            on_duplicate = ?next.on_duplicate,
            cak = next.storage_id().is_some(),
            "credential issued on behalf of a user"
        );
        self.deps.recorder.emit(
            "Issuances",
            shared::telemetry::Unit::Count,
            1.0,
            &[("program", self.program.id.as_str())],
        );
        Ok(Reply::json(202, &response.body).build())
    }
}

fn conflict_or_internal(what: &str, e: StoreError) -> ApiError {
    if e.is_condition_failure() {
        tracing::warn!(error = %e, "{what}");
        ApiError::new(
            ErrorType::Conflict,
            "the issuance changed concurrently; retry with the same Idempotency-Key",
        )
    } else {
        internal(what, e)
    }
}

/// What a failed platform call is called in a record's `reason` (answered by
/// `GET /v1/credentials/{id}`) and in the logs: fixed words and numbers only, never the
/// platform's own message, which may quote the request (an e-mail address, a subject value).
fn kind(e: &PlatformError) -> String {
    match e {
        PlatformError::Rejected { status, .. } => format!("rejected with {status}"),
        PlatformError::NotFound { .. } => "not found".into(),
        PlatformError::Unauthorized { status, .. } => format!("unauthorized ({status})"),
        PlatformError::Unavailable { attempts, .. } => {
            format!("unavailable after {attempts} attempts")
        }
        PlatformError::RateLimited { .. } => "rate limited".into(),
        PlatformError::Duplicate { .. } => "the credential already exists".into(),
        PlatformError::Protocol(_) => "an answer that could not be read".into(),
        PlatformError::Token(_) => "our Partner JWT could not be minted".into(),
        PlatformError::Config(_) => "the platform client is misconfigured".into(),
    }
}

fn platform_error(e: PlatformError) -> ApiError {
    match e {
        PlatformError::RateLimited { retry_after } => ApiError::new(
            ErrorType::RateLimited,
            "the credential platform is rate limiting; retry later",
        )
        .with_retry_after(retry_after.map_or(5, |d| d.as_secs().max(1))),
        other => {
            tracing::error!(error = %kind(&other), "the credential platform call failed");
            ApiError::new(ErrorType::UpstreamUnavailable, "").with_retry_after(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reason_never_carries_the_platforms_own_text() {
        let quoted = "unexpected member near \"bob@example.com\" in {\"fullName\":\"Bob\"}";
        let errors = [
            PlatformError::Protocol(quoted.into()),
            PlatformError::Token(quoted.into()),
            PlatformError::Config(quoted.into()),
            PlatformError::Rejected {
                status: 400,
                message: quoted.into(),
                request_id: None,
            },
        ];
        for e in &errors {
            let reason = kind(e);
            assert!(
                !reason.contains("bob@example.com") && !reason.contains("Bob"),
                "{reason}"
            );
        }
    }
}
