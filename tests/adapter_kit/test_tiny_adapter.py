"""A seventh adapter built from docs/adapters.md: its code block becomes the module `z4j_tiny`,
which instruments a toy engine (tests/adapter_kit/tiny_engine.py, a queue with worker threads)
in-process through the agent, and in a real worker process through the conformance suite
against a real brain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from page import adapter_source
from tiny_engine import TinyQueue

from z4j_core.adapter import Adapter, adapter_of
from z4j_core.agent import Agent
from z4j_core.plugins import PluginRegistry, new_plugin_manager, register_adapter_class
from z4j_core.testing.conformance import EngineConformance, EngineHarness, WorkerContext
from z4j_core.wire import Command, CommandKind, CommandStatus

HERE = Path(__file__).parent


def test_the_adapter_on_the_page_fits_on_one_screen() -> None:
    assert len(adapter_source().splitlines()) <= 90


def _command(task: str, *args: Any, fire_id: str = "") -> Command:
    return Command(
        command_id=uuid.uuid4().hex,
        kind=CommandKind.FIRE if fire_id else CommandKind.ENQUEUE,
        deadline_seconds=10,
        engine="tiny",
        app="tiny",
        task=task,
        args=list(args),
        fire_id=fire_id or None,
        schedule_id="s" if fire_id else None,
        slot="2030-01-01T00:00:00+00:00" if fire_id else None,
    )


def test_the_page_adapter_runs_through_the_agent_in_process(
    z4j_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(z4j_tiny))
    import z4j_tiny as module

    tiny = TinyQueue("tiny")
    ran: list[str] = []
    tiny.task()(ran.append)
    name = next(iter(tiny.tasks))
    adapter = module.TinyAdapter.create(tiny, {})
    assert isinstance(adapter, Adapter) and module.TinyAdapter.create(object(), {}) is None

    # Discovery: a source tree registers the class; a registry finds it for the engine's object.
    registry = PluginRegistry(new_plugin_manager())
    assert register_adapter_class(registry, module.TinyAdapter)
    assert registry.classes["tiny"] is module.TinyAdapter
    assert registry.loaded == {"tiny": "tiny"}
    assert isinstance(registry.adapter_for(tiny), module.TinyAdapter)

    agent = Agent(disabled=True, spool_dir=str(tmp_path), plugins=registry)
    events: list[tuple[Any, ...]] = []
    agent.emit = lambda kind, task_id, task_name, **fields: events.append(  # type: ignore[method-assign]
        (kind, task_id, task_name, fields)
    )
    agent.install_capture(adapter)
    assert adapter.agent is agent and adapter.capture in tiny.listeners
    tiny.start()

    result = agent._enqueue(_command(name, "hello", fire_id="fire-1"))
    assert result.status is CommandStatus.ENQUEUED and result.native_id == "fire-1"
    unknown = agent._enqueue(_command("nope.missing"))
    assert unknown.status is CommandStatus.REJECTED and "nope.missing" in unknown.reason
    inventory = agent._inventory_of(adapter)
    assert inventory is not None and [t.name for t in inventory.tasks] == [name]
    assert inventory.schedules == []  # the base class's default: no native schedules

    deadline = time.monotonic() + 5
    while len(events) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e[0] for e in events] == ["enqueued", "started", "succeeded"], events
    assert events[0][1] == "fire-1" and events[0][3]["engine"] == "tiny"
    assert ran == ["hello"]

    agent.stop(0.1)  # stopping the agent disconnects the capture
    assert adapter.capture is None and tiny.listeners == []


def test_the_base_adapter_answers_unsupported_and_describes_nothing() -> None:
    class Bare(Adapter):
        engine = "bare"

    bare = Bare()
    answer = bare.enqueue(_command("any.task"))
    assert answer.status is CommandStatus.REJECTED and answer.reason.startswith("unsupported")
    assert bare.registered_tasks() == [] and bare.observed_schedules() == []
    bare.install_capture(lambda *a, **k: None)
    bare.uninstall_capture()
    assert bare.engine_version == "unknown" and adapter_of(object()) is None


class WorkerProcess:
    def __init__(self, context: WorkerContext, adapter_folder: Path) -> None:
        self.log_path = context.workdir / "tiny-worker.log"
        path = [str(HERE), str(adapter_folder), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, **context.env, "PYTHONPATH": os.pathsep.join(filter(None, path))}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / "tiny_worker.py")],
                cwd=HERE,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class TestTinyAdapterConformance(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, z4j_tiny: Path) -> EngineHarness:
        return EngineHarness(
            engine="tiny",
            app="z4j-conformance",
            succeed="tiny_app.succeed",
            fail="tiny_app.fail",
            fail_exception="ConformanceError",
            retry="tiny_app.retry",
            slow="tiny_app.slow",
            start_worker=lambda context: WorkerProcess(context, z4j_tiny),
            concurrency=2,
        )
