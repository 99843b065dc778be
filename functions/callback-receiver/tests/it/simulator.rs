#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The platform simulator delivering to the receiver over HTTPS, as the platform would: signed
//! with its own, independent signer, retried on failure.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

async fn simulator(url: &str, secret: &str) -> platform_sim::SimHandle {
    simulator_with(url, |c| c.webhook_secrets = vec![secret.to_owned()]).await
}

async fn simulator_with(
    url: &str,
    tune: impl FnOnce(&mut platform_sim::SimConfig),
) -> platform_sim::SimHandle {
    let mut config = platform_sim::SimConfig {
        callback_url: Some(url.to_owned()),
        callback_base_delay: Duration::from_millis(20),
        callback_retries: 3,
        tls: Some(test_support::local_ca()),
        ..platform_sim::SimConfig::default()
    };
    tune(&mut config);
    platform_sim::spawn(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn authorize(sim: &platform_sim::SimHandle, extra: serde_json::Value) {
    let mut body = json!({"userId": USER, "verifierDid": VERIFIER, "schemaId": SCHEMA});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = test_support::https_client()
        .post(format!("{}/sim/verifier-authorizations", sim.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn the_simulators_callback_is_answered_500_while_the_store_is_down_and_its_retry_is_recorded_and_routed_once()
 {
    let w = world().await;
    // Two deliveries' worth of failed writes (each delivery tries the write twice).
    w.spy.fail_writes.store(4, Ordering::SeqCst);
    let receiver = serve(Arc::clone(&w.deps)).await;
    let sim = simulator(&receiver.url, VECTOR_SECRET).await;
    authorize(&sim, json!({})).await;
    eventually(async || {
        sim.callbacks()
            .first()
            .is_some_and(|c| c.status == platform_sim::DeliveryStatus::Delivered)
    })
    .await;
    let record = sim.callbacks()[0].clone();
    let statuses: Vec<Option<u16>> = record.attempts.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, vec![Some(500), Some(500), Some(200)]);
    assert_eq!(w.delivered(), 1);
    assert_eq!(w.spy.committed_with("AUDIT#").len(), 1);
    assert_eq!(w.metric("CallbackStoreFailures"), 2.0);
    let audit = w.audit_record(USER, VERIFIER, SCHEMA).await.unwrap();
    assert_eq!(audit.data["deliveryId"], record.webhook_id.as_str());
    // The simulator sends the documented minimum by default: no event id in the body.
    assert_eq!(audit.data["eventId"], Value::Null);
    assert_eq!(audit.data["issuerDid"], Value::Null);
}

/// One authorization of `shape` delivered by the simulator to the receiver over HTTP; its
/// record (and the receiver, kept alive).
async fn delivered(w: &World, shape: &str) -> (platform_sim::CallbackRecord, Receiver) {
    let receiver = serve(Arc::clone(&w.deps)).await;
    let sim = simulator(&receiver.url, VECTOR_SECRET).await;
    authorize(&sim, json!({"shape": shape})).await;
    eventually(async || {
        sim.callbacks()
            .first()
            .is_some_and(|c| c.status == platform_sim::DeliveryStatus::Delivered)
    })
    .await;
    (sim.callbacks()[0].clone(), receiver)
}

#[tokio::test]
async fn a_callback_of_exactly_the_documented_members_is_recorded_audited_and_routed() {
    let w = world().await;
    let (record, _receiver) = delivered(&w, "minimal").await;
    assert_eq!(
        serde_json::to_value(&record.payload).unwrap(),
        json!({"userId": USER, "verifierDid": VERIFIER, "schemaId": SCHEMA}),
        "the minimal shape carries exactly the documented members"
    );
    assert_eq!(record.attempts.last().unwrap().http_status, Some(200));
    assert_eq!(w.delivered(), 1);
    let audit = w.audit_record(USER, VERIFIER, SCHEMA).await.unwrap();
    assert_eq!(audit.data["outcome"], "routed");
    assert_eq!(audit.data["authorizedAt"], Value::Null);
}

#[tokio::test]
async fn a_callback_of_the_rich_shape_is_recorded_with_its_event_id_issuer_and_time() {
    let w = world().await;
    let (record, _receiver) = delivered(&w, "rich").await;
    assert_eq!(w.delivered(), 1);
    let audit = w.audit_record(USER, VERIFIER, SCHEMA).await.unwrap();
    assert_eq!(audit.data["eventId"], record.event_id.as_str());
    assert_eq!(audit.data["issuerDid"], ISSUER);
    assert!(audit.data["authorizedAt"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn a_deliberately_duplicated_and_redelivered_event_is_acknowledged_every_time_and_routed_once()
 {
    let w = world().await;
    let receiver = serve(Arc::clone(&w.deps)).await;
    let sim = simulator(&receiver.url, VECTOR_SECRET).await;
    authorize(&sim, json!({"deliverTwice": true})).await;
    eventually(async || {
        sim.callbacks()
            .first()
            .is_some_and(|c| c.deliveries_done == 2)
    })
    .await;
    let id = sim.callbacks()[0].id.clone();
    let r = test_support::https_client()
        .post(format!("{}/sim/callbacks/{id}/redeliver", sim.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    eventually(async || sim.callbacks()[0].deliveries_done == 3).await;
    let record = sim.callbacks()[0].clone();
    assert!(record.attempts.iter().all(|a| a.http_status == Some(200)));
    assert_eq!(w.delivered(), 1);
    assert_eq!(w.spy.committed_with("AUDIT#").len(), 1);
    assert_eq!(w.metric("CallbackDuplicates"), 2.0);
}

#[tokio::test]
async fn a_simulator_signing_with_another_secret_never_gets_through() {
    let w = world().await;
    let receiver = serve(Arc::clone(&w.deps)).await;
    let sim = simulator(&receiver.url, WRONG_SECRET).await;
    authorize(&sim, json!({})).await;
    eventually(async || {
        sim.callbacks()
            .first()
            .is_some_and(|c| c.status == platform_sim::DeliveryStatus::Failed)
    })
    .await;
    let record = sim.callbacks()[0].clone();
    assert!(record.attempts.iter().all(|a| a.http_status == Some(401)));
    assert_eq!(w.delivered(), 0);
    assert!(w.spy.committed_with("AUDIT#").is_empty());
}

#[tokio::test]
async fn a_simulator_signing_with_v1a_is_accepted_by_a_receiver_holding_only_its_public_key() {
    let (whsk, whpk) = platform_sim::generate_webhook_signing_key(11, 0);
    let w = world_with(Setup {
        secrets: vec![],
        public_keys: vec![whpk.clone()],
        ..Setup::default()
    })
    .await;
    let receiver = serve(Arc::clone(&w.deps)).await;
    let sim = simulator_with(&receiver.url, |c| {
        c.webhook_signing_keys = vec![whsk];
        c.webhook_signatures = Some(platform_sim::WebhookSignatures::V1a);
    })
    .await;
    // What an operator registers in the receiver's document.
    assert_eq!(sim.webhook_public_keys(), vec![whpk]);
    authorize(&sim, json!({})).await;
    eventually(async || {
        sim.callbacks()
            .first()
            .is_some_and(|c| c.status == platform_sim::DeliveryStatus::Delivered)
    })
    .await;
    let record = sim.callbacks()[0].clone();
    assert_eq!(record.attempts.len(), 1, "accepted at the first attempt");
    assert_eq!(w.delivered(), 1);
    let audit = w.audit_record(USER, VERIFIER, SCHEMA).await.unwrap();
    assert_eq!(audit.data["deliveryId"], record.webhook_id.as_str());
    assert!(w.failure_reasons().is_empty());
}

#[tokio::test]
async fn a_simulator_signing_with_both_is_accepted_by_a_receiver_holding_only_the_secret_and_by_one_holding_only_the_public_key()
 {
    let (whsk, whpk) = platform_sim::generate_webhook_signing_key(12, 0);
    // A receiver that knows only the public key, then one that knows only the secret.
    for (secrets, public_keys) in [(vec![], vec![whpk.clone()]), (vec![VECTOR_SECRET], vec![])] {
        let w = world_with(Setup {
            secrets,
            public_keys,
            ..Setup::default()
        })
        .await;
        let receiver = serve(Arc::clone(&w.deps)).await;
        let key = whsk.clone();
        let sim = simulator_with(&receiver.url, |c| {
            c.webhook_secrets = vec![VECTOR_SECRET.to_owned()];
            c.webhook_signing_keys = vec![key];
        })
        .await;
        assert_eq!(
            sim.webhook_signatures(),
            platform_sim::WebhookSignatures::Both
        );
        authorize(&sim, json!({})).await;
        eventually(async || {
            sim.callbacks()
                .first()
                .is_some_and(|c| c.status == platform_sim::DeliveryStatus::Delivered)
        })
        .await;
        assert_eq!(sim.callbacks()[0].attempts.len(), 1);
        assert_eq!(w.delivered(), 1);
    }
}
