#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fault injection: error statuses and rates, fail-next-N, 429, latency, held connections.

use crate::common;

use std::time::Duration;

use common::{Env, issue_body};
use serde_json::{Value, json};

const ISSUE: &str = "/credentials/issue-on-behalf";

async fn set_fault(env: &Env, spec: Value) -> Value {
    let (status, body) = env.post_json("/sim/faults", spec).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn an_error_status_fault_answers_that_status_in_the_platform_shape() {
    let env = Env::start().await;
    set_fault(&env, json!({"route": ISSUE, "status": 503})).await;
    let (status, body) = env.issue("a@b.c", issue_body("kyc-basic")).await;
    assert_eq!(status, 503);
    assert_eq!(body, json!({"error": 503, "message": "injected fault"}));
    let logged = env.logged("POST /credentials/issue-on-behalf").await;
    assert_eq!(logged[0]["status"], 503);
    assert_eq!(logged[0]["fault"], true);
    // Other routes are untouched.
    assert_eq!(env.status_of("0x00").await.0, 404);
}

#[tokio::test]
async fn fail_next_n_fails_exactly_n_calls_then_recovers() {
    let env = Env::start().await;
    set_fault(
        &env,
        json!({"route": "POST /credentials/issue-on-behalf", "failNext": 2, "status": 502}),
    )
    .await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(
            env.issue(&format!("u{i}@b.c"), issue_body("kyc-basic"))
                .await
                .0,
        );
    }
    assert_eq!(statuses, vec![502, 502, 200, 200]);
    let faults = env.get_json("/sim/faults").await;
    assert_eq!(faults["faults"][0]["remaining"], 0);
    assert_eq!(faults["faults"][0]["injected"], 2);
    // Only one issuance reached the handler per successful call.
    let ok = env
        .logged("POST /credentials/issue-on-behalf")
        .await
        .into_iter()
        .filter(|r| r["status"] == 200)
        .count();
    assert_eq!(ok, 2);
}

