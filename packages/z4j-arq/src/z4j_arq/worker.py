"""Where the agent runs in an arq worker, and when it starts and stops.

An arq worker is one process running one asyncio loop. `instrument_settings` returns settings
whose hooks run ours, then the user's (whose `on_shutdown` runs first, so what it does is still
reported), and whose serializers wrap the user's. `on_startup` finds the `arq.worker.Worker` (in
the awaiting frame: arq hands hooks only `ctx`), follows it, drops the adapters of settings only
imported here, and starts the link; `on_shutdown` drains the agent off the loop.

The link runs on the agent's own thread, not on the worker's loop: bench/bench_arq.py measures
both (docs/engines/arq.md has the figures). Never raises into arq: a failure in our part of a
hook is counted and logged, and the user's hook still runs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from z4j_core import adapter as kit
from z4j_core.adapter import MARK
from z4j_core.agent import Agent

if TYPE_CHECKING:
    from z4j_arq.adapter import ArqAdapter

log = logging.getLogger("z4j.arq")

HOOKS = ("on_startup", "on_shutdown", "on_job_start", "after_job_end")

Hook = Callable[[dict[Any, Any]], Awaitable[Any]]


def find_worker(depth: int = 6) -> Any:
    """The `arq.worker.Worker` awaiting the current hook (its frame is a few levels up)."""
    from arq.worker import Worker

    frame: FrameType | None = sys._getframe(1)
    while frame is not None and depth > 0:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Worker):
            return candidate
        frame, depth = frame.f_back, depth - 1
    return None


def step_aside(agent: Agent, running: ArqAdapter) -> None:
    """This process runs `running`'s worker: settings instrumented only because their module
    was imported here are not a worker, so they stop answering for it (commands, inventory)."""
    for other in list(agent.adapters):
        if (
            isinstance(other, type(running))
            and other is not running
            and other.is_worker
            and other.worker is None
        ):
            agent.adapters.remove(other)


def chained(ours: Callable[[dict[Any, Any]], None], theirs: Hook | None) -> Hook:
    """A job hook that runs ours (which catches and counts its own errors), then the user's."""

    async def hook(ctx: dict[Any, Any]) -> None:
        ours(ctx)
        if theirs is not None:
            await theirs(ctx)

    return hook


def instrument_settings(
    settings: Any, adapter: ArqAdapter, agent: Agent, start: bool | None
) -> Any:
    """Settings like `settings` (a class or a dict) with our hooks and serializers added."""
    capture = adapter.capture
    values = dict(adapter.settings or {})
    hooks = {name: values.get(name) for name in HOOKS}  # a class's are staticmethods here
    user = {k: h.__func__ if isinstance(h, staticmethod) else h for k, h in hooks.items()}

    async def on_startup(ctx: dict[Any, Any]) -> None:
        try:
            worker = find_worker()
            if worker is None:
                log.warning("z4j could not find the arq worker; job outcomes will not be reported")
            else:
                adapter.worker = worker
                if adapter.pool is None:
                    adapter.pool = worker.pool
                if capture is not None:
                    capture.follow_worker(worker)
            pool = ctx.get("redis")
            if capture is not None and pool is not None:
                capture.instrument_pool(pool)
            step_aside(agent, adapter)
            if start is None or start:
                agent.start()
        except Exception:
            kit.count_error(agent, "could not follow the arq worker; events may be missed", log)
        if user["on_startup"] is not None:
            await user["on_startup"](ctx)

    async def on_shutdown(ctx: dict[Any, Any]) -> None:
        try:
            if user["on_shutdown"] is not None:
                await user["on_shutdown"](ctx)
        finally:
            await kit.stop_off_loop(agent, logger=log)  # counts and logs what goes wrong

    ours: dict[str, Any] = {"on_startup": on_startup, "on_shutdown": on_shutdown, MARK: adapter}
    if capture is not None:  # without one, the user's own job hooks and serializers stay
        ours.update(
            on_job_start=chained(capture.on_job_start, user["on_job_start"]),
            after_job_end=chained(capture.after_job_end, user["after_job_end"]),
            job_serializer=capture.wrap_serializer(values.get("job_serializer")),
            job_deserializer=capture.wrap_deserializer(values.get("job_deserializer")),
        )
    if isinstance(settings, type):
        # arq reads only the class's own __dict__: copy it, then put ours on top.
        namespace = {k: v for k, v in values.items() if not k.startswith("__")}
        for dunder in ("__module__", "__doc__", "__qualname__"):
            namespace[dunder] = getattr(settings, dunder)
        return type(settings.__name__, (settings,), {**namespace, **ours})
    return {**values, **ours}
