//! `POST /v1/credentials`: authentication, idempotency and input checks; the issuance itself
//! is [`crate::flow`].

use std::time::Duration;

use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shared::auth::Permission;
use shared::auth::request::{header, json_body, path_and_query, signed_parts};
use shared::clock::Timestamp;
use shared::error::{ApiError, ErrorType};
use shared::http::Reply;
use shared::idempotency::{Begin, Idempotency, IdempotencyKey, payload_digest};
use shared::issuance::IssuanceId;
use shared::pii::{DocumentDigest, Fingerprint};
use shared::platform::{Deadline, OnDuplicate};
use shared::programs::{DuplicatePolicy, Program};
use shared::redact::Pii;

use crate::IssueDeps;
use crate::flow::{IssueRequest, issue};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct IssueBody {
    pub(crate) credential_id: String,
    pub(crate) user: User,
    pub(crate) credential_subject: Value,
    #[serde(default)]
    pub(crate) sensitive_data: Option<Map<String, Value>>,
    #[serde(default)]
    pub(crate) on_duplicate: Option<OnDuplicate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct User {
    pub(crate) email: Pii<String>,
}

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
    let protector = deps.data_keys.protector().await.map_err(|e| {
        tracing::error!(error = %shared::error::chain(&e), "cannot load the data keys");
        ApiError::internal()
    })?;
    let hash = payload_digest(&protector, "POST", "/v1/credentials", &raw);
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
    if program.require_mfa {
        step_up(req, &caller, &body, deps).await?;
    }

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
    let request = IssueRequest {
        id: &id,
        caller: &caller,
        body,
        program,
        protector: &protector,
        lease: &lease,
        idem: &idem,
        deadline,
        lease_until,
    };
    match issue(request, deps).await {
        Ok(response) => Ok(response),
        Err(e) => {
            if let Err(release) = idem.release(&lease).await {
                tracing::error!(error = %release, "could not release the idempotency key");
            }
            Err(e)
        }
    }
}

/// The step-up MFA check of a `requireMfa` program (see `shared::auth::step_up`): refusals are
/// logged and counted like every authentication failure.
async fn step_up(
    req: &Request,
    caller: &shared::auth::Caller,
    body: &IssueBody,
    deps: &IssueDeps,
) -> Result<(), ApiError> {
    let Some(verifier) = &deps.step_up else {
        // Refused at start: a program requires MFA only where step-up is configured.
        return Err(ApiError::internal());
    };
    let assertion = header(req, shared::auth::step_up::STEP_UP_HEADER);
    match verifier.verify(assertion, body.user.email.expose()).await {
        Ok(()) => Ok(()),
        Err(failure) => {
            let ip = shared::auth::request::source_ip(req).map(|ip| ip.to_string());
            deps.recorder.auth_failure(
                failure.reason(),
                Some(caller.key_id.as_str()),
                "POST /v1/credentials",
                ip.as_deref(),
            );
            Err(failure.to_api_error())
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

pub(crate) fn choose_on_duplicate(
    asked: Option<OnDuplicate>,
    policy: DuplicatePolicy,
    previous: Option<&Fingerprint>,
    now: &DocumentDigest,
) -> OnDuplicate {
    match (asked, policy) {
        (Some(o), _) => o,
        (None, DuplicatePolicy::Ignore) => OnDuplicate::Ignore,
        (None, DuplicatePolicy::Revoke) => OnDuplicate::Revoke,
        // Unchanged data keeps the credential; changed or unknown data replaces it.
        (None, DuplicatePolicy::Auto) if previous.is_some_and(|p| now.matches(p)) => {
            OnDuplicate::Ignore
        }
        (None, DuplicatePolicy::Auto) => OnDuplicate::Revoke,
    }
}
