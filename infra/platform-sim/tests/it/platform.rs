#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue-on-behalf, duplicates, status, CAK keys and ciphertext uploads.

use crate::common;

use std::time::Duration;

use common::{Env, issue_body};
use platform_sim::{Curve, ProgramConfig, SimConfig};
use serde_json::{Value, json};
use shared::ecies::{self, PublicKey};

#[tokio::test]
async fn issue_on_behalf_returns_hash_program_and_user() {
    let env = Env::start().await;
    let (status, body) = env
        .issue("alice@example.com", issue_body("kyc-basic"))
        .await;
    assert_eq!(status, 200, "{body}");
    let hash = body["coreClaimHash"].as_str().unwrap();
    assert!(hash.starts_with("0x") && hash.len() == 66);
    assert_eq!(body["credentialId"], "kyc-basic");
    assert_eq!(body["userUuid"].as_str().unwrap().len(), 36);
    assert!(body.get("cakPublicKey").is_none());
}

#[tokio::test]
async fn unknown_program_is_404() {
    let env = Env::start().await;
    let (status, body) = env
        .issue("alice@example.com", issue_body("no-such-program"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], 404);
}

#[tokio::test]
async fn duplicate_under_ignore_answers_409_with_the_existing_hash() {
    let env = Env::start().await;
    let (_, first) = env
        .issue("alice@example.com", issue_body("kyc-basic"))
        .await;
    let mut again = issue_body("kyc-basic");
    again["onDuplicate"] = json!("ignore");
    let (status, body) = env.issue("alice@example.com", again).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], 409);
    assert!(body["message"].as_str().is_some());
    assert_eq!(body["coreClaimHash"], first["coreClaimHash"]);
    // Another user or another program is not a duplicate.
    let mut other = issue_body("kyc-basic");
    other["onDuplicate"] = json!("ignore");
    assert_eq!(env.issue("bob@example.com", other).await.0, 200);
}

#[tokio::test]
async fn duplicate_under_revoke_revokes_the_old_credential_and_issues_a_new_one() {
    let env = Env::start().await;
    let (_, first) = env
        .issue("alice@example.com", issue_body("kyc-basic"))
        .await;
    let mut again = issue_body("kyc-basic");
    again["onDuplicate"] = json!("revoke");
    let (status, second) = env.issue("alice@example.com", again).await;
    assert_eq!(status, 200);
    assert_ne!(first["coreClaimHash"], second["coreClaimHash"]);
    assert_eq!(first["userUuid"], second["userUuid"]);
    let (_, old) = env
        .status_of(first["coreClaimHash"].as_str().unwrap())
        .await;
    assert_eq!(old["vcStatus"], "REVOKED");
    let (_, new) = env
        .status_of(second["coreClaimHash"].as_str().unwrap())
        .await;
    assert_eq!(new["vcStatus"], "WAIT_ONCHAIN");
    // Revoke is the default.
    let (status, third) = env
        .issue("alice@example.com", issue_body("kyc-basic"))
        .await;
    assert_eq!(status, 200);
    assert_ne!(third["coreClaimHash"], second["coreClaimHash"]);
}

#[tokio::test]
async fn status_moves_from_wait_onchain_to_onchain_after_the_delay() {
    let env = Env::start().await;
    let (_, issued) = env
        .issue("alice@example.com", issue_body("kyc-basic"))
        .await;
    let hash = issued["coreClaimHash"].as_str().unwrap();
    let (status, doc) = env.status_of(hash).await;
    assert_eq!(status, 200);
    assert_eq!(doc["vcStatus"], "WAIT_ONCHAIN");
    assert_eq!(doc["issuerId"], "did:air:id:test:issuer");
    assert_eq!(doc["schemeId"], "kyc-basic");
    assert!(doc["vcDstorageId"].as_str().unwrap().starts_with("vcd_"));
    assert!(doc["vcId"].as_str().unwrap().starts_with("urn:uuid:"));
    assert!(doc["issuanceDate"].as_str().unwrap().ends_with('Z'));
    assert!(doc["expirationDate"].as_str().unwrap() > doc["issuanceDate"].as_str().unwrap());
    env.sim.advance(Duration::from_secs(61));
    let (_, doc) = env.status_of(hash).await;
    assert_eq!(doc["vcStatus"], "ONCHAIN");
}

