//! `make bench`: the store and platform calls of each issue route (a first issuance with and
//! without CAK documents, a replay, a status read), authentication's replay-cache write
//! included, counted through a wrapper of the store the function is built on; the handler's wall
//! time per issuance against the local simulator; and one container's Secrets Manager reads over
//! a simulated hour of traffic. Prints figures; asserts nothing about time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use issue::{IssueDeps, IssuePorts};
use lambda_http::http::Method;
use serde_json::json;
use shared::clock::{Clock, ManualClock, SharedClock, SystemClock, Timestamp};
use test_support::CountingStore;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut w = common::world(&[]).await;
        // The function rebuilt by its one constructor on a store that counts every call,
        // authentication's replay-cache write among them.
        let counting = Arc::new(CountingStore::new(Arc::clone(&w.deps.store), None));
        w.deps = IssueDeps::build(
            w.deps.config.clone(),
            IssuePorts {
                store: counting.clone(),
                secrets: Arc::new(w.reads.clone()),
                clock: w.clock.clone(),
                recorder: w.deps.recorder.clone(),
            },
        )
        .unwrap();
        let platform_calls = || w.sim.requests().len();
        // kyc-basic decides onDuplicate automatically (it reads the last subject hash) and has no
        // CAK; kyc-document-r1 uploads the encrypted sensitive data to the credential's CAK.
        let mut with_documents = common::body("kyc-document-r1", "bench-docs@example.com");
        with_documents["sensitiveData"] = json!({"fullName": "Bench User"});
        let routes = [
            ("kyc-basic", "basic", common::body("kyc-basic", "bench@example.com")),
            ("kyc-document-r1 with sensitiveData", "documents", with_documents),
        ];
        for (name, label, b) in routes {
            let key = format!("bench-first-{label}");
            counting.take();
            let before = platform_calls();
            let (status, body, _) = w.send(w.post(&w.writer, Some(&key), &b)).await;
            assert_eq!(status, 202, "{body}");
            let first = (counting.take(), platform_calls() - before);
            let before = platform_calls();
            let (status, _, _) = w.send(w.post(&w.writer, Some(&key), &b)).await;
            assert_eq!(status, 202);
            let replay = (counting.take(), platform_calls() - before);
            let id = body["issuanceId"].as_str().unwrap();
            let path = format!("/v1/credentials/{id}");
            let before = platform_calls();
            let (status, _, _) = w
                .send(w.signed(&w.reader, Method::GET, &path, Vec::new()))
                .await;
            assert_eq!(status, 200);
            let read = (counting.take(), platform_calls() - before);
            for (route, (store, platform)) in [
                ("first issuance", first),
                ("replay", replay),
                ("status read", read),
            ] {
                eprintln!(
                    "issue calls, {name}, {route}: store {store} ({} in all, authentication's \
                     replay-cache write included); platform {platform}",
                    store.total()
                );
            }
        }
        let n = 200u32;
        let start = Instant::now();
        for i in 0..n {
            let b = common::body("kyc-basic", &format!("bench{i}@example.com"));
            let (status, _, _) = w.send(w.post(&w.writer, Some(&format!("bench-{i}")), &b)).await;
            assert_eq!(status, 202);
        }
        eprintln!(
            "issue end to end in process (embedded store, local simulator): {:.2} ms per issuance over {n}",
            start.elapsed().as_secs_f64() * 1e3 / f64::from(n)
        );
    });
    rt.block_on(an_hour_of_traffic());
}

/// One container serving an issuance every second for a simulated hour: its secret reads, per
/// secret. Reads depend on the caches' TTLs, not on the request rate, so at any rate the bundle
/// reads `containers × this` per hour. Under `cargo test` it runs over a simulated two minutes,
/// to prove it still works.
async fn an_hour_of_traffic() {
    let manual = ManualClock::new(SystemClock.now());
    let clock: SharedClock = Arc::new(manual.clone());
    // The simulator checks token times on its own clock, which the function's clock follows.
    let w = common::world_on_clock(
        &[],
        |c| platform_sim::SimConfig {
            token_times: platform_sim::TokenTimes::Simulator,
            ..c
        },
        clock,
    )
    .await;
    let follow_simulator = || {
        let since_epoch = w.sim.clock().now().duration_since(UNIX_EPOCH).unwrap();
        manual.set(Timestamp::from_millis(
            i64::try_from(since_epoch.as_millis()).unwrap(),
        ));
    };
    follow_simulator();
    let started = manual.now();
    w.reads.reset();
    let seconds = if test_support::measuring() { 3600 } else { 120 };
    let mut served = 0u32;
    for second in 0..seconds {
        let b = common::body("kyc-basic", &format!("hour{second}@example.com"));
        let (status, body, _) = w
            .send(w.post(&w.writer, Some(&format!("hour-{second}")), &b))
            .await;
        assert_eq!(status, 202, "{body}");
        served += 1;
        w.sim.advance(Duration::from_secs(1));
        follow_simulator();
    }
    let simulated = manual.now().since(started);
    let total = w.reads.calls();
    eprintln!(
        "issue secret reads: {total} per container over a simulated {:.0} min of {served} \
         issuances ({}); at 1,000 requests/s over 200 warm containers that is {} reads/hour, \
         {:.2} reads/s",
        simulated.as_secs_f64() / 60.0,
        w.reads.summary(),
        (total as f64 * 200.0 * 3600.0 / simulated.as_secs_f64()).round(),
        total as f64 * 200.0 / simulated.as_secs_f64(),
    );
}
