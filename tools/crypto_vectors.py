#!/usr/bin/env python3
"""An independent implementation of Ephemeral Chat crypto spec v1 and its files (v2)
(docs/CRYPTO.md), written from the spec with Python's hashlib and the `cryptography` package. It
computes the known-answer vectors from their inputs and checks them against the published
docs/vectors.json, docs/vectors-file.json and docs/vectors-body.json (which the Rust tests read
too), then opens the published messages, file chunks and at-rest records with its own readers,
which must refuse what the spec refuses (a repeated JSON key, a flipped bit, chunks reordered,
dropped or truncated, a body's `name`, `ttl` or `view` out of its range or not of its type).

Run:  python3 tools/crypto_vectors.py           check the three files (exit 1 on any difference)
      python3 tools/crypto_vectors.py --print   print the vectors it computes, as JSON
      python3 tools/crypto_vectors.py --print-file   the same for the file vectors
      python3 tools/crypto_vectors.py --print-body   the same for the body key vectors
Needs: pip install cryptography
"""
import hashlib
import hmac
import json
import sys
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VECTORS = Path(__file__).resolve().parent.parent / "docs" / "vectors.json"
FILE_VECTORS = VECTORS.with_name("vectors-file.json")
BODY_VECTORS = VECTORS.with_name("vectors-body.json")

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PBKDF2_SALT = b"ephemeral-chat/v1/pbkdf2"
PBKDF2_ITERATIONS = 600000
ROOM_ID_LABEL = b"ephemeral-chat/v1/room-id"
MESSAGE_KEY_INFO = b"ephemeral-chat/v1/message-key"
FINGERPRINT_INFO = b"ephemeral-chat/v1/fingerprint"
MESSAGE_AAD_LABEL = b"ephemeral-chat/v1/message"
KEY_ID_LABEL = b"ephemeral-chat/v1/at-rest-key-id"
AT_REST_INFO = b"ephemeral-chat/v1/at-rest"
VERSION = 0x01
VERSION_FILE = 0x02
FILE_KEY_INFO = b"ephemeral-chat/v2/file-key"
CHUNK_AAD_LABEL = b"ephemeral-chat/v2/file-chunk"
CHUNK = 65536
PAD_BLOCK = 256
SEAL_OVERHEAD = 1 + 12 + 16
MIN_SEALED, MAX_SEALED = SEAL_OVERHEAD + PAD_BLOCK, SEAL_OVERHEAD + 16384
MAX_NAME = 64  # Unicode scalar values
MAX_TTL = 7 * 24 * 3600  # seconds
MAX_VIEW = 3600  # seconds; 10 when absent


class OpenError(Exception):
    """Every way opening can fail: one opaque error, as the spec says."""


