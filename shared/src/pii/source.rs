//! The data keys in the secrets port, cached with a bounded TTL.

#[allow(clippy::wildcard_imports)]
use super::*;

pub struct DataKeySource<S> {
    secrets: S,
    name: SecretName,
    cache: TtlCache<(), Arc<DataKeys>>,
}

impl<S> fmt::Debug for DataKeySource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeySource")
            .field("name", &self.name)
            .field("ttl", &self.cache.ttl())
            .finish_non_exhaustive()
    }
}

impl<S: SecretSource> DataKeySource<S> {
    /// The data keys in secret `name`, cached for `ttl` (at most [`MAX_CACHE_TTL`], 300 s,
    /// whatever is asked).
    pub fn new(secrets: S, name: SecretName, ttl: Duration, clock: SharedClock) -> Self {
        Self {
            secrets,
            name,
            cache: TtlCache::new(1, ttl.min(MAX_CACHE_TTL), clock),
        }
    }

    /// The secret's name.
    pub fn name(&self) -> &SecretName {
        &self.name
    }

    /// The cache TTL in force.
    pub fn ttl(&self) -> Duration {
        self.cache.ttl()
    }

    /// The data keys as of at most one TTL ago.
    ///
    /// # Errors
    /// [`PiiError::Secrets`] (with [`SecretsError::NotFound`] when the secret does not exist:
    /// see [`DataKeySource::ensure`]) or [`PiiError::MalformedKeys`].
    pub async fn keys(&self) -> Result<Arc<DataKeys>, PiiError> {
        if let Some(hit) = self.cache.get(&()) {
            return Ok(hit);
        }
        self.reload().await
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
        let keys = self.reload().await?;
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
        self.cache.remove(&());
    }

    async fn reload(&self) -> Result<Arc<DataKeys>, PiiError> {
        let version = self.secrets.current(&self.name).await?;
        let keys = Arc::new(DataKeys::parse(version.value.expose_secret())?);
        self.cache.insert((), Arc::clone(&keys));
        Ok(keys)
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
        let fresh = Arc::new(DataKeys::generate());
        match self.secrets.create(&self.name, &fresh.to_secret()).await {
            Ok(_) => {
                self.cache.insert((), Arc::clone(&fresh));
                Ok(fresh)
            }
            Err(SecretsError::AlreadyExists(_)) => self.reload().await,
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
        let version = self.secrets.current(&self.name).await?;
        let mut keys = DataKeys::parse(version.value.expose_secret())?;
        keys.rotate();
        self.secrets
            .put_current_if(
                &self.name,
                &VersionId::random(),
                &keys.to_secret(),
                &version.id,
            )
            .await?;
        let keys = Arc::new(keys);
        self.cache.insert((), Arc::clone(&keys));
        Ok(keys)
    }
}
