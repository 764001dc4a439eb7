"""A scheduler leader's load and its comparison of every version, in one process (no brain
around it: the leader reads its store directly), so their CPU can be read apart from a brain's.

    python bench/bench_leader_sync.py                 # 1,000,000 schedules on SQLite
    python bench/bench_leader_sync.py --schedules 200000

The store is filled as `bench_leader.py` fills it. Then the leader's first sync (the load) and
two syncs that compare every version with nothing changed (what the leader does every five
minutes), and three syncs after one edit each (what a leader woken by an edit does). Prints
wall and CPU seconds; asserts nothing. Needs z4j-core
and z4j-brain installed.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from bench_leader import fill

from z4j_brain.leader import Leader
from z4j_brain.store import Store

T = TypeVar("T")


class _Brain:
    """What a leader's sync uses of a brain: reads of its store."""

    brain_id = "bench"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def read(self, query: Callable[[Store], T]) -> T:
        return query(self.store)


class _Delivery:
    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        coro.close()  # no schedule is broken here


def timed(what: str, leader: Leader, full: bool = True) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(leader._sync(full=full))
    print(f"{what}: {time.perf_counter() - wall:.3f} s wall, {time.process_time() - cpu:.3f} s CPU")


def edit_one(store: Store) -> None:
    """One schedule's arguments edited, as `PATCH /schedules/{ref}` writes them."""
    sid = store.conn.execute("SELECT schedule_id FROM schedules LIMIT 1").fetchone()[0]
    with store.transaction():
        store.update_schedule(sid, {"args": [1]}, cursor_at_least=None, actor="bench", now=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="z4j-bench-leader-sync-") as tmp:
        database = str(Path(tmp) / "brain.db")
        Store.open(database).close()
        print(f"filled {args.schedules:,} schedules in {fill(database, args.schedules):.1f} s")
        store = Store.open(database)
        try:
            leader = Leader(_Brain(store), _Delivery())  # type: ignore[arg-type]
            timed(f"load of {args.schedules:,}", leader)
            for _ in range(2):
                timed("comparison of every version, nothing changed", leader)
            for _ in range(3):
                edit_one(store)
                timed("a woken leader's sync after one edit", leader, full=False)
        finally:
            store.close()


if __name__ == "__main__":
    main()
