//! `POST /v1/credentials`: the issuance flow.

use std::time::Duration;

use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shared::auth::Permission;
use shared::auth::request::{header, json_body, path_and_query, signed_parts};
use shared::clock::Timestamp;
use shared::ecies::{PublicKey, encrypt};
use shared::error::{ApiError, ErrorType};
use shared::http::Reply;
use shared::idempotency::{
    Begin, Idempotency, IdempotencyKey, Lease, StoredResponse, payload_hash,
};
use shared::issuance::{
    Issuance, IssuanceId, IssuanceStatus, poll_queue, subject_hash, subject_key,
};
use shared::platform::{Deadline, IssueOnBehalf, OnDuplicate, PlatformError};
use shared::programs::{DuplicatePolicy, Program};
use shared::redact::Pii;
use shared::store::{NewRecord, Record, StoreError, Write};
use zeroize::Zeroizing;

use crate::IssueDeps;

/// How long after acceptance the first status poll is due.
const FIRST_POLL_AFTER: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IssueBody {
    credential_id: String,
    user: User,
    credential_subject: Value,
    #[serde(default)]
    sensitive_data: Option<Map<String, Value>>,
    #[serde(default)]
    on_duplicate: Option<OnDuplicate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    email: Pii<String>,
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "{what}");
    ApiError::internal()
}

/// Handles `POST /v1/credentials`.
pub async fn create(req: &Request, deps: &IssueDeps) -> Result<Response<Body>, ApiError> {
    let pq = path_and_query(req);
    let caller = deps
        .verifier
        .verify(&signed_parts(req, &pq), Permission::CredentialsWrite)
        .await
        .map_err(|f| f.to_api_error())?;
    let key = header(req, "idempotency-key")
        .ok_or_else(|| {
            ApiError::new(
                ErrorType::ValidationFailed,
                "the Idempotency-Key header is required",
            )
        })
        .and_then(IdempotencyKey::parse)?;
    let raw: Value = json_body(req, deps.config.max_body_bytes)?;
    let hash = payload_hash("POST", "/v1/credentials", &raw);
    // Errors name the path, never the value (it may be personal data).
    let body: IssueBody = serde_path_to_error::deserialize(raw).map_err(|e| {
        ApiError::new(
            ErrorType::ValidationFailed,
            format!("the body does not match the expected shape at {}", e.path()),
        )
    })?;
    let program = deps.programs.get(&body.credential_id).ok_or_else(|| {
        ApiError::new(
            ErrorType::NotFound,
            "no issuance program with this credentialId",
        )
    })?;
    check(&body, program)?;

    let now = deps.clock.now();
    let lease_until = req
        .lambda_context_ref()
        .and_then(|c| i64::try_from(c.deadline).ok())
        .map_or_else(
            || now.plus(deps.config.default_lease),
            Timestamp::from_millis,
        );
    let idem = Idempotency::new(
        deps.store.as_ref(),
        &deps.clock,
        deps.config.idempotency_window,
    );
    let caller_id = caller.key_id.as_str().to_owned();
    let lease = match idem.begin(&caller_id, &key, &hash, lease_until).await {
        Ok(Begin::Replay(stored)) => {
            return Ok(Reply::json(stored.status, &stored.body)
                .header(
                    lambda_http::http::HeaderName::from_static("idempotent-replayed"),
                    "true",
                )
                .build());
        }
        Ok(Begin::Proceed(lease)) => lease,
        Err(e) => return Err(e.to_api_error()),
    };
    let deadline = Deadline::after(
        lease_until
            .since(now)
            .saturating_sub(Duration::from_millis(500)),
    );
    let id = IssuanceId::derive(&caller_id, key.as_str());
    match issue(
        &id, &caller_id, body, program, &lease, &idem, deadline, deps,
    )
    .await
    {
        Ok(response) => Ok(response),
        Err(e) => {
            if let Err(release) = idem.release(&lease).await {
                tracing::error!(error = %release, "could not release the idempotency key");
            }
            Err(e)
        }
    }
}

