#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The outbound platform client against the real platform simulator: our JWKS served from a tiny
//! axum server, our own key set, our own tokens. No test times anything beyond "the deadline is
//! respected", and every bound is computed from the client's configuration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use platform_sim::{RequestRecord, SimConfig, SimHandle};
use serde_json::{Value, json};
use shared::clock::{Clock, ManualClock, SharedClock, SystemClock};
use shared::config::{EnvReader, MapEnv};
use shared::ecies::{Curve, PublicKey};
use shared::keys::policy::{RotationPolicy, plan};
use shared::keys::{
    KeySet, KeySetSource, KeySourceError, KeyTimings, PartnerId, PreparedKeys, RenderedJwks,
    TokenLifetime,
};
use shared::platform::{
    Deadline, IssueOnBehalf, MintingTokens, OnDuplicate, PartnerTokens, PlatformClient,
    PlatformConfig, PlatformError, VcState,
};
use shared::telemetry::{LogCapture, MemorySink, Recorder};

const PARTNER: &str = "partner-test";
const ISSUE_ROUTE: &str = "POST /credentials/issue-on-behalf";
const STATUS_ROUTE: &str = "GET /credentials/status";
const ONCHAIN_DELAY: Duration = Duration::from_secs(60);

/// A key set fixed for the whole test.
struct FixedKeys(Arc<PreparedKeys>);

#[async_trait]
impl KeySetSource for FixedKeys {
    async fn keys(&self) -> Result<Arc<PreparedKeys>, KeySourceError> {
        Ok(Arc::clone(&self.0))
    }
    fn invalidate(&self) {}
}

/// Our key set (one key, active since ten minutes ago) and its JWKS on 127.0.0.1:0.
struct Jwks {
    keys: Arc<dyn KeySetSource>,
    server: test_support::JwksServer,
}

async fn serve_jwks() -> Jwks {
    let start = SystemClock.now().minus(Duration::from_secs(600));
    let timings = KeyTimings::default();
    let policy = RotationPolicy::new(Duration::from_secs(86_400), timings.min_lead(), timings)
        .expect("policy");
    let (set, _) = plan(&KeySet::default(), start, &policy).expect("a first key");
    let rendered = RenderedJwks::render(&set, SystemClock.now(), &timings);
    assert_eq!(rendered.kids.len(), 1);
    let prepared = PreparedKeys::new(set, timings, SystemClock.now()).expect("keys");
    Jwks {
        keys: Arc::new(FixedKeys(Arc::new(prepared))),
        server: test_support::JwksServer::serve(rendered.body.clone()).await,
    }
}

/// The simulator, our JWKS, our tokens and a client with small backoffs.
/// The tests of this file run one at a time: one of them captures the client's log lines, and a
/// capture is per thread — other tests hitting the same callsites concurrently can make `tracing`
/// skip them.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Env {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    sim: SimHandle,
    jwks: Jwks,
    tokens: Arc<MintingTokens>,
    metrics: MemorySink,
    client: PlatformClient,
    config: PlatformConfig,
    http: reqwest::Client,
}

fn test_config(base_url: &str) -> PlatformConfig {
    let mut config = PlatformConfig::new(base_url, Some(test_support::local_trust())).unwrap();
    config.connect_timeout = Duration::from_millis(500);
    config.request_timeout = Duration::from_secs(5);
    config.max_attempts = 4;
    config.base_backoff = Duration::from_millis(5);
    config.max_backoff = Duration::from_millis(40);
    config
}

fn minting(keys: &Arc<dyn KeySetSource>, partner: &str, clock: SharedClock) -> MintingTokens {
    MintingTokens::new(
        Arc::clone(keys),
        PartnerId::new(partner).unwrap(),
        shared::keys::ScopeClaim::parse("issue").unwrap(),
        TokenLifetime::new(Duration::from_secs(300)).unwrap(),
        clock,
        64,
    )
}

