#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What a delivery must prove before anything is recorded: the Standard Webhooks reference
//! vector, rotation, and every way a delivery can be forged, replayed or malformed — each with its
//! documented answer, and nothing secret in any answer.

use crate::common;

use std::time::Duration;

use callback_receiver::verify::{self, Delivery, Scheme};
use callback_receiver::{SecretSet, SignatureFailure};
use common::*;
use serde_json::Value;
use shared::clock::Timestamp;

/// The Standard Webhooks specification's published example.
const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
const VECTOR_BODY: &str = r#"{"test": 2432232314}"#;
const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

async fn vector_world() -> World {
    world_with(Setup {
        now: Some(Timestamp::from_secs(VECTOR_TIMESTAMP)),
        ..Setup::default()
    })
    .await
}

fn vector_request(w: &World, signature: &str) -> shared::apigw::ApiGatewayRequest {
    w.request(
        &[
            ("webhook-id", VECTOR_ID.to_owned()),
            ("webhook-timestamp", VECTOR_TIMESTAMP.to_string()),
            ("webhook-signature", signature.to_owned()),
        ],
        VECTOR_BODY,
    )
}

fn assert_error(status: u16, answer: &Value, expected: (u16, &str)) {
    assert_eq!(
        (status, answer["errorType"].as_str().unwrap_or("")),
        expected,
        "{answer}"
    );
    let text = answer.to_string();
    for secret in [VECTOR_SECRET, SECOND_SECRET, WRONG_SECRET, USER] {
        assert!(!text.contains(secret), "an answer carries {secret}: {text}");
        assert!(
            !text.contains(secret.trim_start_matches("whsec_")),
            "an answer carries a secret's base64: {text}"
        );
    }
}

#[test]
fn the_published_standard_webhooks_vector_verifies_with_the_clock_at_its_timestamp() {
    let secrets = SecretSet::parse(VECTOR_SECRET, Scheme::Standard).unwrap();
    let delivery = Delivery {
        scheme: Scheme::Standard,
        id: Some(VECTOR_ID),
        timestamp: Some("1614265330"),
        signature: Some(VECTOR_SIGNATURE),
        body: VECTOR_BODY.as_bytes(),
    };
    let verified = verify::verify(&delivery, &secrets).unwrap();
    assert_eq!(verified.timestamp.as_secs(), VECTOR_TIMESTAMP);
    assert!(
        verified
            .check_window(
                Timestamp::from_secs(VECTOR_TIMESTAMP),
                Duration::from_secs(300)
            )
            .is_ok()
    );
    // Our signer agrees with the published signature, as the simulator's does.
    assert_eq!(
        verify::sign_standard(
            &secrets,
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY.as_bytes()
        ),
        VECTOR_SIGNATURE
    );
}