/// Input checks beyond the schema: sensitive data only where the program encrypts it, only its
/// declared fields, and a plausible e-mail address.
fn check(body: &IssueBody, program: &Program) -> Result<(), ApiError> {
    if let Err(violations) = program.validate(&body.credential_subject) {
        return Err(ApiError::new(
            ErrorType::ValidationFailed,
            "credentialSubject does not satisfy the program's schema",
        )
        .with_details(json!({"violations": violations})));
    }
    let email = body.user.email.expose();
    if email.len() > 254 || !email.contains('@') || email.chars().any(char::is_whitespace) {
        return Err(ApiError::new(
            ErrorType::ValidationFailed,
            "user.email is not an e-mail address",
        ));
    }
    if let Some(data) = body.sensitive_data.as_ref().filter(|d| !d.is_empty()) {
        if program.cak.is_none() {
            return Err(ApiError::new(
                ErrorType::ValidationFailed,
                "this program takes no sensitiveData",
            ));
        }
        let unknown: Vec<String> = data
            .keys()
            .filter(|k| !program.sensitive_fields.contains(k))
            .map(|k| format!("/sensitiveData/{k}"))
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::new(
                ErrorType::ValidationFailed,
                "sensitiveData has fields the program does not declare",
            )
            .with_details(json!({"pointers": unknown})));
        }
    }
    Ok(())
}

fn choose_on_duplicate(
    asked: Option<OnDuplicate>,
    policy: DuplicatePolicy,
    previous: Option<&str>,
    now: &str,
) -> OnDuplicate {
    match (asked, policy) {
        (Some(o), _) => o,
        (None, DuplicatePolicy::Ignore) => OnDuplicate::Ignore,
        (None, DuplicatePolicy::Revoke) => OnDuplicate::Revoke,
        // Unchanged data keeps the credential; changed or unknown data replaces it.
        (None, DuplicatePolicy::Auto) if previous == Some(now) => OnDuplicate::Ignore,
        (None, DuplicatePolicy::Auto) => OnDuplicate::Revoke,
    }
}

fn to_record(id: &IssuanceId, issuance: &Issuance) -> Result<NewRecord, ApiError> {
    let key = id.record_key().map_err(|e| internal("bad record key", e))?;
    let data =
        serde_json::to_value(issuance).map_err(|e| internal("cannot encode the issuance", e))?;
    let mut record = NewRecord::new(key, data);
    if issuance.status == IssuanceStatus::WaitOnchain {
        record = record.due_at(poll_queue(), issuance.updated_at.plus(FIRST_POLL_AFTER));
    }
    Ok(record)
}

