//! `make bench`: ECIES throughput on a 5 MB message, both curves (docs/architecture.md §12: P-256 ≥ 300 MB/s on
//! 5 MB). A plain harness: it prints figures (to stderr, like the other benches) and asserts
//! nothing about time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cak_ecies::{self as ecies, Curve, SecretKey};
use rand_core::{OsRng, RngCore};

/// 5 MB (decimal), the size of the budget.
const MESSAGE_LEN: usize = 5_000_000;
const WARM_UP: usize = 2;
const RUNS: usize = 15;

fn megabytes_per_second(len: usize, elapsed: Duration) -> f64 {
    len as f64 / 1e6 / elapsed.as_secs_f64()
}

/// Median and best of `runs` timed calls, after `WARM_UP` untimed ones.
fn measure(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..WARM_UP {
        f();
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[runs / 2], times[0])
}

fn main() {
    // Under `cargo test`: one small run, to prove the bench still works. `cargo bench` passes
    // `--bench` (the rule of `test_support::measuring`, which this crate cannot depend on: the
    // support crate depends on `shared`, which depends on this one).
    let measuring = std::env::args().any(|a| a == "--bench");
    let (len, runs) = if measuring {
        (MESSAGE_LEN, RUNS)
    } else {
        (64 * 1024, 1)
    };
    let mut message = vec![0u8; len];
    OsRng.fill_bytes(&mut message);
    for curve in [Curve::Secp256r1, Curve::Secp256k1] {
        let secret = SecretKey::generate(curve);
        let public = secret.public_key();
        let (median, best) = measure(runs, || {
            std::hint::black_box(ecies::encrypt(&public, std::hint::black_box(&message)).unwrap());
        });
        eprintln!(
            "ecies {curve} encrypt {len} bytes: {:.0} MB/s median ({:.2} ms), {:.0} MB/s best, over {runs} runs",
            megabytes_per_second(len, median),
            median.as_secs_f64() * 1e3,
            megabytes_per_second(len, best),
        );
        let ciphertext = ecies::encrypt(&public, &message).unwrap();
        let (median, best) = measure(runs, || {
            std::hint::black_box(
                ecies::decrypt(&secret, std::hint::black_box(&ciphertext)).unwrap(),
            );
        });
        eprintln!(
            "ecies {curve} decrypt {len} bytes: {:.0} MB/s median ({:.2} ms), {:.0} MB/s best, over {runs} runs",
            megabytes_per_second(len, median),
            median.as_secs_f64() * 1e3,
            megabytes_per_second(len, best),
        );
    }
}
