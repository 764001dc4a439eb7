"""The z4j plugin for arq: the hook implementations the agent calls (entry point `arq`).

Each hook answers None for another engine's adapter, so several adapters can share a process.
Hooks answer from memory except `z4j_enqueue`, which the agent runs on its command threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from z4j_arq import capture, enqueue, schedules
from z4j_arq.adapter import ENGINE, ArqAdapter, create_adapter, dotted_name
from z4j_core.hookspecs import Emit, EngineAdapter, hookimpl
from z4j_core.wire import Command, CommandResult, ObservedSchedule, TaskInfo


@hookimpl
def z4j_engine_name() -> str:
    return ENGINE


@hookimpl
def z4j_create_adapter(app: object, options: Mapping[str, Any]) -> EngineAdapter | None:
    return create_adapter(app, options)


@hookimpl
def z4j_enqueue(adapter: EngineAdapter, request: Command) -> CommandResult | None:
    if not isinstance(adapter, ArqAdapter):
        return None
    if adapter.commands is None:
        adapter.commands = enqueue.PrivateLoop()
    return enqueue.enqueue(adapter, request, adapter.commands)


@hookimpl
def z4j_registered_tasks(adapter: EngineAdapter) -> list[TaskInfo] | None:
    if not isinstance(adapter, ArqAdapter):
        return None
    infos = []
    for name, function in sorted(adapter.functions.items()):
        options = {"function": dotted_name(function)}
        if hasattr(function, "next_run"):
            options["cron"] = "true"
        for option in ("timeout_s", "max_tries", "keep_result_s"):
            value = getattr(function, option, None)
            if value is not None:
                options[option.removesuffix("_s")] = str(value)
        infos.append(TaskInfo(name=name, queue=adapter.queue, options=options))
    return infos


@hookimpl
def z4j_observed_schedules(adapter: EngineAdapter) -> list[ObservedSchedule] | None:
    if not isinstance(adapter, ArqAdapter):
        return None
    return schedules.observe(adapter.cron_jobs, adapter.timezone)


@hookimpl
def z4j_install_capture(adapter: EngineAdapter, emit: Emit) -> None:
    if isinstance(adapter, ArqAdapter):
        capture.install(adapter, emit)


@hookimpl
def z4j_uninstall_capture(adapter: EngineAdapter) -> None:
    if isinstance(adapter, ArqAdapter):
        capture.uninstall(adapter)
