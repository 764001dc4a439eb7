"""Token hashing, session-key derivation and the signed envelope.

Owns every use of a secret in the protocol. Tokens are random 256-bit secrets, so a keyed hash
(HMAC-SHA256 under a fixed, public domain-separation key) is enough to store them: there is no
password to stretch. The session key derives from that stored hash, so the brain never needs
the token itself after the upgrade. Never logs, formats or raises anything that contains a key,
a token or a MAC.

Envelope of a WebSocket message (one frame each)::

    signed:    b"S" | seq: u64 big-endian | mac: 32 bytes | payload (msgpack frame)
    unsigned:  b"U" | payload                      (only the hello, and a refusal before open)

    mac = HMAC-SHA256(session_key, direction | seq | payload)
    direction = b"A" (agent -> brain) or b"B" (brain -> agent)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from typing import Final

from z4j_core.wire.errors import CloseCode, RemoteProtocolError
from z4j_core.wire.frames import Side
from z4j_core.wire.limits import MAC_BYTES, NONCE_BYTES, SESSION_ID_BYTES, TOKEN_BYTES

#: Public domain-separation key for ``token_hash``: not a secret, only keeps these hashes apart
#: from any other use of SHA-256 on the same token.
TOKEN_HASH_KEY: Final = b"z4j/v1 agent token hash"

#: HKDF ``info`` prefix for the session key.
SESSION_KEY_LABEL: Final = b"z4j/v1 session key"

SIGNED: Final = b"S"
UNSIGNED: Final = b"U"
DIRECTION: Final[dict[Side, bytes]] = {Side.AGENT: b"A", Side.BRAIN: b"B"}

_SEQ = struct.Struct(">Q")
#: Bytes before the payload of a signed message: marker, sequence number, MAC.
SIGNED_HEADER_BYTES: Final = 1 + _SEQ.size + MAC_BYTES
MAX_SEQ: Final = 2**64 - 1


def new_token() -> str:
    """A fresh agent token: TOKEN_BYTES random bytes, URL-safe base64, prefixed ``z4j_``."""
    return "z4j_" + secrets.token_urlsafe(TOKEN_BYTES)


def new_nonce() -> bytes:
    """A fresh handshake nonce."""
    return secrets.token_bytes(NONCE_BYTES)


def new_session_id() -> str:
    """A fresh session id, as lowercase hex."""
    return secrets.token_hex(SESSION_ID_BYTES)


def token_hash(token: str | bytes) -> bytes:
    """The value the brain stores for a token, and the root of every session key."""
    raw = token.encode("utf-8") if isinstance(token, str) else token
    return hmac.digest(TOKEN_HASH_KEY, raw, "sha256")


def hello_digest(hello_payload: bytes) -> bytes:
    """SHA-256 of the hello's payload bytes exactly as sent; binds the hello into the key."""
    return hashlib.sha256(hello_payload).digest()


def derive_session_key(
    token_hash_value: bytes,
    agent_nonce: bytes,
    brain_nonce: bytes,
    session_id: str,
    hello_digest_value: bytes,
) -> bytes:
    """HKDF-SHA256 (RFC 5869), one 32-byte block.

    ``salt = agent_nonce | brain_nonce``, ``ikm = token_hash``,
    ``info = SESSION_KEY_LABEL | session_id (ASCII hex) | hello_digest``. Every part has a fixed
    length, so the concatenations are unambiguous.
    """
    prk = hmac.digest(agent_nonce + brain_nonce, token_hash_value, "sha256")
    info = SESSION_KEY_LABEL + session_id.encode("ascii") + hello_digest_value
    return hmac.digest(prk, info + b"\x01", "sha256")


def seal(key: bytes, direction: Side, seq: int, payload: bytes) -> bytes:
    """A signed message: header, then the payload."""
    prefix = _SEQ.pack(seq)
    mac = hmac.digest(key, DIRECTION[direction] + prefix + payload, "sha256")
    return b"".join((SIGNED, prefix, mac, payload))


def open_sealed(key: bytes, direction: Side, data: bytes) -> tuple[int, bytes]:
    """Verify a signed message sent in ``direction``; return its sequence number and payload.

    Raises ``RemoteProtocolError`` (``BAD_FRAME`` for a malformed envelope, ``BAD_SIGNATURE``
    when the MAC does not verify). Checking the sequence number is the session's job.
    """
    if len(data) < SIGNED_HEADER_BYTES or data[:1] != SIGNED:
        raise RemoteProtocolError(CloseCode.BAD_FRAME, "expected a signed frame")
    view = memoryview(data)
    seq_bytes = view[1:9]
    payload = view[SIGNED_HEADER_BYTES:]
    expected = hmac.digest(key, b"".join((DIRECTION[direction], seq_bytes, payload)), "sha256")
    if not hmac.compare_digest(expected, view[9:SIGNED_HEADER_BYTES]):
        raise RemoteProtocolError(CloseCode.BAD_SIGNATURE, "frame signature does not verify")
    (seq,) = _SEQ.unpack(seq_bytes)
    return seq, bytes(payload)


def unsigned(payload: bytes) -> bytes:
    """An unsigned message (hello, or a refusal before the session opens)."""
    return UNSIGNED + payload


def open_unsigned(data: bytes) -> bytes:
    """The payload of an unsigned message; ``BAD_FRAME`` if it is not one."""
    if len(data) < 2 or data[:1] != UNSIGNED:
        raise RemoteProtocolError(CloseCode.BAD_FRAME, "expected an unsigned frame")
    return data[1:]
