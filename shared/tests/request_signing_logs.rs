//! Every refusal of a signed request is logged with its reason, key id and source address and
//! counted, and no secret reaches the logs. In its own test binary: a log capture is per thread,
//! and tests running beside it in the same process can make `tracing` skip the captured callsites.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "it/request_signing/signing_world/mod.rs"]
mod signing_world;

use shared::auth::{Permission, sign};
use shared::clock::Clock;
use shared::error::ErrorType;
use shared::telemetry::LogCapture;
use signing_world::*;

async fn each_bad_request_gets_its_documented_answer() {
    let w = world().await;
    let now = now_secs(&w);
    let old = (w.clock.now().as_secs() - 301).to_string();
    let future = (w.clock.now().as_secs() + 301).to_string();

    let mut bad_sig = signed(&w.live, &w.live.secret, now.clone());
    bad_sig.signature = sign("sk_wrong", "POST", bad_sig.path, &now, bad_sig.body);
    let mut tampered = signed(&w.live, &w.live.secret, now.clone());
    tampered.body = br#"{"credentialId":"kyc-gold"}"#;
    let mut unknown = signed(&w.live, &w.live.secret, now.clone());
    unknown.key_id = "pk_doesnotexist0000000".into();
    let mut wrong_ip = signed(&w.office_only, &w.office_only.secret, now.clone());
    wrong_ip.ip = Some("198.51.100.7");
    // A request accepted once, then sent again as is (from another address).
    let mut replayed = signed(&w.live, &w.live.secret, now.clone());
    replayed.ip = Some("203.0.113.9");
    w.verifier
        .verify(&replayed.parts(), Permission::CredentialsWrite)
        .await
        .expect("the first use of the signature is accepted");

    let cases: Vec<(&str, Req, Permission, Refusal)> = vec![
        (
            "bad signature",
            bad_sig,
            Permission::CredentialsWrite,
            (ErrorType::SignatureMismatch, 401, "signature_mismatch"),
        ),
        (
            "tampered body",
            tampered,
            Permission::CredentialsWrite,
            (ErrorType::SignatureMismatch, 401, "signature_mismatch"),
        ),
        (
            "signed with another key's secret",
            signed(&w.live, &w.read_only.secret, now.clone()),
            Permission::CredentialsWrite,
            (ErrorType::SignatureMismatch, 401, "signature_mismatch"),
        ),
        (
            "unknown key",
            unknown,
            Permission::CredentialsWrite,
            (ErrorType::Unauthorized, 401, "unknown_key"),
        ),
        (
            "revoked key",
            signed(&w.revoked, &w.revoked.secret, now.clone()),
            Permission::CredentialsWrite,
            (ErrorType::Unauthorized, 401, "revoked_key"),
        ),
        (
            "old timestamp",
            signed(&w.live, &w.live.secret, old),
            Permission::CredentialsWrite,
            (
                ErrorType::TimestampOutOfWindow,
                401,
                "timestamp_out_of_window",
            ),
        ),
        (
            "future timestamp",
            signed(&w.live, &w.live.secret, future),
            Permission::CredentialsWrite,
            (
                ErrorType::TimestampOutOfWindow,
                401,
                "timestamp_out_of_window",
            ),
        ),
        (
            "malformed timestamp",
            signed(&w.live, &w.live.secret, "soon".into()),
            Permission::CredentialsWrite,
            (ErrorType::Unauthorized, 401, "malformed_timestamp"),
        ),
        (
            "read-only key on a write",
            signed(&w.read_only, &w.read_only.secret, now.clone()),
            Permission::CredentialsWrite,
            (ErrorType::Forbidden, 403, "missing_permission"),
        ),
        (
            "missing permission",
            signed(&w.live, &w.live.secret, now.clone()),
            Permission::TokensMint,
            (ErrorType::Forbidden, 403, "missing_permission"),
        ),
        (
            "address not allowed",
            wrong_ip,
            Permission::CredentialsWrite,
            (ErrorType::Forbidden, 403, "ip_not_allowed"),
        ),
        (
            "replayed signature",
            replayed,
            Permission::CredentialsWrite,
            (ErrorType::ReplayedRequest, 401, "replayed_request"),
        ),
    ];
    let count = cases.len();
    let (logs, dispatch) = LogCapture::new("issue");
    let _guard = tracing::dispatcher::set_default(&dispatch);
    for (what, req, permission, expected) in cases {
        assert_eq!(refused(&w, &req, permission).await, expected, "{what}");
    }
    // Each failure was counted by reason and logged with the key id, never a secret.
    assert_eq!(w.metrics.total("AuthFailures"), count as f64);
    let lines = logs.lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["message"] == "authentication failed")
            .count(),
        count
    );
    assert!(
        lines
            .iter()
            .any(|l| l["reason"] == "ip_not_allowed" && l["source_ip"] == "198.51.100.7")
    );
    assert!(lines.iter().any(|l| l["key_id"] == w.revoked.id.as_str()));
    let replay_lines: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["reason"] == "replayed_request")
        .collect();
    assert_eq!(replay_lines.len(), 1, "{lines:?}");
    let replay = replay_lines[0];
    assert_eq!(replay["level"], "WARN");
    assert_eq!(replay["message"], "authentication failed");
    assert_eq!(replay["key_id"], w.live.id.as_str());
    assert_eq!(replay["source_ip"], "203.0.113.9");
    let replay_counts: f64 = w
        .metrics
        .documents()
        .iter()
        .filter(|d| d["reason"] == "replayed_request")
        .filter_map(|d| d["AuthFailures"].as_f64())
        .sum();
    assert_eq!(replay_counts, 1.0, "{:?}", w.metrics.documents());
    let text = logs.text();
    for key in [&w.live, &w.read_only, &w.revoked, &w.office_only] {
        assert!(!text.contains(&key.secret), "a secret reached the logs");
    }
}

