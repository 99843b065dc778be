//! A credential's life in the poll queue on a simulated clock: polled on its backoff schedule,
//! issued when the platform anchors it, failed when the platform does not know it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::{Backend, world};
use serde_json::json;
use shared::clock::Clock;
use shared::issuance::IssuanceStatus;
use shared::store::{NewRecord, RecordKey, RecordKind, Write};
use status_poller::PollPolicy;

#[tokio::test]
async fn a_credential_is_polled_on_its_backoff_schedule_and_issued_once_the_platform_anchors_it() {
    // The simulator anchors the credential 110 s after issuance (its own clock, moved with ours).
    let w = world(Backend::Embedded, Duration::from_secs(110)).await;
    let id = w.seed("backoff", 1).await.remove(0);
    let start = w.clock.now();
    let poller = w.poller(PollPolicy::default());

    let mut polled_at = Vec::new();
    for second in 1..=130u64 {
        w.advance(Duration::from_secs(1));
        let calls_before = w.status_calls().len();
        let summary = w.run(&poller).await;
        let calls = w.status_calls().len() - calls_before;
        assert_eq!(summary.polled, calls as u64, "at {second} s");
        if calls > 0 {
            polled_at.push(second);
        }
        let (_, issuance) = w.record(&id).await;
        if second < 122 {
            assert_eq!(
                issuance.status(),
                IssuanceStatus::WaitOnchain,
                "at {second} s"
            );
            assert_eq!(issuance.onchain_at(), None);
        }
    }

    // First poll 1 s after acceptance, then waits of 1, 2, 4, 8, 16 and 30, 30, 30 s.
    assert_eq!(polled_at, [1, 2, 4, 8, 16, 32, 62, 92, 122]);
    let (record, issuance) = w.record(&id).await;
    assert_eq!(issuance.status(), IssuanceStatus::Issued);
    assert_eq!(
        issuance.onchain_at(),
        Some(start.plus(Duration::from_secs(122)))
    );
    assert_eq!(issuance.wait_onchain_seconds(w.clock.now()), Some(122.0));
    assert_eq!(issuance.poll_attempts(), 9);
    assert_eq!(issuance.alerted_at(), None);
    // What the platform said about the anchored credential is kept for the status route.
    let anchored = issuance.anchored();
    assert!(anchored.vc_id.as_deref().unwrap().starts_with("urn:uuid:"));
    assert!(anchored.issuance_date.is_some());
    assert!(anchored.expiration_date > anchored.issuance_date);
    assert!(
        record.due.is_none(),
        "an issued record leaves the poll queue"
    );
    assert_eq!(w.metric("WaitOnchainSeconds"), 122.0);
    assert_eq!(w.metric("CredentialsIssued"), 1.0);
    assert_eq!(w.metric("WaitOnchainAlerts"), 0.0);
    assert_eq!(w.metric("StatusPolls"), 9.0);
}

#[tokio::test]
async fn a_credential_the_platform_does_not_know_is_marked_failed_with_the_reason() {
    let w = world(Backend::Embedded, Duration::from_secs(5)).await;
    let id = w
        .queue("ghost@example.com", "ghost", Some("0xunknown".into()))
        .await;
    w.advance(Duration::from_secs(1));
    let summary = w.run(&w.poller(PollPolicy::default())).await;
    assert_eq!((summary.polled, summary.failed, summary.errors), (1, 1, 0));
    let (record, issuance) = w.record(&id).await;
    assert_eq!(issuance.status(), IssuanceStatus::Failed);
    let reason = issuance.reason().unwrap();
    assert!(reason.contains("does not know this credential"), "{reason}");
    assert!(record.due.is_none());
    assert_eq!(w.metric("CredentialsFailed"), 1.0);
}

#[tokio::test]
async fn a_waiting_record_without_a_core_claim_hash_is_marked_failed_without_a_platform_call() {
    let w = world(Backend::Embedded, Duration::from_secs(5)).await;
    let id = w.queue("nohash@example.com", "nohash", None).await;
    w.advance(Duration::from_secs(1));
    let summary = w.run(&w.poller(PollPolicy::default())).await;
    assert_eq!((summary.polled, summary.failed), (0, 1));
    assert!(w.status_calls().is_empty());
    let (record, issuance) = w.record(&id).await;
    assert_eq!(issuance.status(), IssuanceStatus::Failed);
    assert!(issuance.reason().unwrap().contains("coreClaimHash"));
    assert!(record.due.is_none());
}

#[tokio::test]
async fn an_unreadable_record_leaves_the_queue_and_is_counted_as_an_error() {
    let w = world(Backend::Embedded, Duration::from_secs(5)).await;
    let key = RecordKey::new(RecordKind::Issuance, "iss_broken").unwrap();
    let now = w.clock.now();
    w.store
        .write(Write::Create(
            NewRecord::new(key.clone(), json!({"not": "an issuance"}))
                .due_at(shared::issuance::legacy_poll_queue(), now),
        ))
        .await
        .unwrap();
    let poller = w.poller(PollPolicy::default());
    let summary = w.run(&poller).await;
    assert_eq!((summary.polled, summary.errors), (0, 1));
    let record = w.store.get(&key).await.unwrap().unwrap();
    assert!(record.due.is_none(), "it is not listed again");
    assert_eq!(
        record.data,
        json!({"not": "an issuance"}),
        "its content is kept"
    );
    assert_eq!(w.metric_of_kind("PollErrors", "corrupt_record"), 1.0);
    w.advance(Duration::from_secs(60));
    assert_eq!(w.run(&poller).await.errors, 0);
}

#[tokio::test]
async fn an_unfinished_issuance_past_its_lease_is_found_through_the_index_and_abandoned_visibly() {
    let w = world(Backend::Embedded, Duration::from_secs(5)).await;
    let now = w.clock.now();
    let stuck = w
        .unfinished("stuck@example.com", "stuck", IssuanceStatus::Pending, now)
        .await;
    let upload = w
        .unfinished(
            "upload@example.com",
            "upload",
            IssuanceStatus::UploadPending,
            now,
        )
        .await;
    let live = w
        .unfinished(
            "live@example.com",
            "live",
            IssuanceStatus::Pending,
            now.plus(Duration::from_secs(3600)),
        )
        .await;
    w.advance(Duration::from_secs(1));
    let poller = w.poller(PollPolicy::default());
    let summary = w.run(&poller).await;
    assert_eq!(summary.abandoned, 2, "{summary:?}");
    assert_eq!(
        summary.polled, 0,
        "nothing unfinished is polled at the platform"
    );
    for (id, from) in [(&stuck, "PENDING"), (&upload, "UPLOAD_PENDING")] {
        let (record, issuance) = w.record(id).await;
        assert_eq!(issuance.status(), IssuanceStatus::Abandoned, "{from}");
        assert!(
            issuance.reason().unwrap().contains("same Idempotency-Key"),
            "{from}: {:?}",
            issuance.reason()
        );
        assert!(record.due.is_none(), "out of the queue: {from}");
    }
    assert_eq!(w.metric("IssuancesAbandoned"), 2.0);
    // The live one is left to its request.
    let (_, live_issuance) = w.record(&live).await;
    assert_eq!(live_issuance.status(), IssuanceStatus::Pending);
    // A second run finds nothing more to do.
    let again = w.run(&poller).await;
    assert_eq!(again.abandoned, 0);
}
