//! A small in-memory cache with a size bound and a time-to-live, on an injected [`Clock`].
//!
//! Every cache in the bundle has both bounds (docs/architecture.md §1): a Lambda container lives for hours and a
//! cache without a TTL would serve a rotated key or a revoked API key forever. Written by hand
//! because the well-known caches (moka, quick_cache) keep their own clock, which would make the
//! TTL contract impossible to test without sleeping; this one is a map with insertion times.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::{SharedClock, Timestamp};

/// A bounded, expiring map. When full, inserting evicts expired entries first, then the oldest.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    capacity: usize,
    ttl: Duration,
    clock: SharedClock,
    entries: Mutex<HashMap<K, (Timestamp, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// A cache holding at most `capacity` entries (at least 1), each for at most `ttl`.
    pub fn new(capacity: usize, ttl: Duration, clock: SharedClock) -> Self {
        Self {
            capacity: capacity.max(1),
            ttl,
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The time-to-live of an entry.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The value, if present and younger than the TTL.
    pub fn get(&self, key: &K) -> Option<V> {
        let now = self.clock.now();
        let mut entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some((at, v)) if now.since(*at) < self.ttl => Some(v.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` under `key`, stamped now.
    pub fn insert(&self, key: K, value: V) {
        let now = self.clock.now();
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if !entries.contains_key(&key) && entries.len() >= self.capacity {
            entries.retain(|_, (at, _)| now.since(*at) < self.ttl);
            if entries.len() >= self.capacity
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (now, value));
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }

    /// How many entries are held (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn cache(capacity: usize, ttl_secs: u64) -> (TtlCache<String, u32>, ManualClock) {
        let clock = ManualClock::new(Timestamp::from_secs(1_000));
        (
            TtlCache::new(
                capacity,
                Duration::from_secs(ttl_secs),
                Arc::new(clock.clone()),
            ),
            clock,
        )
    }

    #[test]
    fn an_entry_is_served_until_its_ttl_and_not_after() {
        let (c, clock) = cache(4, 60);
        c.insert("a".into(), 1);
        clock.advance(Duration::from_secs(59));
        assert_eq!(c.get(&"a".into()), Some(1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(c.get(&"a".into()), None);
    }

    #[test]
    fn a_full_cache_evicts_the_oldest_entry() {
        let (c, clock) = cache(2, 60);
        c.insert("a".into(), 1);
        clock.advance(Duration::from_secs(1));
        c.insert("b".into(), 2);
        clock.advance(Duration::from_secs(1));
        c.insert("c".into(), 3);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&"a".into()), None);
        assert_eq!(c.get(&"b".into()), Some(2));
        assert_eq!(c.get(&"c".into()), Some(3));
    }

    #[test]
    fn replacing_an_entry_does_not_evict_another() {
        let (c, _) = cache(2, 60);
        c.insert("a".into(), 1);
        c.insert("b".into(), 2);
        c.insert("a".into(), 10);
        assert_eq!(c.get(&"a".into()), Some(10));
        assert_eq!(c.get(&"b".into()), Some(2));
    }
}
