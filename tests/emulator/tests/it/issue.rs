//! The issue bootstrap under the Lambda emulator: a signed issuance through the platform simulator
//! (which verifies the bootstrap's own Partner JWT through the devstack's JWKS), its idempotent
//! replay, and the status read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Harness, body, header, invoke, status, with_path};

#[tokio::test]
async fn the_issue_bootstrap_issues_replays_reads_its_status_and_logs_nothing_personal_even_at_trace()
 {
    let h = Harness::start().await;
    let issue = h.function("IssueFunction");

    let answer = invoke(&issue, &h.signed(h.event("issue.json"))).await;
    assert_eq!(status(&answer), 202, "{answer}\n{}", issue.output());
    let accepted = body(&answer);
    assert_eq!(accepted["status"], "WAIT_ONCHAIN");
    let id = accepted["issuanceId"].as_str().unwrap().to_owned();
    assert!(accepted["coreClaimHash"].is_string());

    // The same Idempotency-Key and payload, signed again: the stored answer.
    let replay = invoke(&issue, &h.signed(h.event("issue.json"))).await;
    assert_eq!(status(&replay), 202, "{replay}");
    assert_eq!(header(&replay, "idempotent-replayed"), Some("true"));
    assert_eq!(body(&replay)["issuanceId"], id.as_str());

    // The status read, for the id just issued.
    let read = with_path(
        h.event("issue-status.json"),
        &format!("/v1/credentials/{id}"),
    );
    let answer = invoke(&issue, &h.signed(read)).await;
    assert_eq!(status(&answer), 200, "{answer}");
    let state = body(&answer);
    assert_eq!(state["issuanceId"], id.as_str());
    assert_eq!(state["status"], "WAIT_ONCHAIN");
    assert!(state["waitOnchainSeconds"].is_number());

    // The unsigned sample as it is in the repository is refused.
    let answer = invoke(&issue, &h.event("issue.json")).await;
    assert_eq!(status(&answer), 401, "{answer}");

    // The sensitive data and the user's e-mail never reached the logs.
    let out = issue.output();
    assert!(!out.contains("Alice Example"), "sensitive data was logged");
    assert!(!out.contains("alice@example.com"), "the e-mail was logged");

    // One devstack per test binary (they share moto's secret names): the TRACE run goes here.
    at_trace(&h).await;
}

/// A fresh issuance with the function at `AWS_LAMBDA_LOG_LEVEL=TRACE`, what Lambda's advanced
/// logging control sets for an application log level of TRACE: no event body, signature,
/// secret or personal data reaches its log.
async fn at_trace(h: &Harness) {
    let issue = h.function_with_env("IssueFunction", &[("AWS_LAMBDA_LOG_LEVEL", "TRACE")]);
    let mut event = h.event("issue.json");
    event["headers"]["idempotency-key"] = serde_json::json!("trace-level-issuance");
    // Another user, so that this is a new issuance rather than the first one's duplicate.
    let body = event["body"]
        .as_str()
        .unwrap()
        .replace("alice@example.com", "trace.user@example.com");
    event["body"] = serde_json::json!(body);
    let event = h.signed(event);
    let answer = invoke(&issue, &event).await;
    assert_eq!(status(&answer), 202, "{answer}\n{}", issue.output());
    let out = issue.output();
    assert!(
        out.contains("minted an outbound Partner JWT"),
        "the function's own DEBUG lines are written at TRACE: {out}"
    );
    let signature = event["headers"]["x-signature"].as_str().unwrap();
    let (_, secret) = h.world.api_key().unwrap();
    for (leak, what) in [
        ("Alice Example", "sensitive data"),
        ("trace.user@example.com", "the e-mail"),
        ("1990-01-01", "a birth date"),
        (signature, "the request signature"),
        (secret.as_str(), "the API secret"),
        ("raw JSON event", "the runtime's raw event line"),
    ] {
        assert!(!out.contains(leak), "{what} was logged at TRACE");
    }
}
