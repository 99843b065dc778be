#!/usr/bin/env python3
"""ECIES as independent implementations do it, for the interop tests of `shared::ecies`.

Reads JSON lines on stdin and answers one line per request on stdout:

- `{"curve": …, "secret_hex": …, "ciphertext_hex": …}` (op `decrypt`, the default) → the
  plaintext as hex;
- `{"op": "encrypt", "curve": …, "public_hex": …, "plaintext_hex": …}` → the ciphertext as hex;
- a request that fails → `error: <exception type>: <message>` (the next lines are still served).

secp256k1 goes through eciespy, the reference implementation of ecies.org. secp256r1 (which
eciespy does not offer) is the same construction written here by hand on `cryptography` (ECDH,
HKDF-SHA256, AES-256-GCM) plus python-ecdsa for the one thing `cryptography` cannot do: its ECDH
returns only the x coordinate of the shared point, while the construction feeds the whole
uncompressed point to HKDF, so python-ecdsa multiplies the point and the x coordinate it finds is
checked against `cryptography`'s.

Construction: ciphertext = ephemeral public key (65 bytes, uncompressed) ‖ nonce (16 bytes) ‖
tag (16 bytes) ‖ AES-256-GCM ciphertext; key = HKDF-SHA256(ikm = ephemeral point ‖ shared point,
both uncompressed, no salt, empty info, 32 bytes).
"""
import json
import os
import sys

import ecdsa
import ecies
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from ecies.config import Config

# eciespy's defaults (0.4.7) are exactly ecies.org's construction; they are spelled out so that a
# future change of a default cannot silently change what this client checks.
ECIESPY_CONFIG = Config(
    elliptic_curve="secp256k1",
    is_ephemeral_key_compressed=False,
    is_hkdf_key_compressed=False,
    symmetric_algorithm="aes-256-gcm",
    symmetric_nonce_length=16,
)

POINT_LEN = 65
NONCE_LEN = 16
TAG_LEN = 16
P256 = ec.SECP256R1()


def uncompressed(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def p256_shared_point(scalar: int, peer: bytes, ecdh_x: bytes) -> bytes:
    """`scalar × peer` uncompressed, by python-ecdsa, checked against `cryptography`'s ECDH x."""
    point = ecdsa.VerifyingKey.from_string(peer, curve=ecdsa.NIST256p).pubkey.point * scalar
    x = point.x().to_bytes(32, "big")
    y = point.y().to_bytes(32, "big")
    if x != ecdh_x:
        raise ValueError("python-ecdsa and cryptography disagree on the shared point")
    return b"\x04" + x + y


def hkdf_key(ephemeral: bytes, shared: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"").derive(
        ephemeral + shared
    )


def p256_decrypt(secret: bytes, data: bytes) -> bytes:
    if len(data) < POINT_LEN + NONCE_LEN + TAG_LEN:
        raise ValueError("ciphertext too short")
    ephemeral_raw = data[:POINT_LEN]
    nonce = data[POINT_LEN : POINT_LEN + NONCE_LEN]
    tag = data[POINT_LEN + NONCE_LEN : POINT_LEN + NONCE_LEN + TAG_LEN]
    body = data[POINT_LEN + NONCE_LEN + TAG_LEN :]
    if ephemeral_raw[0] != 0x04:
        raise ValueError("ephemeral key is not uncompressed")
    private = ec.derive_private_key(int.from_bytes(secret, "big"), P256)
    ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(P256, ephemeral_raw)
    ephemeral_bytes = uncompressed(ephemeral)
    ecdh_x = private.exchange(ec.ECDH(), ephemeral)
    shared = p256_shared_point(private.private_numbers().private_value, ephemeral_bytes, ecdh_x)
    # `cryptography` takes ciphertext ‖ tag and accepts the 16-byte nonce.
    return AESGCM(hkdf_key(ephemeral_bytes, shared)).decrypt(nonce, body + tag, None)


def p256_encrypt(public: bytes, plaintext: bytes) -> bytes:
    receiver = ec.EllipticCurvePublicKey.from_encoded_point(P256, public)
    ephemeral = ec.generate_private_key(P256)
    ephemeral_bytes = uncompressed(ephemeral.public_key())
    ecdh_x = ephemeral.exchange(ec.ECDH(), receiver)
    shared = p256_shared_point(
        ephemeral.private_numbers().private_value, uncompressed(receiver), ecdh_x
    )
    nonce = os.urandom(NONCE_LEN)
    sealed = AESGCM(hkdf_key(ephemeral_bytes, shared)).encrypt(nonce, plaintext, None)
    body, tag = sealed[:-TAG_LEN], sealed[-TAG_LEN:]
    return ephemeral_bytes + nonce + tag + body


def answer(request: dict) -> bytes:
    curve = request["curve"]
    op = request.get("op", "decrypt")
    if op == "decrypt":
        secret = bytes.fromhex(request["secret_hex"])
        data = bytes.fromhex(request["ciphertext_hex"])
        if curve == "secp256k1":
            return ecies.decrypt(request["secret_hex"], data, config=ECIESPY_CONFIG)
        if curve == "secp256r1":
            return p256_decrypt(secret, data)
    elif op == "encrypt":
        plaintext = bytes.fromhex(request["plaintext_hex"])
        if curve == "secp256k1":
            return ecies.encrypt(request["public_hex"], plaintext, config=ECIESPY_CONFIG)
        if curve == "secp256r1":
            return p256_encrypt(bytes.fromhex(request["public_hex"]), plaintext)
    else:
        raise ValueError(f"unknown op {op!r}")
    raise ValueError(f"unknown curve {curve!r}")


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            out = answer(json.loads(line)).hex()
        except Exception as e:  # noqa: BLE001 - every failure is an answer for the caller
            out = f"error: {type(e).__name__}: {e}"
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
