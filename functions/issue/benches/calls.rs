//! `make bench`: how many store calls the issue handler makes for a first issuance and for a
//! replay (5 and 1, not counting the authentication's replay-cache write: the write-ahead steps
//! cost 2 reads and 3 writes, over the old budget of 3, docs/architecture.md §12), the
//! handler's wall time per issuance against the local simulator, and one container's Secrets
//! Manager reads over a simulated hour of traffic. Prints figures; asserts nothing about time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use shared::clock::{Clock, ManualClock, SharedClock, SystemClock, Timestamp};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut w = common::world(&[]).await;
        let counting = Arc::new(test_support::CountingStore::new(Arc::clone(&w.deps.store), None));
        w.deps.store = counting.clone();
        // kyc-basic decides onDuplicate automatically (it reads the last subject hash);
        // kyc-document-k1 always revokes.
        for program in ["kyc-basic", "kyc-document-k1"] {
            let b = common::body(program, "bench@example.com");
            let key = format!("bench-first-{program}");
            let (status, _, _) = w.send(w.post(&w.writer, Some(&key), &b)).await;
            assert_eq!(status, 202);
            let first = counting.take_calls();
            let (status, _, _) = w.send(w.post(&w.writer, Some(&key), &b)).await;
            assert_eq!(status, 202);
            let replay = counting.take_calls();
            eprintln!(
                "issue store calls for {program} (besides authentication's replay-cache write): first issuance {first}, replay {replay}"
            );
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
