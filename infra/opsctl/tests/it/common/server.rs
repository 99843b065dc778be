//! The server's side of request signing, as the functions build it: a `RequestVerifier` over the
//! API key registry in the same data directory `opsctl` writes, an embedded replay cache and a
//! metrics recorder, on a clock the test moves.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shared::auth::{
    AuthFailure, Caller, DEFAULT_API_KEYS_SECRET, Permission, RequestVerifier, SecretApiKeys,
    SignedParts,
};
use shared::clock::{Clock, ManualClock, Timestamp};
use shared::secrets::SecretName;
use shared::secrets::file::FileSecrets;
use shared::store::embedded::EmbeddedStore;
use shared::telemetry::{MemorySink, Recorder};

/// The registry cache TTL the functions use.
pub const REGISTRY_CACHE_TTL: Duration = Duration::from_secs(60);

/// One container's verifier.
pub struct Server {
    verifier: RequestVerifier,
    pub clock: ManualClock,
    pub metrics: MemorySink,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    /// A verifier over the default registry secret in `data_dir`, its clock at `now`.
    pub fn new(data_dir: &Path, now: Timestamp) -> Self {
        Self::named(data_dir, DEFAULT_API_KEYS_SECRET, now)
    }

    /// A verifier over the registry secret `name` in `data_dir`, its clock at `now`.
    pub fn named(data_dir: &Path, name: &str, now: Timestamp) -> Self {
        let clock = ManualClock::new(now);
        let shared_clock: shared::clock::SharedClock = Arc::new(clock.clone());
        let secrets = FileSecrets::open(data_dir, shared_clock.clone()).unwrap();
        let keys = SecretApiKeys::new(
            secrets,
            SecretName::new(name).unwrap(),
            REGISTRY_CACHE_TTL,
            shared_clock.clone(),
        );
        let replay = EmbeddedStore::open(
            data_dir.join(format!("replay-{}.sqlite3", uuid::Uuid::new_v4().simple())),
            shared_clock.clone(),
        )
        .unwrap();
        let metrics = MemorySink::default();
        let recorder = Recorder::new(
            "Test",
            "opsctl-e2e",
            Arc::new(metrics.clone()),
            shared_clock.clone(),
        );
        Self {
            verifier: RequestVerifier::new(
                Arc::new(keys),
                Arc::new(replay),
                shared::auth::StackEnvironment::Live,
                shared_clock,
                recorder,
            ),
            clock,
            metrics,
            runtime: super::runtime(),
        }
    }

    /// The server's clock, in Unix seconds (for `opsctl sign --timestamp`).
    pub fn now_secs(&self) -> String {
        self.clock.now().as_secs().to_string()
    }

    /// Verifies `request` for `permission`.
    pub fn verify(&self, request: &Request, permission: Permission) -> Result<Caller, AuthFailure> {
        let parts = SignedParts {
            method: &request.method,
            path_and_query: &request.path,
            access_key: request.header("x-access-key"),
            timestamp: request.header("x-timestamp"),
            signature: request.header("x-signature"),
            body: &request.body,
            source_ip: request.source_ip.map(|ip| ip.parse().unwrap()),
        };
        self.runtime
            .block_on(self.verifier.verify(&parts, permission))
    }

    /// The reason `request` is refused.
    pub fn refusal(&self, request: &Request, permission: Permission) -> &'static str {
        match self.verify(request, permission) {
            Ok(caller) => panic!("the request was accepted for {caller:?}"),
            Err(failure) => failure.reason(),
        }
    }
}

/// A request as it reaches the server.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub source_ip: Option<&'static str>,
}

impl Request {
    /// A request carrying the headers `opsctl sign --format headers` printed.
    pub fn signed(method: &str, path: &str, body: &[u8], sign_output: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: parse_headers(sign_output),
            body: body.to_vec(),
            source_ip: Some("198.51.100.7"),
        }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// The `Name: value` lines of `opsctl sign --format headers`, names in lower case; panics on any
/// other line.
pub fn parse_headers(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .map(|line| {
            let (name, value) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("not a header line: {line:?}"));
            (name.to_ascii_lowercase(), value.to_owned())
        })
        .collect()
}
