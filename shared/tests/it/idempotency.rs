//! Idempotency on both record stores, with a manual clock: replays, reuse with another payload,
//! concurrent duplicates, zero-millisecond leases, crashed attempts and released keys. Each
//! scenario is one function; the macro at the bottom runs it on the embedded SQLite adapter and on
//! the DynamoDB adapter on a real moto server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support as common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use shared::clock::{Clock, ManualClock, SharedClock};
use shared::idempotency::{
    Begin, Idempotency, IdempotencyError, IdempotencyKey, StoredResponse, payload_digest,
};
use shared::pii::{DataKeys, DocumentDigest, Protector};
use shared::store::dynamodb::DynamoStore;
use shared::store::embedded::EmbeddedStore;
use shared::store::{NewRecord, RecordKey, RecordKind, RecordStore, Write};

struct World {
    store: Arc<dyn RecordStore>,
    clock: ManualClock,
    shared_clock: SharedClock,
    _dir: Option<tempfile::TempDir>,
}

async fn embedded() -> World {
    let (clock, shared_clock) = common::clock();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("r.sqlite3"), shared_clock.clone()).unwrap();
    World {
        store: Arc::new(store),
        clock,
        shared_clock,
        _dir: Some(dir),
    }
}

async fn dynamodb() -> World {
    let (clock, shared_clock) = common::clock();
    let config = common::moto().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let store = DynamoStore::new(client, common::unique("idempotency"), shared_clock.clone());
    store.create_table_if_missing().await.unwrap();
    World {
        store: Arc::new(store),
        clock,
        shared_clock,
        _dir: None,
    }
}

impl World {
    fn idem(&self) -> Idempotency<'_> {
        Idempotency::new(
            self.store.as_ref(),
            &self.shared_clock,
            Duration::from_secs(3600),
        )
    }
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::parse(k).unwrap()
}

/// One stack's data keys, for every scenario.
static PROTECTOR: std::sync::LazyLock<Protector> =
    std::sync::LazyLock::new(|| Protector::new(Arc::new(DataKeys::generate())));

fn hash(body: serde_json::Value) -> DocumentDigest {
    payload_digest(&PROTECTOR, "POST", "/v1/credentials", &body)
}

/// The plain SHA-256 fingerprint records held before fingerprints were keyed.
fn plain_hash(body: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(
        format!("POST\n/v1/credentials\n{body}").as_bytes(),
    ))
}

fn record_key(caller: &str, k: &str) -> RecordKey {
    let id = hex::encode(Sha256::digest(format!("{caller}\n{k}").as_bytes()));
    RecordKey::new(RecordKind::Idempotency, &id).unwrap()
}

async fn the_stored_payload_fingerprint_is_keyed_not_a_plain_hash_of_the_body(w: World) {
    let body =
        json!({"user": {"email": "alice@example.com"}, "credentialSubject": {"tier": "gold"}});
    let until = w.clock.now().plus(Duration::from_secs(30));
    w.idem()
        .begin("pk_a", &key("k1"), &hash(body.clone()), until)
        .await
        .unwrap();
    let stored = w
        .store
        .get(&record_key("pk_a", "k1"))
        .await
        .unwrap()
        .unwrap();
    let fingerprint = stored.data["payloadHash"].as_str().unwrap().to_owned();
    assert_eq!(fingerprint, hash(body.clone()).as_str());
    assert_ne!(fingerprint, plain_hash(&body));
    assert!(!stored.data.to_string().contains("alice@example.com"));
}

async fn a_request_completed_before_fingerprints_were_keyed_still_replays(w: World) {
    let body = json!({"a": 1});
    let record = NewRecord::new(
        record_key("pk_a", "k1"),
        json!({
            "status": "COMPLETED",
            "payloadHash": plain_hash(&body),
            "leaseUntil": w.clock.now(),
            "response": response(),
        }),
    );
    w.store.write(Write::Create(record)).await.unwrap();
    let until = w.clock.now().plus(Duration::from_secs(30));
    match w.idem().begin("pk_a", &key("k1"), &hash(body), until).await {
        Ok(Begin::Replay(r)) => assert_eq!(r, response()),
        other => panic!("expected a replay, got {other:?}"),
    }
    // Another body under the same key is still another payload.
    let err = w
        .idem()
        .begin("pk_a", &key("k1"), &hash(json!({"a": 2})), until)
        .await
        .unwrap_err();
    assert!(matches!(err, IdempotencyError::KeyReused), "{err:?}");
}

