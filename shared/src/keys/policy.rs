//! The rotation policy, as pure functions from (key set, now) to the next key set. Everything
//! that changes the key set — the scheduled run, the native 4-step rotation, `opsctl` — goes
//! through here and writes the result as one new secret version.

use std::time::Duration;

use super::jwk::{Kid, PrivateJwk};
use super::set::{KeyEntry, KeySet, KeyState, KeyTimings};
use crate::clock::Timestamp;

/// When and how keys rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// A new key is scheduled once the newest key is this old (default 90 days).
    pub period: Duration,
    /// How long a new key is published before it signs (≥ [`KeyTimings::min_lead`]).
    pub lead: Duration,
    /// The timing rules.
    pub timings: KeyTimings,
}

/// A policy that would let a key sign before every verifier can know it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "rotation lead of {lead_secs} s is shorter than key-set cache TTL + JWKS max-age + clock skew = {min_secs} s"
)]
pub struct LeadTooShort {
    /// The lead asked for.
    pub lead_secs: u64,
    /// The least acceptable lead.
    pub min_secs: u64,
}

impl RotationPolicy {
    /// A policy; refuses a lead below the minimum.
    pub fn new(
        period: Duration,
        lead: Duration,
        timings: KeyTimings,
    ) -> Result<Self, LeadTooShort> {
        if lead < timings.min_lead() {
            return Err(LeadTooShort {
                lead_secs: lead.as_secs(),
                min_secs: timings.min_lead().as_secs(),
            });
        }
        Ok(Self {
            period,
            lead,
            timings,
        })
    }
}

/// What a change did, for logs, metrics and `opsctl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The set had no usable key: one was added, active at once.
    Bootstrapped(Kid),
    /// A successor was added, signing from `activate_at`.
    Scheduled {
        /// The new key.
        kid: Kid,
        /// When it starts signing.
        activate_at: Timestamp,
    },
    /// Keys no longer published were dropped from the document.
    Pruned(Vec<Kid>),
    /// A key was revoked; `replacement` signs from now on if the revoked key was needed.
    Revoked {
        /// The revoked key.
        kid: Kid,
        /// The key added to replace it at once, if any.
        replacement: Option<Kid>,
    },
}

fn new_entry(now: Timestamp, activate_at: Timestamp) -> KeyEntry {
    let jwk = PrivateJwk::generate();
    KeyEntry {
        kid: jwk.kid(),
        created_at: now,
        activate_at,
        retire_at: None,
        revoked_at: None,
        private_jwk: jwk,
    }
}

fn usable(set: &KeySet, now: Timestamp, t: &KeyTimings) -> bool {
    set.keys
        .iter()
        .any(|k| matches!(set.state(k, now, t), KeyState::Active | KeyState::Pending))
}

/// Adds a key signing from `activate_at`. The key signing now stops when it starts: that follows
/// from the times ([`KeySet::signing_ends`]), so revoking the successor before it activates leaves
/// the current key signing.
fn add_successor(set: &mut KeySet, now: Timestamp, activate_at: Timestamp) -> Kid {
    let entry = new_entry(now, activate_at);
    let kid = entry.kid.clone();
    set.keys.push(entry);
    kid
}

fn prune(set: &mut KeySet, now: Timestamp, t: &KeyTimings) -> Vec<Kid> {
    let keep_revoked = t.publish_grace();
    let gone: Vec<Kid> = set
        .keys
        .iter()
        .filter(|k| match set.state(k, now, t) {
            KeyState::Expired => true,
            // Revoked keys stay in the document for a while, for the audit trail.
            KeyState::Revoked => k.revoked_at.is_some_and(|r| now >= r.plus(keep_revoked)),
            _ => false,
        })
        .map(|k| k.kid.clone())
        .collect();
    set.keys.retain(|k| !gone.contains(&k.kid));
    gone
}

