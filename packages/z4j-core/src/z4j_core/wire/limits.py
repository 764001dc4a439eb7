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

#: Default seconds between heartbeat pings, in each direction (a ping goes only when nothing
#: else was sent for that long): an idle link carries one small frame per 5 s each way, and a
#: half-open one is noticed after `HEARTBEAT_TIMEOUT_FACTOR` of them, 15 s. The brain announces
#: its value in the welcome, so agents of any release follow it.
DEFAULT_HEARTBEAT_SECONDS: Final = 5.0

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

#: Longest queue name a queue report carries, and longest action name in a hello, in characters.
MAX_NAME_CHARS: Final = 200

#: Most queues one queue report carries: an app with more reports the first ones by name (a
#: broker with thousands of queues must not make every report megabytes).
MAX_REPORTED_QUEUES: Final = 256

# -- limits an agent enforces on its own side (not agreed with the brain) ----------------------

#: Longest reason an adapter puts in a `rejected` or `failed` command result, in characters: a
#: reason may quote a task name, a list of registered names or an engine's exception message,
#: any of which can be arbitrarily long, and the brain stores and shows it as given.
MAX_RESULT_REASON_CHARS: Final = 200

#: Bound on the per-task state an adapter's capture keeps between two engine hooks (start
#: times, errors awaiting the engine's retry decision, events prepared before a publish): past
#: it the state is dropped whole, so a task that never reaches its second hook cannot grow
#: memory without end.
MAX_CAPTURE_IN_FLIGHT: Final = 10_000

#: Fewest seconds between two queue reports of one agent for one engine app: each report reads
#: the broker (a few cheap counts per queue), so it rides the heartbeat's cadence and never
#: faster. An unchanged report is sent again only after `QUEUE_REPORT_REFRESH_SECONDS`.
QUEUE_REPORT_SECONDS: Final = 5.0

#: Seconds after which an unchanged queue report is sent again (so the brain knows it is fresh).
QUEUE_REPORT_REFRESH_SECONDS: Final = 60.0

#: Largest original message the agent keeps on disk for a later retry, in bytes: a bigger one is
#: not kept (a retry of that task answers `unavailable`, saying so).
MAX_ORIGINAL_BYTES: Final = 1024 * 1024

#: Default bound on the folder of original messages kept for retries, in bytes (oldest go first).
DEFAULT_ORIGINALS_BYTES: Final = 64 * 1024 * 1024

#: Default seconds an original message is kept for a retry.
DEFAULT_ORIGINALS_TTL_SECONDS: Final = 7 * 24 * 3600.0
