"""The z4j plugin for taskiq: the hook implementations the agent calls (entry point `taskiq`).

Each hook answers None for another engine's adapter, so several adapters can share a process.
`z4j_registered_tasks` answers from memory; `z4j_enqueue` and `z4j_observed_schedules` may wait
on the broker or Redis, and the agent runs them off the host's threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from z4j_core.hookspecs import Emit, EngineAdapter, hookimpl
from z4j_core.wire import Command, CommandResult, ObservedSchedule, TaskInfo
from z4j_taskiq import enqueue, schedules
from z4j_taskiq.adapter import ENGINE, TaskiqAdapter, create_adapter

#: Task labels shown in the inventory (the rest may hold anything, secrets included).
SHOWN_LABELS = ("retry_on_error", "max_retries", "timeout", "delay", "priority", "queue_name")


@hookimpl
def z4j_engine_name() -> str:
    return ENGINE


@hookimpl
def z4j_create_adapter(app: object, options: Mapping[str, Any]) -> EngineAdapter | None:
    return create_adapter(app, options)


@hookimpl
def z4j_enqueue(adapter: EngineAdapter, request: Command) -> CommandResult | None:
    if not isinstance(adapter, TaskiqAdapter):
        return None
    return enqueue.enqueue(adapter, request)


@hookimpl
def z4j_registered_tasks(adapter: EngineAdapter) -> list[TaskInfo] | None:
    if not isinstance(adapter, TaskiqAdapter):
        return None
    infos = []
    for name, task in sorted(adapter.broker.get_all_tasks().items()):
        labels = getattr(task, "labels", {}) or {}
        options = {key: str(labels[key]) for key in SHOWN_LABELS if key in labels}
        if labels.get("schedule"):
            options["schedules"] = str(len(labels["schedule"]))
        queue = labels.get("queue_name") or adapter.queue
        infos.append(TaskInfo(name=name, queue=queue, options=options))
    return infos


@hookimpl
def z4j_observed_schedules(adapter: EngineAdapter) -> list[ObservedSchedule] | None:
    if not isinstance(adapter, TaskiqAdapter):
        return None
    return schedules.observe(adapter)


@hookimpl
def z4j_install_capture(adapter: EngineAdapter, emit: Emit) -> None:
    if isinstance(adapter, TaskiqAdapter) and adapter.middleware is not None:
        adapter.middleware.emit = emit


@hookimpl
def z4j_uninstall_capture(adapter: EngineAdapter) -> None:
    if isinstance(adapter, TaskiqAdapter) and adapter.middleware is not None:
        adapter.middleware.emit = None
