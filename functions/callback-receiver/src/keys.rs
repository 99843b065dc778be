//! The webhook keys — `whsec_` secrets and the platform's `whpk_` public keys, see
//! [`SecretSet::parse`] — read from one secret through the secrets port and cached for a bounded
//! time (at most 300 s), so a key added or removed for a rotation is seen within the TTL.

use std::sync::Arc;
use std::time::Duration;

use shared::clock::SharedClock;
use shared::secrets::{CachedDocument, DocumentFormat, SecretName, SecretSource, SecretsError};

use crate::verify::{DocumentError, Scheme, SecretSet};

/// The secret's name when `WEBHOOK_SECRETS_SECRET_NAME` is not set.
pub const DEFAULT_WEBHOOK_SECRETS_SECRET: &str = "partner-bundle/webhook-secrets";

/// Why the webhook secrets could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The secrets port failed.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The secret is not a webhook secrets document (or holds a `whsk_` signing key); the
    /// message names the entry, never its value.
    #[error("the webhook secrets secret is malformed: {0}")]
    Malformed(#[from] DocumentError),
}

/// How the webhook secrets secret reads, for one scheme. A secret that does not exist holds no
/// secrets: every callback is then refused, and the refusals are logged and counted.
#[derive(Debug, Clone)]
pub struct WebhookSecretsFormat {
    scheme: Scheme,
    /// Named in the log line of a missing secret, so an operator knows which one to create.
    name: SecretName,
}

impl DocumentFormat for WebhookSecretsFormat {
    type Document = SecretSet;
    type Error = KeysError;

    fn parse(&self, text: &str) -> Result<SecretSet, KeysError> {
        Ok(SecretSet::parse(text, self.scheme)?)
    }

    fn absent(&self) -> Option<SecretSet> {
        tracing::error!(
            secret = %self.name,
            "the webhook secrets secret does not exist: every callback is refused"
        );
        Some(SecretSet::default())
    }
}

/// The accepted webhook secrets, from secret `name`.
pub struct WebhookKeys<S> {
    document: CachedDocument<S, WebhookSecretsFormat>,
}

impl<S> std::fmt::Debug for WebhookKeys<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookKeys")
            .field("document", &self.document)
            .finish()
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
            document: CachedDocument::new(
                secrets,
                name.clone(),
                WebhookSecretsFormat { scheme, name },
                ttl,
                clock,
            ),
        }
    }

    /// The secret's name.
    pub fn name(&self) -> &SecretName {
        self.document.name()
    }

    /// The accepted secrets as of at most one TTL ago (none when the secret does not exist).
    ///
    /// # Errors
    /// [`KeysError`] when the secret cannot be read or is malformed.
    pub async fn current(&self) -> Result<Arc<SecretSet>, KeysError> {
        self.document.get().await
    }

    /// Forgets the cached secrets.
    pub fn invalidate(&self) {
        self.document.invalidate();
    }
}
