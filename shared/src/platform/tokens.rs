//! Our own Partner JWTs for outbound calls: minted with the key set, cached per user.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::PlatformError;
use crate::cache::TtlCache;
use crate::clock::SharedClock;
use crate::keys::{
    KeySetSource, MintedToken, PartnerId, PartnerJwt, ScopeClaim, TokenLifetime, TokenRequest,
};

/// A cached token is dropped this long before its `exp`, so that it never reaches the platform
/// about to expire (or already expired, with a little clock skew).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Where Partner JWTs for outbound calls come from.
#[async_trait]
pub trait PartnerTokens: Send + Sync {
    /// A token with the configured scope claim for `email` (None: a token without email, for status calls).
    async fn token(&self, email: Option<&str>) -> Result<PartnerJwt, PlatformError>;

    /// Forgets any cached token for `email`: the platform refused it (401), so it may be stale
    /// (its key rotated away or revoked). The next [`PartnerTokens::token`] mints afresh.
    fn forget(&self, _email: Option<&str>) {}
}

/// Mints with the key set and caches each token per email until 60 s before its expiry.
///
/// The cache is bounded (`capacity` users; the oldest token goes first) and every entry expires
/// by time. The e-mail is the cache key in memory only: it is never logged.
pub struct MintingTokens {
    keys: Arc<dyn KeySetSource>,
    partner_id: PartnerId,
    scope: ScopeClaim,
    lifetime: TokenLifetime,
    clock: SharedClock,
    cache: TtlCache<Option<String>, MintedToken>,
    minted: AtomicU64,
}

impl std::fmt::Debug for MintingTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintingTokens")
            .field("partner_id", &self.partner_id)
            .field("lifetime", &self.lifetime)
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl MintingTokens {
    /// Tokens for `partner_id` with the `scope` claim, living `lifetime`, cached for at most
    /// `capacity` users. A lifetime of 60 s or less is never cached (it would be stale at once).
    pub fn new(
        keys: Arc<dyn KeySetSource>,
        partner_id: PartnerId,
        scope: ScopeClaim,
        lifetime: TokenLifetime,
        clock: SharedClock,
        capacity: usize,
    ) -> Self {
        let ttl = lifetime.get().saturating_sub(REFRESH_MARGIN);
        Self {
            keys,
            partner_id,
            scope,
            lifetime,
            cache: TtlCache::new(capacity, ttl, Arc::clone(&clock)),
            clock,
            minted: AtomicU64::new(0),
        }
    }

    /// Tokens signed with the key set in `secrets` that `keys` names (cached for
    /// `KEY_SET_CACHE_SECONDS`), living `TOKEN_LIFETIME_SECONDS`, with the `scope` claim
    /// (`PLATFORM_TOKEN_SCOPE`): how the functions that call the platform (issue, status poller)
    /// build theirs.
    pub fn over_secret(
        secrets: Arc<dyn crate::secrets::SecretSource>,
        keys: &crate::keys::KeyConfig,
        partner_id: PartnerId,
        scope: ScopeClaim,
        clock: SharedClock,
        capacity: usize,
    ) -> Self {
        let key_set = crate::keys::SecretKeySet::new(
            secrets,
            keys.secret_name.clone(),
            keys.timings,
            Arc::clone(&clock),
        );
        Self::new(
            Arc::new(key_set),
            partner_id,
            scope,
            keys.token_lifetime,
            clock,
            capacity,
        )
    }

    /// How many tokens this instance has minted (cache misses), for tests and metrics.
    pub fn minted(&self) -> u64 {
        self.minted.load(Ordering::Relaxed)
    }

    fn fresh(&self, token: &MintedToken) -> bool {
        self.clock.now().plus(REFRESH_MARGIN) < token.expires_at
    }
}

