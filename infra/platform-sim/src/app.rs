//! The shared state behind every route.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::auth::Verifier;
use crate::callbacks::CallbackBook;
use crate::clock::SimClock;
use crate::config::{ProgramConfig, SimConfig};
use crate::faults::Faults;
use crate::signing::WebhookSigner;
use crate::state::{RequestLog, Store};

/// Everything a handler may touch. Locks are never held across an `.await`.
pub struct App {
    /// The configuration the simulator was started with.
    pub config: SimConfig,
    /// Programs by id.
    pub programs: HashMap<String, ProgramConfig>,
    /// Signs callbacks with the configured webhook secrets and signing keys.
    pub signer: WebhookSigner,
    /// The simulator clock.
    pub clock: SimClock,
    /// Partner JWT verification.
    pub verifier: Verifier,
    /// HTTP client for callbacks.
    pub client: reqwest::Client,
    /// Credentials and ciphertexts.
    pub store: Mutex<Store>,
    /// Fault rules.
    pub faults: Mutex<Faults>,
    /// Requests received.
    pub log: Mutex<RequestLog>,
    /// Callback records.
    pub callbacks: Mutex<CallbackBook>,
    /// Becomes `true` when the simulator shuts down.
    pub shutdown: watch::Receiver<bool>,
}

impl App {
    /// Waits until shutdown is requested.
    pub async fn stopped(&self) {
        let mut rx = self.shutdown.clone();
        // An error means the sender is gone, which is a shutdown too.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}