#[tokio::test]
async fn a_status_answer_carries_exactly_the_documented_members_unless_the_rich_shape_is_chosen() {
    let documented = [
        "expirationDate",
        "issuanceDate",
        "issuerId",
        "schemeId",
        "vcDstorageId",
        "vcId",
        "vcStatus",
    ];
    let members = |doc: &Value| {
        let mut keys: Vec<String> = doc.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let env = Env::start().await;
    let (_, issued) = env
        .issue("alice@example.com", issue_body("kyc-basic"))
        .await;
    let (_, doc) = env
        .status_of(issued["coreClaimHash"].as_str().unwrap())
        .await;
    assert_eq!(members(&doc), documented);

    let env = Env::start_with(|c| SimConfig {
        status_shape: platform_sim::StatusShape::Rich,
        ..c
    })
    .await;
    let (_, issued) = env
        .issue("alice@example.com", issue_body("kyc-basic"))
        .await;
    let hash = issued["coreClaimHash"].as_str().unwrap();
    let (_, doc) = env.status_of(hash).await;
    assert_eq!(doc["coreClaimHash"], hash);
    assert_eq!(doc["issuerDid"], "did:air:id:test:issuer");
    assert_eq!(doc["revoked"], false);
    for member in documented {
        assert!(doc.get(member).is_some(), "{member}");
    }
}

#[tokio::test]
async fn status_of_an_unknown_hash_is_404_and_a_missing_hash_is_400() {
    let env = Env::start().await;
    let (status, body) = env.status_of("0xdeadbeef").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], 404);
    let response = env
        .http
        .get(env.url("/credentials/status"))
        .header("x-partner-auth", env.token("a@b.c"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], 400);
}

