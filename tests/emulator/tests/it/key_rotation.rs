//! The key rotation bootstrap under the Lambda emulator: the daily schedule and the four steps of
//! the Secrets Manager rotation contract, against moto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Harness, body, invoke, status};
use serde_json::Value;

async fn published_kids(h: &Harness) -> Vec<String> {
    // A fresh JWKS container reads the key set as it is now.
    let jwks = h.function("JwksFunction");
    let answer = invoke(&jwks, &h.event("jwks.json")).await;
    assert_eq!(status(&answer), 200, "{answer}");
    body(&answer)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_rotation_bootstrap_runs_its_schedule_and_the_four_secrets_manager_steps() {
    let h = Harness::start().await;
    let rotation = h.function("KeyRotationFunction");

    let answer = invoke(&rotation, &h.event("key-rotation-scheduled.json")).await;
    assert!(
        answer["action"] == "none" || answer["action"] == "rotated",
        "{answer}"
    );
    let before = published_kids(&h).await;

    let token = uuid::Uuid::new_v4().to_string();
    let step = |file: &str| {
        let mut e = h.event(file);
        e["SecretId"] = Value::String(shared::keys::DEFAULT_KEY_SET_SECRET.into());
        e["ClientRequestToken"] = Value::String(token.clone());
        e
    };
    let created = invoke(&rotation, &step("key-rotation-create-secret.json")).await;
    assert_eq!(created["step"], "createSecret", "{created}");
    // Idempotent per step, as Secrets Manager may call a step again.
    let again = invoke(&rotation, &step("key-rotation-create-secret.json")).await;
    assert_eq!(again["action"], "already staged", "{again}");
    let set = invoke(&rotation, &step("key-rotation-set-secret.json")).await;
    assert_eq!(set["step"], "setSecret", "{set}");
    let tested = invoke(&rotation, &step("key-rotation-test-secret.json")).await;
    let new_kid = tested["tested"]
        .as_str()
        .expect("the tested kid")
        .to_owned();
    assert!(!before.contains(&new_kid), "the pending key is new");
    let finished = invoke(&rotation, &step("key-rotation-finish-secret.json")).await;
    assert_eq!(finished["step"], "finishSecret", "{finished}");

    let after = published_kids(&h).await;
    assert!(
        after.contains(&new_kid),
        "{new_kid} is published after finishSecret: {after:?}"
    );
    for kid in &before {
        assert!(
            after.contains(kid),
            "{kid} stays published during the overlap"
        );
    }

    // A rotation event for another secret is refused as a function error.
    let mut foreign = h.event("key-rotation-create-secret.json");
    foreign["SecretId"] = Value::String("someone-else/secret".into());
    let answer = rotation.invoke(&foreign).await.unwrap();
    assert!(answer["errorType"].is_string(), "{answer}");
}
