//! HMAC request authentication: every way a signed request can be wrong gets its own documented
//! answer, is logged with its reason (never a secret) and counted; a good request passes once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use shared::auth::{
    ApiKey, ApiKeyRegistry, KeyStatus, KeyType, Permission, RequestVerifier, SecretApiKeys,
    SignedParts, sign,
};
use shared::clock::{Clock, ManualClock};
use shared::error::ErrorType;
use shared::secrets::file::FileSecrets;
use shared::secrets::{SecretName, SecretWriter};
use shared::store::embedded::EmbeddedStore;
use shared::telemetry::{LogCapture, MemorySink, Recorder};

struct World {
    verifier: RequestVerifier,
    clock: ManualClock,
    live: ApiKey,
    read_only: ApiKey,
    revoked: ApiKey,
    office_only: ApiKey,
    metrics: MemorySink,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let (clock, shared_clock) = common::clock();
    let dir = tempfile::tempdir().unwrap();
    let now = clock.now();
    let live = ApiKey::generate(
        KeyType::Live,
        vec![Permission::CredentialsWrite, Permission::CredentialsRead],
        vec![],
        "live",
        now,
    );
    let read_only = ApiKey::generate(
        KeyType::ReadOnly,
        vec![Permission::CredentialsWrite, Permission::CredentialsRead],
        vec![],
        "ro",
        now,
    );
    let mut revoked = ApiKey::generate(
        KeyType::Live,
        vec![Permission::CredentialsWrite],
        vec![],
        "old",
        now,
    );
    revoked.status = KeyStatus::Revoked;
    let office_only = ApiKey::generate(
        KeyType::Live,
        vec![Permission::CredentialsWrite],
        vec!["203.0.113.0/24".parse().unwrap()],
        "office",
        now,
    );
    let secrets = FileSecrets::open(dir.path(), shared_clock.clone()).unwrap();
    let name = SecretName::new("partner-bundle/api-keys").unwrap();
    let registry = ApiKeyRegistry {
        keys: vec![
            live.clone(),
            read_only.clone(),
            revoked.clone(),
            office_only.clone(),
        ],
    };
    secrets.create(&name, &registry.to_secret()).await.unwrap();
    let keys = SecretApiKeys::new(secrets, name, Duration::from_secs(60), shared_clock.clone());
    let store =
        EmbeddedStore::open(dir.path().join("records.sqlite3"), shared_clock.clone()).unwrap();
    let metrics = MemorySink::default();
    let recorder = Recorder::new(
        "Test",
        "issue",
        Arc::new(metrics.clone()),
        shared_clock.clone(),
    );
    World {
        verifier: RequestVerifier::new(Arc::new(keys), Arc::new(store), shared_clock, recorder),
        clock,
        live,
        read_only,
        revoked,
        office_only,
        metrics,
        _dir: dir,
    }
}

struct Req {
    key_id: String,
    timestamp: String,
    signature: String,
    body: &'static [u8],
    path: &'static str,
    ip: Option<&'static str>,
}

fn signed(key: &ApiKey, secret: &str, timestamp: String) -> Req {
    let body: &'static [u8] = br#"{"credentialId":"kyc-basic"}"#;
    let path = "/v1/credentials?x=1";
    Req {
        key_id: key.id.as_str().to_owned(),
        signature: sign(secret, "POST", path, &timestamp, body),
        timestamp,
        body,
        path,
        ip: Some("198.51.100.7"),
    }
}

impl Req {
    fn parts(&self) -> SignedParts<'_> {
        SignedParts {
            method: "POST",
            path_and_query: self.path,
            access_key: Some(&self.key_id),
            timestamp: Some(&self.timestamp),
            signature: Some(&self.signature),
            body: self.body,
            source_ip: self.ip.map(|i| i.parse().unwrap()),
        }
    }
}

fn now_secs(w: &World) -> String {
    w.clock.now().as_secs().to_string()
}

/// The answer to a refused request: error type, status, logged reason.
type Refusal = (ErrorType, u16, &'static str);

async fn refused(w: &World, req: &Req, permission: Permission) -> Refusal {
    let failure = w
        .verifier
        .verify(&req.parts(), permission)
        .await
        .unwrap_err();
    let api = failure.to_api_error();
    (api.error_type(), api.status(), failure.reason())
}

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
    let text = logs.text();
    for key in [&w.live, &w.read_only, &w.revoked, &w.office_only] {
        assert!(!text.contains(&key.secret), "a secret reached the logs");
    }
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