#[async_trait]
impl PartnerTokens for MintingTokens {
    async fn token(&self, email: Option<&str>) -> Result<PartnerJwt, PlatformError> {
        let key = email.map(str::to_owned);
        if let Some(hit) = self.cache.get(&key)
            && self.fresh(&hit)
        {
            return Ok(hit.token);
        }
        let keys = self
            .keys
            .keys()
            .await
            .map_err(|e| PlatformError::Token(e.to_string()))?;
        let minted = keys
            .mint(
                &TokenRequest {
                    partner_id: &self.partner_id,
                    scope: &self.scope,
                    email,
                    sub: None,
                    issuer: None,
                    lifetime: self.lifetime,
                },
                self.clock.now(),
            )
            .map_err(|e| PlatformError::Token(e.to_string()))?;
        self.minted.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(kid = minted.kid.as_str(), "minted an outbound Partner JWT");
        let token = minted.token.clone();
        if self.fresh(&minted) {
            self.cache.insert(key, minted);
        }
        Ok(token)
    }

    fn forget(&self, email: Option<&str>) {
        self.cache.remove(&email.map(str::to_owned));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, Timestamp};
    use crate::keys::policy::{RotationPolicy, plan};
    use crate::keys::{KeySet, KeySourceError, KeyTimings, PreparedKeys};

    struct Fixed(Arc<PreparedKeys>);

    #[async_trait]
    impl KeySetSource for Fixed {
        async fn keys(&self) -> Result<Arc<PreparedKeys>, KeySourceError> {
            Ok(Arc::clone(&self.0))
        }
        fn invalidate(&self) {}
    }

    fn tokens(lifetime_secs: u64, capacity: usize) -> (MintingTokens, ManualClock) {
        let now = Timestamp::from_secs(1_800_000_000);
        let clock = ManualClock::new(now);
        let t = KeyTimings::default();
        let p = RotationPolicy::new(Duration::from_secs(86_400), t.min_lead(), t).unwrap();
        let (set, _) = plan(&KeySet::default(), now, &p).unwrap();
        let keys = Arc::new(Fixed(Arc::new(PreparedKeys::new(set, t, now).unwrap())));
        let tokens = MintingTokens::new(
            keys,
            PartnerId::new("p").unwrap(),
            ScopeClaim::parse("issue").unwrap(),
            TokenLifetime::new(Duration::from_secs(lifetime_secs)).unwrap(),
            Arc::new(clock.clone()),
            capacity,
        );
        (tokens, clock)
    }

    #[tokio::test]
    async fn a_token_is_reused_until_a_minute_before_it_expires() {
        let (t, clock) = tokens(300, 8);
        let a = t.token(Some("a@example.com")).await.unwrap();
        clock.advance(Duration::from_secs(239));
        assert_eq!(t.token(Some("a@example.com")).await.unwrap(), a);
        assert_eq!(t.minted(), 1);
        clock.advance(Duration::from_secs(1));
        assert_ne!(t.token(Some("a@example.com")).await.unwrap(), a);
        assert_eq!(t.minted(), 2);
    }

    #[tokio::test]
    async fn each_email_and_the_status_token_have_their_own_entry() {
        let (t, _) = tokens(300, 8);
        let a = t.token(Some("a@example.com")).await.unwrap();
        let b = t.token(Some("b@example.com")).await.unwrap();
        let none = t.token(None).await.unwrap();
        assert!(a != b && b != none && a != none);
        assert_eq!(t.token(None).await.unwrap(), none);
        assert_eq!(t.minted(), 3);
    }

    #[tokio::test]
    async fn forgetting_a_token_mints_a_new_one() {
        let (t, _) = tokens(300, 8);
        let a = t.token(Some("a@example.com")).await.unwrap();
        t.forget(Some("a@example.com"));
        assert_ne!(t.token(Some("a@example.com")).await.unwrap(), a);
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let (t, clock) = tokens(300, 2);
        for user in ["a@x.io", "b@x.io", "c@x.io"] {
            t.token(Some(user)).await.unwrap();
            clock.advance(Duration::from_millis(10));
        }
        assert_eq!(t.cache.len(), 2);
    }

    #[tokio::test]
    async fn a_short_lifetime_is_never_cached() {
        let (t, _) = tokens(60, 8);
        t.token(None).await.unwrap();
        t.token(None).await.unwrap();
        assert_eq!(t.minted(), 2);
    }
}
