"""Where the agent runs in a Celery worker, for each pool, and when it starts and stops.

- The worker's main process owns the worker's one agent: `worker_init` (before the pool exists)
  makes the relay; `worker_ready` (the pool has forked, the consumer is up) starts the relay's
  reader and the agent's link, so no thread of ours exists when billiard forks the initial pool;
  `worker_shutdown` (the pool has stopped) reads what the children sent last and drains.
- prefork: each pool child (`worker_process_init` outside the main process, also for children
  forked later) routes its events through the relay and never starts a link of its own.
- solo and threads: tasks run in the main process (solo sends `worker_process_init` there too),
  so events go straight to the agent.
- A process that only publishes (a web app, celery beat) starts the link when it instruments the
  app, and drains it at interpreter exit.
Never raises into Celery: each receiver logs and counts what goes wrong.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from z4j_core.adapter import counted
from z4j_core.agent import Agent
from z4j_core.agent.relay import Relay
from z4j_core.wire import Capability

if TYPE_CHECKING:
    from z4j_celery.adapter import CeleryAdapter

log = logging.getLogger("z4j.celery")

_DISPATCH_UID = "z4j-celery-worker"


def in_worker_command(argv: list[str] | None = None) -> bool:
    """Whether this process is `celery ... worker` (the app module is imported before the pool
    forks). `celery multi` starts such processes; `app.worker_main()` needs `start=False`."""
    argv = sys.argv if argv is None else argv
    program = os.path.basename(argv[0]) if argv else ""
    return (program == "__main__.py" or program.startswith("celery")) and "worker" in argv[1:]


#: Pools that hand a task to an execution slot only when one is free, so Celery's expiry check
#: (made as the task is handed over) still means "not started before it expired".
EXPIRY_CHECKED_BY_POOL = frozenset({"prefork", "solo"})


def pool_name(pool: Any) -> str:
    """`prefork`, `solo`, `threads`, `gevent`, `eventlet` (or a custom pool's module name)."""
    if not isinstance(pool, str):
        pool = str(getattr(pool, "__module__", "") or "").rsplit(".", 1)[-1]
    name = pool.lower()
    return "prefork" if name == "processes" else name


class WorkerLife:
    """The receivers that start and stop one app's agent with its worker."""

    def __init__(self, adapter: CeleryAdapter, agent: Agent) -> None:
        self.adapter = adapter
        self.agent = agent
        self.main_pid: int | None = None
        self.relay: Relay | None = None
        self.pool = ""

    def connect(self) -> None:
        from celery import signals

        for name in ("worker_init", "worker_process_init", "worker_ready", "worker_shutdown"):
            receiver = getattr(self, f"on_{name}")
            getattr(signals, name).connect(
                receiver, weak=False, dispatch_uid=(_DISPATCH_UID, id(self))
            )

    def _mine(self, sender: Any, main: bool = True) -> bool:
        """Whether `sender` is this app's worker (and, with `main`, this its main process)."""
        mine = getattr(sender, "app", self.adapter.app) is self.adapter.app
        return mine and (not main or os.getpid() == self.main_pid)

    def on_worker_init(self, sender: Any = None, **kw: Any) -> None:
        with counted(
            self.agent, "could not prepare the Celery worker; pool events may be missed", log
        ):
            if not self._mine(sender, main=False):
                return
            self.main_pid = os.getpid()
            self.adapter.worker = self
            self.pool = pool_name(getattr(sender, "pool_cls", ""))
            kept = self.adapter.capabilities
            if self.pool not in EXPIRY_CHECKED_BY_POOL:
                # These pools take every task at once and never look at its expiry again.
                kept -= {Capability.EXPIRES.value}
            if self.pool == "prefork":  # the one pool whose `terminate_job` stops a running task
                kept |= {Capability.TERMINATE.value}
            if kept != self.adapter.capabilities:  # a hello sent before the pool was known
                self.adapter.capabilities = kept
                self.agent.reannounce()
            self.relay = Relay()

    def on_worker_process_init(self, sender: Any = None, **kw: Any) -> None:
        with counted(self.agent, "could not route a pool child's events to the worker", log):
            relay, capture = self.relay, self.adapter.capture
            # solo sends it in the main process
            if self.main_pid in (None, os.getpid()) or relay is None or capture is None:
                return
            relay.enter_child()
            capture.in_pool_child(relay, self.agent)

    def on_worker_ready(self, sender: Any = None, **kw: Any) -> None:
        with counted(self.agent, "could not start with the Celery worker", log):
            if self._mine(sender):
                if self.relay is not None:
                    self.relay.start(self.agent)
                self.agent.start()

    def on_worker_shutdown(self, sender: Any = None, **kw: Any) -> None:
        with counted(self.agent, "could not drain at the Celery worker's shutdown", log):
            if self._mine(sender):
                if self.relay is not None:
                    self.relay.stop()
                self.agent.stop()
