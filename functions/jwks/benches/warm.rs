//! `make bench`: warm JWKS cost in process (the budget is 10 µs), secret reads while warm, and
//! one container's secret reads over a simulated hour of traffic.
//! A plain harness: it prints figures and asserts nothing about time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use jwks::{JwksConfig, JwksDeps, JwksPorts, handle};
use lambda_http::http::Method;
use shared::apigw::ApiGatewayRequest;
use shared::clock::{Clock, ManualClock, SharedClock, SystemClock};
use shared::config::{EnvReader, MapEnv};
use shared::keys::KeySetStore;
use shared::keys::policy::{plan, rotate};
use shared::secrets::file::FileSecrets;
use shared::secrets::{CountingSource, SecretWriter};
use shared::telemetry::{MemorySink, Recorder};

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (deps, reads, _dir) = jwks_deps(Arc::new(SystemClock)).await;
        let request = ApiGatewayRequest::new(Method::GET, "/.well-known/jwks.json");
        let first = handle(request.clone().build(), &deps).await;
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        let conditional = request.clone().header("if-none-match", &etag);
        let n = 20_000u32;
        let reads_before = reads.calls();
        for (label, req) in [
            ("200 with body", &request),
            ("304 on If-None-Match", &conditional),
        ] {
            let built: Vec<_> = (0..n).map(|_| req.clone().build()).collect();
            let start = Instant::now();
            for r in built {
                std::hint::black_box(handle(r, &deps).await);
            }
            let per = start.elapsed() / n;
            eprintln!(
                "jwks warm, {label}: {:.2} µs per request (handler only) over {n} calls",
                per.as_secs_f64() * 1e6
            );
        }
        eprintln!(
            "jwks secret reads while warm: {}",
            reads.calls() - reads_before
        );
    });
    rt.block_on(an_hour_of_traffic());
}

/// The JWKS function as Lambda builds it, over a fresh key set (a next key published) in local
/// secret files that count their reads.
async fn jwks_deps(
    clock: SharedClock,
) -> (JwksDeps, CountingSource<FileSecrets>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let files = FileSecrets::open(dir.path(), clock.clone()).unwrap();
    let config = JwksConfig::from_env(&EnvReader::new(&MapEnv::default())).unwrap();
    let writer: Arc<dyn SecretWriter> = Arc::new(files.clone());
    let store = KeySetStore::new(writer, config.keys.secret_name.clone());
    let loaded = store.load().await.unwrap();
    let (set, _) = plan(&loaded.set, clock.now(), &config.keys.policy).unwrap();
    let (set, _) = rotate(&set, clock.now(), &config.keys.policy, false);
    store.save(&loaded, &set).await.unwrap();
    let reads = CountingSource::new(files);
    let deps = JwksDeps::build(
        config,
        JwksPorts {
            secrets: Arc::new(reads.clone()),
            recorder: Recorder::new(
                "Bench",
                "jwks",
                Arc::new(MemorySink::default()),
                clock.clone(),
            ),
            clock,
        },
    );
    (deps, reads, dir)
}

/// One container answering 4 requests a second for a simulated hour: its secret reads. Reads
/// depend on the key-set cache's TTL, not on the request rate. Under `cargo test` it runs over a
/// simulated two minutes, to prove it still works.
async fn an_hour_of_traffic() {
    let manual = ManualClock::new(SystemClock.now());
    let (deps, reads, _dir) = jwks_deps(Arc::new(manual.clone())).await;
    reads.reset();
    let request = ApiGatewayRequest::new(Method::GET, "/.well-known/jwks.json");
    let seconds = if test_support::measuring() { 3600 } else { 120 };
    let mut served = 0u32;
    for _second in 0..seconds {
        for _ in 0..4 {
            let r = handle(request.clone().build(), &deps).await;
            assert_eq!(r.status(), 200);
            served += 1;
        }
        manual.advance(std::time::Duration::from_secs(1));
    }
    eprintln!(
        "jwks secret reads: {} per container over a simulated {} min of {served} requests ({})",
        reads.calls(),
        seconds / 60,
        reads.summary(),
    );
}
