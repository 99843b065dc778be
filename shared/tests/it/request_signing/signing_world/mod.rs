//! The world of the request-signing tests: a registry of keys, a replay cache, a recorder.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use shared::auth::{
    ApiKey, ApiKeyRegistry, KeyStatus, KeyType, Permission, RequestVerifier, SecretApiKeys,
    SignedParts, StackEnvironment, sign,
};
use shared::clock::{Clock, ManualClock};
use shared::error::ErrorType;
use shared::secrets::file::FileSecrets;
use shared::secrets::{SecretName, SecretWriter};
use shared::store::embedded::EmbeddedStore;
use shared::telemetry::{MemorySink, Recorder};

pub struct World {
    pub verifier: RequestVerifier,
    pub clock: ManualClock,
    pub live: ApiKey,
    pub read_only: ApiKey,
    pub revoked: ApiKey,
    pub office_only: ApiKey,
    /// A `test` key: refused by this (live) stack.
    pub test_key: ApiKey,
    /// A key whose `expiresAt` is one second from the start.
    pub expiring: ApiKey,
    /// A key stored before keys had an expiry or an owner, created 89 days before the start.
    pub legacy: ApiKey,
    pub metrics: MemorySink,
    pub _dir: tempfile::TempDir,
}

pub async fn world() -> World {
    let (clock, shared_clock) = test_support::clock();
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
    let test_key = ApiKey::generate(
        KeyType::Test,
        vec![Permission::CredentialsWrite, Permission::CredentialsRead],
        vec![],
        "test",
        now,
    );
    let mut expiring = ApiKey::generate(
        KeyType::Live,
        vec![Permission::CredentialsRead],
        vec![],
        "expiring",
        now,
    );
    expiring.expires_at = Some(now.plus(Duration::from_secs(1)));
    let mut legacy = ApiKey::generate(
        KeyType::Live,
        vec![Permission::CredentialsRead],
        vec![],
        "legacy",
        now.minus(Duration::from_secs(89 * 86_400)),
    );
    legacy.expires_at = None;
    let secrets = FileSecrets::open(dir.path(), shared_clock.clone()).unwrap();
    let name = SecretName::new("partner-bundle/api-keys").unwrap();
    let registry = ApiKeyRegistry {
        keys: vec![
            live.clone(),
            read_only.clone(),
            revoked.clone(),
            office_only.clone(),
            test_key.clone(),
            expiring.clone(),
            legacy.clone(),
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
        verifier: RequestVerifier::new(
            Arc::new(keys),
            Arc::new(store),
            StackEnvironment::Live,
            shared_clock,
            recorder,
        ),
        clock,
        live,
        read_only,
        revoked,
        office_only,
        test_key,
        expiring,
        legacy,
        metrics,
        _dir: dir,
    }
}

pub struct Req {
    pub key_id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: &'static [u8],
    pub path: &'static str,
    pub ip: Option<&'static str>,
}

pub fn signed(key: &ApiKey, secret: &str, timestamp: String) -> Req {
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
    pub fn parts(&self) -> SignedParts<'_> {
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

pub fn now_secs(w: &World) -> String {
    w.clock.now().as_secs().to_string()
}

/// The answer to a refused request: error type, status, logged reason.
pub type Refusal = (ErrorType, u16, &'static str);

pub async fn refused(w: &World, req: &Req, permission: Permission) -> Refusal {
    let failure = w
        .verifier
        .verify(&req.parts(), permission)
        .await
        .unwrap_err();
    let api = failure.to_api_error();
    (api.error_type(), api.status(), failure.reason())
}
