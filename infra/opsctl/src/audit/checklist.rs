//! The checklist items this bundle is responsible for, in report order, each paraphrased from its
//! guide. The audit produces exactly one finding per item here.

use super::report::{Guide, Item, Method};

const fn item(id: &'static str, guide: Guide, method: Method, paraphrase: &'static str) -> Item {
    Item {
        id,
        guide,
        paraphrase,
        method,
    }
}

use Guide::{Aeropay, AirKit, AuthLayers, CakIssuer, Hmac};
use Method::{Live, Review, State, Template};

/// Every item, in report order.
pub const ITEMS: &[Item] = &[
    // Partner JWTs and their keys.
    item(
        "jwks-https",
        AirKit,
        Live,
        "The JWKS is published over HTTPS with a valid certificate",
    ),
    item(
        "jwks-public-only",
        AirKit,
        Live,
        "The JWKS holds public key members only",
    ),
    item(
        "jwks-kid",
        AirKit,
        Live,
        "Every key in the JWKS has a kid, its RFC 7638 thumbprint",
    ),
    item(
        "jwks-caching",
        AirKit,
        Live,
        "The JWKS can be cached: Cache-Control, an ETag, 304 on If-None-Match",
    ),
    item(
        "token-lifetime",
        AirKit,
        Live,
        "Partner JWTs are short-lived: exp - iat is at most 300 s",
    ),
    item(
        "token-header",
        AirKit,
        Live,
        "Partner JWTs are ES256 with typ JWT and a kid published in the JWKS",
    ),
    item(
        "token-verifies",
        AirKit,
        Live,
        "A Partner JWT verifies with the published JWKS",
    ),
    item(
        "token-jti",
        AirKit,
        Live,
        "Every Partner JWT carries a unique jti",
    ),
    item(
        "mfa-issue-scope",
        AirKit,
        Live,
        "A high-value scope (issue) is minted only with MFA evidence",
    ),
    // Signed server-to-server requests.
    item(
        "hmac-unsigned",
        Hmac,
        Live,
        "An unsigned request is refused",
    ),
    item(
        "hmac-bad-signature",
        Hmac,
        Live,
        "A request with a wrong signature is refused",
    ),
    item(
        "hmac-stale",
        Hmac,
        Live,
        "A request signed more than 5 minutes ago is refused",
    ),
    item(
        "hmac-future",
        Hmac,
        Live,
        "A request timestamped more than 5 minutes ahead is refused",
    ),
    item(
        "hmac-replay",
        Hmac,
        Live,
        "A signed request sent a second time is refused",
    ),
    item(
        "read-only-key",
        AuthLayers,
        Live,
        "A read-only API key cannot write",
    ),
    // Callbacks.
    item(
        "callback-signature",
        Aeropay,
        Live,
        "A forged or unsigned callback is refused",
    ),
    item(
        "callback-stale",
        Aeropay,
        Live,
        "A callback with a stale signed timestamp is refused",
    ),
    item(
        "callback-once",
        CakIssuer,
        Live,
        "A valid callback is acknowledged, and its duplicate acknowledged without being routed again",
    ),
    // The HTTP surface.
    item(
        "security-headers",
        AuthLayers,
        Live,
        "Every answer carries the security headers (nosniff, HSTS, CSP, Cache-Control)",
    ),
    item("cors", AuthLayers, Live, "CORS refuses a foreign origin"),
    item(
        "oversized-body",
        AuthLayers,
        Live,
        "An oversized body is refused without a 5xx",
    ),
    item(
        "malformed-body",
        AuthLayers,
        Live,
        "A malformed body is refused without a 5xx and without echoing its values",
    ),
    item(
        "error-shape",
        AuthLayers,
        Live,
        "Error answers are {errorType, errorMessage}",
    ),
    item("https-only", AuthLayers, Live, "Plain HTTP is refused"),
    // The template.
    item(
        "no-secret-in-template",
        AirKit,
        Template,
        "No secret value in the template or in a function's environment",
    ),
    item(
        "keys-in-secrets-manager",
        AirKit,
        Template,
        "Private keys live only in a secrets manager",
    ),
    item(
        "least-privilege",
        AuthLayers,
        Template,
        "IAM policies are least-privilege: no * action, no * resource where an ARN is known",
    ),
    item(
        "monitoring-alarms",
        AirKit,
        Template,
        "Alarms watch auth failures, upstream 401/403, issuance volume, long WAIT_ONCHAIN and callback failures, on metrics the code emits",
    ),
    item(
        "log-retention",
        Aeropay,
        Template,
        "Every log group has a retention period",
    ),
    item(
        "table-protection",
        CakIssuer,
        Template,
        "The records table is encrypted and has point-in-time recovery",
    ),
    item(
        "rotation-schedules",
        AirKit,
        Template,
        "Signing keys are rotated on a schedule",
    ),
    // The secrets store.
    item(
        "signing-key-age",
        AirKit,
        State,
        "The signing key is younger than its rotation period, and the next rotation is scheduled",
    ),
    item(
        "api-key-age",
        Hmac,
        State,
        "No active API key is past its rotation period",
    ),
    item(
        "webhook-secret-age",
        Aeropay,
        State,
        "The webhook secret is rotated within its period",
    ),
    // What only a reviewer can see.
    item(
        "cak-encryption",
        CakIssuer,
        Review,
        "Sensitive data is encrypted to the credential's CAK and never stored in plaintext",
    ),
    item(
        "pii-at-rest",
        CakIssuer,
        Review,
        "Stored user identifiers are hashed or sealed, never plaintext",
    ),
    item(
        "no-secrets-in-logs",
        AirKit,
        Review,
        "No secret or PII reaches a log line or an error body",
    ),
    item(
        "retries-backoff",
        Aeropay,
        Review,
        "Calls to the platform retry with backoff and honour Retry-After",
    ),
    item(
        "idempotency",
        Aeropay,
        Review,
        "Issuance is idempotent: a retried request never issues twice",
    ),
];

/// The item `id`; panics on an id that is not in [`ITEMS`] (a programming error).
pub fn by_id(id: &str) -> Item {
    match ITEMS.iter().find(|i| i.id == id) {
        Some(i) => *i,
        None => panic!("no checklist item {id}"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_item_has_a_unique_id_and_every_guide_has_an_item() {
        let ids: HashSet<_> = ITEMS.iter().map(|i| i.id).collect();
        assert_eq!(ids.len(), ITEMS.len());
        for g in Guide::ALL {
            assert!(ITEMS.iter().any(|i| i.guide == g), "{g:?} has no item");
        }
    }
}
