//! The chaos suite: issuances and consent callbacks through the real handlers against the
//! platform simulator, with faults on every platform route (5xx, held connections, 429, answers
//! lost after their effect) and the store failing — before a write, or right after one as if the
//! process had died there — while clients retry as documented. At the end nothing is lost and
//! nothing is done twice, on the embedded store and on DynamoDB (moto).
//!
//! `CHAOS_ISSUANCES` and `CHAOS_CALLBACKS` size the run (200 and 100 here; `make bench` runs a
//! larger one and prints its figures); `CHAOS_CLIENTS` (16) is how many clients send at once.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use callback_receiver::{
    CallbackConfig, CallbackDeps, CallbackPorts, MemoryEventSink, default_handlers,
};
use lambda_http::Body;
use lambda_http::http::Method;
use serde_json::{Value, json};
use shared::apigw::ApiGatewayRequest;
use shared::clock::{Clock, SharedClock, SystemClock};
use shared::config::{EnvReader, MapEnv};
use shared::issuance::{Issuance, IssuanceId, IssuanceStatus};
use shared::platform::{Deadline, VcState};
use shared::secrets::SecretWriter;
use shared::secrets::file::FileSecrets;
use shared::store::{Record, RecordKey, RecordStore, StoreError, Version, Write};
use shared::telemetry::{MemorySink, Recorder};

use crate::common::{World, world};

tokio::task_local! {
    /// Whether the request running on this task has "died": every store call fails from then on.
    static DEAD: Cell<bool>;
}

#[derive(Debug, thiserror::Error)]
#[error("injected store failure")]
struct Injected;

/// A store that fails some calls before they reach the inner store, and lets some writes
/// commit and then "kills" the request that made them: the call reports a failure, and every
/// later store call of that request fails too, so nothing the request would have written after
/// that point is written — the store as a crash at that instant leaves it.
struct Crashing {
    inner: Arc<dyn RecordStore>,
    calls: AtomicU64,
    seed: u64,
    before: AtomicU64,
    after: AtomicU64,
}

/// SplitMix64 of `x`: a well-spread 64-bit value.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Crashing {
    fn new(inner: Arc<dyn RecordStore>, seed: u64) -> Self {
        Self {
            inner,
            calls: AtomicU64::new(0),
            seed,
            before: AtomicU64::new(0),
            after: AtomicU64::new(0),
        }
    }

    fn dead() -> bool {
        DEAD.try_with(Cell::get).unwrap_or(false)
    }

    fn die() {
        let _ = DEAD.try_with(|d| d.set(true));
    }

    /// 4% of writes fail before reaching the store, 4% die right after committing.
    fn roll(&self) -> u64 {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        mix(self.seed ^ n) % 100
    }

    async fn guarded<T>(
        &self,
        write: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if Self::dead() {
            return Err(StoreError::Unavailable(Box::new(Injected)));
        }
        let roll = self.roll();
        if roll < 4 {
            self.before.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable(Box::new(Injected)));
        }
        let result = write.await;
        if roll < 8 && result.is_ok() {
            self.after.fetch_add(1, Ordering::SeqCst);
            Self::die();
            return Err(StoreError::Unavailable(Box::new(Injected)));
        }
        result
    }
}

#[async_trait]
impl RecordStore for Crashing {
    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError> {
        if Self::dead() {
            return Err(StoreError::Unavailable(Box::new(Injected)));
        }
        self.inner.get(key).await
    }

    async fn write(&self, write: Write) -> Result<Version, StoreError> {
        self.guarded(self.inner.write(write)).await
    }

    async fn write_all(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.guarded(self.inner.write_all(writes)).await
    }
}

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The fault of phase `n` on every platform route, at a 30% rate.
fn phase_fault(n: usize) -> Value {
    let mut spec = match n % 4 {
        0 => json!({"status": 503}),
        1 => json!({"loseAnswer": true}),
        2 => json!({"status": 429}),
        _ => json!({"timeout": true, "holdMs": 2000}),
    };
    spec["route"] = json!("*");
    spec["rate"] = json!(0.3);
    spec["seed"] = json!(n as u64 + 11);
    spec
}

