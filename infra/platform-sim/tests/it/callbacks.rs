#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Verifier authorizations and signed callback delivery with retries.

use crate::common;

use std::time::Duration;

use base64::Engine as _;
use common::{Env, Receiver, issue_body};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

async fn env_with(receiver: &Receiver, tune: impl FnOnce(&mut platform_sim::SimConfig)) -> Env {
    let url = receiver.url.clone();
    Env::start_with(move |mut c| {
        c.callback_url = Some(url);
        c.webhook_secrets = vec![SECRET_A.to_owned(), SECRET_B.to_owned()];
        tune(&mut c);
        c
    })
    .await
}

fn authorization() -> Value {
    json!({"userId": "alice@example.com", "verifierDid": "did:air:id:test:verifier", "schemaId": "kyc-document-r1"})
}

async fn callbacks(env: &Env) -> Vec<Value> {
    env.get_json("/sim/callbacks").await["callbacks"]
        .as_array()
        .unwrap()
        .clone()
}

async fn wait_status(env: &Env, status: &str) -> Value {
    let mut last = Value::Null;
    common::eventually(async || {
        last = callbacks(env).await[0].clone();
        last["status"] == status
    })
    .await;
    last
}

fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = platform_sim::decode_webhook_secret(secret).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn a_verifier_authorization_delivers_a_callback_signed_under_every_secret() {
    let receiver = Receiver::start(0).await;
    let env = env_with(&receiver, |_| {}).await;
    let (_, issued) = env
        .issue("alice@example.com", issue_body("kyc-document-r1"))
        .await;
    assert_eq!(issued["credentialId"], "kyc-document-r1");

    let (status, created) = env
        .post_json("/sim/verifier-authorizations", authorization())
        .await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["status"], "NOT_SEND");
    assert_eq!(created["statusCode"], -1);

    let record = wait_status(&env, "DELIVERED").await;
    assert_eq!(record["statusCode"], 1);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let headers = &got[0].headers;
    let id = headers["webhook-id"].to_str().unwrap();
    let timestamp = headers["webhook-timestamp"].to_str().unwrap();
    assert_eq!(id, record["webhookId"]);
    assert!(id.starts_with("msg_"));
    assert!(timestamp.parse::<i64>().is_ok());
    let signatures: Vec<_> = headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(
        signatures,
        vec![
            expected_signature(SECRET_A, id, timestamp, &got[0].body),
            expected_signature(SECRET_B, id, timestamp, &got[0].body),
        ]
    );
    // The documented minimum, and nothing more, by default.
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body,
        json!({"userId": "alice@example.com", "verifierDid": "did:air:id:test:verifier",
            "schemaId": "kyc-document-r1"})
    );
}

