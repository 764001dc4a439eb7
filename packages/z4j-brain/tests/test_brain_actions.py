"""The brain's rules for actions (docs/actions.md) as pure functions: which task states each
action acts on, and which agent is preferred. The actions themselves are proved end to end on
real workers by the conformance suite and packages/z4j-rq/tests/test_rq_actions.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from z4j_brain.actions import FINISHED, Target, describe, precondition, rank
from z4j_core.wire.frames import ActionKind, Capability

RETRY, CANCEL = ActionKind.RETRY, ActionKind.CANCEL


def target(state: str | None) -> Target:
    return Target(engine="rq", app="a", task_id="t1", state=state)


@pytest.mark.parametrize(
    ("kind", "state", "force", "terminate", "refusal"),
    [
        (RETRY, "failed", False, False, ""),
        (RETRY, "dead_lettered", False, False, ""),
        (RETRY, None, False, False, ""),  # never seen: the engine's record decides
        (RETRY, "succeeded", False, False, "not failed: pass force"),
        (RETRY, "succeeded", True, False, ""),
        (RETRY, "started", True, False, "still started"),
        (RETRY, "enqueued", True, False, "still enqueued"),
        (CANCEL, "enqueued", False, False, ""),
        (CANCEL, "scheduled", False, False, ""),
        (CANCEL, "started", False, False, "running: pass terminate"),
        (CANCEL, "started", False, True, ""),
        (CANCEL, "succeeded", False, True, "already finished (succeeded)"),
        (CANCEL, "failed", False, False, "already finished (failed)"),
    ],
)
def test_which_states_each_action_acts_on(
    kind: ActionKind, state: str | None, force: bool, terminate: bool, refusal: str
) -> None:
    why = precondition(kind, target(state), force=force, terminate=terminate)
    assert (refusal in why) if refusal else why == "", why


def test_every_finished_state_is_a_lifecycle_kind() -> None:
    from z4j_core.wire.frames import LifecycleKind

    assert {k.value for k in LifecycleKind} >= FINISHED


def test_terminate_needs_its_own_capability() -> None:
    assert describe(CANCEL) == [Capability.CANCEL]
    assert describe(CANCEL, terminate=True) == [Capability.CANCEL, Capability.TERMINATE]
    assert describe(RETRY, terminate=True) == [Capability.RETRY]


def _connection(instance: str, host: str, in_flight: int = 0) -> Any:
    return SimpleNamespace(
        agent_instance=instance, hello=SimpleNamespace(host=host), in_flight_commands=in_flight
    )


def test_a_retry_goes_first_to_the_agent_that_saw_the_failure_then_to_its_host() -> None:
    where = Target(engine="huey", app="a", task_id="t", reported_by="b", reported_host="h1")
    agents = [
        _connection("a", "h2"),
        _connection("c", "h1", in_flight=3),
        _connection("b", "h1", in_flight=9),
        _connection("d", "h1"),
    ]
    ordered = sorted(agents, key=lambda c: rank(c, where))
    assert [c.agent_instance for c in ordered] == ["b", "d", "c", "a"]
