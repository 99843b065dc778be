//! The issue handler in process against the real platform simulator: CAK round trips, replays,
//! concurrency, crash safety, onDuplicate, upstream faults, authentication, bad input, and no
//! plaintext PII in the store or the logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chaos;
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{body, world};
use lambda_http::http::Method;
use serde_json::{Value, json};
use shared::idempotency::{Idempotency, IdempotencyKey};
use shared::issuance::{Issuance, IssuanceId};
use shared::platform::{Deadline, IssueOnBehalf, OnDuplicate, VcState};

async fn record(w: &common::World, id: &str) -> Issuance {
    let key = IssuanceId::parse(id).unwrap().record_key().unwrap();
    serde_json::from_value(w.deps.store.get(&key).await.unwrap().unwrap().data).unwrap()
}

#[tokio::test]
async fn sensitive_data_is_encrypted_to_the_cak_on_both_curves_and_decrypts_at_the_platform() {
    let w = world(&[]).await;
    for (program, n) in [("kyc-document-r1", "1"), ("kyc-document-k1", "2")] {
        let mut b = body(program, &format!("holder{n}@example.com"));
        b["sensitiveData"] = json!({"fullName": "Ada Lovelace", "birthDate": "1815-12-10"});
        let (status, answer, _) = w
            .send(w.post(&w.writer, Some(&format!("cak-{n}")), &b))
            .await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["status"], "WAIT_ONCHAIN");
        let issuance = record(&w, answer["issuanceId"].as_str().unwrap()).await;
        assert_eq!(issuance.core_claim_hash(), answer["coreClaimHash"].as_str());
        let storage = issuance.storage_id().expect("the ciphertext was uploaded");
        let (code, plaintext) = w
            .sim_get(&format!("/sim/ciphertexts/{storage}/plaintext"))
            .await;
        assert_eq!(code, 200);
        let back: Value = serde_json::from_slice(&plaintext).unwrap();
        assert_eq!(back, b["sensitiveData"], "{program}");
    }
}

