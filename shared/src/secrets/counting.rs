//! Counts the reads that reach a secrets source: how tests and benchmarks prove that warm
//! invocations are served from the cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::{SecretName, SecretSource, SecretVersion, SecretsError, Stage, VersionId};

/// A [`SecretSource`] that counts the calls passing through it.
#[derive(Debug, Clone)]
pub struct CountingSource<S> {
    inner: S,
    calls: Arc<AtomicUsize>,
}

impl<S> CountingSource<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many reads reached the wrapped source (shared by clones).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<S: SecretSource> SecretSource for CountingSource<S> {
    async fn get(
        &self,
        name: &SecretName,
        stage: Stage,
    ) -> Result<Option<SecretVersion>, SecretsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.get(name, stage).await
    }

    async fn get_version(
        &self,
        name: &SecretName,
        id: &VersionId,
    ) -> Result<SecretVersion, SecretsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.get_version(name, id).await
    }
}
