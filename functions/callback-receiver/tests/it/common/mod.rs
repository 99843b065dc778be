//! A world for the callback receiver: local secret files (webhook secrets and data keys), a record
//! store behind a spy that counts calls and can fail on demand, a routing table with a counting
//! route, and helpers to sign deliveries with the platform simulator's own signer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use callback_receiver::{
    CallbackConfig, CallbackDeps, CallbackPorts, CallbackRoute, ConsentEvent, MemoryEventSink,
    RouteContext, RouteError, default_handlers, handle,
};
use lambda_http::http::Method;
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use shared::apigw::ApiGatewayRequest;
use shared::clock::{Clock, ManualClock, SharedClock, SystemClock, Timestamp};
use shared::config::{EnvReader, MapEnv};
use shared::pii::{DataKeySource, Protector};
use shared::secrets::file::FileSecrets;
use shared::secrets::{CountingSource, SecretName, SecretSource, SecretWriter, VersionId};
use shared::store::embedded::EmbeddedStore;
use shared::store::{NewRecord, Record, RecordKey, RecordStore, StoreError, Version, Write};
use shared::telemetry::{MemorySink, Recorder};

/// The Standard Webhooks specification's published example secret.
pub const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Another secret, for rotations.
pub const SECOND_SECRET: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";
/// A secret the receiver does not know.
pub const WRONG_SECRET: &str = "whsec_d3Jvbmctc2VjcmV0LW5vYm9keS1rbm93cw==";

pub const USER: &str = "alice.callback@example.com";
pub const VERIFIER: &str = "did:air:id:test:verifier-1";
pub const SCHEMA: &str = "kyc-document-r1";
pub const ISSUER: &str = "did:air:id:test:partner-local";

/// A store wrapper that counts calls, remembers the keys of committed creates, and fails every
/// call while `fail_writes` is positive (each failed `write_all` uses one up) or while `down`.
pub struct Spy {
    inner: Arc<dyn RecordStore>,
    pub gets: AtomicUsize,
    pub writes: AtomicUsize,
    pub failed_conditions: AtomicUsize,
    pub fail_writes: AtomicUsize,
    pub down: std::sync::atomic::AtomicBool,
    pub committed: Mutex<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("simulated store outage")]
pub struct Outage;

impl Spy {
    pub fn new(inner: Arc<dyn RecordStore>) -> Self {
        Self {
            inner,
            gets: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
            failed_conditions: AtomicUsize::new(0),
            fail_writes: AtomicUsize::new(0),
            down: std::sync::atomic::AtomicBool::new(false),
            committed: Mutex::new(Vec::new()),
        }
    }

    fn failing(&self) -> bool {
        self.down.load(Ordering::SeqCst) || self.fail_writes.load(Ordering::SeqCst) > 0
    }

    /// Keys of committed records with this prefix.
    pub fn committed_with(&self, prefix: &str) -> Vec<String> {
        self.committed
            .lock()
            .unwrap()
            .iter()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    pub fn reset_counts(&self) {
        self.gets.store(0, Ordering::SeqCst);
        self.writes.store(0, Ordering::SeqCst);
        self.failed_conditions.store(0, Ordering::SeqCst);
    }

    pub fn inner(&self) -> &Arc<dyn RecordStore> {
        &self.inner
    }
}

#[async_trait]
impl RecordStore for Spy {
    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        if self.failing() {
            return Err(StoreError::Unavailable(Box::new(Outage)));
        }
        self.inner.get(key).await
    }

    async fn write(&self, write: Write) -> Result<Version, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if self.failing() {
            return Err(StoreError::Unavailable(Box::new(Outage)));
        }
        let key = write.key().as_str().to_owned();
        let created = matches!(write, Write::Create(_));
        let r = self.inner.write(write).await;
        match &r {
            Ok(_) if created => self.committed.lock().unwrap().push(key),
            Err(e) if e.is_condition_failure() => {
                self.failed_conditions.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        r
    }

    async fn write_all(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(Box::new(Outage)));
        }
        if self
            .fail_writes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable(Box::new(Outage)));
        }
        let keys: Vec<String> = writes
            .iter()
            .filter(|w| matches!(w, Write::Create(_)))
            .map(|w| w.key().as_str().to_owned())
            .collect();
        let r = self.inner.write_all(writes).await;
        match &r {
            Ok(()) => self.committed.lock().unwrap().extend(keys),
            Err(e) if e.is_condition_failure() => {
                self.failed_conditions.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        r
    }
}

