//! What the token mint logs on bad requests: reasons yes, secrets and personal data never.
//! In its own test binary: a log capture is per thread, and tests running beside it in the same
//! process can make `tracing` skip the captured callsites.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "it/common/mod.rs"]
mod common;

use common::*;
use lambda_http::http::Method;
use serde_json::json;
use shared::apigw::ApiGatewayRequest;
use shared::telemetry::LogCapture;
use token_mint::handle;

async fn bad_requests_get_their_documented_answers_and_nothing_secret_is_logged() {
    let w = world_with(false, &[("USER_ISSUE_TOKENS", "true")]).await;
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

async fn mint_refusals_and_acceptances_are_audit_lines_with_the_real_source_address() {
    let w = world(false).await;
    let (logs, dispatch) = LogCapture::new("token-mint");
    let _g = tracing::dispatcher::set_default(&dispatch);
    let refused = handle(
        ApiGatewayRequest::new(Method::POST, "/v1/partner-tokens")
            .json(&json!({"scope": "session"}))
            .source_ip("192.0.2.44")
            .build(),
        &w.deps,
    )
    .await;
    assert_eq!(refused.status(), 401);
    let unverified = handle(
        ApiGatewayRequest::new(Method::POST, "/v1/partner-tokens")
            .json(&json!({"scope": "session"}))
            .claims(claims(&[("sub", "u"), ("email", "kim@example.com")]))
            .source_ip("192.0.2.45")
            .build(),
        &w.deps,
    )
    .await;
    assert_eq!(unverified.status(), 403);
    let accepted = handle(
        user_request(&json!({"scope": "session"}), "[pwd]")
            .source_ip("192.0.2.46")
            .build(),
        &w.deps,
    )
    .await;
    assert_eq!(accepted.status(), 200);
    let audit: Vec<serde_json::Value> = logs
        .lines()
        .into_iter()
        .filter(|l| l["audit"] == "authentication")
        .collect();
    let seen: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|l| {
            (
                l["outcome"].as_str().unwrap(),
                l["reason"].as_str().unwrap_or("-"),
                l["source_ip"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("refused", "no_authorizer_claims", "192.0.2.44"),
            ("refused", "email_not_verified", "192.0.2.45"),
            ("accepted", "-", "192.0.2.46"),
        ]
    );
    assert!(
        audit
            .iter()
            .all(|l| l["route"] == "POST /v1/partner-tokens")
    );
    let text = logs.text();
    assert!(
        !text.contains("kim@example.com"),
        "an e-mail address in the logs"
    );
    assert!(
        !text.contains("erin@example.com"),
        "an e-mail address in the logs"
    );
}

/// One test in this binary: two log captures in one process at once can make `tracing` skip
/// the captured callsites, so the scenarios run one after the other.
#[tokio::test]
async fn bad_requests_get_their_documented_answers_nothing_secret_is_logged_and_every_attempt_is_audited()
 {
    bad_requests_get_their_documented_answers_and_nothing_secret_is_logged().await;
    mint_refusals_and_acceptances_are_audit_lines_with_the_real_source_address().await;
}
