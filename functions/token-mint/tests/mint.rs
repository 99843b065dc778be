//! The token mint handler, in process, with the embedded adapters: what a user, a server caller
//! and a bad request each get, what is logged, and how many secret reads a warm container makes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lambda_http::http::Method;
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use shared::apigw::ApiGatewayRequest;
use shared::auth::{
    ApiKey, ApiKeyRegistry, KeyType, Permission, RequestVerifier, SecretApiKeys, sign,
};
use shared::clock::{Clock, ManualClock, SharedClock, Timestamp};
use shared::config::{EnvReader, MapEnv};
use shared::keys::policy::plan;
use shared::keys::{KeySet, KeySetStore, SecretKeySet};
use shared::secrets::file::FileSecrets;
use shared::secrets::{CountingSource, SecretWriter};
use shared::store::embedded::EmbeddedStore;
use shared::telemetry::{LogCapture, MemorySink, Recorder};
use token_mint::{MintConfig, MintDeps, handle};

struct World {
    deps: MintDeps,
    clock: ManualClock,
    secret_reads: CountingSource<FileSecrets>,
    key_set: KeySet,
    server_key: ApiKey,
    reader_key: ApiKey,
    metrics: MemorySink,
    _dir: tempfile::TempDir,
}

fn config(extra: &[(&str, &str)]) -> MintConfig {
    let mut pairs = vec![("PARTNER_ID", "partner-test")];
    pairs.extend_from_slice(extra);
    let env = MapEnv::from_pairs(pairs);
    MintConfig::from_env(&EnvReader::new(&env)).unwrap()
}

async fn world(server_route: bool) -> World {
    let clock = ManualClock::new(Timestamp::from_secs(1_795_262_400));
    let shared_clock: SharedClock = Arc::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let files = FileSecrets::open(dir.path(), shared_clock.clone()).unwrap();
    let config = config(&[]);

    // A key set as rotation would have written it.
    let writer: Arc<dyn SecretWriter> = Arc::new(files.clone());
    let store = KeySetStore::new(writer, config.keys.secret_name.clone());
    let loaded = store.load().await.unwrap();
    let (key_set, _) = plan(&loaded.set, clock.now(), &config.keys.policy).unwrap();
    store.save(&loaded, &key_set).await.unwrap();

    // A server key allowed to mint.
    let server_key = ApiKey::generate(
        KeyType::Live,
        vec![Permission::TokensMint],
        vec![],
        "svc",
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
        keys: vec![server_key.clone(), reader_key.clone()],
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
    let keys = SecretKeySet::new(
        counting.clone(),
        config.keys.secret_name.clone(),
        config.keys.timings,
        shared_clock.clone(),
    );
    let server_auth = server_route.then(|| {
        let api_keys = SecretApiKeys::new(
            files.clone(),
            config.api_keys_secret.clone(),
            Duration::from_secs(60),
            shared_clock.clone(),
        );
        let replay =
            EmbeddedStore::open(dir.path().join("records.sqlite3"), shared_clock.clone()).unwrap();
        RequestVerifier::new(
            Arc::new(api_keys),
            Arc::new(replay),
            shared_clock.clone(),
            recorder.clone(),
        )
    });
    World {
        deps: MintDeps {
            config,
            keys: Arc::new(keys),
            server_auth,
            clock: shared_clock,
            recorder,
        },
        clock,
        secret_reads: counting,
        key_set,
        server_key,
        reader_key,
        metrics,
        _dir: dir,
    }
}

fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn user_request(body: &Value, amr: &str) -> ApiGatewayRequest {
    ApiGatewayRequest::new(Method::POST, "/v1/partner-tokens")
        .json(body)
        .claims(claims(&[
            ("sub", "user-7"),
            ("email", "erin@example.com"),
            ("amr", amr),
        ]))
}

fn body_json(r: &Response<Body>) -> Value {
    match r.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        Body::Empty => Value::Null,
        other => panic!("unexpected body {other:?}"),
    }
}

