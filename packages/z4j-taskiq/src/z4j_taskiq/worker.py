"""Where the agent runs with taskiq, and when it starts and stops.

Each `taskiq worker` process imports the broker's module, so has its own middleware, adapter and
agent. The link starts at the broker's startup in each process (on its loop, remembered: kicks
run there). A worker drains it at the broker's shutdown (its processes end with `os._exit` and
never run `atexit`); a process that only kicks (a web app, `taskiq scheduler`) drains at exit.
The link has its own thread and loop, never the worker's. Never keeps a process alive (a daemon
thread, a drain with a deadline); never raises into taskiq.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from z4j_core import adapter as kit
from z4j_taskiq.adapter import TaskiqAdapter

log = logging.getLogger("z4j.taskiq")

#: The longest the broker's shutdown waits for the agent's drain (taskiq's own shutdown
#: timeout defaults to 5 s); what is not sent by then is spooled for a later agent.
SHUTDOWN_DRAIN_SECONDS = 3.0


def attach_middleware(middleware: Any, broker: Any) -> None:
    """Create the adapter and attach the process's agent (from `Z4JMiddleware.set_broker`)."""
    adapter = TaskiqAdapter.create(broker, middleware.options)
    if adapter is None:
        raise TypeError(f"Z4JMiddleware needs a taskiq broker, not {type(broker)!r}")
    adapter.middleware, middleware.adapter, middleware.queue = middleware, adapter, adapter.queue
    middleware.agent = kit.instrument(adapter, **middleware.options)


def on_broker_startup(middleware: Any) -> None:
    """In `broker.startup()`, on the broker's loop: remember the loop, start the link."""
    try:
        adapter, agent = middleware.adapter, middleware.agent
        if adapter is None or agent is None:
            return
        adapter.loop, adapter.started_at = asyncio.get_running_loop(), time.time()
        if middleware.start_policy is not False:
            agent.start()
    except Exception:
        kit.count_error(middleware, "could not start with the taskiq broker", log)


async def on_broker_shutdown(middleware: Any) -> None:
    """In `broker.shutdown()`: a worker process drains its agent now, off the worker's loop."""
    agent, broker = middleware.agent, middleware.broker
    if agent is None or not getattr(broker, "is_worker_process", False):
        return
    await kit.stop_off_loop(agent, min(agent.config.drain_timeout, SHUTDOWN_DRAIN_SECONDS), log)
