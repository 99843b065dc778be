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

import jwt


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--jwks-url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--partner-id", required=True)
    p.add_argument("--scope", required=True)
    p.add_argument("--cafile", help="a CA certificate (PEM) to trust besides the system's roots")
    a = p.parse_args()
    if not a.jwks_url.startswith("https://"):
        print("verification failed: the JWKS URL is not https://", file=sys.stderr)
        return 1
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if a.cafile:
        context.load_verify_locations(cafile=a.cafile)
    try:
        header = jwt.get_unverified_header(a.token)
        if header.get("typ") != "JWT" or header.get("alg") != "ES256" or not header.get("kid"):
            raise ValueError(f"unexpected header {header}")
        key = jwt.PyJWKClient(a.jwks_url, cache_keys=False, ssl_context=context).get_signing_key_from_jwt(a.token)
        claims = jwt.decode(
            a.token,
            key.key,
            algorithms=["ES256"],
            options={"require": ["exp", "iat", "nbf", "jti"], "verify_aud": False},
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
    print(json.dumps({"kid": header["kid"], "claims": claims}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
