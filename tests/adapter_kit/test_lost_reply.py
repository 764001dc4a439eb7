"""An enqueue whose reply was lost (the engine took the job, the client timed out) is answered
`unknown` and never fired again: a real brain over a real socket, the agent in-process with the
adapter docs/adapters.md shows, and a toy engine whose broker "times out" once after taking a
job. Before the `unknown` answer the agent said `failed`, the brain offered the fire again, and
the job ran twice."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from tiny_engine import TinyQueue

from z4j_core.agent import Agent
from z4j_core.plugins import PluginRegistry, new_plugin_manager, register_adapter_class
from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


class LossyQueue(TinyQueue):
    """Takes the first job, then raises as a broker client does when the reply never came."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.lost = threading.Event()

    def enqueue(self, name: str, args: Any = (), kwargs: Any = None, job_id: str = "") -> str:
        taken = super().enqueue(name, args, kwargs, job_id)
        if not self.lost.is_set():
            self.lost.set()
            raise TimeoutError("Timeout reading from 127.0.0.1:6379")
        return taken


def test_a_fire_whose_enqueue_reply_was_lost_is_unknown_and_runs_once(
    z4j_tiny: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(z4j_tiny))
    import z4j_tiny as module

    tiny = LossyQueue("lossy")
    ran: list[str] = []
    lock = threading.Lock()

    def record(mark: str) -> None:
        with lock:
            ran.append(mark)

    tiny.task()(record)
    task = next(iter(tiny.tasks))
    tiny.start()
    registry = PluginRegistry(new_plugin_manager())
    register_adapter_class(registry, module.TinyAdapter)
    brain = BrainProcess(tmp_path / "brain").start()
    agent = None
    try:
        agent = Agent(
            plugins=registry,
            brain_url=brain.url,
            token=brain.create_token("lossy"),
            spool_dir=str(tmp_path / "spool"),
        )
        agent.install_capture(module.TinyAdapter.create(tiny, {}))
        agent.start()
        assert agent.wait_connected(30), agent.stats
        at = (datetime.now(timezone.utc) + timedelta(seconds=2)).replace(microsecond=0)
        schedule = {"kind": "oneshot", "at": at.isoformat(), "misfire_grace": "10s"}
        body = {"name": "once", "task": task, "engine": "tiny", "app": "lossy",
                "schedule": schedule, "args": ["once"], "force": True}  # fmt: skip
        brain.api("POST", "/api/v1/schedules", body)

        def settled() -> dict[str, Any] | None:
            found = brain.api("GET", "/api/v1/schedules/once/fires")["fires"]
            return found[0] if found and found[0]["state"] == "unknown" else None

        fire = wait_for(settled, 60, "the fire to be recorded unknown")
        assert tiny.lost.is_set()
        assert fire["reason"].startswith("the engine may or may not have it"), fire
        assert "TimeoutError" in fire["reason"], fire
        time.sleep(2)  # a re-offer would have come within a second of the answer
        assert ran == ["once"], ran
        counts = brain.api("GET", "/api/v1/scheduler")["fires"]
        assert counts.get("unknown") == 1, counts
    finally:
        if agent is not None:
            agent.stop(1)
        brain.stop()
