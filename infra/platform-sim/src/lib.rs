//! The platform simulator: a real HTTP server that behaves like the credential platform (shaped
//! after AIR's public REST API, docs/architecture.md §6), for local mode and every test.
//!
//! Start one with [`spawn`] on the address you choose (`127.0.0.1:0` in tests) and talk to it
//! over HTTPS (only: the leaf certificate chains to [`SimConfig::tls`] or a CA of its own, see
//! [`SimHandle::ca_pem`]): the platform routes (`/credentials/issue-on-behalf`, `/credentials/status`,
//! `/dstorage/ciphertexts`) require a Partner JWT in `x-partner-auth`, verified against the
//! configured JWKS URL; the control routes under `/sim` drive callbacks, faults, the clock and
//! show what was received. See the crate's README for every route.
#![forbid(unsafe_code)]

mod app;
mod auth;
mod callbacks;
mod clock;
mod config;
mod control;
mod faults;
mod http;
mod platform;
mod rng;
mod router;
mod signing;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use callbacks::{
    AuthorizationRequest, CallbackBody, CallbackRecord, CallbackShape, DeliveryStatus, sign,
};
pub use clock::SimClock;
pub use config::{ProgramConfig, SimConfig, TokenTimes, decode_webhook_secret};
pub use faults::FaultSpec;
pub use shared::ecies::Curve;
pub use signing::{WebhookSignatures, WebhookSigningKey, generate_webhook_signing_key, sign_v1a};
pub use state::{RequestRecord, StatusShape};

use crate::app::App;
use crate::auth::Verifier;
use crate::state::lock;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is inconsistent.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// The address could not be bound.
    #[error("could not bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(String),
    /// The TLS set-up failed.
    #[error("TLS: {0}")]
    Tls(#[source] local_tls::TlsError),
}

/// A running simulator. Dropping it (or calling [`SimHandle::shutdown`]) stops it.
pub struct SimHandle {
    local_addr: SocketAddr,
    ca: Arc<local_tls::LocalCa>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    app: Arc<App>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Starts a simulator listening on `addr` (port 0 picks a free port).
///
/// # Errors
/// [`SimError`] when the configuration is invalid or the address cannot be bound.
pub async fn spawn(config: SimConfig, addr: SocketAddr) -> Result<SimHandle, SimError> {
    let signer = config.validate()?;
    let ca = match &config.tls {
        Some(ca) => Arc::clone(ca),
        None => Arc::new(local_tls::LocalCa::ephemeral().map_err(SimError::Tls)?),
    };
    let tls = ca.server_config().map_err(SimError::Tls)?;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| SimError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;
    let client = local_tls::client_builder(ca.cert_pem().as_bytes())
        .map_err(SimError::Tls)?
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| SimError::Client(e.to_string()))?;
    let clock = SimClock::default();
    let (stop, shutdown) = watch::channel(false);
    let verifier = Verifier::new(
        config.partner_id.clone(),
        config.jwks_url.clone(),
        client.clone(),
        clock.clone(),
        config.jwks_refetch_interval,
        config.jwks_cache_ttl,
    )
    .with_timeout(config.jwks_timeout)
    .with_token_times(config.token_times);
    let app = Arc::new(App {
        programs: config
            .programs
            .iter()
            .map(|p| (p.id.clone(), p.clone()))
            .collect(),
        config,
        signer,
        clock,
        verifier,
        client,
        store: Mutex::default(),
        faults: Mutex::default(),
        log: Mutex::default(),
        callbacks: Mutex::default(),
        shutdown,
    });
    let router = router::router(Arc::clone(&app));
    let server = local_tls::serve(listener, tls, router).map_err(SimError::Tls)?;
    let stopping = Arc::clone(&app);
    let task = tokio::spawn(async move {
        stopping.stopped().await;
        server.shutdown(Duration::from_secs(5)).await;
    });
    tracing::info!(%local_addr, "platform simulator listening");
    Ok(SimHandle {
        local_addr,
        ca,
        stop,
        task: Some(task),
        app,
    })
}

impl SimHandle {
    /// `https://<local addr>`, without a trailing slash.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("https://{}", self.local_addr)
    }

    /// The CA certificate (PEM) the simulator's leaf chains to: what a client trusts to reach it.
    #[must_use]
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// A client that trusts [`SimHandle::ca_pem`] and speaks HTTPS only.
    ///
    /// # Errors
    /// [`SimError::Tls`] when the client cannot be built.
    pub fn client(&self) -> Result<reqwest::Client, SimError> {
        self.ca.client().map_err(SimError::Tls)
    }

    /// The bound address (with the real port when 0 was asked for).
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `whpk_` public keys of the configured signing keys, in order: what the receiver must
    /// list to accept `v1a` signatures.
    #[must_use]
    pub fn webhook_public_keys(&self) -> Vec<String> {
        self.app.signer.public_keys()
    }

    /// Which signatures callbacks carry.
    #[must_use]
    pub fn webhook_signatures(&self) -> WebhookSignatures {
        self.app.config.effective_webhook_signatures()
    }

    /// The simulator's clock.
    #[must_use]
    pub fn clock(&self) -> SimClock {
        self.app.clock.clone()
    }

    /// Moves the simulator's clock forward: credentials age (`WAIT_ONCHAIN` → `ONCHAIN`), the
    /// JWKS cache ages and its refetch throttle passes. Partner JWT times and `webhook-timestamp`
    /// stay on the wall clock, so tokens in flight keep working.
    pub fn advance(&self, by: Duration) {
        self.app.clock.advance(by);
    }

    /// The simulator's current time (wall clock plus every `advance`), Unix seconds.
    #[must_use]
    pub fn now_unix(&self) -> i64 {
        self.app.clock.now_unix()
    }

    /// What the simulator received so far (same as `GET /sim/requests`).
    #[must_use]
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.app.log).all().to_vec()
    }

    /// The callback records (same as `GET /sim/callbacks`).
    #[must_use]
    pub fn callbacks(&self) -> Vec<CallbackRecord> {
        lock(&self.app.callbacks).all().to_vec()
    }

    /// The CAK private key of a credential, as the verifier that obtained it would hold it.
    #[must_use]
    pub fn cak_secret_key(&self, core_claim_hash: &str) -> Option<shared::ecies::SecretKey> {
        let store = lock(&self.app.store);
        let credential = store.credential(core_claim_hash)?;
        let cak = credential.cak.as_ref()?;
        Some(state::cak_secret(
            self.app.config.seed,
            cak.curve,
            &credential.email,
            &credential.issuer_did,
            &credential.program,
        ))
    }

    /// The ids of every ciphertext stored for a credential, in no particular order.
    #[must_use]
    pub fn ciphertexts_of(&self, core_claim_hash: &str) -> Vec<String> {
        lock(&self.app.store).ciphertexts_of(core_claim_hash)
    }

    /// Stops the server: held connections and pending callback deliveries end, in-flight
    /// requests finish. Waits up to 5 s for the server task.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
