//! Every function's bootstrap as Lambda Managed Instances run it: one process taking several
//! invocations at once (`AWS_LAMBDA_MAX_CONCURRENCY`), all served by its one set of dependencies.
//! The Runtime API of `lambda_emu::ConcurrentFunction` acknowledges no answer before the whole
//! batch was taken, so a runtime taking one invocation at a time fails these tests; each test
//! then checks that the shared caches and clients raced into no duplicated side effect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use lambda_emu::{Batch, ConcurrentFunction};
use serde_json::Value;

use crate::common::{self, Harness, body, header, status};

/// The concurrency of these tests: what `PerExecutionEnvironmentMaxConcurrency` would be.
const AT_ONCE: usize = 8;

async fn concurrent(h: &Harness, logical_id: &str) -> ConcurrentFunction {
    let (spec, bootstrap) = h.spec(logical_id);
    ConcurrentFunction::start(&bootstrap, &spec, &h.world.extra_env(), AT_ONCE)
        .await
        .unwrap_or_else(|e| panic!("{logical_id}: {e}"))
}

/// Runs `events` at once and returns the answers, failing on a function error.
async fn all_at_once(f: &ConcurrentFunction, events: Vec<Value>) -> Vec<Value> {
    let n = events.len();
    let Batch {
        answers,
        max_in_flight,
    } = f
        .invoke_all(events, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(max_in_flight, n, "the invocations did not run at once");
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|e| panic!("function error: {e}\n{}", f.output())))
        .collect()
}

#[tokio::test]
async fn a_bootstrap_taking_one_invocation_at_a_time_fails_this_harness() {
    let h = Harness::start().await;
    let (spec, bootstrap) = h.spec("JwksFunction");
    let one_at_a_time = ConcurrentFunction::start(&bootstrap, &spec, &h.world.extra_env(), 1)
        .await
        .unwrap();
    let batch = one_at_a_time
        .invoke_all(vec![h.event("jwks.json"); 2], Duration::from_secs(5))
        .await;
    assert!(batch.is_err(), "{batch:?}");
}

#[tokio::test]
async fn the_jwks_bootstrap_answers_concurrent_invocations_with_one_document() {
    let h = Harness::start().await;
    let f = concurrent(&h, "JwksFunction").await;
    let answers = all_at_once(&f, vec![h.event("jwks.json"); AT_ONCE]).await;
    let etags: BTreeSet<_> = answers
        .iter()
        .map(|a| {
            assert_eq!(status(a), 200, "{a}");
            header(a, "etag").unwrap().to_owned()
        })
        .collect();
    assert_eq!(etags.len(), 1, "one key set, one document: {etags:?}");
}

#[tokio::test]
async fn the_token_mint_bootstrap_mints_concurrent_tokens_each_with_its_own_jti() {
    let h = Harness::start().await;
    let f = concurrent(&h, "TokenMintFunction").await;
    let answers = all_at_once(&f, vec![h.event("token-mint.json"); AT_ONCE]).await;
    let jtis: BTreeSet<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(status(a), 200, "{a}");
            let token = body(a)["token"].as_str().unwrap().to_owned();
            let claims = token.split('.').nth(1).unwrap();
            let claims: Value = serde_json::from_slice(
                &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)
                    .unwrap(),
            )
            .unwrap();
            claims["jti"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(jtis.len(), AT_ONCE);
}

fn issue_event(h: &Harness, key: &str, email: &str) -> Value {
    let mut event = h.event("issue.json");
    let mut request: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
    request["user"]["email"] = Value::String(email.to_owned());
    event["body"] = Value::String(request.to_string());
    event["headers"]["idempotency-key"] = Value::String(key.to_owned());
    h.signed(event)
}