fn header<'a>(r: &'a Response<Body>, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn decode(w: &World, token: &str) -> Value {
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

#[tokio::test]
async fn a_user_with_mfa_gets_a_short_lived_issue_token_signed_with_the_active_key() {
    let w = world(false).await;
    let r = handle(
        user_request(&json!({"scope": "issue"}), "[pwd mfa]").build(),
        &w.deps,
    )
    .await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    assert_eq!(header(&r, "cache-control"), "no-store");
    let body = body_json(&r);
    let token = body["token"].as_str().unwrap();
    assert_eq!(body["kid"], w.key_set.keys[0].kid.as_str());
    let claims = decode(&w, token);
    assert_eq!(claims["partnerId"], "partner-test");
    assert_eq!(claims["scope"], "issue");
    assert_eq!(claims["email"], "erin@example.com");
    assert_eq!(claims["sub"], "user-7");
    let now = w.clock.now().as_secs();
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["exp"], now + 300);
    assert_eq!(
        body["expiresAt"],
        Timestamp::from_secs(now + 300).to_rfc3339()
    );
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(w.metrics.total("TokensMinted"), 1.0);
}

#[tokio::test]
async fn a_scope_without_mfa_requirements_needs_no_mfa() {
    let w = world(false).await;
    let r = handle(
        user_request(&json!({"scope": "session"}), "[pwd]").build(),
        &w.deps,
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn bad_requests_get_their_documented_answers_and_nothing_secret_is_logged() {
    let w = world(false).await;
    let (logs, dispatch) = LogCapture::new("token-mint");
    let _g = tracing::dispatcher::set_default(&dispatch);
    let cases: Vec<(&str, ApiGatewayRequest, u16, &str)> = vec![
        (
            "no authorizer claims",
            ApiGatewayRequest::new(Method::POST, "/v1/partner-tokens")
                .json(&json!({"scope": "issue"})),
            401,
            "unauthorized",
        ),
        (
            "unknown scope",
            user_request(&json!({"scope": "admin"}), "[mfa]"),
            400,
            "validation_failed",
        ),
        (
            "issue without MFA",
            user_request(&json!({"scope": "issue"}), "[pwd]"),
            403,
            "mfa_required",
        ),
        (
            "malformed JSON",
            user_request(&json!({}), "[mfa]").body("{\"scope\": "),
            400,
            "validation_failed",
        ),
        (
            "wrong type",
            user_request(&json!({"scope": 7}), "[mfa]"),
            400,
            "validation_failed",
        ),
        (
            "unknown field",
            user_request(&json!({"scope": "issue", "admin": true}), "[mfa]"),
            400,
            "validation_failed",
        ),
        (
            "wrong content type",
            ApiGatewayRequest::new(Method::POST, "/v1/partner-tokens")
                .header("content-type", "text/plain")
                .body("scope=issue")
                .claims(claims(&[("sub", "u"), ("amr", "[mfa]")])),
            415,
            "unsupported_media_type",
        ),
        (
            "oversized body",
            user_request(&json!({"scope": "x".repeat(5000)}), "[mfa]"),
            413,
            "payload_too_large",
        ),
        (
            "a user body on the user route",
            user_request(
                &json!({"scope": "issue", "user": {"email": "x@example.com"}}),
                "[mfa]",
            ),
            400,
            "validation_failed",
        ),
        (
            "an API key where the server route is not deployed",
            ApiGatewayRequest::new(Method::POST, "/v1/partner-tokens")
                .json(&json!({"scope": "issue"}))
                .header("x-access-key", "pk_aaaaaaaaaaaaaaaaaaaa"),
            401,
            "unauthorized",
        ),
        (
            "wrong method",
            ApiGatewayRequest::new(Method::GET, "/v1/partner-tokens"),
            405,
            "method_not_allowed",
        ),
    ];
    let mut minted = Vec::new();
    for (what, req, status, error_type) in cases {
        let r = handle(req.build(), &w.deps).await;
        assert_eq!(r.status().as_u16(), status, "{what}: {:?}", r.body());
        assert_eq!(body_json(&r)["errorType"], error_type, "{what}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{what}");
    }
    // A successful mint too, so the logs would show a token if it were ever logged.
    let ok = handle(
        user_request(&json!({"scope": "issue"}), "[mfa]").build(),
        &w.deps,
    )
    .await;
    minted.push(body_json(&ok)["token"].as_str().unwrap().to_owned());
    let text = logs.text();
    for key in &w.key_set.keys {
        assert!(
            !text.contains(&key.private_jwk.d),
            "private key material in the logs"
        );
    }
    for token in &minted {
        assert!(!text.contains(token.as_str()), "a token in the logs");
        let signature = token.rsplit('.').next().unwrap();
        assert!(!text.contains(signature));
    }
    assert!(
        !text.contains("erin@example.com"),
        "an e-mail address in the logs"
    );
    assert!(
        logs.lines()
            .iter()
            .any(|l| l["reason"] == "no_authorizer_claims")
    );
    assert!(logs.lines().iter().any(|l| l["reason"] == "mfa_required"));
}

#[test]
fn a_configured_lifetime_above_300_seconds_fails_at_start_naming_the_variable() {
    let env = MapEnv::from_pairs([("PARTNER_ID", "p"), ("TOKEN_LIFETIME_SECONDS", "301")]);
    let err = MintConfig::from_env(&EnvReader::new(&env)).unwrap_err();
    assert_eq!(err.var, "TOKEN_LIFETIME_SECONDS");
    let env = MapEnv::from_pairs([("TOKEN_LIFETIME_SECONDS", "60")]);
    assert_eq!(
        MintConfig::from_env(&EnvReader::new(&env)).unwrap_err().var,
        "PARTNER_ID"
    );
}

#[tokio::test]
async fn warm_invocations_read_no_secret_until_the_cache_ttl_has_passed() {
    let w = world(false).await;
    for _ in 0..20 {
        let r = handle(
            user_request(&json!({"scope": "issue"}), "[mfa]").build(),
            &w.deps,
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        w.secret_reads.calls(),
        1,
        "only the first invocation reads the key set"
    );
    w.clock
        .advance(w.deps.config.keys.timings.key_set_cache_ttl);
    let r = handle(
        user_request(&json!({"scope": "issue"}), "[mfa]").build(),
        &w.deps,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        w.secret_reads.calls(),
        2,
        "read again once the TTL has passed"
    );
}

fn server_request(w: &World, body: &Value, permission_key: &ApiKey) -> ApiGatewayRequest {
    let text = body.to_string();
    let ts = w.clock.now().as_secs().to_string();
    let sig = sign(
        &permission_key.secret,
        "POST",
        "/v1/server/partner-tokens",
        &ts,
        text.as_bytes(),
    );
    ApiGatewayRequest::new(Method::POST, "/v1/server/partner-tokens")
        .header("content-type", "application/json")
        .header("x-access-key", permission_key.id.as_str())
        .header("x-timestamp", &ts)
        .header("x-signature", &sig)
        .body(text)
}

#[tokio::test]
async fn a_server_caller_mints_for_its_own_user_once_per_signature() {
    let w = world(true).await;
    let body = json!({"scope": "issue", "user": {"sub": "u-9", "email": "fay@example.com", "amr": ["otp"]}});
    let req = server_request(&w, &body, &w.server_key);
    let r = handle(req.clone().build(), &w.deps).await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    let claims = decode(&w, body_json(&r)["token"].as_str().unwrap());
    assert_eq!(claims["sub"], "u-9");
    assert_eq!(claims["email"], "fay@example.com");
    let replay = handle(req.build(), &w.deps).await;
    assert_eq!(replay.status(), 401);
    assert_eq!(body_json(&replay)["errorType"], "replayed_request");
}

#[tokio::test]
async fn a_server_caller_still_needs_mfa_evidence_for_issue() {
    let w = world(true).await;
    let body = json!({"scope": "issue", "user": {"email": "gil@example.com", "amr": ["pwd"]}});
    let r = handle(server_request(&w, &body, &w.server_key).build(), &w.deps).await;
    assert_eq!(r.status(), 403);
    assert_eq!(body_json(&r)["errorType"], "mfa_required");
}

#[tokio::test]
async fn a_server_key_without_the_mint_permission_is_forbidden() {
    let w = world(true).await;
    let body = json!({"scope": "session", "user": {"sub": "u"}});
    let r = handle(server_request(&w, &body, &w.reader_key).build(), &w.deps).await;
    assert_eq!(r.status(), 403);
    assert_eq!(body_json(&r)["errorType"], "forbidden");
}

#[tokio::test]
async fn a_server_request_signed_with_the_wrong_secret_is_refused() {
    let w = world(true).await;
    let mut forged = w.server_key.clone();
    forged.secret = "sk_guessed".into();
    let body = json!({"scope": "session", "user": {"sub": "u"}});
    let r = handle(server_request(&w, &body, &forged).build(), &w.deps).await;
    assert_eq!(r.status(), 401);
    assert_eq!(body_json(&r)["errorType"], "signature_mismatch");
}

fn event(name: &str) -> lambda_http::Request {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_sample_events_get_the_answers_they_are_named_for() {
    let w = world(false).await;
    let r = handle(event("token-mint.json"), &w.deps).await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    assert!(body_json(&r)["token"].is_string());
    let r = handle(event("token-mint-no-mfa.json"), &w.deps).await;
    assert_eq!(r.status(), 403);
    assert_eq!(body_json(&r)["errorType"], "mfa_required");
}