/// A route that counts deliveries and adds one record of its own.
pub struct Counter {
    pub delivered: AtomicUsize,
    pub fail: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl CallbackRoute for Counter {
    fn name(&self) -> &str {
        "counter"
    }

    fn records(
        &self,
        event: &ConsentEvent,
        _ctx: &RouteContext<'_>,
    ) -> Result<Vec<NewRecord>, RouteError> {
        let key = RecordKey::new(
            shared::store::RecordKind::Callback,
            &format!("counter-{}", event.occurrence()),
        )?;
        Ok(vec![NewRecord::new(
            key,
            json!({"schemaId": event.schema_id}),
        )])
    }

    async fn deliver(&self, _event: &ConsentEvent) -> Result<(), RouteError> {
        self.delivered.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(RouteError::Failed("the counter refuses".into()));
        }
        Ok(())
    }
}

/// How to build a world.
pub struct Setup {
    pub secrets: Vec<&'static str>,
    /// The platform's `whpk_` public keys (the document's `publicKeys`; none by default).
    pub public_keys: Vec<String>,
    pub env: Vec<(&'static str, String)>,
    /// The store under the spy (default: a fresh embedded store).
    pub store: Option<Arc<dyn RecordStore>>,
    /// The secrets port (default: files in the world's directory).
    pub secret_port: Option<Arc<dyn SecretWriter>>,
    /// Start the clock here (default: now).
    pub now: Option<Timestamp>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            secrets: vec![VECTOR_SECRET],
            public_keys: Vec::new(),
            env: Vec::new(),
            store: None,
            secret_port: None,
            now: None,
        }
    }
}

pub struct World {
    pub deps: Arc<CallbackDeps>,
    pub spy: Arc<Spy>,
    pub counter: Arc<Counter>,
    pub events: MemoryEventSink,
    pub metrics: MemorySink,
    pub clock: ManualClock,
    pub secrets: Arc<dyn SecretWriter>,
    /// Every secret read the function made.
    pub reads: CountingSource<Arc<dyn SecretSource>>,
    pub secret_name: SecretName,
    pub dir: tempfile::TempDir,
    /// The secret deliveries are signed with by default.
    pub signing_secret: String,
    seq: AtomicUsize,
}

/// The routing table of the tests: the shipped handlers plus the counter on the sample schema.
pub const ROUTES: &str = r#"{"kyc-document-r1": ["compliance", "counter", "events"], "kyc-basic": ["counter", "events"]}"#;

pub async fn world() -> World {
    world_with(Setup::default()).await
}

pub async fn world_with(setup: Setup) -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(setup.now.unwrap_or_else(|| SystemClock.now()));
    let shared_clock: SharedClock = Arc::new(clock.clone());
    let mut pairs: Vec<(&str, String)> = vec![("CALLBACK_ROUTES_JSON", ROUTES.to_owned())];
    pairs.extend(setup.env.iter().cloned());
    let env = MapEnv::from_pairs(pairs);
    let config = CallbackConfig::from_env(&EnvReader::new(&env)).unwrap();
    let secrets: Arc<dyn SecretWriter> = match setup.secret_port {
        Some(s) => s,
        None => Arc::new(FileSecrets::open(dir.path(), shared_clock.clone()).unwrap()),
    };
    let name = config.webhook_secrets_secret.clone();
    if !setup.secrets.is_empty() || !setup.public_keys.is_empty() {
        let doc = keys_document(&setup.secrets, &setup.public_keys);
        secrets.create(&name, &doc.into()).await.unwrap();
    }
    DataKeySource::new(
        Arc::clone(&secrets),
        config.data_keys_secret.clone(),
        std::time::Duration::from_secs(60),
        shared_clock.clone(),
    )
    .ensure()
    .await
    .unwrap();
    let inner: Arc<dyn RecordStore> = match setup.store {
        Some(s) => s,
        None => Arc::new(
            EmbeddedStore::open(dir.path().join("records.sqlite3"), shared_clock.clone()).unwrap(),
        ),
    };
    let spy = Arc::new(Spy::new(inner));
    let counter = Arc::new(Counter {
        delivered: AtomicUsize::new(0),
        fail: std::sync::atomic::AtomicBool::new(false),
    });
    let events = MemoryEventSink::default();
    let mut handlers = default_handlers(Arc::new(events.clone()));
    handlers.push(counter.clone());
    let metrics = MemorySink::default();
    let recorder = Recorder::new(
        "Test",
        "callback-receiver",
        Arc::new(metrics.clone()),
        shared_clock.clone(),
    );
    let source: Arc<dyn SecretSource> = Arc::clone(&secrets) as Arc<dyn SecretSource>;
    let reads = CountingSource::new(source);
    let deps = CallbackDeps::build(
        config,
        CallbackPorts {
            secrets: Arc::new(reads.clone()),
            store: spy.clone(),
            handlers,
            clock: shared_clock,
            recorder,
        },
    )
    .unwrap();
    World {
        deps: Arc::new(deps),
        spy,
        counter,
        events,
        metrics,
        clock,
        secrets,
        reads,
        secret_name: name,
        dir,
        signing_secret: setup
            .secrets
            .first()
            .copied()
            .unwrap_or(VECTOR_SECRET)
            .to_owned(),
        seq: AtomicUsize::new(0),
    }
}

