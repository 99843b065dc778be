//! The data keys in the secrets port, cached with a bounded TTL.

#[allow(clippy::wildcard_imports)]
use super::*;

/// How the data-keys secret reads. Its absence is an error ([`DataKeySource::ensure`] creates
/// it): a function must never encrypt under keys it made up alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct DataKeysFormat;

impl DocumentFormat for DataKeysFormat {
    type Document = DataKeys;
    type Error = PiiError;

    fn parse(&self, text: &str) -> Result<DataKeys, PiiError> {
        DataKeys::parse(text)
    }

    fn absent(&self) -> Option<DataKeys> {
        None
    }
}

/// The data keys in one secret.
pub struct DataKeySource<S> {
    document: CachedDocument<S, DataKeysFormat>,
}

impl<S> fmt::Debug for DataKeySource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeySource")
            .field("document", &self.document)
            .finish()
    }
}

impl<S: SecretSource> DataKeySource<S> {
    /// The data keys in secret `name`, cached for `ttl` (at most [`MAX_CACHE_TTL`](crate::secrets::MAX_CACHE_TTL), 300 s,
    /// whatever is asked).
    pub fn new(secrets: S, name: SecretName, ttl: Duration, clock: SharedClock) -> Self {
        Self {
            document: CachedDocument::new(secrets, name, DataKeysFormat, ttl, clock),
        }
    }

    /// The secret's name.
    pub fn name(&self) -> &SecretName {
        self.document.name()
    }

    /// The cache TTL in force.
    pub fn ttl(&self) -> Duration {
        self.document.ttl()
    }

    /// The data keys as of at most one TTL ago.
    ///
    /// # Errors
    /// [`PiiError::Secrets`] (with [`SecretsError::NotFound`] when the secret does not exist:
    /// see [`DataKeySource::ensure`]) or [`PiiError::MalformedKeys`].
    pub async fn keys(&self) -> Result<Arc<DataKeys>, PiiError> {
        self.document.get().await
    }

    /// The data keys, holding key `id`: the cached keys if they do, otherwise read again once
    /// (another instance may have rotated since this one cached them).
    ///
    /// # Errors
    /// As [`DataKeySource::keys`], and [`PiiError::UnknownKey`] if the secret does not hold it.
    pub async fn keys_with(&self, id: &str) -> Result<Arc<DataKeys>, PiiError> {
        let keys = self.keys().await?;
        if keys.has_key(id) {
            return Ok(keys);
        }
        let keys = self.document.reload().await?;
        if keys.has_key(id) {
            Ok(keys)
        } else {
            Err(PiiError::UnknownKey(
                id.chars().take(MAX_KEY_ID_LEN + 8).collect(),
            ))
        }
    }

    /// A [`Protector`] over [`DataKeySource::keys`].
    ///
    /// # Errors
    /// As [`DataKeySource::keys`].
    pub async fn protector(&self) -> Result<Protector, PiiError> {
        Ok(Protector::new(self.keys().await?))
    }

    /// Forgets the cached keys.
    pub fn invalidate(&self) {
        self.document.invalidate();
    }
}

impl<S: SecretWriter> DataKeySource<S> {
    /// The data keys, creating the secret with fresh keys ([`DataKeys::generate`]) when it does
    /// not exist. An existing secret is never replaced, even a malformed one (that is an error);
    /// when another process creates it at the same moment, its keys win.
    ///
    /// # Errors
    /// As [`DataKeySource::keys`].
    pub async fn ensure(&self) -> Result<Arc<DataKeys>, PiiError> {
        match self.keys().await {
            Err(PiiError::Secrets(SecretsError::NotFound(_))) => {}
            other => return other,
        }
        let fresh = DataKeys::generate();
        let value = fresh.to_secret();
        let none = Versioned {
            document: (),
            version: None,
        };
        match self.document.replace(&none, fresh, &value).await {
            Ok((_, keys)) => Ok(keys),
            Err(SecretsError::CurrentMoved(_)) => self.document.reload().await,
            Err(e) => Err(e.into()),
        }
    }

    /// Rotates the encryption key in the secret ([`DataKeys::rotate`]) as a compare-and-swap on
    /// the current version, and returns the new keys.
    ///
    /// # Errors
    /// [`PiiError::Secrets`] with [`SecretsError::CurrentMoved`] when the secret changed while
    /// rotating (read again and retry), or as [`DataKeySource::keys`].
    pub async fn rotate(&self) -> Result<Arc<DataKeys>, PiiError> {
        let mut read = self.document.read_for_update().await?;
        read.document.rotate();
        let value = read.document.to_secret();
        let next = read.document.clone();
        let (_, keys) = self.document.replace(&read, next, &value).await?;
        Ok(keys)
    }
}
