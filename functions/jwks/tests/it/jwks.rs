//! The JWKS handler, in process: public members only, cache headers, ETag and 304, no secret read
//! on a warm call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use jwks::{JwksConfig, JwksDeps, JwksPorts, handle};
use lambda_http::http::Method;
use lambda_http::{Body, Response};
use serde_json::Value;
use shared::apigw::ApiGatewayRequest;
use shared::clock::{Clock, ManualClock, SharedClock, Timestamp};
use shared::config::{EnvReader, MapEnv};
use shared::keys::policy::{plan, rotate};
use shared::keys::{KeySet, KeySetStore};
use shared::secrets::file::FileSecrets;
use shared::secrets::{CountingSource, SecretWriter};
use shared::telemetry::{MemorySink, Recorder};

struct World {
    deps: JwksDeps,
    clock: ManualClock,
    reads: CountingSource<FileSecrets>,
    set: KeySet,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    world_with(&[]).await
}

async fn world_with(extra: &[(&str, &str)]) -> World {
    let clock = ManualClock::new(Timestamp::from_secs(1_795_262_400));
    let shared_clock: SharedClock = Arc::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let files = FileSecrets::open(dir.path(), shared_clock.clone()).unwrap();
    let mut pairs = vec![("JWKS_MAX_AGE_SECONDS", "120")];
    pairs.extend_from_slice(extra);
    let env = MapEnv::from_pairs(pairs);
    let config = JwksConfig::from_env(&EnvReader::new(&env)).unwrap();
    let writer: Arc<dyn SecretWriter> = Arc::new(files.clone());
    let store = KeySetStore::new(writer, config.keys.secret_name.clone());
    // An active key and a pending successor.
    let loaded = store.load().await.unwrap();
    let (set, _) = plan(&loaded.set, clock.now(), &config.keys.policy).unwrap();
    let (set, _) = rotate(&set, clock.now(), &config.keys.policy, false);
    store.save(&loaded, &set).await.unwrap();
    let reads = CountingSource::new(files);
    World {
        deps: JwksDeps::build(
            config,
            JwksPorts {
                secrets: Arc::new(reads.clone()),
                recorder: Recorder::new(
                    "Test",
                    "jwks",
                    Arc::new(MemorySink::default()),
                    shared_clock.clone(),
                ),
                clock: shared_clock,
            },
        ),
        clock,
        reads,
        set,
        _dir: dir,
    }
}

fn header<'a>(r: &'a Response<Body>, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn get() -> ApiGatewayRequest {
    ApiGatewayRequest::new(Method::GET, "/.well-known/jwks.json")
}

#[tokio::test]
async fn the_jwks_lists_active_and_pending_keys_with_public_members_only() {
    let w = world().await;
    let r = handle(get().build(), &w.deps).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "public, max-age=120");
    assert_eq!(header(&r, "content-type"), "application/json");
    let etag = header(&r, "etag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag: {etag}"
    );
    let Body::Text(text) = r.body() else { panic!() };
    let doc: Value = serde_json::from_str(text).unwrap();
    let keys = doc["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for (k, entry) in keys.iter().zip(&w.set.keys) {
        assert_eq!(k["kid"], entry.kid.as_str());
        assert_eq!(
            (
                k["kty"].as_str(),
                k["crv"].as_str(),
                k["alg"].as_str(),
                k["use"].as_str()
            ),
            (Some("EC"), Some("P-256"), Some("ES256"), Some("sig"))
        );
        assert!(k.get("d").is_none());
        assert!(!text.contains(&entry.private_jwk.d));
    }
}

