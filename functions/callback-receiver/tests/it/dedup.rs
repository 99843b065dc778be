#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Dedup, the audit trail, routing and store failures on the embedded store.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use serde_json::Value;
use shared::clock::Clock;

#[tokio::test]
async fn a_new_event_costs_one_store_write_and_a_duplicate_one_failed_conditional_write() {
    let w = world().await;
    let (status, _, _) = w.send(w.authorization()).await;
    assert_eq!(status, 200);
    assert_eq!(w.spy.writes.load(Ordering::SeqCst), 1);
    assert_eq!(w.spy.gets.load(Ordering::SeqCst), 0);
    // The compliance, audit and counter records and the two dedup records (the triple's and the
    // event id's), in that one write.
    assert_eq!(w.spy.committed.lock().unwrap().len(), 5);
    w.spy.reset_counts();

    let (status, answer, _) = w.send(w.authorization()).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(w.spy.writes.load(Ordering::SeqCst), 1);
    assert_eq!(w.spy.failed_conditions.load(Ordering::SeqCst), 1);
    assert_eq!(w.spy.gets.load(Ordering::SeqCst), 0);
    assert_eq!(w.delivered(), 1, "a duplicate is not routed again");
    assert_eq!(w.events.events().len(), 1);
    assert_eq!(w.metric("CallbackDuplicates"), 1.0);
    assert_eq!(w.metric("CallbacksReceived"), 2.0);
}

#[tokio::test]
async fn fifty_concurrent_deliveries_of_one_event_are_routed_exactly_once_and_all_answered_2xx() {
    let w = Arc::new(world().await);
    let body = body_for(USER, VERIFIER, SCHEMA, "evt_storm");
    // The platform retries with the same webhook-id; some deliveries are signed later.
    let requests: Vec<_> = (0..50i64)
        .map(|i| w.signed_with(&[VECTOR_SECRET], "msg_storm", w.now_secs() - (i % 3), &body))
        .collect();
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|req| {
            let w = Arc::clone(&w);
            tokio::spawn(async move { w.send(req).await.0 })
        })
        .collect();
    let statuses: Vec<u16> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(w.delivered(), 1);
    assert_eq!(w.events.events().len(), 1);
    assert_eq!(w.spy.committed_with("AUDIT#").len(), 1);
    assert_eq!(w.metric("CallbackDuplicates"), 49.0);
    assert_eq!(w.spy.failed_conditions.load(Ordering::SeqCst), 49);
}

#[tokio::test]
async fn the_same_authorization_under_another_delivery_id_is_a_duplicate_and_another_verifier_is_not()
 {
    let w = world().await;
    let now = w.now_secs();
    let first = body_for(USER, VERIFIER, SCHEMA, "evt_a");
    let again = body_for(USER, VERIFIER, SCHEMA, "evt_b");
    let other = body_for(USER, "did:air:id:test:verifier-2", SCHEMA, "evt_c");
    let (s1, a1, _) = w
        .send(w.signed_with(&[VECTOR_SECRET], "msg_a", now, &first))
        .await;
    let (s2, a2, _) = w
        .send(w.signed_with(&[VECTOR_SECRET], "msg_b", now, &again))
        .await;
    let (s3, a3, _) = w
        .send(w.signed_with(&[VECTOR_SECRET], "msg_c", now, &other))
        .await;
    assert_eq!((s1, a1["status"].as_str()), (200, Some("recorded")));
    assert_eq!((s2, a2["status"].as_str()), (200, Some("duplicate")));
    assert_eq!((s3, a3["status"].as_str()), (200, Some("recorded")));
    assert_eq!(w.delivered(), 2);
    // The user id is normalised like an e-mail address before hashing.
    let shouting = body_for(&USER.to_uppercase(), VERIFIER, SCHEMA, "evt_d");
    let (_, a4, _) = w
        .send(w.signed_with(&[VECTOR_SECRET], "msg_d", now, &shouting))
        .await;
    assert_eq!(a4["status"], "duplicate");
}