impl Env {
    async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    async fn start_with(tune: impl FnOnce(PlatformConfig) -> PlatformConfig) -> Self {
        let serial = SERIAL.lock().await;
        let jwks = serve_jwks().await;
        let sim = platform_sim::spawn(
            SimConfig {
                partner_id: PARTNER.to_owned(),
                jwks_url: jwks.server.url().to_owned(),
                onchain_delay: ONCHAIN_DELAY,
                seed: 7,
                tls: Some(test_support::local_ca()),
                ..SimConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let tokens = Arc::new(minting(&jwks.keys, PARTNER, Arc::new(SystemClock)));
        let config = tune(test_config(&sim.base_url()));
        let (client, metrics) = client_for(&config, Arc::clone(&tokens) as Arc<dyn PartnerTokens>);
        Self {
            _serial: serial,
            sim,
            jwks,
            tokens,
            metrics,
            client,
            config,
            http: test_support::https_client(),
        }
    }

    async fn fault(&self, spec: Value) {
        test_support::inject_fault(&self.http, &self.sim, &spec).await;
    }

    fn seen(&self, route: &str) -> Vec<RequestRecord> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.route == route)
            .collect()
    }

    /// Sums the values of `metric` written with dimension `status`.
    fn counted(&self, metric: &str, status: &str) -> f64 {
        counted_in(&self.metrics, metric, status)
    }
}

/// Sums the values of `metric` written to `metrics` with dimension `status`.
fn counted_in(metrics: &MemorySink, metric: &str, status: &str) -> f64 {
    metrics
        .documents()
        .iter()
        .filter(|d| d["status"] == status)
        .filter_map(|d| d[metric].as_f64())
        .sum()
}

fn client_for(
    config: &PlatformConfig,
    tokens: Arc<dyn PartnerTokens>,
) -> (PlatformClient, MemorySink) {
    let metrics = MemorySink::default();
    let recorder = Recorder::new(
        "Test",
        "issue",
        Arc::new(metrics.clone()),
        Arc::new(SystemClock),
    );
    (
        PlatformClient::new(config.clone(), tokens, recorder).unwrap(),
        metrics,
    )
}

fn request(program: &str, on_duplicate: OnDuplicate) -> IssueOnBehalf {
    IssueOnBehalf {
        issuer_did: "did:air:id:test:partner-test".to_owned(),
        credential_id: program.to_owned(),
        credential_subject: json!({"tier": "gold", "country": "CH"}),
        on_duplicate,
    }
}

fn soon() -> Deadline {
    Deadline::after(Duration::from_secs(20))
}

fn jti(r: &RequestRecord) -> String {
    r.claims.as_ref().unwrap()["jti"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn issuing_on_behalf_succeeds_and_the_platform_sees_one_call_with_our_claims() {
    let env = Env::start().await;
    let issued = env
        .client
        .issue_on_behalf(
            "dana@example.com",
            &request("kyc-basic", OnDuplicate::Ignore),
            soon(),
        )
        .await
        .unwrap();
    assert!(issued.core_claim_hash.starts_with("0x"), "{issued:?}");
    assert_eq!(issued.credential_id, "kyc-basic");
    assert!(!issued.user_uuid.is_empty());
    assert_eq!(issued.cak_public_key, None);

    let seen = env.seen(ISSUE_ROUTE);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].status, 200);
    assert_eq!(seen[0].auth_error, None);
    let claims = seen[0].claims.as_ref().unwrap();
    assert_eq!(claims["partnerId"], PARTNER);
    assert_eq!(claims["scope"], "issue");
    assert_eq!(claims["email"], "dana@example.com");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
}

#[tokio::test]
async fn a_cak_program_answers_with_a_cak_public_key() {
    let env = Env::start().await;
    for (program, curve) in [
        ("kyc-document-r1", Curve::Secp256r1),
        ("kyc-document-k1", Curve::Secp256k1),
    ] {
        let issued = env
            .client
            .issue_on_behalf(
                "erin@example.com",
                &request(program, OnDuplicate::Revoke),
                soon(),
            )
            .await
            .unwrap();
        let key = issued.cak_public_key.expect("cakPublicKey");
        assert_eq!(issued.cak_curve, Some(curve));
        PublicKey::from_hex(curve, &key).expect("a point on the program's curve");
    }
}

