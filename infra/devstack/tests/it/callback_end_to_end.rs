//! End to end on the devstack binary: the platform simulator plays a verifier being authorized,
//! its signed callback (signed with the `webhookSecret` of dev-credentials.json) reaches the
//! devstack's receiver, the simulator marks it `DELIVERED`, and the receiver's store holds exactly
//! one audit record for it — even though the simulator delivers the event twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

const USER: &str = "erin.e2e@example.com";
const VERIFIER: &str = "did:air:id:test:verifier-e2e";
const SCHEMA: &str = "kyc-document-r1";

/// Every `AUDIT#` row of the devstack's embedded store file, read with SQLite directly.
fn audit_rows(data_dir: &std::path::Path) -> Vec<(String, Value)> {
    let conn = rusqlite::Connection::open(data_dir.join("records.sqlite3")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = conn
        .prepare("SELECT pk, data FROM records WHERE pk LIKE 'AUDIT#%' ORDER BY pk")
        .unwrap();
    stmt.query_map([], |row| {
        let pk: String = row.get(0)?;
        let data: String = row.get(1)?;
        Ok((pk, serde_json::from_str(&data).unwrap()))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[tokio::test]
async fn a_verifier_authorization_at_the_simulator_ends_delivered_with_one_audit_record() {
    let dir = tempfile::tempdir().unwrap();
    let stack = common::start(dir.path());
    let platform = stack.ready["platform"].as_str().unwrap().to_owned();
    let creds = stack.credentials();
    assert!(
        creds["webhookSecret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    let client = stack.client();
    let r = client
        .post(format!("{platform}/sim/verifier-authorizations"))
        .json(&json!({
            "userId": USER,
            "verifierDid": VERIFIER,
            "schemaId": SCHEMA,
            "deliverTwice": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    let mut record = Value::Null;
    for _ in 0..200 {
        let all: Value = client
            .get(format!("{platform}/sim/callbacks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        record = all["callbacks"][0].clone();
        if record["deliveriesDone"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(record["status"], "DELIVERED", "{record}");
    assert_eq!(record["deliveriesDone"], 2, "{record}");
    let attempts = record["attempts"].as_array().unwrap();
    assert!(
        attempts.iter().all(|a| a["httpStatus"] == 200),
        "every delivery, the duplicate included, is acknowledged: {record}"
    );

    let rows = audit_rows(dir.path());
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (pk, audit) = &rows[0];
    assert_eq!(audit["deliveryId"], record["webhookId"]);
    // The simulator sends the documented minimum: no event id in the body.
    assert_eq!(audit["eventId"], Value::Null);
    assert_eq!(audit["verifierDid"], VERIFIER);
    assert_eq!(audit["schemaId"], SCHEMA);
    assert_eq!(audit["outcome"], "routed");
    assert!(!audit.to_string().contains(USER), "{audit}");

    // The row is the one the receiver derives from the user's keyed hash (the devstack's data
    // keys), the verifier and the schema.
    let clock: shared::clock::SharedClock = Arc::new(shared::clock::SystemClock);
    let files = shared::secrets::file::FileSecrets::open(dir.path(), clock.clone()).unwrap();
    let data_keys = shared::pii::DataKeySource::new(
        files,
        shared::secrets::SecretName::new(shared::pii::DEFAULT_DATA_KEYS_SECRET).unwrap(),
        Duration::from_secs(1),
        clock,
    );
    let protector = data_keys.protector().await.unwrap();
    let dedup = callback_receiver::dedup_key(&protector, USER, VERIFIER, SCHEMA);
    assert!(
        pk.starts_with(&format!("AUDIT#cak-{dedup}-")),
        "{pk} is an occurrence of {dedup}"
    );
    assert_eq!(audit["userIdHash"], protector.hash(USER).as_str());
}
