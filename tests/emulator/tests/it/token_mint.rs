//! The token mint bootstraps (user route and server route) under the Lambda emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Harness, body, header, invoke, status};

#[tokio::test]
async fn the_mint_bootstraps_mint_for_authorizer_claims_and_signed_servers_and_keep_issue_off_the_user_route()
 {
    let h = Harness::start().await;
    let jwks = h
        .get_json(&format!("{}/.well-known/jwks.json", h.world.api_url()))
        .await;
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();

    // The user route: claims from the JWT authorizer, with MFA in `amr`.
    let user_mint = h.function("TokenMintFunction");
    let answer = invoke(&user_mint, &h.event("token-mint.json")).await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert_eq!(header(&answer, "cache-control"), Some("no-store"));
    let minted = body(&answer);
    assert!(minted["token"].as_str().unwrap().split('.').count() == 3);
    let kid = minted["kid"].as_str().unwrap();
    assert!(published.contains(&kid), "{kid} is not in the JWKS {jwks}");

    // The user route does not mint the `issue` scope (the template's default).
    let answer = invoke(&user_mint, &h.event("token-mint-no-mfa.json")).await;
    assert_eq!(status(&answer), 403, "{answer}");
    assert_eq!(body(&answer)["errorType"], "forbidden");

    // The server route: an API-key signed request minting for a user the caller authenticated.
    let server_mint = h.function("ServerTokenMintFunction");
    let event = h.signed(h.event("server-token-mint.json"));
    let answer = invoke(&server_mint, &event).await;
    assert_eq!(status(&answer), 200, "{answer}\n{}", server_mint.output());
    assert!(body(&answer)["token"].is_string());

    // The same signature a second time is a replay.
    let answer = invoke(&server_mint, &event).await;
    assert_eq!(status(&answer), 401, "{answer}");
    assert_eq!(body(&answer)["errorType"], "replayed_request");

    // The unsigned sample, as it is in the repository, is refused.
    let answer = invoke(&server_mint, &h.event("server-token-mint.json")).await;
    assert_eq!(status(&answer), 401, "{answer}");

    // Nothing secret reached the logs: no private key member, no API secret.
    let (_, secret) = h.world.api_key().unwrap();
    for f in [&user_mint, &server_mint] {
        let out = f.output();
        assert!(!out.contains(&secret), "the API secret was logged");
        assert!(!out.contains("\"d\":"), "a private key member was logged");
    }
}