fn response() -> StoredResponse {
    StoredResponse {
        status: 202,
        body: json!({"issuanceId": "iss-1", "status": "WAIT_ONCHAIN"}),
    }
}

async fn the_same_key_and_payload_after_completion_replays_the_stored_response(w: World) {
    let idem = w.idem();
    let lease_until = w.clock.now().plus(Duration::from_secs(30));
    let Begin::Proceed(lease) = idem
        .begin("pk_a", &key("k1"), &hash(json!({"a": 1})), lease_until)
        .await
        .unwrap()
    else {
        panic!("the first request proceeds")
    };
    idem.complete(&lease, &response()).await.unwrap();
    match idem
        .begin("pk_a", &key("k1"), &hash(json!({"a": 1})), lease_until)
        .await
        .unwrap()
    {
        Begin::Replay(r) => assert_eq!(r, response()),
        other => panic!("expected a replay, got {other:?}"),
    }
}

#[tokio::test]
async fn the_payload_hash_ignores_formatting_but_not_content() {
    let a: serde_json::Value = serde_json::from_str(r#"{"b": 2, "a": 1}"#).unwrap();
    let b: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
    assert_eq!(hash(a), hash(b));
    assert_ne!(hash(json!({"a": 1})), hash(json!({"a": 2})));
}

async fn the_same_key_with_another_payload_is_refused(w: World) {
    let idem = w.idem();
    let until = w.clock.now().plus(Duration::from_secs(30));
    idem.begin("pk_a", &key("k1"), &hash(json!({"a": 1})), until)
        .await
        .unwrap();
    let err = idem
        .begin("pk_a", &key("k1"), &hash(json!({"a": 2})), until)
        .await
        .unwrap_err();
    assert!(matches!(err, IdempotencyError::KeyReused), "{err:?}");
    assert_eq!(err.to_api_error().status(), 422);
}

async fn keys_are_per_caller(w: World) {
    let idem = w.idem();
    let until = w.clock.now().plus(Duration::from_secs(30));
    idem.begin("pk_a", &key("k1"), &hash(json!({"a": 1})), until)
        .await
        .unwrap();
    let other = idem
        .begin("pk_b", &key("k1"), &hash(json!({"a": 2})), until)
        .await
        .unwrap();
    assert!(matches!(other, Begin::Proceed(_)));
}

async fn a_duplicate_during_the_lease_is_told_to_retry_after_the_lease(w: World) {
    let idem = w.idem();
    let until = w.clock.now().plus(Duration::from_millis(12_500));
    idem.begin("pk_a", &key("k1"), &hash(json!({})), until)
        .await
        .unwrap();
    let err = idem
        .begin("pk_a", &key("k1"), &hash(json!({})), until)
        .await
        .unwrap_err();
    match &err {
        IdempotencyError::InProgress { retry_after_secs } => assert_eq!(*retry_after_secs, 13),
        other => panic!("{other:?}"),
    }
    let api = err.to_api_error();
    assert_eq!((api.status(), api.retry_after_secs()), (409, Some(13)));
}

async fn a_lease_with_zero_milliseconds_left_is_still_a_lease(w: World) {
    let idem = w.idem();
    let until = w.clock.now().plus(Duration::from_secs(5));
    idem.begin("pk_a", &key("k1"), &hash(json!({})), until)
        .await
        .unwrap();
    w.clock.set(until);
    let err = idem
        .begin("pk_a", &key("k1"), &hash(json!({})), until)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IdempotencyError::InProgress {
                retry_after_secs: 1
            }
        ),
        "{err:?}"
    );
}