#[tokio::test]
async fn status_requires_a_partner_jwt() {
    let env = Env::start().await;
    let response = env
        .http
        .get(env.url("/credentials/status?coreClaimHash=0x00"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

async fn upload(env: &Env, email: &str, hash: &str, ciphertext: &[u8]) -> (u16, Value) {
    use base64::Engine as _;
    let response = env
        .http
        .post(env.url("/dstorage/ciphertexts"))
        .header("x-partner-auth", env.token(email))
        .json(&json!({
            "coreClaimHash": hash,
            "ciphertext": base64::engine::general_purpose::STANDARD.encode(ciphertext),
        }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn plaintext(env: &Env, id: &str) -> (u16, Vec<u8>) {
    let response = env
        .http
        .get(env.url(&format!("/sim/ciphertexts/{id}/plaintext")))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.bytes().await.unwrap().to_vec(),
    )
}

async fn cak_round_trip(program: &str, curve: Curve) {
    let env = Env::start().await;
    let (status, issued) = env.issue("alice@example.com", issue_body(program)).await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["cakCurve"], curve.to_string());
    let cak_hex = issued["cakPublicKey"].as_str().unwrap();
    assert_eq!(cak_hex.len(), 130);
    let cak = PublicKey::from_hex(curve, cak_hex).unwrap();
    let secret = b"{\"documentImage\":\"...\",\"birthDate\":\"1990-01-01\"}".to_vec();
    let ciphertext = ecies::encrypt(&cak, &secret).unwrap();
    let hash = issued["coreClaimHash"].as_str().unwrap();
    let (status, stored) = upload(&env, "alice@example.com", hash, &ciphertext).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["size"], ciphertext.len());
    let id = stored["id"].as_str().unwrap();
    let (status, clear) = plaintext(&env, id).await;
    assert_eq!(status, 200);
    assert_eq!(clear, secret);
    // The handle gives the same key to in-process tests.
    let key = env.sim.cak_secret_key(hash).unwrap();
    assert_eq!(key.public_key(), cak);
}

#[tokio::test]
async fn cak_on_secp256r1_round_trips_through_the_plaintext_endpoint() {
    cak_round_trip("kyc-document-r1", Curve::Secp256r1).await;
}

#[tokio::test]
async fn cak_on_secp256k1_round_trips_through_the_plaintext_endpoint() {
    cak_round_trip("kyc-document-k1", Curve::Secp256k1).await;
}

#[tokio::test]
async fn raw_ciphertext_uploads_are_accepted_with_the_hash_in_the_query() {
    let env = Env::start().await;
    let (_, issued) = env
        .issue("alice@example.com", issue_body("kyc-document-r1"))
        .await;
    let cak =
        PublicKey::from_hex(Curve::Secp256r1, issued["cakPublicKey"].as_str().unwrap()).unwrap();
    let ciphertext = ecies::encrypt(&cak, b"raw bytes").unwrap();
    let response = env
        .http
        .post(env.url(&format!(
            "/dstorage/ciphertexts?coreClaimHash={}",
            issued["coreClaimHash"].as_str().unwrap()
        )))
        .header("x-partner-auth", env.token("alice@example.com"))
        .header("content-type", "application/octet-stream")
        .body(ciphertext)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let stored: Value = response.json().await.unwrap();
    let (_, clear) = plaintext(&env, stored["storageId"].as_str().unwrap()).await;
    assert_eq!(clear, b"raw bytes");
}

#[tokio::test]
async fn the_same_user_issuer_and_schema_always_get_the_same_cak() {
    let env = Env::start().await;
    let (_, a) = env
        .issue("alice@example.com", issue_body("kyc-document-r1"))
        .await;
    let (_, b) = env
        .issue("alice@example.com", issue_body("kyc-document-r1"))
        .await;
    assert_ne!(a["coreClaimHash"], b["coreClaimHash"]);
    assert_eq!(a["cakPublicKey"], b["cakPublicKey"]);
    let (_, other_user) = env
        .issue("bob@example.com", issue_body("kyc-document-r1"))
        .await;
    assert_ne!(a["cakPublicKey"], other_user["cakPublicKey"]);
    let mut other_issuer = issue_body("kyc-document-r1");
    other_issuer["issuerDid"] = json!("did:air:id:test:other");
    let (_, c) = env
        .issue("carol@example.com", issue_body("kyc-document-r1"))
        .await;
    let (_, d) = env.issue("carol@example.com", other_issuer).await;
    assert_ne!(c["cakPublicKey"], d["cakPublicKey"]);

    // Another simulator with the same seed derives the same key.
    let again = Env::start().await;
    let (_, e) = again
        .issue("alice@example.com", issue_body("kyc-document-r1"))
        .await;
    assert_eq!(a["cakPublicKey"], e["cakPublicKey"]);
    assert_eq!(a["coreClaimHash"], e["coreClaimHash"]);
}

#[tokio::test]
async fn uploads_for_unknown_or_cak_less_credentials_and_non_ciphertexts_are_refused() {
    let env = Env::start().await;
    let fake = vec![4u8; 120];
    assert_eq!(upload(&env, "a@b.c", "0x1234", &fake).await.0, 404);
    let (_, plain) = env.issue("a@b.c", issue_body("kyc-basic")).await;
    assert_eq!(
        upload(
            &env,
            "a@b.c",
            plain["coreClaimHash"].as_str().unwrap(),
            &fake
        )
        .await
        .0,
        409
    );
    let (_, cak) = env.issue("a@b.c", issue_body("kyc-document-k1")).await;
    let hash = cak["coreClaimHash"].as_str().unwrap();
    let (status, body) = upload(&env, "a@b.c", hash, &[4u8; 10]).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], 400);
    // Garbage of the right length is stored but does not decrypt.
    let (status, stored) = upload(&env, "a@b.c", hash, &fake).await;
    assert_eq!(status, 201);
    assert_eq!(plaintext(&env, stored["id"].as_str().unwrap()).await.0, 422);
    assert_eq!(plaintext(&env, "ct_nope").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_duplicates_behave_as_serial_ones() {
    let env = Env::start().await;
    let mut body = issue_body("kyc-basic");
    body["onDuplicate"] = json!("ignore");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let (http, url, token, body) = (
            env.http.clone(),
            env.url("/credentials/issue-on-behalf"),
            env.token("alice@example.com"),
            body.clone(),
        );
        tasks.spawn(async move {
            let response = http
                .post(url)
                .header("x-partner-auth", token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        });
    }
    let results = tasks.join_all().await;
    let ok: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
    let conflicts: Vec<_> = results.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(conflicts.len(), 23);
    for (_, c) in conflicts {
        assert_eq!(c["coreClaimHash"], ok[0].1["coreClaimHash"]);
    }
    let logged = env.logged("POST /credentials/issue-on-behalf").await;
    assert_eq!(logged.len(), 24);
    assert_eq!(logged.iter().filter(|r| r["status"] == 200).count(), 1);
    // The JWKS was fetched once although every call arrived on a cold cache.
    assert_eq!(
        env.jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn programs_are_configurable() {
    let env = Env::start_with(|mut c| {
        c.programs = vec![ProgramConfig::with_cak("custom", Curve::Secp256k1)];
        c
    })
    .await;
    let (status, body) = env.issue("a@b.c", issue_body("custom")).await;
    assert_eq!(status, 200);
    assert_eq!(body["cakCurve"], "secp256k1");
    assert_eq!(env.issue("a@b.c", issue_body("kyc-basic")).await.0, 404);
}
