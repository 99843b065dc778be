//! The token mint handler, in process, with the embedded adapters: what a user, a server caller
//! and a bad request each get, what is logged, and how many secret reads a warm container makes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::*;
use lambda_http::http::Method;
use serde_json::json;
use shared::apigw::ApiGatewayRequest;
use shared::clock::{Clock, Timestamp};
use shared::config::{EnvReader, MapEnv};
use token_mint::{MintConfig, handle};

#[tokio::test]
async fn a_user_with_mfa_gets_a_short_lived_issue_token_where_the_user_route_may_mint_issue() {
    let w = world_with(false, &[("USER_ISSUE_TOKENS", "true")]).await;
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
    let w = world_with(false, &[("USER_ISSUE_TOKENS", "true")]).await;
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

#[tokio::test]
async fn a_server_caller_mints_for_its_own_user_once_per_signature() {
    let w = world(true).await;
    let body = json!({"scope": "issue", "user": {"sub": "u-9", "email": "fay@example.com", "amr": ["otp"]}});
    let req = server_request(&w, &body, &w.issue_minter);
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
async fn behind_a_custom_domain_base_path_a_server_request_verifies_on_the_path_the_client_sent() {
    let w = world_with(true, &[("API_BASE_PATH", "partner")]).await;
    let body = json!({"scope": "session", "user": {"sub": "u-mapped"}});
    // The client signs the path it sends on the custom domain, base path included, and API
    // Gateway passes that path on (rawPath) to the function.
    let mapped = "/partner/v1/server/partner-tokens";
    let r = handle(
        server_request_on(&w, mapped, mapped, &body, &w.server_key).build(),
        &w.deps,
    )
    .await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    assert_eq!(
        decode(&w, body_json(&r)["token"].as_str().unwrap())["sub"],
        "u-mapped"
    );
    // A signature over the path without the base path does not verify on the mapped path.
    let r = handle(
        server_request_on(
            &w,
            mapped,
            "/v1/server/partner-tokens",
            &body,
            &w.server_key,
        )
        .build(),
        &w.deps,
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(body_json(&r)["errorType"], "signature_mismatch");
}

#[tokio::test]
async fn a_server_caller_still_needs_mfa_evidence_for_issue() {
    let w = world(true).await;
    let body = json!({"scope": "issue", "user": {"email": "gil@example.com", "amr": ["pwd"]}});
    let r = handle(server_request(&w, &body, &w.issue_minter).build(), &w.deps).await;
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
    // `issue` without MFA: refused because the user route does not mint `issue` by default,
    // and for the missing MFA where it does.
    let r = handle(event("token-mint-no-mfa.json"), &w.deps).await;
    assert_eq!(r.status(), 403);
    assert_eq!(body_json(&r)["errorType"], "forbidden");
    let w = world_with(false, &[("USER_ISSUE_TOKENS", "true")]).await;
    let r = handle(event("token-mint-no-mfa.json"), &w.deps).await;
    assert_eq!(r.status(), 403);
    assert_eq!(body_json(&r)["errorType"], "mfa_required");
}

#[tokio::test]
async fn by_default_the_user_route_never_mints_the_issue_scope_even_with_mfa() {
    let w = world(false).await;
    let r = handle(
        user_request(&json!({"scope": "issue"}), "[pwd mfa]").build(),
        &w.deps,
    )
    .await;
    assert_eq!(r.status(), 403, "{:?}", r.body());
    assert_eq!(body_json(&r)["errorType"], "forbidden");
    assert_eq!(w.metrics.total("TokensMinted"), 0.0);
    assert_eq!(w.metrics.total("AuthFailures"), 1.0);
    let r = handle(
        user_request(&json!({"scope": "session"}), "[pwd mfa]").build(),
        &w.deps,
    )
    .await;
    assert_eq!(r.status(), 200, "other scopes are still minted");
}

#[tokio::test]
async fn a_server_key_with_tokens_mint_alone_mints_session_but_not_issue() {
    let w = world(true).await;
    let body = json!({"scope": "issue", "user": {"email": "hal@example.com", "amr": ["otp"]}});
    let r = handle(server_request(&w, &body, &w.server_key).build(), &w.deps).await;
    assert_eq!(r.status(), 403, "{:?}", r.body());
    assert_eq!(body_json(&r)["errorType"], "forbidden");
    let body = json!({"scope": "session", "user": {"sub": "u-1"}});
    let r = handle(server_request(&w, &body, &w.server_key).build(), &w.deps).await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
}

fn user_with(claims_pairs: &[(&str, &str)]) -> ApiGatewayRequest {
    ApiGatewayRequest::new(Method::POST, "/v1/partner-tokens")
        .json(&json!({"scope": "session"}))
        .claims(claims(claims_pairs))
}

#[tokio::test]
async fn an_unverified_or_unconfirmed_email_is_forbidden_on_the_user_route() {
    let w = world(false).await;
    for verified in [Some("false"), None, Some("True"), Some("")] {
        let mut pairs = vec![("sub", "u-2"), ("email", "mallory@example.com")];
        if let Some(v) = verified {
            pairs.push(("email_verified", v));
        }
        let r = handle(user_with(&pairs).build(), &w.deps).await;
        assert_eq!(
            r.status(),
            403,
            "email_verified {verified:?}: {:?}",
            r.body()
        );
        assert_eq!(body_json(&r)["errorType"], "forbidden");
    }
    let r = handle(user_with(&[("sub", "u-3")]).build(), &w.deps).await;
    assert_eq!(r.status(), 200, "no e-mail at all: nothing to verify");
    let claims = decode(&w, body_json(&r)["token"].as_str().unwrap());
    assert!(claims.get("email").is_none());
}

#[tokio::test]
async fn the_email_claim_names_are_configurable_and_the_check_can_be_turned_off() {
    let w = world_with(
        false,
        &[("EMAIL_CLAIM", "mail"), ("EMAIL_VERIFIED_CLAIM", "mail_ok")],
    )
    .await;
    let r = handle(
        user_with(&[
            ("sub", "u"),
            ("mail", "ivy@example.com"),
            ("mail_ok", "true"),
        ])
        .build(),
        &w.deps,
    )
    .await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    let claims = decode(&w, body_json(&r)["token"].as_str().unwrap());
    assert_eq!(claims["email"], "ivy@example.com");
    let r = handle(
        user_with(&[
            ("sub", "u"),
            ("mail", "ivy@example.com"),
            ("email_verified", "true"),
        ])
        .build(),
        &w.deps,
    )
    .await;
    assert_eq!(r.status(), 403, "the default claim name no longer counts");

    let w = world_with(false, &[("REQUIRE_VERIFIED_EMAIL", "false")]).await;
    let r = handle(
        user_with(&[("sub", "u"), ("email", "jo@example.com")]).build(),
        &w.deps,
    )
    .await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
}
