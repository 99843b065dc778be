//! End to end on the devstack binary: a user logs in at the dev identity provider, mints a Partner
//! JWT through the emulated authorizer, an independent JWT library (PyJWT) verifies it through the
//! devstack's JWKS URL, and the platform simulator accepts it as the platform would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let py = root.join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run the suites with `make test`, which installs the pinned venv",
        py.display()
    );
    py
}

/// PyJWT's verdict on an `issue` token of `partner-local`, its keys found through `source`
/// (`--jwks-url …` or `--discovery-url …`); panics with PyJWT's reason when it refuses.
fn pyjwt_verdict(stack: &common::Devstack, token: &str, source: [&str; 2]) -> Value {
    let out = Command::new(python())
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/clients/verify_partner_jwt.py"),
        )
        .args(source)
        .args(["--cafile", &stack.ca()])
        .args([
            "--token",
            token,
            "--partner-id",
            "partner-local",
            "--scope",
            "issue",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "PyJWT refused the token ({}): {}",
        source[0],
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn login(stack: &common::Devstack, mfa: bool) -> String {
    let api = stack.api();
    let r: Value = stack
        .client()
        .post(format!("{api}/dev/login"))
        .json(&json!({"sub": "alice", "email": "alice@example.com", "mfa": mfa}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["idToken"].as_str().unwrap().to_owned()
}

async fn mint(stack: &common::Devstack, id_token: Option<&str>, scope: &str) -> (u16, Value) {
    let api = stack.api();
    let mut req = stack
        .client()
        .post(format!("{api}/v1/partner-tokens"))
        .json(&json!({"scope": scope}));
    if let Some(t) = id_token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    assert_eq!(r.headers()["cache-control"], "no-store");
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn a_minted_token_verifies_with_pyjwt_through_the_devstack_jwks_and_the_platform_accepts_it()
{
    let dir = tempfile::tempdir().unwrap();
    // The user route mints `issue` only where the operator enabled it.
    let stack = common::start_with_env(dir.path(), &[("USER_ISSUE_TOKENS", "true")]);
    let id_token = login(&stack, true).await;
    let (status, body) = mint(&stack, Some(&id_token), "issue").await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();

    // An independent implementation fetches our JWKS and verifies the token.
    let verdict = pyjwt_verdict(
        &stack,
        token,
        ["--jwks-url", stack.ready["jwks"].as_str().unwrap()],
    );
    assert_eq!(verdict["kid"], body["kid"]);
    assert_eq!(verdict["claims"]["email"], "alice@example.com");
    assert_eq!(verdict["claims"]["sub"], "alice");

    // A generic verifier finds the keys from the OIDC discovery document and checks `iss`.
    let discovery = format!("{}/.well-known/openid-configuration", stack.api());
    let verdict = pyjwt_verdict(&stack, token, ["--discovery-url", &discovery]);
    assert_eq!(verdict["issuer"], stack.api());
    assert_eq!(verdict["claims"]["iss"], stack.api());

    // The platform simulator verifies it against the same JWKS: the status call passes
    // authentication (404 for an unknown hash, not 401).
    let platform = stack.ready["platform"].as_str().unwrap();
    let r = stack
        .client()
        .get(format!(
            "{platform}/credentials/status?coreClaimHash=0xunknown"
        ))
        .header("x-partner-auth", token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "{}", r.text().await.unwrap());

    // A token of another scope is refused by the platform.
    let (status, session) = mint(&stack, Some(&id_token), "session").await;
    assert_eq!(status, 200);
    let r = stack
        .client()
        .get(format!(
            "{platform}/credentials/status?coreClaimHash=0xunknown"
        ))
        .header("x-partner-auth", session["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_emulated_authorizer_and_the_mfa_rule_hold_on_the_mint_route() {
    let dir = tempfile::tempdir().unwrap();
    let stack = common::start(dir.path());
    let api = stack.api();

    let r = stack
        .client()
        .post(format!("{api}/v1/partner-tokens"))
        .json(&json!({"scope": "issue"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no token: refused by the authorizer");
    let r = stack
        .client()
        .post(format!("{api}/v1/partner-tokens"))
        .bearer_auth("not-a-token")
        .json(&json!({"scope": "issue"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a bad token: refused by the authorizer");

    // By default the user route never mints `issue`, with or without MFA.
    let with_mfa = login(&stack, true).await;
    let (status, body) = mint(&stack, Some(&with_mfa), "issue").await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let no_mfa = login(&stack, false).await;
    let (status, _) = mint(&stack, Some(&no_mfa), "session").await;
    assert_eq!(status, 200);

    // Where the operator enables it, `issue` still needs MFA.
    let dir = tempfile::tempdir().unwrap();
    let stack = common::start_with_env(dir.path(), &[("USER_ISSUE_TOKENS", "true")]);
    let no_mfa = login(&stack, false).await;
    let (status, body) = mint(&stack, Some(&no_mfa), "issue").await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (403, Some("mfa_required"))
    );
}

#[tokio::test]
async fn the_dev_api_key_mints_on_the_server_route_with_a_signed_request() {
    let dir = tempfile::tempdir().unwrap();
    let stack = common::start(dir.path());
    let api = stack.api();
    let creds = stack.credentials();
    let key_id = creds["apiKey"]["id"].as_str().unwrap();
    let secret = creds["apiKey"]["secret"].as_str().unwrap();
    assert!(
        creds["webhookSecret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );

    let body = json!({"scope": "issue", "user": {"sub": "u-1", "email": "u1@example.com", "amr": ["hwk"]}}).to_string();
    let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let sig = shared::auth::sign(
        secret,
        "POST",
        "/v1/server/partner-tokens",
        &ts,
        body.as_bytes(),
    );
    let send = || {
        stack
            .client()
            .post(format!("{api}/v1/server/partner-tokens"))
            .header("content-type", "application/json")
            .header("x-access-key", key_id)
            .header("x-timestamp", &ts)
            .header("x-signature", &sig)
            .body(body.clone())
            .send()
    };
    let r = send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = send().await.unwrap();
    assert_eq!(r.status(), 401, "the same signature twice is a replay");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errorType"], "replayed_request");
}
