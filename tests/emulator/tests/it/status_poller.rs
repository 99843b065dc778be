//! The status poller bootstrap under the Lambda emulator: a credential issued by the issue
//! bootstrap is polled at the platform simulator and reaches `ISSUED`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::{Harness, body, invoke, status, with_path};

#[tokio::test]
async fn the_poller_bootstrap_takes_an_issued_credential_from_wait_onchain_to_issued() {
    let h = Harness::start().await;
    let issue = h.function("IssueFunction");
    let answer = invoke(&issue, &h.signed(h.event("issue.json"))).await;
    assert_eq!(status(&answer), 202, "{answer}\n{}", issue.output());
    let id = body(&answer)["issuanceId"].as_str().unwrap().to_owned();

    // The platform anchors it (its clock moves past the on-chain delay).
    h.world.advance_platform_clock(60).await.unwrap();

    // The record's first poll is due a second after acceptance (on the wall clock); then one
    // scheduled run polls it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let poller = h.function("StatusPollerFunction");
    let summary = invoke(&poller, &h.event("status-poller-scheduled.json")).await;
    assert_eq!(summary["issued"], 1, "{summary}\n{}", poller.output());

    let read = with_path(
        h.event("issue-status.json"),
        &format!("/v1/credentials/{id}"),
    );
    let answer = invoke(&issue, &h.signed(read)).await;
    assert_eq!(status(&answer), 200, "{answer}");
    let state = body(&answer);
    assert_eq!(state["status"], "ISSUED", "{state}");
    assert!(state["onchainAt"].is_string());
    assert!(
        ["vcId", "issuanceDate", "expirationDate"]
            .iter()
            .all(|field| state[field].is_string()),
        "{state}"
    );
    assert!(state["waitOnchainSeconds"].as_f64().unwrap() >= 0.0);

    // A run with nothing due polls nothing.
    let summary = invoke(&poller, &h.event("status-poller-scheduled.json")).await;
    assert_eq!(summary["polled"], 0, "{summary}");
    // The run's summary and the WaitOnchainSeconds metric were written as JSON lines.
    let lines = poller.json_lines();
    assert!(
        lines.iter().any(|l| l.get("WaitOnchainSeconds").is_some()),
        "no WaitOnchainSeconds EMF line:\n{}",
        poller.output()
    );
}
