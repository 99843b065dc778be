#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Dedup on the production adapters: DynamoDB and Secrets Manager on the moto server that
//! `make test` starts (`infra/scripts/with-moto.sh`). Fails loudly without it.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use shared::clock::{SharedClock, SystemClock};
use shared::secrets::aws::SecretsManagerStore;
use shared::store::dynamodb::DynamoStore;

async fn moto_world() -> World {
    let sdk = test_support::moto().await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let clock: SharedClock = Arc::new(SystemClock);
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        format!("callbacks-{run}"),
        clock,
    );
    store.create_table_if_missing().await.unwrap();
    let secrets = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&sdk));
    world_with(Setup {
        store: Some(Arc::new(store)),
        secret_port: Some(Arc::new(secrets)),
        env: vec![
            (
                "WEBHOOK_SECRETS_SECRET_NAME",
                format!("cb-{run}/webhook-secrets"),
            ),
            ("DATA_KEYS_SECRET_NAME", format!("cb-{run}/data-keys")),
        ],
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn concurrent_deliveries_on_dynamodb_are_routed_once_and_all_answered_2xx() {
    let w = Arc::new(moto_world().await);
    let body = body_for(USER, VERIFIER, SCHEMA, "evt_moto");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let w = Arc::clone(&w);
            let req = w.signed_with(&[VECTOR_SECRET], "msg_moto", w.now_secs(), &body);
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
    assert_eq!(w.spy.committed_with("AUDIT#").len(), 1);
    let audit = w.audit_record(USER, VERIFIER, SCHEMA).await.unwrap();
    assert_eq!(audit.data["deliveryId"], "msg_moto");
    assert!(!audit.data.to_string().contains(USER));
}

#[tokio::test]
async fn a_duplicate_on_dynamodb_costs_one_failed_conditional_write_and_is_not_routed() {
    let w = moto_world().await;
    let (status, _, _) = w.send(w.authorization()).await;
    assert_eq!(status, 200);
    assert_eq!(w.spy.writes.load(Ordering::SeqCst), 1);
    w.spy.reset_counts();
    let (status, answer, _) = w.send(w.authorization()).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(w.spy.writes.load(Ordering::SeqCst), 1);
    assert_eq!(w.spy.failed_conditions.load(Ordering::SeqCst), 1);
    assert_eq!(w.spy.gets.load(Ordering::SeqCst), 0);
    assert_eq!(w.delivered(), 1);
}
