#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What the receiver logs: every refusal with its reason and source, every consent event as an
//! audit line — and never a secret or the raw user id. In its own test binary: a log capture is
//! per thread, and tests running beside it in the same process could make `tracing` skip the
//! captured callsites.

#[path = "it/common/mod.rs"]
mod common;

use std::sync::atomic::Ordering;

use common::*;
use shared::telemetry::LogCapture;

#[tokio::test]
async fn refusals_and_consent_events_are_logged_with_their_facts_and_never_a_secret_or_the_user_id()
{
    let w = world().await;
    let (logs, dispatch) = LogCapture::new("callback-receiver");
    let _g = tracing::dispatcher::set_default(&dispatch);
    let now = w.now_secs();
    let body = body_for(USER, VERIFIER, SCHEMA, "evt_logs");
    let answers = [
        w.send(w.signed_with(&[VECTOR_SECRET], "msg_logs", now, &body))
            .await,
        w.send(w.signed_with(&[VECTOR_SECRET], "msg_logs", now, &body))
            .await,
        w.send(w.signed_with(&[WRONG_SECRET], "msg_wrong", now, &body))
            .await,
        w.send(w.signed_with(&[VECTOR_SECRET], "msg_stale", now - 1000, &body))
            .await,
        w.send(w.request(&[], body.clone())).await,
        w.send(w.signed(&format!("{{\"userId\": \"{USER}\"}}")))
            .await,
        w.send(w.signed(&format!(
            "{{\"userId\": \"{USER}\", \"pad\": \"{}\"}}",
            "x".repeat(70_000)
        )))
        .await,
    ];
    w.spy.down.store(true, Ordering::SeqCst);
    let other = body_for(USER, "did:air:id:test:verifier-9", SCHEMA, "evt_down");
    let down = w.send(w.signed(&other)).await;
    // A receiver deployed before its webhook secrets secret exists.
    let dir = tempfile::tempdir().unwrap();
    let clock: shared::clock::SharedClock = std::sync::Arc::new(shared::clock::SystemClock);
    let missing = shared::secrets::SecretName::new("partner/webhook-secrets-not-created").unwrap();
    let keys = callback_receiver::WebhookKeys::new(
        shared::secrets::file::FileSecrets::open(dir.path(), clock.clone()).unwrap(),
        missing,
        callback_receiver::Scheme::Standard,
        std::time::Duration::from_secs(60),
        clock,
    );
    assert_eq!(keys.current().await.unwrap().len(), 0);
    drop(_g);
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).chain([down.0]).collect();
    assert_eq!(statuses, vec![200, 200, 401, 401, 401, 400, 413, 500]);

    let lines = logs.lines();
    let audit: Vec<_> = lines
        .iter()
        .filter(|l| l["audit"] == "cak_authorization")
        .collect();
    assert_eq!(audit.len(), 2, "the event and its duplicate");
    assert_eq!(audit[0]["outcome"], "routed");
    assert_eq!(audit[1]["outcome"], "duplicate");
    assert_eq!(audit[0]["delivery_id"], "msg_logs");
    assert_eq!(audit[0]["verifier_did"], VERIFIER);
    assert_eq!(audit[0]["schema_id"], SCHEMA);
    assert_eq!(
        audit[0]["user_id_hash"],
        w.protector().await.hash(USER).as_str()
    );
    let refusals: Vec<&str> = lines
        .iter()
        .filter(|l| l["message"] == "callback refused")
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        refusals,
        vec![
            "signature_mismatch",
            "timestamp_out_of_window",
            "missing_header"
        ]
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["message"] == "callback refused")
            .all(|l| l["source_ip"] == "203.0.113.10")
    );

    let missing: Vec<_> = lines
        .iter()
        .filter(|l| {
            l["message"] == "the webhook secrets secret does not exist: every callback is refused"
        })
        .collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0]["secret"], "partner/webhook-secrets-not-created");

    let text = logs.text();
    assert!(text.contains("cannot record the callback"));
    for secret in [VECTOR_SECRET, WRONG_SECRET] {
        assert!(!text.contains(secret), "a secret in the logs");
        assert!(!text.contains(secret.trim_start_matches("whsec_")));
    }
    assert!(!text.contains(USER), "the raw user id in the logs");
    for (_, answer, _) in answers.iter().chain([&down]) {
        assert!(!answer.to_string().contains(USER));
        assert!(!answer.to_string().contains("MfKQ9r8"));
    }
}