#[tokio::test]
async fn a_rate_limit_fault_answers_429_with_retry_after() {
    let env = Env::start().await;
    set_fault(&env, json!({"route": ISSUE, "retryAfterSecs": 7})).await;
    let response = env
        .http
        .post(env.url(ISSUE))
        .header("x-partner-auth", env.token("a@b.c"))
        .json(&issue_body("kyc-basic"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(response.json::<Value>().await.unwrap()["error"], 429);
}

#[tokio::test]
async fn a_latency_fault_still_answers_normally() {
    let env = Env::start().await;
    let latency = Duration::from_millis(20);
    set_fault(
        &env,
        json!({"route": "*", "latencyMs": latency.as_millis()}),
    )
    .await;
    let started = std::time::Instant::now();
    let (status, _) = env.issue("a@b.c", issue_body("kyc-basic")).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    assert!(
        elapsed >= latency,
        "the answer came after {elapsed:?}, sooner than the injected {latency:?}"
    );
    let faults = env.get_json("/sim/faults").await;
    assert_eq!(faults["faults"][0]["hits"], 1);
    assert_eq!(faults["faults"][0]["injected"], 0);
}

#[tokio::test]
async fn a_timeout_fault_holds_the_connection_until_the_client_gives_up() {
    let env = Env::start().await;
    set_fault(&env, json!({"route": ISSUE, "timeout": true})).await;
    let result = env
        .http
        .post(env.url(ISSUE))
        .timeout(Duration::from_millis(300))
        .header("x-partner-auth", env.token("a@b.c"))
        .json(&issue_body("kyc-basic"))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    // The call was logged on arrival and never answered.
    let logged = env.logged("POST /credentials/issue-on-behalf").await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["status"], 0);
}

#[tokio::test]
async fn a_bounded_hold_ends_with_504() {
    let env = Env::start().await;
    set_fault(&env, json!({"route": ISSUE, "timeout": true, "holdMs": 50})).await;
    let (status, body) = env.issue("a@b.c", issue_body("kyc-basic")).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"], 504);
}

async fn sampled_statuses(seed: u64) -> Vec<u16> {
    let env = Env::start().await;
    set_fault(
        &env,
        json!({"route": "/credentials/status", "status": 500, "rate": 0.5, "seed": seed}),
    )
    .await;
    let mut out = Vec::new();
    for _ in 0..24 {
        out.push(env.status_of("0xabc").await.0);
    }
    out
}

#[tokio::test]
async fn an_error_rate_with_a_seed_is_repeatable() {
    let first = sampled_statuses(7).await;
    assert_eq!(first, sampled_statuses(7).await);
    assert!(first.contains(&500) && first.contains(&404), "{first:?}");
    assert_ne!(first, sampled_statuses(8).await);
}

#[tokio::test]
async fn deleting_faults_clears_every_rule() {
    let env = Env::start().await;
    set_fault(&env, json!({"route": "*", "status": 500})).await;
    assert_eq!(env.issue("a@b.c", issue_body("kyc-basic")).await.0, 500);
    let response = env
        .http
        .delete(env.url("/sim/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(env.issue("a@b.c", issue_body("kyc-basic")).await.0, 200);
    assert_eq!(env.get_json("/sim/faults").await["faults"], json!([]));
}

#[tokio::test]
async fn control_routes_are_never_faulted() {
    let env = Env::start().await;
    set_fault(&env, json!({"route": "*", "status": 500})).await;
    let health = env.http.get(env.url("/sim/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn invalid_fault_specs_are_answered_400() {
    let env = Env::start().await;
    for spec in [
        json!({"route": ISSUE}),
        json!({"route": ISSUE, "status": 200}),
        json!({"route": ISSUE, "status": 500, "rate": 1.5}),
        json!({"route": ISSUE, "status": "500"}),
        json!({"route": ISSUE, "statuz": 500}),
        json!({"status": 500}),
    ] {
        let (status, body) = env.post_json("/sim/faults", spec.clone()).await;
        assert_eq!(status, 400, "{spec} → {body}");
        assert_eq!(body["error"], 400);
    }
}

#[tokio::test]
async fn shutdown_releases_held_connections() {
    let env = Env::start().await;
    set_fault(&env, json!({"route": ISSUE, "timeout": true})).await;
    let (http, url, token) = (env.http.clone(), env.url(ISSUE), env.token("a@b.c"));
    let pending = tokio::spawn(async move {
        http.post(url)
            .header("x-partner-auth", token)
            .json(&issue_body("kyc-basic"))
            .send()
            .await
    });
    common::eventually(async || env.logged("POST /credentials/issue-on-behalf").await.len() == 1)
        .await;
    let common::Env { sim, .. } = env;
    tokio::time::timeout(Duration::from_secs(10), sim.shutdown())
        .await
        .unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .unwrap()
        .unwrap();
    if let Ok(response) = answered {
        assert_eq!(response.status(), 504);
    }
}

#[tokio::test]
async fn a_lost_answer_fault_does_the_work_and_breaks_the_connection_on_every_platform_route() {
    let env = Env::start().await;
    set_fault(
        &env,
        json!({"route": "*", "loseAnswer": true, "failNext": 1}),
    )
    .await;
    let mut body = issue_body("kyc-document-r1");
    body["onDuplicate"] = json!("ignore");
    // issue-on-behalf: the caller reads no answer...
    let lost = env
        .http
        .post(env.url("/credentials/issue-on-behalf"))
        .header("x-partner-auth", env.token("lost@example.com"))
        .json(&body)
        .send()
        .await;
    let read = match lost {
        Ok(response) => response.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(read.is_err(), "the answer must not be readable");
    // ...but the credential exists: `ignore` is answered 409 naming it, with its CAK key.
    set_fault(
        &env,
        json!({"route": "/dstorage/ciphertexts", "loseAnswer": true, "failNext": 1}),
    )
    .await;
    let (status, existing) = env.issue("lost@example.com", body).await;
    assert_eq!(status, 409, "{existing}");
    let hash = existing["coreClaimHash"].as_str().unwrap().to_owned();
    assert!(existing["cakPublicKey"].as_str().unwrap().starts_with("04"));
    assert_eq!(env.status_of(&hash).await.0, 200);
    // The upload route: stored, answer lost.
    let upload = env
        .http
        .post(env.url(&format!("/dstorage/ciphertexts?coreClaimHash={hash}")))
        .header("x-partner-auth", env.token("lost@example.com"))
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 200])
        .send()
        .await;
    let read = match upload {
        Ok(response) => response.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(read.is_err());
    let logged = env.logged("POST /dstorage/ciphertexts").await;
    assert_eq!(logged[0]["status"], 201, "the upload took effect");
    assert_eq!(logged[0]["fault"], true);
}