#[tokio::test]
async fn the_audit_trail_holds_who_whom_which_schema_when_and_the_delivery_but_no_raw_user_id() {
    let w = world().await;
    let (status, _, _) = w
        .send(w.signed_with(
            &[VECTOR_SECRET],
            "msg_audit",
            w.now_secs(),
            &body_for(USER, VERIFIER, SCHEMA, "evt_audit"),
        ))
        .await;
    assert_eq!(status, 200);
    let protector = w.protector().await;
    let audit = w.audit_record(USER, VERIFIER, SCHEMA).await.unwrap();
    let d = &audit.data;
    assert_eq!(d["userIdHash"], protector.hash(USER).as_str());
    assert_eq!(d["verifierDid"], VERIFIER);
    assert_eq!(d["schemaId"], SCHEMA);
    assert_eq!(d["issuerDid"], ISSUER);
    assert_eq!(d["authorizedAt"], "2026-11-21T12:00:00Z");
    assert_eq!(d["deliveryId"], "msg_audit");
    assert_eq!(d["eventId"], "evt_audit");
    assert_eq!(d["outcome"], "routed");
    assert_eq!(
        d["routes"],
        serde_json::json!(["compliance", "counter", "events"])
    );
    assert!(d["receivedAt"].as_str().unwrap().ends_with('Z'));

    // The compliance record can tell whose consent it was, to a holder of the data keys only.
    let key = callback_receiver::ComplianceRecord::key(
        &w.occurrence(USER, VERIFIER, SCHEMA).await.unwrap(),
    )
    .unwrap();
    let compliance = w.spy.inner().get(&key).await.unwrap().unwrap();
    assert_eq!(compliance.data["review"], "pending");
    let sealed: shared::pii::Sealed =
        serde_json::from_value(compliance.data["userIdSealed"].clone()).unwrap();
    assert_eq!(
        protector.open(&sealed, key.as_str()).unwrap().expose(),
        USER
    );

    // Nowhere in the stored records, the forwarded event or the answer is the raw user id.
    let mut stored = String::new();
    let committed = w.spy.committed.lock().unwrap().clone();
    for k in &committed {
        let key = parse_key(k);
        stored.push_str(
            &w.spy
                .inner()
                .get(&key)
                .await
                .unwrap()
                .unwrap()
                .data
                .to_string(),
        );
    }
    stored.push_str(&Value::Array(w.events.events()).to_string());
    assert!(stored.contains(protector.hash(USER).as_str()));
    assert!(!stored.contains(USER), "{stored}");
}

fn parse_key(text: &str) -> shared::store::RecordKey {
    let (kind, id) = text.split_once('#').unwrap();
    let kind = match kind {
        "CB" => shared::store::RecordKind::Callback,
        "AUDIT" => shared::store::RecordKind::Audit,
        other => panic!("unexpected kind {other}"),
    };
    shared::store::RecordKey::new(kind, id).unwrap()
}

#[tokio::test]
async fn the_forwarded_event_is_eventbridge_shaped_with_facts_but_no_personal_data() {
    let w = world().await;
    w.send(w.authorization()).await;
    let events = w.events.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["source"], callback_receiver::routes::EVENT_SOURCE);
    assert_eq!(
        e["detail-type"],
        callback_receiver::routes::EVENT_DETAIL_TYPE
    );
    assert_eq!(e["version"], "0");
    assert_eq!(e["detail"]["verifierDid"], VERIFIER);
    assert_eq!(e["detail"]["schemaId"], SCHEMA);
    assert!(e["detail"]["userIdHash"].is_string());
    assert!(!e.to_string().contains(USER));
}

