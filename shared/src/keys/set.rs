//! The key set: one versioned JSON document in one secret, holding every signing key with the
//! times that decide its state. Because states follow from times, every container that has read
//! the same document agrees on which key signs and which keys are published, at any instant.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::jwk::{Kid, PrivateJwk, PublicJwk};
use crate::clock::Timestamp;

/// One signing key and its lifecycle times (RFC 3339 in the document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyEntry {
    /// The RFC 7638 thumbprint of the public key.
    pub kid: Kid,
    /// When the key was generated.
    #[serde(with = "crate::clock::rfc3339")]
    pub created_at: Timestamp,
    /// From when the key may sign (it is published from the moment it is written).
    #[serde(with = "crate::clock::rfc3339")]
    pub activate_at: Timestamp,
    /// When the key stops signing (set when a successor is scheduled).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::clock::rfc3339_opt"
    )]
    pub retire_at: Option<Timestamp>,
    /// When the key was revoked as compromised: unpublished and unusable from then on.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::clock::rfc3339_opt"
    )]
    pub revoked_at: Option<Timestamp>,
    /// The private key.
    pub private_jwk: PrivateJwk,
}

/// The state of a key at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not yet signing.
    Pending,
    /// The key that signs now.
    Active,
    /// No longer signing, still published so that its tokens verify.
    Retired,
    /// No longer signing nor published.
    Expired,
    /// Revoked: never signs nor is published again.
    Revoked,
}

/// The timing rules of the key set (docs/architecture.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimings {
    /// The longest a Partner JWT lives (≤ 300 s).
    pub max_token_lifetime: Duration,
    /// Allowed clock difference between us and verifiers.
    pub clock_skew: Duration,
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age: Duration,
    /// How long a container may serve a cached key set.
    pub key_set_cache_ttl: Duration,
}

impl Default for KeyTimings {
    fn default() -> Self {
        Self {
            max_token_lifetime: Duration::from_secs(300),
            clock_skew: Duration::from_secs(60),
            jwks_max_age: Duration::from_secs(300),
            key_set_cache_ttl: Duration::from_secs(300),
        }
    }
}

impl KeyTimings {
    /// The least time between writing a new key and letting it sign: every container re-reads
    /// the key set within the cache TTL, every verifier re-fetches the JWKS within its max-age,
    /// plus clock skew.
    pub fn min_lead(&self) -> Duration {
        self.key_set_cache_ttl + self.jwks_max_age + self.clock_skew
    }

    /// How long a key stays published after it stopped signing: a container holding an older
    /// copy of the key set may sign with it for one more cache TTL (a key retired at once, by
    /// `rotate --now` or a revocation of its successor, gives no notice), then its last token lives
    /// for the token lifetime plus skew; a JWKS max-age on top for good measure.
    pub fn publish_grace(&self) -> Duration {
        self.key_set_cache_ttl + self.max_token_lifetime + self.clock_skew + self.jwks_max_age
    }
}

/// The key set document. `version` increases by one on every write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct KeySet {
    /// The document's version.
    #[serde(default)]
    pub version: u64,
    /// Every key still worth keeping, oldest first.
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
}

/// Why a key set document cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    /// The secret is not a key set document.
    #[error("the key set is not a valid document: {0}")]
    Malformed(String),
    /// A key's kid does not match its public key.
    #[error("key {0} has a kid that is not its thumbprint")]
    KidMismatch(String),
}

impl KeySet {
    /// Parses and checks a stored document (an empty template document is a valid, empty set).
    pub fn parse(text: &str) -> Result<Self, KeySetError> {
        let set: KeySet = serde_json::from_str(text).map_err(|e| {
            KeySetError::Malformed(format!("{:?} error at line {}", e.classify(), e.line()))
        })?;
        for k in &set.keys {
            if k.private_jwk.kid() != k.kid {
                return Err(KeySetError::KidMismatch(k.kid.to_string()));
            }
        }
        Ok(set)
    }