async fn a_crashed_attempt_is_taken_over_after_its_lease_and_cannot_complete_afterwards(w: World) {
    let idem = w.idem();
    let until = w.clock.now().plus(Duration::from_secs(5));
    let Begin::Proceed(crashed) = idem
        .begin("pk_a", &key("k1"), &hash(json!({})), until)
        .await
        .unwrap()
    else {
        panic!()
    };
    w.clock.advance(Duration::from_millis(5_001));
    let later = w.clock.now().plus(Duration::from_secs(5));
    let Begin::Proceed(retry) = idem
        .begin("pk_a", &key("k1"), &hash(json!({})), later)
        .await
        .unwrap()
    else {
        panic!("the retry takes the record over")
    };
    // The crashed attempt wakes up late: its outcome must not be stored.
    let err = idem.complete(&crashed, &response()).await.unwrap_err();
    assert!(matches!(err, IdempotencyError::LeaseLost), "{err:?}");
    idem.complete(&retry, &response()).await.unwrap();
    assert!(matches!(
        idem.begin("pk_a", &key("k1"), &hash(json!({})), later)
            .await
            .unwrap(),
        Begin::Replay(_)
    ));
}

async fn a_released_key_can_be_used_again_at_once(w: World) {
    let idem = w.idem();
    let until = w.clock.now().plus(Duration::from_secs(30));
    let Begin::Proceed(lease) = idem
        .begin("pk_a", &key("k1"), &hash(json!({})), until)
        .await
        .unwrap()
    else {
        panic!()
    };
    idem.release(&lease).await.unwrap();
    assert!(matches!(
        idem.begin("pk_a", &key("k1"), &hash(json!({})), until)
            .await
            .unwrap(),
        Begin::Proceed(_)
    ));
}

async fn a_record_past_its_window_is_forgotten(w: World) {
    let idem = w.idem();
    let until = w.clock.now().plus(Duration::from_secs(30));
    let Begin::Proceed(lease) = idem
        .begin("pk_a", &key("k1"), &hash(json!({"a": 1})), until)
        .await
        .unwrap()
    else {
        panic!()
    };
    idem.complete(&lease, &response()).await.unwrap();
    w.clock.advance(Duration::from_secs(3601));
    let until = w.clock.now().plus(Duration::from_secs(30));
    assert!(matches!(
        idem.begin("pk_a", &key("k1"), &hash(json!({"a": 2})), until)
            .await
            .unwrap(),
        Begin::Proceed(_)
    ));
}

async fn of_fifty_concurrent_duplicates_exactly_one_proceeds(w: World) {
    let w = Arc::new(w);
    let until = w.clock.now().plus(Duration::from_secs(30));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let w = Arc::clone(&w);
        tasks.push(tokio::spawn(async move {
            w.idem()
                .begin("pk_a", &key("same"), &hash(json!({"x": 1})), until)
                .await
        }));
    }
    let mut proceeded = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Begin::Proceed(_)) => proceeded += 1,
            Err(IdempotencyError::InProgress { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(proceeded, 1);
}

#[test]
fn malformed_idempotency_keys_are_refused() {
    assert!(IdempotencyKey::parse("").is_err());
    assert!(IdempotencyKey::parse("has space").is_err());
    assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    assert!(IdempotencyKey::parse("order-123_retry.1").is_ok());
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod on_embedded_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::embedded().await).await;
                }
            )*
        }
        mod on_dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::dynamodb().await).await;
                }
            )*
        }
    };
}

scenarios!(
    the_same_key_and_payload_after_completion_replays_the_stored_response,
    the_stored_payload_fingerprint_is_keyed_not_a_plain_hash_of_the_body,
    a_request_completed_before_fingerprints_were_keyed_still_replays,
    the_same_key_with_another_payload_is_refused,
    keys_are_per_caller,
    a_duplicate_during_the_lease_is_told_to_retry_after_the_lease,
    a_lease_with_zero_milliseconds_left_is_still_a_lease,
    a_crashed_attempt_is_taken_over_after_its_lease_and_cannot_complete_afterwards,
    a_released_key_can_be_used_again_at_once,
    a_record_past_its_window_is_forgotten,
    of_fifty_concurrent_duplicates_exactly_one_proceeds,
);
