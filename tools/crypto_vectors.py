#!/usr/bin/env python3
"""Independent implementation of Ephemeral Chat crypto spec v1 (docs/CRYPTO.md), used to
compute the known-answer vectors pinned in app/src/crypto/vectors.rs and
app/src/crypto/at_rest.rs. Needs Python's hashlib and the `cryptography` package.

Run: python3 tools/crypto_vectors.py
"""
import hashlib
import hmac
import json

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def hkdf_sha256(ikm: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def code_from_entropy(entropy: bytes) -> str:
    value = int.from_bytes(entropy, "big")
    data = "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(24)))
    check = ALPHABET[hashlib.sha256(data.encode()).digest()[0] >> 3]
    return data + check


def fingerprint_symbols(fp: bytes) -> str:
    value = int.from_bytes(fp, "big")
    s = "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(8)))
    return s[:4] + "-" + s[4:]


def main() -> None:
    entropy = bytes(range(15))
    code = code_from_entropy(entropy)
    ikm = hashlib.pbkdf2_hmac("sha256", code.encode(), b"ephemeral-chat/v1/pbkdf2", 600000, 32)
    room_id = hashlib.sha256(b"ephemeral-chat/v1/room-id" + ikm).digest()
    message_key = hkdf_sha256(ikm, b"ephemeral-chat/v1/message-key", 32)
    fingerprint = hkdf_sha256(ikm, b"ephemeral-chat/v1/fingerprint", 5)

    message_id = bytes(range(0x10, 0x20))
    sender = bytes(range(0x20, 0x28))
    body = json.dumps(
        {"id": message_id.hex(), "sender": sender.hex(), "text": "hello from A ✓", "sent_at": 1767225600000},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    padded_len = 256 * -(-(len(body) + 1) // 256)
    padded = body + b"\x80" + b"\x00" * (padded_len - len(body) - 1)
    nonce = bytes(range(0x30, 0x3C))
    aad = b"ephemeral-chat/v1/message" + b"\x01" + room_id + message_id
    sealed = b"\x01" + nonce + AESGCM(message_key).encrypt(nonce, padded, aad)

    server_key = bytes(range(0x40, 0x60))
    key_id = hashlib.sha256(b"ephemeral-chat/v1/at-rest-key-id" + server_key).digest()[0]
    k = hkdf_sha256(server_key, b"ephemeral-chat/v1/at-rest" + message_id, 32)
    room_hash = hashlib.sha256(room_id).digest()
    rest_nonce = bytes(range(0x60, 0x6C))
    stored = bytes([key_id]) + rest_nonce + AESGCM(k).encrypt(
        rest_nonce, sealed, bytes([key_id]) + message_id + room_hash
    )

    for name, value in [
        ("entropy", entropy.hex()),
        ("code", code),
        ("ikm", ikm.hex()),
        ("room_id", room_id.hex()),
        ("message_key", message_key.hex()),
        ("fingerprint", fingerprint_symbols(fingerprint)),
        ("body", body.decode()),
        ("sealed", sealed.hex()),
        ("server_key", server_key.hex()),
        ("key_id", f"{key_id:02x}"),
        ("room_hash", room_hash.hex()),
        ("stored", stored.hex()),
    ]:
        print(f"{name} = {value}")


if __name__ == "__main__":
    main()
