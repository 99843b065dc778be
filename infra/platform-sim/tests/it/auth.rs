#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Partner JWT checks: every refusal is a 401 in the platform shape naming the reason.

use crate::common;

use std::time::Duration;

use base64::Engine as _;
use common::{Env, TestKey, claims, issue_body};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

async fn call_with(env: &Env, token: Option<String>) -> (u16, Value) {
    let mut request = env
        .http
        .post(env.url("/credentials/issue-on-behalf"))
        .json(&issue_body("kyc-basic"));
    if let Some(token) = token {
        request = request.header("x-partner-auth", token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn assert_refused(env: &Env, token: Option<String>, reason: &str) {
    let (status, body) = call_with(env, token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], 401);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(reason),
        "{message:?} should name {reason:?}"
    );
}

#[tokio::test]
async fn a_valid_token_is_accepted() {
    let env = Env::start().await;
    let (status, body) = call_with(&env, Some(env.token("alice@example.com"))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn missing_header_is_refused_with_401() {
    let env = Env::start().await;
    assert_refused(&env, None, "missing x-partner-auth").await;
}

#[tokio::test]
async fn garbage_token_is_refused_with_401() {
    let env = Env::start().await;
    assert_refused(&env, Some("not.a.jwt.at-all".to_owned()), "malformed").await;
    assert_refused(&env, Some("abc".to_owned()), "malformed").await;
}

#[tokio::test]
async fn wrong_alg_is_refused_with_401() {
    let env = Env::start().await;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(env.key.kid.clone());
    let claims = claims(common::wall_now(), "alice@example.com");
    let token =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"shared")).unwrap();
    assert_refused(&env, Some(token), "ES256 required").await;

    // alg "none" with an empty signature.
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": env.key.kid})),
        b64(&claims)
    );
    assert_refused(&env, Some(none), "ES256 required").await;
}

#[tokio::test]
async fn missing_kid_is_refused_with_401() {
    let env = Env::start().await;
    let header = Header::new(Algorithm::ES256);
    let token = env
        .key
        .mint_with(header, &claims(common::wall_now(), "a@b.c"));
    assert_refused(&env, Some(token), "missing kid").await;
}

#[tokio::test]
async fn missing_typ_is_refused_with_401() {
    let env = Env::start().await;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(env.key.kid.clone());
    header.typ = None;
    let token = env
        .key
        .mint_with(header, &claims(common::wall_now(), "a@b.c"));
    assert_refused(&env, Some(token), "missing typ").await;
}

#[tokio::test]
async fn expired_token_is_refused_with_401() {
    let env = Env::start().await;
    let now = common::wall_now();
    let mut c = claims(now - 400, "a@b.c");
    c["exp"] = json!(now - 61);
    c["iat"] = json!(now - 300);
    assert_refused(&env, Some(env.key.mint(&c)), "token expired").await;
}

#[tokio::test]
async fn a_token_expired_within_the_leeway_is_accepted() {
    let env = Env::start().await;
    let now = common::wall_now();
    let mut c = claims(now - 100, "a@b.c");
    c["exp"] = json!(now - 30);
    let (status, body) = call_with(&env, Some(env.key.mint(&c))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn token_times_follow_the_wall_clock_not_the_simulated_one() {
    let env = Env::start().await;
    let token = env.token("a@b.c");
    env.sim.advance(Duration::from_secs(3600));
    let (status, body) = call_with(&env, Some(token)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_token_issued_in_the_future_is_refused_with_401() {
    let env = Env::start().await;
    let c = claims(common::wall_now() + 120, "a@b.c");
    assert_refused(&env, Some(env.key.mint(&c)), "iat is in the future").await;
}

#[tokio::test]
async fn lifetime_over_300_seconds_is_refused_with_401() {
    let env = Env::start().await;
    let now = common::wall_now();
    let mut c = claims(now, "a@b.c");
    c["exp"] = json!(now + 301);
    assert_refused(&env, Some(env.key.mint(&c)), "exceeds 300 s").await;
}

#[tokio::test]
async fn wrong_scope_is_refused_with_401() {
    let env = Env::start().await;
    let mut c = claims(common::wall_now(), "a@b.c");
    c["scope"] = json!("session");
    assert_refused(&env, Some(env.key.mint(&c)), "scope \"issue\" required").await;
}

#[tokio::test]
async fn wrong_partner_id_is_refused_with_401() {
    let env = Env::start().await;
    let mut c = claims(common::wall_now(), "a@b.c");
    c["partnerId"] = json!("someone-else");
    assert_refused(&env, Some(env.key.mint(&c)), "partnerId").await;
}

#[tokio::test]
async fn a_signature_by_another_key_with_a_known_kid_is_refused_with_401() {
    let env = Env::start().await;
    let impostor = TestKey::generate(&env.key.kid);
    let token = impostor.mint(&claims(common::wall_now(), "a@b.c"));
    assert_refused(&env, Some(token), "invalid signature").await;
}

#[tokio::test]
async fn issue_without_an_email_claim_is_refused_with_401() {
    let env = Env::start().await;
    let mut c = claims(common::wall_now(), "a@b.c");
    c.as_object_mut().unwrap().remove("email");
    assert_refused(&env, Some(env.key.mint(&c)), "email claim required").await;
}

#[tokio::test]
async fn unknown_kid_triggers_one_refetch_at_most_every_ten_seconds() {
    let env = Env::start().await;
    // First call: the JWKS is fetched once and cached.
    let (status, _) = call_with(&env, Some(env.token("a@b.c"))).await;
    assert_eq!(status, 200);
    let (status, _) = call_with(&env, Some(env.token("a@b.c"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        env.jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // A new key appears in the JWKS: within 10 s of the last fetch it is not refetched.
    let rotated = TestKey::generate("key-2");
    env.jwks.add(rotated.jwk.clone());
    let token = rotated.mint(&claims(common::wall_now(), "a@b.c"));
    assert_refused(&env, Some(token), "unknown kid").await;
    assert_eq!(
        env.jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // After 10 s the unknown kid triggers exactly one refetch and the token passes.
    env.sim.advance(Duration::from_secs(11));
    let token = rotated.mint(&claims(common::wall_now(), "a@b.c"));
    let (status, body) = call_with(&env, Some(token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        env.jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        2
    );

    // A kid that is nowhere is refused, without hammering the JWKS.
    let ghost = TestKey::generate("ghost");
    for _ in 0..3 {
        assert_refused(
            &env,
            Some(ghost.mint(&claims(common::wall_now(), "a@b.c"))),
            "unknown kid",
        )
        .await;
    }
    assert_eq!(
        env.jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    let log = env.get_json("/sim/requests").await;
    assert_eq!(log["jwksFetches"], 2);
}

#[tokio::test]
async fn the_request_log_shows_claims_and_refusal_reasons() {
    let env = Env::start().await;
    call_with(&env, Some(env.token("alice@example.com"))).await;
    let mut c = claims(common::wall_now(), "bob@example.com");
    c["scope"] = json!("read");
    call_with(&env, Some(env.key.mint(&c))).await;
    let logged = env.logged("POST /credentials/issue-on-behalf").await;
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[0]["status"], 200);
    assert_eq!(logged[0]["claims"]["email"], "alice@example.com");
    assert!(logged[0]["authError"].is_null());
    assert_eq!(logged[1]["status"], 401);
    assert_eq!(logged[1]["claims"]["email"], "bob@example.com");
    assert!(logged[1]["authError"].as_str().unwrap().contains("scope"));
}
