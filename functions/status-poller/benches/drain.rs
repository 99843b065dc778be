//! `make bench`: one poll run over 10,000 due records with 20 ms of platform latency (budget:
//! drained in one run in under 60 s), and the store calls it makes per record. Two backlogs:
//! every credential anchored (each record claimed, then written `ISSUED`), and none anchored yet
//! with records at their 30 s backoff (each record claimed, and nothing else to write).
//! Then one warm container's Secrets Manager reads over a simulated hour of scheduled runs.
//! Prints figures; asserts nothing about time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, World, world};
use futures::StreamExt;
use serde_json::json;
use shared::issuance::Issuance;
use shared::platform::Deadline;
use shared::store::{Record, Write};
use status_poller::{PollPolicy, run};
use test_support::{CountingStore, StoreCalls};

const RECORDS: usize = 10_000;
/// Under `cargo test` the bench runs once over this many records, to prove it still works.
const SMOKE_RECORDS: usize = 200;

fn records() -> usize {
    if test_support::measuring() {
        RECORDS
    } else {
        SMOKE_RECORDS
    }
}
const LATENCY_MS: u64 = 20;

/// Puts every seeded record at its `attempts`-th poll (setting up, not measured).
async fn at_attempt(w: &World, ids: &[shared::issuance::IssuanceId], attempts: u32) {
    futures::stream::iter(ids)
        .for_each_concurrent(16, |id| async move {
            let (record, _): (Record, Issuance) = w.record(id).await;
            let mut data = record.data.clone();
            data["pollAttempts"] = serde_json::json!(attempts);
            let mut next = shared::store::NewRecord::new(record.key.clone(), data);
            next.due = record.due.clone();
            w.store
                .write(Write::Replace {
                    record: next,
                    expected: record.version,
                })
                .await
                .unwrap();
        })
        .await;
}

async fn drain(label: &str, onchain_delay: Duration, attempts: u32) {
    let w = world(Backend::Embedded, onchain_delay).await;
    let seeding = Instant::now();
    let n = records();
    let ids = w.seed(label, n).await;
    if attempts > 0 {
        at_attempt(&w, &ids, attempts).await;
    }
    eprintln!(
        "poller drain [{label}]: seeded {n} credentials in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    w.fault(json!({"route": "/credentials/status", "latencyMs": LATENCY_MS}))
        .await;
    w.advance(Duration::from_secs(3600));
    let counting = Arc::new(CountingStore::new(w.store.clone(), Some(w.due.clone())));
    // The give-up limit is pushed out of the way: the backlog is an hour old by construction.
    let policy = PollPolicy {
        alert_after: Duration::from_secs(86_400),
        give_up_after: Duration::from_secs(2 * 86_400),
        ..PollPolicy::default()
    };
    let poller = w.poller_on(counting.clone(), counting.clone(), policy.clone());
    let status_calls = || {
        w.sim
            .requests()
            .iter()
            .filter(|r| r.route.ends_with("/credentials/status"))
            .count()
    };
    let status_calls_before = status_calls();
    let started = Instant::now();
    let summary = run(&poller, Deadline::after(Duration::from_secs(60)))
        .await
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let StoreCalls {
        reads,
        writes,
        queries,
    } = counting.take();
    let calls = writes + queries + reads;
    let records = summary.polled.max(1) as f64;
    eprintln!(
        "poller drain [{label}]: {} of {n} records polled in one run in {elapsed:.2} s \
         ({:.0} records/s; concurrency {}, {LATENCY_MS} ms platform latency; budget < 60 s); \
         issued {}, still waiting {}, errors {}, stopped early {}",
        summary.polled,
        summary.polled as f64 / elapsed,
        policy.concurrency,
        summary.issued,
        summary.still_waiting,
        summary.errors,
        summary.stopped_early,
    );
    eprintln!(
        "poller drain [{label}]: store calls {calls} = {writes} conditional writes (one per state \
         change) + {queries} due-index queries ({}) + {reads} reads: {:.3} calls per record, \
         {:.2} writes per record; platform status calls {:.3} per record",
        if summary.swept {
            "a sweep of every possible shard"
        } else {
            "the configured shards"
        },
        calls as f64 / records,
        writes as f64 / records,
        (status_calls() - status_calls_before) as f64 / records,
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Every credential anchored: claim + ISSUED.
        drain("anchored", Duration::ZERO, 0).await;
        // None anchored yet, every record at its 30 s backoff: the claim alone.
        drain("waiting", Duration::from_secs(30 * 86_400), 6).await;
        an_hour_of_runs().await;
    });
}

/// One warm container running the minute schedule for a simulated hour over a small backlog
/// that stays waiting: its secret reads, per secret. The schedule, not the issuance rate, sets
/// the number of runs, so this is the poller's figure at any request rate.
async fn an_hour_of_runs() {
    let w = world(Backend::Embedded, Duration::from_secs(30 * 86_400)).await;
    w.seed("hour", 20).await;
    let poller = w.poller(PollPolicy::default());
    w.reads.reset();
    let minutes = if test_support::measuring() { 60 } else { 3 };
    let mut polled = 0;
    for _minute in 0..minutes {
        w.advance(Duration::from_secs(60));
        polled += w.run(&poller).await.polled;
    }
    eprintln!(
        "status-poller secret reads: {} per warm container over {minutes} scheduled runs ({polled} \
         polls; {}); one container per shard group, so 1 to 4 of these an hour whatever the \
         request rate",
        w.reads.calls(),
        w.reads.summary(),
    );
}