#[tokio::test]
async fn two_server_errors_then_success_issue_after_three_calls() {
    let env = Env::start().await;
    env.fault(json!({"route": ISSUE_ROUTE, "failNext": 2, "status": 503}))
        .await;
    let issued = env
        .client
        .issue_on_behalf(
            "finn@example.com",
            &request("kyc-basic", OnDuplicate::Ignore),
            soon(),
        )
        .await
        .unwrap();
    assert!(!issued.core_claim_hash.is_empty());
    let statuses: Vec<u16> = env.seen(ISSUE_ROUTE).iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 200]);
    assert_eq!(env.counted("UpstreamErrors", "503"), 2.0);
}

#[tokio::test]
async fn server_errors_on_every_attempt_end_unavailable_after_max_attempts() {
    let env = Env::start().await;
    env.fault(json!({"route": ISSUE_ROUTE, "status": 500}))
        .await;
    let err = env
        .client
        .issue_on_behalf(
            "gus@example.com",
            &request("kyc-basic", OnDuplicate::Ignore),
            soon(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PlatformError::Unavailable { attempts, last } if *attempts == env.config.max_attempts && last.contains("500")),
        "{err:?}"
    );
    assert_eq!(env.seen(ISSUE_ROUTE).len() as u32, env.config.max_attempts);
}

#[tokio::test]
async fn a_bad_request_is_rejected_after_exactly_one_call() {
    let env = Env::start().await;
    let mut bad = request("kyc-basic", OnDuplicate::Ignore);
    bad.issuer_did = String::new();
    let err = env
        .client
        .issue_on_behalf("hana@example.com", &bad, soon())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PlatformError::Rejected { status: 400, message, .. } if message.contains("issuerDid")),
        "{err:?}"
    );
    assert_eq!(env.seen(ISSUE_ROUTE).len(), 1);
    assert_eq!(env.counted("UpstreamErrors", "400"), 1.0);
}

#[tokio::test]
async fn a_held_connection_is_retried_within_the_deadline_then_unavailable() {
    let env = Env::start_with(|mut c| {
        c.request_timeout = Duration::from_millis(300);
        c.max_attempts = 10;
        c
    })
    .await;
    env.fault(json!({"route": ISSUE_ROUTE, "timeout": true}))
        .await;
    let budget = Duration::from_millis(1000);
    let started = Instant::now();
    let err = env
        .client
        .issue_on_behalf(
            "ivan@example.com",
            &request("kyc-basic", OnDuplicate::Ignore),
            Deadline::after(budget),
        )
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let PlatformError::Unavailable { attempts, last } = &err else {
        panic!("{err:?}");
    };
    assert!(*attempts >= 2, "retried: {err:?}");
    assert!(last.contains("timed out"), "{last}");
    assert_eq!(env.seen(ISSUE_ROUTE).len() as u32, *attempts);
    assert!(
        elapsed <= budget + env.config.request_timeout,
        "the deadline was not respected: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_rate_limit_whose_retry_after_fits_is_waited_out_and_retried() {
    let env = Env::start().await;
    let retry_after = Duration::from_secs(1);
    env.fault(
        json!({"route": ISSUE_ROUTE, "retryAfterSecs": retry_after.as_secs(), "failNext": 1}),
    )
    .await;
    let started = Instant::now();
    let issued = env
        .client
        .issue_on_behalf(
            "jade@example.com",
            &request("kyc-basic", OnDuplicate::Ignore),
            soon(),
        )
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(!issued.core_claim_hash.is_empty());
    let seen = env.seen(ISSUE_ROUTE);
    let statuses: Vec<u16> = seen.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 200]);
    // The retry came no sooner than Retry-After after the 429, by the simulator's arrival times
    // and by our own watch.
    let gap = Duration::from_millis(seen[1].at_ms.saturating_sub(seen[0].at_ms));
    assert!(
        gap >= retry_after,
        "the retry arrived {gap:?} after the 429, before its Retry-After of {retry_after:?}"
    );
    assert!(
        elapsed >= retry_after,
        "the call returned after {elapsed:?}, before the Retry-After of {retry_after:?} passed"
    );
}

