//! A world for the issue handler: embedded store, local secrets, our key set served as a JWKS, the
//! real platform simulator, and helpers to send signed requests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use issue::{IssueConfig, IssueDeps, IssuePorts, handle};
use lambda_http::http::Method;
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use shared::apigw::ApiGatewayRequest;
use shared::auth::{ApiKey, ApiKeyRegistry, KeyType, Permission, sign};
use shared::clock::{SharedClock, SystemClock};
use shared::config::{EnvReader, MapEnv};
use shared::keys::KeyConfig;
use shared::pii::DataKeySource;
use shared::secrets::file::FileSecrets;
use shared::secrets::{CountingSource, SecretWriter};
use shared::store::RecordStore;
use shared::store::embedded::EmbeddedStore;
use shared::telemetry::{MemorySink, Recorder};

pub struct World {
    pub deps: IssueDeps,
    pub sim: platform_sim::SimHandle,
    pub writer: ApiKey,
    pub reader: ApiKey,
    /// A live key of another family.
    pub outsider: ApiKey,
    /// A `test` key (this is a live stack).
    pub test_key: ApiKey,
    pub metrics: MemorySink,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// Every secret read the function made.
    pub reads: CountingSource<FileSecrets>,
    /// The function's clock; requests are signed on it.
    pub clock: SharedClock,
    seq: std::sync::atomic::AtomicI64,
    started_ms: i64,
    _jwks: test_support::JwksServer,
}

pub async fn world(extra_env: &[(&str, &str)]) -> World {
    world_with_sim(extra_env, |c| c).await
}

/// A world whose simulator is started with `tune` applied to its configuration.
pub async fn world_with_sim(
    extra_env: &[(&str, &str)],
    tune: impl FnOnce(platform_sim::SimConfig) -> platform_sim::SimConfig,
) -> World {
    world_on_clock(extra_env, tune, Arc::new(SystemClock)).await
}

/// A world whose function runs on `clock` (the simulator keeps its own clock).
pub async fn world_on_clock(
    extra_env: &[(&str, &str)],
    tune: impl FnOnce(platform_sim::SimConfig) -> platform_sim::SimConfig,
    clock: SharedClock,
) -> World {
    let dir = tempfile::tempdir().unwrap();
    let files = FileSecrets::open(dir.path(), clock.clone()).unwrap();
    let base_env = MapEnv::from_pairs(extra_env.iter().copied());
    let keys_config = KeyConfig::from_env(&EnvReader::new(&base_env)).unwrap();

    // Our signing key, published to the simulator through a tiny JWKS server.
    let test_support::SignedPlatform { sim, jwks, .. } =
        test_support::SignedPlatform::start(Arc::new(files.clone()), &keys_config, &clock, tune)
            .await;

    // API keys: a writer and a reader of one family, a key of another family, a test key.
    let family = shared::auth::KeyOwner::parse("partner-backend");
    let mut writer = ApiKey::generate(
        KeyType::Live,
        vec![Permission::CredentialsWrite, Permission::CredentialsRead],
        vec![],
        "writer",
        clock.now(),
    );
    writer.owner = family.clone();
    let mut reader_key = ApiKey::generate(
        KeyType::ReadOnly,
        vec![Permission::CredentialsRead, Permission::CredentialsWrite],
        vec![],
        "reader",
        clock.now(),
    );
    reader_key.owner = family;
    let mut outsider = ApiKey::generate(
        KeyType::Live,
        vec![Permission::CredentialsWrite, Permission::CredentialsRead],
        vec![],
        "outsider",
        clock.now(),
    );
    outsider.owner = shared::auth::KeyOwner::parse("another-service");
    let test_key = ApiKey::generate(
        KeyType::Test,
        vec![Permission::CredentialsWrite, Permission::CredentialsRead],
        vec![],
        "test",
        clock.now(),
    );
    let registry = ApiKeyRegistry {
        keys: vec![
            writer.clone(),
            reader_key.clone(),
            outsider.clone(),
            test_key.clone(),
        ],
    };
    let api_keys_name =
        shared::secrets::SecretName::new(shared::auth::DEFAULT_API_KEYS_SECRET).unwrap();
    files
        .create(&api_keys_name, &registry.to_secret())
        .await
        .unwrap();

    // The function's configuration, as a deployment reads it, pointed at the simulator, with
    // short backoffs so that fault tests stay quick.
    let sim_url = sim.base_url();
    let mut pairs = vec![
        ("ISSUER_DID", "did:air:id:test:partner-local"),
        ("PARTNER_ID", "partner-local"),
        ("PLATFORM_BASE_URL", sim_url.as_str()),
        ("PLATFORM_LOCAL_MODE", "true"),
        ("PLATFORM_LOCAL_CA", test_support::local_ca_file()),
        ("PLATFORM_BASE_BACKOFF_MS", "5"),
        ("PLATFORM_MAX_BACKOFF_MS", "20"),
        ("PLATFORM_REQUEST_TIMEOUT_MS", "1500"),
    ];
    pairs.extend_from_slice(extra_env);
    let env = MapEnv::from_pairs(pairs);
    let config = IssueConfig::from_env(&EnvReader::new(&env)).unwrap();

    // Data keys for the user identifiers.
    let data_writer: Arc<dyn SecretWriter> = Arc::new(files.clone());
    DataKeySource::new(
        data_writer,
        config.data_keys_secret.clone(),
        Duration::from_secs(60),
        clock.clone(),
    )
    .ensure()
    .await
    .unwrap();

    let metrics = MemorySink::default();
    let recorder = Recorder::new("Test", "issue", Arc::new(metrics.clone()), clock.clone());
    let store: Arc<dyn RecordStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("records.sqlite3"), clock.clone()).unwrap());
    let reads = CountingSource::new(files);
    let started_ms = clock.now().as_millis();
    let deps = IssueDeps::build(
        config,
        IssuePorts {
            store,
            secrets: Arc::new(reads.clone()),
            clock: clock.clone(),
            recorder,
        },
    )
    .unwrap();
    World {
        deps,
        sim,
        writer,
        reader: reader_key,
        outsider,
        test_key,
        metrics,
        dir,
        http: test_support::https_client(),
        reads,
        clock,
        seq: std::sync::atomic::AtomicI64::new(0),
        started_ms,
        _jwks: jwks,
    }
}

