#!/usr/bin/env python3
"""Verify a Partner JWT the way an independent platform would: fetch the JWKS over HTTPS (trusting
the local CA given by --cafile besides the system's roots), pick the
key by `kid`, check ES256, `typ`, the registered claims and the partner claims. Prints the claims
as JSON and exits 0 on success; prints the reason and exits 1 otherwise."""
import argparse
import json
import ssl
import sys
import time
import urllib.request

import jwt


def main() -> int:
    p = argparse.ArgumentParser()
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--jwks-url")
    source.add_argument(
        "--discovery-url",
        help="an OIDC discovery document: its jwks_uri is used and the token's iss must be its issuer",
    )
    p.add_argument("--token", required=True)
    p.add_argument("--partner-id", required=True)
    p.add_argument("--scope", required=True)
    p.add_argument("--cafile", help="a CA certificate (PEM) to trust besides the system's roots")
    a = p.parse_args()
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if a.cafile:
        context.load_verify_locations(cafile=a.cafile)
    issuer = None
    try:
        if a.discovery_url:
            if not a.discovery_url.startswith("https://"):
                raise ValueError("the discovery URL is not https://")
            with urllib.request.urlopen(a.discovery_url, context=context, timeout=5) as r:
                discovery = json.load(r)
            if "ES256" not in discovery.get("id_token_signing_alg_values_supported", []):
                raise ValueError(f"ES256 not announced: {discovery}")
            issuer = discovery["issuer"]
            a.jwks_url = discovery["jwks_uri"]
        if not a.jwks_url.startswith("https://"):
            raise ValueError("the JWKS URL is not https://")
        header = jwt.get_unverified_header(a.token)
        if header.get("typ") != "JWT" or header.get("alg") != "ES256" or not header.get("kid"):
            raise ValueError(f"unexpected header {header}")
        key = jwt.PyJWKClient(a.jwks_url, cache_keys=False, ssl_context=context).get_signing_key_from_jwt(a.token)
        claims = jwt.decode(
            a.token,
            key.key,
            algorithms=["ES256"],
            options={"require": ["exp", "iat", "nbf", "jti"], "verify_aud": False},
            issuer=issuer,
        )
        if claims["exp"] - claims["iat"] > 300:
            raise ValueError("lifetime above 300 s")
        if claims.get("partnerId") != a.partner_id:
            raise ValueError(f"partnerId {claims.get('partnerId')!r}")
        if claims.get("scope") != a.scope:
            raise ValueError(f"scope {claims.get('scope')!r}")
        if claims["exp"] < time.time():
            raise ValueError("expired")
    except Exception as e:  # noqa: BLE001 - report any failure as a verdict
        print(f"verification failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"kid": header["kid"], "claims": claims, "issuer": issuer}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
