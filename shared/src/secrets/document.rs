//! One JSON document in one secret, read through a bounded cache and written back as a
//! compare-and-swap on its version: the shape of every secret the bundle keeps (the signing key
//! set, the API key registry, the data keys, the webhook secrets).
//!
//! - [`DocumentFormat`] says how a secret's text becomes a document and what a secret that does
//!   not exist holds.
//! - [`CachedDocument`] serves the document for at most its TTL (capped at [`MAX_CACHE_TTL`]),
//!   so a warm invocation makes no Secrets Manager call and a rotation is seen within minutes.
//! - [`read_versioned`] and [`write_if_unchanged`] are the read-modify-write of the writers
//!   (rotation, `opsctl`, the devstack): a write lands only while `AWSCURRENT` is still the
//!   version that was read, so two writers can never silently undo each other's change.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{MAX_CACHE_TTL, SecretName, SecretSource, SecretWriter, SecretsError, VersionId};
use crate::cache::TtlCache;
use crate::clock::SharedClock;

/// How a secret's text becomes a document.
pub trait DocumentFormat: Send + Sync {
    /// The parsed document.
    type Document: Send + Sync;
    /// Why a document could not be had: a secrets error or a malformed document.
    type Error: From<SecretsError> + Send;

    /// Parses the value of the secret's current version.
    ///
    /// # Errors
    /// When the text is not such a document.
    fn parse(&self, text: &str) -> Result<Self::Document, Self::Error>;

    /// What a secret that does not exist holds: an empty document, or `None` when its absence
    /// is an error ([`SecretsError::NotFound`]).
    fn absent(&self) -> Option<Self::Document>;
}

/// A document and the version it was read at (`None`: the secret does not exist yet).
#[derive(Debug, Clone)]
pub struct Versioned<D> {
    /// The document.
    pub document: D,
    /// The version it came from.
    pub version: Option<VersionId>,
}

/// The current document of `name`, uncached, with its version.
///
/// # Errors
/// `format`'s error: the secrets port failed, the document is malformed, or the secret does not
/// exist and `format` has no [`DocumentFormat::absent`] document.
pub async fn read_versioned<S, F>(
    secrets: &S,
    name: &SecretName,
    format: &F,
) -> Result<Versioned<F::Document>, F::Error>
where
    S: SecretSource + ?Sized,
    F: DocumentFormat,
{
    match secrets.current(name).await {
        Ok(version) => Ok(Versioned {
            document: format.parse(version.value.expose_secret())?,
            version: Some(version.id),
        }),
        Err(SecretsError::NotFound(missing)) => match format.absent() {
            Some(document) => Ok(Versioned {
                document,
                version: None,
            }),
            None => Err(SecretsError::NotFound(missing).into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Writes `value` as the new current version of `name`, provided the current version is still
/// `read` (the version a [`Versioned`] came from); creates the secret when `read` is `None`.
///
/// # Errors
/// [`SecretsError::CurrentMoved`] when another writer got there first — it changed the secret,
/// or created it — and nothing was written (read again and retry); any other error of the port.
pub async fn write_if_unchanged<W: SecretWriter + ?Sized>(
    secrets: &W,
    name: &SecretName,
    read: Option<&VersionId>,
    value: &SecretString,
) -> Result<VersionId, SecretsError> {
    match read {
        None => match secrets.create(name, value).await {
            Err(SecretsError::AlreadyExists(_)) => {
                Err(SecretsError::CurrentMoved(name.to_string()))
            }
            other => other,
        },
        Some(expected) => {
            let token = VersionId::random();
            secrets
                .put_current_if(name, &token, value, expected)
                .await
                .map(|()| token)
        }
    }
}

/// The document in one secret, cached for a bounded time.
pub struct CachedDocument<S, F: DocumentFormat> {
    secrets: S,
    name: SecretName,
    format: F,
    cache: TtlCache<(), Arc<F::Document>>,
}

impl<S, F: DocumentFormat> std::fmt::Debug for CachedDocument<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedDocument")
            .field("name", &self.name)
            .field("ttl", &self.cache.ttl())
            .finish_non_exhaustive()
    }
}

impl<S: SecretSource, F: DocumentFormat> CachedDocument<S, F>
where
    F::Document: 'static,
{
    /// The document in secret `name`, read as `format`, cached for `ttl` — at most
    /// [`MAX_CACHE_TTL`] (300 s) whatever is asked.
    pub fn new(secrets: S, name: SecretName, format: F, ttl: Duration, clock: SharedClock) -> Self {
        Self {
            secrets,
            name,
            format,
            cache: TtlCache::new(1, ttl.min(MAX_CACHE_TTL), clock),
        }
    }

    /// The secret's name.
    pub fn name(&self) -> &SecretName {
        &self.name
    }

    /// The TTL in force.
    pub fn ttl(&self) -> Duration {
        self.cache.ttl()
    }

    /// The secrets port.
    pub fn secrets(&self) -> &S {
        &self.secrets
    }

    /// The format.
    pub fn format(&self) -> &F {
        &self.format
    }

    /// The document as of at most one TTL ago.
    ///
    /// # Errors
    /// As [`read_versioned`].
    pub async fn get(&self) -> Result<Arc<F::Document>, F::Error> {
        match self.cache.get(&()) {
            Some(hit) => Ok(hit),
            None => self.reload().await,
        }
    }

    /// The document read now, which the cache then serves.
    ///
    /// # Errors
    /// As [`read_versioned`].
    pub async fn reload(&self) -> Result<Arc<F::Document>, F::Error> {
        let read = read_versioned(&self.secrets, &self.name, &self.format).await?;
        Ok(self.remember(read.document))
    }

    /// Serves `document` from the cache from now on (after this process wrote it).
    pub fn remember(&self, document: F::Document) -> Arc<F::Document> {
        let document = Arc::new(document);
        self.cache.insert((), Arc::clone(&document));
        document
    }

    /// Forgets the cached document.
    pub fn invalidate(&self) {
        self.cache.remove(&());
    }
}

impl<S: SecretWriter, F: DocumentFormat> CachedDocument<S, F>
where
    F::Document: 'static,
{
    /// The current document with its version, uncached: the start of a read-modify-write.
    ///
    /// # Errors
    /// As [`read_versioned`].
    pub async fn read_for_update(&self) -> Result<Versioned<F::Document>, F::Error> {
        read_versioned(&self.secrets, &self.name, &self.format).await
    }

    /// Writes `value` (the stored form of `next`) if the secret is still at `read`'s version,
    /// and serves `next` from the cache.
    ///
    /// # Errors
    /// As [`write_if_unchanged`]; the cache is left as it was.
    pub async fn replace<D>(
        &self,
        read: &Versioned<D>,
        next: F::Document,
        value: &SecretString,
    ) -> Result<(VersionId, Arc<F::Document>), SecretsError> {
        let version =
            write_if_unchanged(&self.secrets, &self.name, read.version.as_ref(), value).await?;
        Ok((version, self.remember(next)))
    }
}
