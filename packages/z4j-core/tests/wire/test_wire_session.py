"""The sans-I/O sessions joined in memory: handshake, exchange, and every rejection path."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_helpers import TOKEN, SessionPair, batch, forge, make_hello

from z4j_core.wire import (
    HANDSHAKE_TIMEOUT_SECONDS,
    HEARTBEAT_TIMEOUT_FACTOR,
    Ack,
    AgentSession,
    BrainSession,
    Close,
    CloseCode,
    Command,
    CommandKind,
    CommandResult,
    CommandStatus,
    DroppedReport,
    Error,
    EventBatch,
    Hello,
    Inventory,
    Limits,
    LocalProtocolError,
    ObservedSchedule,
    RemoteProtocolError,
    State,
    TaskInfo,
    Welcome,
    is_terminal,
    token_hash,
)
from z4j_core.wire.codec import encode_frame
from z4j_core.wire.session import TRANSITIONS, Trigger
from z4j_core.wire.signing import SIGNED_HEADER_BYTES

FIRE = Command(
    command_id="cmd-1",
    kind=CommandKind.FIRE,
    deadline_seconds=30.0,
    engine="celery",
    app="billing",
    task="billing.tasks.send_invoice",
    args=["cus_1", 42],
    kwargs={"notify": True},
    fire_id="fire-abc",
    schedule_id="sched-1",
    slot="2026-03-29T02:30:00+01:00",
)


def opened(limits: Limits | None = None) -> SessionPair:
    pair = SessionPair(limits)
    pair.handshake()
    return pair


def reject(session: AgentSession | BrainSession, data: bytes, code: CloseCode) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        session.receive(data, 0.0)
    assert info.value.code is code, info.value
    assert session.state is State.CLOSED


# -- the happy path --------------------------------------------------------------------------------


def test_handshake_opens_both_sides() -> None:
    pair = SessionPair(Limits(window=3, heartbeat_seconds=5.0))
    assert pair.agent.state is State.IDLE
    assert pair.brain.state is State.AWAITING_HELLO
    hello_bytes = pair.agent.start(0.0)
    assert pair.agent.state is State.HELLO_SENT
    (hello,) = pair.brain.receive(hello_bytes, 0.0)
    assert isinstance(hello, Hello) and hello.app == "billing" and len(hello.nonce) == 32
    assert pair.brain.state is State.HELLO_RECEIVED
    (welcome,) = pair.agent.receive(pair.brain.accept(0.0), 0.0)
    assert isinstance(welcome, Welcome)
    assert pair.agent.state is pair.brain.state is State.OPEN
    assert pair.agent.session_id == pair.brain.session_id == welcome.session_id
    assert pair.agent.limits == Limits(window=3, heartbeat_seconds=5.0)


def test_full_exchange_batches_acks_commands_results() -> None:
    pair = opened(Limits(window=2, max_batch_events=10))
    agent, brain = pair.agent, pair.brain
    assert pair.agent_to_brain(batch(0, 10)) == [batch(0, 10)]
    assert pair.agent_to_brain(batch(10, 5)) == [batch(10, 5)]
    assert agent.unacked_batches == brain.unacked_batches == 2
    assert not agent.can_send_batch
    with pytest.raises(LocalProtocolError) as info:
        agent.send(batch(15), 0.0)
    assert info.value.code is CloseCode.UNEXPECTED_FRAME
    assert agent.state is State.OPEN  # misuse sends nothing and changes nothing

    assert pair.brain_to_agent(FIRE) == [FIRE]  # a command overtakes the backlog
    assert pair.brain_to_agent(Ack(up_to_seq=9)) == [Ack(up_to_seq=9)]
    assert agent.unacked_batches == brain.unacked_batches == 1
    assert agent.acked_up_to == 9 and agent.can_send_batch
    result = CommandResult(command_id="cmd-1", status=CommandStatus.ENQUEUED, native_id="fire-abc")
    assert pair.agent_to_brain(result) == [result]
    assert pair.agent_to_brain(batch(20, 1)) == [batch(20, 1)]  # gaps (drops) are allowed
    assert pair.brain_to_agent(Ack(up_to_seq=20)) == [Ack(up_to_seq=20)]
    assert agent.unacked_batches == brain.unacked_batches == 0

    inventory = Inventory(
        engine="celery",
        app="billing",
        tasks=[TaskInfo(name="billing.tasks.send_invoice", queue="mail")],
        schedules=[
            ObservedSchedule(
                source="celery_beat", name="nightly", task="t", kind="cron", expression="0 3 * * *"
            )
        ],
        queues=["mail"],
        workers=["celery@w1"],
    )
    assert pair.agent_to_brain(inventory) == [inventory]
    assert pair.agent_to_brain(DroppedReport(total=17, reason="spool full")) == [
        DroppedReport(total=17, reason="spool full")
    ]


def test_partial_ack_keeps_the_rest_of_the_window() -> None:
    pair = opened()
    pair.agent_to_brain(batch(0, 10))
    pair.brain_to_agent(Ack(up_to_seq=4))
    assert pair.agent.unacked_batches == pair.brain.unacked_batches == 1
    pair.brain_to_agent(Ack(up_to_seq=9))
    assert pair.agent.unacked_batches == pair.brain.unacked_batches == 0


def test_clean_close() -> None:
    pair = opened()
    pair.agent_to_brain(batch(0))
    closing = pair.agent.close(CloseCode.GOING_AWAY, "shutting down")
    assert pair.agent.state is State.CLOSING
    with pytest.raises(LocalProtocolError):
        pair.agent.send(batch(1), 0.0)
    # The brain may still acknowledge what it stored; the agent may still report a result.
    ack = pair.brain.send(Ack(up_to_seq=0), 0.0)
    assert pair.agent.receive(ack, 0.0) == [Ack(up_to_seq=0)]
    (close,) = pair.brain.receive(closing, 0.0)
    assert close == Close(code=CloseCode.GOING_AWAY, reason="shutting down")
    assert pair.brain.state is State.CLOSED
    pair.agent.connection_lost()
    assert pair.agent.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        pair.agent.receive(ack, 0.0)


def test_simultaneous_close() -> None:
    pair = opened()
    from_agent = pair.agent.close()
    from_brain = pair.brain.close()
    pair.agent.receive(from_brain, 0.0)
    pair.brain.receive(from_agent, 0.0)
    assert pair.agent.state is pair.brain.state is State.CLOSED


def test_fatal_error_ends_the_session() -> None:
    pair = opened()
    data = pair.brain.send(Error(code=CloseCode.POLICY, message="app not allowed", fatal=True), 0)
    assert pair.brain.state is State.CLOSING
    (error,) = pair.agent.receive(data, 0.0)
    assert isinstance(error, Error) and is_terminal(error.code)
    assert pair.agent.state is State.CLOSED


def test_non_fatal_error_keeps_the_session() -> None:
    pair = opened()
    error = Error(code=CloseCode.BAD_FRAME, message="unknown task", fatal=False)
    assert pair.brain_to_agent(error) == [error]
    assert pair.agent.state is State.OPEN


# -- handshake faults ------------------------------------------------------------------------------


def test_wrong_token_fails_the_welcome() -> None:
    pair = SessionPair(token=TOKEN, brain_token="z4j_another-token")
    pair.brain.receive(pair.agent.start(0.0), 0.0)
    reject(pair.agent, pair.brain.accept(0.0), CloseCode.BAD_SIGNATURE)


def test_hello_altered_in_transit_fails_the_welcome() -> None:
    pair = SessionPair()
    hello = pair.agent.start(0.0)
    assert b"billing" in hello
    (received,) = pair.brain.receive(hello.replace(b"billing", b"biIling"), 0.0)
    assert isinstance(received, Hello) and received.app == "biIling"
    reject(pair.agent, pair.brain.accept(0.0), CloseCode.BAD_SIGNATURE)


def test_unsupported_version_is_named_even_if_the_hello_changed_shape() -> None:
    pair = SessionPair()
    future = msgspec.msgpack.encode({"type": "hello", "protocol_version": 2, "new_field": [1]})
    reject(pair.brain, b"U" + future, CloseCode.UNSUPPORTED_VERSION)
    assert is_terminal(CloseCode.UNSUPPORTED_VERSION)


def test_agent_refuses_a_welcome_of_another_version() -> None:
    pair = SessionPair()
    pair.brain.receive(pair.agent.start(0.0), 0.0)
    pair.brain.accept(0.0)
    welcome = Welcome(
        protocol_version=2,
        session_id=pair.brain.session_id or "",
        nonce=pair.brain._nonce,
    )
    pair.brain._send_seq = 0
    reject(pair.agent, forge(pair.brain, welcome), CloseCode.UNSUPPORTED_VERSION)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"U",
        b"U\x00",
        b"S" + b"\x00" * 60,
        b"U" + encode_frame(make_hello(nonce=b"short")),
        b"U" + encode_frame(Ack(up_to_seq=1)),
    ],
)
def test_bad_hellos(data: bytes) -> None:
    pair = SessionPair()
    with pytest.raises(RemoteProtocolError) as info:
        pair.brain.receive(data, 0.0)
    assert info.value.code in (CloseCode.BAD_FRAME, CloseCode.UNEXPECTED_FRAME)
    assert pair.brain.state is State.CLOSED


def test_brain_refusal_reaches_the_agent() -> None:
    pair = SessionPair()
    pair.brain.receive(pair.agent.start(0.0), 0.0)
    data = pair.brain.refuse(CloseCode.POLICY, "this token may not serve app 'billing'")
    assert pair.brain.state is State.CLOSED
    (error,) = pair.agent.receive(data, 0.0)
    assert isinstance(error, Error) and error.fatal and error.code == CloseCode.POLICY
    assert pair.agent.state is State.CLOSED


def test_unsigned_non_fatal_frame_before_open_is_refused() -> None:
    pair = SessionPair()
    pair.agent.start(0.0)
    data = b"U" + encode_frame(Error(code=4400, message="x", fatal=False))
    reject(pair.agent, data, CloseCode.UNEXPECTED_FRAME)


def test_welcome_must_come_first() -> None:
    pair = SessionPair()
    pair.brain.receive(pair.agent.start(0.0), 0.0)
    pair.brain.accept(0.0)
    reject(pair.agent, pair.brain.send(FIRE, 0.0), CloseCode.UNEXPECTED_FRAME)


# -- tampered, replayed, reordered, truncated, oversized, cross-session ----------------------------


@pytest.mark.parametrize("where", [0, 1, 8, 9, 40, SIGNED_HEADER_BYTES, -1])
def test_tampered_frame(where: int) -> None:
    pair = opened()
    data = bytearray(pair.agent.send(batch(0, 3), 0.0))
    data[where] ^= 0x01
    code = CloseCode.BAD_FRAME if where == 0 else CloseCode.BAD_SIGNATURE
    reject(pair.brain, bytes(data), code)


def test_replayed_frame() -> None:
    pair = opened()
    data = pair.agent.send(batch(0), 0.0)
    pair.brain.receive(data, 0.0)
    reject(pair.brain, data, CloseCode.SEQUENCE)


def test_replayed_welcome_after_open() -> None:
    pair = SessionPair()
    pair.brain.receive(pair.agent.start(0.0), 0.0)
    welcome = pair.brain.accept(0.0)
    pair.agent.receive(welcome, 0.0)
    reject(pair.agent, welcome, CloseCode.SEQUENCE)


def test_reordered_frames() -> None:
    pair = opened()
    first = pair.brain.send(FIRE, 0.0)
    second = pair.brain.send(FIRE, 0.0)
    assert first != second
    reject(pair.agent, second, CloseCode.SEQUENCE)


def test_dropped_frame_is_detected() -> None:
    pair = opened()
    pair.agent.send(batch(0), 0.0)
    reject(pair.brain, pair.agent.send(batch(1), 0.0), CloseCode.SEQUENCE)


@pytest.mark.parametrize("keep", [0, 1, 9, SIGNED_HEADER_BYTES - 1, SIGNED_HEADER_BYTES, -1])
def test_truncated_frame(keep: int) -> None:
    pair = opened()
    data = pair.agent.send(batch(0, 3), 0.0)
    truncated = data[:keep]
    code = CloseCode.BAD_FRAME if len(truncated) < SIGNED_HEADER_BYTES else CloseCode.BAD_SIGNATURE
    reject(pair.brain, truncated, code)


def test_oversized_frame_is_refused_before_decoding() -> None:
    pair = opened(Limits(max_frame_bytes=2048))
    reject(pair.brain, b"S" + b"\xff" * 4096, CloseCode.OVERSIZED)


def test_oversized_hello_is_refused() -> None:
    pair = SessionPair(Limits(max_frame_bytes=1024))
    reject(pair.brain, pair.agent.start(0.0)[:1] + b"\x00" * 2000, CloseCode.OVERSIZED)


def test_agent_refuses_to_send_oversized_frames() -> None:
    pair = opened(Limits(max_frame_bytes=2048, max_batch_events=10))
    with pytest.raises(LocalProtocolError) as info:
        pair.agent.send(batch(0, 11), 0.0)
    assert info.value.code is CloseCode.OVERSIZED
    huge = Inventory(engine="rq", app="a", queues=[f"queue-{i}" for i in range(500)])
    with pytest.raises(LocalProtocolError) as info:
        pair.agent.send(huge, 0.0)
    assert info.value.code is CloseCode.OVERSIZED
    assert pair.agent.state is State.OPEN
    assert pair.agent_to_brain(batch(0, 10))  # nothing was consumed by the refusals


def test_brain_refuses_an_oversized_batch() -> None:
    pair = opened(Limits(max_batch_events=10))
    reject(pair.brain, forge(pair.agent, batch(0, 11)), CloseCode.OVERSIZED)


def test_cross_session_frame() -> None:
    one, two = opened(), opened()
    # Same token, same sequence number, same frame: only the session differs.
    reject(two.brain, one.agent.send(batch(0), 0.0), CloseCode.BAD_SIGNATURE)


def test_reflected_frame() -> None:
    pair = opened()
    # A frame the brain sent, bounced back to it: the direction is part of the MAC.
    reject(pair.brain, pair.brain.send(FIRE, 0.0), CloseCode.BAD_SIGNATURE)


# -- frames that are valid but not allowed ---------------------------------------------------------


def test_agent_may_not_send_commands() -> None:
    pair = opened()
    reject(pair.brain, forge(pair.agent, FIRE), CloseCode.UNEXPECTED_FRAME)


def test_second_hello_is_refused() -> None:
    pair = opened()
    reject(pair.brain, forge(pair.agent, make_hello()), CloseCode.UNEXPECTED_FRAME)


def test_brain_window_is_enforced() -> None:
    pair = opened(Limits(window=1))
    pair.agent_to_brain(batch(0))
    reject(pair.brain, forge(pair.agent, batch(1)), CloseCode.UNEXPECTED_FRAME)


def test_batches_must_move_forward() -> None:
    pair = opened()
    pair.agent_to_brain(batch(5, 5))
    with pytest.raises(LocalProtocolError):
        pair.agent.send(batch(9), 0.0)
    reject(pair.brain, forge(pair.agent, batch(9)), CloseCode.UNEXPECTED_FRAME)


@pytest.mark.parametrize("up_to", [3, 10])
def test_ack_beyond_what_was_sent_or_already_acked(up_to: int) -> None:
    pair = opened()
    pair.agent_to_brain(batch(0, 4))
    pair.brain_to_agent(Ack(up_to_seq=3))
    pair.agent_to_brain(batch(4, 2))
    with pytest.raises(LocalProtocolError):
        pair.brain.send(Ack(up_to_seq=up_to), 0.0)
    reject(pair.agent, forge(pair.brain, Ack(up_to_seq=up_to)), CloseCode.UNEXPECTED_FRAME)


# -- misuse ----------------------------------------------------------------------------------------


def test_misuse_raises_local_errors_and_changes_nothing() -> None:
    pair = SessionPair()
    with pytest.raises(LocalProtocolError):
        pair.agent.send(batch(0), 0.0)
    with pytest.raises(LocalProtocolError):
        pair.agent.receive(b"S" + b"\x00" * 60, 0.0)
    with pytest.raises(LocalProtocolError):
        pair.brain.accept(0.0)
    with pytest.raises(LocalProtocolError):
        pair.brain.send(FIRE, 0.0)
    assert pair.agent.state is State.IDLE and pair.brain.state is State.AWAITING_HELLO
    hello = pair.agent.start(0.0)
    with pytest.raises(LocalProtocolError):
        pair.agent.start(0.0)
    pair.brain.receive(hello, 0.0)
    with pytest.raises(LocalProtocolError):
        pair.brain.receive(hello, 0.0)  # accept or refuse first
    pair.agent.receive(pair.brain.accept(0.0), 0.0)
    with pytest.raises(LocalProtocolError):
        pair.agent.send(Ack(up_to_seq=0), 0.0)
    with pytest.raises(LocalProtocolError):
        pair.brain.send(batch(0), 0.0)
    with pytest.raises(LocalProtocolError):
        pair.brain.send(Ack(up_to_seq=0), 0.0)  # nothing received yet
    assert pair.agent.state is pair.brain.state is State.OPEN
    with pytest.raises(LocalProtocolError):
        AgentSession(TOKEN, make_hello(), nonce=b"short")
    with pytest.raises(LocalProtocolError):
        AgentSession(TOKEN, make_hello(protocol_version=99))
    with pytest.raises(LocalProtocolError):
        BrainSession(token_hash(TOKEN), session_id="not-hex")


# -- heartbeats and timeouts -----------------------------------------------------------------------


def test_heartbeat_ping_pong_and_rtt() -> None:
    pair = opened(Limits(heartbeat_seconds=10.0))
    assert pair.agent.tick(5.0) == []
    (ping,) = pair.agent.tick(10.0)
    assert pair.brain.receive(ping, 10.2) == []  # heartbeats never reach the caller
    (pong,) = pair.brain.tick(10.2)  # the pong owed; it counts as traffic, so no ping yet
    assert pair.agent.receive(pong, 10.5) == []
    assert pair.agent.last_rtt == pytest.approx(0.5)
    (brain_ping,) = pair.brain.tick(20.2)
    assert pair.agent.receive(brain_ping, 20.3) == []
    (agent_pong,) = pair.agent.tick(20.3)
    pair.brain.receive(agent_pong, 20.6)
    assert pair.brain.last_rtt == pytest.approx(0.4)


def test_traffic_postpones_pings() -> None:
    pair = opened(Limits(heartbeat_seconds=10.0))
    pair.now = 9.0
    pair.agent_to_brain(batch(0))
    assert pair.agent.tick(12.0) == []
    assert len(pair.agent.tick(19.0)) == 1


def test_silent_peer_times_out() -> None:
    pair = opened(Limits(heartbeat_seconds=10.0))
    limit = 10.0 * HEARTBEAT_TIMEOUT_FACTOR
    pair.agent.tick(limit)  # a ping, but the brain never answers
    with pytest.raises(RemoteProtocolError) as info:
        pair.agent.tick(limit + 0.1)
    assert info.value.code is CloseCode.HEARTBEAT_TIMEOUT
    assert pair.agent.state is State.CLOSED
    assert pair.agent.tick(limit + 1) == []


def test_by_default_a_half_open_link_is_noticed_within_15_s_with_one_frame_per_5_s() -> None:
    """The defaults: an idle link carries at most one frame per 5 s each way, and a peer that
    went silent (packets dropped, no close) is given up within 15 s."""
    pair = opened(Limits())
    sent = {"agent": 0, "brain": 0}
    for tenth in range(1, 601):  # a minute, both sides ticking ten times a second
        now = tenth / 10
        for name, this, other in (("agent", pair.agent, pair.brain),
                                  ("brain", pair.brain, pair.agent)):  # fmt: skip
            for frame in this.tick(now):
                sent[name] += 1
                other.receive(frame, now)
    assert sent["agent"] <= 60 / 5 and sent["brain"] <= 60 / 5, sent
    silent_from = 60.0  # from now on the brain's frames are dropped on the way
    with pytest.raises(RemoteProtocolError) as info:
        for tenth in range(1, 200):
            pair.agent.tick(silent_from + tenth / 10)
    assert info.value.code is CloseCode.HEARTBEAT_TIMEOUT
    noticed = silent_from + tenth / 10
    assert noticed - silent_from <= 15.0 + 0.1, noticed


def test_handshake_timeout_on_both_sides() -> None:
    pair = SessionPair()
    pair.agent.start(100.0)
    assert pair.brain.tick(100.0) == []
    assert pair.agent.tick(100.0 + HANDSHAKE_TIMEOUT_SECONDS) == []
    for session in (pair.agent, pair.brain):
        with pytest.raises(RemoteProtocolError) as info:
            session.tick(100.1 + HANDSHAKE_TIMEOUT_SECONDS)
        assert info.value.code is CloseCode.HEARTBEAT_TIMEOUT


# -- the state table and the error contract --------------------------------------------------------


def test_transition_table() -> None:
    for table in TRANSITIONS.values():
        for state in State:
            assert table[(state, Trigger.FAULT)] is State.CLOSED
            assert table[(state, Trigger.CONNECTION_LOST)] is State.CLOSED
        assert all(target in State for target in table.values())


def test_errors_leak_no_secret() -> None:
    pair = opened()
    data = bytearray(pair.agent.send(batch(0), 0.0))
    data[-1] ^= 1
    with pytest.raises(RemoteProtocolError) as info:
        pair.brain.receive(bytes(data), 0.0)
    text = f"{info.value} {info.value.reason!r}"
    for secret in (pair.brain._key, token_hash(TOKEN), bytes(data[9:41])):
        assert secret.hex() not in text and repr(secret) not in text
    assert TOKEN not in text
    assert len(info.value.reason) <= 120


def test_terminal_codes() -> None:
    assert is_terminal(CloseCode.AUTH_REFUSED)
    assert is_terminal(CloseCode.UNSUPPORTED_VERSION)
    assert not is_terminal(CloseCode.HEARTBEAT_TIMEOUT)
    assert not is_terminal(CloseCode.GOING_AWAY)
    assert all(4000 <= code <= 4999 for code in CloseCode if code >= 4000)


# -- a long random conversation --------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.sampled_from(["batch", "ack", "command", "result", "tick"]), max_size=60))
def test_random_conversation_delivers_every_event_once(steps: list[str]) -> None:
    pair = opened(Limits(window=3, max_batch_events=5, heartbeat_seconds=1.0))
    sent: list[int] = []
    received: list[int] = []
    next_seq = 0
    for step in steps:
        pair.now += 0.4
        if step == "batch" and pair.agent.can_send_batch:
            frames = pair.agent_to_brain(batch(next_seq, 1 + next_seq % 5))
            assert isinstance(frames[0], EventBatch)
            sent.extend(range(next_seq, frames[0].last_seq + 1))
            received.extend(e.seq for e in frames[0].events)
            next_seq = frames[0].last_seq + 1
        elif step == "ack" and pair.brain.unacked_batches:
            pair.brain_to_agent(Ack(up_to_seq=pair.brain.last_event_seq))
            assert pair.agent.unacked_batches == 0
        elif step == "command":
            assert pair.brain_to_agent(FIRE) == [FIRE]
        elif step == "result":
            result = CommandResult(command_id="c", status=CommandStatus.DUPLICATE)
            assert pair.agent_to_brain(result) == [result]
        for data in pair.agent.tick(pair.now):
            pair.brain.receive(data, pair.now)
        for data in pair.brain.tick(pair.now):
            pair.agent.receive(data, pair.now)
        assert pair.agent.unacked_batches == pair.brain.unacked_batches
    assert sent == received
    assert pair.agent.state is pair.brain.state is State.OPEN
