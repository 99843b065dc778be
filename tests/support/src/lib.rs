//! What the integration suites of every crate share, so that no suite builds its world by hand:
//!
//! - [`clock`]: a manual clock at a fixed, realistic instant;
//! - [`moto`]: the AWS SDK configuration for the moto server `make test` starts, failing loudly
//!   when it is not there (the production adapters are never skipped);
//! - [`unique`]: a name unique to one run (tables, secrets);
//! - [`SignedPlatform`]: our signing key set in a secret store, its JWKS served on 127.0.0.1:0 and
//!   the platform simulator trusting it — the world of every suite that talks to the platform;
//! - [`inject_fault`], [`clear_faults`]: the simulator's fault injection;
//! - [`eventually`]: polling for a condition a background task brings about;
//! - [`local_ca`], [`https_client`], [`local_ca_file`], [`local_trust`]: one local CA per test
//!   process, as the devstack has one per data directory — every server of a suite (the
//!   simulator, the JWKS, a callback receiver) serves HTTPS with a leaf of it, and every client
//!   trusts it besides the platform's roots. Nothing in the suites speaks plain HTTP except to
//!   moto, which stands in for AWS's own endpoints.
//!
//! It is a dev-dependency only; nothing here ships in a function.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use shared::clock::{ManualClock, SharedClock, Timestamp};
use shared::keys::policy::plan;
use shared::keys::{KeyConfig, KeySet, KeySetStore, RenderedJwks};
use shared::secrets::SecretWriter;

/// A manual clock at a fixed, realistic instant (2026-11-21T12:00:00Z), and the same clock shared.
pub fn clock() -> (ManualClock, SharedClock) {
    let c = ManualClock::new(Timestamp::from_secs(1_795_262_400));
    (c.clone(), Arc::new(c))
}

/// The endpoint of the moto server the suites run against (`AWS_ENDPOINT_URL`, set by
/// `infra/scripts/with-moto.sh`). Panics when it is not a loopback moto: the DynamoDB and Secrets
/// Manager adapters are part of every contract and are never skipped.
pub fn moto_endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "AWS_ENDPOINT_URL must point at the moto server on 127.0.0.1 (run the suites with \
         `make test` or infra/scripts/with-moto.sh), got {endpoint:?}"
    );
    endpoint
}

/// The AWS SDK configuration for moto (see [`moto_endpoint`]): the production loader, with
/// longer timeouts. moto is one Python process serving every suite of the run at once, and on two
/// busy cores a table creation can outlast the 2 s attempt timeout that bounds calls to AWS
/// ([`shared::aws::timeouts`], checked by `shared::aws`'s own tests); the suites test the
/// adapters' behaviour, not moto's latency.
pub async fn moto() -> shared::aws::SdkConfig {
    moto_endpoint();
    let patient = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(30))
        .build();
    shared::aws::loader().timeout_config(patient).load().await
}

/// A name unique to one test run.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Whether a `harness = false` bench is being measured (`cargo bench`, which passes `--bench`) or
/// only exercised (`cargo test --all-targets`, as `make test` runs it): then it runs once at a
/// small size, proving it still works without spending the suite's time on figures nobody reads.
pub fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Polls `check` every 50 ms until it holds; panics after 10 s.
pub async fn eventually(mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 10 s");
}

/// The local CA of this test process (made at first use, in memory).
pub fn local_ca() -> Arc<local_tls::LocalCa> {
    static CA: std::sync::LazyLock<Arc<local_tls::LocalCa>> =
        std::sync::LazyLock::new(|| Arc::new(local_tls::LocalCa::ephemeral().unwrap()));
    Arc::clone(&CA)
}

/// A new HTTPS-only client trusting [`local_ca`] (a new one each time: a client's connection
/// pool belongs to the runtime of the test that first used it).
pub fn https_client() -> reqwest::Client {
    local_ca().client().unwrap()
}

/// [`local_ca`]'s certificate as the functions' configuration takes it (`PLATFORM_LOCAL_CA`): a
/// PEM file, written once per process in the temporary directory.
pub fn local_ca_file() -> &'static str {
    static FILE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let path =
            std::env::temp_dir().join(format!("partner-bundle-test-ca-{}.pem", std::process::id()));
        std::fs::write(&path, local_ca().cert_pem()).unwrap();
        path.display().to_string()
    });
    &FILE
}

/// [`local_ca`] as an outbound client's local-mode trust.
pub fn local_trust() -> shared::platform::LocalCaTrust {
    shared::platform::LocalCaTrust::from_pem(local_ca().cert_pem().as_bytes()).unwrap()
}

/// Serves `router` over HTTPS on 127.0.0.1:0 with a leaf of [`local_ca`], until dropped.
pub fn serve_https(router: axum::Router) -> local_tls::Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    local_tls::serve(listener, local_ca().server_config().unwrap(), router).unwrap()
}

