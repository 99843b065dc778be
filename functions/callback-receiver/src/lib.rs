//! The callback receiver (docs/architecture.md §8): `POST /v1/callbacks/cak`, where the platform reports that a
//! verifier was authorized to access data from a credential the partner issued.
//!
//! Processing order, each step refusing before the next one runs:
//!
//! 0. source address allow-list (`CALLBACK_ALLOWED_CIDRS`, optional) → `403 forbidden`;
//! 1. body size (`MAX_CALLBACK_BODY_BYTES`) → `413 payload_too_large`;
//! 2. signature (Standard Webhooks `v1` HMAC or `v1a` ed25519, or the hex scheme; every
//!    configured secret and public key is tried, HMACs compared in constant time) →
//!    `401 unauthorized` (missing or malformed headers) or `401 signature_mismatch`;
//! 3. timestamp window (±`WEBHOOK_TOLERANCE_SECONDS`) → `401 timestamp_out_of_window`;
//! 4. parse the body → `400 validation_failed` (a forged body never gets this far). Only the
//!    documented members `userId`, `verifierDid` and `schemaId` are required; `issuerDid`,
//!    `authorizedAt` and `eventId` are used when present;
//! 5. dedup with **one atomic conditional write** that creates the dedup record of
//!    (userId, verifierDid, schemaId) — the user as a keyed hash — expiring after the dedup
//!    window (`CALLBACK_DEDUP_WINDOW_SECONDS`), the dedup record of the `eventId` when there is
//!    one (kept `CALLBACK_EVENT_ID_RETENTION_SECONDS`), this consent event's own audit record
//!    `AUDIT#cak-<occurrence>` and the routes' records. A retry fails that write and gets `200`
//!    without being audited or routed again; a re-consent after the window is a new event;
//! 6. route by `schemaId` ([`routes`]); an unknown schema, or a callback naming another issuer
//!    than ours (`ISSUER_DID`), is recorded, audited, counted and acknowledged but not routed
//!    (the platform would otherwise retry forever);
//! 7. `200`. A `5xx` only when the event could not be recorded, so that the platform retries.
#![forbid(unsafe_code)]

pub mod config;
pub mod event;
pub mod keys;
pub mod routes;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::auth::request::{body_bytes, header, parse_json, source_ip};
use shared::clock::SharedClock;
use shared::error::{ApiError, ErrorType};
use shared::http::Reply;
use shared::pii::DataKeySource;
use shared::secrets::SecretSource;
use shared::store::{NewRecord, RecordKey, RecordStore, StoreError, Write};
use shared::telemetry::{Recorder, Unit};

pub use config::CallbackConfig;
pub use event::{CallbackBody, ConsentEvent, DedupKey, EventIdKey, Optional, dedup_key};
pub use keys::{DEFAULT_WEBHOOK_SECRETS_SECRET, WebhookKeys};
pub use routes::{
    CallbackRoute, ComplianceRecord, EventForwarder, EventSink, LogEventSink, MemoryEventSink,
    RouteConfig, RouteContext, RouteError, RouteTable, StdoutEventSink, default_handlers,
};
pub use verify::{
    Scheme, SecretSet, SignatureFailure, WebhookId, WebhookPublicKey, WebhookSecret,
    WebhookTimestamp,
};

/// The route.
pub const CALLBACK_PATH: &str = "/v1/callbacks/cak";

/// The metric names.
pub mod metrics {
    /// Authenticated, well-formed deliveries (new events and duplicates).
    pub const RECEIVED: &str = "CallbacksReceived";
    /// Deliveries of an event already recorded.
    pub const DUPLICATES: &str = "CallbackDuplicates";
    /// Refused deliveries, by `reason` (signature, timestamp, headers, source address); each is
    /// also counted as `AuthFailures` with the same reason.
    pub const SIGNATURE_FAILURES: &str = "CallbackSignatureFailures";
    /// New events whose schema id has no route.
    pub const UNKNOWN_SCHEMA: &str = "CallbackUnknownSchema";
    /// Deliveries answered 5xx because the event could not be recorded (the store, the data keys
    /// or the webhook secrets were unavailable); the platform retries them.
    pub const STORE_FAILURES: &str = "CallbackStoreFailures";
    /// Recorded events whose route failed after recording, by `route`.
    pub const ROUTE_FAILURES: &str = "CallbackRouteFailures";
    /// New events naming an issuer DID other than ours: audited, not routed.
    pub const FOREIGN_ISSUER: &str = "CallbackForeignIssuer";
}

