//! Platform faults — 5xx, held connections, 429 with `Retry-After` — leave every record waiting
//! and due again after its backoff; once the platform recovers they are issued. Nothing is lost
//! and nothing is marked wrongly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::{Backend, World, world};
use serde_json::json;
use shared::clock::Clock;
use shared::issuance::{IssuanceId, IssuanceStatus};
use status_poller::PollPolicy;

/// Every record still `WAIT_ONCHAIN`, polled `attempts` times, due `wait` after now.
async fn all_waiting(w: &World, ids: &[IssuanceId], attempts: u32, wait: Duration) {
    for id in ids {
        let (record, issuance) = w.record(id).await;
        assert_eq!(issuance.status(), IssuanceStatus::WaitOnchain);
        assert_eq!(issuance.reason(), None);
        assert_eq!(issuance.poll_attempts(), attempts);
        assert_eq!(record.due.unwrap().at, w.clock.now().plus(wait));
    }
}

#[tokio::test]
async fn failed_polls_leave_records_due_with_backoff_and_they_are_issued_when_the_platform_recovers()
 {
    let mut w = world(Backend::Embedded, Duration::from_secs(60)).await;
    w.config.platform.request_timeout = Duration::from_millis(300);
    let ids = w.seed("faulty", 10).await;
    let poller = w.poller(PollPolicy::default());

    // Every status call answers 503 (the client retries once, then gives up).
    w.fault(json!({"route": "/credentials/status", "status": 503}))
        .await;
    w.advance(Duration::from_secs(1));
    let s = w.run(&poller).await;
    assert_eq!((s.polled, s.still_waiting, s.errors), (10, 10, 10), "{s:?}");
    assert_eq!((s.issued, s.failed, s.timed_out), (0, 0, 0));
    all_waiting(&w, &ids, 1, Duration::from_secs(1)).await;

    // 429 with Retry-After: 5 s is longer than the 2 s backoff, so it wins.
    w.fault(json!({"route": "/credentials/status", "retryAfterSecs": 5}))
        .await;
    w.advance(Duration::from_secs(1));
    let s = w.run(&poller).await;
    assert_eq!((s.polled, s.still_waiting, s.errors), (10, 10, 10), "{s:?}");
    all_waiting(&w, &ids, 2, Duration::from_secs(5)).await;

    // The platform holds the connections: every poll times out.
    w.fault(json!({"route": "/credentials/status", "timeout": true, "holdMs": 1000}))
        .await;
    w.advance(Duration::from_secs(5));
    let s = w.run(&poller).await;
    assert_eq!((s.polled, s.still_waiting, s.errors), (10, 10, 10), "{s:?}");
    all_waiting(&w, &ids, 3, Duration::from_secs(4)).await;

    assert_eq!(w.metric_of_kind("PollErrors", "unavailable"), 20.0);
    assert_eq!(w.metric_of_kind("PollErrors", "rate_limited"), 10.0);

    // The platform recovers; the credentials were anchored meanwhile.
    w.clear_faults().await;
    w.advance(Duration::from_secs(60));
    let s = w.run(&poller).await;
    assert_eq!((s.polled, s.issued, s.errors), (10, 10, 0), "{s:?}");
    for id in &ids {
        let (record, issuance) = w.record(id).await;
        assert_eq!(issuance.status(), IssuanceStatus::Issued);
        assert_eq!(issuance.poll_attempts(), 4);
        assert!(record.due.is_none());
    }
    assert_eq!(w.issue_calls(), 10, "the poller never issues");
    w.advance(Duration::from_secs(60));
    assert_eq!(w.run(&poller).await.polled, 0, "nothing left to poll");
}

#[tokio::test]
async fn a_share_of_failing_calls_delays_only_the_records_they_hit() {
    let w = world(Backend::Embedded, Duration::from_secs(0)).await;
    let ids = w.seed("flaky", 40).await;
    let poller = w.poller(PollPolicy::default());
    // Half of the calls fail with 500 (seeded sampling); the client retries once.
    w.fault(json!({"route": "/credentials/status", "status": 500, "rate": 0.5, "seed": 7}))
        .await;
    let mut issued = 0;
    for _ in 0..20 {
        w.advance(Duration::from_secs(30));
        let s = w.run(&poller).await;
        assert_eq!(s.failed + s.timed_out, 0, "{s:?}");
        issued += s.issued;
        if issued == 40 {
            break;
        }
    }
    assert_eq!(issued, 40);
    for id in &ids {
        assert_eq!(w.record(id).await.1.status(), IssuanceStatus::Issued);
    }
}