/// One client's issuance: retried as the API documents (same key and body, after the
/// `Retry-After` of a 409, 429 or 5xx) until it is accepted.
async fn issue_until_accepted(w: &World, key: &str, body: &Value) -> (Value, u32, Vec<u16>) {
    let mut answers = Vec::new();
    for attempt in 1..=60u32 {
        let request = w.post(&w.writer, Some(key), body);
        let (status, answer, response) = DEAD.scope(Cell::new(false), w.send(request)).await;
        answers.push(status);
        if status == 202 {
            return (answer, attempt, answers);
        }
        assert!(
            matches!(status, 409 | 429 | 500 | 502),
            "{key}: an answer a client cannot retry: {status} {answer}"
        );
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1)
            .min(2);
        tokio::time::sleep(Duration::from_millis(100 + 400 * wait)).await;
    }
    panic!("{key} was never accepted: {answers:?}");
}

/// Where the suite's records live.
pub enum Backend {
    Embedded,
    DynamoDb,
}

async fn store_for(w: &World, backend: &Backend) -> Arc<dyn RecordStore> {
    match backend {
        Backend::Embedded => Arc::clone(&w.deps.store),
        Backend::DynamoDb => {
            let sdk = test_support::moto().await;
            let nanos = SystemClock.now().as_millis();
            let store = shared::store::dynamodb::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                format!("chaos-{}-{nanos}", std::process::id()),
                w.deps.clock.clone(),
            );
            store.create_table_if_missing().await.unwrap();
            Arc::new(store)
        }
    }
}

/// A callback receiver over `store`, sharing the world's secrets directory (its data keys).
async fn receiver(
    w: &World,
    store: Arc<dyn RecordStore>,
) -> (CallbackDeps, MemoryEventSink, String) {
    let clock: SharedClock = Arc::new(SystemClock);
    let files = FileSecrets::open(w.dir.path(), clock.clone()).unwrap();
    let env = MapEnv::from_pairs([("ISSUER_DID", "did:air:id:test:partner-local")]);
    let config = CallbackConfig::from_env(&EnvReader::new(&env)).unwrap();
    let secret = "whsec_Y2hhb3Mtc3VpdGUtd2ViaG9vay1zZWNyZXQ=";
    files
        .create(
            &config.webhook_secrets_secret,
            &json!({ "secrets": [secret] }).to_string().into(),
        )
        .await
        .unwrap();
    let events = MemoryEventSink::default();
    let handlers = default_handlers(Arc::new(events.clone()));
    let recorder = Recorder::new(
        "Test",
        "callback-receiver",
        Arc::new(MemorySink::default()),
        clock.clone(),
    );
    let ports = CallbackPorts {
        secrets: Arc::new(files),
        store,
        handlers,
        clock,
        recorder,
    };
    let deps = CallbackDeps::build(config, ports).unwrap();
    (deps, events, secret.to_owned())
}

