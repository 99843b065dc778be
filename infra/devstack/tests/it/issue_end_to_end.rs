//! End to end on the devstack binary: the dev API key from dev-credentials.json issues each sample
//! program's example subject through the platform simulator, and the status route reports it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use serde_json::{Value, json};

fn signed(
    client: &reqwest::Client,
    creds: &Value,
    method: reqwest::Method,
    url: &str,
    path: &str,
    body: &str,
) -> reqwest::RequestBuilder {
    let id = creds["apiKey"]["id"].as_str().unwrap();
    let secret = creds["apiKey"]["secret"].as_str().unwrap();
    let ts = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let ts = shared::clock::Timestamp::from_millis(i64::try_from(ts).unwrap()).to_rfc3339();
    let sig = shared::auth::sign(secret, method.as_str(), path, &ts, body.as_bytes());
    client
        .request(method, url)
        .header("x-access-key", id)
        .header("x-timestamp", ts)
        .header("x-signature", sig)
}

#[tokio::test]
async fn every_sample_program_issues_through_the_devstack_and_reports_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let stack = common::start(dir.path());
    let api = stack.api();
    let creds = stack.credentials();
    let programs = creds["programs"].as_array().unwrap().clone();
    assert_eq!(programs.len(), 3);
    assert!(
        programs
            .iter()
            .any(|p| p["cak"] == true && p["curve"] == "secp256r1")
    );
    assert!(
        programs
            .iter()
            .any(|p| p["cak"] == true && p["curve"] == "secp256k1")
    );
    let client = stack.client();
    for (i, program) in programs.iter().enumerate() {
        let mut body = json!({
            "credentialId": program["id"],
            "user": {"email": format!("user{i}@example.com")},
            "credentialSubject": program["exampleSubject"],
        });
        if program["cak"] == true {
            body["sensitiveData"] = json!({"fullName": "Grace Hopper"});
        }
        let text = body.to_string();
        let r = signed(
            &client,
            &creds,
            reqwest::Method::POST,
            &format!("{api}/v1/credentials"),
            "/v1/credentials",
            &text,
        )
        .header("content-type", "application/json")
        .header("idempotency-key", format!("e2e-{i}"))
        .body(text)
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["status"], "WAIT_ONCHAIN");
        let id = answer["issuanceId"].as_str().unwrap();
        let path = format!("/v1/credentials/{id}");
        let r = signed(
            &client,
            &creds,
            reqwest::Method::GET,
            &format!("{api}{path}"),
            &path,
            "",
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let status: Value = r.json().await.unwrap();
        assert_eq!(status["status"], "WAIT_ONCHAIN");
        assert_eq!(status["coreClaimHash"], answer["coreClaimHash"]);
    }
}