#[tokio::test]
async fn store_unavailable_answers_500_without_internals_and_a_later_retry_is_recorded_and_routed_once()
 {
    let w = world().await;
    w.spy.down.store(true, Ordering::SeqCst);
    let req = w.authorization();
    let (status, answer, _) = w.send(req.clone()).await;
    assert_eq!(status, 500);
    assert_eq!(answer["errorType"], "internal_error");
    assert_eq!(answer["errorMessage"], "internal error");
    assert!(!answer.to_string().contains("outage"), "{answer}");
    assert_eq!(w.metric("CallbackStoreFailures"), 1.0);
    assert_eq!(w.delivered(), 0, "nothing is routed before it is recorded");

    // The store is back; the platform retries the same delivery.
    w.spy.down.store(false, Ordering::SeqCst);
    let (status, answer, _) = w.send(req.clone()).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("recorded")));
    let (status, answer, _) = w.send(req).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(w.delivered(), 1);
    assert_eq!(w.spy.committed_with("AUDIT#").len(), 1);
}

#[tokio::test]
async fn one_failed_write_is_tried_again_within_the_same_delivery() {
    let w = world().await;
    w.spy.fail_writes.store(1, Ordering::SeqCst);
    let (status, answer, _) = w.send(w.authorization()).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("recorded")));
    assert_eq!(w.spy.writes.load(Ordering::SeqCst), 2);
    assert_eq!(w.delivered(), 1);
}

/// A store whose transaction commits but reports a fault, as a cancelled concurrent DynamoDB
/// transaction does for the loser while the winner committed.
struct CommitsThenFails(Arc<dyn shared::store::RecordStore>);

#[async_trait::async_trait]
impl shared::store::RecordStore for CommitsThenFails {
    async fn get(
        &self,
        key: &shared::store::RecordKey,
    ) -> Result<Option<shared::store::Record>, shared::store::StoreError> {
        self.0.get(key).await
    }
    async fn write(
        &self,
        write: shared::store::Write,
    ) -> Result<shared::store::Version, shared::store::StoreError> {
        self.0.write(write).await
    }
    async fn write_all(
        &self,
        writes: Vec<shared::store::Write>,
    ) -> Result<(), shared::store::StoreError> {
        let _ = self.0.write_all(writes).await;
        Err(shared::store::StoreError::Unavailable(Box::new(Outage)))
    }
}

#[tokio::test]
async fn a_fault_after_another_delivery_committed_the_event_is_answered_as_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let clock: shared::clock::SharedClock = Arc::new(shared::clock::SystemClock);
    let inner: Arc<dyn shared::store::RecordStore> = Arc::new(
        shared::store::embedded::EmbeddedStore::open(dir.path().join("r.sqlite3"), clock).unwrap(),
    );
    let w = world_with(Setup {
        store: Some(Arc::new(CommitsThenFails(inner))),
        ..Setup::default()
    })
    .await;
    let (status, answer, _) = w.send(w.authorization()).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(w.metric("CallbackStoreFailures"), 0.0);
}

#[tokio::test]
async fn a_route_that_fails_after_recording_is_logged_and_counted_and_the_callback_still_acknowledged()
 {
    let w = world().await;
    w.counter.fail.store(true, Ordering::SeqCst);
    let (status, _, _) = w.send(w.authorization()).await;
    assert_eq!(status, 200);
    assert_eq!(w.metric("CallbackRouteFailures"), 1.0);
    assert!(w.audit_record(USER, VERIFIER, SCHEMA).await.is_some());
    // The event forwarder, after it in the table, still ran.
    assert_eq!(w.events.events().len(), 1);
}

#[tokio::test]
async fn unreadable_data_keys_answer_500_and_record_nothing() {
    let w = world().await;
    let name = w.deps.config.data_keys_secret.clone();
    w.secrets
        .put_current(
            &name,
            &shared::secrets::VersionId::random(),
            &String::from("not a data-keys document").into(),
        )
        .await
        .unwrap();
    w.deps.data_keys.invalidate();
    let (status, answer, _) = w.send(w.authorization()).await;
    assert_eq!(
        (status, answer["errorType"].as_str()),
        (500, Some("internal_error"))
    );
    assert_eq!(answer["errorMessage"], "internal error");
    assert_eq!(w.spy.writes.load(Ordering::SeqCst), 0);
    assert_eq!(w.metric("CallbackStoreFailures"), 1.0, "a 5xx is counted");
}

