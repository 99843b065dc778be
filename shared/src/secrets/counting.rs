//! Counts the reads that reach a secrets source: how tests and benchmarks prove that warm
//! invocations are served from the cache.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use secrecy::SecretString;

use super::{
    SecretName, SecretSource, SecretVersion, SecretWriter, SecretsError, Stage, VersionId,
    VersionStages,
};

/// A [`SecretSource`] that counts the reads passing through it, in total and per secret name.
/// Over a [`SecretWriter`] it is one too: writes pass through uncounted, and listing a secret's
/// version stages counts as a read (it is one more Secrets Manager request that reads).
#[derive(Debug, Clone)]
pub struct CountingSource<S> {
    inner: S,
    calls: Arc<AtomicUsize>,
    by_name: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl<S> CountingSource<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Arc::new(AtomicUsize::new(0)),
            by_name: Arc::default(),
        }
    }

    /// How many reads reached the wrapped source (shared by clones).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// How many reads of each secret reached the wrapped source (shared by clones).
    pub fn calls_by_name(&self) -> BTreeMap<String, usize> {
        self.by_name
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The reads per secret as text, `name count` joined by commas, for a benchmark's line.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .calls_by_name()
            .into_iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        parts.join(", ")
    }

    /// Starts counting again from zero (for every clone).
    pub fn reset(&self) {
        self.calls.store(0, Ordering::SeqCst);
        self.by_name
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn count(&self, name: &SecretName) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self
            .by_name
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.as_str().to_owned())
            .or_default() += 1;
    }
}

#[async_trait]
impl<S: SecretSource> SecretSource for CountingSource<S> {
    async fn get(
        &self,
        name: &SecretName,
        stage: Stage,
    ) -> Result<Option<SecretVersion>, SecretsError> {
        self.count(name);
        self.inner.get(name, stage).await
    }

    async fn get_version(
        &self,
        name: &SecretName,
        id: &VersionId,
    ) -> Result<SecretVersion, SecretsError> {
        self.count(name);
        self.inner.get_version(name, id).await
    }
}

#[async_trait]
impl<S: SecretWriter> SecretWriter for CountingSource<S> {
    async fn create(
        &self,
        name: &SecretName,
        value: &SecretString,
    ) -> Result<VersionId, SecretsError> {
        self.inner.create(name, value).await
    }

    async fn put_pending(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
    ) -> Result<(), SecretsError> {
        self.inner.put_pending(name, token, value).await
    }

    async fn put_current(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
    ) -> Result<(), SecretsError> {
        self.inner.put_current(name, token, value).await
    }

    async fn put_current_if(
        &self,
        name: &SecretName,
        token: &VersionId,
        value: &SecretString,
        expected: &VersionId,
    ) -> Result<(), SecretsError> {
        self.inner
            .put_current_if(name, token, value, expected)
            .await
    }

    async fn promote(&self, name: &SecretName, id: &VersionId) -> Result<(), SecretsError> {
        self.inner.promote(name, id).await
    }

    async fn stages(&self, name: &SecretName) -> Result<VersionStages, SecretsError> {
        self.count(name);
        self.inner.stages(name).await
    }

    async fn discard_pending(&self, name: &SecretName, id: &VersionId) -> Result<(), SecretsError> {
        self.inner.discard_pending(name, id).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clock::{SharedClock, SystemClock};
    use crate::secrets::SecretWriter;
    use crate::secrets::file::FileSecrets;

    #[tokio::test]
    async fn reads_are_counted_in_total_and_per_secret_name_failed_ones_too() {
        let dir = tempfile::tempdir().unwrap();
        let clock: SharedClock = Arc::new(SystemClock);
        let files = FileSecrets::open(dir.path(), clock).unwrap();
        let (a, b) = (SecretName::new("a").unwrap(), SecretName::new("b").unwrap());
        files.create(&a, &"1".to_owned().into()).await.unwrap();
        let counting = CountingSource::new(files);
        let clone = counting.clone();
        counting.get(&a, Stage::Current).await.unwrap();
        clone.get(&a, Stage::Current).await.unwrap();
        // A read of a missing secret is a request too: it counts.
        assert!(counting.get(&b, Stage::Current).await.is_err());
        assert_eq!(counting.calls(), 3);
        assert_eq!(
            counting.calls_by_name(),
            BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)])
        );
        assert_eq!(counting.summary(), "a 2, b 1");
        clone.reset();
        assert_eq!((counting.calls(), counting.summary()), (0, String::new()));
    }
}
