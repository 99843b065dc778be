//! `make bench`: warm mint cost in process (the budget is 100 µs of CPU per mint), the number
//! of secret reads a warm container makes (the budget is zero within the cache TTL), and the
//! Secrets Manager reads of one container over a simulated hour of steady traffic (what bounds
//! the reads at any request rate: docs/scale.md).
//! A plain harness: it prints figures and asserts nothing about time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use lambda_http::http::Method;
use serde_json::json;
use shared::apigw::ApiGatewayRequest;
use shared::clock::{SharedClock, SystemClock};
use shared::config::{EnvReader, MapEnv};
use shared::keys::KeySetStore;
use shared::keys::policy::plan;
use shared::secrets::file::FileSecrets;
use shared::secrets::{CountingSource, SecretWriter};
use shared::telemetry::Recorder;
use token_mint::{MintConfig, MintDeps, MintPorts, handle};

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clock: SharedClock = Arc::new(SystemClock);
        // The benchmark mints `issue` on the user route, the costliest token, so it enables it.
        let (deps, reads, _dir) = mint_deps(
            clock,
            &[("PARTNER_ID", "bench"), ("USER_ISSUE_TOKENS", "true")],
            Arc::new(shared::telemetry::StdoutSink),
        )
        .await;
        let claims = [("sub", "bench-user"), ("email", "bench@example.com"), ("email_verified", "true"), ("amr", "[pwd mfa]")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<std::collections::HashMap<_, _>>();
        let request = ApiGatewayRequest::new(Method::POST, "/v1/partner-tokens")
            .json(&json!({"scope": "issue"}))
            .claims(claims);
        // Warm up: the first call reads the key set.
        let r = handle(request.clone().build(), &deps).await;
        assert_eq!(r.status(), 200);
        let n = 2_000u32;
        let reads_before = reads.calls();
        let start = Instant::now();
        for _ in 0..n {
            let r = handle(request.clone().build(), &deps).await;
            std::hint::black_box(r);
        }
        let per = start.elapsed() / n;
        eprintln!(
            "token-mint warm: {:.1} µs per mint (handler, incl. request parsing, ES256 signing, EMF line) over {n} calls; secret reads while warm: {}",
            per.as_secs_f64() * 1e6,
            reads.calls() - reads_before
        );
    });
    rt.block_on(an_hour_of_traffic());
}

/// The token mint as Lambda builds it from `env`, over a fresh key set in local secret files
/// that count their reads.
async fn mint_deps(
    clock: SharedClock,
    env: &[(&str, &str)],
    sink: Arc<dyn shared::telemetry::MetricSink>,
) -> (MintDeps, CountingSource<FileSecrets>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let files = FileSecrets::open(dir.path(), clock.clone()).unwrap();
    let config =
        MintConfig::from_env(&EnvReader::new(&MapEnv::from_pairs(env.iter().copied()))).unwrap();
    let writer: Arc<dyn SecretWriter> = Arc::new(files.clone());
    let store = KeySetStore::new(writer, config.keys.secret_name.clone());
    let loaded = store.load().await.unwrap();
    let (set, _) = plan(&loaded.set, clock.now(), &config.keys.policy).unwrap();
    store.save(&loaded, &set).await.unwrap();
    let reads = CountingSource::new(files);
    let deps = MintDeps::build(
        config,
        MintPorts {
            secrets: Arc::new(reads.clone()),
            replay: None,
            recorder: Recorder::new("Bench", "token-mint", sink, clock.clone()),
            clock,
        },
    );
    (deps, reads, dir)
}

/// One container serving 4 requests a second for a simulated hour, half on the user route and
/// half on the server route (API-key signed): its secret reads, per secret. Reads depend on the
/// caches' TTLs, not on the request rate, so at any rate the bundle reads `containers × this` per
/// hour. Under `cargo test` it runs over a simulated two minutes, to prove it still works.
async fn an_hour_of_traffic() {
    let seconds = simulated_seconds();
    let w = common::world(true).await;
    assert_eq!(
        w.deps.config.keys.timings.key_set_cache_ttl,
        std::time::Duration::from_secs(300)
    );
    w.secret_reads.reset();
    let store = w.replay_calls.as_ref().unwrap();
    store.take();
    let (mut served, mut user_store, mut server_store) = (0u32, 0u64, 0u64);
    for second in 0..seconds {
        for n in 0..2 {
            let user = common::user_request(&json!({"scope": "session"}), "[pwd]");
            let server = common::server_request(
                &w,
                &json!({"scope": "session", "user": {"sub": format!("u-{second}-{n}")}}),
                &w.server_key,
            );
            for (request, calls) in [(user, &mut user_store), (server, &mut server_store)] {
                let r = handle(request.build(), &w.deps).await;
                assert_eq!(r.status(), 200, "{:?}", r.body());
                *calls += store.take().total();
                served += 1;
            }
        }
        w.clock.advance(std::time::Duration::from_secs(1));
    }
    let per_route = f64::from(served / 2);
    eprintln!(
        "token-mint store calls per request: user route {:.3}, server route {:.3} (its \
         replay-cache write), over {served} requests",
        user_store as f64 / per_route,
        server_store as f64 / per_route,
    );
    let per_hour = w.secret_reads.calls();
    eprintln!(
        "token-mint secret reads: {per_hour} per container over a simulated {} min of {served} \
         requests on both routes ({}); at 1,000 requests/s spread over 100 warm containers that \
         is {} reads/hour, {:.2} reads/s",
        seconds / 60,
        w.secret_reads.summary(),
        per_hour * 100,
        per_hour as f64 * 100.0 / 3600.0,
    );
}

/// An hour when measuring, two minutes under `cargo test`.
fn simulated_seconds() -> u32 {
    if test_support::measuring() { 3600 } else { 120 }
}
