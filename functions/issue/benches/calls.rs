//! `make bench`: how many store calls the issue handler makes for a first issuance and for a
//! replay (budget: ≤ 3 and 1, not counting the authentication's replay-cache write), and the
//! handler's wall time per issuance against the local simulator. Prints figures; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

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
}
