//! `make bench`: the sharded due index under a large backlog. Due records spread over the
//! default 8 shards are drained by 1, 2 and 4 concurrent pollers (one shard group each, as the
//! fanned-out schedule runs them), against the simulator with 20 ms of platform latency, on the
//! embedded store and on DynamoDB (moto). Prints records/s per poller and in total, index writes
//! per record, and the proof that every record was polled exactly once per round (none twice at
//! once, none skipped). Prints figures; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, World, world};
use serde_json::json;
use shared::issuance::ShardGroup;
use shared::platform::Deadline;
use status_poller::{PollPolicy, run_group};
use test_support::{CountingStore, StoreCalls};

/// Records on the embedded store and on DynamoDB. moto is one local Python process serving about
/// 115 records/s here, so by default it gets a tenth (each round of 100,000 would take about a
/// quarter of an hour); `SCALE_DYNAMODB_RECORDS` sets another count.
const EMBEDDED_RECORDS: usize = 100_000;
const DYNAMODB_RECORDS: usize = 10_000;

fn dynamodb_records() -> usize {
    match std::env::var("SCALE_DYNAMODB_RECORDS") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("SCALE_DYNAMODB_RECORDS must be a count, not {text:?}")),
        Err(_) => DYNAMODB_RECORDS,
    }
}
/// Under `cargo test` the bench runs once over this many records, to prove it still works.
const SMOKE_RECORDS: usize = 64;
const LATENCY_MS: u64 = 20;
/// Status calls in flight per poller: a poller bound by the platform's latency, as in production.
const CONCURRENCY: usize = 16;

/// One round: every seeded record due, `pollers` shard groups drained at once.
async fn round(w: &World, n: usize, pollers: u16, label: &str) {
    // Every conditional write of a queued record rewrites its index entry: writes = index writes.
    let counting = Arc::new(CountingStore::new(w.store.clone(), Some(w.due.clone())));
    // Nothing is anchored (the simulator's delay is a month): each poll is a claim that leaves
    // the record waiting at its backoff, so every round polls the same backlog again.
    let policy = PollPolicy {
        concurrency: CONCURRENCY,
        alert_after: Duration::from_secs(86_400 * 365),
        give_up_after: Duration::from_secs(2 * 86_400 * 365),
        ..PollPolicy::default()
    };
    let deps: Vec<_> = (0..pollers)
        .map(|_| w.poller_on(counting.clone(), counting.clone(), policy.clone()))
        .collect();
    w.advance(Duration::from_secs(3600));
    let calls_before = w.status_calls().len();
    let started = Instant::now();
    let runs = deps.iter().enumerate().map(|(i, d)| {
        let group = ShardGroup::new(u16::try_from(i).unwrap(), pollers).unwrap();
        async move {
            let t = Instant::now();
            // A run whose index listing fails (moto overloaded) is reported, not fatal: the
            // records it did not reach show as skipped.
            let s = match run_group(d, Deadline::after(Duration::from_secs(600)), group).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("poller scale [{label}]: group {i} of {pollers} failed: {e}");
                    status_poller::RunSummary::default()
                }
            };
            (s, t.elapsed().as_secs_f64())
        }
    });
    let results = futures::future::join_all(runs).await;
    let elapsed = started.elapsed().as_secs_f64();
    let polled: u64 = results.iter().map(|(s, _)| s.polled).sum();
    let per_poller: Vec<String> = results
        .iter()
        .map(|(s, t)| format!("{:.0}", s.polled as f64 / t))
        .collect();
    // Exactly once per round: as many status calls as records, each hash once.
    let calls = w.status_calls();
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for hash in &calls[calls_before..] {
        *seen.entry(hash.as_str()).or_default() += 1;
    }
    let twice = seen.values().filter(|&&c| c > 1).count();
    let skipped = n - seen.len();
    let StoreCalls {
        writes, queries, ..
    } = counting.take();
    eprintln!(
        "poller scale [{label}, {pollers} poller(s)]: {polled} of {n} records in {elapsed:.2} s: \
         {:.0} records/s in total, per poller {} records/s; {:.3} index writes per record, \
         {queries} index queries; polled twice at once: {twice}, skipped: {skipped}",
        polled as f64 / elapsed,
        per_poller.join(" / "),
        writes as f64 / (polled.max(1) as f64),
    );
}

async fn scale(backend: Backend, label: &str, full: usize) {
    let n = if test_support::measuring() {
        full
    } else {
        SMOKE_RECORDS
    };
    let w = world(backend, Duration::from_secs(30 * 86_400)).await;
    let seeding = Instant::now();
    w.seed(label, n).await;
    eprintln!(
        "poller scale [{label}]: seeded {n} credentials over 8 shards in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    w.fault(json!({"route": "/credentials/status", "latencyMs": LATENCY_MS}))
        .await;
    for pollers in [1, 2, 4] {
        round(&w, n, pollers, label).await;
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        scale(Backend::Embedded, "embedded", EMBEDDED_RECORDS).await;
        scale(Backend::DynamoDb, "dynamodb", dynamodb_records()).await;
    });
}
