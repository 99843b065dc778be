//! The test-only control routes under `/sim`: no JWT, never faulted, never logged.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::callbacks::{self, AuthorizationRequest};
use crate::faults::FaultSpec;
use crate::http::{ApiError, parse_json};
use crate::state::{cak_secret, lock};

type ApiResult = Result<Response, ApiError>;

/// `GET /sim/health`.
pub async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// `GET /sim/ciphertexts/{id}/plaintext`: decrypts an upload with the CAK private key.
pub async fn plaintext(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult {
    let store = lock(&app.store);
    let stored = store
        .ciphertext(&id)
        .ok_or_else(|| ApiError::not_found(format!("unknown ciphertext id {id:?}")))?;
    let credential = store
        .credential(&stored.core_claim_hash)
        .ok_or_else(|| ApiError::not_found("the ciphertext's credential is gone"))?;
    let cak = credential
        .cak
        .as_ref()
        .ok_or_else(|| ApiError::conflict("the credential has no CAK"))?;
    let secret = cak_secret(
        app.config.seed,
        cak.curve,
        &credential.email,
        &credential.issuer_did,
        &credential.program,
    );
    let plaintext = shared::ecies::decrypt(&secret, &stored.bytes).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("could not decrypt: {e}"),
        )
    })?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        plaintext,
    )
        .into_response())
}

/// `POST /sim/verifier-authorizations`: creates a callback event and starts delivering it.
pub async fn authorize_verifier(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let request: AuthorizationRequest = parse_json(body)?;
    for (name, value) in [
        ("userId", &request.user_id),
        ("verifierDid", &request.verifier_did),
        ("schemaId", &request.schema_id),
    ] {
        if value.trim().is_empty() {
            return Err(ApiError::bad_request(format!("{name} must not be empty")));
        }
    }
    let url = request
        .callback_url
        .clone()
        .or_else(|| app.config.callback_url.clone())
        .ok_or_else(|| ApiError::conflict("no callback URL configured"))?;
    if reqwest::Url::parse(&url).is_err() {
        return Err(ApiError::bad_request(format!(
            "callbackUrl {url:?} is not a URL"
        )));
    }
    let issuer_did = request.issuer_did.clone().unwrap_or_else(|| {
        lock(&app.store)
            .find_user_program(&request.user_id, &request.schema_id)
            .map_or_else(|| app.config.issuer_did.clone(), |c| c.issuer_did.clone())
    });
    let shape = request.shape.unwrap_or(app.config.callback_shape);
    let payload = callbacks::body_for(&request, shape, issuer_did, app.clock.now());
    let planned = if request.deliver_twice { 2 } else { 1 };
    let record = lock(&app.callbacks).create(app.config.seed, url, payload, planned);
    tokio::spawn(callbacks::deliver(
        Arc::clone(&app),
        record.id.clone(),
        planned,
    ));
    Ok((StatusCode::ACCEPTED, Json(record)).into_response())
}

/// `GET /sim/callbacks`.
pub async fn list_callbacks(State(app): State<Arc<App>>) -> Response {
    let records = lock(&app.callbacks).all().to_vec();
    Json(json!({ "callbacks": records })).into_response()
}

/// `POST /sim/callbacks/{id}/redeliver`: delivers the same event once more (same `webhook-id`).
pub async fn redeliver(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult {
    let record = {
        let mut book = lock(&app.callbacks);
        let record = book
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found(format!("unknown callback {id:?}")))?;
        record.deliveries_planned += 1;
        record.clone()
    };
    tokio::spawn(callbacks::deliver(Arc::clone(&app), id, 1));
    Ok((StatusCode::ACCEPTED, Json(record)).into_response())
}

/// `POST /sim/faults`.
pub async fn set_fault(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let spec: FaultSpec = parse_json(body)?;
    let mut faults = lock(&app.faults);
    faults
        .set(spec, app.config.seed)
        .map_err(ApiError::bad_request)?;
    Ok(Json(faults.describe()).into_response())
}

/// `GET /sim/faults`.
pub async fn list_faults(State(app): State<Arc<App>>) -> Response {
    Json(lock(&app.faults).describe()).into_response()
}

/// `DELETE /sim/faults`.
pub async fn clear_faults(State(app): State<Arc<App>>) -> Response {
    let mut faults = lock(&app.faults);
    faults.clear();
    Json(faults.describe()).into_response()
}

/// `GET /sim/requests`.
pub async fn list_requests(State(app): State<Arc<App>>) -> Response {
    let records = lock(&app.log).all().to_vec();
    let fetches = app.verifier.jwks_fetches().await;
    Json(json!({ "requests": records, "jwksFetches": fetches })).into_response()
}

/// `DELETE /sim/requests`.
pub async fn clear_requests(State(app): State<Arc<App>>) -> Response {
    lock(&app.log).clear();
    Json(json!({ "requests": [] })).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Advance {
    #[serde(default)]
    seconds: Option<u64>,
    #[serde(default)]
    millis: Option<u64>,
}

/// `GET /sim/clock`.
pub async fn clock(State(app): State<Arc<App>>) -> Response {
    let offset = u64::try_from(app.clock.offset().as_millis()).unwrap_or(u64::MAX);
    Json(json!({ "now": app.clock.now_unix(), "offsetMs": offset })).into_response()
}

/// `POST /sim/clock/advance` `{"seconds": n}` or `{"millis": n}`.
pub async fn advance_clock(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let advance: Advance = parse_json(body)?;
    let by = match (advance.seconds, advance.millis) {
        (Some(s), None) => Duration::from_secs(s),
        (None, Some(ms)) => Duration::from_millis(ms),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of seconds or millis",
            ));
        }
    };
    app.clock.advance(by);
    Ok(clock(State(app)).await)
}
