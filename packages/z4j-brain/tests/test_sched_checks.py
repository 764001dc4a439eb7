"""Checks on create and edit against what agents reported, each schedule's health, and
observed native schedules listed once each (SQLite and Postgres, a real store; the agents'
reports are written as the gateway writes them)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from z4j_brain import schedule_health as health
from z4j_brain import schedules as sched
from z4j_brain.api_schedules import with_health
from z4j_brain.leader import CANCELLING, overlap_decision
from z4j_brain.observed import STALE_AFTER_SECONDS, observed_schedules
from z4j_brain.store import NewFire, Store
from z4j_core.wire.frames import (
    Capability,
    EngineInfo,
    Hello,
    Inventory,
    ObservedSchedule,
    TaskInfo,
)
from z4j_core.wire.limits import PROTOCOL_VERSION

NOW = 1_800_000_000.0
EVERY_HOUR = {"kind": "interval", "every": "1h"}


def _agent(store: Store, instance: str, *, app: str = "shop", engine: str = "huey",
           tasks: tuple[str, ...] = ("shop.tasks.ping", "shop.tasks.report"),
           native: tuple[ObservedSchedule, ...] = (), now: float = NOW,
           cancel: bool = False) -> None:  # fmt: skip
    hello = Hello(
        protocol_version=PROTOCOL_VERSION,
        agent_instance=instance,
        app=app,
        host="h",
        pid=1,
        agent_version="t",
        engines=[
            EngineInfo(
                name=engine,
                version="1",
                capabilities=[Capability.FIRE],
                actions=["cancel"] if cancel else [],
            )
        ],
    )
    inventory = Inventory(engine=engine, app=app, tasks=[TaskInfo(name=t) for t in tasks],
                          schedules=list(native))  # fmt: skip
    with store.transaction():
        store.agent_connected(hello, {}, "tok", f"session-{instance}", now)
        store.replace_inventory(instance, inventory, now)


def _create(store: Store, **fields: Any) -> Any:
    body = {"name": "ping", "task": "shop.tasks.ping", "engine": "huey", "app": "shop",
            "schedule": EVERY_HOUR, **fields}  # fmt: skip
    with store.transaction():
        return sched.create(store, body, actor="test", now=NOW)


def _refused(store: Store, **fields: Any) -> str:
    with pytest.raises(sched.ScheduleInputError) as refused:
        _create(store, **fields)
    return str(refused.value)


def test_unknown_engine_app_or_task_is_refused_with_a_suggestion(store: Store) -> None:
    assert "no agent of engine 'huey' has reported" in _refused(store)
    _agent(store, "a1")
    assert "unknown engine 'hueyy'; did you mean huey?" in _refused(store, engine="hueyy")
    assert "unknown app 'shpo' for huey; did you mean shop?" in _refused(store, app="shpo")
    message = _refused(store, task="shop.tasks.pingg")
    assert message.startswith(
        "unknown task 'shop.tasks.pingg' for huey/shop; did you mean shop.tasks.ping?"
    ), message
    assert "--force" in message
    far = _refused(store, task="billing.charge")
    assert "not among the 2 tasks its agents reported" in far, far
    row = _create(store)
    assert row.task == "shop.tasks.ping"


def test_force_keeps_it_and_its_health_says_why_it_may_not_run(store: Store) -> None:
    _agent(store, "a1")
    row = _create(store, task="shop.tasks.pingg", force=True)
    [item] = with_health(store, [row])
    assert item["health"]["problems"] == [
        "unknown task 'shop.tasks.pingg' for huey/shop; did you mean shop.tasks.ping?"
    ]
    assert "did you mean shop.tasks.ping?" in item["health"]["note"]
    # An edit of its timing is not refused (the target did not change); a new task is checked.
    with store.transaction():
        sched.edit(store, "ping", {"description": "x"}, actor="t", now=NOW)
    with store.transaction(), pytest.raises(sched.ScheduleInputError, match="did you mean"):
        sched.edit(store, "ping", {"task": "shop.tasks.reportt"}, actor="t", now=NOW)
    with store.transaction():
        _, after = sched.edit(store, "ping", {"task": "shop.tasks.report"}, actor="t", now=NOW)
    assert with_health(store, [after])[0]["health"]["problems"] == []


def test_cancel_previous_needs_an_agent_that_can_cancel(store: Store) -> None:
    _agent(store, "a1")  # huey/shop, advertising no cancel
    refused = _refused(store, overlap="cancel-previous")
    assert "needs an agent of huey/shop that can cancel" in refused, refused
    assert "--force" in refused
    row = _create(store, overlap="skip", pause_after_failures=3, result_log="failures")
    assert (row.overlap, row.pause_after_failures, row.result_log) == ("skip", 3, "failures")
    with store.transaction(), pytest.raises(sched.ScheduleInputError, match="can cancel"):
        sched.edit(store, "ping", {"overlap": "cancel-previous"}, actor="t", now=NOW)
    with store.transaction():
        _, forced = sched.edit(store, "ping", {"overlap": "cancel-previous", "force": True},
                               actor="t", now=NOW)  # fmt: skip
    assert forced.overlap == "cancel-previous"
    _agent(store, "a2", cancel=True)
    row = _create(store, name="other", overlap="cancel-previous")
    assert row.overlap == "cancel-previous"


def _fire(store: Store, row: Any, slot: float, state: str, task_state: str | None) -> None:
    fid = f"{row.schedule_id}_{int(slot)}"
    with store.transaction():
        store.insert_fires(row, [NewFire(fid, row.schedule_id, "scheduled", slot, slot,
                                         slot + 60)], slot)  # fmt: skip
        store.conn.execute("UPDATE fires SET state = ?, reason = ? WHERE fire_id = ?",
                           (state, f"reason {state}", fid))  # fmt: skip
        if task_state is not None:
            store.conn.execute(
                "INSERT INTO tasks (engine, task_id, name, state, state_rank, state_agent, "
                "state_seq, app, fire_id, updated_at, exception) "
                "VALUES ('huey', ?, 't', ?, 50, 'a', 1, 'shop', ?, ?, ?)",
                (fid, task_state, fid, slot, "ValueError: boom" if task_state == "failed"
                 else None),
            )  # fmt: skip


def _health(store: Store, row: Any) -> dict[str, Any]:
    fresh = store.schedule(row.schedule_id)
    assert fresh is not None
    result: dict[str, Any] = with_health(store, [fresh])[0]["health"]
    return result


def test_health_states(store: Store) -> None:
    _agent(store, "a1")
    row = _create(store)
    assert _health(store, row)["state"] == "active"
    assert _health(store, row)["next_fire"] is not None
    _fire(store, row, NOW + 3600, "enqueued", "succeeded")
    _fire(store, row, NOW + 7200, "enqueued", "failed")
    _fire(store, row, NOW + 10800, "enqueued", "failed")
    _fire(store, row, NOW + 14400, "pending", None)  # no outcome yet: stepped over
    found = _health(store, row)
    assert found["state"] == "failing" and found["consecutive_failures"] == 2, found
    assert found["last_fire"]["slot"] == NOW + 14400
    _fire(store, row, NOW + 18000, "missed", None)
    assert _health(store, row)["state"] == "missing"
    with store.transaction():  # the agent goes away: nobody can take its fires
        store.agent_disconnected("a1", "session-a1", NOW)
    gone = _health(store, row)
    assert gone["state"] == "no agent" and "no connected agent" in gone["note"]
    with store.transaction():
        sched.set_enabled(store, "ping", False, "maintenance", actor="t", now=NOW)
    paused = _health(store, row)
    assert (paused["state"], paused["note"], paused["next_fire"]) == (
        "paused", "maintenance", None)  # fmt: skip
    version = sched.get(store, "ping").version
    with store.transaction():
        store.mark_broken(row.schedule_id, version, "bad", NOW)
    assert _health(store, row)["state"] == "broken"


def test_pause_note_names_the_failures(store: Store) -> None:
    _agent(store, "a1")
    row = _create(store, pause_after_failures=2)
    _fire(store, row, NOW + 3600, "enqueued", "failed")
    _fire(store, row, NOW + 7200, "enqueued", "failed")
    failures = health.consecutive_failures(store.fire_history(row.schedule_id))
    note = health.pause_note(failures)
    assert note.startswith("paused after 2 consecutive failures: fire "), note
    assert f"{row.schedule_id}_{int(NOW + 7200)}" in note and "ValueError: boom" in note


def test_observed_schedules_are_listed_once_each_with_their_agents(store: Store) -> None:
    native = ObservedSchedule(source="rq_cron", name="nightly", task="shop.tasks.report",
                              kind="cron", expression="0 3 * * *")  # fmt: skip
    _agent(store, "worker", engine="rq", native=(native,))
    _agent(store, "cron", engine="rq", native=(native,), now=NOW + 5)
    listed = observed_schedules(store.inventory(), store.agents(), NOW + 10)
    assert len(listed) == 1, listed
    [item] = listed
    assert {a["agent_instance"] for a in item["agents"]} == {"worker", "cron"}
    assert not item["stale"]
    with store.transaction():
        store.agent_disconnected("worker", "session-worker", NOW + 20)
        store.agent_disconnected("cron", "session-cron", NOW + 30)
    later = NOW + 30 + STALE_AFTER_SECONDS + 1
    [stale] = observed_schedules(store.inventory(), store.agents(), later)
    assert stale["stale"] and stale["last_reported_at"] == NOW + 30
    assert [a["reported_at"] for a in stale["agents"]] == [NOW + 30, NOW + 20]
    [fresh] = observed_schedules(store.inventory(), store.agents(), NOW + 60)
    assert not fresh["stale"]


def test_result_log_policy_is_applied_by_retention(store: Store) -> None:
    _agent(store, "a1")
    rows = {
        policy: _create(store, name=f"log-{policy}", result_log=policy)
        for policy in ("all", "failures", "none")
    }
    for row in rows.values():
        _fire(store, row, NOW + 3600, "enqueued", "succeeded")
        _fire(store, row, NOW + 7200, "enqueued", "failed")
        _fire(store, row, NOW + 10800, "enqueued", "started")  # still running: kept
    with store.transaction():
        dropped = store.purge_by_result_log()
    assert dropped == 3  # failures: the success; none: the success and the failure

    def kept(policy: str) -> set[str]:
        ids = {f["fire_id"] for f in store.fire_history(rows[policy].schedule_id)}
        found = store.conn.execute("SELECT fire_id FROM tasks").fetchall()
        return {str(r[0]) for r in found} & ids

    assert len(kept("all")) == 3 and len(kept("failures")) == 2 and len(kept("none")) == 1
    # History still shows every fire's state and its task's outcome.
    for row in rows.values():
        outcomes = [f["task_state"] for f in store.fire_history(row.schedule_id)]
        assert outcomes == ["started", "failed", "succeeded"], (row.result_log, outcomes)
    with store.transaction():
        assert store.purge_by_result_log() == 0


def test_cancel_previous_decides_to_cancel_the_newest_open_task(store: Store) -> None:
    _agent(store, "a1", cancel=True)
    row = _create(store, overlap="cancel-previous")
    _fire(store, row, NOW + 3600, "enqueued", "started")
    _fire(store, row, NOW + 7200, "enqueued", "received")
    slot = NOW + 10800
    new = NewFire(f"{row.schedule_id}_{int(slot)}", row.schedule_id, "scheduled", slot, slot,
                  slot + 60)  # fmt: skip
    with store.transaction():
        decided = overlap_decision(store, row, new)
    assert decided.state == "pending"  # fired anyway
    queued = f"{row.schedule_id}_{int(NOW + 7200)}"
    assert decided.decision.startswith(f"{CANCELLING}{queued} (fire {queued}, "), decided
    assert decided.decision.endswith(", received)"), decided
    with store.transaction():
        store.insert_fires(row, [decided], slot)
        assert [f["fire_id"] for f in store.decided_fires("cancel-previous", CANCELLING, 0)] == [
            new.fire_id
        ]  # fmt: skip
        assert store.set_decision(new.fire_id, decided.decision, "cancel-previous: done")
        assert not store.set_decision(new.fire_id, decided.decision, "again")  # once only
        assert store.decided_fires("cancel-previous", CANCELLING, 0) == []
    # A previous fire not delivered yet has no task to cancel: the slot fires and says so.
    _fire(store, row, NOW + 14000, "pending", None)
    later = replace(new, fire_id=f"{row.schedule_id}_{int(NOW + 14400)}", slot=NOW + 14400)
    with store.transaction():
        undelivered = overlap_decision(store, row, later)
    assert undelivered.state == "pending"
    assert "has no task to cancel yet; fired anyway" in undelivered.decision, undelivered


def test_overlap_still_fires_once_retention_dropped_the_previous_task(store: Store) -> None:
    """Retention drops a finished task: its fire keeps the outcome, so a `skip` schedule's next
    slot fires. A fire whose task was never heard of stops holding the schedule back a day
    after its slot."""
    _agent(store, "a1")
    row = _create(store, overlap="skip")
    _fire(store, row, NOW + 3600, "enqueued", "succeeded")
    with store.transaction():
        store.purge(NOW + 3600 + 1)  # the task was last updated at its slot
        assert store.conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 0
    slot = NOW + 7200
    new = NewFire(f"{row.schedule_id}_{int(slot)}", row.schedule_id, "scheduled", slot, slot,
                  slot + 60)  # fmt: skip
    with store.transaction():
        assert overlap_decision(store, row, new).state == "pending"
        assert [f["task_state"] for f in store.fire_history(row.schedule_id)] == ["succeeded"]
    # Enqueued, and nothing ever heard of its task: it holds the next slot back for a day.
    _fire(store, row, NOW + 10800, "enqueued", None)
    soon = replace(new, fire_id=f"{row.schedule_id}_{int(NOW + 14400)}", slot=NOW + 14400)
    much_later = replace(new, fire_id=f"{row.schedule_id}_{int(NOW + 200000)}", slot=NOW + 200000)
    with store.transaction():
        assert overlap_decision(store, row, soon).state == "skipped"
        assert overlap_decision(store, row, much_later).state == "pending"


def test_retention_reaches_commands_settled_fires_and_agents_long_gone(store: Store) -> None:
    _agent(store, "gone")
    _agent(store, "live")
    row = _create(store)
    day = 86400.0
    _fire(store, row, NOW, "enqueued", None)  # settled, old
    _fire(store, row, NOW + 3600, "pending", None)  # open, old: kept whatever its age
    _fire(store, row, NOW + 10 * day, "enqueued", None)  # settled, recent
    with store.transaction():
        for n, at in enumerate((NOW, NOW + 10 * day)):
            store.insert_command(command_id=f"c{n}", agent_instance="live", kind="fire",
                                 engine="huey", app="shop", task="t", payload={}, fire_id=None,
                                 created_at=at, deadline_at=at + 30)  # fmt: skip
        store.agent_dropped("gone", 7, "spool full", NOW)
        store.agent_dropped("live", 5, "spool full", NOW)
        store.agent_disconnected("gone", "session-gone", NOW + day)
    assert store.dropped_events_total() == 12
    with store.transaction():
        assert store.purge_commands(NOW + 5 * day, limit=10) == 1
        assert store.purge_fires(NOW + 5 * day, limit=10) == 1
        # Connected agents stay whatever their age; a disconnected one goes once not seen
        # since the cutoff, with its inventory, and its dropped events stay counted.
        assert store.forget_agents(NOW + 5 * day) == 1
    assert store.command("c0") is None and store.command("c1") is not None
    kept = sorted((f["slot"], f["state"]) for f in store.fire_history(row.schedule_id))
    assert kept == [(NOW + 3600, "pending"), (NOW + 10 * day, "enqueued")]
    assert [a["agent_instance"] for a in store.agents()] == ["live"]
    assert [i["agent_instance"] for i in store.inventory()] == ["live"]
    assert store.dropped_events_total() == 12  # a counter: never down


def test_a_backfill_reaches_no_further_back_than_the_fire_retention(store: Store) -> None:
    _agent(store, "a1")
    _create(store)
    keep = 30 * 86400.0
    start = datetime.fromtimestamp(NOW - keep - 3600, timezone.utc)
    end = datetime.fromtimestamp(NOW, timezone.utc)
    with store.transaction(), pytest.raises(sched.ScheduleInputError) as refused:
        sched.backfill(store, "ping", start, end, dry_run=True, now=NOW, fire_retention=keep)
    message = str(refused.value)
    assert "older than the fire retention (30 days, store.fire_retention_days)" in message
    earliest = datetime.fromtimestamp(NOW - keep, timezone.utc)
    assert f"give --from {sched.format_instant(earliest)} or later" in message
    with store.transaction():
        _, plan, _ = sched.backfill(store, "ping", earliest, end, dry_run=True, now=NOW,
                                    fire_retention=keep)  # fmt: skip
    assert len(plan) == 30 * 24 + 1
