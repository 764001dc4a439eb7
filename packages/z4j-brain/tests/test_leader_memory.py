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
