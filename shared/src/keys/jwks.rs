//! The published JWKS: rendered once per change of the published key list, with a strong ETag,
//! so that a warm request only compares a few timestamps and an ETag.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::jwk::Kid;
use super::set::{KeySet, KeyTimings};
use crate::clock::Timestamp;

/// A rendered JWKS document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedJwks {
    /// The JSON body: `{"keys":[...]}` with public members only.
    pub body: String,
    /// A strong ETag (quoted).
    pub etag: String,
    /// The kids it lists, in order.
    pub kids: Vec<Kid>,
}

impl RenderedJwks {
    /// Renders the keys of `set` published at `now`.
    pub fn render(set: &KeySet, now: Timestamp, timings: &KeyTimings) -> Self {
        let keys = set.published(now, timings);
        let kids = keys.iter().map(|k| k.kid.clone()).collect();
        let body = serde_json::json!({ "keys": keys }).to_string();
        let etag = strong_etag(&body);
        Self { body, etag, kids }
    }

    /// Whether an `If-None-Match` header value matches this document's ETag (a list of tags, or
    /// `*`; a weak tag matches by its opaque part, as RFC 9110 asks for `If-None-Match`).
    pub fn matches(&self, if_none_match: &str) -> bool {
        etag_matches(if_none_match, &self.etag)
    }
}

/// A strong ETag (quoted) of a published document's body.
pub fn strong_etag(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..18]))
}

/// Whether an `If-None-Match` header value matches `etag` (a list of tags, or `*`; a weak tag
/// matches by its opaque part, as RFC 9110 asks for `If-None-Match`).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag))
}

/// The OIDC discovery document of the Partner JWTs issued as `issuer` (the public base URL):
/// where their JWKS is and how they are signed, with its strong `ETag`. Only what a verifier
/// needs: this is not an OpenID provider (no authorization endpoint), it only describes tokens.
pub fn discovery_document(issuer: &str) -> (String, String) {
    let body = serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": ["ES256"],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "claims_supported": ["iss", "sub", "email", "partnerId", "scope", "iat", "nbf", "exp", "jti"],
    })
    .to_string();
    let etag = strong_etag(&body);
    (body, etag)
}

/// Keeps the last rendering and reuses it while the published key list is the same.
#[derive(Debug, Default)]
pub struct JwksCache {
    last: Mutex<Option<(u64, Arc<RenderedJwks>)>>,
}

impl JwksCache {
    /// The JWKS for `set` at `now`.
    pub fn get(&self, set: &KeySet, now: Timestamp, timings: &KeyTimings) -> Arc<RenderedJwks> {
        let published: Vec<&Kid> = set
            .keys
            .iter()
            .filter(|k| {
                matches!(
                    set.state(k, now, timings),
                    super::set::KeyState::Pending
                        | super::set::KeyState::Active
                        | super::set::KeyState::Retired
                )
            })
            .map(|k| &k.kid)
            .collect();
        if let Ok(last) = self.last.lock()
            && let Some((version, rendered)) = last.as_ref()
            && *version == set.version
            && rendered.kids.iter().eq(published.iter().copied())
        {
            return Arc::clone(rendered);
        }
        let rendered = Arc::new(RenderedJwks::render(set, now, timings));
        if let Ok(mut last) = self.last.lock() {
            *last = Some((set.version, Arc::clone(&rendered)));
        }
        rendered
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::keys::policy::{RotationPolicy, plan, revoke, rotate};

    fn policy() -> RotationPolicy {
        let t = KeyTimings::default();
        RotationPolicy::new(Duration::from_secs(86_400), t.min_lead(), t).unwrap()
    }

    #[test]
    fn the_jwks_never_contains_a_private_member_in_any_key_state() {
        let p = policy();
        let t = &p.timings;
        let at = Timestamp::from_secs;
        // Build a set with an active, a pending, a retired and a revoked key.
        let (set, _) = plan(&KeySet::default(), at(0), &p).unwrap();
        let (set, _) = rotate(&set, at(10), &p, true); // first key retired, second active
        let (set, _) = rotate(&set, at(20), &p, false); // third pending
        let second = set.signer(at(20), t).unwrap().kid.clone();
        let (set, _) = rotate(&set, at(30), &p, true); // fourth active, second retired
        let (set, _) = revoke(&set, &second, at(40), &p).unwrap();
        let states: Vec<_> = set.keys.iter().map(|k| set.state(k, at(40), t)).collect();
        assert!(states.contains(&crate::keys::KeyState::Retired));
        assert!(states.contains(&crate::keys::KeyState::Pending));
        assert!(states.contains(&crate::keys::KeyState::Active));
        assert!(states.contains(&crate::keys::KeyState::Revoked));

        let rendered = RenderedJwks::render(&set, at(40), t);
        let doc: serde_json::Value = serde_json::from_str(&rendered.body).unwrap();
        let keys = doc["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 3, "revoked key not published");
        for k in keys {
            let mut members: Vec<&str> =
                k.as_object().unwrap().keys().map(String::as_str).collect();
            members.sort_unstable();
            assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        }
        for entry in &set.keys {
            assert!(!rendered.body.contains(&entry.private_jwk.d));
        }
    }

    #[test]
    fn the_etag_is_strong_stable_and_changes_with_the_keys() {
        let p = policy();
        let (set, _) = plan(&KeySet::default(), Timestamp::from_secs(0), &p).unwrap();
        let a = RenderedJwks::render(&set, Timestamp::from_secs(1), &p.timings);
        let b = RenderedJwks::render(&set, Timestamp::from_secs(2), &p.timings);
        assert_eq!(a.etag, b.etag);
        assert!(a.etag.starts_with('"') && !a.etag.starts_with("W/"));
        let (set2, _) = rotate(&set, Timestamp::from_secs(3), &p, false);
        let c = RenderedJwks::render(&set2, Timestamp::from_secs(3), &p.timings);
        assert_ne!(a.etag, c.etag);
        assert!(a.matches(&a.etag));
        assert!(a.matches(&format!("\"x\", {}", a.etag)));
        assert!(a.matches(&format!("W/{}", a.etag)));
        assert!(!a.matches(&c.etag));
    }

    #[test]
    fn the_cache_reuses_a_rendering_until_the_published_list_changes() {
        let p = policy();
        let cache = JwksCache::default();
        let (set, _) = plan(&KeySet::default(), Timestamp::from_secs(0), &p).unwrap();
        let a = cache.get(&set, Timestamp::from_secs(1), &p.timings);
        let b = cache.get(&set, Timestamp::from_secs(2), &p.timings);
        assert!(Arc::ptr_eq(&a, &b));
        let (set2, _) = rotate(&set, Timestamp::from_secs(3), &p, false);
        let c = cache.get(&set2, Timestamp::from_secs(3), &p.timings);
        assert_eq!(c.kids.len(), 2);
    }
}