/// Forwards every connection `listener` accepts to `target`, byte for byte.
async fn forward(listener: tokio::net::TcpListener, target: std::net::SocketAddr) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test]
async fn a_refused_connection_is_counted_as_a_connect_error_and_retried_until_the_platform_answers()
{
    let env = Env::start().await;
    // The platform's address refuses connections (the port is bound but nobody listens on it)
    // until a refused attempt has been counted; then it forwards to the simulator.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let mut config = test_config(&format!("https://{addr}"));
    config.max_attempts = 10;
    config.base_backoff = Duration::from_millis(50);
    config.max_backoff = Duration::from_millis(200);
    let (client, metrics) = client_for(&config, Arc::clone(&env.tokens) as Arc<dyn PartnerTokens>);
    let call = tokio::spawn(async move {
        client
            .issue_on_behalf(
                "lena@example.com",
                &request("kyc-basic", OnDuplicate::Ignore),
                soon(),
            )
            .await
    });
    while counted_in(&metrics, "UpstreamErrors", "connect") == 0.0 {
        if call.is_finished() {
            panic!(
                "the call ended before any refused attempt was counted: {:?}; metrics {:?}",
                call.await,
                metrics.documents()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let forwarder = tokio::spawn(forward(socket.listen(16).unwrap(), env.sim.local_addr()));

    let issued = call
        .await
        .unwrap()
        .expect("the call succeeds once the platform is reachable");
    forwarder.abort();
    assert!(!issued.core_claim_hash.is_empty());
    let refused = counted_in(&metrics, "UpstreamErrors", "connect");
    assert!(refused >= 1.0);
    let upstream_errors: Vec<Value> = metrics
        .documents()
        .into_iter()
        .filter(|d| d.get("UpstreamErrors").is_some())
        .collect();
    assert_eq!(
        upstream_errors.len() as f64,
        refused,
        "every failed attempt was a refused connection, counted as such: {upstream_errors:?}"
    );
    let statuses: Vec<u16> = env.seen(ISSUE_ROUTE).iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![200],
        "only the last attempt reached the platform"
    );
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_time_left_fails_at_once() {
    let env = Env::start().await;
    env.fault(json!({"route": ISSUE_ROUTE, "retryAfterSecs": 30}))
        .await;
    let budget = Duration::from_secs(3);
    let started = Instant::now();
    let err = env
        .client
        .issue_on_behalf(
            "kai@example.com",
            &request("kyc-basic", OnDuplicate::Ignore),
            Deadline::after(budget),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, PlatformError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(30)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < budget,
        "waited for a Retry-After that could not fit"
    );
    assert_eq!(env.seen(ISSUE_ROUTE).len(), 1);
}

#[tokio::test]
async fn a_duplicate_under_ignore_carries_the_existing_hash() {
    let env = Env::start().await;
    let req = request("kyc-basic", OnDuplicate::Ignore);
    let first = env
        .client
        .issue_on_behalf("lena@example.com", &req, soon())
        .await
        .unwrap();
    let err = env
        .client
        .issue_on_behalf("lena@example.com", &req, soon())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PlatformError::Duplicate { core_claim_hash, after_unconfirmed: false, .. } if *core_claim_hash == first.core_claim_hash),
        "{err:?}"
    );
    assert_eq!(env.seen(ISSUE_ROUTE).len(), 2, "a duplicate is not retried");
}

#[tokio::test]
async fn a_revoke_whose_answer_was_lost_is_retried_with_ignore_and_never_revokes_what_it_issued() {
    let env = Env::start().await;
    env.fault(json!({"route": ISSUE_ROUTE, "loseAnswer": true, "failNext": 1}))
        .await;
    let err = env
        .client
        .issue_on_behalf(
            "mona@example.com",
            &request("kyc-document-r1", OnDuplicate::Revoke),
            soon(),
        )
        .await
        .unwrap_err();
    // The first attempt issued the credential; the retry asked with `ignore` and was told of it.
    let PlatformError::Duplicate {
        core_claim_hash,
        cak_public_key,
        after_unconfirmed,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(after_unconfirmed);
    assert!(
        cak_public_key
            .as_deref()
            .is_some_and(|k| k.starts_with("04"))
    );
    let calls = env.seen(ISSUE_ROUTE);
    assert_eq!(calls.len(), 2);
    let status = env.client.status(core_claim_hash, soon()).await.unwrap();
    assert_ne!(
        status.vc_status,
        VcState::Revoked,
        "the retry must not revoke what the first attempt issued"
    );
}

#[tokio::test]
async fn status_is_wait_onchain_then_onchain_once_the_delay_has_passed() {
    let env = Env::start().await;
    let issued = env
        .client
        .issue_on_behalf(
            "milo@example.com",
            &request("kyc-basic", OnDuplicate::Ignore),
            soon(),
        )
        .await
        .unwrap();
    let before = env
        .client
        .status(&issued.core_claim_hash, soon())
        .await
        .unwrap();
    assert_eq!(before.vc_status, VcState::WaitOnchain);
    assert!(before.issuance_date.is_some() && before.expiration_date.is_some());
    assert_eq!(
        before.scheme_id.as_deref(),
        Some(issued.credential_id.as_str())
    );
    assert!(before.issuer_id.is_some() && before.vc_dstorage_id.is_some());

    env.sim.advance(ONCHAIN_DELAY + Duration::from_secs(1));
    let after = env
        .client
        .status(&issued.core_claim_hash, soon())
        .await
        .unwrap();
    assert_eq!(after.vc_status, VcState::Onchain);
    assert!(after.vc_id.is_some());

    // Status calls carry a token that names no user.
    let seen = env.seen(STATUS_ROUTE);
    assert_eq!(seen.len(), 2);
    assert!(seen[0].claims.as_ref().unwrap().get("email").is_none());
}

#[tokio::test]
async fn the_client_is_shared_by_concurrent_tasks() {
    let env = Env::start().await;
    let client = Arc::new(env.client);
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let client = Arc::clone(&client);
            tokio::spawn(async move {
                client
                    .issue_on_behalf(
                        &format!("user{i}@example.com"),
                        &request("kyc-basic", OnDuplicate::Ignore),
                        soon(),
                    )
                    .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let seen = env.sim.requests();
    assert_eq!(seen.iter().filter(|r| r.route == ISSUE_ROUTE).count(), 4);
}

#[tokio::test]
async fn an_unknown_hash_is_not_found() {
    let env = Env::start().await;
    let err = env.client.status("0xdeadbeef", soon()).await.unwrap_err();
    assert!(matches!(err, PlatformError::NotFound { .. }), "{err:?}");
    assert_eq!(env.seen(STATUS_ROUTE).len(), 1);
}

#[tokio::test]
async fn a_token_is_minted_once_per_email_and_reused() {
    let env = Env::start().await;
    let req = request("kyc-basic", OnDuplicate::Revoke);
    for email in ["nora@example.com", "nora@example.com", "omar@example.com"] {
        env.client
            .issue_on_behalf(email, &req, soon())
            .await
            .unwrap();
    }
    let jtis: Vec<String> = env.seen(ISSUE_ROUTE).iter().map(jti).collect();
    assert_eq!(jtis.len(), 3);
    assert_eq!(jtis[0], jtis[1], "the same user's token is reused");
    assert_ne!(jtis[1], jtis[2], "another user gets another token");
    assert_eq!(env.tokens.minted(), 2);
}

#[tokio::test]
async fn a_token_is_minted_again_once_it_is_within_a_minute_of_expiry() {
    let env = Env::start().await;
    let issued = env
        .client
        .issue_on_behalf(
            "pia@example.com",
            &request("kyc-basic", OnDuplicate::Ignore),
            soon(),
        )
        .await
        .unwrap();
    // A 90 s token is reusable for 30 s. The simulator checks `iat`/`exp` on the wall clock with
    // 60 s of leeway, so the manual clock only moves within that leeway.
    let clock = ManualClock::new(SystemClock.now());
    let tokens = Arc::new(MintingTokens::new(
        Arc::clone(&env.jwks.keys),
        PartnerId::new(PARTNER).unwrap(),
        shared::keys::ScopeClaim::parse("issue").unwrap(),
        TokenLifetime::new(Duration::from_secs(90)).unwrap(),
        Arc::new(clock.clone()),
        8,
    ));
    let (client, _) = client_for(&env.config, Arc::clone(&tokens) as Arc<dyn PartnerTokens>);
    client
        .status(&issued.core_claim_hash, soon())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(29));
    client
        .status(&issued.core_claim_hash, soon())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2));
    client
        .status(&issued.core_claim_hash, soon())
        .await
        .unwrap();

    let seen = env.seen(STATUS_ROUTE);
    assert!(seen.iter().all(|r| r.status == 200), "{seen:?}");
    let jtis: Vec<String> = seen.iter().map(jti).collect();
    assert_eq!(jtis[0], jtis[1], "still more than 60 s before expiry");
    assert_ne!(jtis[1], jtis[2], "within 60 s of expiry: minted again");
    assert_eq!(tokens.minted(), 2);
    let exp = |i: usize| seen[i].claims.as_ref().unwrap()["exp"].as_i64().unwrap();
    assert!(exp(2) > exp(1));
}

#[tokio::test]
async fn a_refused_token_is_counted_and_retried_once_with_a_fresh_one() {
    let env = Env::start().await;
    // Tokens for another partner: the platform refuses every one of them with 401.
    let wrong = Arc::new(minting(
        &env.jwks.keys,
        "partner-other",
        Arc::new(SystemClock),
    ));
    let (client, metrics) = client_for(&env.config, Arc::clone(&wrong) as Arc<dyn PartnerTokens>);
    let err = client
        .issue_on_behalf(
            "quinn@example.com",
            &request("kyc-basic", OnDuplicate::Ignore),
            soon(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, PlatformError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    let seen = env.seen(ISSUE_ROUTE);
    assert_eq!(seen.len(), 2, "one retry with a fresh token, no more");
    assert_ne!(jti(&seen[0]), jti(&seen[1]));
    assert_eq!(wrong.minted(), 2);
    assert_eq!(metrics.total("PlatformAuthFailures"), 2.0);
}

#[test]
fn plain_http_is_refused_to_any_host_in_local_mode_and_outside_it() {
    for url in [
        "http://example.com",
        "http://127.0.0.1:4000",
        "http://localhost:4000",
    ] {
        for local in [
            vec![
                ("PLATFORM_LOCAL_MODE", "true"),
                ("PLATFORM_LOCAL_CA", test_support::local_ca_file()),
            ],
            vec![],
        ] {
            let mut pairs = vec![("PLATFORM_BASE_URL", url)];
            pairs.extend(local);
            let env = MapEnv::from_pairs(pairs);
            let err = PlatformConfig::from_env(&EnvReader::new(&env)).unwrap_err();
            assert_eq!(err.var, "PLATFORM_BASE_URL", "{url}: {err}");
        }
    }
}

#[test]
fn a_hand_built_configuration_with_plain_http_is_refused_when_the_client_is_built() {
    let mut sneaky = PlatformConfig::new("https://127.0.0.1:4000", None).unwrap();
    sneaky.base_url = shared::platform::Url::parse("http://127.0.0.1:4000").unwrap();
    let tokens: Arc<dyn PartnerTokens> = Arc::new(NoTokens);
    let recorder = Recorder::new(
        "Test",
        "t",
        Arc::new(MemorySink::default()),
        Arc::new(SystemClock),
    );
    let err = PlatformClient::new(sneaky, tokens, recorder).unwrap_err();
    assert!(
        matches!(err, PlatformError::Config(ref m) if m.contains("PLATFORM_BASE_URL")),
        "{err:?}"
    );
}

#[test]
fn https_is_always_accepted() {
    for local in [
        vec![
            ("PLATFORM_LOCAL_MODE", "true"),
            ("PLATFORM_LOCAL_CA", test_support::local_ca_file()),
        ],
        vec![("PLATFORM_LOCAL_MODE", "false")],
    ] {
        let mut pairs = vec![("PLATFORM_BASE_URL", "https://api.platform.example/v1")];
        pairs.extend(local);
        let env = MapEnv::from_pairs(pairs);
        let config = PlatformConfig::from_env(&EnvReader::new(&env)).unwrap();
        assert_eq!(config.base_url.scheme(), "https");
    }
}

#[tokio::test]
async fn a_platform_whose_certificate_is_not_from_a_trusted_ca_is_never_reached() {
    let env = Env::start().await;
    // Outside local mode (the platform's roots only), and in local mode with another CA.
    let other = local_tls::LocalCa::ephemeral().unwrap();
    let other = shared::platform::LocalCaTrust::from_pem(other.cert_pem().as_bytes()).unwrap();
    for trust in [None, Some(other)] {
        let mut config = test_config(&env.sim.base_url());
        config.local_ca = trust;
        config.max_attempts = 1;
        let (client, _) = client_for(&config, Arc::clone(&env.tokens) as Arc<dyn PartnerTokens>);
        let err = client
            .issue_on_behalf(
                "mallory@example.com",
                &request("kyc-basic", OnDuplicate::Ignore),
                soon(),
            )
            .await
            .unwrap_err();
        assert!(
            shared::error::chain(&err).contains("certificate"),
            "{}",
            shared::error::chain(&err)
        );
    }
    assert!(
        env.seen(ISSUE_ROUTE).is_empty(),
        "no request reached the platform"
    );
}

struct NoTokens;

#[async_trait]
impl PartnerTokens for NoTokens {
    async fn token(&self, _email: Option<&str>) -> Result<shared::keys::PartnerJwt, PlatformError> {
        Err(PlatformError::Token("no key".into()))
    }
}

#[tokio::test]
async fn no_log_line_carries_a_token_or_an_email() {
    let (capture, dispatch) = LogCapture::new("issue");
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let env = Env::start().await;
    let email = "Rosa.Secret@example.com";
    let req = request("kyc-document-r1", OnDuplicate::Ignore);

    env.fault(json!({"route": ISSUE_ROUTE, "failNext": 1, "status": 502}))
        .await;
    let issued = env
        .client
        .issue_on_behalf(email, &req, soon())
        .await
        .unwrap();
    let duplicate = env
        .client
        .issue_on_behalf(email, &req, soon())
        .await
        .unwrap_err();
    assert!(matches!(duplicate, PlatformError::Duplicate { .. }));
    let mut bad = req.clone();
    bad.credential_id = "no-such-program".into();
    let err = env
        .client
        .issue_on_behalf(email, &bad, soon())
        .await
        .unwrap_err();
    assert!(matches!(err, PlatformError::NotFound { .. }), "{err:?}");
    env.client
        .upload_ciphertext(email, &issued.core_claim_hash, b"too short", soon())
        .await
        .unwrap_err();
    let wrong = Arc::new(minting(
        &env.jwks.keys,
        "partner-other",
        Arc::new(SystemClock),
    ));
    let (refused, _) = client_for(&env.config, Arc::clone(&wrong) as Arc<dyn PartnerTokens>);
    refused
        .issue_on_behalf(email, &req, soon())
        .await
        .unwrap_err();

    let mut secrets = vec![
        email.to_owned(),
        email.to_ascii_lowercase(),
        env.tokens
            .token(Some(email))
            .await
            .unwrap()
            .expose()
            .to_owned(),
        env.tokens.token(None).await.unwrap().expose().to_owned(),
        wrong.token(Some(email)).await.unwrap().expose().to_owned(),
    ];
    // The signature alone is as good as the token for a log reader: check it separately.
    let sigs: Vec<String> = secrets[2..]
        .iter()
        .map(|t| t.rsplit('.').next().unwrap().to_owned())
        .collect();
    secrets.extend(sigs);

    let text = capture.text();
    assert!(
        text.contains("platform call failed"),
        "errors are logged: {text}"
    );
    assert!(text.contains("\"status\":\"502\""), "{text}");
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a log line carries {secret:?}"
        );
    }
}

#[tokio::test]
async fn a_five_megabyte_ciphertext_round_trips_through_the_platform_storage() {
    let env = Env::start().await;
    let email = "sami@example.com";
    let issued = env
        .client
        .issue_on_behalf(
            email,
            &request("kyc-document-r1", OnDuplicate::Ignore),
            soon(),
        )
        .await
        .unwrap();
    let curve = issued.cak_curve.unwrap_or_default();
    let key = PublicKey::from_hex(curve, issued.cak_public_key.as_deref().unwrap()).unwrap();
    let plaintext: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let ciphertext = shared::ecies::encrypt(&key, &plaintext).unwrap();
    let stored = env
        .client
        .upload_ciphertext(email, &issued.core_claim_hash, &ciphertext, soon())
        .await
        .unwrap();
    assert!(!stored.as_str().is_empty());

    let response = env
        .http
        .get(format!(
            "{}/sim/ciphertexts/{}/plaintext",
            env.sim.base_url(),
            stored.as_str()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let decrypted = response.bytes().await.unwrap();
    assert_eq!(decrypted.len(), plaintext.len());
    assert!(
        decrypted.as_ref() == plaintext.as_slice(),
        "the plaintext came back changed"
    );
}
