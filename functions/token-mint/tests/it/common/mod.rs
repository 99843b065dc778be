//! The token mint handler's world: embedded adapters, a key set, API keys, request helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use lambda_http::http::Method;
use lambda_http::{Body, Response};
use serde_json::Value;
use shared::apigw::ApiGatewayRequest;
use shared::auth::{ApiKey, ApiKeyRegistry, KeyType, Permission, sign};
use shared::clock::{Clock, ManualClock, SharedClock, Timestamp};
use shared::config::{EnvReader, MapEnv};
use shared::keys::policy::plan;
use shared::keys::{KeySet, KeySetStore};
use shared::secrets::file::FileSecrets;
use shared::secrets::{CountingSource, SecretWriter};
use shared::store::RecordStore;
use shared::store::embedded::EmbeddedStore;
use shared::telemetry::{MemorySink, Recorder};
use token_mint::{MintConfig, MintDeps, MintPorts};

pub struct World {
    pub deps: MintDeps,
    pub clock: ManualClock,
    pub secret_reads: CountingSource<FileSecrets>,
    /// The calls reaching the server route's replay cache (`None` without the server route).
    pub replay_calls: Option<Arc<test_support::CountingStore>>,
    pub key_set: KeySet,
    pub server_key: ApiKey,
    pub issue_minter: ApiKey,
    pub reader_key: ApiKey,
    pub metrics: MemorySink,
    pub _dir: tempfile::TempDir,
}

pub fn config(extra: &[(&str, &str)]) -> MintConfig {
    let mut pairs = vec![("PARTNER_ID", "partner-test")];
    pairs.extend_from_slice(extra);
    let env = MapEnv::from_pairs(pairs);
    MintConfig::from_env(&EnvReader::new(&env)).unwrap()
}

pub async fn world(server_route: bool) -> World {
    world_with(server_route, &[]).await
}

/// The world with extra settings (e.g. `USER_ISSUE_TOKENS=true`).
pub async fn world_with(server_route: bool, extra: &[(&str, &str)]) -> World {
    let clock = ManualClock::new(Timestamp::from_secs(1_795_262_400));
    let shared_clock: SharedClock = Arc::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let files = FileSecrets::open(dir.path(), shared_clock.clone()).unwrap();
    let config = config(extra);

    // A key set as rotation would have written it.
    let writer: Arc<dyn SecretWriter> = Arc::new(files.clone());
    let store = KeySetStore::new(writer, config.keys.secret_name.clone());
    let loaded = store.load().await.unwrap();
    let (key_set, _) = plan(&loaded.set, clock.now(), &config.keys.policy).unwrap();
    store.save(&loaded, &key_set).await.unwrap();

    // A server key allowed to mint, one also allowed to mint `issue`, and a reader.
    let server_key = ApiKey::generate(
        KeyType::Live,
        vec![Permission::TokensMint],
        vec![],
        "svc",
        clock.now(),
    );
    let issue_minter = ApiKey::generate(
        KeyType::Live,
        vec![Permission::TokensMint, Permission::TokensMintIssue],
        vec![],
        "issuer-svc",
        clock.now(),
    );
    let reader_key = ApiKey::generate(
        KeyType::Live,
        vec![Permission::CredentialsRead],
        vec![],
        "reader",
        clock.now(),
    );
    let registry = ApiKeyRegistry {
        keys: vec![server_key.clone(), issue_minter.clone(), reader_key.clone()],
    };
    files
        .create(&config.api_keys_secret, &registry.to_secret())
        .await
        .unwrap();

    let counting = CountingSource::new(files.clone());
    let metrics = MemorySink::default();
    let recorder = Recorder::new(
        "Test",
        "token-mint",
        Arc::new(metrics.clone()),
        shared_clock.clone(),
    );
    // The server route's replay cache, behind a wrapper that counts its calls.
    let replay_calls = server_route.then(|| {
        let store =
            EmbeddedStore::open(dir.path().join("records.sqlite3"), shared_clock.clone()).unwrap();
        Arc::new(test_support::CountingStore::new(Arc::new(store), None))
    });
    let replay = replay_calls
        .clone()
        .map(|counting| counting as Arc<dyn RecordStore>);
    let deps = MintDeps::build(
        config,
        MintPorts {
            secrets: Arc::new(counting.clone()),
            replay,
            clock: shared_clock,
            recorder,
        },
    );
    World {
        deps,
        clock,
        secret_reads: counting,
        replay_calls,
        key_set,
        server_key,
        issue_minter,
        reader_key,
        metrics,
        _dir: dir,
    }
}

pub fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn user_request(body: &Value, amr: &str) -> ApiGatewayRequest {
    ApiGatewayRequest::new(Method::POST, "/v1/partner-tokens")
        .json(body)
        .claims(claims(&[
            ("sub", "user-7"),
            ("email", "erin@example.com"),
            ("email_verified", "true"),
            ("amr", amr),
        ]))
}

pub fn body_json(r: &Response<Body>) -> Value {
    match r.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        Body::Empty => Value::Null,
        other => panic!("unexpected body {other:?}"),
    }
}

pub fn header<'a>(r: &'a Response<Body>, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub fn decode(w: &World, token: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.unwrap();
    let entry = w
        .key_set
        .keys
        .iter()
        .find(|k| k.kid.as_str() == kid)
        .unwrap();
    let public = entry.private_jwk.public();
    let key = jsonwebtoken::DecodingKey::from_ec_components(&public.x, &public.y).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.validate_exp = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

/// A server caller's signed `POST /v1/server/partner-tokens` with `body`, signed now.
pub fn server_request(w: &World, body: &Value, permission_key: &ApiKey) -> ApiGatewayRequest {
    const PATH: &str = "/v1/server/partner-tokens";
    server_request_on(w, PATH, PATH, body, permission_key)
}

/// [`server_request`] sent on `path`, with the signature computed over `signed_path`.
pub fn server_request_on(
    w: &World,
    path: &str,
    signed_path: &str,
    body: &Value,
    permission_key: &ApiKey,
) -> ApiGatewayRequest {
    let text = body.to_string();
    let ts = w.clock.now().as_secs().to_string();
    let sig = sign(
        &permission_key.secret,
        "POST",
        signed_path,
        &ts,
        text.as_bytes(),
    );
    ApiGatewayRequest::new(Method::POST, path)
        .header("content-type", "application/json")
        .header("x-access-key", permission_key.id.as_str())
        .header("x-timestamp", &ts)
        .header("x-signature", &sig)
        .body(text)
}