/// Delivers one callback body, signed by the simulator's own signer, until it is acknowledged;
/// then `extra` more times (the platform's duplicate deliveries).
async fn deliver(
    deps: &CallbackDeps,
    secret: &str,
    id: &str,
    body: &str,
    extra: usize,
) -> Vec<String> {
    let decoded = vec![platform_sim::decode_webhook_secret(secret).unwrap()];
    let mut outcomes = Vec::new();
    let mut acknowledged = 0;
    for _ in 0..40 {
        let ts = SystemClock.now().as_secs();
        let signature = platform_sim::sign(&decoded, id, ts, body.as_bytes());
        let request = ApiGatewayRequest::new(Method::POST, "/v1/callbacks/cak")
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", &ts.to_string())
            .header("webhook-signature", &signature)
            .body(body.as_bytes().to_vec())
            .build();
        let response = DEAD
            .scope(Cell::new(false), callback_receiver::handle(request, deps))
            .await;
        let status = response.status().as_u16();
        if status == 200 {
            let answer: Value = match response.body() {
                Body::Text(t) => serde_json::from_str(t).unwrap(),
                _ => Value::Null,
            };
            outcomes.push(answer["status"].as_str().unwrap_or("").to_owned());
            acknowledged += 1;
            if acknowledged > extra {
                return outcomes;
            }
        } else {
            assert!(status >= 500, "a callback refused with {status}");
            outcomes.push(format!("{status}"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("callback {id} never acknowledged: {outcomes:?}");
}

/// Runs the suite on `backend` and checks that nothing was lost or duplicated.
pub async fn run(backend: Backend) {
    let issuances = size("CHAOS_ISSUANCES", 200);
    let callbacks = size("CHAOS_CALLBACKS", 100);
    let mut w = world(&[]).await;
    // Short leases, so that the retries of a "dead" request get through quickly.
    w.deps.config.default_lease = Duration::from_secs(2);
    let inner = store_for(&w, &backend).await;
    let crashing = Arc::new(Crashing::new(Arc::clone(&inner), 0xC4A05));
    w.deps.store = crashing.clone();
    let w = Arc::new(w);

    // The requests: half with CAK sensitive data, on both curves.
    let mut planned = Vec::new();
    for i in 0..issuances {
        let email = format!("chaos.{i}@example.com");
        let (program, documents) = match i % 4 {
            0 => ("kyc-document-r1", true),
            1 => ("kyc-document-k1", true),
            2 => ("kyc-basic", false),
            _ => ("kyc-document-r1", false),
        };
        let mut body = crate::common::body(program, &email);
        if documents {
            body["sensitiveData"] = json!({"fullName": format!("Holder Number {i}"),
                "birthDate": format!("19{:02}-01-0{}", i % 100, 1 + i % 9)});
        }
        planned.push((format!("chaos-{i}"), email, body));
    }

    let clients = Arc::new(tokio::sync::Semaphore::new(size("CHAOS_CLIENTS", 16)));
    let phases = 4;
    let per_phase = issuances.div_ceil(phases);
    let mut accepted: BTreeMap<String, Value> = BTreeMap::new();
    let mut attempts = 0u32;
    for (phase, chunk) in planned.chunks(per_phase).enumerate() {
        w.clear_faults().await;
        w.fault(phase_fault(phase)).await;
        let mut tasks = Vec::new();
        for (key, _, body) in chunk.iter().cloned() {
            let w = Arc::clone(&w);
            let clients = Arc::clone(&clients);
            tasks.push(tokio::spawn(async move {
                let _client = clients.acquire().await.unwrap();
                let (answer, n, _) = issue_until_accepted(&w, &key, &body).await;
                (key, answer, n)
            }));
        }
        for t in tasks {
            let (key, answer, n) = t.await.unwrap();
            attempts += n;
            accepted.insert(key, answer);
        }
    }
    w.clear_faults().await;

    // Callbacks: consents of the issued users, each delivered 1 to 3 times, through the same
    // failing store; the minimal documented shape and the rich one alternate.
    let (cb_deps, events, secret) = receiver(&w, crashing.clone()).await;
    let mut consent_outcomes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..callbacks {
        let user = format!("chaos.{}@example.com", i % issuances.max(1));
        let verifier = format!("did:air:id:test:verifier-{i}");
        let mut body =
            json!({"userId": user, "verifierDid": verifier, "schemaId": "kyc-document-r1"});
        if i % 2 == 1 {
            body["eventId"] = json!(format!("evt_chaos_{i}"));
            body["issuerDid"] = json!("did:air:id:test:partner-local");
            body["authorizedAt"] = json!(SystemClock.now().to_rfc3339());
        }
        let id = format!("msg_chaos_{i:04}");
        let outcomes = deliver(&cb_deps, &secret, &id, &body.to_string(), i % 3).await;
        consent_outcomes.insert(id, outcomes);
    }

    // --- Checks ---
    let requests = w.sim.requests();
    let mut lost = 0usize;
    let mut duplicated = 0usize;
    // Every issuance is accepted and recorded WAIT_ONCHAIN with the platform's hash.
    let mut hashes = BTreeSet::new();
    let mut extra_uploads = 0usize;
    for (key, email, body) in &planned {
        let answer = &accepted[key];
        let id = IssuanceId::derive(w.writer.id.as_str(), key);
        assert_eq!(answer["issuanceId"], id.as_str());
        let record = inner.get(&id.record_key().unwrap()).await.unwrap();
        let Some(record) = record else {
            lost += 1;
            continue;
        };
        let issuance: Issuance = serde_json::from_value(record.data).unwrap();
        assert_eq!(issuance.status(), IssuanceStatus::WaitOnchain, "{key}");
        let hash = issuance.core_claim_hash().unwrap().to_owned();
        assert_eq!(answer["coreClaimHash"], hash.as_str(), "{key}");
        hashes.insert(hash.clone());
        // Issued exactly once at the platform: one issue-on-behalf took effect for this user.
        let effective = requests
            .iter()
            .filter(|r| r.route == "POST /credentials/issue-on-behalf" && r.status == 200)
            .filter(|r| {
                r.claims
                    .as_ref()
                    .is_some_and(|c| c["email"] == email.as_str())
            })
            .count();
        if effective != 1 {
            duplicated += 1;
        }
        // Its documents: stored, and every ciphertext held for the credential decrypting at
        // the platform to what was submitted.
        if let Some(data) = body.get("sensitiveData") {
            let storage = issuance.storage_id().unwrap_or_default().to_owned();
            let held = w.sim.ciphertexts_of(&hash);
            if storage.is_empty() || !held.contains(&storage) {
                lost += 1;
            }
            for id in &held {
                assert_eq!(w.plaintext_of(id).await, *data, "{key}: ciphertext {id}");
            }
            extra_uploads += held.len().saturating_sub(1);
        } else {
            assert_eq!(issuance.storage_id(), None);
            assert!(w.sim.ciphertexts_of(&hash).is_empty());
        }
    }
    assert_eq!(hashes.len(), issuances, "one credential per issuance");
    // Anchored at the platform and never revoked by our own retries.
    w.sim.advance(Duration::from_secs(3600));
    for hash in &hashes {
        let state = w
            .deps
            .platform
            .status(hash, Deadline::after(Duration::from_secs(5)))
            .await
            .unwrap()
            .vc_status;
        assert_eq!(state, VcState::Onchain, "{hash}");
    }
    // Uploads are at least once: the platform's storage takes no idempotency key, so an upload
    // whose answer was lost, or whose success could not be recorded before the request died,
    // is made again. Every copy is the same data for the same credential (checked above).
    let lost_upload_answers = requests
        .iter()
        .filter(|r| r.route == "POST /dstorage/ciphertexts" && r.status == 201 && r.fault)
        .count();

    // Every consent: recorded once, routed once, however often it was delivered.
    let recorded: usize = consent_outcomes
        .values()
        .map(|o| o.iter().filter(|s| *s == "recorded").count())
        .sum();
    let forwarded = events.events().len();
    for (id, outcomes) in &consent_outcomes {
        let firsts = outcomes.iter().filter(|s| *s == "recorded").count();
        // A delivery answered 5xx may still have been recorded (the process "died" after the
        // commit); its retry is then a duplicate. Either way: recorded exactly once.
        assert!(firsts <= 1, "{id} recorded {firsts} times: {outcomes:?}");
    }
    let audited = audit_count(&inner, &w, &consent_outcomes).await;
    if audited < callbacks {
        lost += callbacks - audited;
    }
    assert!(recorded <= callbacks && forwarded <= callbacks);

    // No plaintext personal data in the store (the embedded file, byte for byte).
    if matches!(backend, Backend::Embedded) {
        let stored = w.stored_text();
        assert!(stored.contains("ISSUE#"));
        for (_, email, body) in planned.iter().take(40) {
            assert!(!stored.contains(email.as_str()), "{email} in the store");
            if let Some(name) = body
                .pointer("/sensitiveData/fullName")
                .and_then(Value::as_str)
            {
                assert!(!stored.contains(name), "{name} in the store");
            }
        }
    }

    let injected_platform = requests.iter().filter(|r| r.fault).count();
    let injected_store =
        crashing.before.load(Ordering::SeqCst) + crashing.after.load(Ordering::SeqCst);
    println!(
        "{issuances} issuances, {callbacks} callbacks, {} faults injected: {lost} lost, {duplicated} duplicated",
        injected_platform as u64 + injected_store
    );
    println!(
        "  platform faults {injected_platform}, store failures {} before and {} after a write, \
         {attempts} issue requests in all; {extra_uploads} repeated ciphertext uploads \
         ({lost_upload_answers} upload answers lost), each the same data for the same credential",
        crashing.before.load(Ordering::SeqCst),
        crashing.after.load(Ordering::SeqCst),
    );
    assert!(
        injected_platform > 0 && injected_store > 0,
        "the run injected faults"
    );
    assert_eq!((lost, duplicated), (0, 0));
}

/// How many consent events have an audit record, found through their dedup records.
async fn audit_count(
    store: &Arc<dyn RecordStore>,
    w: &World,
    outcomes: &BTreeMap<String, Vec<String>>,
) -> usize {
    let protector = w.deps.data_keys.protector().await.unwrap();
    let callbacks = outcomes.len();
    let issuances = size("CHAOS_ISSUANCES", 200).max(1);
    let mut audited = 0;
    for i in 0..callbacks {
        let user = format!("chaos.{}@example.com", i % issuances);
        let verifier = format!("did:air:id:test:verifier-{i}");
        let key = callback_receiver::dedup_key(&protector, &user, &verifier, "kyc-document-r1")
            .callback_key()
            .unwrap();
        let Some(dedup) = store.get(&key).await.unwrap() else {
            continue;
        };
        let audit = dedup.data["audit"]
            .as_str()
            .unwrap()
            .strip_prefix("AUDIT#")
            .unwrap();
        let audit = RecordKey::new(shared::store::RecordKind::Audit, audit).unwrap();
        if store.get(&audit).await.unwrap().is_some() {
            audited += 1;
        }
    }
    audited
}
