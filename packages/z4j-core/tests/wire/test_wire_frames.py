"""Frame table, closed sets, round trips (hypothesis) and frame-level validation."""

from __future__ import annotations

import typing

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_helpers import FRAME_STRATEGIES, SessionPair, any_frame, batch, make_events, make_hello

from z4j_core.wire import (
    FEATURE_QUEUE_REPORTS,
    FEATURE_UNKNOWN_ANSWERS,
    FRAME_TYPES,
    Ack,
    Action,
    AnyFrame,
    Capability,
    Command,
    CommandKind,
    EngineInfo,
    EventBatch,
    Frame,
    LifecycleKind,
    LocalProtocolError,
    RemoteProtocolError,
    Side,
    decode_frame,
    encode_frame,
    is_control,
)
from z4j_core.wire.errors import CloseCode
from z4j_core.wire.session import RECEIVABLE, SENDABLE, State

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_frame_table_pins_the_union() -> None:
    members = set(typing.get_args(AnyFrame))
    assert set(FRAME_TYPES) == members
    tags = [spec.tag for spec in FRAME_TYPES.values()]
    assert len(tags) == len(set(tags))
    for cls, spec in FRAME_TYPES.items():
        assert spec.cls is cls
        assert cls.__struct_config__.tag == spec.tag
        assert cls.__struct_config__.tag_field == "type"
        assert spec.senders
    assert set(FRAME_STRATEGIES) == members


def test_session_tables_agree_with_the_frame_table() -> None:
    for side, by_state in SENDABLE.items():
        for frames in by_state.values():
            for cls in frames:
                assert side in FRAME_TYPES[cls].senders, (side, cls)
    for side, frames in RECEIVABLE.items():
        peer = Side.BRAIN if side is Side.AGENT else Side.AGENT
        for cls in frames:
            assert peer in FRAME_TYPES[cls].senders, (side, cls)


def test_control_frames() -> None:
    assert not is_control(batch(0))
    assert is_control(
        Command(
            command_id="c",
            kind=CommandKind.ENQUEUE,
            deadline_seconds=1,
            engine="rq",
            app="a",
            task="t",
        )
    )


def test_closed_sets_are_string_enums_with_stable_values() -> None:
    assert LifecycleKind("dead_lettered") is LifecycleKind.DEAD_LETTERED
    assert {k.value for k in LifecycleKind} >= {
        "enqueued",
        "received",
        "started",
        "succeeded",
        "failed",
        "retried",
        "revoked",
        "expired",
        "rejected",
        "skipped",
        "dead_lettered",
    }
    assert {c.value for c in Capability} >= {
        "enqueue",
        "fire",
        "trigger_now",
        "observe_schedules",
        "list_tasks",
        "native_dedup",
    }
    assert msgspec.msgpack.encode(LifecycleKind.STARTED) == msgspec.msgpack.encode("started")


@pytest.mark.parametrize("cls", list(FRAME_STRATEGIES), ids=lambda c: c.__name__)
@PROPERTY
@given(data=st.data())
def test_round_trip_each_frame_type(cls: type[Frame], data: st.DataObject) -> None:
    frame = data.draw(FRAME_STRATEGIES[cls])
    decoded = decode_frame(encode_frame(frame))
    assert type(decoded) is cls
    assert decoded == frame


@PROPERTY
@given(frame=any_frame)
def test_encoding_is_deterministic(frame: Frame) -> None:
    assert encode_frame(frame) == encode_frame(decode_frame(encode_frame(frame)))


@PROPERTY
@given(frame=any_frame)
def test_signed_round_trip_through_sessions(frame: Frame) -> None:
    # A peer that can take every optional frame: an agent advertising every action for the
    # action's engine, a brain accepting queue reports and `unknown` answers (their refusals
    # and downgrades have their own tests).
    engine = frame.engine if isinstance(frame, Action) else "rq"
    everything = EngineInfo.of(engine, "1", [c.value for c in Capability])
    features = (FEATURE_QUEUE_REPORTS, FEATURE_UNKNOWN_ANSWERS)
    pair = SessionPair(hello=make_hello(engines=[everything]), features=features)
    pair.handshake()
    if type(frame) in SENDABLE[Side.AGENT][State.OPEN]:
        assert pair.agent_to_brain(frame) == [frame]
    elif type(frame) in SENDABLE[Side.BRAIN][State.OPEN] and not isinstance(frame, Ack):
        assert pair.brain_to_agent(frame) == [frame]
    else:
        # Handshake, heartbeat and ack frames have their own tests; none may be sent here.
        with pytest.raises(LocalProtocolError):
            pair.agent.send(frame, 0.0)


def test_batch_sequence_numbers_must_be_contiguous() -> None:
    events = make_events(5, 3)
    with pytest.raises(ValueError, match="contiguous"):
        EventBatch(first_seq=4, events=events)
    payload = msgspec.msgpack.encode(
        {"type": "events", "first_seq": 6, "events": [msgspec.to_builtins(e) for e in events]}
    )
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(payload)
    assert info.value.code is CloseCode.BAD_FRAME


def test_empty_batch_is_invalid() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(msgspec.msgpack.encode({"type": "events", "first_seq": 0, "events": []}))
    assert info.value.code is CloseCode.BAD_FRAME


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "fire", "schedule_id": "s", "slot": "2026-01-01T00:00:00+00:00"}, "fire_id"),
        ({"kind": "fire", "fire_id": "f", "schedule_id": "s"}, "slot"),
        ({"kind": "trigger_now", "fire_id": "f"}, "schedule_id"),
        ({"kind": "enqueue", "deadline_seconds": 0}, "deadline_seconds"),
        ({"kind": "enqueue", "deadline_seconds": -1.0}, "deadline_seconds"),
        ({"kind": "launch"}, "kind"),
    ],
)
def test_invalid_commands_are_refused(fields: dict[str, typing.Any], message: str) -> None:
    command = {
        "type": "command",
        "command_id": "c",
        "kind": "enqueue",
        "deadline_seconds": 5.0,
        "engine": "rq",
        "app": "a",
        "task": "t",
    }
    command.update(fields)
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(msgspec.msgpack.encode(command))
    assert info.value.code is CloseCode.BAD_FRAME
    assert message in info.value.reason


def test_unknown_lifecycle_kind_is_refused() -> None:
    event = msgspec.to_builtins(make_events(0, 1)[0])
    event["kind"] = "teleported"
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(msgspec.msgpack.encode({"type": "events", "first_seq": 0, "events": [event]}))
    assert info.value.code is CloseCode.BAD_FRAME


def test_unknown_frame_type_is_refused() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(msgspec.msgpack.encode({"type": "teleport", "to": "mars"}))
    assert info.value.code is CloseCode.BAD_FRAME


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    payload = msgspec.msgpack.encode({"type": "ack", "up_to_seq": 7, "added_later": [1, 2]})
    assert decode_frame(payload) == Ack(up_to_seq=7)
