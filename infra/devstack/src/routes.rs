//! The local HTTP front: the template's routes, each handed to the very handler the Lambda runs
//! as the API Gateway v2 request it would receive, plus the devstack's own `/dev/login` and
//! `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, Response};
use serde_json::json;
use shared::apigw::ApiGatewayRequest;
use shared::error::{ApiError, ErrorType};
use shared::http::Reply;
use shared::store::{RecordKey, RecordKind};

use crate::idp::Login;
use crate::stack::Stack;

/// The largest body the local front reads (API Gateway's own limit is larger; each handler
/// applies its own, smaller one).
const MAX_BODY: usize = 1024 * 1024;

/// The router: one catch-all that dispatches like API Gateway's route table.
pub fn router(stack: Arc<Stack>) -> Router {
    Router::new().fallback(dispatch).with_state(stack)
}

/// Converts a Lambda HTTP response into the local server's response type.
fn to_axum(response: lambda_http::Response<lambda_http::Body>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let body = match body {
        lambda_http::Body::Empty => Body::empty(),
        lambda_http::Body::Text(t) => Body::from(t),
        lambda_http::Body::Binary(b) => Body::from(b),
        _ => Body::empty(),
    };
    Response::from_parts(parts, body)
}

fn error(t: ErrorType, message: &str) -> Response<Body> {
    to_axum(Reply::error(&ApiError::new(t, message)).build())
}

/// What API Gateway answers when the JWT authorizer refuses a request.
/// A public document of the dev identity provider.
fn public_json(body: &str) -> Response<Body> {
    to_axum(
        Reply::json_text(200, body.to_owned())
            .cache(shared::http::CachePolicy::Public { max_age_secs: 300 })
            .build(),
    )
}

fn unauthorized_by_authorizer() -> Response<Body> {
    let mut r = to_axum(Reply::json(401, &json!({"message": "Unauthorized"})).build());
    if let Ok(v) = "Bearer".parse() {
        r.headers_mut().insert("www-authenticate", v);
    }
    r
}

async fn dispatch(
    State(stack): State<Arc<Stack>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    // API Gateway answers a CORS preflight itself, before any route or authorizer.
    if let Some(answer) = stack.cors.preflight(&parts.method, &parts.headers) {
        return answer;
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return error(ErrorType::PayloadTooLarge, "the body is too large");
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let path = parts.uri.path().to_owned();
    let mut lambda_req = ApiGatewayRequest::new(parts.method.clone(), &path_and_query)
        .source_ip(&peer.ip().to_string())
        .body(body.to_vec())
        .route_key(&format!("{} {}", parts.method, path));
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            lambda_req = lambda_req.header(name.as_str(), v);
        }
    }
    let authorization = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let mut answer = match path.as_str() {
        "/healthz" => healthz(&stack).await,
        "/dev/login" if parts.method == Method::POST => login(&stack, &body),
        "/dev/.well-known/openid-configuration" => public_json(stack.idp.discovery_document()),
        "/dev/.well-known/jwks.json" => public_json(stack.idp.jwks_document()),
        "/v1/partner-tokens" => match stack.authorizer.authorize(authorization).await {
            Ok(claims) => {
                to_axum(token_mint::handle(lambda_req.claims(claims).build(), &stack.mint).await)
            }
            Err(refusal) => {
                tracing::info!(reason = %refusal, "the emulated JWT authorizer refused the request");
                unauthorized_by_authorizer()
            }
        },
        "/v1/server/partner-tokens" => {
            to_axum(token_mint::handle(lambda_req.build(), &stack.mint).await)
        }
        "/.well-known/jwks.json" | "/.well-known/openid-configuration" => {
            to_axum(jwks::handle(lambda_req.build(), &stack.jwks).await)
        }
        p if p == "/v1/credentials" || p.starts_with("/v1/credentials/") => {
            to_axum(issue::handle(lambda_req.build(), &stack.issue).await)
        }
        // No authorizer: the receiver verifies the platform's webhook signature itself.
        "/v1/callbacks/cak" => {
            to_axum(callback_receiver::handle(lambda_req.build(), &stack.callbacks).await)
        }
        _ => error(ErrorType::NotFound, "no such route"),
    };
    stack.cors.decorate(&parts.headers, &mut answer);
    answer
}

async fn healthz(stack: &Stack) -> Response<Body> {
    // A read of a key that never exists proves the store answers.
    let store_ok = match RecordKey::new(RecordKind::Test, "healthz") {
        Ok(key) => stack.store.get(&key).await.is_ok(),
        Err(_) => false,
    };
    let status = if store_ok { 200 } else { 503 };
    let state = if store_ok { "ok" } else { "degraded" };
    to_axum(Reply::json(status, &json!({"status": state, "backend": stack.backend})).build())
}

fn login(stack: &Stack, body: &[u8]) -> Response<Body> {
    let login: Login = match serde_json::from_slice(body) {
        Ok(l) => l,
        Err(e) => {
            return error(
                ErrorType::ValidationFailed,
                &format!("expected {{\"sub\", \"email\", \"mfa\"}}: {e}"),
            );
        }
    };
    let now = stack.clock.now().as_secs();
    match stack.idp.login(&login, now) {
        Ok(token) => to_axum(Reply::json(200, &json!({"idToken": token})).build()),
        Err(e) => error(ErrorType::ValidationFailed, &e),
    }
}
