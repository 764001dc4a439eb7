"""The z4j plugin for Dramatiq: the hook implementations the agent calls (entry point `dramatiq`).

Each hook answers None for another engine's adapter, so several adapters can share a process.
Hooks answer from memory except `z4j_enqueue`, which the agent runs on its command threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from z4j_core.hookspecs import Emit, EngineAdapter, hookimpl
from z4j_core.wire import Command, CommandResult, ObservedSchedule, TaskInfo
from z4j_dramatiq import capture, enqueue, schedules
from z4j_dramatiq.adapter import ENGINE, DramatiqAdapter, create_adapter

#: Actor options reported in the inventory (the rest are callables or middleware internals).
REPORTED_OPTIONS = ("max_retries", "min_backoff", "max_backoff", "time_limit", "max_age")


@hookimpl
def z4j_engine_name() -> str:
    return ENGINE


@hookimpl
def z4j_create_adapter(app: object, options: Mapping[str, Any]) -> EngineAdapter | None:
    return create_adapter(app, options)


@hookimpl
def z4j_enqueue(adapter: EngineAdapter, request: Command) -> CommandResult | None:
    if not isinstance(adapter, DramatiqAdapter):
        return None
    return enqueue.enqueue(adapter, request)


def task_info(actor: Any) -> TaskInfo:
    options = {name: str(actor.options[name]) for name in REPORTED_OPTIONS if name in actor.options}
    if "periodic" in actor.options:
        options["periodic"] = str(actor.options["periodic"])
    if actor.priority:
        options["priority"] = str(actor.priority)
    return TaskInfo(name=actor.actor_name, queue=actor.queue_name, options=options)


@hookimpl
def z4j_registered_tasks(adapter: EngineAdapter) -> list[TaskInfo] | None:
    if not isinstance(adapter, DramatiqAdapter):
        return None
    broker = adapter.broker
    return [task_info(broker.get_actor(name)) for name in sorted(broker.get_declared_actors())]


@hookimpl
def z4j_observed_schedules(adapter: EngineAdapter) -> list[ObservedSchedule] | None:
    if not isinstance(adapter, DramatiqAdapter):
        return None
    return schedules.observe(adapter.broker)


@hookimpl
def z4j_install_capture(adapter: EngineAdapter, emit: Emit) -> None:
    if isinstance(adapter, DramatiqAdapter):
        capture.install(adapter, emit)


@hookimpl
def z4j_uninstall_capture(adapter: EngineAdapter) -> None:
    if isinstance(adapter, DramatiqAdapter):
        capture.uninstall(adapter)
