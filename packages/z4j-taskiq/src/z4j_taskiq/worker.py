"""Where the agent runs with taskiq, and when it starts and stops.

- `taskiq worker` starts worker processes that each import the broker's module, so each has its
  own middleware, adapter and agent. The link starts from the broker's startup in that process
  (taskiq's `WORKER_STARTUP`, on the worker's event loop, after the process exists) and drains
  at the broker's shutdown: the worker processes end with `os._exit`, so `atexit` never runs
  there. The agent's link has its own thread and loop; it never uses the worker's loop.
- A process that only kicks tasks (a web app, `taskiq scheduler`) starts the link from its own
  `await broker.startup()` (`CLIENT_STARTUP`) and drains at interpreter exit.
- The loop the broker started on is remembered: the agent's enqueue kicks run there.
Never keeps a process alive: the link thread is a daemon and the drain has a deadline.
Never raises into taskiq.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import threading
import time
from typing import Any

from z4j_core.agent import Agent, attach

log = logging.getLogger("z4j.taskiq")

#: The longest the broker's shutdown waits for the agent's drain (taskiq's own shutdown
#: timeout defaults to 5 s); what is not sent by then is spooled for a later agent.
SHUTDOWN_DRAIN_SECONDS = 3.0

_atexit_agents: set[int] = set()


def attach_middleware(middleware: Any, broker: Any) -> None:
    """Create the adapter and attach the process's agent (from `Z4JMiddleware.set_broker`)."""
    from z4j_taskiq.adapter import create_adapter, queue_of

    options = middleware.options
    adapter = create_adapter(broker, {"app_name": options.get("app_name") or ""})
    if adapter is None:
        raise TypeError(f"Z4JMiddleware needs a taskiq broker, not {type(broker)!r}")
    adapter.middleware = middleware
    middleware.adapter = adapter
    middleware.queue = queue_of(broker)
    agent = attach(adapter, start=False, **options)
    middleware.agent = agent
    _ensure_plugin(agent, adapter)


def _ensure_plugin(agent: Agent, adapter: Any) -> None:
    """Register our hooks when the entry point is not installed (running from a source tree)."""
    from z4j_taskiq import plugin

    manager = agent.plugins.manager
    if manager.is_registered(plugin) or any(
        manager.get_plugin(name) is plugin for name in agent.plugins.loaded
    ):
        return
    manager.register(plugin, name="taskiq")
    agent.plugins.loaded["taskiq"] = "taskiq"
    if adapter.middleware.emit is None:
        manager.hook.z4j_install_capture(adapter=adapter, emit=agent.emitter(adapter.engine))


def on_broker_startup(middleware: Any) -> None:
    """In `broker.startup()`, on the broker's loop: remember the loop, start the link."""
    try:
        adapter, agent = middleware.adapter, middleware.agent
        if adapter is None or agent is None:
            return
        adapter.loop = asyncio.get_running_loop()
        adapter.started_at = time.time()
        if middleware.start_policy is not False:
            agent.start()
        drain_at_exit(agent)
    except Exception:
        middleware.errors += 1
        log.exception("z4j could not start with the taskiq broker")


async def on_broker_shutdown(middleware: Any) -> None:
    """In `broker.shutdown()`: a worker process drains its agent now (it never runs atexit).

    The drain runs on a daemon thread so the worker's loop keeps serving while it waits.
    """
    agent, broker = middleware.agent, middleware.broker
    if agent is None or not getattr(broker, "is_worker_process", False):
        return
    try:
        timeout = min(agent.config.drain_timeout, SHUTDOWN_DRAIN_SECONDS)
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def drain() -> None:
            try:
                agent.stop(timeout)
            finally:
                done.set_result(None)

        threading.Thread(target=drain, name="z4j-agent-drain", daemon=True).start()
        await asyncio.wait_for(asyncio.wrap_future(done), timeout + 1.0)
    except Exception:
        middleware.errors += 1
        log.warning("z4j agent did not drain at the broker's shutdown", exc_info=True)


def drain_at_exit(agent: Agent) -> None:
    """Stop (drain, then spool what is left) at interpreter exit; once per agent."""
    if id(agent) in _atexit_agents:
        return
    _atexit_agents.add(id(agent))
    atexit.register(agent.stop)