#[tokio::test]
async fn the_rich_callback_shape_adds_the_issuer_the_time_and_the_event_id() {
    let receiver = Receiver::start(0).await;
    let env = env_with(&receiver, |_| {}).await;
    env.issue("alice@example.com", issue_body("kyc-document-r1"))
        .await;
    let mut request = authorization();
    request["shape"] = json!("rich");
    let (status, created) = env.post_json("/sim/verifier-authorizations", request).await;
    assert_eq!(status, 202, "{created}");
    let record = wait_status(&env, "DELIVERED").await;
    let got = receiver.received();
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["userId"], "alice@example.com");
    assert_eq!(body["issuerDid"], "did:air:id:test:issuer");
    assert_eq!(body["eventId"], record["eventId"]);
    assert!(body["authorizedAt"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn callbacks_are_retried_until_a_receiver_that_fails_twice_succeeds() {
    let receiver = Receiver::start(2).await;
    let env = env_with(&receiver, |_| {}).await;
    env.post_json("/sim/verifier-authorizations", authorization())
        .await;
    let record = wait_status(&env, "DELIVERED").await;
    let attempts = record["attempts"].as_array().unwrap();
    let statuses: Vec<_> = attempts.iter().map(|a| a["httpStatus"].clone()).collect();
    assert_eq!(statuses, vec![json!(500), json!(500), json!(200)]);
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "every retry keeps the webhook-id"
    );
    assert_eq!(record["deliveriesDone"], 1);
}

#[tokio::test]
async fn the_gaps_between_delivery_attempts_grow_exponentially() {
    let base = Duration::from_millis(100);
    let receiver = Receiver::start(3).await;
    let env = env_with(&receiver, |c| c.callback_base_delay = base).await;
    env.post_json("/sim/verifier-authorizations", authorization())
        .await;
    let record = wait_status(&env, "DELIVERED").await;
    let at_ms: Vec<u64> = record["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["atMs"].as_u64().expect("each attempt has its time"))
        .collect();
    assert_eq!(
        at_ms.len(),
        4,
        "three failures, then the delivery: {record}"
    );
    let gaps: Vec<Duration> = at_ms
        .windows(2)
        .map(|w| Duration::from_millis(w[1].saturating_sub(w[0])))
        .collect();
    // Before the n-th retry the simulator waits base · 2^(n-1): at least 100, 200, 400 ms. A fixed
    // or linear backoff could not reach the last of these bounds.
    for (n, gap) in gaps.iter().enumerate() {
        let least = base * 2u32.pow(u32::try_from(n).unwrap());
        assert!(
            *gap >= least,
            "retry {} came {gap:?} after the attempt before it, less than {least:?}: gaps {gaps:?}",
            n + 1
        );
    }
}

#[tokio::test]
async fn callbacks_fail_after_the_configured_number_of_retries() {
    let receiver = Receiver::start(usize::MAX).await;
    let env = env_with(&receiver, |c| c.callback_retries = 2).await;
    env.post_json("/sim/verifier-authorizations", authorization())
        .await;
    let record = wait_status(&env, "FAILED").await;
    assert_eq!(record["statusCode"], 2);
    assert_eq!(record["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn a_record_is_pending_while_retries_are_outstanding() {
    let receiver = Receiver::start(usize::MAX).await;
    let env = env_with(&receiver, |c| {
        c.callback_base_delay = Duration::from_secs(3600)
    })
    .await;
    env.post_json("/sim/verifier-authorizations", authorization())
        .await;
    common::eventually(async || {
        let record = callbacks(&env).await[0].clone();
        record["attempts"].as_array().unwrap().len() == 1
    })
    .await;
    let record = callbacks(&env).await[0].clone();
    assert_eq!(record["status"], "PENDING");
    assert_eq!(record["statusCode"], 0);
}

#[tokio::test]
async fn a_receiver_timeout_counts_as_a_failed_attempt_and_is_retried() {
    let receiver = Receiver::start_slow(0, 1).await;
    let env = env_with(&receiver, |c| {
        c.callback_timeout = Duration::from_millis(200)
    })
    .await;
    env.post_json("/sim/verifier-authorizations", authorization())
        .await;
    let record = wait_status(&env, "DELIVERED").await;
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["error"], "timeout");
    assert!(attempts[0]["httpStatus"].is_null());
    assert_eq!(attempts.last().unwrap()["httpStatus"], 200);
}

#[tokio::test]
async fn the_same_event_can_be_delivered_twice_on_purpose_with_the_same_webhook_id() {
    let receiver = Receiver::start(0).await;
    let env = env_with(&receiver, |_| {}).await;
    let mut request = authorization();
    request["deliverTwice"] = json!(true);
    env.post_json("/sim/verifier-authorizations", request).await;
    common::eventually(async || callbacks(&env).await[0]["deliveriesDone"] == 2).await;
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    assert_eq!(got[0].body, got[1].body);

    // And an existing event can be redelivered on demand.
    let id = callbacks(&env).await[0]["id"].as_str().unwrap().to_owned();
    let (status, _) = env
        .post_json(&format!("/sim/callbacks/{id}/redeliver"), json!({}))
        .await;
    assert_eq!(status, 202);
    common::eventually(async || receiver.received().len() == 3).await;
    assert_eq!(
        receiver.received()[2].headers["webhook-id"],
        got[0].headers["webhook-id"]
    );
}

#[tokio::test]
async fn authorizations_without_a_callback_url_or_with_bad_fields_are_refused() {
    let env = Env::start().await;
    let (status, body) = env
        .post_json("/sim/verifier-authorizations", authorization())
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], 409);
    let (status, body) = env
        .post_json("/sim/verifier-authorizations", json!({"userId": "", "verifierDid": "d", "schemaId": "s", "callbackUrl": "http://127.0.0.1:1/x"}))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = env
        .post_json("/sim/verifier-authorizations", json!({"userId": "u"}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = env
        .post_json("/sim/callbacks/cb_nope/redeliver", json!({}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_callback_url_can_be_given_per_authorization() {
    let receiver = Receiver::start(0).await;
    let env = Env::start_with(|mut c| {
        c.webhook_secrets = vec![SECRET_A.to_owned()];
        c
    })
    .await;
    let mut request = authorization();
    request["callbackUrl"] = json!(receiver.url);
    let (status, _) = env.post_json("/sim/verifier-authorizations", request).await;
    assert_eq!(status, 202);
    wait_status(&env, "DELIVERED").await;
    assert_eq!(receiver.received().len(), 1);
}

#[test]
fn the_signature_matches_the_standard_webhooks_reference_example() {
    // The published example of the Standard Webhooks specification (a public test vector).
    let secret =
        platform_sim::decode_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let sig = platform_sim::sign(
        &[secret],
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1_614_265_330,
        br#"{"test": 2432232314}"#,
    );
    assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

/// The ed25519 entries of a `webhook-signature` header, each checked strictly against `whpk`.
fn v1a_verifies(entry: &str, whpk: &str, id: &str, timestamp: &str, body: &[u8]) -> bool {
    let public = base64::engine::general_purpose::STANDARD
        .decode(whpk.strip_prefix("whpk_").unwrap())
        .unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public.try_into().unwrap()).unwrap();
    let Some(encoded) = entry.strip_prefix("v1a,") else {
        return false;
    };
    let signature = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let signature = ed25519_dalek::Signature::from_slice(&signature).unwrap();
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    key.verify_strict(&content, &signature).is_ok()
}

#[tokio::test]
async fn with_v1a_signatures_every_signing_key_signs_the_callback_and_its_public_key_verifies_it() {
    let (old_key, old_public) = platform_sim::generate_webhook_signing_key(42, 0);
    let (new_key, new_public) = platform_sim::generate_webhook_signing_key(42, 1);
    let receiver = Receiver::start(0).await;
    let env = env_with(&receiver, |c| {
        c.webhook_secrets.clear();
        c.webhook_signing_keys = vec![old_key.clone(), new_key.clone()];
    })
    .await;
    assert_eq!(
        env.sim.webhook_signatures(),
        platform_sim::WebhookSignatures::V1a,
        "signing keys alone mean v1a"
    );
    assert_eq!(
        env.sim.webhook_public_keys(),
        vec![old_public.clone(), new_public.clone()]
    );
    env.post_json("/sim/verifier-authorizations", authorization())
        .await;
    wait_status(&env, "DELIVERED").await;
    let got = receiver.received();
    let headers = &got[0].headers;
    let id = headers["webhook-id"].to_str().unwrap();
    let timestamp = headers["webhook-timestamp"].to_str().unwrap();
    let entries: Vec<&str> = headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(v1a_verifies(
        entries[0],
        &old_public,
        id,
        timestamp,
        &got[0].body
    ));
    assert!(v1a_verifies(
        entries[1],
        &new_public,
        id,
        timestamp,
        &got[0].body
    ));
    assert!(!v1a_verifies(
        entries[0],
        &new_public,
        id,
        timestamp,
        &got[0].body
    ));
    let mut tampered = got[0].body.to_vec();
    tampered.push(b' ');
    assert!(!v1a_verifies(
        entries[0],
        &old_public,
        id,
        timestamp,
        &tampered
    ));
}

#[tokio::test]
async fn with_both_the_header_carries_the_hmac_signature_then_the_ed25519_signature() {
    let (key, public) = platform_sim::generate_webhook_signing_key(42, 0);
    let receiver = Receiver::start(0).await;
    let env = env_with(&receiver, |c| {
        c.webhook_secrets = vec![SECRET_A.to_owned()];
        c.webhook_signing_keys = vec![key.clone()];
        c.webhook_signatures = Some(platform_sim::WebhookSignatures::Both);
    })
    .await;
    env.post_json("/sim/verifier-authorizations", authorization())
        .await;
    wait_status(&env, "DELIVERED").await;
    let got = receiver.received();
    let headers = &got[0].headers;
    let id = headers["webhook-id"].to_str().unwrap();
    let timestamp = headers["webhook-timestamp"].to_str().unwrap();
    let entries: Vec<&str> = headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(
        entries[0],
        expected_signature(SECRET_A, id, timestamp, &got[0].body)
    );
    assert!(v1a_verifies(
        entries[1],
        &public,
        id,
        timestamp,
        &got[0].body
    ));
}

#[tokio::test]
async fn an_explicit_v1_choice_keeps_signing_with_the_secrets_only() {
    let receiver = Receiver::start(0).await;
    let env = env_with(&receiver, |c| {
        c.webhook_signatures = Some(platform_sim::WebhookSignatures::V1);
    })
    .await;
    env.post_json("/sim/verifier-authorizations", authorization())
        .await;
    wait_status(&env, "DELIVERED").await;
    let signature = receiver.received()[0].headers["webhook-signature"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        signature.split(' ').all(|e| e.starts_with("v1,")),
        "{signature}"
    );
}

#[tokio::test]
async fn signing_configurations_that_cannot_sign_are_refused_at_start_without_quoting_a_key() {
    use platform_sim::{SimConfig, SimError, WebhookSignatures};
    let (key, _) = platform_sim::generate_webhook_signing_key(3, 0);
    let local = || "127.0.0.1:0".parse().unwrap();
    let cases = [
        (
            "v1a without a signing key",
            SimConfig::default().with_webhook_signatures(WebhookSignatures::V1a),
        ),
        (
            "both without a secret",
            SimConfig::default()
                .with_webhook_signing_key(key.clone())
                .with_webhook_signatures(WebhookSignatures::Both),
        ),
        (
            "signing keys that v1 would never use",
            SimConfig::default()
                .with_webhook_signing_key(key.clone())
                .with_webhook_signatures(WebhookSignatures::V1),
        ),
        (
            "a whsk_ of the wrong length",
            SimConfig::default().with_webhook_signing_key(&key[..40]),
        ),
        (
            "a whsec_ where a whsk_ belongs",
            SimConfig::default().with_webhook_signing_key(SECRET_A),
        ),
    ];
    for (name, config) in cases {
        match platform_sim::spawn(config, local()).await {
            Err(SimError::Config(message)) => {
                assert!(!message.contains(&key[5..20]), "{name}: {message}");
                assert!(!message.contains(&SECRET_A[6..]), "{name}: {message}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}
