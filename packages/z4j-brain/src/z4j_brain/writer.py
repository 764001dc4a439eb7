"""The store's one writer: a thread with its own connection that runs write jobs in group
commits (SQLite or Postgres).

Owns the rule that the event loop never waits on the database: the gateway submits a job (a function
of a ``Store``) and gets a ``concurrent.futures.Future`` that completes only after the job's
transaction committed. Jobs queued together share one transaction (group commit); each runs
inside its own savepoint, so one failing job fails alone. Urgent jobs (the scheduler's fires,
claims and answers, small and due now) go before the others queued with them, in groups of
their own, so a fire never waits behind a queue of event batches; the others still get a group
after each urgent one, so a steady flow of fires cannot starve them. Never runs gateway code on
its thread besides the futures' completion callbacks, which must only hand work back to the
event loop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Final, TypeVar

from z4j_brain.store import Store

log = logging.getLogger("z4j.brain.writer")

T = TypeVar("T")

#: Most jobs one transaction groups; bounds how long the first job's caller waits for its commit.
MAX_GROUP: Final = 64

_STOP: Final = object()
#: Put on the queue after an urgent job, to wake the writer (the job itself is in ``_urgent``).
_URGENT: Final = object()


class WriterClosed(RuntimeError):
    """A job was submitted after ``close()``."""


class StoreWriter:
    """Runs write jobs on one thread; start it with ``start()``, end it with ``close()``."""

    def __init__(self, target: str | Path) -> None:
        self._target = target
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._urgent: deque[tuple[Callable[[Store], Any], Future[Any]]] = deque()
        self._thread = threading.Thread(target=self._run, name="z4j-brain-writer", daemon=True)
        self._closed = False
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            raise self._start_error

    def depth(self) -> int:
        """Jobs queued and not yet taken by the writer (approximate, for ``/metrics``)."""
        return self._jobs.qsize()

    def submit(self, job: Callable[[Store], T], *, urgent: bool = False) -> Future[T]:
        """Queue ``job``; its future resolves with its result once its transaction committed.
        An ``urgent`` job runs before the ordinary ones queued with it (keep it small)."""
        if self._closed:
            raise WriterClosed("the store writer is closed")
        future: Future[T] = Future()
        if urgent:
            self._urgent.append((job, future))
            self._jobs.put(_URGENT)
        else:
            self._jobs.put((job, future))
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued jobs, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            store = Store.open(self._target, migrate=False)
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        ordinary: deque[Any] = deque()  # taken off the queue, not run yet
        stopping = False
        try:
            while True:
                if not ordinary and not self._urgent:
                    if stopping:
                        break
                    stopping = self._take(self._jobs.get(), ordinary) or stopping
                while len(ordinary) < MAX_GROUP:
                    try:
                        item = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    stopping = self._take(item, ordinary) or stopping
                if self._urgent:
                    urgent = self._urgent
                    self._commit_group(
                        store, [urgent.popleft() for _ in range(min(MAX_GROUP, len(urgent)))]
                    )
                    store = self._reconnect_if_broken(store)
                if ordinary:
                    group = [ordinary.popleft() for _ in range(min(MAX_GROUP, len(ordinary)))]
                    # An urgent job arriving meanwhile ends the group after the job running
                    # then; the jobs not run go back to the front, in their order.
                    unrun = self._commit_group(store, group, yield_to=self._urgent)
                    ordinary.extendleft(reversed(unrun))
                    store = self._reconnect_if_broken(store)
        finally:
            store.close()

    @staticmethod
    def _take(item: Any, ordinary: deque[Any]) -> bool:
        """File one item of the queue; True when it says stop (after what is queued)."""
        if item is _STOP:
            return True
        if item is not _URGENT:
            ordinary.append(item)
        return False

    def _reconnect_if_broken(self, store: Store) -> Store:
        """A Postgres connection lost (server restart, failover) is replaced before the next
        group; its jobs failed, so their batches stay unacknowledged and are resent."""
        if not getattr(store.conn, "broken", False):
            return store
        try:
            store.close()
        except Exception:
            pass
        while not self._closed:
            try:
                fresh = Store.open(self._target, migrate=False)
            except Exception as exc:
                log.error("store reconnect failed, retrying: %s", exc)
                time.sleep(1.0)
                continue
            log.warning("store connection replaced after it broke")
            return fresh
        return store

    def _commit_group(
        self, store: Store, group: list[Any], yield_to: deque[Any] | None = None
    ) -> list[Any]:
        """Run ``group``'s jobs in one transaction and commit; with ``yield_to``, stop before
        the next job once that queue holds something, and return the jobs not run."""
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        conn = store.conn
        # A job alone in its group needs no savepoint: its failure rolls the transaction back
        # (two statements fewer per write, a round trip each on Postgres).
        alone = len(group) == 1
        unrun: list[Any] = []
        try:
            conn.begin()
            for index, (job, future) in enumerate(group):
                if index and yield_to:
                    group, unrun = group[:index], group[index:]
                    break
                if not future.set_running_or_notify_cancel():
                    continue
                if not alone:
                    conn.execute("SAVEPOINT job")
                try:
                    result = job(store)
                except Exception as exc:
                    if alone:
                        try:
                            conn.rollback()
                        finally:
                            future.set_exception(exc)
                        return unrun
                    conn.execute("ROLLBACK TO SAVEPOINT job")
                    conn.execute("RELEASE SAVEPOINT job")
                    outcomes.append((future, False, exc))
                else:
                    if not alone:
                        conn.execute("RELEASE SAVEPOINT job")
                    outcomes.append((future, True, result))
            conn.commit()
        except Exception as exc:
            log.error("store commit failed: %s", why(exc))
            try:
                if conn.in_transaction:
                    conn.rollback()
            except Exception:
                pass  # a broken connection: replaced by _reconnect_if_broken
            for _job, future in group:
                if future.done():
                    continue
                if future.running() or future.set_running_or_notify_cancel():
                    future.set_exception(exc)
            return unrun
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        return unrun


#: Longest database error message logged (a driver's message may quote a value).
MAX_ERROR_CHARS = 200


def why(exc: BaseException) -> str:
    """A database error in one line, for the log: its type and the driver's message ("database
    or disk is full"), which says what an operator must fix."""
    message = " ".join(str(exc).split())[:MAX_ERROR_CHARS]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