#[tokio::test]
async fn the_same_key_and_payload_replays_and_reaches_the_platform_once() {
    let w = world(&[]).await;
    let b = body("kyc-basic", "replay@example.com");
    let (s1, a1, _) = w.send(w.post(&w.writer, Some("replay-1"), &b)).await;
    let (s2, a2, r2) = w.send(w.post(&w.writer, Some("replay-1"), &b)).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(a1, a2);
    assert_eq!(r2.headers()["idempotent-replayed"], "true");
    assert_eq!(w.issue_calls().len(), 1);
    let (s3, a3, _) = w
        .send(w.post(
            &w.writer,
            Some("replay-1"),
            &body("kyc-basic", "other@example.com"),
        ))
        .await;
    assert_eq!(
        (s3, a3["errorType"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_identical_requests_cause_exactly_one_issue_on_behalf() {
    let w = Arc::new(world(&[]).await);
    let b = body("kyc-basic", "crowd@example.com");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let w = Arc::clone(&w);
        let req = w.post(&w.writer, Some("crowd"), &b);
        tasks.push(tokio::spawn(async move { w.send(req).await }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let (status, answer, _) = t.await.unwrap();
        match status {
            202 => {
                ids.insert(answer["issuanceId"].as_str().unwrap().to_owned());
            }
            409 => assert_eq!(answer["errorType"], "request_in_progress"),
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert_eq!(ids.len(), 1, "every success names the same issuance");
    assert_eq!(
        w.issue_calls().len(),
        1,
        "one issue-on-behalf at the platform"
    );
}

#[tokio::test]
async fn a_retry_after_a_crash_finishes_the_issuance_exactly_once() {
    let w = world(&[]).await;
    let b = body("kyc-basic", "crash@example.com");
    // A first attempt writes its record and calls the platform, which never answers it...
    w.fault(json!({"route": "/credentials/issue-on-behalf", "timeout": true}))
        .await;
    let (status, _, _) = w.send(w.post(&w.writer, Some("crash-1"), &b)).await;
    assert_eq!(status, 502);
    w.clear_faults().await;
    // ...but the platform did issue the credential before the answer was lost...
    let first = w
        .deps
        .platform
        .issue_on_behalf(
            "crash@example.com",
            &IssueOnBehalf {
                issuer_did: "did:air:id:test:partner-local".into(),
                credential_id: "kyc-basic".into(),
                credential_subject: b["credentialSubject"].clone(),
                on_duplicate: OnDuplicate::Revoke,
            },
            Deadline::after(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    // ...and the process died holding the key (a lease that has since run out).
    let idem = Idempotency::new(
        w.deps.store.as_ref(),
        &w.deps.clock,
        Duration::from_secs(3600),
    );
    let protector = w.deps.data_keys.protector().await.unwrap();
    let hash = shared::idempotency::payload_digest(&protector, "POST", "/v1/credentials", &b);
    let expired = w.deps.clock.now().minus(Duration::from_secs(1));
    idem.begin(
        w.writer.id.as_str(),
        &IdempotencyKey::parse("crash-1").unwrap(),
        &hash,
        expired,
    )
    .await
    .unwrap();
    let calls_before = w.issue_calls().len();

    // The client retries with the same key: the retry takes over and adopts what exists.
    let (status, answer, _) = w.send(w.post(&w.writer, Some("crash-1"), &b)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(w.issue_calls().len(), calls_before + 1);
    assert_eq!(
        answer["coreClaimHash"],
        first.core_claim_hash.as_str(),
        "the existing credential is adopted"
    );
    let issuance = record(&w, answer["issuanceId"].as_str().unwrap()).await;
    assert_eq!(issuance.on_duplicate, OnDuplicate::Ignore);
    let state = w
        .deps
        .platform
        .status(
            &first.core_claim_hash,
            Deadline::after(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(state.vc_status, VcState::WaitOnchain, "nothing was revoked");
    // And the issuance is finished: a further retry replays it.
    let (status, again, r) = w.send(w.post(&w.writer, Some("crash-1"), &b)).await;
    assert_eq!((status, &again), (202, &answer));
    assert_eq!(r.headers()["idempotent-replayed"], "true");
}

#[tokio::test]
async fn the_subject_is_kept_as_a_keyed_fingerprint_and_a_plain_one_from_before_still_counts_as_unchanged()
 {
    use sha2::Digest as _;
    use shared::store::{NewRecord, Write};
    let w = world(&[]).await;
    let b = body("kyc-basic", "legacy@example.com");
    let (_, a1, _) = w.send(w.post(&w.writer, Some("l-1"), &b)).await;
    let first = record(&w, a1["issuanceId"].as_str().unwrap()).await;
    let plain = hex::encode(sha2::Sha256::digest(
        b["credentialSubject"].to_string().as_bytes(),
    ));
    assert_ne!(
        first.subject_hash.as_str(),
        plain,
        "a plain hash can be confirmed by a guess"
    );
    let protector = w.deps.data_keys.protector().await.unwrap();
    let lock_key = shared::issuance::subject_key(
        &protector.hash("legacy@example.com"),
        &program_id("kyc-basic"),
    )
    .unwrap();
    let lock = w.deps.store.get(&lock_key).await.unwrap().unwrap();
    assert_eq!(lock.data["subjectHash"], first.subject_hash.as_str());

    // A lock written before fingerprints were keyed holds the plain hash.
    let mut older = lock.data.clone();
    older["subjectHash"] = json!(plain);
    w.deps
        .store
        .write(Write::Replace {
            record: NewRecord::new(lock_key, older),
            expected: lock.version,
        })
        .await
        .unwrap();
    let (status, a2, _) = w.send(w.post(&w.writer, Some("l-2"), &b)).await;
    assert_eq!(status, 202, "{a2}");
    assert_eq!(
        a1["coreClaimHash"], a2["coreClaimHash"],
        "same data: one credential"
    );
    assert_eq!(
        record(&w, a2["issuanceId"].as_str().unwrap())
            .await
            .on_duplicate,
        OnDuplicate::Ignore
    );
}

#[tokio::test]
async fn unchanged_data_keeps_the_credential_and_changed_data_replaces_it() {
    let w = world(&[]).await;
    let b = body("kyc-basic", "tiers@example.com");
    let (_, a1, _) = w.send(w.post(&w.writer, Some("t-1"), &b)).await;
    let (s2, a2, _) = w.send(w.post(&w.writer, Some("t-2"), &b)).await;
    assert_eq!(s2, 202);
    assert_eq!(
        a1["coreClaimHash"], a2["coreClaimHash"],
        "same data: one credential"
    );
    assert_eq!(
        record(&w, a2["issuanceId"].as_str().unwrap())
            .await
            .on_duplicate,
        OnDuplicate::Ignore
    );

    let mut upgraded = b.clone();
    upgraded["credentialSubject"]["tier"] = json!("premium");
    let (s3, a3, _) = w.send(w.post(&w.writer, Some("t-3"), &upgraded)).await;
    assert_eq!(s3, 202);
    assert_ne!(
        a3["coreClaimHash"], a1["coreClaimHash"],
        "changed data: a new credential"
    );
    assert_eq!(
        record(&w, a3["issuanceId"].as_str().unwrap())
            .await
            .on_duplicate,
        OnDuplicate::Revoke
    );
    let old = a1["coreClaimHash"].as_str().unwrap();
    let state = w
        .deps
        .platform
        .status(old, Deadline::after(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        state.vc_status,
        VcState::Revoked,
        "the old credential was revoked"
    );
    assert_eq!(w.issue_calls().len(), 3);
}

#[tokio::test]
async fn two_server_errors_then_success_still_issue() {
    let w = world(&[]).await;
    w.fault(json!({"route": "/credentials/issue-on-behalf", "status": 503, "failNext": 2}))
        .await;
    let (status, answer, _) = w
        .send(w.post(
            &w.writer,
            Some("flaky"),
            &body("kyc-basic", "f@example.com"),
        ))
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(w.issue_calls().len(), 3);
}

#[tokio::test]
async fn a_platform_400_is_not_retried_and_the_key_can_be_retried() {
    let w = world(&[]).await;
    w.fault(json!({"route": "/credentials/issue-on-behalf", "status": 400, "failNext": 1}))
        .await;
    let b = body("kyc-basic", "g@example.com");
    let (status, answer, _) = w.send(w.post(&w.writer, Some("bad-up"), &b)).await;
    assert_eq!(
        (status, answer["errorType"].as_str()),
        (502, Some("upstream_unavailable"))
    );
    assert_eq!(w.issue_calls().len(), 1, "no retry on a 4xx");
    assert!(
        !answer.to_string().contains("injected"),
        "no upstream detail in a 5xx body"
    );
    // The failed attempt released its key: the client may retry with it.
    let (status, _, _) = w.send(w.post(&w.writer, Some("bad-up"), &b)).await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a_platform_that_keeps_timing_out_ends_in_upstream_unavailable() {
    let w = world(&[]).await;
    w.fault(json!({"route": "/credentials/issue-on-behalf", "timeout": true}))
        .await;
    let (status, answer, _) = w
        .send(w.post(&w.writer, Some("slow"), &body("kyc-basic", "h@example.com")))
        .await;
    assert_eq!(
        (status, answer["errorType"].as_str()),
        (502, Some("upstream_unavailable"))
    );
    assert!(w.issue_calls().len() >= 2, "timeouts are retried");
}

#[tokio::test]
async fn a_long_retry_after_is_passed_on_as_rate_limited() {
    let w = world(&[]).await;
    w.fault(json!({"route": "/credentials/issue-on-behalf", "status": 429, "retryAfterSecs": 120}))
        .await;
    let (status, answer, r) = w
        .send(w.post(&w.writer, Some("busy"), &body("kyc-basic", "i@example.com")))
        .await;
    assert_eq!(
        (status, answer["errorType"].as_str()),
        (429, Some("rate_limited"))
    );
    assert!(r.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn authentication_failures_get_their_documented_answers() {
    let w = world(&[]).await;
    let b = body("kyc-basic", "j@example.com");
    let mut forged = w.writer.clone();
    forged.secret = "sk_guess".into();
    let (s, a, _) = w.send(w.post(&forged, Some("x"), &b)).await;
    assert_eq!(
        (s, a["errorType"].as_str()),
        (401, Some("signature_mismatch"))
    );
    let (s, a, _) = w.send(w.post(&w.reader, Some("x"), &b)).await;
    assert_eq!(
        (s, a["errorType"].as_str()),
        (403, Some("forbidden")),
        "a read-only key cannot issue"
    );
    assert_eq!(w.issue_calls().len(), 0);
}

#[tokio::test]
async fn bad_input_gets_its_documented_answer() {
    let w = world(&[("MAX_BODY_BYTES", "4096")]).await;
    let ok = body("kyc-basic", "k@example.com");
    let mut invalid = ok.clone();
    invalid["credentialSubject"] = json!({"tier": "gold", "country": "Germany"});
    let mut unknown = ok.clone();
    unknown["credentialId"] = json!("no-such-program");
    let mut big = ok.clone();
    big["credentialSubject"]["tier"] = json!("x".repeat(5000));
    let mut not_declared = body("kyc-document-r1", "k@example.com");
    not_declared["sensitiveData"] = json!({"salary": 1});
    let cases = vec![
        (
            "missing Idempotency-Key",
            w.post(&w.writer, None, &ok),
            400,
            "validation_failed",
        ),
        (
            "schema violation",
            w.post(&w.writer, Some("b1"), &invalid),
            400,
            "validation_failed",
        ),
        (
            "unknown program",
            w.post(&w.writer, Some("b2"), &unknown),
            404,
            "not_found",
        ),
        (
            "oversized body",
            w.post(&w.writer, Some("b3"), &big),
            413,
            "payload_too_large",
        ),
        (
            "undeclared sensitive field",
            w.post(&w.writer, Some("b4"), &not_declared),
            400,
            "validation_failed",
        ),
        (
            "malformed JSON",
            w.signed(
                &w.writer,
                Method::POST,
                "/v1/credentials",
                b"{\"credentialId\":".to_vec(),
            )
            .header("content-type", "application/json")
            .header("idempotency-key", "b5"),
            400,
            "validation_failed",
        ),
        (
            "wrong content type",
            w.signed(
                &w.writer,
                Method::POST,
                "/v1/credentials",
                ok.to_string().into_bytes(),
            )
            .header("content-type", "text/plain")
            .header("idempotency-key", "b6"),
            415,
            "unsupported_media_type",
        ),
    ];
    for (what, req, status, error_type) in cases {
        let (s, a, _) = w.send(req).await;
        assert_eq!(
            (s, a["errorType"].as_str()),
            (status, Some(error_type)),
            "{what}: {a}"
        );
    }
    let (_, a, _) = w.send(w.post(&w.writer, Some("b7"), &invalid)).await;
    let pointers: Vec<&str> = a["details"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pointer"].as_str().unwrap())
        .collect();
    assert!(
        pointers.contains(&"/tier") && pointers.contains(&"/country"),
        "{a}"
    );
    assert!(
        !a.to_string().contains("Germany"),
        "values are never echoed"
    );
    assert_eq!(w.issue_calls().len(), 0);
}

#[tokio::test]
async fn the_issue_scope_is_sent_as_configured_and_a_platform_requiring_issue_on_behalf_takes_it() {
    let on_behalf = |mut c: platform_sim::SimConfig| {
        c.issue_scope = "issue on-behalf".to_owned();
        c
    };
    // The default claim (`issue`) is refused by a platform that requires `issue on-behalf`.
    let w = common::world_with_sim(&[], on_behalf).await;
    let (s, a, _) = w
        .send(w.post(
            &w.writer,
            Some("scope-1"),
            &body("kyc-basic", "scope@example.com"),
        ))
        .await;
    assert!(s >= 500, "{s} {a}");
    let calls = w.issue_calls();
    assert!(
        calls.iter().all(|c| c.status == 401 || c.status == 403),
        "{calls:?}"
    );
    assert_eq!(calls[0].claims.as_ref().unwrap()["scope"], "issue");
    assert_eq!(
        calls[0].auth_error.as_deref(),
        Some("scope \"issue on-behalf\" required")
    );

    // Configured with it, the same platform issues.
    let w = common::world_with_sim(&[("PLATFORM_TOKEN_SCOPE", "issue on-behalf")], on_behalf).await;
    let (s, a, _) = w
        .send(w.post(
            &w.writer,
            Some("scope-2"),
            &body("kyc-basic", "scope@example.com"),
        ))
        .await;
    assert_eq!(s, 202, "{a}");
    let calls = w.issue_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].claims.as_ref().unwrap()["scope"],
        "issue on-behalf"
    );

    // A platform that requires `issue` (the default) takes either claim.
    let w = world(&[("PLATFORM_TOKEN_SCOPE", "issue on-behalf")]).await;
    let (s, a, _) = w
        .send(w.post(
            &w.writer,
            Some("scope-3"),
            &body("kyc-basic", "scope@example.com"),
        ))
        .await;
    assert_eq!(s, 202, "{a}");
}

#[tokio::test]
async fn behind_a_custom_domain_base_path_signed_requests_verify_on_the_path_the_client_sent() {
    let w = world(&[("API_BASE_PATH", "partner")]).await;
    let b = body("kyc-basic", "mapped@example.com");
    // The client signs and sends the path on the custom domain, base path included, and API
    // Gateway passes that path on (rawPath) to the function.
    let create = w
        .signed(
            &w.writer,
            Method::POST,
            "/partner/v1/credentials",
            b.to_string().into_bytes(),
        )
        .header("content-type", "application/json")
        .header("idempotency-key", "mapped-1");
    let (s, a, _) = w.send(create).await;
    assert_eq!(s, 202, "{a}");
    let id = a["issuanceId"].as_str().unwrap();
    let path = format!("/partner/v1/credentials/{id}");
    let (s, v, _) = w
        .send(w.signed(&w.reader, Method::GET, &path, Vec::new()))
        .await;
    assert_eq!((s, v["issuanceId"].as_str()), (200, Some(id)), "{v}");
    // The generated execute-api address has no base path and still routes.
    let direct = format!("/v1/credentials/{id}");
    let (s, _, _) = w
        .send(w.signed(&w.reader, Method::GET, &direct, Vec::new()))
        .await;
    assert_eq!(s, 200);

    // A signature over the path without the base path does not verify on the mapped path.
    let sig_for = w
        .signed(&w.reader, Method::GET, &direct, Vec::new())
        .build();
    let mut moved = shared::apigw::ApiGatewayRequest::new(Method::GET, &path);
    for name in ["x-access-key", "x-timestamp", "x-signature"] {
        moved = moved.header(name, sig_for.headers()[name].to_str().unwrap());
    }
    let (s, e, _) = w.send(moved).await;
    assert_eq!(
        (s, e["errorType"].as_str()),
        (401, Some("signature_mismatch")),
        "{e}"
    );

    // Without API_BASE_PATH, a mapped path is not a route of the API.
    let plain = world(&[]).await;
    let (s, _, _) = plain
        .send(plain.signed(&plain.reader, Method::GET, &path, Vec::new()))
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn the_status_route_reports_the_issuance() {
    let w = world(&[]).await;
    let (_, a, _) = w
        .send(w.post(&w.writer, Some("s-1"), &body("kyc-basic", "l@example.com")))
        .await;
    let id = a["issuanceId"].as_str().unwrap();
    let (s, v, _) = w
        .send(w.signed(
            &w.reader,
            Method::GET,
            &format!("/v1/credentials/{id}"),
            Vec::new(),
        ))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "WAIT_ONCHAIN");
    assert!(v["waitOnchainSeconds"].as_f64().is_some());
    assert!(v.get("user").is_none() && !v.to_string().contains("l@example.com"));
    let unknown = IssuanceId::derive("nobody", "nothing");
    let (s, _, _) = w
        .send(w.signed(
            &w.reader,
            Method::GET,
            &format!("/v1/credentials/{}", unknown.as_str()),
            Vec::new(),
        ))
        .await;
    assert_eq!(s, 404);
    let (s, _, _) = w
        .send(w.signed(
            &w.reader,
            Method::GET,
            "/v1/credentials/not-an-id",
            Vec::new(),
        ))
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_key_of_another_family_cannot_tell_an_issuance_exists() {
    let w = world(&[]).await;
    let (_, a, _) = w
        .send(w.post(&w.writer, Some("o-1"), &body("kyc-basic", "m@example.com")))
        .await;
    let path = format!("/v1/credentials/{}", a["issuanceId"].as_str().unwrap());
    let (s, theirs, _) = w
        .send(w.signed(&w.outsider, Method::GET, &path, Vec::new()))
        .await;
    assert_eq!(s, 404, "{theirs}");
    let unknown = IssuanceId::derive("nobody", "nothing");
    let (_, none, _) = w
        .send(w.signed(
            &w.outsider,
            Method::GET,
            &format!("/v1/credentials/{}", unknown.as_str()),
            Vec::new(),
        ))
        .await;
    assert_eq!(
        theirs, none,
        "the same answer as for an id that does not exist"
    );
    let (s, v, _) = w
        .send(w.signed(&w.reader, Method::GET, &path, Vec::new()))
        .await;
    assert_eq!(s, 200, "a key of the same family reads it: {v}");
}

#[tokio::test]
async fn a_test_key_is_forbidden_on_a_live_stack() {
    let w = world(&[]).await;
    let (s, a, _) = w
        .send(w.post(
            &w.test_key,
            Some("t-1"),
            &body("kyc-basic", "n@example.com"),
        ))
        .await;
    assert_eq!(
        (s, a["errorType"].as_str()),
        (403, Some("forbidden")),
        "{a}"
    );
    assert_eq!(w.issue_calls().len(), 0);
}

#[tokio::test]
async fn a_test_stack_takes_test_keys_and_refuses_live_ones() {
    let w = world(&[("STACK_ENVIRONMENT", "test")]).await;
    let (s, a, _) = w
        .send(w.post(
            &w.test_key,
            Some("t-2"),
            &body("kyc-basic", "o@example.com"),
        ))
        .await;
    assert_eq!(s, 202, "{a}");
    let (s, a, _) = w
        .send(w.post(&w.writer, Some("t-3"), &body("kyc-basic", "p@example.com")))
        .await;
    assert_eq!(
        (s, a["errorType"].as_str()),
        (403, Some("forbidden")),
        "{a}"
    );
}

fn event(name: &str) -> lambda_http::Request {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_sample_events_parse_and_are_refused_until_signed_with_a_real_key() {
    // The events carry placeholder credentials (`opsctl sign` makes real ones): the handler must
    // answer them with an authentication error, never a crash or a 5xx.
    let w = world(&[]).await;
    for name in ["issue.json", "issue-status.json"] {
        let r = issue::handle(event(name), &w.deps).await;
        assert_eq!(r.status(), 401, "{name}");
    }
    assert_eq!(w.issue_calls().len(), 0);
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_is_refused_without_echoing_its_values() {
    let w = world(&[]).await;
    let mut b = body("kyc-basic", "unused@example.com");
    b["user"] = json!("echo.me@example.com");
    let (status, answer, _) = w.send(w.post(&w.writer, Some("shape"), &b)).await;
    assert_eq!(
        (status, answer["errorType"].as_str()),
        (400, Some("validation_failed"))
    );
    assert!(
        answer["errorMessage"].as_str().unwrap().contains("user"),
        "{answer}"
    );
    assert!(
        !answer.to_string().contains("echo.me@example.com"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_released_key_cannot_be_reused_for_another_user() {
    let w = world(&[]).await;
    // The first attempt reaches the platform, then its ciphertext upload is refused: the attempt
    // fails and gives its Idempotency-Key back.
    w.fault(json!({"route": "/dstorage/ciphertexts", "status": 400, "failNext": 1}))
        .await;
    let mut alice = body("kyc-document-r1", "alice.h3@example.com");
    alice["sensitiveData"] = json!({"fullName": "Alice"});
    let (status, _, _) = w.send(w.post(&w.writer, Some("h3"), &alice)).await;
    assert_eq!(status, 502);
    // The same key with another user's payload must not take the record over.
    let bob = body("kyc-document-r1", "bob.h3@example.com");
    let (status, answer, _) = w.send(w.post(&w.writer, Some("h3"), &bob)).await;
    assert_eq!(
        (status, answer["errorType"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{answer}"
    );
    assert_eq!(
        w.issue_calls().len(),
        1,
        "bob's request never reached the platform"
    );
}

#[tokio::test]
async fn a_platform_whose_ignore_answers_200_with_the_existing_credential_is_resolved_the_same_way()
{
    for (fault, name) in [
        (
            json!({"route": "/credentials/issue-on-behalf", "status": 500, "failNext": 1}),
            "500",
        ),
        (
            json!({"route": "/credentials/issue-on-behalf", "loseAnswer": true, "failNext": 1}),
            "lost",
        ),
    ] {
        let w = common::world_with_sim(&[], |mut c| {
            c.ignore_answers_existing = true;
            c
        })
        .await;
        let (old, new) = upgrade(&w, &format!("ignore.200.{name}@example.com"), fault).await;
        assert_ne!(new, old, "{name}: the upgrade was not dropped");
        assert_eq!(platform_state(&w, &old).await, VcState::Revoked, "{name}");
        assert_eq!(
            platform_state(&w, &new).await,
            VcState::WaitOnchain,
            "{name}"
        );
    }
}

/// Issues a `kyc-basic` credential to `email`, then upgrades it (changed data: `revoke`) with
/// `fault` on the platform; the old and the new credential's hashes.
async fn upgrade(w: &common::World, email: &str, fault: Value) -> (String, String) {
    let b = body("kyc-basic", email);
    let (_, first, _) = w.send(w.post(&w.writer, Some("up-old"), &b)).await;
    let old = first["coreClaimHash"].as_str().unwrap().to_owned();
    let mut upgraded = b.clone();
    upgraded["credentialSubject"]["tier"] = json!("premium");
    w.fault(fault).await;
    let (status, answer, _) = w.send(w.post(&w.writer, Some("up-new"), &upgraded)).await;
    assert_eq!(status, 202, "{answer}");
    (old, answer["coreClaimHash"].as_str().unwrap().to_owned())
}

/// The status of a credential at the platform.
async fn platform_state(w: &common::World, hash: &str) -> VcState {
    w.deps
        .platform
        .status(hash, Deadline::after(Duration::from_secs(5)))
        .await
        .unwrap()
        .vc_status
}

#[tokio::test]
async fn a_failed_upload_leaves_upload_pending_and_the_retry_uploads_without_issuing_again() {
    let w = world(&[]).await;
    let mut b = body("kyc-document-r1", "upload.retry@example.com");
    b["sensitiveData"] = json!({"fullName": "Grace Hopper"});
    // The platform issues, then its storage fails every attempt of this request.
    w.fault(json!({"route": "/dstorage/ciphertexts", "status": 503, "failNext": 4}))
        .await;
    let (status, answer, r) = w.send(w.post(&w.writer, Some("up-1"), &b)).await;
    assert_eq!(
        (status, answer["errorType"].as_str()),
        (502, Some("upstream_unavailable")),
        "never a success while the documents are not stored: {answer}"
    );
    assert!(r.headers().contains_key("retry-after"));
    // The platform's answer was persisted before the upload: the record says where it stands.
    let id = IssuanceId::derive(w.writer.id.as_str(), "up-1");
    let pending = record(&w, id.as_str()).await;
    assert_eq!(
        pending.status(),
        shared::issuance::IssuanceStatus::UploadPending
    );
    let hash = pending.core_claim_hash().expect("persisted at once");
    assert!(pending.cak_public_key().is_some());
    assert_eq!(pending.storage_id(), None);
    let (code, read, _) = w
        .send(w.signed(
            &w.writer,
            Method::GET,
            &format!("/v1/credentials/{}", id.as_str()),
            Vec::new(),
        ))
        .await;
    assert_eq!(
        (code, read["status"].as_str()),
        (200, Some("UPLOAD_PENDING"))
    );
    w.clear_faults().await;

    // The same key and body: encrypted again to the stored key and uploaded, not issued again.
    let issues_before = w.issue_calls().len();
    let (status, answer, _) = w.send(w.post(&w.writer, Some("up-1"), &b)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["coreClaimHash"], hash);
    assert_eq!(
        w.issue_calls().len(),
        issues_before,
        "no second issue-on-behalf"
    );
    let done = record(&w, id.as_str()).await;
    assert_eq!(done.status(), shared::issuance::IssuanceStatus::WaitOnchain);
    let storage = done.storage_id().expect("uploaded");
    assert_eq!(w.plaintext_of(storage).await, b["sensitiveData"]);
}

#[tokio::test]
async fn an_issue_answer_lost_after_its_effect_is_adopted_with_its_cak_key_and_documents_uploaded()
{
    let w = world(&[]).await;
    let mut b = body("kyc-document-k1", "lost.answer@example.com");
    b["sensitiveData"] = json!({"fullName": "Katherine Johnson"});
    w.fault(json!({"route": "/credentials/issue-on-behalf", "loseAnswer": true, "failNext": 1}))
        .await;
    let (status, answer, _) = w.send(w.post(&w.writer, Some("lost-1"), &b)).await;
    assert_eq!(status, 202, "{answer}");
    let hash = answer["coreClaimHash"].as_str().unwrap().to_owned();
    assert_eq!(platform_state(&w, &hash).await, VcState::WaitOnchain);
    let issuance = record(&w, answer["issuanceId"].as_str().unwrap()).await;
    let storage = issuance
        .storage_id()
        .expect("uploaded to the credential's CAK key");
    assert_eq!(w.plaintext_of(storage).await, b["sensitiveData"]);
}

#[tokio::test]
async fn a_revoke_whose_answer_was_lost_never_revokes_what_it_issued_nor_issues_twice() {
    let w = world(&[]).await;
    // A tier upgrade (changed data: `revoke`), whose answer is lost after the platform acted.
    let (old, new) = upgrade(
        &w,
        "upgrade.lost@example.com",
        json!({"route": "/credentials/issue-on-behalf", "loseAnswer": true, "failNext": 1}),
    )
    .await;
    assert_ne!(new, old, "the upgrade happened");
    assert_eq!(platform_state(&w, &old).await, VcState::Revoked);
    assert_eq!(
        platform_state(&w, &new).await,
        VcState::WaitOnchain,
        "the retry did not revoke what the first attempt issued"
    );
    // Two calls: the lost one (revoke) and its resolution (ignore), no third issuance.
    let calls = w.issue_calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
}

#[tokio::test]
async fn a_revoke_that_failed_before_reaching_the_platform_is_sent_again_after_resolution() {
    let w = world(&[]).await;
    // A 500 before any effect: unconfirmed, so the next attempt asks with `ignore`, is told of
    // the old credential, and only then sends the revoke again.
    let (old, new) = upgrade(
        &w,
        "upgrade.early@example.com",
        json!({"route": "/credentials/issue-on-behalf", "status": 500, "failNext": 1}),
    )
    .await;
    assert_ne!(new, old, "the upgrade was not silently dropped");
    assert_eq!(platform_state(&w, &old).await, VcState::Revoked);
    assert_eq!(platform_state(&w, &new).await, VcState::WaitOnchain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_issuance_for_the_same_user_and_program_under_another_key_gets_409_conflict() {
    let w = Arc::new(world(&[]).await);
    let b = body("kyc-basic", "one.job@example.com");
    w.fault(json!({"route": "/credentials/issue-on-behalf", "latencyMs": 900}))
        .await;
    let first = {
        let w = Arc::clone(&w);
        let req = w.post(&w.writer, Some("job-1"), &b);
        tokio::spawn(async move { w.send(req).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, answer, r) = w.send(w.post(&w.writer, Some("job-2"), &b)).await;
    assert_eq!(
        (status, answer["errorType"].as_str()),
        (409, Some("conflict")),
        "{answer}"
    );
    assert!(r.headers().contains_key("retry-after"));
    let (status, _, _) = first.await.unwrap();
    assert_eq!(status, 202);
    assert_eq!(
        w.issue_calls().len(),
        1,
        "the second never reached the platform"
    );
    // Once the first is done, the lock is free.
    w.clear_faults().await;
    let (status, _, _) = w.send(w.post(&w.writer, Some("job-2"), &b)).await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a_crashed_holder_of_the_lock_blocks_nobody_once_its_lease_is_over() {
    let w = world(&[]).await;
    let b = body("kyc-basic", "crashed.lock@example.com");
    // A holder that died: the lock names another issuance, its lease already over.
    let protector = w.deps.data_keys.protector().await.unwrap();
    let key = shared::issuance::subject_key(
        &protector.hash("crashed.lock@example.com"),
        &program_id("kyc-basic"),
    )
    .unwrap();
    let lock = shared::issuance::ResourceLock::default().taken(
        &IssuanceId::derive("pk_gone", "k"),
        w.deps.clock.now().minus(Duration::from_secs(1)),
    );
    w.deps
        .store
        .write(shared::store::Write::Create(shared::store::NewRecord::new(
            key,
            serde_json::to_value(&lock).unwrap(),
        )))
        .await
        .unwrap();
    let (status, answer, _) = w.send(w.post(&w.writer, Some("after-crash"), &b)).await;
    assert_eq!(status, 202, "{answer}");
}

#[tokio::test]
async fn an_unfinished_record_is_queued_for_the_reconciler_at_the_end_of_its_lease() {
    let w = world(&[]).await;
    w.fault(json!({"route": "/credentials/issue-on-behalf", "status": 503}))
        .await;
    let (status, _, _) = w
        .send(w.post(
            &w.writer,
            Some("q-1"),
            &body("kyc-basic", "queued@example.com"),
        ))
        .await;
    assert_eq!(status, 502);
    let id = IssuanceId::derive(w.writer.id.as_str(), "q-1");
    let stored = w
        .deps
        .store
        .get(&id.record_key().unwrap())
        .await
        .unwrap()
        .unwrap();
    let issuance: Issuance = serde_json::from_value(stored.data).unwrap();
    assert_eq!(issuance.status(), shared::issuance::IssuanceStatus::Pending);
    let due = stored.due.expect("in the due index");
    assert_eq!(
        due.queue,
        shared::issuance::PollShards::default().queue_for(&issuance.issuance_id)
    );
    assert!(
        due.at > issuance.lease_until().unwrap(),
        "due once its lease is over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_chaos_on_the_embedded_store_no_issuance_document_or_consent_is_lost_or_doubled() {
    chaos::run(chaos::Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_chaos_on_dynamodb_no_issuance_document_or_consent_is_lost_or_doubled() {
    chaos::run(chaos::Backend::DynamoDb).await;
}

#[tokio::test]
async fn a_retry_of_an_upload_pending_issuance_without_its_documents_is_another_payload() {
    let w = world(&[]).await;
    let mut b = body("kyc-document-r1", "no.docs.retry@example.com");
    b["sensitiveData"] = json!({"fullName": "Mary Jackson"});
    w.fault(json!({"route": "/dstorage/ciphertexts", "status": 503, "failNext": 4}))
        .await;
    let (status, _, _) = w.send(w.post(&w.writer, Some("nd-1"), &b)).await;
    assert_eq!(status, 502);
    w.clear_faults().await;
    let mut without = b.clone();
    without.as_object_mut().unwrap().remove("sensitiveData");
    let (status, answer, _) = w.send(w.post(&w.writer, Some("nd-1"), &without)).await;
    assert_eq!(
        (status, answer["errorType"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{answer}"
    );
    let id = IssuanceId::derive(w.writer.id.as_str(), "nd-1");
    assert_eq!(
        record(&w, id.as_str()).await.status(),
        shared::issuance::IssuanceStatus::UploadPending,
        "still waiting for its documents"
    );
}

/// The partner's identity provider for step-up assertions: a JWKS on loopback (HTTPS, with the
/// test process's local CA) and its key.
struct StepUpIdp {
    key: shared::keys::PrivateJwk,
    url: String,
    _server: local_tls::Server,
}

impl StepUpIdp {
    async fn start() -> Self {
        let key = shared::keys::PrivateJwk::generate();
        let jwks = json!({"keys": [key.public()]}).to_string();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let body = jwks.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
        let server = test_support::serve_https(app);
        let url = format!("{}/jwks", server.base_url());
        Self {
            key,
            url,
            _server: server,
        }
    }

    fn assertion(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.key.kid().as_str().to_owned());
        let der = self.key.to_pkcs8_der().unwrap();
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ec_der(&der),
        )
        .unwrap()
    }
}

fn programs_requiring_mfa(id: &str) -> String {
    let mut programs: Value = serde_json::from_str(shared::programs::SAMPLE_PROGRAMS).unwrap();
    for p in programs.as_array_mut().unwrap() {
        if p["id"] == id {
            p["requireMfa"] = json!(true);
        }
    }
    programs.to_string()
}

#[tokio::test]
async fn a_program_requiring_mfa_issues_only_with_a_fresh_step_up_assertion_for_that_user() {
    let idp = StepUpIdp::start().await;
    let programs = programs_requiring_mfa("kyc-basic");
    let w = world(&[
        ("PROGRAMS_JSON", programs.as_str()),
        ("STEP_UP_ISSUER", "https://idp.example.com/"),
        ("STEP_UP_AUDIENCE", "partner-issuance"),
        ("STEP_UP_JWKS_URL", idp.url.as_str()),
    ])
    .await;
    let now = shared::clock::Clock::now(&shared::clock::SystemClock).as_secs();
    let claims = |changes: Value| {
        let mut c = json!({
            "iss": "https://idp.example.com/", "aud": "partner-issuance", "sub": "u-1",
            "email": "quinn@example.com", "amr": ["pwd", "otp"],
            "iat": now - 10, "auth_time": now - 20, "exp": now + 240
        });
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let send = |n: usize, assertion: Option<String>| {
        let mut req = w.post(
            &w.writer,
            Some(&format!("mfa-{n}")),
            &body("kyc-basic", "quinn@example.com"),
        );
        if let Some(a) = &assertion {
            req = req.header("x-step-up-token", a);
        }
        w.send(req)
    };
    let refusals = [
        ("no assertion", None),
        ("not a JWT", Some("not-a-jwt".to_owned())),
        (
            "another audience",
            Some(idp.assertion(&claims(json!({"aud": "other-app"})))),
        ),
        (
            "another issuer",
            Some(idp.assertion(&claims(json!({"iss": "https://evil.example/"})))),
        ),
        (
            "expired",
            Some(idp.assertion(&claims(json!({"exp": now - 120})))),
        ),
        (
            "second factor too long ago",
            Some(idp.assertion(&claims(json!({"auth_time": now - 900})))),
        ),
        (
            "no MFA in amr",
            Some(idp.assertion(&claims(json!({"amr": ["pwd"]})))),
        ),
        (
            "another user",
            Some(idp.assertion(&claims(json!({"email": "rita@example.com"})))),
        ),
    ];
    for (n, (what, assertion)) in refusals.into_iter().enumerate() {
        let (s, a, _) = send(n, assertion).await;
        assert_eq!(
            (s, a["errorType"].as_str()),
            (403, Some("mfa_required")),
            "{what}: {a}"
        );
    }
    let forged = {
        let other = shared::keys::PrivateJwk::generate();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(idp.key.kid().as_str().to_owned());
        let der = other.to_pkcs8_der().unwrap();
        jsonwebtoken::encode(
            &header,
            &claims(json!({})),
            &jsonwebtoken::EncodingKey::from_ec_der(&der),
        )
        .unwrap()
    };
    let (s, a, _) = send(20, Some(forged)).await;
    assert_eq!(
        (s, a["errorType"].as_str()),
        (403, Some("mfa_required")),
        "forged: {a}"
    );
    assert_eq!(w.issue_calls().len(), 0, "nothing reached the platform");

    let (s, a, _) = send(21, Some(idp.assertion(&claims(json!({}))))).await;
    assert_eq!(s, 202, "{a}");
    assert_eq!(w.issue_calls().len(), 1);

    // A program without requireMfa needs no assertion.
    let (s, a, _) = w
        .send(w.post(
            &w.writer,
            Some("mfa-free"),
            &body("kyc-document-r1", "sam@example.com"),
        ))
        .await;
    assert_eq!(s, 202, "{a}");
}

#[test]
fn a_program_requiring_mfa_without_step_up_settings_stops_the_function_at_start() {
    let programs = programs_requiring_mfa("kyc-basic");
    let env = shared::config::MapEnv::from_pairs([
        ("ISSUER_DID", "did:air:id:test:p"),
        ("PARTNER_ID", "p"),
        ("PLATFORM_BASE_URL", "https://platform.example.com"),
        ("PROGRAMS_JSON", programs.as_str()),
    ]);
    let err = issue::IssueConfig::from_env(&shared::config::EnvReader::new(&env)).unwrap_err();
    assert_eq!(err.var, "STEP_UP_ISSUER");
}

#[tokio::test]
async fn the_programs_are_compiled_once_at_start_when_the_configuration_is_read() {
    // Compiling the programs' JSON Schemas is most of the function's start-up work: the handler
    // uses the programs the configuration parsed, and does not compile them a second time.
    let w = world(&[]).await;
    assert!(Arc::ptr_eq(&w.deps.config.programs, &w.deps.programs));
    assert!(w.deps.programs.get("kyc-basic").is_some());
}

fn program_id(id: &str) -> shared::programs::ProgramId {
    shared::programs::ProgramId::parse(id).unwrap()
}
