//! End to end on the devstack binary: a credential issued with the dev API key is polled by the
//! status poller on its local schedule until the platform simulator anchors it, and the status
//! route then reports it `ISSUED` with how long it waited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

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
async fn an_issued_credential_is_polled_until_anchored_and_reported_issued_with_its_wait() {
    let dir = tempfile::tempdir().unwrap();
    // The poller fires every second; the simulator anchors credentials after 2 s.
    let stack = common::start_with(
        dir.path(),
        &["--poll-interval", "1", "--onchain-delay", "2"],
    );
    let api = stack.api();
    let creds = stack.credentials();
    let program = &creds["programs"][0];
    let client = stack.client();
    let body = json!({
        "credentialId": program["id"],
        "user": {"email": "poller-e2e@example.com"},
        "credentialSubject": program["exampleSubject"],
    })
    .to_string();
    let r = signed(
        &client,
        &creds,
        reqwest::Method::POST,
        &format!("{api}/v1/credentials"),
        "/v1/credentials",
        &body,
    )
    .header("content-type", "application/json")
    .header("idempotency-key", "poller-e2e")
    .body(body.clone())
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["status"], "WAIT_ONCHAIN");
    let path = format!("/v1/credentials/{}", answer["issuanceId"].as_str().unwrap());

    let status = async {
        loop {
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
            if status["status"] != "WAIT_ONCHAIN" {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let status = tokio::time::timeout(Duration::from_secs(60), status)
        .await
        .expect("the credential leaves WAIT_ONCHAIN");
    assert_eq!(status["status"], "ISSUED", "{status}");
    assert_eq!(status["coreClaimHash"], answer["coreClaimHash"]);
    assert!(status["onchainAt"].is_string(), "{status}");
    // What a partner needs to refer to the anchored credential, as the platform said it.
    assert!(
        status["vcId"].as_str().unwrap().starts_with("urn:uuid:"),
        "{status}"
    );
    assert!(status["issuanceDate"].is_string(), "{status}");
    assert!(status["expirationDate"].is_string(), "{status}");
    let waited = status["waitOnchainSeconds"].as_f64().unwrap();
    assert!(
        waited >= 2.0,
        "issued only after the platform anchored it: {status}"
    );
    assert!(status["reason"].is_null(), "{status}");
}
