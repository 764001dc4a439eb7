"""The z4j plugin for Huey: the hook implementations the agent calls (entry point `huey`).

Each hook answers None for another engine's adapter, so several adapters can share a process.
Hooks answer from memory except `z4j_enqueue`, which the agent runs on its command threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from z4j_core.hookspecs import Emit, EngineAdapter, hookimpl
from z4j_core.wire import Command, CommandResult, ObservedSchedule, TaskInfo
from z4j_huey import capture, enqueue, schedules
from z4j_huey.adapter import ENGINE, HueyAdapter, create_adapter


@hookimpl
def z4j_engine_name() -> str:
    return ENGINE


@hookimpl
def z4j_create_adapter(app: object, options: Mapping[str, Any]) -> EngineAdapter | None:
    return create_adapter(app, options)


@hookimpl
def z4j_enqueue(adapter: EngineAdapter, request: Command) -> CommandResult | None:
    if not isinstance(adapter, HueyAdapter):
        return None
    return enqueue.enqueue(adapter, request)


@hookimpl
def z4j_registered_tasks(adapter: EngineAdapter) -> list[TaskInfo] | None:
    if not isinstance(adapter, HueyAdapter):
        return None
    infos = []
    for name, task_class in sorted(adapter.huey._registry._registry.items()):
        options = {}
        if hasattr(task_class, "validate_datetime"):
            options["periodic"] = "true"
        for option in ("default_retries", "default_priority", "default_timeout"):
            value = getattr(task_class, option, None)
            if value:
                options[option.removeprefix("default_")] = str(value)
        infos.append(TaskInfo(name=name, queue=adapter.queue, options=options))
    return infos


@hookimpl
def z4j_observed_schedules(adapter: EngineAdapter) -> list[ObservedSchedule] | None:
    if not isinstance(adapter, HueyAdapter):
        return None
    return schedules.observe(adapter.huey)


@hookimpl
def z4j_install_capture(adapter: EngineAdapter, emit: Emit) -> None:
    if isinstance(adapter, HueyAdapter):
        capture.install(adapter, emit)


@hookimpl
def z4j_uninstall_capture(adapter: EngineAdapter) -> None:
    if isinstance(adapter, HueyAdapter):
        capture.uninstall(adapter)
