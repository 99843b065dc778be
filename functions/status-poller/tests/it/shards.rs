//! The sharded due queue: records spread over shards by id, every shard drained, the records of
//! the single queue of earlier releases still polled (and moved to their shard), and a changed
//! shard count stranding nothing — on the embedded store and on DynamoDB.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Backend, World, world};
use shared::clock::Clock;
use shared::issuance::{IssuanceStatus, PollShards, SweepEvery, legacy_poll_queue};
use status_poller::PollPolicy;

async fn queues_of(w: &World, ids: &[shared::issuance::IssuanceId]) -> BTreeSet<String> {
    let mut queues = BTreeSet::new();
    for id in ids {
        let (record, _) = w.record(id).await;
        queues.insert(record.due.expect("queued").queue.as_str().to_owned());
    }
    queues
}

async fn legacy_records_are_polled_and_move_to_their_shard(backend: Backend) {
    // Anchored 30 s after issuance: the simulator's clock also moves with real time, and seeding
    // on a busy machine takes seconds.
    let w = world(backend, Duration::from_secs(30)).await;
    let ids = w.seed("legacy", 24).await;
    // Queued as the release before sharding queued them: all in the one queue.
    for id in &ids {
        w.requeue(id, legacy_poll_queue()).await;
    }
    assert_eq!(
        queues_of(&w, &ids).await,
        BTreeSet::from(["poll".to_owned()])
    );

    let poller = w.poller(PollPolicy::default());
    w.advance(Duration::from_secs(1));
    let summary = w.run(&poller).await;
    assert_eq!(
        (summary.polled, summary.still_waiting),
        (24, 24),
        "{summary:?}"
    );
    // Each claim put its record back in its own shard: spread over several, none in the old queue.
    for id in &ids {
        let (record, _) = w.record(id).await;
        assert_eq!(record.due.unwrap().queue, w.queue_of(id));
    }
    let shards = queues_of(&w, &ids).await;
    assert!(shards.len() > 1 && !shards.contains("poll"), "{shards:?}");

    w.advance(Duration::from_secs(30));
    let summary = w.run(&poller).await;
    assert_eq!(summary.issued, 24, "{summary:?}");
    for id in &ids {
        assert_eq!(w.record(id).await.1.status(), IssuanceStatus::Issued);
    }
}

#[tokio::test]
async fn records_of_the_single_queue_before_sharding_are_polled_and_move_to_their_shard() {
    legacy_records_are_polled_and_move_to_their_shard(Backend::Embedded).await;
}

#[tokio::test]
async fn records_of_the_single_queue_before_sharding_are_polled_on_dynamodb_too() {
    legacy_records_are_polled_and_move_to_their_shard(Backend::DynamoDb).await;
}

/// Moves the world's clock on by whole minutes until a run started then would (or would not)
/// be a sweep.
fn advance_until_sweep_is(w: &World, policy: &PollPolicy, sweep: bool) {
    while policy
        .sweep_every
        .listing(policy.shards, w.clock.now())
        .is_sweep()
        != sweep
    {
        w.advance(Duration::from_secs(60));
    }
}

#[tokio::test]
async fn lowering_the_shard_count_strands_no_record_and_requeues_each_in_the_new_shards() {
    // Anchored an hour after issuance: the clock moves on by up to ten minutes below, and every
    // poll must find the credential still waiting, so that it goes back to the queue.
    let w = world(Backend::Embedded, Duration::from_secs(3600)).await;
    // Queued over the default 8 shards.
    let ids = w.seed("resharded", 32).await;
    assert!(queues_of(&w, &ids).await.len() > 2);

    let two = PollShards::new(2).unwrap();
    let policy = PollPolicy {
        shards: two,
        sweep_every: SweepEvery::new(10).unwrap(),
        ..PollPolicy::default()
    };
    let poller = w.poller(policy.clone());
    let (low, high): (Vec<_>, Vec<_>) = ids.iter().partition(|id| {
        ["poll-00", "poll-01"].contains(&PollShards::default().queue_for(id).as_str())
    });
    assert!(!low.is_empty() && !high.is_empty());

    // A routine run lists only the two configured shards: the records queued above them stay.
    w.advance(Duration::from_secs(1));
    advance_until_sweep_is(&w, &policy, false);
    let summary = w.run(&poller).await;
    assert!(!summary.swept);
    assert_eq!(summary.polled, low.len() as u64, "{summary:?}");
    for id in &high {
        let queue = w.record(id).await.0.due.unwrap().queue;
        assert_eq!(queue, PollShards::default().queue_for(id), "not listed yet");
    }

    // The next sweep finds them and puts each in its shard of the new count.
    advance_until_sweep_is(&w, &policy, true);
    let summary = w.run(&poller).await;
    assert!(summary.swept);
    assert_eq!(summary.polled, 32, "every shard is listed: {summary:?}");
    let after = queues_of(&w, &ids).await;
    assert_eq!(
        after,
        BTreeSet::from(["poll-00".to_owned(), "poll-01".to_owned()])
    );
    for id in &ids {
        assert_eq!(w.record(id).await.0.due.unwrap().queue, two.queue_for(id));
    }
}

#[tokio::test]
async fn a_sweep_every_minute_lists_every_shard_in_every_run() {
    let w = world(Backend::Embedded, Duration::from_secs(3600)).await;
    let ids = w.seed("every-run", 16).await;
    let poller = w.poller(PollPolicy {
        shards: PollShards::new(1).unwrap(),
        sweep_every: SweepEvery::new(1).unwrap(),
        ..PollPolicy::default()
    });
    w.advance(Duration::from_secs(1));
    let summary = w.run(&poller).await;
    assert!(summary.swept);
    assert_eq!(summary.polled, ids.len() as u64, "{summary:?}");
}

#[tokio::test]
async fn a_schedule_fanned_out_over_two_groups_polls_every_record_once_between_them() {
    let w = world(Backend::Embedded, Duration::from_secs(60)).await;
    let ids = w.seed("fanout", 40).await;
    // A few still in the single queue of the release before sharding: group 0 drains it.
    for id in &ids[..5] {
        w.requeue(id, legacy_poll_queue()).await;
    }
    let (a, b) = (
        w.poller(PollPolicy::default()),
        w.poller(PollPolicy::default()),
    );
    w.advance(Duration::from_secs(1));
    let deadline = || shared::platform::Deadline::after(Duration::from_secs(60));
    let group = |i| {
        status_poller::shard_group(&serde_json::json!({"shardGroup": i, "shardGroups": 2})).unwrap()
    };
    // The two invocations of one scheduled minute, at the same time, each with its own lease.
    let (first, second) = tokio::join!(
        status_poller::run_group(&a, deadline(), group(0)),
        status_poller::run_group(&b, deadline(), group(1)),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(
        first.polled > 5 && second.polled > 0,
        "{first:?} {second:?}"
    );
    assert_eq!(first.polled + second.polled, 40);
    let calls = w.status_calls();
    let distinct: BTreeSet<&String> = calls.iter().collect();
    assert_eq!(
        (calls.len(), distinct.len()),
        (40, 40),
        "no record polled twice"
    );
    assert_eq!(
        status_poller::shard_group(&serde_json::json!({"shardGroup": 2, "shardGroups": 2}))
            .unwrap_err()
            .to_string(),
        "the event's shardGroup/shardGroups are not a group of 1-64 groups: Some(Number(2)) of Some(Number(2))"
    );
}
