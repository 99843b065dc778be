//! The router, its fallbacks and the two middlewares (request log outermost, then faults).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::app::App;
use crate::faults::Action;
use crate::http::{Seen, error_response, with_seen};
use crate::state::{RequestRecord, lock, stamp};
use crate::{control, platform};

/// How long a held connection waits when no `holdMs` was given (ends early on shutdown).
const HOLD_FOREVER: Duration = Duration::from_secs(24 * 3600);

/// Builds the whole application.
pub fn router(app: Arc<App>) -> Router {
    let upload_limit = DefaultBodyLimit::max(app.config.max_ciphertext_body);
    Router::new()
        .route(
            "/credentials/issue-on-behalf",
            post(platform::issue_on_behalf),
        )
        .route("/credentials/status", get(platform::status))
        .route(
            "/dstorage/ciphertexts",
            post(platform::upload_ciphertext).layer(upload_limit),
        )
        .route("/sim/health", get(control::health))
        .route("/sim/ciphertexts/{id}/plaintext", get(control::plaintext))
        .route(
            "/sim/verifier-authorizations",
            post(control::authorize_verifier),
        )
        .route("/sim/callbacks", get(control::list_callbacks))
        .route("/sim/callbacks/{id}/redeliver", post(control::redeliver))
        .route(
            "/sim/faults",
            get(control::list_faults)
                .post(control::set_fault)
                .delete(control::clear_faults),
        )
        .route(
            "/sim/requests",
            get(control::list_requests).delete(control::clear_requests),
        )
        .route("/sim/clock", get(control::clock))
        .route("/sim/clock/advance", post(control::advance_clock))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(app.config.max_json_body))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            inject_faults,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            record_request,
        ))
        .with_state(app)
}

async fn not_found(request: Request) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {} not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

fn is_control(path: &str) -> bool {
    path == "/sim" || path.starts_with("/sim/")
}

/// Logs every platform call on arrival (status 0 until answered, and forever if the caller
/// gave up first) and completes the record with the answer.
async fn record_request(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if is_control(&path) {
        return next.run(request).await;
    }
    let method = request.method().to_string();
    let record = RequestRecord {
        seq: 0,
        route: format!("{method} {path}"),
        method,
        path,
        query: request.uri().query().map(str::to_owned),
        status: 0,
        claims: None,
        auth_error: None,
        fault: false,
        at_ms: stamp(app.clock.now()),
    };
    let seq = lock(&app.log).push(record);
    let response = next.run(request).await;
    let seen = response
        .extensions()
        .get::<Seen>()
        .cloned()
        .unwrap_or_default();
    lock(&app.log).complete(seq, response.status().as_u16(), seen);
    response
}

/// Applies the fault rule of the route, if any.
async fn inject_faults(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if is_control(&path) {
        return next.run(request).await;
    }
    let decision = lock(&app.faults).decide(request.method().as_str(), &path);
    if let Some(latency) = decision.latency {
        tokio::select! {
            () = tokio::time::sleep(latency) => {}
            () = app.stopped() => {}
        }
    }
    let seen = Seen {
        fault: true,
        ..Seen::default()
    };
    match decision.action {
        None => next.run(request).await,
        Some(Action::Error(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            with_seen(error_response(status, "injected fault"), seen)
        }
        Some(Action::RateLimit(secs)) => {
            let mut response =
                error_response(StatusCode::TOO_MANY_REQUESTS, "rate limited (injected)");
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            with_seen(response, seen)
        }
        Some(Action::LoseAnswer) => {
            // The route runs and its effect stays; its answer is replaced by a body that fails
            // mid-stream, so the connection breaks before the caller reads anything usable.
            let done = next.run(request).await;
            let status = done.status();
            // What the route saw (the JWT's claims) is kept; the answer is marked faulted.
            let seen = Seen {
                fault: true,
                ..done.extensions().get::<Seen>().cloned().unwrap_or_default()
            };
            drop(done);
            let broken = futures::stream::once(async {
                Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other(
                    "answer lost (injected)",
                ))
            });
            let mut response = Response::new(axum::body::Body::from_stream(broken));
            *response.status_mut() = status;
            with_seen(response, seen)
        }
        Some(Action::Hold(hold)) => {
            tokio::select! {
                () = tokio::time::sleep(hold.unwrap_or(HOLD_FOREVER)) => {}
                () = app.stopped() => {}
            }
            with_seen(
                error_response(StatusCode::GATEWAY_TIMEOUT, "injected timeout"),
                seen,
            )
        }
    }
}