/// A JWKS document served at `/.well-known/jwks.json` on 127.0.0.1:0, over HTTPS
/// ([`serve_https`]), until dropped.
pub struct JwksServer {
    url: String,
    _server: local_tls::Server,
}

impl JwksServer {
    /// Serves `body` (a rendered JWKS document) as `application/json`.
    pub async fn serve(body: String) -> Self {
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
        let server = serve_https(app);
        let url = format!("{}/.well-known/jwks.json", server.base_url());
        Self {
            url,
            _server: server,
        }
    }

    /// Where the document is.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Arms a fault in the platform simulator (`POST /sim/faults`, see `platform_sim::faults`).
pub async fn inject_fault(
    http: &reqwest::Client,
    sim: &platform_sim::SimHandle,
    spec: &serde_json::Value,
) {
    let r = http
        .post(format!("{}/sim/faults", sim.base_url()))
        .json(spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// Clears every fault armed in the platform simulator.
pub async fn clear_faults(http: &reqwest::Client, sim: &platform_sim::SimHandle) {
    let r = http
        .delete(format!("{}/sim/faults", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// Our signing keys as a deployment holds them, published, and the platform simulator trusting
/// them: the key set is planned with its first key active since ten minutes ago on `wall`, saved
/// in `secrets` under the configured name, rendered and served; the simulator is started with
/// that JWKS URL and `tune` applied to its configuration.
pub struct SignedPlatform {
    /// The key set as saved.
    pub keys: KeySet,
    /// The simulator (dropping it stops it).
    pub sim: platform_sim::SimHandle,
    /// The JWKS the simulator fetches.
    pub jwks: JwksServer,
}

impl SignedPlatform {
    /// See [`SignedPlatform`]. `clock` is the clock tokens are signed on: the simulator checks
    /// token times on the wall clock unless `tune` chooses [`platform_sim::TokenTimes::Simulator`].
    pub async fn start(
        secrets: Arc<dyn SecretWriter>,
        keys_config: &KeyConfig,
        clock: &SharedClock,
        tune: impl FnOnce(platform_sim::SimConfig) -> platform_sim::SimConfig,
    ) -> Self {
        let store = KeySetStore::new(secrets, keys_config.secret_name.clone());
        let loaded = store.load().await.unwrap();
        let (keys, _) = plan(
            &loaded.set,
            clock.now().minus(Duration::from_secs(600)),
            &keys_config.policy,
        )
        .unwrap();
        store.save(&loaded, &keys).await.unwrap();
        let body = RenderedJwks::render(&keys, clock.now(), &keys_config.timings).body;
        let jwks = JwksServer::serve(body).await;
        let sim = platform_sim::spawn(
            tune(platform_sim::SimConfig {
                jwks_url: jwks.url().to_owned(),
                tls: Some(local_ca()),
                ..platform_sim::SimConfig::default()
            }),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        Self { keys, sim, jwks }
    }
}

/// A record store (and due index) that counts the calls reaching it: reads, conditional writes
/// (a batch counts once) and due-index queries. The benches measure the store calls of a route or
/// a poll run through it.
pub struct CountingStore {
    store: Arc<dyn shared::store::RecordStore>,
    due: Option<Arc<dyn shared::store::DueRecords>>,
    /// `get` calls.
    pub reads: std::sync::atomic::AtomicU64,
    /// `write` and `write_all` calls.
    pub writes: std::sync::atomic::AtomicU64,
    /// `due` calls.
    pub queries: std::sync::atomic::AtomicU64,
}

impl CountingStore {
    /// Counts the calls to `store`, and to `due` when given (a due query without one fails).
    pub fn new(
        store: Arc<dyn shared::store::RecordStore>,
        due: Option<Arc<dyn shared::store::DueRecords>>,
    ) -> Self {
        Self {
            store,
            due,
            reads: 0.into(),
            writes: 0.into(),
            queries: 0.into(),
        }
    }

    /// The calls so far, by kind, and the counters back to zero.
    pub fn take(&self) -> StoreCalls {
        use std::sync::atomic::Ordering::SeqCst;
        StoreCalls {
            reads: self.reads.swap(0, SeqCst),
            writes: self.writes.swap(0, SeqCst),
            queries: self.queries.swap(0, SeqCst),
        }
    }
}

/// The store calls a [`CountingStore`] saw, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreCalls {
    /// `get` calls.
    pub reads: u64,
    /// `write` and `write_all` calls (a batch counts once).
    pub writes: u64,
    /// Due-index queries.
    pub queries: u64,
}

impl StoreCalls {
    /// Every call, whatever its kind.
    pub fn total(&self) -> u64 {
        self.reads + self.writes + self.queries
    }
}

impl std::fmt::Display for StoreCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} reads, {} writes", self.reads, self.writes)?;
        if self.queries > 0 {
            write!(f, ", {} index queries", self.queries)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl shared::store::RecordStore for CountingStore {
    async fn get(
        &self,
        key: &shared::store::RecordKey,
    ) -> Result<Option<shared::store::Record>, shared::store::StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store.get(key).await
    }

    async fn write(
        &self,
        write: shared::store::Write,
    ) -> Result<shared::store::Version, shared::store::StoreError> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store.write(write).await
    }

    async fn write_all(
        &self,
        writes: Vec<shared::store::Write>,
    ) -> Result<(), shared::store::StoreError> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store.write_all(writes).await
    }
}

#[async_trait::async_trait]
impl shared::store::DueRecords for CountingStore {
    async fn due(
        &self,
        queue: &shared::store::QueueName,
        now: shared::clock::Timestamp,
        limit: usize,
        cursor: Option<&shared::store::Cursor>,
    ) -> Result<shared::store::DuePage, shared::store::StoreError> {
        self.queries
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match &self.due {
            Some(due) => due.due(queue, now, limit, cursor).await,
            None => Err(shared::store::StoreError::Unavailable(
                "this counting store wraps no due index".into(),
            )),
        }
    }
}

/// A secrets store that notes how many reads (`get`) are made, by secret, and how many are in
/// flight at once: a test proves that independent reads overlap (each read yields before it
/// reaches the store, so reads made together are all in flight before the first returns) without
/// timing anything.
pub struct OverlapSecrets {
    inner: Arc<dyn SecretWriter>,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    reads: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
}

impl OverlapSecrets {
    /// Watches the reads of `inner`.
    pub fn new(inner: Arc<dyn SecretWriter>) -> Self {
        Self {
            inner,
            in_flight: 0.into(),
            most: 0.into(),
            reads: std::sync::Mutex::default(),
        }
    }

    /// The reads of `name` so far.
    pub fn reads_of(&self, name: &str) -> usize {
        self.reads
            .lock()
            .map(|reads| reads.get(name).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The most reads in flight at once so far, and the count back to zero.
    pub fn take_most(&self) -> usize {
        self.most.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl shared::secrets::SecretSource for OverlapSecrets {
    async fn get(
        &self,
        name: &shared::secrets::SecretName,
        stage: shared::secrets::Stage,
    ) -> Result<Option<shared::secrets::SecretVersion>, shared::secrets::SecretsError> {
        use std::sync::atomic::Ordering::SeqCst;
        if let Ok(mut reads) = self.reads.lock() {
            *reads.entry(name.to_string()).or_default() += 1;
        }
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::task::yield_now().await;
        let got = self.inner.get(name, stage).await;
        self.in_flight.fetch_sub(1, SeqCst);
        got
    }

    async fn get_version(
        &self,
        name: &shared::secrets::SecretName,
        id: &shared::secrets::VersionId,
    ) -> Result<shared::secrets::SecretVersion, shared::secrets::SecretsError> {
        self.inner.get_version(name, id).await
    }
}

#[async_trait::async_trait]
impl SecretWriter for OverlapSecrets {
    async fn create(
        &self,
        name: &shared::secrets::SecretName,
        value: &secrecy::SecretString,
    ) -> Result<shared::secrets::VersionId, shared::secrets::SecretsError> {
        self.inner.create(name, value).await
    }

    async fn put_pending(
        &self,
        name: &shared::secrets::SecretName,
        token: &shared::secrets::VersionId,
        value: &secrecy::SecretString,
    ) -> Result<(), shared::secrets::SecretsError> {
        self.inner.put_pending(name, token, value).await
    }

    async fn put_current(
        &self,
        name: &shared::secrets::SecretName,
        token: &shared::secrets::VersionId,
        value: &secrecy::SecretString,
    ) -> Result<(), shared::secrets::SecretsError> {
        self.inner.put_current(name, token, value).await
    }

    async fn put_current_if(
        &self,
        name: &shared::secrets::SecretName,
        token: &shared::secrets::VersionId,
        value: &secrecy::SecretString,
        expected: &shared::secrets::VersionId,
    ) -> Result<(), shared::secrets::SecretsError> {
        self.inner
            .put_current_if(name, token, value, expected)
            .await
    }

    async fn promote(
        &self,
        name: &shared::secrets::SecretName,
        id: &shared::secrets::VersionId,
    ) -> Result<(), shared::secrets::SecretsError> {
        self.inner.promote(name, id).await
    }

    async fn stages(
        &self,
        name: &shared::secrets::SecretName,
    ) -> Result<shared::secrets::VersionStages, shared::secrets::SecretsError> {
        self.inner.stages(name).await
    }

    async fn discard_pending(
        &self,
        name: &shared::secrets::SecretName,
        id: &shared::secrets::VersionId,
    ) -> Result<(), shared::secrets::SecretsError> {
        self.inner.discard_pending(name, id).await
    }
}