/// The webhook secrets document: `{"secrets": [...]}`, with `"publicKeys"` when there are any.
pub fn keys_document(secrets: &[&str], public_keys: &[String]) -> String {
    let mut doc = json!({ "secrets": secrets });
    if !public_keys.is_empty() {
        doc["publicKeys"] = json!(public_keys);
    }
    doc.to_string()
}

/// A callback body of the rich shape, exactly as the platform simulator serializes it.
pub fn body_for(user: &str, verifier: &str, schema: &str, event_id: &str) -> String {
    serde_json::to_string(&platform_sim::CallbackBody {
        user_id: user.to_owned(),
        verifier_did: verifier.to_owned(),
        schema_id: schema.to_owned(),
        issuer_did: Some(ISSUER.to_owned()),
        authorized_at: Some("2026-11-21T12:00:00Z".to_owned()),
        event_id: Some(event_id.to_owned()),
    })
    .unwrap()
}

/// A callback body of exactly the documented members, as the simulator sends by default.
pub fn minimal_body(user: &str, verifier: &str, schema: &str) -> String {
    serde_json::to_string(&platform_sim::CallbackBody {
        user_id: user.to_owned(),
        verifier_did: verifier.to_owned(),
        schema_id: schema.to_owned(),
        issuer_did: None,
        authorized_at: None,
        event_id: None,
    })
    .unwrap()
}

/// The `v1a` entries the simulator's own signer produces with these `whsk_` keys.
pub fn v1a_signature(keys: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    let parsed: Vec<platform_sim::WebhookSigningKey> = keys
        .iter()
        .map(|k| platform_sim::WebhookSigningKey::parse(k).unwrap())
        .collect();
    platform_sim::sign_v1a(&parsed, id, timestamp, body)
}

/// The `webhook-signature` the simulator's own signer produces.
pub fn signature(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    let decoded: Vec<Vec<u8>> = secrets
        .iter()
        .map(|s| platform_sim::decode_webhook_secret(s).unwrap())
        .collect();
    platform_sim::sign(&decoded, id, timestamp, body)
}

impl World {
    pub fn now_secs(&self) -> i64 {
        self.clock.now().as_secs()
    }

    /// A POST with the given headers and body.
    pub fn request(
        &self,
        headers: &[(&str, String)],
        body: impl Into<Vec<u8>>,
    ) -> ApiGatewayRequest {
        let mut r = ApiGatewayRequest::new(Method::POST, "/v1/callbacks/cak")
            .header("content-type", "application/json")
            .source_ip("203.0.113.10");
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.body(body)
    }

