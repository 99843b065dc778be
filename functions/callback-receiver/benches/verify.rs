//! `make bench`: the warm cost of verifying a Standard Webhooks signature on a 2 KB body (budget
//! 10 µs), and the store writes a new event and a duplicate cost (budget: one write per new
//! event, one failed conditional write per duplicate), and one container's Secrets Manager reads
//! over a simulated hour of deliveries. Prints figures; asserts nothing about time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::Instant;

use shared::clock::Clock;

use callback_receiver::SecretSet;
use callback_receiver::verify::{self, Delivery, Scheme};

fn verification() {
    let body = format!(r#"{{"pad": "{}"}}"#, "x".repeat(2048 - 11));
    assert_eq!(body.len(), 2048);
    for (label, secrets) in [
        ("1 secret", vec![common::VECTOR_SECRET]),
        (
            "2 secrets (rotation)",
            vec![common::SECOND_SECRET, common::VECTOR_SECRET],
        ),
    ] {
        let doc = serde_json::json!({ "secrets": secrets }).to_string();
        let set = SecretSet::parse(&doc, Scheme::Standard).unwrap();
        let one = SecretSet::parse(common::VECTOR_SECRET, Scheme::Standard).unwrap();
        let header = verify::sign_standard(&one, "msg_bench", 1_795_262_400, body.as_bytes());
        let delivery = Delivery {
            scheme: Scheme::Standard,
            id: Some("msg_bench"),
            timestamp: Some("1795262400"),
            signature: Some(&header),
            body: body.as_bytes(),
        };
        for _ in 0..1_000 {
            black_box(verify::verify(black_box(&delivery), &set).unwrap());
        }
        let n = 20_000u32;
        let start = Instant::now();
        for _ in 0..n {
            black_box(verify::verify(black_box(&delivery), &set).unwrap());
        }
        eprintln!(
            "callback signature verification, 2 KB body, {label}: {:.2} µs (warm, mean of {n})",
            start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        );
    }
}

fn main() {
    verification();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let w = common::world().await;
        // Warm the secret caches first, as a warm container would be.
        let warm = common::body_for("warm@example.com", common::VERIFIER, common::SCHEMA, "w");
        assert_eq!(w.send(w.signed(&warm)).await.0, 200);
        w.spy.reset_counts();
        let req = w.authorization();
        assert_eq!(w.send(req.clone()).await.0, 200);
        let new_writes = w.spy.writes.load(Ordering::SeqCst);
        let new_gets = w.spy.gets.load(Ordering::SeqCst);
        w.spy.reset_counts();
        assert_eq!(w.send(req).await.0, 200);
        eprintln!(
            "callback store calls: new event {new_writes} write(s) and {new_gets} read(s); duplicate {} write(s) ({} failed conditional) and {} read(s)",
            w.spy.writes.load(Ordering::SeqCst),
            w.spy.failed_conditions.load(Ordering::SeqCst),
            w.spy.gets.load(Ordering::SeqCst),
        );
    });
    rt.block_on(an_hour_of_deliveries());
}

/// One container receiving four callbacks a second for a simulated hour: its secret reads, per
/// secret. Reads depend on the caches' TTLs, not on the delivery rate. Under `cargo test` it runs
/// over a simulated two minutes, to prove it still works.
async fn an_hour_of_deliveries() {
    let w = common::world().await;
    w.reads.reset();
    let started = w.clock.now();
    let seconds = if test_support::measuring() { 3600 } else { 120 };
    let mut served = 0u32;
    for second in 0..seconds {
        for n in 0..4 {
            let body = common::body_for(
                &format!("hour{second}-{n}@example.com"),
                common::VERIFIER,
                common::SCHEMA,
                &format!("evt_{second}_{n}"),
            );
            assert_eq!(w.send(w.signed(&body)).await.0, 200);
            served += 1;
        }
        w.clock.advance(std::time::Duration::from_secs(1));
    }
    let total = w.reads.calls();
    eprintln!(
        "callback-receiver secret reads: {total} per container over a simulated {:.0} min of \
         {served} deliveries ({}); at 1,000 deliveries/s over 50 warm containers that is {} \
         reads/hour, {:.2} reads/s",
        w.clock.now().since(started).as_secs_f64() / 60.0,
        w.reads.summary(),
        (total as f64 * 50.0 * 3600.0 / f64::from(seconds)).round(),
        total as f64 * 50.0 / f64::from(seconds),
    );
}
