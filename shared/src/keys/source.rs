//! Where the key set comes from and goes to: one secret, through the secrets port.
//!
//! [`KeySetSource`] is what the mint and JWKS functions depend on (read-only, cached with a
//! bounded TTL so a warm invocation makes no Secrets Manager call). [`KeySetStore`] is what the
//! rotation function and `opsctl` use: read the current document with its version id, write the
//! next one as a new `AWSCURRENT` version (one atomic secret write).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

use super::jwk::InvalidKey;
use super::set::{KeySet, KeySetError, KeyTimings};
use super::signer::PreparedKeys;
use crate::clock::SharedClock;
use crate::secrets::{
    CachedDocument, DocumentFormat, SecretName, SecretSource, SecretWriter, SecretsError,
    VersionId, read_versioned, write_if_unchanged,
};

/// Why the key set could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    /// The secret could not be read or written.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The document is not a valid key set.
    #[error(transparent)]
    Document(#[from] KeySetError),
    /// A key in the document is unusable.
    #[error(transparent)]
    Key(#[from] InvalidKey),
    /// Someone else wrote the key set since it was read; read again and retry.
    #[error("the key set changed while it was being updated")]
    Conflict,
}

/// Reading the key set, ready to sign and publish.
#[async_trait]
pub trait KeySetSource: Send + Sync {
    /// The key set as of at most one cache TTL ago. A key set secret that does not exist yet is
    /// an empty set (nothing signs, nothing is published) until rotation creates the first key.
    async fn keys(&self) -> Result<Arc<PreparedKeys>, KeySourceError>;

    /// Forgets the cached key set (after this process wrote a new one).
    fn invalidate(&self);
}

/// How the key set secret reads: parsed and prepared to sign at the moment it is read. A secret
/// that does not exist yet is an empty set.
pub struct KeySetFormat {
    timings: KeyTimings,
    clock: SharedClock,
}

impl DocumentFormat for KeySetFormat {
    type Document = PreparedKeys;
    type Error = KeySourceError;

    fn parse(&self, text: &str) -> Result<PreparedKeys, KeySourceError> {
        Ok(PreparedKeys::new(
            KeySet::parse(text)?,
            self.timings,
            self.clock.now(),
        )?)
    }

    fn absent(&self) -> Option<PreparedKeys> {
        PreparedKeys::new(KeySet::default(), self.timings, self.clock.now()).ok()
    }
}

/// The key set in a secret, cached in memory.
pub struct SecretKeySet<S> {
    document: CachedDocument<S, KeySetFormat>,
}

impl<S> std::fmt::Debug for SecretKeySet<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeySet")
            .field("document", &self.document)
            .finish()
    }
}

impl<S: SecretSource> SecretKeySet<S> {
    /// The key set in secret `name`, cached for `timings.key_set_cache_ttl` (at most 300 s).
    pub fn new(secrets: S, name: SecretName, timings: KeyTimings, clock: SharedClock) -> Self {
        let ttl = timings.key_set_cache_ttl;
        Self {
            document: CachedDocument::new(
                secrets,
                name,
                KeySetFormat {
                    timings,
                    clock: Arc::clone(&clock),
                },
                ttl,
                clock,
            ),
        }
    }
}

#[async_trait]
impl<S: SecretSource> KeySetSource for SecretKeySet<S> {
    async fn keys(&self) -> Result<Arc<PreparedKeys>, KeySourceError> {
        self.document.get().await
    }

    fn invalidate(&self) {
        self.document.invalidate();
    }
}

/// How [`KeySetStore`] reads the secret: the document as stored.
struct StoredKeySet;

impl DocumentFormat for StoredKeySet {
    type Document = KeySet;
    type Error = KeySourceError;

    fn parse(&self, text: &str) -> Result<KeySet, KeySourceError> {
        Ok(KeySet::parse(text)?)
    }

    fn absent(&self) -> Option<KeySet> {
        Some(KeySet::default())
    }
}

/// A key set read for update: the document and the secret version it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The document (empty if the secret does not exist yet).
    pub set: KeySet,
    /// The version it was read at (`None` if the secret does not exist yet).
    pub version: Option<VersionId>,
}

/// Reading and writing the key set secret.
pub struct KeySetStore<W> {
    secrets: W,
    name: SecretName,
}

impl<W: SecretWriter> KeySetStore<W> {
    /// The key set in secret `name`.
    pub fn new(secrets: W, name: SecretName) -> Self {
        Self { secrets, name }
    }

    /// The secret's name.
    pub fn name(&self) -> &SecretName {
        &self.name
    }

    /// The secrets port (the native rotation steps address versions directly).
    pub fn secrets(&self) -> &W {
        &self.secrets
    }

    /// The current document, uncached.
    pub async fn load(&self) -> Result<Loaded, KeySourceError> {
        let read = read_versioned(&self.secrets, &self.name, &StoredKeySet).await?;
        Ok(Loaded {
            set: read.document,
            version: read.version,
        })
    }

    /// Writes `next` as the new current version, provided the current version is still the one
    /// `loaded` came from — a compare-and-swap on the secret, so a rotation and an operator acting
    /// at the same moment can never silently undo each other's change.
    pub async fn save(&self, loaded: &Loaded, next: &KeySet) -> Result<VersionId, KeySourceError> {
        let value = SecretString::from(next.to_json());
        match write_if_unchanged(&self.secrets, &self.name, loaded.version.as_ref(), &value).await {
            Err(SecretsError::CurrentMoved(_)) => Err(KeySourceError::Conflict),
            other => Ok(other?),
        }
    }
}

/// The default time a container keeps the key set before reading it again.
pub const DEFAULT_KEY_SET_CACHE_TTL: Duration = Duration::from_secs(300);