    /// A delivery of `body` signed with `secrets` at `timestamp` under webhook id `id`.
    pub fn signed_with(
        &self,
        secrets: &[&str],
        id: &str,
        timestamp: i64,
        body: &str,
    ) -> ApiGatewayRequest {
        let sig = signature(secrets, id, timestamp, body.as_bytes());
        self.request(
            &[
                ("webhook-id", id.to_owned()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", sig),
            ],
            body.as_bytes().to_vec(),
        )
    }

    /// A delivery of `body` at `timestamp` under webhook id `id` with this `webhook-signature`.
    pub fn with_signature(
        &self,
        signature: &str,
        id: &str,
        timestamp: i64,
        body: &str,
    ) -> ApiGatewayRequest {
        self.request(
            &[
                ("webhook-id", id.to_owned()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signature.to_owned()),
            ],
            body.as_bytes().to_vec(),
        )
    }

    /// A correctly signed delivery of `body` now, under a fresh webhook id.
    pub fn signed(&self, body: &str) -> ApiGatewayRequest {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let id = format!("msg_test{n:06}");
        self.signed_with(&[&self.signing_secret], &id, self.now_secs(), body)
    }

    /// A correctly signed delivery of the standard authorization.
    pub fn authorization(&self) -> ApiGatewayRequest {
        self.signed(&body_for(USER, VERIFIER, SCHEMA, "evt_1"))
    }

    pub async fn send(&self, req: ApiGatewayRequest) -> (u16, Value, Response<Body>) {
        let r = handle(req.build(), &self.deps).await;
        let v = match r.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        (r.status().as_u16(), v, r)
    }

    /// Replaces the accepted secrets.
    pub async fn set_secrets(&self, secrets: &[&str]) {
        self.set_keys(secrets, &[]).await;
    }

    /// Replaces the accepted secrets and public keys.
    pub async fn set_keys(&self, secrets: &[&str], public_keys: &[String]) {
        let doc = keys_document(secrets, public_keys);
        self.secrets
            .put_current(&self.secret_name, &VersionId::random(), &doc.into())
            .await
            .unwrap();
    }

    pub fn delivered(&self) -> usize {
        self.counter.delivered.load(Ordering::SeqCst)
    }

    pub async fn protector(&self) -> Protector {
        self.deps.data_keys.protector().await.unwrap()
    }

    /// The audit record of the consent of (user, verifier, schema) the live dedup record points
    /// at, if any.
    pub async fn audit_record(&self, user: &str, verifier: &str, schema: &str) -> Option<Record> {
        let key = callback_receiver::dedup_key(&self.protector().await, user, verifier, schema)
            .callback_key()
            .unwrap();
        let dedup = self.spy.inner().get(&key).await.unwrap()?;
        let audit = dedup.data["audit"].as_str().unwrap();
        let audit = audit.strip_prefix("AUDIT#").unwrap();
        let key = RecordKey::new(shared::store::RecordKind::Audit, audit).unwrap();
        self.spy.inner().get(&key).await.unwrap()
    }

    /// The occurrence id of the consent of (user, verifier, schema) the live dedup record
    /// remembers, if any.
    pub async fn occurrence(&self, user: &str, verifier: &str, schema: &str) -> Option<String> {
        let key = callback_receiver::dedup_key(&self.protector().await, user, verifier, schema)
            .callback_key()
            .unwrap();
        let dedup = self.spy.inner().get(&key).await.unwrap()?;
        Some(dedup.data["occurrence"].as_str().unwrap().to_owned())
    }

    /// The keys of every audit record committed so far.
    pub fn audit_keys(&self) -> Vec<String> {
        self.spy.committed_with("AUDIT#")
    }

    /// The metric total.
    pub fn metric(&self, name: &str) -> f64 {
        self.metrics.total(name)
    }

    /// The `reason` dimensions of the signature failures counted so far.
    pub fn failure_reasons(&self) -> Vec<String> {
        self.metrics
            .documents()
            .iter()
            .filter(|d| d.get("CallbackSignatureFailures").is_some())
            .map(|d| d["reason"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

/// A local HTTP server in front of the handler, as API Gateway would be: for the simulator to
/// deliver to.
pub struct Receiver {
    pub url: String,
    task: local_tls::Server,
}

pub async fn serve(deps: Arc<CallbackDeps>) -> Receiver {
    use axum::extract::{ConnectInfo, Request, State};
    async fn dispatch(
        State(deps): State<Arc<CallbackDeps>>,
        ConnectInfo(peer): ConnectInfo<SocketAddr>,
        req: Request,
    ) -> axum::response::Response {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 1024 * 1024).await.unwrap();
        let mut r = ApiGatewayRequest::new(
            parts.method.clone(),
            parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        )
        .source_ip(&peer.ip().to_string())
        .body(body.to_vec());
        for (name, value) in &parts.headers {
            if let Ok(v) = value.to_str() {
                r = r.header(name.as_str(), v);
            }
        }
        let (parts, body) = handle(r.build(), &deps).await.into_parts();
        let body = match body {
            Body::Text(t) => axum::body::Body::from(t),
            Body::Binary(b) => axum::body::Body::from(b),
            _ => axum::body::Body::empty(),
        };
        axum::response::Response::from_parts(parts, body)
    }
    let app = axum::Router::new().fallback(dispatch).with_state(deps);
    let task = test_support::serve_https(app);
    let url = format!("{}/v1/callbacks/cak", task.base_url());
    Receiver { url, task }
}

#[allow(unused_imports)] // not every binary that includes this module polls
pub use test_support::eventually;
