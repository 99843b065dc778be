#!/usr/bin/env python3
"""Sign a webhook the way an independent Standard Webhooks sender would with an asymmetric key:
an ed25519 signature (the `cryptography` package) over `{webhook-id}.{webhook-timestamp}.{body}`,
the body read as raw bytes from standard input. The key is the 32-byte ed25519 seed given in hex.

Prints one JSON object: `signature` (the `v1a,<base64>` entry of `webhook-signature`), `publicKey`
(`whpk_<base64 of the 32-byte public key>`, what the receiver is configured with) and `signedAt`
(the timestamp, echoed). Exits 1 with the reason on bad input."""
import argparse
import base64
import json
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seed-hex", required=True, help="the 32-byte ed25519 seed, in hex")
    p.add_argument("--id", required=True, help="the webhook-id")
    p.add_argument("--timestamp", required=True, help="the webhook-timestamp (Unix seconds)")
    a = p.parse_args()
    try:
        seed = bytes.fromhex(a.seed_hex)
        if len(seed) != 32:
            raise ValueError("the seed must be 32 bytes")
        if not a.timestamp.isdigit():
            raise ValueError("the timestamp must be Unix seconds")
        body = sys.stdin.buffer.read()
        key = Ed25519PrivateKey.from_private_bytes(seed)
        content = a.id.encode() + b"." + a.timestamp.encode() + b"." + body
        signature = key.sign(content)
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    except ValueError as e:
        print(f"sign_webhook_v1a: {e}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "signature": "v1a," + base64.b64encode(signature).decode(),
                "publicKey": "whpk_" + base64.b64encode(public).decode(),
                "signedAt": a.timestamp,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
