"""The wire protocol's numbers, declared once.

Every other module (the sessions, the agent runtime, the brain's gateway, the docs' tests)
imports these names; none of them repeats a literal. Changing a number that both peers must
agree on (the protocol version, the nonce or MAC sizes) is a protocol version change.
"""

from __future__ import annotations

from typing import Final

#: Version of the frame set and the signing scheme. The brain refuses a hello of another version
#: with ``CloseCode.UNSUPPORTED_VERSION``.
PROTOCOL_VERSION: Final = 1

#: Hard ceiling on one WebSocket message (one frame, envelope included), in bytes. A receiver
#: refuses anything larger before decoding it. The brain may announce a lower limit in its welcome.
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024

#: Hard ceiling on the events of one batch. The brain may announce a lower limit.
MAX_BATCH_EVENTS: Final = 1000

#: Default number of event batches the agent may have sent and not yet seen acknowledged.
DEFAULT_WINDOW: Final = 8

#: Largest window a brain may announce.
MAX_WINDOW: Final = 256

#: Default seconds between heartbeat pings, in each direction.
DEFAULT_HEARTBEAT_SECONDS: Final = 15.0

#: A peer silent for this many heartbeat intervals is considered gone.
HEARTBEAT_TIMEOUT_FACTOR: Final = 3.0

#: Seconds either side waits for the handshake (hello, then welcome) to complete.
HANDSHAKE_TIMEOUT_SECONDS: Final = 10.0

#: Default number of commands the brain expects an agent to run at once (a hint).
DEFAULT_COMMAND_CONCURRENCY: Final = 16

#: Bytes of randomness in each handshake nonce.
NONCE_BYTES: Final = 32

#: Bytes of randomness in a session id (sent as lowercase hex, twice as many characters).
SESSION_ID_BYTES: Final = 16

#: Bytes of randomness in an agent token.
TOKEN_BYTES: Final = 32

#: Bytes of an HMAC-SHA256 tag, and of a derived session key.
MAC_BYTES: Final = 32

#: Longest close or error reason a session puts on the wire, in characters...
MAX_REASON_CHARS: Final = 120

#: ...and in bytes of UTF-8: a WebSocket close reason must fit in 123, and a reason may echo a
#: peer's characters of up to four bytes each.
MAX_REASON_BYTES: Final = 123

#: Largest sequence number, count or pid a frame may carry: the brain stores them in signed
#: 64-bit columns, so a larger one is a malformed frame, not a storage failure.
MAX_FRAME_INT: Final = 2**63 - 1

#: Largest retry count an event may carry (a 32-bit column).
MAX_RETRIES: Final = 2**31 - 1