#[tokio::test]
async fn a_matching_if_none_match_gets_304_with_the_same_etag_and_no_body() {
    let w = world().await;
    let first = handle(get().build(), &w.deps).await;
    let etag = header(&first, "etag").to_owned();
    let r = handle(get().header("if-none-match", &etag).build(), &w.deps).await;
    assert_eq!(r.status(), 304);
    assert_eq!(header(&r, "etag"), etag);
    assert_eq!(header(&r, "cache-control"), "public, max-age=120");
    assert!(matches!(r.body(), Body::Empty));
    let r = handle(get().header("if-none-match", "\"stale\"").build(), &w.deps).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn warm_calls_read_the_key_set_once_per_cache_ttl() {
    let w = world().await;
    for _ in 0..25 {
        assert_eq!(handle(get().build(), &w.deps).await.status(), 200);
    }
    assert_eq!(w.reads.calls(), 1);
    w.clock
        .advance(w.deps.config.keys.timings.key_set_cache_ttl);
    assert_eq!(handle(get().build(), &w.deps).await.status(), 200);
    assert_eq!(w.reads.calls(), 2);
}

#[tokio::test]
async fn other_methods_are_refused() {
    let w = world().await;
    let r = handle(
        ApiGatewayRequest::new(Method::POST, "/.well-known/jwks.json").build(),
        &w.deps,
    )
    .await;
    assert_eq!(r.status(), 405);
}

fn event(name: &str) -> lambda_http::Request {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_sample_events_get_the_answers_they_are_named_for() {
    let w = world().await;
    assert_eq!(handle(event("jwks.json"), &w.deps).await.status(), 200);
    // The sample's If-None-Match is a placeholder: it does not match, so the document comes.
    assert_eq!(
        handle(event("jwks-if-none-match.json"), &w.deps)
            .await
            .status(),
        200
    );
}

fn discovery(host: &str, path: &str) -> ApiGatewayRequest {
    ApiGatewayRequest::new(Method::GET, path).header("host", host)
}

#[tokio::test]
async fn the_discovery_document_names_the_address_the_request_reached_and_its_jwks() {
    let w = world().await;
    let host = "abc123.execute-api.eu-west-1.amazonaws.com";
    let r = handle(
        discovery(host, "/.well-known/openid-configuration").build(),
        &w.deps,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "public, max-age=120");
    let etag = header(&r, "etag").to_owned();
    assert!(etag.starts_with('"'));
    let doc: Value = match r.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("{other:?}"),
    };
    let issuer = format!("https://{host}");
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(doc["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    // Same cache rules as the JWKS: a matching If-None-Match gets 304, without a key-set read.
    let reads = w.reads.calls();
    let again = discovery(host, "/.well-known/openid-configuration").header("if-none-match", &etag);
    let r = handle(again.build(), &w.deps).await;
    assert_eq!(
        (r.status().as_u16(), header(&r, "etag")),
        (304, etag.as_str())
    );
    assert_eq!(w.reads.calls(), reads);
    // Anything else under the API is not a route of this function.
    let r = handle(discovery(host, "/.well-known/other").build(), &w.deps).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn behind_a_base_path_or_a_fixed_public_url_the_discovery_document_names_that_issuer() {
    let mapped = world_with(&[("API_BASE_PATH", "partner")]).await;
    let req = discovery(
        "id.example.com",
        "/partner/.well-known/openid-configuration",
    );
    let r = handle(req.build(), &mapped.deps).await;
    let Body::Text(text) = r.body() else { panic!() };
    let doc: Value = serde_json::from_str(text).unwrap();
    assert_eq!(doc["issuer"], "https://id.example.com/partner");
    assert_eq!(
        doc["jwks_uri"],
        "https://id.example.com/partner/.well-known/jwks.json"
    );
    let jwks = handle(
        get_on("id.example.com", "/partner/.well-known/jwks.json").build(),
        &mapped.deps,
    )
    .await;
    assert_eq!(jwks.status(), 200);

    let fixed = world_with(&[("PUBLIC_BASE_URL", "https://tokens.example.com")]).await;
    let r = handle(
        discovery(
            "abc123.execute-api.eu-west-1.amazonaws.com",
            "/.well-known/openid-configuration",
        )
        .build(),
        &fixed.deps,
    )
    .await;
    let Body::Text(text) = r.body() else { panic!() };
    let doc: Value = serde_json::from_str(text).unwrap();
    assert_eq!(doc["issuer"], "https://tokens.example.com");
    for bad in [
        "http://tokens.example.com",
        "https://tokens.example.com/",
        "https://",
    ] {
        let env = MapEnv::from_pairs([("PUBLIC_BASE_URL", bad)]);
        let err = JwksConfig::from_env(&EnvReader::new(&env)).unwrap_err();
        assert_eq!(err.var, "PUBLIC_BASE_URL", "{bad}");
    }
}

fn get_on(host: &str, path: &str) -> ApiGatewayRequest {
    ApiGatewayRequest::new(Method::GET, path).header("host", host)
}
