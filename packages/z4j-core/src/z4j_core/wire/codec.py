"""Encoding and decoding of frame payloads (msgpack via msgspec).

Owns the one encoder and the one decoder of the frame union. ``decode_frame`` turns any bytes
into a validated frame or a ``RemoteProtocolError``; no other exception escapes it, and it
refuses oversized input before decoding. Signing is not done here (see ``signing``).
"""

from __future__ import annotations

from typing import Final

import msgspec

from z4j_core.wire.errors import CloseCode, RemoteProtocolError
from z4j_core.wire.frames import AnyFrame, Frame, Hello
from z4j_core.wire.limits import MAX_FRAME_BYTES, PROTOCOL_VERSION

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(AnyFrame)


class _VersionProbe(msgspec.Struct, tag_field="type", tag="hello"):
    """Reads only a hello's version, so that a hello of another version is refused as such even
    when the rest of its shape changed."""

    protocol_version: int


_probe_decoder: Final = msgspec.msgpack.Decoder(_VersionProbe)

# What msgspec (and a frame's __post_init__) may raise on hostile input. Anything else would be a
# bug in this module, and is left to surface.
_DECODE_FAILURES = (msgspec.DecodeError, RecursionError, ValueError, TypeError, OverflowError)


def encode_frame(frame: Frame) -> bytes:
    """The msgpack payload of ``frame``."""
    return _encoder.encode(frame)


def decode_frame(payload: bytes | memoryview, max_bytes: int = MAX_FRAME_BYTES) -> Frame:
    """Decode and validate one frame payload.

    Raises ``RemoteProtocolError`` with ``OVERSIZED`` if ``payload`` exceeds ``max_bytes`` (checked
    before decoding), or ``BAD_FRAME`` if it is not a valid frame.
    """
    if len(payload) > max_bytes:
        raise RemoteProtocolError(CloseCode.OVERSIZED, "frame exceeds the size limit")
    try:
        frame: Frame = _decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise RemoteProtocolError(CloseCode.BAD_FRAME, _describe(exc)) from None
    except _DECODE_FAILURES:
        raise RemoteProtocolError(CloseCode.BAD_FRAME, "undecodable frame") from None
    return frame


def hello_version(payload: bytes | memoryview) -> int | None:
    """The protocol version a hello payload claims, or None if it is not a hello at all."""
    try:
        return _probe_decoder.decode(payload).protocol_version
    except _DECODE_FAILURES:
        return None


def decode_hello(payload: bytes | memoryview, max_bytes: int = MAX_FRAME_BYTES) -> Hello:
    """Decode a hello; a valid-looking hello of another version is ``UNSUPPORTED_VERSION``."""
    if len(payload) > max_bytes:
        raise RemoteProtocolError(CloseCode.OVERSIZED, "frame exceeds the size limit")
    version = hello_version(payload)
    if version is not None and version != PROTOCOL_VERSION:
        raise RemoteProtocolError(
            CloseCode.UNSUPPORTED_VERSION,
            f"protocol version {version} is not supported (this side speaks {PROTOCOL_VERSION})",
        )
    frame = decode_frame(payload, max_bytes)
    if not isinstance(frame, Hello):
        raise RemoteProtocolError(CloseCode.UNEXPECTED_FRAME, "expected a hello")
    return frame


def _describe(exc: msgspec.ValidationError) -> str:
    # msgspec's messages name the field path and the expected type, never the value: safe to send.
    return f"invalid frame: {exc}"