async fn every_attempt_is_one_audit_line_with_its_outcome_key_route_and_source_and_no_secret() {
    let w = world().await;
    let good = signed(&w.live, &w.live.secret, now_secs(&w));
    let bad = signed(&w.live, "sk_wrong", now_secs(&w));
    let (logs, dispatch) = LogCapture::new("issue");
    let _guard = tracing::dispatcher::set_default(&dispatch);
    w.verifier
        .verify(&good.parts(), Permission::CredentialsWrite)
        .await
        .unwrap();
    refused(&w, &bad, Permission::CredentialsWrite).await;
    let audit: Vec<serde_json::Value> = logs
        .lines()
        .into_iter()
        .filter(|l| l["audit"] == "authentication")
        .collect();
    assert_eq!(audit.len(), 2, "{audit:?}");
    for (line, outcome) in audit.iter().zip(["accepted", "refused"]) {
        assert_eq!(line["outcome"], outcome, "{line}");
        assert_eq!(line["key_id"], w.live.id.as_str());
        assert_eq!(
            line["route"], "POST /v1/credentials",
            "no query string: {line}"
        );
        assert_eq!(line["source_ip"], "198.51.100.7");
    }
    assert_eq!(audit[0]["level"], "INFO");
    assert_eq!(audit[1]["reason"], "signature_mismatch");
    let text = logs.text();
    assert!(!text.contains(&w.live.secret), "a secret reached the logs");
    assert!(
        !text.contains(&good.signature),
        "a signature reached the logs"
    );
}

/// One test in this binary: two log captures in one process at once can make `tracing` skip
/// the captured callsites, so the scenarios run one after the other.
#[tokio::test]
async fn each_bad_request_gets_its_documented_answer_and_every_attempt_is_one_audit_line() {
    each_bad_request_gets_its_documented_answer().await;
    every_attempt_is_one_audit_line_with_its_outcome_key_route_and_source_and_no_secret().await;
}
