"""Where the agent runs in a Huey consumer, for each worker type, and when it starts and stops.

- `thread` and `greenlet` workers share the consumer's process and its one agent, whose link
  starts once the consumer has started its workers and drains when the consumer stops.
- `process` workers are forked by the consumer, never after the link started; each forked
  worker (and the scheduler process, which enqueues periodic tasks) gets a fresh agent identity
  (`after_fork="restart"`), connected on its first event and drained by a multiprocessing
  finalizer at exit (Huey's children leave with `os._exit`: `atexit` never runs there). The
  consumer's own process keeps an agent for commands and inventory.
- A process that only enqueues (a web app, a script) starts the link when it instruments Huey,
  and drains it at interpreter exit.
Never raises into Huey: every wrapper falls back to Huey's own behaviour.
"""

from __future__ import annotations

import logging
import multiprocessing.util
import os
import sys
from typing import Any

from z4j_core.adapter import count_error
from z4j_core.agent import Agent

log = logging.getLogger("z4j.huey")

CONSUMER_MODULE = "huey.bin.huey_consumer"


def in_consumer_command() -> bool:
    """Whether this process is `huey_consumer` or Django's `manage.py run_huey` (the app module
    is imported before it forks)."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return (
        CONSUMER_MODULE in sys.modules
        or sys.argv[1:2] == ["run_huey"]
        or getattr(main_spec, "name", None) == CONSUMER_MODULE
        or os.path.basename(sys.argv[0] if sys.argv else "").startswith("huey_consumer")
    )


def follow_consumers(huey: Any, agent: Agent, start_with_consumer: bool) -> None:
    """Wrap `huey.create_consumer` so each consumer starts and stops the agent at the right time
    (once per instance: `instrument` instruments an instance once)."""
    original = huey.create_consumer

    def create_consumer(**options: Any) -> Any:
        consumer = original(**options)
        try:
            _follow(consumer, agent, start_with_consumer)
        except Exception:
            count_error(agent, "could not follow the Huey consumer; events may be missed", log)
        return consumer

    huey.create_consumer = create_consumer


def _follow(consumer: Any, agent: Agent, start_with_consumer: bool) -> None:
    original_start, original_run = consumer.start, consumer.run
    forks = bool(getattr(consumer.environment, "forks", False))

    def start() -> None:
        if forks:
            multiprocessing.util.register_after_fork(agent, _in_forked_child)
        original_start()
        if start_with_consumer:
            agent.start()

    def run() -> None:
        try:
            original_run()
        finally:
            agent.stop()

    consumer.start = start
    consumer.run = run


def _in_forked_child(agent: Agent) -> None:
    """In each process the consumer forks: drain this process's agent when the child exits."""
    multiprocessing.util.Finalize(None, agent.stop, exitpriority=100)