#[tokio::test]
async fn a_delivery_of_exactly_the_documented_members_is_recorded_audited_and_routed() {
    let w = world().await;
    let (status, answer, _) = w
        .send(w.signed(&minimal_body(USER, VERIFIER, SCHEMA)))
        .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("recorded")));
    assert_eq!(w.delivered(), 1);
    let audit = w.audit_record(USER, VERIFIER, SCHEMA).await.unwrap();
    assert_eq!(audit.data["outcome"], "routed");
    assert_eq!(audit.data["eventId"], Value::Null);
    assert_eq!(audit.data["issuerDid"], Value::Null);
    assert_eq!(audit.data["authorizedAt"], Value::Null);
    // The forwarded event still has a time: the instant it was received.
    assert_eq!(
        w.events.events()[0]["time"],
        audit.data["receivedAt"],
        "{:?}",
        w.events.events()
    );

    // Its retry, still without an event id, is a duplicate.
    let (_, again, _) = w
        .send(w.signed(&minimal_body(USER, VERIFIER, SCHEMA)))
        .await;
    assert_eq!(again["status"], "duplicate");
    assert_eq!(w.delivered(), 1);
}

#[tokio::test]
async fn unusable_optional_members_are_ignored_rather_than_refusing_the_consent() {
    let w = world().await;
    let body = serde_json::json!({
        "userId": USER, "verifierDid": VERIFIER, "schemaId": SCHEMA,
        "authorizedAt": "yesterday", "eventId": "", "issuerDid": "x\u{0007}y", "extra": {"a": 1}
    })
    .to_string();
    let (status, _, _) = w.send(w.signed(&body)).await;
    assert_eq!(status, 200);
    let audit = w.audit_record(USER, VERIFIER, SCHEMA).await.unwrap();
    assert_eq!(audit.data["authorizedAt"], Value::Null);
    assert_eq!(audit.data["eventId"], Value::Null);
    assert_eq!(audit.data["issuerDid"], Value::Null);
    // A required member missing is still refused.
    let (status, answer, _) = w
        .send(w.signed(r#"{"userId": "a@example.com", "schemaId": "kyc-basic"}"#))
        .await;
    assert_eq!(
        (status, answer["errorType"].as_str()),
        (400, Some("validation_failed"))
    );
}

#[tokio::test]
async fn a_re_consent_after_the_dedup_window_is_audited_and_routed_again() {
    let w = world().await;
    let (_, first, _) = w
        .send(w.signed(&minimal_body(USER, VERIFIER, SCHEMA)))
        .await;
    assert_eq!(first["status"], "recorded");
    // Within the window (24 h by default) it is a retry.
    w.clock.advance(std::time::Duration::from_secs(23 * 3600));
    let (_, retry, _) = w
        .send(w.signed(&minimal_body(USER, VERIFIER, SCHEMA)))
        .await;
    assert_eq!(retry["status"], "duplicate");
    assert_eq!(w.audit_keys().len(), 1);
    // Months later the same user authorizes the same verifier again: a new consent event.
    w.clock.advance(std::time::Duration::from_secs(90 * 86_400));
    let (status, again, _) = w
        .send(w.signed(&minimal_body(USER, VERIFIER, SCHEMA)))
        .await;
    assert_eq!((status, again["status"].as_str()), (200, Some("recorded")));
    assert_eq!(w.delivered(), 2, "the re-consent is routed again");
    let audits = w.audit_keys();
    assert_eq!(
        audits.len(),
        2,
        "each consent has its own audit record: {audits:?}"
    );
    assert_ne!(audits[0], audits[1]);
    // The first audit record is still there.
    let first_key = audits[0].strip_prefix("AUDIT#").unwrap();
    let first_key =
        shared::store::RecordKey::new(shared::store::RecordKind::Audit, first_key).unwrap();
    assert!(w.spy.inner().get(&first_key).await.unwrap().is_some());
}

#[tokio::test]
async fn a_late_retry_of_one_event_id_is_a_duplicate_even_past_the_triples_window() {
    let w = world().await;
    let body = body_for(USER, VERIFIER, SCHEMA, "evt_late");
    let (_, first, _) = w.send(w.signed(&body)).await;
    assert_eq!(first["status"], "recorded");
    // Two days later (past the 24 h window, within the 7-day event id retention).
    w.clock.advance(std::time::Duration::from_secs(2 * 86_400));
    let (_, late, _) = w.send(w.signed(&body)).await;
    assert_eq!(late["status"], "duplicate");
    assert_eq!(w.delivered(), 1);
    // A new event id for the same triple past the window is a new consent.
    let (_, fresh, _) = w
        .send(w.signed(&body_for(USER, VERIFIER, SCHEMA, "evt_new")))
        .await;
    assert_eq!(fresh["status"], "recorded");
    assert_eq!(w.delivered(), 2);
}

#[tokio::test]
async fn the_dedup_records_expire_with_their_window_and_the_audit_records_never() {
    let w = world().await;
    let (_, _, _) = w
        .send(w.signed(&body_for(USER, VERIFIER, SCHEMA, "evt_ttl")))
        .await;
    let now = w.clock.now();
    let dedup = callback_receiver::dedup_key(&w.protector().await, USER, VERIFIER, SCHEMA)
        .callback_key()
        .unwrap();
    let dedup = w.spy.inner().get(&dedup).await.unwrap().unwrap();
    let expires = dedup.expires_at.unwrap();
    // Stored with second precision, rounded up.
    assert!(expires.since(now) <= std::time::Duration::from_secs(86_401));
    assert!(expires.since(now) >= std::time::Duration::from_secs(86_399));
    let event = callback_receiver::EventIdKey::derive("evt_ttl")
        .callback_key()
        .unwrap();
    let event = w.spy.inner().get(&event).await.unwrap().unwrap();
    assert!(event.expires_at.unwrap().since(now) >= std::time::Duration::from_secs(7 * 86_399));
    let audit = w.audit_record(USER, VERIFIER, SCHEMA).await.unwrap();
    assert_eq!(audit.expires_at, None);
}

#[tokio::test]
async fn a_callback_naming_another_issuer_is_acknowledged_audited_and_counted_but_not_routed() {
    let w = world_with(Setup {
        env: vec![("ISSUER_DID", ISSUER.to_owned())],
        ..Setup::default()
    })
    .await;
    let body = serde_json::json!({
        "userId": USER, "verifierDid": VERIFIER, "schemaId": SCHEMA,
        "issuerDid": "did:air:id:test:someone-else"
    })
    .to_string();
    let (status, answer, _) = w.send(w.signed(&body)).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("recorded")));
    assert_eq!(w.delivered(), 0, "not routed");
    assert!(w.events.events().is_empty());
    let audit = w.audit_record(USER, VERIFIER, SCHEMA).await.unwrap();
    assert_eq!(audit.data["outcome"], "foreign_issuer");
    assert_eq!(audit.data["issuerDid"], "did:air:id:test:someone-else");
    assert_eq!(w.metric("CallbackForeignIssuer"), 1.0);
    // Ours, or none at all, is routed.
    let (_, _, _) = w
        .send(w.signed(&body_for(
            USER,
            "did:air:id:test:v-ours",
            SCHEMA,
            "evt_ours",
        )))
        .await;
    let (_, _, _) = w
        .send(w.signed(&minimal_body(USER, "did:air:id:test:v-none", SCHEMA)))
        .await;
    assert_eq!(w.delivered(), 2);
}
