"""Sans-I/O session state machines: ``AgentSession`` and ``BrainSession``.

Owns the handshake, per-direction sequence numbers, signing and verification of every frame,
the window of unacknowledged event batches, heartbeats and the closing states. Bytes and a
monotonic ``now`` go in; frames and bytes come out. Never reads a clock, opens a socket, starts a
thread or touches asyncio: the agent runtime and the brain's gateway only pump bytes.

Each WebSocket message carries exactly one frame. Bytes returned by ``start``, ``accept``,
``send``, ``close`` and ``tick`` are signed at the moment they are returned and carry the next
sequence number, so the caller must write them in the order they were returned. Prioritise
(control frames before event batches) *before* calling ``send``, never by reordering bytes.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Final

import msgspec

from z4j_core.wire.codec import decode_frame, decode_hello, encode_frame
from z4j_core.wire.errors import CloseCode, LocalProtocolError, RemoteProtocolError
from z4j_core.wire.frames import (
    ACTION_CAPABILITY,
    FEATURE_QUEUE_REPORTS,
    FEATURE_UNKNOWN_ANSWERS,
    Ack,
    Action,
    Capability,
    Close,
    Command,
    CommandResult,
    CommandStatus,
    DroppedReport,
    Error,
    EventBatch,
    Frame,
    Hello,
    Inventory,
    Limits,
    Ping,
    Pong,
    QueueReport,
    Side,
    Welcome,
)
from z4j_core.wire.limits import (
    HANDSHAKE_TIMEOUT_SECONDS,
    HEARTBEAT_TIMEOUT_FACTOR,
    MAX_FRAME_BYTES,
    MAX_REASON_CHARS,
    NONCE_BYTES,
    PROTOCOL_VERSION,
    SESSION_ID_BYTES,
)
from z4j_core.wire.signing import (
    MAX_SEQ,
    SIGNED_HEADER_BYTES,
    UNSIGNED,
    derive_session_key,
    hello_digest,
    new_nonce,
    new_session_id,
    open_sealed,
    open_unsigned,
    seal,
    token_hash,
    unsigned,
)


class State(str, enum.Enum):
    """Where a session is. The agent starts IDLE, the brain AWAITING_HELLO."""

    IDLE = "idle"  # agent: nothing sent yet
    HELLO_SENT = "hello_sent"  # agent: waiting for the welcome
    AWAITING_HELLO = "awaiting_hello"  # brain: waiting for the hello
    HELLO_RECEIVED = "hello_received"  # brain: hello valid; the gateway accepts or refuses
    OPEN = "open"  # signed frames flow both ways
    CLOSING = "closing"  # this side said goodbye; waiting for the peer's or the socket's end
    CLOSED = "closed"  # nothing more may be sent or received


class Trigger(str, enum.Enum):
    """What moves a session from one state to another."""

    SEND_HELLO = "send_hello"
    RECV_HELLO = "recv_hello"
    SEND_WELCOME = "send_welcome"
    RECV_WELCOME = "recv_welcome"
    SEND_CLOSE = "send_close"  # a Close, a fatal Error, or a refusal
    RECV_CLOSE = "recv_close"  # a Close, a fatal Error, or a refusal
    FAULT = "fault"  # the peer broke the protocol, or went silent
    CONNECTION_LOST = "connection_lost"  # the socket ended


_ANY_STATE_TO_CLOSED = {
    (state, trigger): State.CLOSED
    for state in State
    for trigger in (Trigger.FAULT, Trigger.CONNECTION_LOST)
}

#: Every allowed transition, per side. A (state, trigger) pair not listed is a protocol error.
TRANSITIONS: Final[dict[Side, dict[tuple[State, Trigger], State]]] = {
    Side.AGENT: {
        (State.IDLE, Trigger.SEND_HELLO): State.HELLO_SENT,
        (State.HELLO_SENT, Trigger.RECV_WELCOME): State.OPEN,
        (State.HELLO_SENT, Trigger.RECV_CLOSE): State.CLOSED,
        (State.OPEN, Trigger.SEND_CLOSE): State.CLOSING,
        (State.OPEN, Trigger.RECV_CLOSE): State.CLOSED,
        (State.CLOSING, Trigger.RECV_CLOSE): State.CLOSED,
        **_ANY_STATE_TO_CLOSED,
    },
    Side.BRAIN: {
        (State.AWAITING_HELLO, Trigger.RECV_HELLO): State.HELLO_RECEIVED,
        (State.HELLO_RECEIVED, Trigger.SEND_WELCOME): State.OPEN,
        (State.HELLO_RECEIVED, Trigger.SEND_CLOSE): State.CLOSED,
        (State.OPEN, Trigger.SEND_CLOSE): State.CLOSING,
        (State.OPEN, Trigger.RECV_CLOSE): State.CLOSED,
        (State.CLOSING, Trigger.RECV_CLOSE): State.CLOSED,
        **_ANY_STATE_TO_CLOSED,
    },
}

_AGENT_OPEN_SENDS: frozenset[type[Frame]] = frozenset(
    {EventBatch, Inventory, DroppedReport, CommandResult, QueueReport, Error, Close}
)
_BRAIN_OPEN_SENDS: frozenset[type[Frame]] = frozenset({Ack, Command, Action, Error, Close})

#: Frames the caller may ``send`` in each state (heartbeats are the session's own business).
SENDABLE: Final[dict[Side, dict[State, frozenset[type[Frame]]]]] = {
    Side.AGENT: {
        State.OPEN: _AGENT_OPEN_SENDS,
        State.CLOSING: frozenset({CommandResult, DroppedReport}),
    },
    Side.BRAIN: {
        State.OPEN: _BRAIN_OPEN_SENDS,
        State.CLOSING: frozenset({Ack}),
    },
}

#: Signed frames a session accepts from its peer once open (in OPEN and CLOSING alike, since the
#: peer may not have seen our goodbye yet).
RECEIVABLE: Final[dict[Side, frozenset[type[Frame]]]] = {
    Side.AGENT: _BRAIN_OPEN_SENDS | {Ping, Pong},
    Side.BRAIN: _AGENT_OPEN_SENDS | {Ping, Pong},
}

_PEER: Final = {Side.AGENT: Side.BRAIN, Side.BRAIN: Side.AGENT}


class _Session:
    """What both sides share: signing, sequence numbers, heartbeats, closing."""

    side: Side

    def __init__(self) -> None:
        self._state = State.IDLE if self.side is Side.AGENT else State.AWAITING_HELLO
        self._peer = _PEER[self.side]
        self._key = b""
        self._send_seq = 0
        self._recv_seq = 0
        self._limits = Limits()
        self._started_at: float | None = None
        self._last_sent = 0.0
        self._last_received = 0.0
        self._next_ping_id = 0
        self._ping_sent_at: dict[int, float] = {}
        self._pong_owed: int | None = None
        self.last_rtt: float | None = None
        self.session_id: str | None = None

    # -- public ---------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def limits(self) -> Limits:
        """The limits the brain announced (defaults until the welcome)."""
        return self._limits

    def send(self, frame: Frame, now: float) -> bytes:
        """Sign ``frame`` and return the bytes to write now, as one WebSocket message.

        Raises ``LocalProtocolError`` if this state does not allow ``frame``, or it breaks a
        limit (batch size, window, frame size); nothing is sent then.
        """
        allowed = SENDABLE[self.side].get(self._state, frozenset())
        if type(frame) not in allowed:
            raise LocalProtocolError(
                f"cannot send {type(frame).__name__} in state {self._state.value}",
                CloseCode.UNEXPECTED_FRAME,
            )
        frame = self._for_this_peer(frame)
        self._check_send(frame)
        data = self._seal(frame, now)
        self._after_send(frame)
        if isinstance(frame, Close) or (isinstance(frame, Error) and frame.fatal):
            self._transition(Trigger.SEND_CLOSE)
        return data

    def close(
        self, code: CloseCode = CloseCode.NORMAL, reason: str = "", now: float = 0.0
    ) -> bytes:
        """Say goodbye (a signed ``Close``); the state becomes CLOSING."""
        return self.send(Close(code=int(code), reason=reason[:MAX_REASON_CHARS]), now)

    def receive(self, data: bytes, now: float) -> list[Frame]:
        """Verify and decode one WebSocket message from the peer.

        Returns the frames for the caller (heartbeats are handled inside and return nothing).
        Raises ``RemoteProtocolError`` when the peer broke the protocol; the session is then
        CLOSED and the caller closes the connection with the error's code and reason.
        """
        if self._state is State.CLOSED:
            raise LocalProtocolError("session is closed")
        if self._started_at is None:
            self._started_at = now
        try:
            if len(data) > self._max_receive_bytes():
                raise RemoteProtocolError(CloseCode.OVERSIZED, "frame exceeds the size limit")
            if self._state in (State.OPEN, State.CLOSING):
                frames = self._receive_signed(data, now)
            else:
                frames = self._receive_handshake(data, now)
        except RemoteProtocolError:
            self._transition(Trigger.FAULT)
            raise
        self._last_received = now
        return frames

    def tick(self, now: float) -> list[bytes]:
        """Heartbeat: bytes to write now (a pong owed, a ping due).

        Call after every ``receive`` and at least every second. Raises ``RemoteProtocolError``
        (``HEARTBEAT_TIMEOUT``) when the handshake takes too long or the peer has been silent for
        ``HEARTBEAT_TIMEOUT_FACTOR`` heartbeat intervals; the session is then CLOSED.
        """
        if self._started_at is None:
            self._started_at = now
        if self._state is State.CLOSED:
            return []
        if self._state not in (State.OPEN, State.CLOSING):
            if now - self._started_at > HANDSHAKE_TIMEOUT_SECONDS:
                self._transition(Trigger.FAULT)
                raise RemoteProtocolError(CloseCode.HEARTBEAT_TIMEOUT, "handshake timed out")
            return []
        interval = self._limits.heartbeat_seconds
        if now - self._last_received > interval * HEARTBEAT_TIMEOUT_FACTOR:
            self._transition(Trigger.FAULT)
            raise RemoteProtocolError(CloseCode.HEARTBEAT_TIMEOUT, "peer silent too long")
        out: list[bytes] = []
        if self._pong_owed is not None:
            out.append(self._seal(Pong(id=self._pong_owed), now))
            self._pong_owed = None
        if now - self._last_sent >= interval:
            ping_id = self._next_ping_id
            self._next_ping_id += 1
            self._ping_sent_at = {ping_id: now}  # only the latest ping is timed
            out.append(self._seal(Ping(id=ping_id), now))
        return out

    def connection_lost(self) -> None:
        """The socket ended (for any reason): the session is CLOSED."""
        self._transition(Trigger.CONNECTION_LOST)

    # -- shared machinery -----------------------------------------------------------------------

    def _transition(self, trigger: Trigger) -> None:
        try:
            self._state = TRANSITIONS[self.side][(self._state, trigger)]
        except KeyError:
            raise LocalProtocolError(
                f"{trigger.value} is not allowed in state {self._state.value}"
            ) from None

    def _max_receive_bytes(self) -> int:
        return MAX_FRAME_BYTES

    def _max_send_bytes(self) -> int:
        return MAX_FRAME_BYTES

    def _seal(self, frame: Frame, now: float) -> bytes:
        payload = encode_frame(frame)
        if len(payload) + SIGNED_HEADER_BYTES > self._max_send_bytes():
            raise LocalProtocolError(
                f"{type(frame).__name__} of {len(payload)} bytes exceeds the frame limit",
                CloseCode.OVERSIZED,
            )
        if self._send_seq > MAX_SEQ:
            raise LocalProtocolError("sequence numbers exhausted; open a new session")
        data = seal(self._key, self.side, self._send_seq, payload)
        self._send_seq += 1
        self._last_sent = now
        return data

    def _receive_signed(self, data: bytes, now: float) -> list[Frame]:
        seq, payload = open_sealed(self._key, self._peer, data)
        if seq != self._recv_seq:
            raise RemoteProtocolError(
                CloseCode.SEQUENCE, f"frame sequence {seq} where {self._recv_seq} was expected"
            )
        self._recv_seq += 1
        frame = decode_frame(payload, self._max_receive_bytes())
        if type(frame) not in RECEIVABLE[self.side]:
            raise RemoteProtocolError(
                CloseCode.UNEXPECTED_FRAME, f"{type(frame).__name__} is not allowed now"
            )
        if isinstance(frame, Ping):
            self._pong_owed = frame.id
            return []
        if isinstance(frame, Pong):
            sent_at = self._ping_sent_at.pop(frame.id, None)
            if sent_at is not None:
                self.last_rtt = now - sent_at
            return []
        self._check_received(frame)
        if isinstance(frame, Close) or (isinstance(frame, Error) and frame.fatal):
            self._transition(Trigger.RECV_CLOSE)
        return [frame]

    def _receive_handshake(self, data: bytes, now: float) -> list[Frame]:
        raise RemoteProtocolError(CloseCode.UNEXPECTED_FRAME, "no frame expected now")

    def _for_this_peer(self, frame: Frame) -> Frame:
        """``frame`` as this peer can read it (an older peer may not know every value)."""
        return frame

    def _check_send(self, frame: Frame) -> None:
        """Side-specific limits on what the caller sends; raise ``LocalProtocolError``."""

    def _after_send(self, frame: Frame) -> None:
        """Side-specific bookkeeping once ``frame`` is signed."""

    def _check_received(self, frame: Frame) -> None:
        """Side-specific checks and bookkeeping on a received frame; raise
        ``RemoteProtocolError``."""


class AgentSession(_Session):
    """The agent's end: sends the hello, verifies the welcome, then streams signed frames.

    ``token`` is the agent's secret (the same one presented as ``Authorization: Bearer`` on the
    upgrade). ``hello.nonce`` is replaced by ``nonce`` (fresh random bytes when not given).
    """

    side = Side.AGENT

    def __init__(self, token: str | bytes, hello: Hello, nonce: bytes | None = None) -> None:
        super().__init__()
        nonce = new_nonce() if nonce is None else nonce
        if len(nonce) != NONCE_BYTES:
            raise LocalProtocolError(f"nonce must be {NONCE_BYTES} bytes")
        if hello.protocol_version != PROTOCOL_VERSION:
            raise LocalProtocolError(f"hello must declare protocol version {PROTOCOL_VERSION}")
        self._token_hash = token_hash(token)
        self.hello = Hello(
            protocol_version=hello.protocol_version,
            agent_instance=hello.agent_instance,
            app=hello.app,
            host=hello.host,
            pid=hello.pid,
            agent_version=hello.agent_version,
            engines=hello.engines,
            labels=hello.labels,
            nonce=nonce,
        )
        self._hello_payload = encode_frame(self.hello)
        self.welcome: Welcome | None = None
        # The window: (first_seq, last_seq) of each batch sent in this session and not yet
        # covered by an ack.
        self._unacked: deque[tuple[int, int]] = deque()
        self._last_event_seq = -1
        self._acked_up_to = -1

    @property
    def unacked_batches(self) -> int:
        """Event batches sent in this session and not yet acknowledged."""
        return len(self._unacked)

    @property
    def can_send_batch(self) -> bool:
        """Whether the window has room for another event batch."""
        return self._state is State.OPEN and len(self._unacked) < self._limits.window

    @property
    def acked_up_to(self) -> int:
        """The highest ``up_to_seq`` acknowledged in this session, or -1."""
        return self._acked_up_to

    def start(self, now: float) -> bytes:
        """The hello, unsigned: the first message on a fresh connection."""
        self._transition(Trigger.SEND_HELLO)
        self._started_at = now
        self._last_sent = now
        return unsigned(self._hello_payload)

    def _max_send_bytes(self) -> int:
        return self._limits.max_frame_bytes

    def _receive_handshake(self, data: bytes, now: float) -> list[Frame]:
        if self._state is not State.HELLO_SENT:
            raise LocalProtocolError("call start() before receive()")
        if data[:1] == UNSIGNED:
            refusal = decode_frame(open_unsigned(data))
            if not isinstance(refusal, Error) or not refusal.fatal:
                raise RemoteProtocolError(
                    CloseCode.UNEXPECTED_FRAME, "only a fatal error may come unsigned"
                )
            self._transition(Trigger.RECV_CLOSE)
            return [refusal]
        if len(data) < SIGNED_HEADER_BYTES:
            raise RemoteProtocolError(CloseCode.BAD_FRAME, "truncated frame")
        # The welcome names the session id and nonce the key derives from, so it is decoded
        # before its MAC is checked; nothing in it is trusted until the MAC verifies.
        welcome = decode_frame(data[SIGNED_HEADER_BYTES:])
        if not isinstance(welcome, Welcome):
            raise RemoteProtocolError(CloseCode.UNEXPECTED_FRAME, "expected the welcome")
        if len(welcome.nonce) != NONCE_BYTES or not _is_session_id(welcome.session_id):
            raise RemoteProtocolError(CloseCode.BAD_FRAME, "malformed welcome")
        key = derive_session_key(
            self._token_hash,
            self.hello.nonce,
            welcome.nonce,
            welcome.session_id,
            hello_digest(self._hello_payload),
        )
        seq, _ = open_sealed(key, Side.BRAIN, data)
        if seq != 0:
            raise RemoteProtocolError(CloseCode.SEQUENCE, "welcome must be frame 0")
        if welcome.protocol_version != PROTOCOL_VERSION:
            raise RemoteProtocolError(
                CloseCode.UNSUPPORTED_VERSION,
                f"brain speaks protocol version {welcome.protocol_version}",
            )
        self._key = key
        self._recv_seq = 1
        self._limits = welcome.limits
        self.session_id = welcome.session_id
        self.welcome = welcome
        self._transition(Trigger.RECV_WELCOME)
        return [welcome]

    def _for_this_peer(self, frame: Frame) -> Frame:
        """An ``unknown`` answer goes to a brain that predates it as ``failed`` (its welcome
        does not name ``FEATURE_UNKNOWN_ANSWERS``): the one status such a brain knows."""
        if not (isinstance(frame, CommandResult) and frame.status is CommandStatus.UNKNOWN):
            return frame
        if self.welcome is not None and FEATURE_UNKNOWN_ANSWERS in self.welcome.features:
            return frame
        return msgspec.structs.replace(frame, status=CommandStatus.FAILED)

    def _check_send(self, frame: Frame) -> None:
        if isinstance(frame, QueueReport):
            features = self.welcome.features if self.welcome is not None else []
            if FEATURE_QUEUE_REPORTS not in features:
                raise LocalProtocolError(
                    "this brain does not accept queue reports (its welcome does not name "
                    f"{FEATURE_QUEUE_REPORTS!r})",
                    CloseCode.UNEXPECTED_FRAME,
                )
            return
        if not isinstance(frame, EventBatch):
            return
        if len(frame.events) > self._limits.max_batch_events:
            raise LocalProtocolError(
                f"batch of {len(frame.events)} events exceeds the limit of "
                f"{self._limits.max_batch_events}",
                CloseCode.OVERSIZED,
            )
        if len(self._unacked) >= self._limits.window:
            raise LocalProtocolError(
                "window of unacknowledged batches is full; wait for an ack",
                CloseCode.UNEXPECTED_FRAME,
            )
        if frame.first_seq <= self._last_event_seq:
            raise LocalProtocolError(
                f"batch starts at {frame.first_seq}, not after {self._last_event_seq}",
                CloseCode.UNEXPECTED_FRAME,
            )

    def _after_send(self, frame: Frame) -> None:
        if isinstance(frame, EventBatch):
            last = frame.last_seq
            self._unacked.append((frame.first_seq, last))
            self._last_event_seq = last

    def _check_received(self, frame: Frame) -> None:
        if not isinstance(frame, Ack):
            return
        if not self._acked_up_to < frame.up_to_seq <= self._last_event_seq:
            raise RemoteProtocolError(
                CloseCode.UNEXPECTED_FRAME, "ack does not cover new events sent in this session"
            )
        self._acked_up_to = frame.up_to_seq
        while self._unacked and self._unacked[0][1] <= frame.up_to_seq:
            self._unacked.popleft()


class BrainSession(_Session):
    """The brain's end: receives the hello, then ``accept`` (a signed welcome) or ``refuse``.

    ``token_hash_value`` is what the brain stored for the token presented on the upgrade
    (``signing.token_hash``). ``nonce`` and ``session_id`` are fresh random values unless given.
    """

    side = Side.BRAIN

    def __init__(
        self,
        token_hash_value: bytes,
        limits: Limits | None = None,
        nonce: bytes | None = None,
        session_id: str | None = None,
        brain_version: str = "",
        *,
        features: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        nonce = new_nonce() if nonce is None else nonce
        session_id = new_session_id() if session_id is None else session_id
        if len(nonce) != NONCE_BYTES:
            raise LocalProtocolError(f"nonce must be {NONCE_BYTES} bytes")
        if not _is_session_id(session_id):
            raise LocalProtocolError(f"session id must be {SESSION_ID_BYTES * 2} lowercase hex")
        self._token_hash = token_hash_value
        self._nonce = nonce
        self._limits = Limits() if limits is None else limits
        self._brain_version = brain_version
        self._features = list(features)
        self.session_id = session_id
        self.hello: Hello | None = None
        self._hello_digest = b""
        # Last seq of each batch received in this session and not yet covered by an ack.
        self._unacked: deque[int] = deque()
        self._last_event_seq = -1
        self._acked_up_to = -1

    @property
    def unacked_batches(self) -> int:
        """Event batches received in this session and not yet acknowledged."""
        return len(self._unacked)

    @property
    def last_event_seq(self) -> int:
        """The last event sequence number received in this session, or -1."""
        return self._last_event_seq

    def accept(self, now: float) -> bytes:
        """The signed welcome; the session is OPEN. Call once the hello is acceptable."""
        if self._state is not State.HELLO_RECEIVED or self.hello is None:
            raise LocalProtocolError(f"cannot accept in state {self._state.value}")
        self._key = derive_session_key(
            self._token_hash,
            self.hello.nonce,
            self._nonce,
            self.session_id or "",
            self._hello_digest,
        )
        welcome = Welcome(
            protocol_version=PROTOCOL_VERSION,
            session_id=self.session_id or "",
            nonce=self._nonce,
            limits=self._limits,
            brain_version=self._brain_version,
            features=self._features,
        )
        data = self._seal(welcome, now)
        self._transition(Trigger.SEND_WELCOME)
        self._last_received = now
        return data

    def refuse(self, code: CloseCode, reason: str) -> bytes:
        """An unsigned fatal ``Error`` refusing the hello; the session is CLOSED.

        Then close the connection with the same code.
        """
        if self._state is not State.HELLO_RECEIVED:
            raise LocalProtocolError(f"cannot refuse in state {self._state.value}")
        payload = encode_frame(Error(code=int(code), message=reason[:MAX_REASON_CHARS], fatal=True))
        self._transition(Trigger.SEND_CLOSE)
        return unsigned(payload)

    def _max_receive_bytes(self) -> int:
        return self._limits.max_frame_bytes

    def _receive_handshake(self, data: bytes, now: float) -> list[Frame]:
        if self._state is not State.AWAITING_HELLO:
            raise LocalProtocolError("accept() or refuse() the hello before receiving more")
        payload = open_unsigned(data)
        hello = decode_hello(payload, self._max_receive_bytes())
        if len(hello.nonce) != NONCE_BYTES:
            raise RemoteProtocolError(CloseCode.BAD_FRAME, "malformed hello nonce")
        self.hello = hello
        self._hello_digest = hello_digest(payload)
        self._transition(Trigger.RECV_HELLO)
        return [hello]

    def _check_send(self, frame: Frame) -> None:
        if isinstance(frame, Action):
            self._check_action(frame)
        if isinstance(frame, Ack) and not (
            self._acked_up_to < frame.up_to_seq <= self._last_event_seq
        ):
            raise LocalProtocolError(
                f"ack up to {frame.up_to_seq} must be above {self._acked_up_to} and at most "
                f"{self._last_event_seq}, the last event received",
                CloseCode.UNEXPECTED_FRAME,
            )

    def _check_action(self, action: Action) -> None:
        """An action goes only to an engine whose hello advertises it (an agent that predates
        actions cannot decode the frame)."""
        needed = [ACTION_CAPABILITY[action.action]]
        if action.terminate:
            needed.append(Capability.TERMINATE)
        engines = self.hello.engines if self.hello is not None else []
        advertised = next((e.advertised for e in engines if e.name == action.engine), None)
        missing = [c.value for c in needed if advertised is None or c not in advertised]
        if missing:
            raise LocalProtocolError(
                f"this agent does not advertise {', '.join(missing)} for {action.engine!r}",
                CloseCode.UNEXPECTED_FRAME,
            )

    def _after_send(self, frame: Frame) -> None:
        if isinstance(frame, Ack):
            self._acked_up_to = frame.up_to_seq
            while self._unacked and self._unacked[0] <= frame.up_to_seq:
                self._unacked.popleft()

    def _check_received(self, frame: Frame) -> None:
        if not isinstance(frame, EventBatch):
            return
        if len(frame.events) > self._limits.max_batch_events:
            raise RemoteProtocolError(CloseCode.OVERSIZED, "batch exceeds the event limit")
        if frame.first_seq <= self._last_event_seq:
            raise RemoteProtocolError(
                CloseCode.UNEXPECTED_FRAME, "event batch does not follow the previous one"
            )
        if len(self._unacked) >= self._limits.window:
            raise RemoteProtocolError(
                CloseCode.UNEXPECTED_FRAME, "window of unacknowledged batches exceeded"
            )
        self._last_event_seq = frame.last_seq
        self._unacked.append(frame.last_seq)


_HEX = frozenset("0123456789abcdef")


def _is_session_id(value: str) -> bool:
    return len(value) == SESSION_ID_BYTES * 2 and set(value) <= _HEX
