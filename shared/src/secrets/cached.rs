//! A bounded, expiring read cache in front of any [`SecretSource`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    MAX_CACHE_TTL, SecretName, SecretSource, SecretVersion, SecretsError, Stage, VersionId,
};
use crate::cache::TtlCache;
use crate::clock::SharedClock;

/// Caches reads by (name, stage) and (name, version id). The TTL is capped at
/// [`MAX_CACHE_TTL`] whatever is asked, so a rotated or revoked secret is seen within five minutes;
/// [`CachedSecrets::invalidate`] forgets a secret at once (after a write in the same process).
pub struct CachedSecrets<S> {
    inner: S,
    by_stage: TtlCache<(SecretName, Stage), Option<SecretVersion>>,
    by_version: TtlCache<(SecretName, VersionId), SecretVersion>,
}

impl<S> std::fmt::Debug for CachedSecrets<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedSecrets")
            .field("ttl", &self.by_stage.ttl())
            .finish_non_exhaustive()
    }
}

impl<S: SecretSource> CachedSecrets<S> {
    /// A cache of at most `capacity` entries per index, each kept for `ttl` (at most 300 s).
    pub fn new(inner: S, capacity: usize, ttl: Duration, clock: SharedClock) -> Self {
        let ttl = ttl.min(MAX_CACHE_TTL);
        Self {
            inner,
            by_stage: TtlCache::new(capacity, ttl, Arc::clone(&clock)),
            by_version: TtlCache::new(capacity, ttl, clock),
        }
    }

    /// The TTL in force.
    pub fn ttl(&self) -> Duration {
        self.by_stage.ttl()
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Forgets every cached stage of `name`.
    pub fn invalidate(&self, name: &SecretName) {
        for stage in [Stage::Current, Stage::Pending, Stage::Previous] {
            self.by_stage.remove(&(name.clone(), stage));
        }
    }
}

#[async_trait]
impl<S: SecretSource> SecretSource for CachedSecrets<S> {
    async fn get(
        &self,
        name: &SecretName,
        stage: Stage,
    ) -> Result<Option<SecretVersion>, SecretsError> {
        let key = (name.clone(), stage);
        if let Some(hit) = self.by_stage.get(&key) {
            return Ok(hit);
        }
        let fresh = self.inner.get(name, stage).await?;
        self.by_stage.insert(key, fresh.clone());
        Ok(fresh)
    }

    async fn get_version(
        &self,
        name: &SecretName,
        id: &VersionId,
    ) -> Result<SecretVersion, SecretsError> {
        let key = (name.clone(), id.clone());
        if let Some(hit) = self.by_version.get(&key) {
            return Ok(hit);
        }
        let fresh = self.inner.get_version(name, id).await?;
        self.by_version.insert(key, fresh.clone());
        Ok(fresh)
    }
}