#[allow(clippy::too_many_arguments)]
async fn issue(
    id: &IssuanceId,
    caller: &str,
    body: IssueBody,
    program: &Program,
    lease: &Lease,
    idem: &Idempotency<'_>,
    deadline: Deadline,
    deps: &IssueDeps,
) -> Result<Response<Body>, ApiError> {
    let now = deps.clock.now();
    let protector = deps
        .data_keys
        .protector()
        .await
        .map_err(|e| internal("cannot load the data keys", e))?;
    let record_key = id.record_key().map_err(|e| internal("bad record key", e))?;
    let user_hash = protector.hash(body.user.email.expose());
    let sealed = protector
        .seal(&body.user.email, record_key.as_str())
        .map_err(|e| internal("cannot seal the user", e))?;
    let subject = subject_hash(&body.credential_subject);

    // The last subject issued to this user for this program decides an automatic onDuplicate;
    // it is only read (and kept up to date) when that decision is needed.
    let automatic = body.on_duplicate.is_none() && program.on_duplicate == DuplicatePolicy::Auto;
    let subj_key =
        subject_key(&user_hash, &program.id).map_err(|e| internal("bad subject key", e))?;
    let previous = if automatic {
        deps.store
            .get(&subj_key)
            .await
            .map_err(|e| internal("cannot read the subject record", e))?
    } else {
        None
    };
    let previous_hash = previous
        .as_ref()
        .and_then(|r| r.data["subjectHash"].as_str().map(str::to_owned));
    let mut on_duplicate = choose_on_duplicate(
        body.on_duplicate,
        program.on_duplicate,
        previous_hash.as_deref(),
        &subject,
    );

    // Write the record before calling the platform. If it exists, an earlier attempt with this
    // key died or failed after perhaps reaching the platform: never revoke what it may have
    // issued, adopt it instead.
    let mut issuance = Issuance {
        issuance_id: id.clone(),
        caller: caller.to_owned(),
        program_id: program.id.clone(),
        user_hash: user_hash.clone(),
        user: sealed,
        subject_hash: subject.clone(),
        on_duplicate: String::new(),
        status: IssuanceStatus::Pending,
        core_claim_hash: None,
        storage_id: None,
        reason: None,
        created_at: now,
        updated_at: now,
        wait_onchain_since: None,
        onchain_at: None,
        poll_attempts: 0,
        last_polled_at: None,
        alerted_at: None,
    };
    let set_on_duplicate = |i: &mut Issuance, o: OnDuplicate| {
        i.on_duplicate = match o {
            OnDuplicate::Ignore => "ignore".into(),
            OnDuplicate::Revoke => "revoke".into(),
        };
    };
    set_on_duplicate(&mut issuance, on_duplicate);
    let version = match deps
        .store
        .write(Write::Create(to_record(id, &issuance)?))
        .await
    {
        Ok(v) => v,
        Err(StoreError::AlreadyExists {
            existing: Some(old),
            ..
        }) => {
            let earlier: Issuance = serde_json::from_value(old.data.clone())
                .map_err(|e| internal("unreadable issuance record", e))?;
            // The same Idempotency-Key must mean the same issuance, even once the idempotency
            // record itself has been released or has expired.
            if earlier.user_hash != user_hash
                || earlier.subject_hash != subject
                || earlier.program_id != program.id
            {
                return Err(ApiError::new(
                    ErrorType::IdempotencyKeyReused,
                    "this Idempotency-Key was used with a different payload",
                ));
            }
            // The platform accepted it already: answer from the record, call nothing.
            if let (
                Some(hash),
                IssuanceStatus::WaitOnchain | IssuanceStatus::Issued | IssuanceStatus::TimedOut,
            ) = (&earlier.core_claim_hash, earlier.status)
            {
                let response = StoredResponse {
                    status: 202,
                    body: json!({"issuanceId": id.as_str(), "status": earlier.status, "coreClaimHash": hash}),
                };
                idem.complete(lease, &response)
                    .await
                    .map_err(|e| e.to_api_error())?;
                return Ok(Reply::json(202, &response.body).build());
            }
            on_duplicate = OnDuplicate::Ignore;
            set_on_duplicate(&mut issuance, on_duplicate);
            issuance.created_at = earlier.created_at;
            deps.store
                .write(Write::Replace {
                    record: to_record(id, &issuance)?,
                    expected: old.version,
                })
                .await
                .map_err(|e| conflict_or_internal("cannot take over the issuance record", e))?
        }
        Err(e) => return Err(internal("cannot write the issuance record", e)),
    };

    let request = IssueOnBehalf {
        issuer_did: deps.config.issuer_did.clone(),
        credential_id: program.id.clone(),
        credential_subject: body.credential_subject,
        on_duplicate,
    };
    let email = body.user.email.expose().as_str();
    let (core_claim_hash, cak) = match deps
        .platform
        .issue_on_behalf(email, &request, deadline)
        .await
    {
        Ok(issued) => (issued.core_claim_hash, issued.cak_public_key),
        Err(PlatformError::Duplicate { core_claim_hash }) => {
            tracing::info!(
                issuance_id = id.as_str(),
                "the platform already holds this credential; adopting it"
            );
            (core_claim_hash, None)
        }
        Err(e) => {
            issuance.status = IssuanceStatus::Failed;
            issuance.reason = Some(format!("issue-on-behalf failed: {}", kind(&e)));
            issuance.updated_at = deps.clock.now();
            if let Ok(record) = to_record(id, &issuance)
                && let Err(store) = deps
                    .store
                    .write(Write::Replace {
                        record,
                        expected: version,
                    })
                    .await
            {
                tracing::error!(error = %store, issuance_id = id.as_str(), "could not mark the issuance failed");
            }
            return Err(platform_error(e));
        }
    };

    // CAK: encrypt the sensitive data to the key the platform gave, upload, forget the plaintext.
    let mut storage_id = None;
    if let Some(data) = body.sensitive_data.filter(|d| !d.is_empty()) {
        match (cak, program.cak) {
            (Some(hex), Some(curve)) => {
                let key = PublicKey::from_hex(curve, &hex)
                    .map_err(|e| internal("the platform sent an unusable CAK", e))?;
                let plaintext = Zeroizing::new(
                    serde_json::to_vec(&data)
                        .map_err(|e| internal("cannot encode sensitiveData", e))?,
                );
                drop(data);
                let ciphertext =
                    encrypt(&key, &plaintext).map_err(|e| internal("CAK encryption failed", e))?;
                drop(plaintext);
                let stored = deps
                    .platform
                    .upload_ciphertext(email, &core_claim_hash, &ciphertext, deadline)
                    .await
                    .map_err(platform_error)?;
                storage_id = Some(stored.0);
            }
            _ => {
                tracing::warn!(
                    issuance_id = id.as_str(),
                    "no CAK key for this credential: sensitiveData not uploaded"
                );
                issuance.reason = Some("sensitiveData not uploaded: the platform returned an existing credential without a CAK key".into());
            }
        }
    }

    let done = deps.clock.now();
    issuance.status = IssuanceStatus::WaitOnchain;
    issuance.core_claim_hash = Some(core_claim_hash.clone());
    issuance.storage_id = storage_id;
    issuance.updated_at = done;
    issuance.wait_onchain_since = Some(done);
    let response = StoredResponse {
        status: 202,
        body: json!({"issuanceId": id.as_str(), "status": "WAIT_ONCHAIN", "coreClaimHash": core_claim_hash}),
    };
    let subject_record = NewRecord::new(
        subj_key,
        json!({"subjectHash": subject, "coreClaimHash": core_claim_hash, "issuanceId": id.as_str()}),
    );
    let issuance_write = Write::Replace {
        record: to_record(id, &issuance)?,
        expected: version,
    };
    let mut writes = vec![issuance_write.clone(), idem.completion(lease, &response)];
    if automatic {
        writes.push(match &previous {
            Some(Record { version, .. }) => Write::Replace {
                record: subject_record,
                expected: *version,
            },
            None => Write::Create(subject_record),
        });
    }
    // One atomic write: the record queued for the poller, the stored response, the subject hash.
    match deps.store.write_all(writes).await {
        Ok(()) => {}
        Err(StoreError::BatchConditionFailed { index: 2 }) => {
            // Another issuance for this user and program updated the subject hash first; ours
            // still stands.
            deps.store
                .write_all(vec![issuance_write, idem.completion(lease, &response)])
                .await
                .map_err(|e| conflict_or_internal("cannot record the issuance", e))?;
        }
        Err(e) => return Err(conflict_or_internal("cannot record the issuance", e)),
    }
    tracing::info!(
        issuance_id = id.as_str(),
        program = program.id.as_str(),
        core_claim_hash = core_claim_hash.as_str(),
        on_duplicate = issuance.on_duplicate.as_str(),
        cak = issuance.storage_id.is_some(),
        "credential issued on behalf of a user"
    );
    deps.recorder.emit(
        "Issuances",
        shared::telemetry::Unit::Count,
        1.0,
        &[("program", program.id.as_str())],
    );
    Ok(Reply::json(202, &response.body).build())
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

fn kind(e: &PlatformError) -> String {
    match e {
        PlatformError::Rejected { status, .. } => format!("rejected with {status}"),
        PlatformError::NotFound { .. } => "not found".into(),
        PlatformError::Unauthorized { status, .. } => format!("unauthorized ({status})"),
        PlatformError::Unavailable { attempts, .. } => {
            format!("unavailable after {attempts} attempts")
        }
        PlatformError::RateLimited { .. } => "rate limited".into(),
        other => other.to_string().chars().take(120).collect(),
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
            ApiError::new(ErrorType::UpstreamUnavailable, "")
        }
    }
}
