//! The JWKS bootstrap under the Lambda emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Harness, body, header, invoke, status};
use serde_json::Value;

#[tokio::test]
async fn the_jwks_bootstrap_publishes_public_keys_with_caching_headers_and_answers_304_to_its_etag()
{
    let h = Harness::start().await;
    let jwks = h.function("JwksFunction");
    let answer = invoke(&jwks, &h.event("jwks.json")).await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert_eq!(
        header(&answer, "cache-control"),
        Some("public, max-age=300"),
        "the template's JwksMaxAgeSeconds default"
    );
    let etag = header(&answer, "etag").expect("an ETag").to_owned();
    let keys = body(&answer)["keys"].as_array().unwrap().clone();
    assert!(!keys.is_empty());
    for k in &keys {
        assert!(k.get("d").is_none(), "a private member was published: {k}");
        assert_eq!(k["alg"], "ES256");
        assert_eq!(k["crv"], "P-256");
    }

    let mut conditional = h.event("jwks-if-none-match.json");
    conditional["headers"]["if-none-match"] = Value::String(etag.clone());
    let answer = invoke(&jwks, &conditional).await;
    assert_eq!(status(&answer), 304, "{answer}");
    assert_eq!(header(&answer, "etag"), Some(etag.as_str()));

    // The sample as it is (a placeholder ETag) gets the full document.
    let answer = invoke(&jwks, &h.event("jwks-if-none-match.json")).await;
    assert_eq!(status(&answer), 200, "{answer}");
}

#[tokio::test]
async fn the_jwks_bootstrap_serves_the_oidc_discovery_document_of_the_address_it_was_reached_on() {
    let h = Harness::start().await;
    let jwks = h.function("JwksFunction");
    let event = h.event("openid-configuration.json");
    let answer = invoke(&jwks, &event).await;
    assert_eq!(status(&answer), 200, "{answer}");
    let doc = body(&answer);
    let issuer = format!(
        "https://{}",
        event["requestContext"]["domainName"].as_str().unwrap()
    );
    assert_eq!(doc["issuer"], issuer.as_str(), "{doc}");
    assert_eq!(doc["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert_eq!(doc["id_token_signing_alg_values_supported"][0], "ES256");
    assert_eq!(
        header(&answer, "cache-control"),
        Some("public, max-age=300")
    );
    let etag = header(&answer, "etag").expect("an ETag").to_owned();
    let mut conditional = event.clone();
    conditional["headers"]["if-none-match"] = Value::String(etag);
    assert_eq!(status(&invoke(&jwks, &conditional).await), 304);
}