impl World {
    /// A signed POST /v1/credentials with `body` and `idempotency_key`.
    pub fn post(
        &self,
        key: &ApiKey,
        idempotency_key: Option<&str>,
        body: &Value,
    ) -> ApiGatewayRequest {
        let text = body.to_string();
        self.signed(key, Method::POST, "/v1/credentials", text.into_bytes())
            .header("content-type", "application/json")
            .header_opt("idempotency-key", idempotency_key)
    }

    /// A signed request.
    pub fn signed(
        &self,
        key: &ApiKey,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> ApiGatewayRequest {
        // A distinct timestamp per request keeps signatures distinct (the replay cache refuses
        // a signature twice), as real clients' would be.
        // Strictly increasing and never behind the clock: no two requests share a timestamp, and
        // a long run stays within the accepted window.
        let now = self.clock.now().as_millis();
        let n = self
            .seq
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |last| Some(last.saturating_add(1).max(now - self.started_ms)),
            )
            .unwrap_or(0);
        let n = n.saturating_add(1).max(now - self.started_ms);
        let ts = shared::clock::Timestamp::from_millis(self.started_ms + n).to_rfc3339();
        let sig = sign(&key.secret, method.as_str(), path, &ts, &body);
        ApiGatewayRequest::new(method, path)
            .header("x-access-key", key.id.as_str())
            .header("x-timestamp", &ts)
            .header("x-signature", &sig)
            .body(body)
    }

    pub async fn send(&self, req: ApiGatewayRequest) -> (u16, Value, Response<Body>) {
        let r = handle(req.build(), &self.deps).await;
        let v = match r.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        (r.status().as_u16(), v, r)
    }

    /// The issue-on-behalf calls the simulator saw.
    pub fn issue_calls(&self) -> Vec<platform_sim::RequestRecord> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.route.contains("issue-on-behalf"))
            .collect()
    }

    pub async fn fault(&self, spec: Value) {
        test_support::inject_fault(&self.http, &self.sim, &spec).await;
    }

    pub async fn clear_faults(&self) {
        test_support::clear_faults(&self.http, &self.sim).await;
    }

    /// The embedded store's SQLite file (and its write-ahead log) as text, byte for byte.
    pub fn stored_text(&self) -> String {
        let mut stored = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().contains("records.sqlite3") {
                stored.extend(std::fs::read(&path).unwrap());
            }
        }
        String::from_utf8_lossy(&stored).into_owned()
    }

    /// What the simulator decrypts the stored ciphertext `storage` to, with the CAK private key.
    pub async fn plaintext_of(&self, storage: &str) -> Value {
        let (code, plaintext) = self
            .sim_get(&format!("/sim/ciphertexts/{storage}/plaintext"))
            .await;
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&plaintext));
        serde_json::from_slice(&plaintext).unwrap()
    }

    pub async fn sim_get(&self, path: &str) -> (u16, Vec<u8>) {
        let r = self
            .http
            .get(format!("{}{path}", self.sim.base_url()))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }
}

/// A valid request for `program` and `email`.
pub fn body(program: &str, email: &str) -> Value {
    let subject = match program {
        "kyc-basic" => {
            json!({"tier": "basic", "country": "DE", "verifiedAt": "2026-11-21T12:00:00Z"})
        }
        _ => json!({"documentType": "passport", "country": "FR", "ageOver18": true}),
    };
    json!({"credentialId": program, "user": {"email": email}, "credentialSubject": subject})
}

trait HeaderOpt {
    fn header_opt(self, name: &str, value: Option<&str>) -> Self;
}

impl HeaderOpt for ApiGatewayRequest {
    fn header_opt(self, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.header(name, v),
            None => self,
        }
    }
}
