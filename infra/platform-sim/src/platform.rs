//! The platform routes: issue-on-behalf, status and ciphertext uploads.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::http::{
    ApiError, Seen, body_or_error, error_response, parse_json, partner_token, with_seen,
};
use crate::state::{NewIssue, OnDuplicate, lock};

/// The scope every platform route requires by default ([`crate::SimConfig::issue_scope`]).
pub const ISSUE_SCOPE: &str = "issue";

/// Verifies the Partner JWT, then runs `inner` with the claims; records what was seen.
async fn authorized<F>(app: &App, headers: &HeaderMap, inner: F) -> Response
where
    F: FnOnce(&Value) -> Result<Response, ApiError>,
{
    match app
        .verifier
        .verify(partner_token(headers), &app.config.issue_scope)
        .await
    {
        Err(failure) => {
            tracing::info!(reason = %failure.reason, "partner JWT refused");
            let seen = Seen {
                claims: failure.claims,
                auth_error: Some(failure.reason.clone()),
                fault: false,
            };
            with_seen(
                error_response(
                    StatusCode::UNAUTHORIZED,
                    format!("unauthorized: {}", failure.reason),
                ),
                seen,
            )
        }
        Ok(claims) => {
            let response = inner(&claims).unwrap_or_else(IntoResponse::into_response);
            with_seen(
                response,
                Seen {
                    claims: Some(claims),
                    ..Seen::default()
                },
            )
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IssueBody {
    issuer_did: String,
    credential_id: String,
    credential_subject: Map<String, Value>,
    #[serde(default)]
    on_duplicate: Option<OnDuplicate>,
}

/// `POST /credentials/issue-on-behalf`.
pub async fn issue_on_behalf(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    authorized(&app, &headers, |claims| {
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized: email claim required to issue on behalf of a user",
                )
            })?;
        let body: IssueBody = parse_json(body)?;
        if body.issuer_did.trim().is_empty() {
            return Err(ApiError::bad_request("issuerDid must not be empty"));
        }
        let program = app.programs.get(&body.credential_id).ok_or_else(|| {
            ApiError::not_found(format!("unknown credentialId {:?}", body.credential_id))
        })?;
        let request = NewIssue {
            email: email.to_owned(),
            program: program.id.clone(),
            issuer_did: body.issuer_did,
            subject: body.credential_subject,
            on_duplicate: body.on_duplicate.unwrap_or_default(),
            cak_curve: program.cak.then_some(program.curve),
        };
        let issued = lock(&app.store).issue(app.config.seed, request, app.clock.now());
        match issued {
            Ok(credential) => Ok((StatusCode::OK, Json(issued_doc(&credential))).into_response()),
            Err(existing) if app.config.ignore_answers_existing => {
                Ok((StatusCode::OK, Json(issued_doc(&existing))).into_response())
            }
            // `ignore` "returns the existing credential": a 409 that names it, with its CAK key.
            Err(existing) => {
                let mut error = ApiError::conflict(
                    "a credential of this program is already issued to this user (onDuplicate: ignore)",
                );
                if let Value::Object(doc) = issued_doc(&existing) {
                    for (name, value) in doc {
                        error = error.with(&name, value);
                    }
                }
                Err(error)
            }
        }
    })
    .await
}

/// The answer naming a credential: `{coreClaimHash, credentialId, userUuid}` and, with CAK,
/// `cakPublicKey` and `cakCurve`.
fn issued_doc(credential: &crate::state::Credential) -> Value {
    let mut doc = json!({
        "coreClaimHash": credential.core_claim_hash,
        "credentialId": credential.program,
        "userUuid": credential.user_uuid,
    });
    if let (Some(cak), Some(map)) = (&credential.cak, doc.as_object_mut()) {
        map.insert(
            "cakPublicKey".to_owned(),
            Value::String(cak.public_hex.clone()),
        );
        map.insert("cakCurve".to_owned(), Value::String(cak.curve.to_string()));
    }
    doc
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusQuery {
    core_claim_hash: Option<String>,
}

/// `GET /credentials/status?coreClaimHash=…`.
pub async fn status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Response {
    authorized(&app, &headers, |_claims| {
        let Query(query) = query
            .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
        let hash = query
            .core_claim_hash
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ApiError::bad_request("coreClaimHash query parameter required"))?;
        let store = lock(&app.store);
        let credential = store
            .credential(&hash)
            .ok_or_else(|| ApiError::not_found(format!("unknown coreClaimHash {hash:?}")))?;
        let doc = credential.status_json(
            app.clock.now(),
            app.config.onchain_delay,
            app.config.credential_validity,
            app.config.status_shape,
        );
        Ok(Json(doc).into_response())
    })
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadJson {
    core_claim_hash: String,
    ciphertext: String,
    #[serde(default)]
    encoding: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UploadQuery {
    core_claim_hash: Option<String>,
}

/// `POST /dstorage/ciphertexts`: JSON `{coreClaimHash, ciphertext (base64, or hex with
/// "encoding": "hex")}`, or raw bytes (`application/octet-stream`) with `?coreClaimHash=`.
pub async fn upload_ciphertext(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<UploadQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    authorized(&app, &headers, |_claims| {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
        let (hash, bytes) = if is_json {
            let upload: UploadJson = parse_json(body)?;
            let bytes = match upload.encoding.as_deref() {
                None | Some("base64") => base64::engine::general_purpose::STANDARD
                    .decode(upload.ciphertext.trim())
                    .map_err(|_| ApiError::bad_request("ciphertext is not valid base64"))?,
                Some("hex") => hex::decode(upload.ciphertext.trim().trim_start_matches("0x"))
                    .map_err(|_| ApiError::bad_request("ciphertext is not valid hex"))?,
                Some(other) => {
                    return Err(ApiError::bad_request(format!("unknown encoding {other:?}")));
                }
            };
            (upload.core_claim_hash, bytes)
        } else {
            let Query(query) = query
                .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
            let hash = query
                .core_claim_hash
                .or_else(|| {
                    headers
                        .get("x-core-claim-hash")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                })
                .ok_or_else(|| {
                    ApiError::bad_request("coreClaimHash required (query or JSON body)")
                })?;
            (hash, body_or_error(body)?.to_vec())
        };
        if bytes.len() < shared::ecies::MIN_CIPHERTEXT_LEN {
            return Err(ApiError::bad_request(format!(
                "not an ECIES ciphertext: {} bytes, at least {} expected",
                bytes.len(),
                shared::ecies::MIN_CIPHERTEXT_LEN
            )));
        }
        let mut store = lock(&app.store);
        let credential = store
            .credential(&hash)
            .ok_or_else(|| ApiError::not_found(format!("unknown coreClaimHash {hash:?}")))?;
        if credential.cak.is_none() {
            return Err(ApiError::conflict("this credential's program has no CAK"));
        }
        let size = bytes.len();
        let id = store.store_ciphertext(app.config.seed, hash.clone(), bytes);
        let doc = json!({ "id": id, "storageId": id, "coreClaimHash": hash, "size": size });
        Ok((StatusCode::CREATED, Json(doc)).into_response())
    })
    .await
}
