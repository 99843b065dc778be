//! The webhook secrets, read from one secret through the secrets port and cached for a bounded
//! time (at most 300 s), so a secret added or removed for a rotation is seen within the TTL.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use shared::cache::TtlCache;
use shared::clock::SharedClock;
use shared::secrets::{MAX_CACHE_TTL, SecretName, SecretSource, SecretsError};

use crate::verify::{DocumentError, Scheme, SecretSet};

/// The secret's name when `WEBHOOK_SECRETS_SECRET_NAME` is not set.
pub const DEFAULT_WEBHOOK_SECRETS_SECRET: &str = "partner-bundle/webhook-secrets";

/// Why the webhook secrets could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The secrets port failed.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The secret is not a webhook secrets document.
    #[error("the webhook secrets secret is malformed: {0}")]
    Malformed(#[from] DocumentError),
}

/// The accepted webhook secrets, from secret `name`.
pub struct WebhookKeys<S> {
    secrets: S,
    name: SecretName,
    scheme: Scheme,
    cache: TtlCache<(), Arc<SecretSet>>,
}

impl<S> std::fmt::Debug for WebhookKeys<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookKeys")
            .field("name", &self.name)
            .field("ttl", &self.cache.ttl())
            .finish_non_exhaustive()
    }
}

impl<S: SecretSource> WebhookKeys<S> {
    /// The secrets in `name`, for `scheme`, cached for `ttl` (at most 300 s).
    pub fn new(
        secrets: S,
        name: SecretName,
        scheme: Scheme,
        ttl: Duration,
        clock: SharedClock,
    ) -> Self {
        Self {
            secrets,
            name,
            scheme,
            cache: TtlCache::new(1, ttl.min(MAX_CACHE_TTL), clock),
        }
    }

    /// The secret's name.
    pub fn name(&self) -> &SecretName {
        &self.name
    }

    /// The accepted secrets as of at most one TTL ago. A secret that does not exist holds no
    /// secrets (every callback is then refused, and the refusals are logged and counted).
    ///
    /// # Errors
    /// [`KeysError`] when the secret cannot be read or is malformed.
    pub async fn current(&self) -> Result<Arc<SecretSet>, KeysError> {
        if let Some(hit) = self.cache.get(&()) {
            return Ok(hit);
        }
        let set = match self.secrets.current(&self.name).await {
            Ok(version) => SecretSet::parse(version.value.expose_secret(), self.scheme)?,
            Err(SecretsError::NotFound(_)) => {
                tracing::error!(secret = %self.name, "the webhook secrets secret does not exist: every callback is refused");
                SecretSet::default()
            }
            Err(e) => return Err(e.into()),
        };
        let set = Arc::new(set);
        self.cache.insert((), Arc::clone(&set));
        Ok(set)
    }

    /// Forgets the cached secrets.
    pub fn invalidate(&self) {
        self.cache.remove(&());
    }
}
