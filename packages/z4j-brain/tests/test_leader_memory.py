"""The leader holds only what orders a schedule's slots: what a fire carries is read from the
store in the transaction that writes it (tested here on a real store, with the brain around
the leader reduced to its store)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import Any, TypeVar

from z4j_brain import schedules as sched
from z4j_brain.leader import Leader
from z4j_brain.store import Store

T = TypeVar("T")
NOW = 1_800_000_000.0


class _Writer:
    def __init__(self, store: Store) -> None:
        self.store = store

    def submit(self, job: Callable[[Store], T], *, urgent: bool = False) -> Future[T]:
        future: Future[T] = Future()
        with self.store.transaction():
            future.set_result(job(self.store))
        return future


class _Metrics:
    def slots_skipped(self, count: int = 1) -> None:
        pass


class _Brain:
    """What the leader uses of a brain: its store, read and written in this thread."""

    brain_id = "test-brain"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writer = _Writer(store)
        self.metrics = _Metrics()

    async def read(self, query: Callable[[Store], T]) -> T:
        return query(self.store)

    async def write(self, job: Callable[[Store], T]) -> T:
        with self.store.transaction():
            return job(self.store)


class _Delivery:
    def __init__(self) -> None:
        self.fires_waiting = asyncio.Event()

    def agents(self) -> list[Any]:
        return []

    def dispatch(self, claimed: list[Any]) -> None:
        pass

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.get_running_loop().create_task(coro)


def _create(store: Store, name: str) -> str:
    with store.transaction():
        row = sched.create(
            store,
            {"name": name, "task": "t.old", "engine": "huey", "app": "shop", "force": True,
             "args": [1], "schedule": {"kind": "interval", "every": "10s"}},
            actor="test", now=NOW,
        )  # fmt: skip
    return row.schedule_id


def test_a_popped_slot_fires_the_schedule_as_stored_when_its_fire_is_written(
    store: Store,
) -> None:
    """Between a slot's pop and its write, an edit of the task and arguments is what the fire
    carries, and a schedule deleted meanwhile fires no more (the leader holds no copy of
    either); the other schedules' fires and every cursor are written as usual."""
    edited, deleted, kept = (_create(store, name) for name in ("edited", "deleted", "kept"))

    async def scenario() -> None:
        leader = Leader(_Brain(store), _Delivery())  # type: ignore[arg-type]
        leader.leading = True
        await leader._sync(full=True)
        assert leader.schedules_held == 3
        assert leader.held_version(edited) == 1
        now = datetime.fromtimestamp(NOW + 10.5, timezone.utc)
        dues = leader.queue.pop_due(now)
        assert sorted(d.schedule_id for d in dues) == sorted([edited, deleted, kept])
        with store.transaction():
            store.update_schedule(edited, {"task": "t.new", "args": [2]}, cursor_at_least=None,
                                  actor="test", now=NOW + 10.2)  # fmt: skip
            doomed = store.schedule(deleted)
            assert doomed is not None
            store.delete_schedule(doomed, actor="test", now=NOW + 10.2)
        leader._write(dues, now)
        await asyncio.sleep(0)  # the write's callback

    asyncio.run(scenario())
    by_schedule = {f["schedule_id"]: f for f in store.fires()}
    assert set(by_schedule) == {edited, kept}
    assert by_schedule[edited]["task"] == "t.new"
    assert by_schedule[edited]["payload"]["args"] == [2]
    assert by_schedule[kept]["task"] == "t.old" and by_schedule[kept]["payload"]["args"] == [1]
    for sid in (edited, kept):
        row = store.schedule(sid)
        assert row is not None and row.cursor == NOW + 10


class _CountingBrain(_Brain):
    """Records which store reads the leader made."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.reads: list[str] = []

    async def read(self, query: Callable[[Store], T]) -> T:
        self.reads.append(getattr(getattr(query, "func", query), "__name__", "?"))
        return query(self.store)


def test_a_woken_leader_reads_only_what_changed_and_compares_every_version_when_unsure(
    store: Store,
) -> None:
    """After an edit, a pause, a delete and a create, the leader's sync reads those rows by
    their change numbers, not every schedule's version. A change that carries no number (a
    brain of the previous release), or one whose number was overwritten by a second edit,
    makes it compare every version: nothing is missed either way."""
    edited, paused, deleted = (_create(store, name) for name in ("edited", "paused", "deleted"))

    async def scenario() -> None:
        brain = _CountingBrain(store)
        leader = Leader(brain, _Delivery())  # type: ignore[arg-type]
        leader.leading = True
        await leader._sync(full=True)
        with store.transaction():
            store.update_schedule(edited, {"args": [2]}, cursor_at_least=None, actor="t",
                                  now=NOW)  # fmt: skip
            store.pause_schedule(paused, "", actor="t", now=NOW)
            doomed = store.schedule(deleted)
            assert doomed is not None
            store.delete_schedule(doomed, actor="t", now=NOW)
        created = _create(store, "created")
        brain.reads.clear()
        await leader._sync(full=False)
        assert "schedule_versions_after" not in brain.reads
        assert "schedules_changed_after" in brain.reads
        assert leader.held_version(edited) == 2 and leader.held_version(paused) == 2
        assert leader.held_version(deleted) is None and leader.held_version(created) == 1

        # Written without a change number, as a brain of the previous release writes.
        with store.transaction():
            store.conn.execute(
                "UPDATE schedules SET version = version + 1 WHERE schedule_id = ?", (edited,)
            )
            store._schedules_changed()
        brain.reads.clear()
        await leader._sync(full=False)
        assert "schedule_versions_after" in brain.reads
        assert leader.held_version(edited) == 3

        # Edited twice between two syncs: the first change's number is gone.
        for args in ([3], [4]):
            with store.transaction():
                store.update_schedule(created, {"args": args}, cursor_at_least=None,
                                      actor="t", now=NOW)  # fmt: skip
        brain.reads.clear()
        await leader._sync(full=False)
        assert "schedule_versions_after" in brain.reads
        assert leader.held_version(created) == 3

        # Nothing changed: one read of the count, nothing else.
        brain.reads.clear()
        await leader._sync(full=False)
        assert brain.reads == ["<lambda>"]

    asyncio.run(scenario())