/// How many times the atomic write is tried before answering 5xx.
const WRITE_ATTEMPTS: u32 = 2;
/// The pause before trying the write again.
const WRITE_RETRY_DELAY: Duration = Duration::from_millis(50);

/// What the handler needs, built once per container.
pub struct CallbackDeps {
    /// Configuration.
    pub config: CallbackConfig,
    /// The accepted webhook secrets.
    pub webhook_keys: WebhookKeys<Arc<dyn SecretSource>>,
    /// The keys protecting user identifiers.
    pub data_keys: DataKeySource<Arc<dyn SecretSource>>,
    /// Dedup, audit and route records.
    pub store: Arc<dyn RecordStore>,
    /// Schema id → handlers.
    pub routes: RouteTable,
    /// The clock.
    pub clock: SharedClock,
    /// Metrics.
    pub recorder: Recorder,
}

/// The ports the callback receiver runs on.
pub struct CallbackPorts {
    /// The webhook secrets and the data keys.
    pub secrets: Arc<dyn SecretSource>,
    /// Dedup, audit and occurrence records.
    pub store: Arc<dyn RecordStore>,
    /// The handlers `CALLBACK_ROUTES` may name ([`default_handlers`] in Lambda).
    pub handlers: Vec<Arc<dyn CallbackRoute>>,
    /// The clock.
    pub clock: SharedClock,
    /// Metrics.
    pub recorder: Recorder,
}

impl CallbackDeps {
    /// The function's dependencies, built once per container: the one wiring the Lambda `main`,
    /// the devstack and the tests share, with the routing table resolved among the handlers.
    ///
    /// # Errors
    /// A configuration error when the routing table names an unknown handler.
    pub fn build(
        config: CallbackConfig,
        ports: CallbackPorts,
    ) -> Result<Self, shared::config::ConfigError> {
        let CallbackPorts {
            secrets,
            store,
            handlers,
            clock,
            recorder,
        } = ports;
        let routes = RouteTable::build(&config.routes, &handlers)?;
        Ok(Self {
            webhook_keys: WebhookKeys::new(
                Arc::clone(&secrets),
                config.webhook_secrets_secret.clone(),
                config.scheme,
                config.webhook_secrets_ttl,
                clock.clone(),
            ),
            data_keys: DataKeySource::new(
                secrets,
                config.data_keys_secret.clone(),
                config.data_keys_ttl,
                clock.clone(),
            ),
            config,
            store,
            routes,
            clock,
            recorder,
        })
    }
}

impl shared::entry::ServesHttp for CallbackDeps {
    fn serve(&self, req: Request) -> impl Future<Output = Response<Body>> + Send {
        handle(req, self)
    }
}

/// Handles one request.
pub async fn handle(req: Request, deps: &CallbackDeps) -> Response<Body> {
    let result = if deps.config.base_path.route(req.uri().path()) != CALLBACK_PATH {
        Err(ApiError::new(ErrorType::NotFound, "no such route"))
    } else if req.method() != Method::POST {
        Err(ApiError::new(
            ErrorType::MethodNotAllowed,
            "use POST /v1/callbacks/cak",
        ))
    } else {
        receive(&req, deps).await
    };
    match result {
        Ok(r) => r,
        Err(e) => Reply::error(&e).build(),
    }
}

fn internal(what: &str, e: &dyn std::error::Error) -> ApiError {
    tracing::error!(error = %e, "{what}");
    ApiError::internal()
}

/// Logs and counts a refused delivery; the answer never says more than the failure's type.
fn refuse(
    deps: &CallbackDeps,
    failure: &SignatureFailure,
    source: Option<&str>,
    delivery_id: Option<&str>,
) -> ApiError {
    tracing::warn!(
        reason = failure.reason(),
        source_ip = source.unwrap_or("-"),
        delivery_id = delivery_id.unwrap_or("-"),
        "callback refused"
    );
    // Counted as a callback refusal and, like every refused caller of the API, as an
    // authentication failure.
    let mut batch = deps
        .recorder
        .batch()
        .with_dimension("reason", failure.reason());
    batch.add(metrics::SIGNATURE_FAILURES, Unit::Count, 1.0);
    batch.add("AuthFailures", Unit::Count, 1.0);
    deps.recorder.flush(&mut batch);
    failure.to_api_error()
}

/// The delivery id of a request, for logs only: a printable header value, else `None`.
fn delivery_id_for_log(req: &Request, scheme: Scheme) -> Option<&str> {
    let name = match scheme {
        Scheme::Standard => verify::STANDARD_ID_HEADER,
        Scheme::Hex => verify::HEX_ID_HEADER,
    };
    header(req, name).filter(|id| WebhookId::parse(id).is_some())
}