    /// The document as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// When `key` stops (or stopped) signing: its retire time, or the activation of the next
    /// newer key, whichever comes first. A successor revoked before it ever activated does not
    /// count (the current key goes on signing); one revoked after it activated does — the older
    /// key stopped signing then and must never sign again.
    pub fn signing_ends(&self, key: &KeyEntry) -> Option<Timestamp> {
        let successor = self
            .keys
            .iter()
            .filter(|k| k.revoked_at.is_none_or(|r| r >= k.activate_at))
            .filter(|k| k.activate_at > key.activate_at)
            .map(|k| k.activate_at)
            .min();
        match (key.retire_at, successor) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The state of `key` at `now`.
    pub fn state(&self, key: &KeyEntry, now: Timestamp, t: &KeyTimings) -> KeyState {
        if key.revoked_at.is_some_and(|r| r <= now) {
            return KeyState::Revoked;
        }
        if now < key.activate_at {
            return KeyState::Pending;
        }
        match self.signing_ends(key) {
            Some(end) if end <= now => {
                if now < end.plus(t.publish_grace()) {
                    KeyState::Retired
                } else {
                    KeyState::Expired
                }
            }
            _ => KeyState::Active,
        }
    }

    /// The key that signs at `now`: the newest active one.
    pub fn signer(&self, now: Timestamp, t: &KeyTimings) -> Option<&KeyEntry> {
        self.keys
            .iter()
            .filter(|k| self.state(k, now, t) == KeyState::Active)
            .max_by_key(|k| k.activate_at)
    }

    /// The public keys to publish at `now`: pending, active and retired ones.
    pub fn published(&self, now: Timestamp, t: &KeyTimings) -> Vec<PublicJwk> {
        self.keys
            .iter()
            .filter(|k| {
                matches!(
                    self.state(k, now, t),
                    KeyState::Pending | KeyState::Active | KeyState::Retired
                )
            })
            .map(|k| k.private_jwk.public())
            .collect()
    }

    /// The entry with `kid`.
    pub fn get(&self, kid: &Kid) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| &k.kid == kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(activate: i64) -> KeyEntry {
        let jwk = PrivateJwk::generate();
        KeyEntry {
            kid: jwk.kid(),
            created_at: Timestamp::from_secs(activate - 1000),
            activate_at: Timestamp::from_secs(activate),
            retire_at: None,
            revoked_at: None,
            private_jwk: jwk,
        }
    }

    #[test]
    fn states_follow_from_times() {
        let t = KeyTimings::default();
        let set = KeySet {
            version: 1,
            keys: vec![entry(1_000), entry(5_000)],
        };
        let (old, new) = (&set.keys[0], &set.keys[1]);
        let at = Timestamp::from_secs;
        assert_eq!(set.state(old, at(999), &t), KeyState::Pending);
        assert_eq!(set.state(old, at(1_000), &t), KeyState::Active);
        assert_eq!(set.state(new, at(4_999), &t), KeyState::Pending);
        assert_eq!(set.signer(at(4_999), &t).unwrap().kid, old.kid);
        assert_eq!(set.state(old, at(5_000), &t), KeyState::Retired);
        assert_eq!(set.signer(at(5_000), &t).unwrap().kid, new.kid);
        let grace = t.publish_grace().as_secs() as i64;
        assert_eq!(set.state(old, at(5_000 + grace - 1), &t), KeyState::Retired);
        assert_eq!(set.state(old, at(5_000 + grace), &t), KeyState::Expired);
        assert_eq!(set.published(at(5_000 + grace), &t).len(), 1);
    }

    #[test]
    fn a_revoked_key_neither_signs_nor_is_published() {
        let t = KeyTimings::default();
        let mut set = KeySet {
            version: 1,
            keys: vec![entry(1_000)],
        };
        set.keys[0].revoked_at = Some(Timestamp::from_secs(2_000));
        assert!(set.signer(Timestamp::from_secs(2_000), &t).is_none());
        assert!(set.published(Timestamp::from_secs(2_000), &t).is_empty());
        assert_eq!(set.published(Timestamp::from_secs(1_999), &t).len(), 1);
    }

    #[test]
    fn a_document_round_trips_and_a_forged_kid_is_refused() {
        let set = KeySet {
            version: 3,
            keys: vec![entry(1_000)],
        };
        let text = set.to_json();
        assert!(text.contains("\"activateAt\":\"1970-01-01T00:16:40"));
        assert_eq!(KeySet::parse(&text).unwrap(), set);
        let forged = text.replace(set.keys[0].kid.as_str(), &"A".repeat(43));
        assert!(matches!(
            KeySet::parse(&forged),
            Err(KeySetError::KidMismatch(_))
        ));
        assert!(
            KeySet::parse("{\"keys\": [], \"bootstrap\": \"x\"}")
                .unwrap()
                .keys
                .is_empty()
        );
        assert!(KeySet::parse("not json").is_err());
    }

    #[test]
    fn the_minimum_lead_covers_caches_and_skew() {
        let t = KeyTimings::default();
        assert_eq!(t.min_lead(), Duration::from_secs(660));
        assert_eq!(t.publish_grace(), Duration::from_secs(960));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_key_set_text_parses_or_is_refused_without_panicking(text in "\\PC{0,400}") {
            let _ = KeySet::parse(&text);
        }

        #[test]
        fn any_key_entry_parses_or_is_refused_without_panicking(
            kid in "\\PC{0,50}",
            x in "[A-Za-z0-9_-]{0,50}",
            d in "[A-Za-z0-9_-]{0,50}",
            created in any::<i64>(),
            version in any::<i64>(),
        ) {
            let doc = serde_json::json!({"version": version, "keys": [{
                "kid": kid, "createdAt": created, "activateAt": created,
                "privateJwk": {"kty": "EC", "crv": "P-256", "x": x, "y": x, "d": d}
            }]});
            let _ = KeySet::parse(&doc.to_string());
        }
    }
}
