//! `GET /v1/credentials/{id}`: where an issuance stands, for a key of the family that created it
//! (any other caller gets `404 not_found`, the same as for an id that does not exist).

use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::auth::Permission;
use shared::auth::request::{path_and_query, signed_parts};
use shared::error::{ApiError, ErrorType};
use shared::http::Reply;
use shared::issuance::{Issuance, IssuanceId};

use crate::IssueDeps;

/// Handles `GET /v1/credentials/{id}`.
pub async fn read(req: &Request, id: &str, deps: &IssueDeps) -> Result<Response<Body>, ApiError> {
    let pq = path_and_query(req);
    let caller = deps
        .verifier
        .verify(&signed_parts(req, &pq), Permission::CredentialsRead)
        .await
        .map_err(|f| f.to_api_error())?;
    let not_found = || ApiError::new(ErrorType::NotFound, "no issuance with this id");
    let id = IssuanceId::parse(id).ok_or_else(not_found)?;
    let key = id.record_key().map_err(|_| not_found())?;
    let record = deps
        .store
        .get(&key)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the issuance record");
            ApiError::internal()
        })?
        .ok_or_else(not_found)?;
    let issuance: Issuance = serde_json::from_value(record.data).map_err(|e| {
        tracing::error!(error = %e, "unreadable issuance record");
        ApiError::internal()
    })?;
    // Another family's issuance does not exist, as far as this caller can tell.
    if !issuance.readable_by(&caller.family) {
        return Err(not_found());
    }
    let now = deps.clock.now();
    let ts = |t: Option<shared::clock::Timestamp>| t.map(|t| t.to_rfc3339());
    Ok(Reply::json(
        200,
        &json!({
            "issuanceId": issuance.issuance_id.as_str(),
            "programId": issuance.program_id,
            "status": issuance.status(),
            "coreClaimHash": issuance.core_claim_hash(),
            "createdAt": issuance.created_at.to_rfc3339(),
            "updatedAt": issuance.updated_at().to_rfc3339(),
            "waitOnchainSince": ts(issuance.wait_onchain_since()),
            "onchainAt": ts(issuance.onchain_at()),
            "vcId": issuance.anchored().vc_id,
            "issuanceDate": issuance.anchored().issuance_date,
            "expirationDate": issuance.anchored().expiration_date,
            "waitOnchainSeconds": issuance.wait_onchain_seconds(now),
            "reason": issuance.reason(),
        }),
    )
    .build())
}
