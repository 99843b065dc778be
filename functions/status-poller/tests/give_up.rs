//! A credential the platform never anchors: one warning past the alert threshold, `TIMED_OUT` at
//! the give-up limit, and then silence — no more polls and no re-issue. (A binary of its own: it
//! reads captured logs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "it/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Backend, world};
use shared::issuance::IssuanceStatus;
use shared::telemetry::LogCapture;
use status_poller::PollPolicy;

#[tokio::test]
async fn a_long_wait_warns_once_then_times_out_and_is_never_polled_or_reissued_again() {
    let (logs, dispatch) = LogCapture::new(status_poller::SERVICE);
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let w = world(Backend::Embedded, Duration::from_secs(30 * 86_400)).await;
    let id = w.seed("slow", 1).await.remove(0);
    let poller = w.poller(PollPolicy::default());

    let mut alerted_at = Vec::new();
    let mut timed_out_at = Vec::new();
    let mut calls_after_timeout = 0;
    // A run every 30 s for 70 minutes: default alert at 5 min, give-up at 1 h.
    for run in 1..=140u64 {
        w.advance(Duration::from_secs(30));
        let s = w.run(&poller).await;
        let second = run * 30;
        if s.alerts > 0 {
            alerted_at.push(second);
        }
        if s.timed_out > 0 {
            timed_out_at.push(second);
        } else if !timed_out_at.is_empty() {
            calls_after_timeout += s.polled;
        }
    }

    assert_eq!(alerted_at, [300], "one alert, at the threshold");
    assert_eq!(timed_out_at, [3600], "timed out at the give-up limit");
    assert_eq!(calls_after_timeout, 0, "never polled again");
    assert_eq!(w.issue_calls(), 1, "never re-issued");
    let (record, issuance) = w.record(&id).await;
    assert_eq!(issuance.status(), IssuanceStatus::TimedOut);
    assert!(record.due.is_none(), "out of the poll queue");
    let reason = issuance.reason().unwrap();
    assert!(reason.contains("give-up limit 3600 s"), "{reason}");
    assert!(reason.contains("not re-issued automatically"), "{reason}");
    assert!(issuance.alerted_at().is_some());
    assert_eq!(w.metric("WaitOnchainAlerts"), 1.0);
    assert_eq!(w.metric("CredentialsTimedOut"), 1.0);
    assert_eq!(w.metric("CredentialsIssued"), 0.0);

    let lines = logs.lines();
    let warnings: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "credential still WAIT_ONCHAIN past the alert threshold")
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["level"], "WARN");
    assert_eq!(warnings[0]["issuance_id"], id.as_str());
    let timeouts = lines
        .iter()
        .filter(|l| l["message"].as_str().unwrap_or("").contains("timed out"))
        .count();
    assert_eq!(timeouts, 1);
    let summaries: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "status poll run finished")
        .collect();
    assert_eq!(summaries.len(), 140);
    for field in [
        "polled",
        "issued",
        "stillWaiting",
        "timedOut",
        "failed",
        "errors",
        "stoppedEarly",
    ] {
        assert!(
            summaries[0].get(field).is_some(),
            "{field} missing: {}",
            summaries[0]
        );
    }
    assert!(
        !logs.text().contains("slow0@example.com"),
        "no user e-mail in any log line"
    );
}
