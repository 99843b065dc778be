//! HMAC request authentication: every way a signed request can be wrong gets its own documented
//! answer, is logged with its reason (never a secret) and counted; a good request passes once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod signing_world;

use std::time::Duration;

use shared::auth::{Permission, SignedParts};
use shared::clock::Clock;
use shared::error::ErrorType;
use signing_world::*;

#[tokio::test]
async fn a_correctly_signed_request_passes_once_and_its_replay_is_refused() {
    let w = world().await;
    let req = signed(&w.live, &w.live.secret, now_secs(&w));
    let caller = w
        .verifier
        .verify(&req.parts(), Permission::CredentialsWrite)
        .await
        .unwrap();
    assert_eq!(caller.key_id, w.live.id);
    assert_eq!(
        refused(&w, &req, Permission::CredentialsWrite).await,
        (ErrorType::ReplayedRequest, 401, "replayed_request")
    );
}

#[tokio::test]
async fn an_iso_8601_timestamp_is_accepted_as_signed() {
    let w = world().await;
    let req = signed(&w.live, &w.live.secret, w.clock.now().to_rfc3339());
    assert!(
        w.verifier
            .verify(&req.parts(), Permission::CredentialsWrite)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_request_from_an_allowed_address_passes() {
    let w = world().await;
    let mut req = signed(&w.office_only, &w.office_only.secret, now_secs(&w));
    req.ip = Some("203.0.113.20");
    assert!(
        w.verifier
            .verify(&req.parts(), Permission::CredentialsWrite)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn unknown_and_revoked_keys_get_the_same_answer() {
    let w = world().await;
    let now = now_secs(&w);
    let mut unknown = signed(&w.live, &w.live.secret, now.clone());
    unknown.key_id = "pk_doesnotexist0000000".into();
    let revoked = signed(&w.revoked, &w.revoked.secret, now);
    let a = w
        .verifier
        .verify(&unknown.parts(), Permission::CredentialsWrite)
        .await
        .unwrap_err();
    let b = w
        .verifier
        .verify(&revoked.parts(), Permission::CredentialsWrite)
        .await
        .unwrap_err();
    assert_eq!(a.to_api_error().body(), b.to_api_error().body());
    assert_ne!(a.reason(), b.reason(), "the log still tells them apart");
}

#[tokio::test]
async fn missing_headers_are_unauthorized() {
    let w = world().await;
    let parts = SignedParts {
        method: "POST",
        path_and_query: "/v1/credentials",
        access_key: None,
        timestamp: None,
        signature: None,
        body: b"",
        source_ip: None,
    };
    let failure = w
        .verifier
        .verify(&parts, Permission::CredentialsWrite)
        .await
        .unwrap_err();
    assert_eq!(failure.to_api_error().error_type(), ErrorType::Unauthorized);
}

#[tokio::test]
async fn two_keys_are_accepted_side_by_side_during_a_rotation() {
    let w = world().await;
    let a = signed(&w.live, &w.live.secret, now_secs(&w));
    w.clock.advance(Duration::from_secs(1));
    let mut b = signed(&w.office_only, &w.office_only.secret, now_secs(&w));
    b.ip = Some("203.0.113.1");
    assert!(
        w.verifier
            .verify(&a.parts(), Permission::CredentialsWrite)
            .await
            .is_ok()
    );
    assert!(
        w.verifier
            .verify(&b.parts(), Permission::CredentialsWrite)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_key_past_its_expiry_is_refused_as_token_expired_and_an_unexpired_one_passes() {
    let w = world().await;
    let req = signed(&w.expiring, &w.expiring.secret, now_secs(&w));
    assert!(
        w.verifier
            .verify(&req.parts(), Permission::CredentialsRead)
            .await
            .is_ok(),
        "one second before its expiry the key works"
    );
    w.clock.advance(Duration::from_secs(1));
    let req = signed(&w.expiring, &w.expiring.secret, now_secs(&w));
    assert_eq!(
        refused(&w, &req, Permission::CredentialsRead).await,
        (ErrorType::TokenExpired, 401, "expired_key")
    );
}

#[tokio::test]
async fn an_expired_key_with_a_wrong_signature_is_told_signature_mismatch_not_that_it_expired() {
    let w = world().await;
    w.clock.advance(Duration::from_secs(2));
    let req = signed(&w.expiring, "sk_not-the-secret", now_secs(&w));
    assert_eq!(
        refused(&w, &req, Permission::CredentialsRead).await,
        (ErrorType::SignatureMismatch, 401, "signature_mismatch")
    );
}

#[tokio::test]
async fn a_key_stored_without_an_expiry_expires_ninety_days_after_its_creation() {
    let w = world().await;
    let req = signed(&w.legacy, &w.legacy.secret, now_secs(&w));
    assert!(
        w.verifier
            .verify(&req.parts(), Permission::CredentialsRead)
            .await
            .is_ok(),
        "89 days old: still valid"
    );
    w.clock.advance(Duration::from_secs(86_400));
    let req = signed(&w.legacy, &w.legacy.secret, now_secs(&w));
    assert_eq!(
        refused(&w, &req, Permission::CredentialsRead).await,
        (ErrorType::TokenExpired, 401, "expired_key")
    );
}

#[tokio::test]
async fn a_test_key_is_forbidden_on_a_live_stack_and_a_read_only_key_is_not() {
    let w = world().await;
    let req = signed(&w.test_key, &w.test_key.secret, now_secs(&w));
    assert_eq!(
        refused(&w, &req, Permission::CredentialsRead).await,
        (ErrorType::Forbidden, 403, "wrong_environment")
    );
    let req = signed(&w.read_only, &w.read_only.secret, now_secs(&w));
    assert!(
        w.verifier
            .verify(&req.parts(), Permission::CredentialsRead)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_caller_carries_its_family_and_only_the_permissions_its_type_grants() {
    let w = world().await;
    let req = signed(&w.read_only, &w.read_only.secret, now_secs(&w));
    let caller = w
        .verifier
        .verify(&req.parts(), Permission::CredentialsRead)
        .await
        .unwrap();
    assert_eq!(
        caller.family.as_str(),
        w.read_only.id.as_str(),
        "no owner: itself"
    );
    assert!(caller.may(Permission::CredentialsRead));
    assert!(
        !caller.may(Permission::CredentialsWrite),
        "a read_only key's write permission is not granted"
    );
}
