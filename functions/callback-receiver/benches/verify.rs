//! `make bench`: the warm cost of verifying a Standard Webhooks signature on a 2 KB body (budget
//! 10 µs), and the store writes a new event and a duplicate cost (budget: one write per new
//! event, one failed conditional write per duplicate). Prints figures; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::Instant;

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
}
