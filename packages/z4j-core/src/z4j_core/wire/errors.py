"""Protocol errors and the WebSocket close codes they map to.

Owns the split between misuse by the caller (``LocalProtocolError``) and misbehaviour of the
peer (``RemoteProtocolError``), and the one table of application close codes. A reason carried
here goes on the wire: it must never contain a secret, a payload excerpt or a stack trace.
"""

from __future__ import annotations

import enum

from z4j_core.wire.limits import MAX_REASON_BYTES, MAX_REASON_CHARS


class CloseCode(enum.IntEnum):
    """Why a session ended: sent as the WebSocket close code, and in ``Close`` and ``Error``.

    1000 and 1001 are the standard WebSocket codes; the rest are application codes in the
    4000-4999 range (the last three digits echo the nearest HTTP status where one fits).
    """

    NORMAL = 1000  # a clean goodbye
    GOING_AWAY = 1001  # the process is shutting down; reconnect soon
    BAD_FRAME = 4400  # undecodable, invalid or malformed envelope or frame
    AUTH_REFUSED = 4401  # token unknown or revoked (terminal)
    UNEXPECTED_FRAME = 4402  # a valid frame not allowed now: wrong state, direction or window
    POLICY = 4403  # refused by the brain's policy (for example an app this token may not serve)
    HEARTBEAT_TIMEOUT = 4408  # the peer was silent too long, or the handshake took too long
    SEQUENCE = 4409  # a correctly signed frame out of sequence: replayed, reordered or dropped
    SUPERSEDED = 4410  # another connection of the same agent instance replaced this one
    BAD_SIGNATURE = 4411  # the MAC did not verify: altered, truncated or from another session
    OVERSIZED = 4413  # larger than the frame or batch limit
    UNSUPPORTED_VERSION = 4426  # the peer speaks another protocol version (terminal)
    INTERNAL = 4500  # the sender failed on its own side
    TRY_AGAIN_LATER = 4503  # the brain is overloaded or draining


#: Close codes after which an agent should not retry soon: retrying cannot help until an operator
#: acts (a new token, an upgrade). The agent backs off long and logs one clear line.
TERMINAL_CLOSE_CODES: frozenset[int] = frozenset(
    {CloseCode.AUTH_REFUSED, CloseCode.UNSUPPORTED_VERSION, CloseCode.POLICY}
)


def is_terminal(code: int) -> bool:
    """Whether a close code means "do not reconnect soon" (see ``TERMINAL_CLOSE_CODES``)."""
    return code in TERMINAL_CLOSE_CODES


def _short(reason: str) -> str:
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 3] + "..."
    data = reason.encode("utf-8", "backslashreplace")
    if len(data) <= MAX_REASON_BYTES:
        return data.decode("utf-8")
    return data[: MAX_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."


class ProtocolError(Exception):
    """Base of every error the wire layer raises.

    ``code`` is the close code to end the connection with; ``reason`` is short, safe to send to
    the peer and to log.
    """

    def __init__(self, code: CloseCode, reason: str) -> None:
        self.code = code
        self.reason = _short(reason)
        super().__init__(f"{code.name} ({int(code)}): {self.reason}")


class LocalProtocolError(ProtocolError):
    """The caller misused the session (sent a frame the state does not allow, broke a limit).

    The session's state is unchanged: nothing was sent.
    """

    def __init__(self, reason: str, code: CloseCode = CloseCode.INTERNAL) -> None:
        super().__init__(code, reason)


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids; the session is now closed.

    Close the WebSocket with ``code`` and ``reason``.
    """