async fn receive(req: &Request, deps: &CallbackDeps) -> Result<Response<Body>, ApiError> {
    let config = &deps.config;
    let ip = source_ip(req);
    let source = ip.map(|ip| ip.to_string());
    let log_id = delivery_id_for_log(req, config.scheme);

    // 0. Source address.
    if !config.allows_source(ip) {
        return Err(refuse(
            deps,
            &SignatureFailure::SourceNotAllowed,
            source.as_deref(),
            log_id,
        ));
    }

    // 1. Body size.
    let body = body_bytes(req);
    if body.len() > config.max_body_bytes {
        tracing::warn!(
            size = body.len(),
            limit = config.max_body_bytes,
            source_ip = source.as_deref().unwrap_or("-"),
            "callback body too large"
        );
        return Err(ApiError::new(
            ErrorType::PayloadTooLarge,
            format!("the body may not exceed {} bytes", config.max_body_bytes),
        ));
    }

    // 2. Signature.
    let delivery = verify::Delivery::read(config.scheme, |name| header(req, name), body);
    let secrets = deps.webhook_keys.current().await.map_err(|e| {
        deps.recorder
            .emit(metrics::STORE_FAILURES, Unit::Count, 1.0, &[]);
        internal("cannot read the webhook secrets", &e)
    })?;
    let verified = verify::verify(&delivery, &secrets)
        .map_err(|f| refuse(deps, &f, source.as_deref(), log_id))?;

    // 3. Timestamp window.
    verified
        .check_window(deps.clock.now(), config.tolerance)
        .map_err(|f| refuse(deps, &f, source.as_deref(), log_id))?;

    // 4. Parse.
    let mut body: CallbackBody = parse_json(body)?;
    let optional = body.validate()?;
    let protector = deps.data_keys.protector().await.map_err(|e| {
        deps.recorder
            .emit(metrics::STORE_FAILURES, Unit::Count, 1.0, &[]);
        internal("cannot read the data keys", &e)
    })?;
    let event = ConsentEvent::new(
        body,
        optional,
        verified.id.as_ref().map(WebhookId::as_str),
        &protector,
        deps.clock.now(),
    );

    // 5. Dedup: one atomic conditional write of the dedup, audit and route records.
    let foreign = match (&config.issuer_did, &event.issuer_did) {
        (Some(ours), Some(theirs)) => ours != theirs,
        _ => false,
    };
    let routes = if foreign {
        None
    } else {
        deps.routes.routes_for(&event.schema_id)
    };
    let outcome = if foreign {
        "foreign_issuer"
    } else if routes.is_some() {
        "routed"
    } else {
        "unknown_schema"
    };
    let route_names: Vec<&str> = routes
        .unwrap_or_default()
        .iter()
        .map(|r| r.name())
        .collect();
    let writes = event_writes(
        &event,
        config,
        outcome,
        &route_names,
        routes.unwrap_or_default(),
        &protector,
    )
    .map_err(|e| {
        deps.recorder
            .emit(metrics::STORE_FAILURES, Unit::Count, 1.0, &[]);
        internal("cannot prepare the callback records", &e)
    })?;
    deps.recorder.emit(metrics::RECEIVED, Unit::Count, 1.0, &[]);
    let recorded = record(deps, writes, &event).await.map_err(|e| {
        deps.recorder
            .emit(metrics::STORE_FAILURES, Unit::Count, 1.0, &[]);
        internal("cannot record the callback; the platform will retry", &e)
    })?;

    if recorded == Recorded::Duplicate {
        audit_line(&event, "duplicate", &[]);
        deps.recorder
            .emit(metrics::DUPLICATES, Unit::Count, 1.0, &[]);
        return Ok(Reply::json(200, &json!({"status": "duplicate"})).build());
    }
    audit_line(&event, outcome, &route_names);
    if foreign {
        tracing::warn!(
            schema_id = %event.schema_id,
            "a callback names another issuer than ours: audited, not routed"
        );
        deps.recorder
            .emit(metrics::FOREIGN_ISSUER, Unit::Count, 1.0, &[]);
    }

    // 6. Route.
    match routes {
        None if foreign => {}
        None => deps
            .recorder
            .emit(metrics::UNKNOWN_SCHEMA, Unit::Count, 1.0, &[]),
        Some(routes) => {
            for route in routes {
                if let Err(e) = route.deliver(&event).await {
                    tracing::error!(
                        route = route.name(),
                        error = %e,
                        delivery_id = event.delivery_id.as_deref().unwrap_or("-"),
                        "a callback route failed after the event was recorded"
                    );
                    deps.recorder.emit(
                        metrics::ROUTE_FAILURES,
                        Unit::Count,
                        1.0,
                        &[("route", route.name())],
                    );
                }
            }
        }
    }

    // 7. Acknowledge.
    Ok(Reply::json(200, &json!({"status": "recorded"})).build())
}