#[tokio::test]
async fn the_issue_bootstrap_issues_concurrent_requests_once_each_and_one_key_once() {
    let h = Harness::start().await;
    let f = concurrent(&h, "IssueFunction").await;
    // Eight users at once: eight issuances.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let distinct: Vec<Value> = (0..AT_ONCE)
        .map(|n| {
            issue_event(
                &h,
                &format!("{run}-{n}"),
                &format!("user{n}-{run}@example.com"),
            )
        })
        .collect();
    let answers = all_at_once(&f, distinct).await;
    let ids: BTreeSet<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(status(a), 202, "{a}\n{}", f.output());
            body(a)["issuanceId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), AT_ONCE);
    // One request sent eight times at once (each signed afresh): one issuance; the others wait
    // (409 request_in_progress) or get its stored answer.
    let key = format!("{run}-same");
    let same: Vec<Value> = (0..AT_ONCE)
        .map(|_| issue_event(&h, &key, &format!("same-{run}@example.com")))
        .collect();
    let answers = all_at_once(&f, same).await;
    let mut issued = BTreeSet::new();
    for a in &answers {
        match status(a) {
            202 => {
                issued.insert(body(a)["issuanceId"].as_str().unwrap().to_owned());
            }
            409 => assert_eq!(body(a)["errorType"], "request_in_progress", "{a}"),
            other => panic!("{other}: {a}"),
        }
    }
    assert_eq!(
        issued.len(),
        1,
        "one Idempotency-Key, one issuance: {answers:?}"
    );
    // And the platform was asked to issue it once: the user is the Partner JWT's `email`.
    let sent = platform_requests(&h).await;
    let asked = sent
        .iter()
        .filter(|r| {
            r["route"] == "POST /credentials/issue-on-behalf"
                && r["claims"]["email"] == format!("same-{run}@example.com").as_str()
        })
        .count();
    assert_eq!(asked, 1, "{sent:?}");
}

/// What the platform simulator received so far (`GET /sim/requests`).
async fn platform_requests(h: &Harness) -> Vec<Value> {
    let answer = h
        .get_json(&format!("{}/sim/requests", h.world.platform_url()))
        .await;
    answer["requests"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_callback_bootstrap_records_one_delivery_sent_concurrently_once() {
    let h = Harness::start().await;
    let f = concurrent(&h, "CallbackReceiverFunction").await;
    let delivery = h.webhook(h.event("callback-cak.json"));
    let answers = all_at_once(&f, vec![delivery; AT_ONCE]).await;
    let mut recorded = 0;
    for a in &answers {
        assert_eq!(status(a), 200, "{a}");
        match body(a)["status"].as_str().unwrap() {
            "recorded" => recorded += 1,
            "duplicate" => {}
            other => panic!("{other}: {a}"),
        }
    }
    assert_eq!(recorded, 1, "{answers:?}");
}

#[tokio::test]
async fn concurrent_scheduled_rotations_of_a_new_key_set_create_one_first_key() {
    let h = Harness::start().await;
    // A key set of its own that does not exist yet: every run wants to create the first key.
    let secret = format!("emu-concurrent-{}", uuid::Uuid::new_v4().simple());
    let (mut spec, bootstrap) = h.spec("KeyRotationFunction");
    spec.env
        .insert("KEY_SET_SECRET_NAME".into(), secret.clone());
    let f = ConcurrentFunction::start(&bootstrap, &spec, &h.world.extra_env(), AT_ONCE)
        .await
        .unwrap();
    let batch = f
        .invoke_all(
            vec![h.event("key-rotation-scheduled.json"); AT_ONCE],
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(batch.max_in_flight, AT_ONCE);
    let rotated = batch
        .answers
        .iter()
        .filter(|a| matches!(a, Ok(v) if v["action"] == "rotated"))
        .count();
    assert_eq!(rotated, 1, "{:?}\n{}", batch.answers, f.output());
    // A run that lost the race is not an error (it would page the on-call through the rotation
    // errors alarm): it finds the key the winner wrote and has nothing to do.
    assert!(
        batch.answers.iter().all(Result::is_ok),
        "{:?}\n{}",
        batch.answers,
        f.output()
    );
    // The others lost the compare-and-swap and wrote nothing.
    let config = test_support::moto().await;
    let store = shared::secrets::aws::SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&config),
    );
    let text = shared::secrets::SecretSource::current(
        &store,
        &shared::secrets::SecretName::new(&secret).unwrap(),
    )
    .await
    .unwrap();
    let set =
        shared::keys::KeySet::parse(secrecy::ExposeSecret::expose_secret(&text.value)).unwrap();
    assert_eq!(set.keys.len(), 1, "one first key");
}

#[tokio::test]
async fn the_poller_bootstrap_issues_each_credential_once_when_its_runs_overlap() {
    let h = Harness::start().await;
    let issue = h.function("IssueFunction");
    let run = uuid::Uuid::new_v4().simple().to_string();
    for n in 0..4 {
        let answer = common::invoke(
            &issue,
            &issue_event(
                &h,
                &format!("{run}-{n}"),
                &format!("p{n}-{run}@example.com"),
            ),
        )
        .await;
        assert_eq!(status(&answer), 202, "{answer}");
    }
    h.world.advance_platform_clock(60).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let f = concurrent(&h, "StatusPollerFunction").await;
    let summaries = all_at_once(&f, vec![h.event("status-poller-scheduled.json"); AT_ONCE]).await;
    let issued: u64 = summaries
        .iter()
        .map(|s| s["issued"].as_u64().unwrap())
        .sum();
    let polled: u64 = summaries
        .iter()
        .map(|s| s["polled"].as_u64().unwrap())
        .sum();
    assert_eq!(issued, 4, "{summaries:?}\n{}", f.output());
    assert_eq!(
        polled, 4,
        "a record was polled by two runs at once: {summaries:?}"
    );
}