/// The scheduled run: bootstrap an empty set, schedule a successor when the newest key is older
/// than the period (and none is pending), drop keys no longer published. `None` when nothing
/// changes.
pub fn plan(
    set: &KeySet,
    now: Timestamp,
    policy: &RotationPolicy,
) -> Option<(KeySet, Vec<Change>)> {
    let t = &policy.timings;
    let mut next = set.clone();
    let mut changes = Vec::new();
    if !usable(&next, now, t) {
        changes.push(Change::Bootstrapped(add_successor(&mut next, now, now)));
    } else {
        let has_pending = next
            .keys
            .iter()
            .any(|k| next.state(k, now, t) == KeyState::Pending);
        let newest = next
            .keys
            .iter()
            .filter(|k| k.revoked_at.is_none())
            .map(|k| k.created_at)
            .max();
        if !has_pending && newest.is_some_and(|c| now >= c.plus(policy.period)) {
            let activate_at = now.plus(policy.lead);
            let kid = add_successor(&mut next, now, activate_at);
            changes.push(Change::Scheduled { kid, activate_at });
        }
    }
    let pruned = prune(&mut next, now, t);
    if !pruned.is_empty() {
        changes.push(Change::Pruned(pruned));
    }
    if changes.is_empty() {
        return None;
    }
    next.version = set.version + 1;
    Some((next, changes))
}

/// A rotation asked for now (`opsctl keys rotate`, the native rotation's `createSecret`): adds a
/// successor signing after the lead, or at once with `immediate`. Without `immediate`, a set that
/// already has a pending key is returned unchanged with that key.
pub fn rotate(
    set: &KeySet,
    now: Timestamp,
    policy: &RotationPolicy,
    immediate: bool,
) -> (KeySet, Change) {
    let t = &policy.timings;
    if !immediate
        && let Some(pending) = set
            .keys
            .iter()
            .find(|k| set.state(k, now, t) == KeyState::Pending)
    {
        return (
            set.clone(),
            Change::Scheduled {
                kid: pending.kid.clone(),
                activate_at: pending.activate_at,
            },
        );
    }
    let mut next = set.clone();
    let activate_at = if immediate {
        now
    } else {
        now.plus(policy.lead)
    };
    let change = if usable(&next, now, t) {
        let kid = add_successor(&mut next, now, activate_at);
        Change::Scheduled { kid, activate_at }
    } else {
        Change::Bootstrapped(add_successor(&mut next, now, now))
    };
    prune(&mut next, now, t);
    next.version = set.version + 1;
    (next, change)
}

/// Why a revocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevokeError {
    /// No key has that kid.
    #[error("no key {0} in the key set")]
    UnknownKid(String),
    /// The key is revoked already.
    #[error("key {0} is already revoked")]
    AlreadyRevoked(String),
}

