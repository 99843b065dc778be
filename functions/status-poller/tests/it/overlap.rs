//! Overlapping runs (two Lambda containers at once, or a slow run still going when the next
//! minute's starts) never poll one record twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{Backend, World, world};
use serde_json::json;
use shared::clock::Clock;
use shared::issuance::IssuanceStatus;
use status_poller::PollPolicy;

async fn two_runs_over_200_due_records(w: &World) {
    let ids = w.seed("overlap", 200).await;
    // Slow answers keep both runs busy at the same time.
    w.fault(json!({"route": "/credentials/status", "latencyMs": 20}))
        .await;
    w.advance(Duration::from_secs(1));
    // On DynamoDB the second run has a client of its own; the embedded store is one process's
    // store, so both runs share its handle (as the devstack's schedules would).
    let (store_b, due_b) = match w.backend() {
        Backend::Embedded => (w.store.clone(), w.due.clone()),
        Backend::DynamoDb => w.second_store().await,
    };
    let a = Arc::new(w.poller(PollPolicy::default()));
    let b = Arc::new(w.poller_on(store_b, due_b, PollPolicy::default()));
    let deadline = shared::platform::Deadline::after(Duration::from_secs(60));
    let (ra, rb) = {
        let (a, b) = (Arc::clone(&a), Arc::clone(&b));
        let run_a = tokio::spawn(async move { status_poller::run(&a, deadline).await });
        let run_b = tokio::spawn(async move { status_poller::run(&b, deadline).await });
        (run_a.await.unwrap().unwrap(), run_b.await.unwrap().unwrap())
    };

    let calls = w.status_calls();
    let distinct: BTreeSet<&String> = calls.iter().collect();
    assert_eq!(
        calls.len(),
        200,
        "one status call per record: {ra:?} {rb:?}"
    );
    assert_eq!(distinct.len(), 200, "no record polled twice");
    assert_eq!(ra.polled + rb.polled, 200, "{ra:?} {rb:?}");
    assert_eq!(ra.errors + rb.errors, 0, "{ra:?} {rb:?}");
    for id in &ids {
        let (record, issuance) = w.record(id).await;
        assert_eq!(issuance.poll_attempts(), 1);
        assert_eq!(issuance.status(), IssuanceStatus::WaitOnchain);
        let hash = issuance.core_claim_hash().unwrap().to_owned();
        assert!(distinct.contains(&hash));
        // Due again after its first backoff, counted from the claim.
        assert_eq!(
            record.due.unwrap().at,
            w.clock.now().plus(Duration::from_secs(1))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_started_together_poll_each_of_200_due_records_once_on_the_embedded_store() {
    let w = world(Backend::Embedded, Duration::from_secs(600)).await;
    two_runs_over_200_due_records(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_started_together_poll_each_of_200_due_records_once_on_dynamodb() {
    let w = world(Backend::DynamoDb, Duration::from_secs(600)).await;
    two_runs_over_200_due_records(&w).await;
}

#[tokio::test]
async fn a_record_claimed_by_a_run_that_died_is_polled_again_when_the_lease_ends() {
    let w = world(Backend::Embedded, Duration::from_secs(600)).await;
    let id = w.seed("crash", 1).await.remove(0);
    w.advance(Duration::from_secs(1));
    // A run claims the record, then dies before its poll is answered (the call never returns).
    w.fault(json!({"route": "/credentials/status", "timeout": true, "holdMs": 5000}))
        .await;
    let dying = w.poller(PollPolicy::default());
    let run = tokio::spawn(async move {
        let _ = status_poller::run(
            &dying,
            shared::platform::Deadline::after(Duration::from_secs(60)),
        )
        .await;
    });
    let claimed = async {
        loop {
            if w.record(&id).await.1.poll_attempts() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), claimed)
        .await
        .expect("the record is claimed");
    run.abort();
    w.clear_faults().await;

    let poller = w.poller(PollPolicy::default());
    w.advance(Duration::from_secs(9));
    assert_eq!(w.run(&poller).await.polled, 0, "still leased");
    w.advance(Duration::from_secs(1));
    assert_eq!(w.run(&poller).await.polled, 1, "the lease ended: due again");
    assert_eq!(w.record(&id).await.1.poll_attempts(), 2);
}
