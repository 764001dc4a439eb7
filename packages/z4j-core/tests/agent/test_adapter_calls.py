"""The agent calls its adapters' methods directly, and every call is guarded: an adapter that
raises is logged and counted, never raised into the host, and its capture is disconnected
when the agent stops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from z4j_core.adapter import Adapter, answer, capabilities, rejected
from z4j_core.agent import Agent
from z4j_core.plugins import PluginRegistry, new_plugin_manager
from z4j_core.wire import Command, CommandKind, CommandStatus, TaskInfo
from z4j_core.wire.limits import MAX_RESULT_REASON_CHARS


class Broken(Adapter):
    engine = "broken"
    app_name = "app"

    def __init__(self) -> None:
        self.uninstalled = 0

    def registered_tasks(self) -> list[TaskInfo]:
        raise RuntimeError("registered_tasks broke")

    def install_capture(self, emit: Any) -> None:
        raise RuntimeError("install_capture broke")

    def uninstall_capture(self) -> None:
        self.uninstalled += 1
        raise RuntimeError("uninstall_capture broke")


def _agent(tmp_path: Path) -> Agent:
    registry = PluginRegistry(new_plugin_manager())
    return Agent(disabled=True, spool_dir=str(tmp_path), plugins=registry)


def test_a_raising_adapter_is_counted_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = _agent(tmp_path)
    adapter = Broken()
    agent.install_capture(adapter)
    assert agent.adapters == [adapter] and adapter.agent is agent and agent.errors == 1
    assert agent._inventory_of(adapter) is None and agent.errors == 2
    agent.stop(0.1)
    agent.stop(0.1)  # a second stop (a worker's shutdown hook, then atexit) is harmless
    assert adapter.uninstalled == 2 and agent.errors == 4
    assert "broken" in caplog.text


def test_an_unknown_engine_or_app_is_rejected_by_the_agent(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    agent.add_adapter(Broken())
    command = Command(
        command_id="c1", kind=CommandKind.ENQUEUE, deadline_seconds=5, engine="huey", app="x",
        task="t",
    )  # fmt: skip
    result = agent._enqueue(command)
    assert result.status is CommandStatus.REJECTED and "broken/app" in result.reason
    unsupported = agent._enqueue(Command(**{**_fields(command), "engine": "broken", "app": ""}))
    assert unsupported.status is CommandStatus.REJECTED
    assert unsupported.reason.startswith("unsupported")


def _fields(command: Command) -> dict[str, Any]:
    return {f: getattr(command, f) for f in command.__struct_fields__}


def test_answers_cut_reasons_to_the_limit_and_capabilities_extend_the_standard_set() -> None:
    command = Command(
        command_id="c", kind=CommandKind.ENQUEUE, deadline_seconds=5, engine="e", app="a", task="t"
    )
    long = rejected(command, "x" * 1000)
    assert long.reason is not None and len(long.reason) == MAX_RESULT_REASON_CHARS
    assert answer(command, CommandStatus.ENQUEUED, native_id="j").native_id == "j"
    assert {"enqueue", "fire", "trigger_now", "lifecycle"} <= capabilities()
    assert "eta" not in capabilities()