/// The structured audit line of a consent event: facts only, never a secret or the user id.
fn audit_line(event: &ConsentEvent, outcome: &str, routes: &[&str]) {
    tracing::info!(
        target: "audit",
        audit = "cak_authorization",
        outcome,
        routes = routes.join(","),
        user_id_hash = %event.user_hash,
        verifier_did = %event.verifier_did,
        schema_id = %event.schema_id,
        issuer_did = event.issuer_did.as_deref().unwrap_or("-"),
        authorized_at = %event.authorized_at.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339()),
        event_id = event.event_id.as_deref().unwrap_or("-"),
        delivery_id = event.delivery_id.as_deref().unwrap_or("-"),
        received_at = %event.received_at,
        "consent event"
    );
}

#[derive(Debug, thiserror::Error)]
enum PrepareError {
    #[error(transparent)]
    Key(#[from] shared::store::InvalidName),
    #[error("route {route}: {source}")]
    Route {
        route: String,
        #[source]
        source: RouteError,
    },
}

/// The records of a new event, all created together or not at all: the dedup record of the
/// triple (expiring with the dedup window), that of the event id when there is one (expiring
/// with its retention), the event's own audit record (never expiring) and the routes' records.
fn event_writes(
    event: &ConsentEvent,
    config: &CallbackConfig,
    outcome: &str,
    route_names: &[&str],
    routes: &[Arc<dyn CallbackRoute>],
    protector: &shared::pii::Protector,
) -> Result<Vec<Write>, PrepareError> {
    let callback_key = event.dedup.callback_key()?;
    let audit_key = event.audit_key()?;
    let mut audit = event.facts();
    if let Some(obj) = audit.as_object_mut() {
        obj.insert("type".into(), json!("cakAuthorization"));
        obj.insert("outcome".into(), json!(outcome));
        obj.insert("routes".into(), json!(route_names));
    }
    let dedup_doc = json!({
        "eventId": event.event_id,
        "deliveryId": event.delivery_id,
        "schemaId": event.schema_id,
        "receivedAt": event.received_at.to_rfc3339(),
        "occurrence": event.occurrence(),
        "audit": audit_key.as_str(),
    });
    let mut writes = vec![Write::Create(
        NewRecord::new(callback_key, dedup_doc.clone())
            .expiring_at(event.received_at.plus(config.dedup_window)),
    )];
    if let Some(event_id) = &event.event_id {
        writes.push(Write::Create(
            NewRecord::new(EventIdKey::derive(event_id).callback_key()?, dedup_doc)
                .expiring_at(event.received_at.plus(config.event_id_retention)),
        ));
    }
    writes.push(Write::Create(NewRecord::new(audit_key, audit)));
    let ctx = RouteContext { protector };
    for route in routes {
        let records = route
            .records(event, &ctx)
            .map_err(|source| PrepareError::Route {
                route: route.name().to_owned(),
                source,
            })?;
        writes.extend(records.into_iter().map(Write::Create));
    }
    Ok(writes)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    New,
    Duplicate,
}

/// Writes the event's records in one conditional transaction. A failed condition is a duplicate.
/// A store fault is followed by a read of the dedup record — another delivery of the same event
/// may have committed meanwhile (DynamoDB cancels one of two concurrent transactions on one item)
/// — and one more attempt.
async fn record(
    deps: &CallbackDeps,
    writes: Vec<Write>,
    event: &ConsentEvent,
) -> Result<Recorded, StoreError> {
    let key: RecordKey = event
        .dedup
        .callback_key()
        .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
    let mut attempt = 1;
    loop {
        match deps.store.write_all(writes.clone()).await {
            Ok(()) => return Ok(Recorded::New),
            Err(e) if e.is_condition_failure() => return Ok(Recorded::Duplicate),
            Err(e) => {
                if let Ok(Some(_)) = deps.store.get(&key).await {
                    return Ok(Recorded::Duplicate);
                }
                if attempt >= WRITE_ATTEMPTS {
                    return Err(e);
                }
                tracing::warn!(error = %e, attempt, "recording the callback failed; trying again");
                attempt += 1;
                tokio::time::sleep(WRITE_RETRY_DELAY).await;
            }
        }
    }
}