#[tokio::test]
async fn the_published_vector_passes_the_handlers_signature_and_window_checks() {
    let w = vector_world().await;
    let (status, answer, _) = w.send(vector_request(&w, VECTOR_SIGNATURE)).await;
    // The vector's payload is not a callback body: a 400 proves the signature and the
    // timestamp were accepted, since a body is only parsed after both.
    assert_error(status, &answer, (400, "validation_failed"));
    assert!(w.failure_reasons().is_empty(), "{:?}", w.failure_reasons());
    assert_eq!(w.spy.writes.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_published_vector_with_its_last_signature_character_changed_fails() {
    let w = vector_world().await;
    let altered = VECTOR_SIGNATURE.replace("1OE=", "1OA=");
    assert_ne!(altered, VECTOR_SIGNATURE);
    let (status, answer, _) = w.send(vector_request(&w, &altered)).await;
    assert_error(status, &answer, (401, "signature_mismatch"));
    assert_eq!(w.failure_reasons(), vec!["signature_mismatch"]);
}

#[tokio::test]
async fn a_v2_entry_alone_fails_even_with_the_right_mac() {
    let w = vector_world().await;
    let v2 = VECTOR_SIGNATURE.replacen("v1,", "v2,", 1);
    let (status, answer, _) = w.send(vector_request(&w, &v2)).await;
    assert_error(status, &answer, (401, "signature_mismatch"));
    assert_eq!(w.failure_reasons(), vec!["unsupported_version"]);
}

#[tokio::test]
async fn the_vector_signature_passes_among_other_versions_and_wrong_entries() {
    let w = vector_world().await;
    let header =
        format!("v2,Zm9v v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {VECTOR_SIGNATURE}");
    let (status, answer, _) = w.send(vector_request(&w, &header)).await;
    assert_error(status, &answer, (400, "validation_failed"));
}

#[tokio::test]
async fn a_well_signed_callback_is_recorded_and_answered_200() {
    let w = world().await;
    let (status, answer, response) = w.send(w.authorization()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "recorded");
    assert_eq!(
        response.headers()["x-content-type-options"],
        "nosniff",
        "security headers are on"
    );
    assert_eq!(w.delivered(), 1);
    assert!(w.audit_record(USER, VERIFIER, SCHEMA).await.is_some());
    assert_eq!(w.metric("CallbacksReceived"), 1.0);
}

#[tokio::test]
async fn old_and_new_secrets_are_both_accepted_while_configured_and_the_old_one_fails_once_removed()
{
    let w = world_with(Setup {
        secrets: vec![VECTOR_SECRET, SECOND_SECRET],
        ..Setup::default()
    })
    .await;
    let now = w.now_secs();
    for (i, secret) in [VECTOR_SECRET, SECOND_SECRET].iter().enumerate() {
        // Two events: two event ids (one event id is one event, however it is delivered).
        let body = body_for(
            USER,
            &format!("did:air:id:test:rot-{i}"),
            SCHEMA,
            &format!("evt_r{i}"),
        );
        let (status, answer, _) = w
            .send(w.signed_with(&[secret], &format!("msg_rot{i}"), now, &body))
            .await;
        assert_eq!(status, 200, "secret #{i}: {answer}");
    }
    // The platform drops the old secret; so do we. Once the cache has expired, the old secret
    // no longer verifies and the new one still does.
    w.set_secrets(&[SECOND_SECRET]).await;
    w.clock.advance(Duration::from_secs(301));
    let now = w.now_secs();
    let body = body_for(USER, "did:air:id:test:rot-late", SCHEMA, "evt_r2");
    let (status, answer, _) = w
        .send(w.signed_with(&[VECTOR_SECRET], "msg_rot_old", now, &body))
        .await;
    assert_error(status, &answer, (401, "signature_mismatch"));
    let (status, _, _) = w
        .send(w.signed_with(&[SECOND_SECRET], "msg_rot_new", now, &body))
        .await;
    assert_eq!(status, 200);
    assert_eq!(w.delivered(), 3);
}

#[tokio::test]
async fn forged_replayed_and_malformed_deliveries_get_their_documented_answers() {
    let w = world().await;
    let now = w.now_secs();
    let body = body_for(USER, VERIFIER, SCHEMA, "evt_bad");
    let sig = |ts: i64, b: &str| signature(&[VECTOR_SECRET], "msg_bad", ts, b.as_bytes());
    let headers = |ts: String, s: String| {
        vec![
            ("webhook-id", "msg_bad".to_owned()),
            ("webhook-timestamp", ts),
            ("webhook-signature", s),
        ]
    };
    let without = |name: &str| {
        headers(now.to_string(), sig(now, &body))
            .into_iter()
            .filter(|(k, _)| *k != name)
            .collect::<Vec<_>>()
    };
    let tampered_body = body.replace(VERIFIER, "did:air:id:test:mallory");
    let cases: Vec<(&str, shared::apigw::ApiGatewayRequest, (u16, &str), &str)> = vec![
        (
            "tampered body",
            w.request(&headers(now.to_string(), sig(now, &body)), tampered_body),
            (401, "signature_mismatch"),
            "signature_mismatch",
        ),
        (
            "tampered timestamp",
            w.request(
                &headers((now + 1).to_string(), sig(now, &body)),
                body.clone(),
            ),
            (401, "signature_mismatch"),
            "signature_mismatch",
        ),
        (
            "stale timestamp",
            w.request(
                &headers((now - 301).to_string(), sig(now - 301, &body)),
                body.clone(),
            ),
            (401, "timestamp_out_of_window"),
            "timestamp_out_of_window",
        ),
        (
            "future timestamp",
            w.request(
                &headers((now + 301).to_string(), sig(now + 301, &body)),
                body.clone(),
            ),
            (401, "timestamp_out_of_window"),
            "timestamp_out_of_window",
        ),
        (
            "missing webhook-id",
            w.request(&without("webhook-id"), body.clone()),
            (401, "unauthorized"),
            "missing_header",
        ),
        (
            "missing webhook-timestamp",
            w.request(&without("webhook-timestamp"), body.clone()),
            (401, "unauthorized"),
            "missing_header",
        ),
        (
            "missing webhook-signature",
            w.request(&without("webhook-signature"), body.clone()),
            (401, "unauthorized"),
            "missing_header",
        ),
        (
            "malformed timestamp",
            w.request(&headers("yesterday".into(), sig(now, &body)), body.clone()),
            (401, "unauthorized"),
            "malformed_header",
        ),
        (
            "wrong secret",
            w.signed_with(&[WRONG_SECRET], "msg_bad", now, &body),
            (401, "signature_mismatch"),
            "signature_mismatch",
        ),
        (
            "empty signature list",
            w.request(&headers(now.to_string(), " ".into()), body.clone()),
            (401, "signature_mismatch"),
            "unsupported_version",
        ),
    ];
    for (name, req, expected, reason) in cases {
        let before = w.failure_reasons().len();
        let (status, answer, _) = w.send(req).await;
        assert_eq!(
            (status, answer["errorType"].as_str().unwrap_or("")),
            expected,
            "{name}: {answer}"
        );
        assert_error(status, &answer, expected);
        let reasons = w.failure_reasons();
        assert_eq!(reasons.len(), before + 1, "{name} is counted");
        assert_eq!(reasons.last().map(String::as_str), Some(reason), "{name}");
    }
    assert_eq!(w.spy.writes.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(w.delivered(), 0, "nothing forged was routed");
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_before_its_signature_is_looked_at() {
    let w = world_with(Setup {
        env: vec![("MAX_CALLBACK_BODY_BYTES", "1024".into())],
        ..Setup::default()
    })
    .await;
    let big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(2000));
    let (status, answer, _) = w.send(w.signed(&big)).await;
    assert_error(status, &answer, (413, "payload_too_large"));
    // Not even a signature is needed to be refused for size.
    let (status, _, _) = w.send(w.request(&[], big)).await;
    assert_eq!(status, 413);
    assert!(w.failure_reasons().is_empty());
}

#[tokio::test]
async fn malformed_bodies_after_a_valid_signature_get_400_without_echoing_values() {
    let w = world().await;
    let good: Value = serde_json::from_str(&body_for(USER, VERIFIER, SCHEMA, "evt")).unwrap();
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("verifierDid");
    let mut wrong_type = good.clone();
    wrong_type["schemaId"] = serde_json::json!(42);
    // (An unusable optional member such as `authorizedAt: "last tuesday"` is dropped, not
    // refused: dedup.rs::unusable_optional_members_are_ignored_rather_than_refusing_the_consent.)
    let mut empty_user = good.clone();
    empty_user["userId"] = serde_json::json!("  ");
    let mut control = good.clone();
    control["verifierDid"] = serde_json::json!("did:x\u{0}y");
    for (name, body) in [
        ("not JSON", format!("{{\"userId\": \"{USER}\", ")),
        ("empty", String::new()),
        ("missing member", missing.to_string()),
        ("wrong type", wrong_type.to_string()),
        ("empty user", empty_user.to_string()),
        ("control character", control.to_string()),
        ("array", "[]".to_owned()),
    ] {
        let (status, answer, _) = w.send(w.signed(&body)).await;
        assert_error(status, &answer, (400, "validation_failed"));
        assert!(!answer.to_string().contains(USER), "{name}: {answer}");
    }
    assert!(
        w.failure_reasons().is_empty(),
        "a malformed body is not a forgery"
    );
    assert_eq!(w.delivered(), 0);
}

#[tokio::test]
async fn an_unknown_schema_is_acknowledged_audited_and_counted_but_not_routed() {
    let w = world().await;
    let body = body_for(USER, VERIFIER, "schema-nobody-configured", "evt_u");
    let (status, answer, _) = w.send(w.signed(&body)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(w.delivered(), 0);
    assert!(w.events.events().is_empty());
    assert_eq!(w.metric("CallbackUnknownSchema"), 1.0);
    let audit = w
        .audit_record(USER, VERIFIER, "schema-nobody-configured")
        .await
        .expect("audited");
    assert_eq!(audit.data["outcome"], "unknown_schema");
    // A retry of it is a duplicate, not a second unknown-schema event.
    let (status, answer, _) = w.send(w.signed(&body)).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(w.metric("CallbackUnknownSchema"), 1.0);
}

#[tokio::test]
async fn a_source_outside_the_allow_list_is_refused_with_403() {
    let w = world_with(Setup {
        env: vec![("CALLBACK_ALLOWED_CIDRS", "198.51.100.0/24".into())],
        ..Setup::default()
    })
    .await;
    let (status, answer, _) = w.send(w.authorization()).await;
    assert_error(status, &answer, (403, "forbidden"));
    assert_eq!(w.failure_reasons(), vec!["ip_not_allowed"]);
    let (status, _, _) = w.send(w.authorization().source_ip("198.51.100.20")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn with_no_secret_configured_every_delivery_is_refused() {
    let w = world_with(Setup {
        secrets: vec![],
        ..Setup::default()
    })
    .await;
    let (status, answer, _) = w.send(w.authorization()).await;
    assert_error(status, &answer, (401, "signature_mismatch"));
    assert_eq!(w.failure_reasons(), vec!["no_secret_configured"]);
}

#[tokio::test]
async fn a_malformed_secrets_document_answers_500_so_that_the_platform_retries() {
    let w = world().await;
    w.secrets
        .put_current(
            &w.secret_name,
            &shared::secrets::VersionId::random(),
            &String::from(r#"{"secrets": ["whsec_!!!"]}"#).into(),
        )
        .await
        .unwrap();
    w.deps.webhook_keys.invalidate();
    let (status, answer, _) = w.send(w.authorization()).await;
    assert_eq!(
        (status, answer["errorType"].as_str()),
        (500, Some("internal_error"))
    );
    assert_eq!(answer["errorMessage"], "internal error");
    assert_eq!(w.metric("CallbackStoreFailures"), 1.0, "a 5xx is counted");
}

#[tokio::test]
async fn other_methods_and_paths_are_refused() {
    let w = world().await;
    let req =
        shared::apigw::ApiGatewayRequest::new(lambda_http::http::Method::GET, "/v1/callbacks/cak");
    let (status, answer, _) = w.send(req).await;
    assert_error(status, &answer, (405, "method_not_allowed"));
    let req = shared::apigw::ApiGatewayRequest::new(
        lambda_http::http::Method::POST,
        "/v1/callbacks/other",
    );
    let (status, _, _) = w.send(req).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_hex_scheme_verifies_x_webhook_signature_over_timestamp_and_body() {
    let secret = "plain-text-hex-scheme-secret-0123";
    let w = world_with(Setup {
        secrets: vec![secret],
        env: vec![("WEBHOOK_SCHEME", "hex".into())],
        ..Setup::default()
    })
    .await;
    let set = SecretSet::parse(secret, Scheme::Hex).unwrap();
    let body = body_for(USER, VERIFIER, SCHEMA, "evt_hex");
    let ts = w.now_secs().to_string();
    let sig = verify::sign_hex(&set, &ts, body.as_bytes());
    let req = |sig: &str, ts: &str| {
        w.request(
            &[
                ("x-webhook-signature", sig.to_owned()),
                ("x-webhook-timestamp", ts.to_owned()),
            ],
            body.clone(),
        )
    };
    let (status, answer, _) = w.send(req(&sig, &ts)).await;
    assert_eq!(status, 200, "{answer}");
    // Without a delivery id header, the event id is the delivery id.
    let audit = w.audit_record(USER, VERIFIER, SCHEMA).await.unwrap();
    assert_eq!(audit.data["deliveryId"], "evt_hex");
    let later = (w.now_secs() + 1).to_string();
    let (status, _, _) = w.send(req(&sig, &later)).await;
    assert_eq!(status, 401);
    let (status, _, _) = w.send(req("sha256=zz", &ts)).await;
    assert_eq!(status, 401);
    // A Standard Webhooks delivery means nothing to a receiver configured for the hex scheme.
    let (status, _, _) = w
        .send(w.signed_with(&[VECTOR_SECRET], "msg_std", w.now_secs(), &body))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_webhook_id_with_a_space_in_it_is_refused_as_malformed() {
    let w = world().await;
    let body = body_for(USER, VERIFIER, SCHEMA, "evt_id");
    let (status, answer, _) = w
        .send(w.signed_with(&[VECTOR_SECRET], "msg with space", w.now_secs(), &body))
        .await;
    assert_error(status, &answer, (401, "unauthorized"));
    assert_eq!(
        SignatureFailure::MalformedHeader("webhook-id").reason(),
        w.failure_reasons()[0]
    );
}

fn sample_event() -> lambda_http::Request {
    let path = format!(
        "{}/../../events/callback-cak.json",
        env!("CARGO_MANIFEST_DIR")
    );
    lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_sample_event_is_accepted_at_its_signing_time_and_refused_as_stale_today() {
    let raw: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../../events/callback-cak.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let signed_at: i64 = raw["headers"]["webhook-timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // The event is signed with the published Standard Webhooks example secret.
    let w = world_with(Setup {
        now: Some(Timestamp::from_secs(signed_at + 5)),
        ..Setup::default()
    })
    .await;
    let r = callback_receiver::handle(sample_event(), &w.deps).await;
    assert_eq!(r.status(), 200);
    assert_eq!(w.delivered(), 1);
    let today = world().await;
    let r = callback_receiver::handle(sample_event(), &today.deps).await;
    assert_eq!(r.status(), 401);
    assert_eq!(today.failure_reasons(), vec!["timestamp_out_of_window"]);
}

#[tokio::test]
async fn the_failure_of_the_signature_check_is_a_value_not_a_panic_for_any_header_text() {
    let w = world().await;
    let body = body_for(USER, VERIFIER, SCHEMA, "evt_fuzz");
    for sig in [
        "v1,",
        "v1",
        ",",
        "v1,====",
        "v1,\u{7f}",
        &"v1,A ".repeat(2000),
        "v1,%%%%",
        "v1,AAAA,BBBB",
    ] {
        let (status, _, _) = w
            .send(w.request(
                &[
                    ("webhook-id", "msg_fuzz".to_owned()),
                    ("webhook-timestamp", w.now_secs().to_string()),
                    ("webhook-signature", sig.to_owned()),
                ],
                body.clone(),
            ))
            .await;
        assert_eq!(status, 401, "{sig:.40}");
    }
}

/// The pinned venv's Python (`make venv`), for the independent signer.
fn python() -> std::path::PathBuf {
    let py = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run `make venv`, which installs the pinned test tools",
        py.display()
    );
    py
}

/// A `v1a` signature of `{id}.{timestamp}.{body}` made by Python's `cryptography` package with
/// the ed25519 key of `seed_hex`: `(v1a entry, whpk_ public key)`.
fn python_v1a(seed_hex: &str, id: &str, timestamp: i64, body: &str) -> (String, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(python())
        .arg(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/clients/sign_webhook_v1a.py"),
        )
        .args(["--seed-hex", seed_hex, "--id", id])
        .args(["--timestamp", &timestamp.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        printed["signature"].as_str().unwrap().to_owned(),
        printed["publicKey"].as_str().unwrap().to_owned(),
    )
}

/// A made-up ed25519 seed for the independent signer (protects nothing).
const PYTHON_SEED: &str = "5eed5eed5eed5eed00112233445566778899aabbccddeeff0123456789abcdef";

async fn world_with_public_keys(secrets: Vec<&'static str>, public_keys: Vec<String>) -> World {
    world_with(Setup {
        secrets,
        public_keys,
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn a_v1a_callback_signed_by_pythons_cryptography_package_is_recorded_by_a_receiver_holding_only_its_whpk()
 {
    // The signer needs the time first, and the receiver the key: ask for both with a timestamp
    // close to now, then build the world whose clock is at it.
    let now = Timestamp::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .try_into()
            .unwrap(),
    );
    let body = body_for(USER, VERIFIER, SCHEMA, "evt_py");
    let (signature, whpk) = python_v1a(PYTHON_SEED, "msg_py1", now.as_secs(), &body);
    let w = world_with(Setup {
        secrets: vec![],
        public_keys: vec![whpk],
        now: Some(now),
        ..Setup::default()
    })
    .await;
    let (status, answer, _) = w
        .send(w.with_signature(&signature, "msg_py1", now.as_secs(), &body))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "recorded");
    assert_eq!(w.delivered(), 1);
    let audit = w.audit_record(USER, VERIFIER, SCHEMA).await.unwrap();
    assert_eq!(audit.data["deliveryId"], "msg_py1");
    // The same signature over another body, id or time is refused.
    let other = body_for(USER, "did:air:id:test:mallory", SCHEMA, "evt_py");
    let (status, answer, _) = w
        .send(w.with_signature(&signature, "msg_py1", now.as_secs(), &other))
        .await;
    assert_error(status, &answer, (401, "signature_mismatch"));
    let (status, _, _) = w
        .send(w.with_signature(&signature, "msg_py2", now.as_secs(), &body))
        .await;
    assert_eq!(status, 401);
    // Our simulator's signer, given the same seed, makes the same (deterministic) signature.
    let seed: [u8; 32] = hex::decode(PYTHON_SEED).unwrap().try_into().unwrap();
    let ours = platform_sim::WebhookSigningKey::from_seed(&seed);
    assert_eq!(
        ours.sign("msg_py1", now.as_secs(), body.as_bytes()),
        signature
    );
}

#[tokio::test]
async fn old_and_new_public_keys_are_both_accepted_while_configured_and_the_old_one_fails_once_removed()
 {
    let (old_key, old_public) = platform_sim::generate_webhook_signing_key(1, 0);
    let (new_key, new_public) = platform_sim::generate_webhook_signing_key(1, 1);
    let w = world_with_public_keys(vec![], vec![old_public, new_public.clone()]).await;
    let now = w.now_secs();
    for (i, key) in [&old_key, &new_key].iter().enumerate() {
        let body = body_for(
            USER,
            &format!("did:air:id:test:pk-rot-{i}"),
            SCHEMA,
            &format!("evt_pk{i}"),
        );
        let id = format!("msg_pk{i}");
        let sig = v1a_signature(&[key], &id, now, body.as_bytes());
        let (status, answer, _) = w.send(w.with_signature(&sig, &id, now, &body)).await;
        assert_eq!(status, 200, "key #{i}: {answer}");
    }
    w.set_keys(&[], &[new_public]).await;
    w.clock.advance(Duration::from_secs(301));
    let now = w.now_secs();
    let body = body_for(USER, "did:air:id:test:pk-rot-late", SCHEMA, "evt_pk2");
    let old = v1a_signature(&[&old_key], "msg_pk_old", now, body.as_bytes());
    let (status, answer, _) = w
        .send(w.with_signature(&old, "msg_pk_old", now, &body))
        .await;
    assert_error(status, &answer, (401, "signature_mismatch"));
    // During a rotation the platform lists both signatures: the new one passes alone.
    let both = v1a_signature(&[&old_key, &new_key], "msg_pk_new", now, body.as_bytes());
    let (status, _, _) = w
        .send(w.with_signature(&both, "msg_pk_new", now, &body))
        .await;
    assert_eq!(status, 200);
    assert_eq!(w.delivered(), 3);
}

#[tokio::test]
async fn a_header_listing_v1a_and_v1_is_accepted_when_only_one_of_them_verifies() {
    let (key, public) = platform_sim::generate_webhook_signing_key(2, 0);
    let (stranger, _) = platform_sim::generate_webhook_signing_key(2, 9);
    let w = world_with_public_keys(vec![VECTOR_SECRET], vec![public]).await;
    let now = w.now_secs();
    let sign = |i: usize, body: &str| {
        let id = format!("msg_mix{i}");
        let good_v1 = signature(&[VECTOR_SECRET], &id, now, body.as_bytes());
        let bad_v1 = signature(&[WRONG_SECRET], &id, now, body.as_bytes());
        let good_v1a = v1a_signature(&[&key], &id, now, body.as_bytes());
        let bad_v1a = v1a_signature(&[&stranger], &id, now, body.as_bytes());
        (id, good_v1, bad_v1, good_v1a, bad_v1a)
    };
    for i in 0..2 {
        let body = body_for(
            USER,
            &format!("did:air:id:test:mix-{i}"),
            SCHEMA,
            &format!("evt_mix{i}"),
        );
        let (id, good_v1, bad_v1, good_v1a, bad_v1a) = sign(i, &body);
        let header = if i == 0 {
            format!("{good_v1a} {bad_v1}")
        } else {
            format!("{bad_v1a} {good_v1}")
        };
        let (status, answer, _) = w.send(w.with_signature(&header, &id, now, &body)).await;
        assert_eq!(status, 200, "{header}: {answer}");
        // Neither verifying: refused.
        let (status, answer, _) = w
            .send(w.with_signature(&format!("{bad_v1a} {bad_v1}"), &id, now, &body))
            .await;
        assert_error(status, &answer, (401, "signature_mismatch"));
    }
    assert_eq!(w.delivered(), 2);
}

#[tokio::test]
async fn a_header_of_only_an_unknown_version_is_refused_as_unsupported_with_public_keys_configured()
{
    let (key, public) = platform_sim::generate_webhook_signing_key(3, 0);
    let w = world_with_public_keys(vec![VECTOR_SECRET], vec![public]).await;
    let now = w.now_secs();
    let body = body_for(USER, VERIFIER, SCHEMA, "evt_v2");
    let valid = v1a_signature(&[&key], "msg_v2", now, body.as_bytes());
    for header in [
        valid.replacen("v1a,", "v2,", 1),
        valid.replacen("v1a,", "v2a,", 1),
    ] {
        let (status, answer, _) = w
            .send(w.with_signature(&header, "msg_v2", now, &body))
            .await;
        assert_error(status, &answer, (401, "signature_mismatch"));
    }
    assert_eq!(
        w.failure_reasons(),
        vec!["unsupported_version", "unsupported_version"]
    );
    assert_eq!(w.delivered(), 0);
}

#[tokio::test]
async fn a_v1a_signature_from_a_key_that_is_not_configured_is_refused() {
    let (_, public) = platform_sim::generate_webhook_signing_key(4, 0);
    let (stranger, _) = platform_sim::generate_webhook_signing_key(4, 1);
    let w = world_with_public_keys(vec![VECTOR_SECRET], vec![public]).await;
    let now = w.now_secs();
    let body = body_for(USER, VERIFIER, SCHEMA, "evt_stranger");
    let sig = v1a_signature(&[&stranger], "msg_stranger", now, body.as_bytes());
    let (status, answer, _) = w
        .send(w.with_signature(&sig, "msg_stranger", now, &body))
        .await;
    assert_error(status, &answer, (401, "signature_mismatch"));
    assert_eq!(w.failure_reasons(), vec!["signature_mismatch"]);
    assert_eq!(w.delivered(), 0);
}

#[tokio::test]
async fn a_v1a_signed_delivery_with_a_tampered_body_is_refused() {
    let (key, public) = platform_sim::generate_webhook_signing_key(5, 0);
    let w = world_with_public_keys(vec![], vec![public]).await;
    let now = w.now_secs();
    let body = body_for(USER, VERIFIER, SCHEMA, "evt_tamper");
    let sig = v1a_signature(&[&key], "msg_tamper", now, body.as_bytes());
    let tampered = body.replace(VERIFIER, "did:air:id:test:mallory");
    let (status, answer, _) = w
        .send(w.with_signature(&sig, "msg_tamper", now, &tampered))
        .await;
    assert_error(status, &answer, (401, "signature_mismatch"));
    // A tampered timestamp too.
    let (status, _, _) = w
        .send(w.with_signature(&sig, "msg_tamper", now + 1, &body))
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        w.failure_reasons(),
        vec!["signature_mismatch", "signature_mismatch"]
    );
    let (status, _, _) = w
        .send(w.with_signature(&sig, "msg_tamper", now, &body))
        .await;
    assert_eq!(status, 200, "the untouched delivery passes");
}

#[tokio::test]
async fn a_whsk_signing_key_in_the_webhook_secrets_secret_answers_500_without_being_echoed() {
    let (whsk, public) = platform_sim::generate_webhook_signing_key(6, 0);
    let w = world_with_public_keys(vec![], vec![public.clone()]).await;
    // An operator pastes the platform's signing key instead of its public key.
    w.secrets
        .put_current(
            &w.secret_name,
            &shared::secrets::VersionId::random(),
            &keys_document(&[], &[public, whsk.clone()]).into(),
        )
        .await
        .unwrap();
    w.deps.webhook_keys.invalidate();
    let err = w.deps.webhook_keys.current().await.unwrap_err().to_string();
    assert!(
        err.contains("public key #1 is a whsk_ signing key"),
        "{err}"
    );
    assert!(!err.contains(&whsk[5..]), "{err}");
    assert!(!err.contains(&whsk[5..17]), "{err}");
    let (status, answer, _) = w.send(w.authorization()).await;
    assert_eq!(
        (status, answer["errorType"].as_str()),
        (500, Some("internal_error"))
    );
    assert!(!answer.to_string().contains(&whsk[5..17]), "{answer}");
    assert_eq!(w.metric("CallbackStoreFailures"), 1.0);
}
