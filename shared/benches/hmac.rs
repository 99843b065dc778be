//! `make bench`: warm HMAC request-signature cost on a 2 KB body (budget 10 µs). Prints figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

fn main() {
    let body = vec![b'x'; 2048];
    let secret = "sk_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
    let n = 100_000u32;
    let expected = shared::auth::sign(secret, "POST", "/v1/credentials", "1795262400", &body);
    let start = Instant::now();
    for _ in 0..n {
        let sig = shared::auth::sign(
            secret,
            "POST",
            "/v1/credentials",
            "1795262400",
            std::hint::black_box(&body),
        );
        assert!(shared::redact::constant_time_eq(
            sig.as_bytes(),
            expected.as_bytes()
        ));
    }
    eprintln!(
        "HMAC-SHA256 request signature on a 2 KB body, compute and compare: {:.2} µs",
        start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
}
