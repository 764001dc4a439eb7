"""Actions on the wire (retry, cancel, purge, queue reports), and their compatibility rules.

An action goes only to an engine whose hello advertises it; a queue report only to a brain whose
welcome names the feature; the hello of this release still decodes with the first release's
shapes (the action capabilities travel in a field that release ignores).
"""

from __future__ import annotations

import enum

import msgspec
import pytest
from wire_helpers import SessionPair, make_hello

from z4j_core.wire import (
    ACTION_CAPABILITIES,
    FEATURE_QUEUE_REPORTS,
    FEATURE_UNKNOWN_ANSWERS,
    Action,
    ActionKind,
    Capability,
    CommandResult,
    CommandStatus,
    EngineInfo,
    LocalProtocolError,
    QueueDepth,
    QueueReport,
)
from z4j_core.wire.codec import encode_frame

# -- the first release's shapes, as its brain decodes a hello --------------------------------


class FirstReleaseCapability(str, enum.Enum):
    LIFECYCLE = "lifecycle"
    LIST_TASKS = "list_tasks"
    OBSERVE_SCHEDULES = "observe_schedules"
    ENQUEUE = "enqueue"
    FIRE = "fire"
    TRIGGER_NOW = "trigger_now"
    ETA = "eta"
    PRIORITY = "priority"
    EXPIRES = "expires"
    NATIVE_DEDUP = "native_dedup"
    CANCEL = "cancel"
    RETRY = "retry"


class FirstReleaseEngine(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str
    capabilities: list[FirstReleaseCapability] = []


class FirstReleaseHello(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="hello"):
    protocol_version: int
    agent_instance: str
    app: str
    host: str
    pid: int
    agent_version: str
    engines: list[FirstReleaseEngine] = []
    labels: dict[str, str] = {}
    nonce: bytes = b""


EVERYTHING = [c.value for c in Capability]


def test_engine_info_puts_action_capabilities_where_an_old_brain_ignores_them() -> None:
    info = EngineInfo.of("rq", "2.1.0", EVERYTHING)
    assert not set(info.capabilities) & ACTION_CAPABILITIES
    assert set(info.actions) == {c.value for c in ACTION_CAPABILITIES}
    assert info.advertised == frozenset(Capability)
    old = msgspec.msgpack.decode(encode_frame(make_hello(engines=[info])), type=FirstReleaseHello)
    assert {c.value for c in old.engines[0].capabilities} == set(EVERYTHING) - set(info.actions)


def test_an_action_capability_in_the_old_list_does_not_count() -> None:
    info = EngineInfo(name="rq", version="1", capabilities=[Capability.CANCEL, Capability.ENQUEUE])
    assert info.advertised == {Capability.ENQUEUE}


def test_unknown_action_names_are_ignored() -> None:
    info = EngineInfo(name="rq", version="1", actions=["retry", "teleport"])
    assert info.advertised == {Capability.RETRY}


def test_unknown_capability_name_is_refused_when_advertising() -> None:
    with pytest.raises(ValueError, match="teleport"):
        EngineInfo.of("rq", "1", ["teleport"])


def _pair(actions: list[str], features: tuple[str, ...] = ()) -> SessionPair:
    engine = EngineInfo(name="rq", version="2", capabilities=[Capability.ENQUEUE], actions=actions)
    pair = SessionPair(hello=make_hello(engines=[engine]), features=features)
    pair.handshake()
    return pair


def _retry(**extra: object) -> Action:
    fields: dict[str, object] = {
        "command_id": "a1",
        "action": ActionKind.RETRY,
        "deadline_seconds": 10,
        "engine": "rq",
        "app": "billing",
        "task_id": "job-1",
    }
    fields.update(extra)
    return Action(**fields)  # type: ignore[arg-type]


def test_an_advertised_action_goes_through_and_is_answered_done() -> None:
    pair = _pair(["retry"])
    (got,) = pair.brain_to_agent(_retry(new_task_id="job-2"))
    assert got == _retry(new_task_id="job-2")
    (answer,) = pair.agent_to_brain(
        CommandResult(command_id="a1", status=CommandStatus.DONE, native_id="job-2")
    )
    assert isinstance(answer, CommandResult) and answer.status is CommandStatus.DONE


def test_an_action_the_engine_does_not_advertise_is_refused_before_sending() -> None:
    pair = _pair(["retry"])
    cancel = _retry(action=ActionKind.CANCEL)
    with pytest.raises(LocalProtocolError, match="does not advertise cancel for 'rq'"):
        pair.brain.send(cancel, pair.now)
    with pytest.raises(LocalProtocolError, match="for 'celery'"):
        pair.brain.send(_retry(engine="celery"), pair.now)


def test_terminating_needs_the_terminate_capability_too() -> None:
    pair = _pair(["cancel"])
    pair.brain_to_agent(_retry(action=ActionKind.CANCEL))
    with pytest.raises(LocalProtocolError, match="terminate"):
        pair.brain.send(_retry(action=ActionKind.CANCEL, terminate=True), pair.now)
    _pair(["cancel", "terminate"]).brain_to_agent(_retry(action=ActionKind.CANCEL, terminate=True))


def test_an_agent_that_predates_actions_is_never_sent_one() -> None:
    pair = SessionPair()  # the first release's hello: no `actions` at all
    pair.handshake()
    with pytest.raises(LocalProtocolError):
        pair.brain.send(_retry(), pair.now)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"action": ActionKind.PURGE, "task_id": None}, "a purge action needs its queue"),
        ({"task_id": None}, "a retry action needs task_id"),
        ({"action": ActionKind.CANCEL, "task_id": ""}, "a cancel action needs task_id"),
    ],
)
def test_an_action_without_its_target_is_invalid(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _retry(**fields)


REPORT = QueueReport(
    engine="rq", app="billing", queues=[QueueDepth(name="default", ready=3, failed=1)]
)


def test_a_queue_report_goes_only_to_a_brain_that_accepts_it() -> None:
    old = _pair(["queue_depth"])
    with pytest.raises(LocalProtocolError, match="does not accept queue reports"):
        old.agent.send(REPORT, old.now)
    new = _pair(["queue_depth"], features=(FEATURE_QUEUE_REPORTS,))
    (got,) = new.agent_to_brain(REPORT)
    assert got == REPORT


def test_a_welcome_without_features_is_byte_identical_to_the_first_releases() -> None:
    pair = SessionPair()
    pair.brain.receive(pair.agent.start(0.0), 0.0)
    welcome = pair.brain.accept(0.0)
    assert b"features" not in welcome


def test_an_unknown_answer_reaches_an_older_brain_as_failed() -> None:
    unknown = CommandResult(command_id="c1", status=CommandStatus.UNKNOWN, reason="timeout")
    old = _pair([])
    (got,) = old.agent_to_brain(unknown)
    assert got == msgspec.structs.replace(unknown, status=CommandStatus.FAILED)
    new = _pair([], features=(FEATURE_UNKNOWN_ANSWERS,))
    (got,) = new.agent_to_brain(unknown)
    assert got == unknown
