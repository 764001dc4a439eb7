"""Upgrades: the previous release (built from this repository's history) and this one, mixed.

An agent of the previous release keeps working with this brain, and this agent with the
previous brain, on a real Huey consumer with real fires. A store written by the previous release
is migrated in place (SQLite and Postgres): schedules, fires, tokens and the audit chain survive,
`audit verify` passes, and schedules fire on, no slot doubled or missed across the upgrade. Two
brains on Postgres upgraded one at a time keep a per-second schedule whole. A brain refuses a
schema newer than it knows.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from upgrade_harness import (
    SINK_TASK,
    agents_connected,
    make_brain,
    per_second,
    previous_python,
    ran_once_each,
    schedule_fires,
    sink_ready,
    start_sink,
)

from z4j_brain.store import Store
from z4j_core.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CURRENT = Path(sys.executable)


@pytest.fixture(scope="module")
def previous() -> Path:
    return previous_python()


@pytest.mark.parametrize("agent_side", ["previous agent, this brain", "this agent, previous brain"])
def test_agents_and_brains_of_both_releases_work_together(
    previous: Path, tmp_path: Path, agent_side: str
) -> None:
    agent_python, brain_python = (
        (previous, CURRENT) if agent_side.startswith("previous") else (CURRENT, previous)
    )
    brain = make_brain(tmp_path / "brain", brain_python)
    brain.start()
    token = brain.create_token("sink")
    sink = start_sink(tmp_path / "sink", agent_python, brain.url, token)
    try:
        wait_for(lambda: sink_ready(brain), 30, f"the sink's agent and its task ({agent_side})")
        brain.api("POST", "/api/v1/schedules", per_second("mixed"))
        wait_for(
            lambda: (
                len([f for f in schedule_fires(brain, "mixed") if f["state"] == "enqueued"]) >= 5
            ),
            30,
            "five fires enqueued",
        )
        triggered = brain.api("POST", "/api/v1/schedules/mixed/trigger", {"idempotency_key": "k"})
        wait_for(lambda: triggered["fire"]["fire_id"] in sink.counts(), 20, "the trigger to run")
        time.sleep(1)
        ran_once_each(sink, [f for f in schedule_fires(brain, "mixed") if f["state"] == "enqueued"])
        # Task lifecycles reach the brain from either agent.
        tasks = brain.api("GET", "/api/v1/tasks?limit=100")["tasks"]
        assert any(t["state"] == "succeeded" and t["name"] == SINK_TASK for t in tasks), tasks
    finally:
        sink.stop()
        brain.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    from z4j_core.testing.postgres import temporary_database

    with temporary_database("upgrade") as url:
        yield url


def test_a_store_of_the_previous_release_is_migrated_in_place(
    previous: Path, tmp_path: Path, database: str | None
) -> None:
    old = make_brain(tmp_path / "brain", previous, database)
    old.start()
    token = old.create_token("sink")
    sink = start_sink(tmp_path / "sink", CURRENT, old.url, token)
    new = make_brain(tmp_path / "brain", CURRENT, database, port=old.port)
    try:
        wait_for(lambda: sink_ready(old), 30, "the sink's agent on the previous brain")
        created = old.api("POST", "/api/v1/schedules", per_second("kept"))
        first = old.api("POST", "/api/v1/schedules/kept/trigger", {"idempotency_key": "k1"})
        old.api("POST", "/api/v1/schedules", per_second("paused-one"))
        old.api("POST", "/api/v1/schedules/paused-one/pause", {"note": "before the upgrade"})
        wait_for(lambda: len(schedule_fires(old, "kept")) >= 4, 20, "fires on the previous brain")
        before = {s["id"]: s for s in old.api("GET", "/api/v1/schedules")["schedules"]}
        audit_rows = len(old.api("GET", "/api/v1/audit?limit=1000")["audit"])
        old.stop()
        time.sleep(2)  # slots pass while no brain runs: catch-up `all` fires them after
        new.start()

        verify = new.api("GET", "/api/v1/audit/verify")
        assert verify["ok"] and verify["count"] == audit_rows, verify
        after = {s["id"]: s for s in new.api("GET", "/api/v1/schedules")["schedules"]}
        assert set(after) == set(before)
        kept = after[created["id"]]
        assert kept["name"] == "kept" and kept["state"] == "active" and not kept["broken"]
        assert next(s for s in after.values() if s["name"] == "paused-one")["state"] == "paused"
        # The trigger key written by the previous release still answers for its schedule.
        again = new.api("POST", "/api/v1/schedules/kept/trigger", {"idempotency_key": "k1"})
        assert not again["created"] and again["fire"]["fire_id"] == first["fire"]["fire_id"]
        # The token survived: the same agent reconnects and fires go on.
        upgraded_at = time.time()
        wait_for(
            lambda: any(
                f["slot"] > upgraded_at and f["state"] == "enqueued"
                for f in schedule_fires(new, "kept")
            ),
            30,
            "fires after the upgrade",
        )
        time.sleep(2)
        slots = ran_once_each(sink, schedule_fires(new, "kept"))
        assert slots[0] < upgraded_at - 2 < upgraded_at + 1 < slots[-1]
        assert new.api("GET", "/api/v1/audit/verify")["ok"]
    finally:
        sink.stop()
        old.stop()
        new.stop()


@pytest.mark.postgres
def test_a_rolling_upgrade_of_two_brains_keeps_every_slot_once(
    previous: Path, tmp_path: Path
) -> None:
    from z4j_core.testing.postgres import temporary_database

    with temporary_database("rolling") as url:
        first = make_brain(tmp_path / "a", previous, url)
        second = make_brain(tmp_path / "b", previous, url)
        first.start()
        second.start()
        token = first.create_token("sink")
        sink = start_sink(tmp_path / "sink", CURRENT, first.url, token)
        brains = [first, second]
        try:
            wait_for(lambda: sink_ready(first), 30, "the sink's agent and its task")
            first.api("POST", "/api/v1/schedules", per_second("rolling"))
            wait_for(
                lambda: len(schedule_fires(first, "rolling")) >= 3, 20, "fires before the upgrade"
            )
            for index, old in enumerate(list(brains)):
                old.stop()
                upgraded = make_brain(old.workdir, CURRENT, url, port=old.port)
                upgraded.start()
                brains[index] = upgraded
                time.sleep(3)
            wait_for(
                lambda: agents_connected(brains[0]) == 1, 30, "the sink back on the upgraded brain"
            )
            done_at = time.time()
            wait_for(
                lambda: any(f["slot"] > done_at for f in schedule_fires(brains[0], "rolling")),
                20,
                "fires after both upgrades",
            )
            time.sleep(2)
            ran_once_each(sink, schedule_fires(brains[0], "rolling"))
        finally:
            sink.stop()
            for brain in brains:
                brain.stop()


def test_a_brain_refuses_a_schema_newer_than_it_knows(tmp_path: Path) -> None:
    brain = make_brain(tmp_path / "brain", CURRENT)
    store = Store.open(brain.database)
    try:
        with store.transaction():
            store.conn.execute("UPDATE schema_version SET version = 999")
    finally:
        store.close()
    with pytest.raises(RuntimeError) as refused:
        brain.start()
    assert "newer than this brain knows" in str(refused.value)
    assert "Traceback" not in str(refused.value)