def hkdf_sha256(ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 extract-then-expand with no salt (32 zero bytes)."""
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def symbols(value: int, count: int) -> str:
    """`count` alphabet symbols of 5 bits each, most significant first."""
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(count)))


def code_from_entropy(entropy: bytes) -> str:
    data = symbols(int.from_bytes(entropy, "big"), 24)
    return data + ALPHABET[hashlib.sha256(data.encode()).digest()[0] >> 3]


def key_schedule(code: str) -> dict:
    """The PBKDF2 password is the 25 canonical symbols as ASCII: upper case, no dashes."""
    assert len(code) == 25 and all(c in ALPHABET for c in code)
    ikm = hashlib.pbkdf2_hmac("sha256", code.encode("ascii"), PBKDF2_SALT, PBKDF2_ITERATIONS, 32)
    fingerprint = symbols(int.from_bytes(hkdf_sha256(ikm, FINGERPRINT_INFO, 5), "big"), 8)
    return {
        "ikm": ikm,
        "room_id": hashlib.sha256(ROOM_ID_LABEL + ikm).digest(),
        "message_key": hkdf_sha256(ikm, MESSAGE_KEY_INFO, 32),
        "fingerprint": fingerprint[:4] + "-" + fingerprint[4:],
    }


def message_aad(room_id: bytes, message_id: bytes, version: int = VERSION) -> bytes:
    return MESSAGE_AAD_LABEL + bytes([version]) + room_id + message_id


def padded_len(body_len: int) -> int:
    return PAD_BLOCK * -(-(body_len + 1) // PAD_BLOCK)


def seal(message_key: bytes, room_id: bytes, message_id: bytes, body: bytes, nonce: bytes, version: int = VERSION) -> bytes:
    padded = body + b"\x80" + b"\x00" * (padded_len(len(body)) - len(body) - 1)
    ciphertext = AESGCM(message_key).encrypt(nonce, padded, message_aad(room_id, message_id, version))
    return bytes([version]) + nonce + ciphertext


def refuse_repeated_keys(pairs: list) -> dict:
    """`object_pairs_hook`: a JSON object that names a key twice is refused, at any depth."""
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise OpenError
    return dict(pairs)


def refuse_constant(_name: str):
    """`parse_constant`: NaN and Infinity are not JSON."""
    raise OpenError


def lower_hex(value, length: int) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * length or any(c not in "0123456789abcdef" for c in value):
        raise OpenError
    return bytes.fromhex(value)


def chunk_class(count: int) -> int:
    """Counts up to 16 as they are; larger ones rounded up to their four leading bits."""
    if count <= 16:
        return max(count, 1)
    shift = count.bit_length() - 4
    return -(-count // (1 << shift)) << shift


def chunks_for(size: int) -> int:
    return chunk_class(max(1, -(-size // CHUNK)))


def open_sealed(message_key: bytes, room_id: bytes, message_id: bytes, sealed: bytes) -> dict:
    """Opens a sealed payload received for `message_id`, checking all the spec says, in its order."""
    if not MIN_SEALED <= len(sealed) <= MAX_SEALED or (len(sealed) - SEAL_OVERHEAD) % PAD_BLOCK:
        raise OpenError
    version = sealed[0]
    if version not in (VERSION, VERSION_FILE):
        raise OpenError
    try:
        padded = AESGCM(message_key).decrypt(sealed[1:13], sealed[13:], message_aad(room_id, message_id, version))
    except InvalidTag:
        raise OpenError from None
    end = len(padded.rstrip(b"\x00")) - 1
    if end < 0 or padded[end] != 0x80 or len(padded) != padded_len(end):
        raise OpenError
    try:
        body = json.loads(
            padded[:end].decode("utf-8"), object_pairs_hook=refuse_repeated_keys, parse_constant=refuse_constant
        )
    except (UnicodeDecodeError, ValueError):
        raise OpenError from None
    if not isinstance(body, dict):
        raise OpenError
    text, sent_at = body.get("text"), body.get("sent_at")
    # A lone surrogate (`"\ud800"`) is not text: JSON parsers that build UTF-8 strings refuse it.
    if not isinstance(text, str) or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise OpenError
    if type(sent_at) is not int or not 0 <= sent_at < 2**64:
        raise OpenError
    sender = lower_hex(body.get("sender"), 8)
    if lower_hex(body.get("id"), 16) != message_id:
        raise OpenError
    opened = {"id": message_id, "sender": sender, "text": text, "sent_at": sent_at}
    if version == VERSION_FILE:
        opened["file"] = open_file_card(body.get("file"))
    opened.update(open_chosen(body))
    return opened


def is_control(c: str) -> bool:
    """Unicode general category Cc: U+0000 to U+001F and U+007F to U+009F."""
    return ord(c) <= 0x1F or 0x7F <= ord(c) <= 0x9F


def open_chosen(body: dict) -> dict:
    """The optional `name`, `ttl` and `view` of a body (either version): those present, checked."""
    chosen = {}
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
            raise OpenError
        if any(0xD800 <= ord(c) <= 0xDFFF or is_control(c) for c in name):
            raise OpenError
        chosen["name"] = name
    for key, most in (("ttl", MAX_TTL), ("view", MAX_VIEW)):
        if key in body:
            # A JSON integer only: `type` is not `int` for a float (3600.0), a string or a bool.
            if type(body[key]) is not int or not 1 <= body[key] <= most:
                raise OpenError
            chosen[key] = body[key]
    return chosen


def open_file_card(file) -> dict:
    """A version 2 body's `file`: present, with a 32-byte id and the size's chunk count."""
    if not isinstance(file, dict):
        raise OpenError
    name, mime, size, chunks = file.get("name"), file.get("type"), file.get("size"), file.get("chunks")
    for string in (name, mime):
        if not isinstance(string, str) or any(0xD800 <= ord(c) <= 0xDFFF for c in string):
            raise OpenError
    if type(size) is not int or not 0 <= size < 2**64 or type(chunks) is not int:
        raise OpenError
    if size > (1 << 18) * CHUNK or chunks != chunks_for(size):
        raise OpenError
    return {"id": lower_hex(file.get("id"), 32), "name": name, "type": mime, "size": size, "chunks": chunks}


def file_key(message_key: bytes, file_id: bytes) -> bytes:
    return hkdf_sha256(message_key, FILE_KEY_INFO + file_id, 32)


def chunk_nonce(index: int, chunks: int) -> bytes:
    return index.to_bytes(11, "big") + bytes([1 if index == chunks - 1 else 0])


def chunk_aad(room_id: bytes, message_id: bytes, chunks: int) -> bytes:
    return CHUNK_AAD_LABEL + room_id + message_id + chunks.to_bytes(4, "big")


def seal_file(key: bytes, aad: bytes, content: bytes, chunks: int) -> list:
    padded = content + b"\x00" * (chunks * CHUNK - len(content))
    return [AESGCM(key).encrypt(chunk_nonce(i, chunks), padded[i * CHUNK:(i + 1) * CHUNK], aad) for i in range(chunks)]


def open_file(key: bytes, aad: bytes, sealed_chunks: list, size: int, chunks: int) -> bytes:
    """Every chunk in order, each under its own nonce; the zero fill past `size` dropped."""
    if len(sealed_chunks) != chunks:
        raise OpenError
    out = b""
    for index, chunk in enumerate(sealed_chunks):
        if len(chunk) != CHUNK + 16:
            raise OpenError
        try:
            out += AESGCM(key).decrypt(chunk_nonce(index, chunks), chunk, aad)
        except InvalidTag:
            raise OpenError from None
    return out[:size]


def at_rest_key_id(server_key: bytes) -> int:
    return hashlib.sha256(KEY_ID_LABEL + server_key).digest()[0]


def at_rest_parts(server_key: bytes, message_id: bytes, room_hash: bytes):
    key_id = at_rest_key_id(server_key)
    k = hkdf_sha256(server_key, AT_REST_INFO + message_id, 32)
    return key_id, AESGCM(k), bytes([key_id]) + message_id + room_hash


def at_rest_seal(server_key: bytes, room_hash: bytes, message_id: bytes, sealed: bytes, nonce: bytes) -> bytes:
    key_id, cipher, aad = at_rest_parts(server_key, message_id, room_hash)
    return bytes([key_id]) + nonce + cipher.encrypt(nonce, sealed, aad)


def at_rest_seal_chunk(server_key: bytes, room_hash: bytes, message_id: bytes, index: int, chunk: bytes,
                       nonce: bytes) -> bytes:
    """A file chunk at rest: the message's key, and its index after the message's AAD."""
    key_id, cipher, aad = at_rest_parts(server_key, message_id, room_hash)
    return bytes([key_id]) + nonce + cipher.encrypt(nonce, chunk, aad + index.to_bytes(4, "big"))


def at_rest_open(server_key: bytes, room_hash: bytes, message_id: bytes, stored: bytes, index=None) -> bytes:
    key_id, cipher, aad = at_rest_parts(server_key, message_id, room_hash)
    if index is not None:
        aad += index.to_bytes(4, "big")
    if len(stored) < 13 or stored[0] != key_id:
        raise OpenError
    try:
        return cipher.decrypt(stored[1:13], stored[13:], aad)
    except InvalidTag:
        raise OpenError from None


def compute(inputs: dict) -> dict:
    """Every vector, computed from the published inputs alone (the same shape as the file)."""
    room_in, message_in, rest_in = inputs["room"], inputs["message"], inputs["at_rest"]
    code = code_from_entropy(bytes.fromhex(room_in["entropy"]))
    keys = key_schedule(code)
    message_id = bytes.fromhex(message_in["message_id"])
    body = json.dumps(
        {"id": message_in["message_id"], "sender": message_in["sender"], "text": message_in["text"],
         "sent_at": message_in["sent_at"]},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    sealed = seal(keys["message_key"], keys["room_id"], message_id, body.encode(), bytes.fromhex(message_in["nonce"]))
    server_key = bytes.fromhex(rest_in["server_key"])
    room_hash = hashlib.sha256(keys["room_id"]).digest()
    stored = at_rest_seal(server_key, room_hash, message_id, sealed, bytes.fromhex(rest_in["nonce"]))
    return {
        "about": inputs["about"],
        "room": {
            "entropy": room_in["entropy"],
            "code": code,
            "ikm": keys["ikm"].hex(),
            "room_id": keys["room_id"].hex(),
            "message_key": keys["message_key"].hex(),
            "fingerprint": keys["fingerprint"],
        },
        "message": {
            **{name: message_in[name] for name in ("message_id", "sender", "text", "sent_at", "nonce")},
            "body": body,
            "sealed": sealed.hex(),
        },
        "at_rest": {
            "server_key": rest_in["server_key"],
            "nonce": rest_in["nonce"],
            "key_id": f"{at_rest_key_id(server_key):02x}",
            "room_hash": room_hash.hex(),
            "stored": stored.hex(),
        },
    }


def differences(published: dict, computed: dict, path: str = "") -> list:
    if isinstance(published, dict) and isinstance(computed, dict):
        out = []
        for name in sorted(set(published) | set(computed)):
            out += differences(published.get(name), computed.get(name), f"{path}.{name}" if path else name)
        return out
    return [] if published == computed and type(published) is type(computed) else [path]


def opened_or_none(open_call):
    """What `open_call` opens, or None if it is refused."""
    try:
        return open_call()
    except OpenError:
        return None


def refused(open_call) -> bool:
    return opened_or_none(open_call) is None


def bits_that_open(sealed: bytes, open_with) -> list:
    """The bits of `sealed` that, flipped one at a time, leave something `open_with` opens."""
    opened = []
    for bit in range(len(sealed) * 8):
        flipped = bytearray(sealed)
        flipped[bit // 8] ^= 1 << (bit % 8)
        if not refused(lambda: open_with(bytes(flipped))):
            opened.append(bit)
    return opened


def check_readers(published: dict) -> list:
    """The published message and record open; repeated keys and flipped bits are refused."""
    room, message, rest = published["room"], published["message"], published["at_rest"]
    message_key, room_id = bytes.fromhex(room["message_key"]), bytes.fromhex(room["room_id"])
    message_id, sealed = bytes.fromhex(message["message_id"]), bytes.fromhex(message["sealed"])
    failures = []
    opened = opened_or_none(lambda: open_sealed(message_key, room_id, message_id, sealed))
    expected = {"id": message_id, "sender": bytes.fromhex(message["sender"]), "text": message["text"],
                "sent_at": message["sent_at"]}
    if opened != expected:
        failures.append("the published sealed message does not open to its body")
    for bit in bits_that_open(sealed, lambda flipped: open_sealed(message_key, room_id, message_id, flipped)):
        failures.append(f"sealed with bit {bit} flipped opens")
    # The same body with one key repeated: sealed as a writer never would, refused by the reader.
    plain = message["body"]
    reseal = lambda body: seal(message_key, room_id, message_id, body.encode(), bytes(12))  # noqa: E731
    if refused(lambda: open_sealed(message_key, room_id, message_id, reseal(plain))):
        failures.append("the published body, sealed again, does not open")
    repeats = {
        "id": f',"id":"{message["message_id"]}"',
        "sender": f',"sender":"{message["sender"]}"',
        "text": ',"text":"other"',
        "sent_at": ',"sent_at":1',
        "an unknown key": ',"note":1,"note":2',
    }
    for what, extra in repeats.items():
        repeated = plain[:-1] + extra + "}"
        if not refused(lambda: open_sealed(message_key, room_id, message_id, reseal(repeated))):
            failures.append(f"a body repeating {what} opens")
    server_key, room_hash = bytes.fromhex(rest["server_key"]), bytes.fromhex(rest["room_hash"])
    stored = bytes.fromhex(rest["stored"])
    if opened_or_none(lambda: at_rest_open(server_key, room_hash, message_id, stored)) != sealed:
        failures.append("the published at-rest record does not open to the sealed message")
    return failures


def file_content(size: int) -> bytes:
    """The file the vectors seal: byte i is i mod 251."""
    return bytes(i % 251 for i in range(size))


def card_body(card: dict) -> str:
    file = card["file"]
    return json.dumps(
        {"id": card["message_id"], "sender": card["sender"], "text": card["text"], "sent_at": card["sent_at"],
         "file": {"id": file["id"], "name": file["name"], "type": file["type"], "size": file["size"],
                  "chunks": file["chunks"]}},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def compute_file(inputs: dict, room: dict) -> dict:
    """The file vectors from their inputs and the v1 room's keys."""
    card_in, rest_in = inputs["card"], inputs["at_rest"]
    message_key, room_id = bytes.fromhex(room["message_key"]), bytes.fromhex(room["room_id"])
    message_id = bytes.fromhex(card_in["message_id"])
    file_in = card_in["file"]
    chunks = chunks_for(file_in["size"])
    card = {**{name: card_in[name] for name in ("message_id", "sender", "text", "sent_at", "nonce")},
            "file": {**{name: file_in[name] for name in ("id", "name", "type", "size")}, "chunks": chunks}}
    body = card_body(card)
    sealed = seal(message_key, room_id, message_id, body.encode(), bytes.fromhex(card_in["nonce"]), VERSION_FILE)
    key = file_key(message_key, bytes.fromhex(file_in["id"]))
    aad = chunk_aad(room_id, message_id, chunks)
    sealed_chunks = seal_file(key, aad, file_content(file_in["size"]), chunks)
    server_key = bytes.fromhex(rest_in["server_key"])
    room_hash = hashlib.sha256(room_id).digest()
    index = rest_in["index"]
    stored = at_rest_seal_chunk(server_key, room_hash, message_id, index, sealed_chunks[index],
                                bytes.fromhex(rest_in["nonce"]))
    return {
        "about": inputs["about"],
        "room": {"room_id": room["room_id"], "message_key": room["message_key"]},
        "card": {**card, "body": body, "sealed": sealed.hex()},
        "chunks": {
            "content": inputs["chunks"]["content"],
            "file_key": key.hex(),
            "aad": aad.hex(),
            "nonces": [chunk_nonce(i, chunks).hex() for i in range(chunks)],
            "sealed_sha256": [hashlib.sha256(chunk).hexdigest() for chunk in sealed_chunks],
            "tags": [chunk[-16:].hex() for chunk in sealed_chunks],
        },
        "at_rest": {
            "server_key": rest_in["server_key"],
            "nonce": rest_in["nonce"],
            "index": index,
            "stored_len": len(stored),
            "stored_head": stored[:13].hex(),
            "stored_sha256": hashlib.sha256(stored).hexdigest(),
        },
    }


def check_file_readers(published: dict) -> list:
    """The card opens to its file and the chunks to the content; every tampering is refused."""
    room, card, rest = published["room"], published["card"], published["at_rest"]
    message_key, room_id = bytes.fromhex(room["message_key"]), bytes.fromhex(room["room_id"])
    message_id, sealed = bytes.fromhex(card["message_id"]), bytes.fromhex(card["sealed"])
    failures = []
    opened = opened_or_none(lambda: open_sealed(message_key, room_id, message_id, sealed))
    file = card["file"]
    expected_file = {**file, "id": bytes.fromhex(file["id"])}
    if opened is None or opened.get("file") != expected_file or opened["text"] != card["text"]:
        failures.append("the published card does not open to its file")
    for bit in bits_that_open(sealed, lambda flipped: open_sealed(message_key, room_id, message_id, flipped)):
        failures.append(f"the card with bit {bit} flipped opens")
    as_v1 = bytes([VERSION]) + sealed[1:]
    if not refused(lambda: open_sealed(message_key, room_id, message_id, as_v1)):
        failures.append("the card opens as version 1")
    size, chunks = file["size"], file["chunks"]
    key = file_key(message_key, bytes.fromhex(file["id"]))
    aad = chunk_aad(room_id, message_id, chunks)
    content = file_content(size)
    sealed_chunks = seal_file(key, aad, content, chunks)
    if opened_or_none(lambda: open_file(key, aad, sealed_chunks, size, chunks)) != content:
        failures.append("the sealed chunks do not open to the content")
    tampered = {
        "reordered": sealed_chunks[::-1],
        "dropped": sealed_chunks[:-1],
        "a chunk repeated": [sealed_chunks[0]] * chunks,
        "a flipped bit": [sealed_chunks[0][:100] + bytes([sealed_chunks[0][100] ^ 1]) + sealed_chunks[0][101:]]
        + sealed_chunks[1:],
    }
    for what, attempt in tampered.items():
        if not refused(lambda: open_file(key, aad, attempt, size, chunks)):
            failures.append(f"chunks {what} open")
    # Truncated: the first chunks read as a shorter file of their own (its count in the AAD).
    if chunks > 1:
        short = chunk_aad(room_id, message_id, chunks - 1)
        if not refused(lambda: open_file(key, short, sealed_chunks[:-1], size, chunks - 1)):
            failures.append("chunks truncated open as a shorter file")
    other = chunk_aad(room_id, bytes(16), chunks)
    if not refused(lambda: open_file(key, other, sealed_chunks, size, chunks)):
        failures.append("chunks open under another message's id")
    other_key = file_key(message_key, bytes(32))
    if not refused(lambda: open_file(other_key, aad, sealed_chunks, size, chunks)):
        failures.append("chunks open under another file's key")
    server_key = bytes.fromhex(rest["server_key"])
    room_hash = hashlib.sha256(room_id).digest()
    index = rest["index"]
    stored = at_rest_seal_chunk(server_key, room_hash, message_id, index, sealed_chunks[index],
                                bytes.fromhex(rest["nonce"]))
    if opened_or_none(lambda: at_rest_open(server_key, room_hash, message_id, stored, index)) != sealed_chunks[index]:
        failures.append("the chunk at rest does not open")
    if not refused(lambda: at_rest_open(server_key, room_hash, message_id, stored, index + 1)):
        failures.append("the chunk at rest opens under another index")
    if not refused(lambda: at_rest_open(server_key, room_hash, message_id, stored)):
        failures.append("the chunk at rest opens as a message record")
    return failures


def write_body(message_id: str, sender: str, text: str, sent_at: int, file=None, name=None, ttl=None,
               view=None) -> str:
    """A body as a writer writes it: keys in the spec's order, those without a value left out."""
    body = {"id": message_id, "sender": sender, "text": text, "sent_at": sent_at}
    for key, value in (("file", file), ("name", name), ("ttl", ttl), ("view", view)):
        if value is not None:
            body[key] = value
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def refused_bodies(body_in: dict) -> list:
    """Bodies of the inputs' id and sender that a reader must refuse, each wrong in one way."""
    base = {name: body_in[name] for name in ("message_id", "sender", "text", "sent_at", "name", "ttl", "view")}
    one_wrong = [
        ("name empty", {"name": ""}),
        ("name of 65 code points", {"name": "ú" * 65}),
        ("name containing U+0007, a control character", {"name": "Ana\u0007Lúcia"}),
        ("name containing U+0085, a control character", {"name": "Ana\u0085Lúcia"}),
        ("ttl 0", {"ttl": 0}),
        ("ttl 604801, past 7 days", {"ttl": MAX_TTL + 1}),
        ("ttl a float, 3600.0", {"ttl": 3600.0}),
        ("ttl a string, \"3600\"", {"ttl": "3600"}),
        ("view 0", {"view": 0}),
        ("view 3601, past an hour", {"view": MAX_VIEW + 1}),
        ("view a bool, true", {"view": True}),
    ]
    out = []
    for why, change in one_wrong:
        body = write_body(**{**base, **change})
        # U+0085 escaped, as a JSON writer may, so the published text shows it.
        out.append({"why": why, "body": body.replace("\x85", "\\u0085")})
    valid = write_body(**base)
    for key, other in (("name", '"Eve"'), ("ttl", "60"), ("view", "10")):
        out.append({"why": f"{key} repeated", "body": f'{valid[:-1]},"{key}":{other}}}'})
    return out


def compute_body(inputs: dict, room: dict, file_vectors: dict) -> dict:
    """The body key vectors from their inputs, the v1 room's keys and the file vectors' card."""
    body_in, card_in = inputs["inputs"], file_vectors["card"]
    message_key, room_id = bytes.fromhex(room["message_key"]), bytes.fromhex(room["room_id"])
    body = write_body(body_in["message_id"], body_in["sender"], body_in["text"], body_in["sent_at"],
                      name=body_in["name"], ttl=body_in["ttl"], view=body_in["view"])
    sealed = seal(message_key, room_id, bytes.fromhex(body_in["message_id"]), body.encode(),
                  bytes.fromhex(body_in["nonce"]))
    # The card's own nonce (not the file vectors' card's): no two published vectors share a nonce
    # under one key.
    card = {**{name: card_in[name] for name in ("message_id", "sender", "text", "sent_at")},
            "nonce": inputs["card"]["nonce"], "file": card_in["file"], "name": body_in["name"]}
    card_text = write_body(card["message_id"], card["sender"], card["text"], card["sent_at"], file=card["file"],
                           name=card["name"])
    card_sealed = seal(message_key, room_id, bytes.fromhex(card["message_id"]), card_text.encode(),
                       bytes.fromhex(card["nonce"]), VERSION_FILE)
    return {
        "about": inputs["about"],
        "room": {"room_id": room["room_id"], "message_key": room["message_key"]},
        "inputs": {name: body_in[name]
                   for name in ("message_id", "sender", "text", "sent_at", "name", "ttl", "view", "nonce")},
        "body": body,
        "sealed": sealed.hex(),
        "card": {**card, "body": card_text, "sealed": card_sealed.hex()},
        "refused": refused_bodies(body_in),
    }


def check_body_readers(published: dict) -> list:
    """The message and the card open to their inputs; flipped bits and the refused bodies do not."""
    room, body_in, card = published["room"], published["inputs"], published["card"]
    message_key, room_id = bytes.fromhex(room["message_key"]), bytes.fromhex(room["room_id"])
    failures = []
    message_id, nonce = bytes.fromhex(body_in["message_id"]), bytes.fromhex(body_in["nonce"])
    open_message = lambda sealed: open_sealed(message_key, room_id, message_id, sealed)  # noqa: E731
    sealed = bytes.fromhex(published["sealed"])
    expected = {"id": message_id, "sender": bytes.fromhex(body_in["sender"]),
                **{name: body_in[name] for name in ("text", "sent_at", "name", "ttl", "view")}}
    if opened_or_none(lambda: open_message(sealed)) != expected:
        failures.append("the published sealed body does not open to its inputs")
    if not sealed.startswith(bytes([VERSION]) + nonce):
        failures.append("the published sealed body is not version 1 under the inputs' nonce")
    for bit in bits_that_open(sealed, open_message):
        failures.append(f"the sealed body with bit {bit} flipped opens")
    card_id = bytes.fromhex(card["message_id"])
    open_card = lambda sealed: open_sealed(message_key, room_id, card_id, sealed)  # noqa: E731
    card_sealed = bytes.fromhex(card["sealed"])
    file = card["file"]
    expected_card = {"id": card_id, "sender": bytes.fromhex(card["sender"]), "text": card["text"],
                     "sent_at": card["sent_at"], "file": {**file, "id": bytes.fromhex(file["id"])},
                     "name": card["name"]}
    if opened_or_none(lambda: open_card(card_sealed)) != expected_card:
        failures.append("the published card does not open to its file and name")
    for bit in bits_that_open(card_sealed, open_card):
        failures.append(f"the card with bit {bit} flipped opens")
    reseal = lambda body: seal(message_key, room_id, message_id, body.encode(), nonce)  # noqa: E731
    for entry in published["refused"]:
        try:
            parsed = json.loads(entry["body"])
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or parsed.get("id") != body_in["message_id"]:
            failures.append(f"refused body ({entry['why']}) is not a JSON object of the inputs' id")
        if not refused(lambda: open_message(reseal(entry["body"]))):
            failures.append(f"a body with {entry['why']} opens")
    # The edges of each range open: a reader must not refuse what a writer may write.
    base = {name: body_in[name] for name in ("message_id", "sender", "text", "sent_at")}
    edges = [{"name": "ú" * MAX_NAME}, {"name": "x"}, {"name": "Ana\u00a0Lúcia\u2028"}, {"ttl": 1},
             {"ttl": MAX_TTL}, {"view": 1}, {"view": MAX_VIEW}, {}]
    for edge in edges:
        body = write_body(**base, **edge)
        opened = opened_or_none(lambda: open_message(reseal(body)))
        if opened is None or any(opened.get(key) != value for key, value in edge.items()):
            failures.append(f"a body with {edge or 'none of the keys'} does not open to them")
        elif set(opened) & {"name", "ttl", "view"} != set(edge):
            failures.append(f"a body with {edge or 'none of the keys'} opens with others")
    return failures


def load(path: Path) -> dict:
    """The published file, itself read with repeated keys refused."""
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=refuse_repeated_keys)
    except OpenError:
        sys.exit(f"{path}: a JSON object repeats a key")


def main() -> int:
    published = load(VECTORS)
    computed = compute(published)
    published_file = load(FILE_VECTORS)
    computed_file = compute_file(published_file, computed["room"])
    published_body = load(BODY_VECTORS)
    computed_body = compute_body(published_body, computed["room"], published_file)
    printed = {"--print": computed, "--print-file": computed_file, "--print-body": computed_body}
    if len(sys.argv) == 2 and sys.argv[1] in printed:
        print(json.dumps(printed[sys.argv[1]], indent=2, ensure_ascii=False))
        return 0
    if sys.argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    failures = [f"{name}: published and computed differ" for name in differences(published, computed)]
    failures += check_readers(published)
    failures += [
        f"{FILE_VECTORS.name} {name}: published and computed differ"
        for name in differences(published_file, computed_file)
    ]
    failures += check_file_readers(published_file)
    failures += [
        f"{BODY_VECTORS.name} {name}: published and computed differ"
        for name in differences(published_body, computed_body)
    ]
    failures += check_body_readers(published_body)
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    if failures:
        return 1
    names = ", ".join(path.name for path in (VECTORS, FILE_VECTORS, BODY_VECTORS))
    print(f"{names}: every vector matches, and the readers refuse what the spec refuses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