/// Emergency revocation of a compromised key: it leaves the JWKS at once, and if no other key can
/// sign now, a new key becomes active at once.
pub fn revoke(
    set: &KeySet,
    kid: &Kid,
    now: Timestamp,
    policy: &RotationPolicy,
) -> Result<(KeySet, Change), RevokeError> {
    let t = &policy.timings;
    let mut next = set.clone();
    let entry = next
        .keys
        .iter_mut()
        .find(|k| &k.kid == kid)
        .ok_or_else(|| RevokeError::UnknownKid(kid.to_string()))?;
    if entry.revoked_at.is_some() {
        return Err(RevokeError::AlreadyRevoked(kid.to_string()));
    }
    entry.revoked_at = Some(now);
    let replacement = if next.signer(now, t).is_none() {
        Some(add_successor(&mut next, now, now))
    } else {
        None
    };
    next.version = set.version + 1;
    Ok((
        next,
        Change::Revoked {
            kid: kid.clone(),
            replacement,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn policy() -> RotationPolicy {
        let t = KeyTimings::default();
        RotationPolicy::new(Duration::from_secs(90 * DAY), t.min_lead(), t).unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn a_lead_shorter_than_caches_and_skew_is_refused() {
        let t = KeyTimings::default();
        let err =
            RotationPolicy::new(Duration::from_secs(DAY), Duration::from_secs(659), t).unwrap_err();
        assert_eq!(err.min_secs, 660);
    }

    #[test]
    fn an_empty_set_gets_a_key_that_signs_at_once() {
        let p = policy();
        let (set, changes) = plan(&KeySet::default(), at(1_000), &p).unwrap();
        assert!(matches!(changes[..], [Change::Bootstrapped(_)]));
        assert_eq!(set.version, 1);
        assert!(set.signer(at(1_000), &p.timings).is_some());
        assert!(plan(&set, at(1_001), &p).is_none(), "nothing more to do");
    }

    #[test]
    fn an_old_key_gets_a_successor_after_the_lead_and_retires_then() {
        let p = policy();
        let (set, _) = plan(&KeySet::default(), at(0), &p).unwrap();
        let first = set.keys[0].kid.clone();
        let now = at(90 * DAY as i64);
        let (set, changes) = plan(&set, now, &p).unwrap();
        let Change::Scheduled { kid, activate_at } = &changes[0] else {
            panic!("{changes:?}")
        };
        assert_eq!(*activate_at, now.plus(p.lead));
        assert_eq!(set.signer(now, &p.timings).unwrap().kid, first);
        assert_eq!(set.signer(*activate_at, &p.timings).unwrap().kid, *kid);
        assert_eq!(
            set.signing_ends(set.get(&first).unwrap()),
            Some(*activate_at)
        );
        // A pending successor is not scheduled twice.
        assert!(plan(&set, now.plus(Duration::from_secs(1)), &p).is_none());
    }

    #[test]
    fn a_retired_key_is_pruned_once_its_grace_has_passed() {
        let p = policy();
        let (set, _) = plan(&KeySet::default(), at(0), &p).unwrap();
        let first = set.keys[0].kid.clone();
        let (set, _) = rotate(&set, at(10), &p, true);
        let grace = p.timings.publish_grace();
        assert!(plan(&set, at(10).plus(grace).minus(Duration::from_secs(1)), &p).is_none());
        let (set, changes) = plan(&set, at(10).plus(grace), &p).unwrap();
        assert_eq!(changes, vec![Change::Pruned(vec![first])]);
        assert_eq!(set.keys.len(), 1);
    }

    fn mint(set: &KeySet, now: Timestamp, t: &KeyTimings) -> crate::keys::MintedToken {
        use crate::keys::{
            PartnerId, PreparedKeys, Scope, ScopeClaim, TokenLifetime, TokenRequest,
        };
        let partner = PartnerId::new("partner-test").unwrap();
        let scope = ScopeClaim::parse(Scope::ISSUE).unwrap();
        PreparedKeys::new(set.clone(), *t, now)
            .unwrap()
            .mint(
                &TokenRequest {
                    partner_id: &partner,
                    scope: &scope,
                    email: None,
                    sub: None,
                    issuer: None,
                    lifetime: TokenLifetime::new(t.max_token_lifetime).unwrap(),
                },
                now,
            )
            .unwrap()
    }

    /// A relying party holding only `jwks`: finds the token's kid there and checks the signature
    /// (times are not checked: the test clock is not the wall clock).
    fn verify_with(jwks: &crate::keys::RenderedJwks, token: &str) -> Result<(), String> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|e| e.to_string())?
            .kid
            .ok_or("no kid")?;
        let doc: serde_json::Value = serde_json::from_str(&jwks.body).unwrap();
        let jwk = doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
        let key =
            DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap())
                .unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn revoking_the_signing_key_activates_a_replacement_at_once() {
        let p = policy();
        let t = &p.timings;
        let (set, _) = plan(&KeySet::default(), at(0), &p).unwrap();
        let kid = set.keys[0].kid.clone();
        // A token signed by the key before it is found compromised, still within its lifetime.
        let earlier = mint(&set, at(90), t);
        assert_eq!(earlier.kid, kid);
        assert_eq!(
            verify_with(
                &crate::keys::RenderedJwks::render(&set, at(90), t),
                earlier.token.expose()
            ),
            Ok(())
        );

        let (set, change) = revoke(&set, &kid, at(100), &p).unwrap();
        let Change::Revoked {
            replacement: Some(new),
            ..
        } = change
        else {
            panic!("{change:?}")
        };
        assert_eq!(set.signer(at(100), t).unwrap().kid, new);
        assert_eq!(
            set.get(&new).unwrap().activate_at,
            at(100),
            "the replacement signs from the instant of the revocation, with no lead"
        );
        let published: Vec<Kid> = set
            .published(at(100), t)
            .into_iter()
            .map(|j| j.kid)
            .collect();
        assert_eq!(published, vec![new.clone()]);

        // The JWKS rendered from the new set drops the revoked key at once...
        let jwks = crate::keys::RenderedJwks::render(&set, at(100), t);
        assert_eq!(jwks.kids, vec![new.clone()]);
        assert!(
            !jwks.body.contains(kid.as_str()),
            "the revoked kid is still in the JWKS: {}",
            jwks.body
        );
        // ...the signer uses the replacement at the same instant...
        let after = mint(&set, at(100), t);
        assert_eq!(after.kid, new);
        assert_eq!(verify_with(&jwks, after.token.expose()), Ok(()));
        // ...and a verifier holding the new JWKS rejects what the revoked key signed earlier,
        // though that token has not expired yet.
        assert!(earlier.expires_at > at(100));
        let rejected = verify_with(&jwks, earlier.token.expose());
        assert_eq!(rejected, Err(format!("kid {kid} is not in the JWKS")));

        assert!(matches!(
            revoke(&set, &kid, at(101), &p),
            Err(RevokeError::AlreadyRevoked(_))
        ));
    }

    #[test]
    fn revoking_a_key_that_replaced_an_older_one_never_brings_the_older_one_back() {
        let p = policy();
        let t = &p.timings;
        let (set, _) = plan(&KeySet::default(), at(0), &p).unwrap(); // K1 active
        let k1 = set.keys[0].kid.clone();
        let (set, _) = rotate(&set, at(10), &p, false); // K2 pending
        let (set, Change::Scheduled { kid: k3, .. }) = rotate(&set, at(20), &p, true) else {
            panic!()
        }; // K3 active now, K1 retired
        assert_eq!(set.signer(at(20), t).unwrap().kid, k3);
        let (set, change) = revoke(&set, &k3, at(30), &p).unwrap();
        let Change::Revoked {
            replacement: Some(new),
            ..
        } = change
        else {
            panic!("a new key must replace the revoked signer: {change:?}")
        };
        assert_ne!(new, k1);
        assert_eq!(set.signer(at(30), t).unwrap().kid, new);
        assert_eq!(
            set.state(set.get(&k1).unwrap(), at(30), t),
            KeyState::Retired
        );
    }

    #[test]
    fn revoking_a_pending_key_needs_no_replacement() {
        let p = policy();
        let (set, _) = plan(&KeySet::default(), at(0), &p).unwrap();
        let (set, Change::Scheduled { kid, .. }) = rotate(&set, at(5), &p, false) else {
            panic!()
        };
        let (set, change) = revoke(&set, &kid, at(6), &p).unwrap();
        assert!(matches!(
            change,
            Change::Revoked {
                replacement: None,
                ..
            }
        ));
        assert_eq!(set.published(at(6), &p.timings).len(), 1);
        // The current key keeps signing past the revoked successor's activation time.
        let later = at(5).plus(p.lead).plus(Duration::from_secs(1));
        assert_eq!(set.signer(later, &p.timings).unwrap().kid, set.keys[0].kid);
    }
}
