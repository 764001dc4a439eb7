"""A host process for end-to-end tests: an application with the z4j agent and a test engine.

Usage: python -m z4j_core.testing.agent_host MODE
  (configuration from Z4J_* variables, as a real app would)
  stream N RATE    emit N events at about RATE per second, then wait until all are
                   acknowledged (or HOST_DEADLINE passes) and print a JSON summary
  serve SECONDS    serve commands for SECONDS (task "hang" blocks until the process ends,
                   "quick" enqueues at once) while emitting a steady trickle of events
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from z4j_core.adapter import Adapter
from z4j_core.agent import Agent
from z4j_core.plugins import PluginRegistry, new_plugin_manager
from z4j_core.wire import Command, CommandResult, CommandStatus, TaskInfo

HANG = threading.Event()


class HostEngine(Adapter):
    engine = "testengine"
    app_name = "hostapp"
    capabilities = frozenset({"lifecycle", "enqueue", "fire", "list_tasks"})

    def registered_tasks(self) -> list[TaskInfo]:
        return [TaskInfo(name="quick"), TaskInfo(name="hang")]

    def enqueue(self, request: Command) -> CommandResult:
        if request.task == "hang":
            HANG.wait()
        if request.task not in ("quick", "hang"):
            return CommandResult(
                command_id=request.command_id,
                status=CommandStatus.REJECTED,
                reason=f"unknown task {request.task!r}",
            )
        native_id = request.fire_id or f"job-{request.command_id}"
        assert self.agent is not None
        self.agent.emit("enqueued", native_id, request.task, engine="testengine")
        return CommandResult(
            command_id=request.command_id, status=CommandStatus.ENQUEUED, native_id=native_id
        )


def make_agent() -> Agent:
    agent = Agent(plugins=PluginRegistry(new_plugin_manager()))
    agent.add_adapter(HostEngine())
    return agent


def stream(count: int, rate: float) -> None:
    agent = make_agent()
    began = time.perf_counter()
    agent.start()
    start_seconds = time.perf_counter() - began
    interval = 1.0 / rate
    next_at = time.monotonic()
    max_pending = 0  # events held in memory (the rest is in the spool)
    for i in range(count):
        agent.emit(
            "succeeded",
            f"task-{i:07d}",
            "app.tasks.work",
            engine="testengine",
            runtime=0.001,
            args=(i,),
            kwargs={"token": "s3cret"},
        )
        if i % 100 == 99:
            pending = agent.stats["pending"]
            max_pending = max(max_pending, pending)
            next_at += 100 * interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    deadline = time.monotonic() + float(os.environ.get("HOST_DEADLINE", "60"))
    # Settled: acknowledged, or dropped (counted, and reported to the brain).
    while time.monotonic() < deadline and agent.stats["acked"] + agent.stats["dropped"] < count:
        time.sleep(0.05)
    stats = agent.stats
    agent.stop(5)
    print(
        json.dumps({"start_seconds": start_seconds, "max_pending": max_pending, **stats}),
        flush=True,
    )


def serve(seconds: float) -> None:
    agent = make_agent()
    agent.start()
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        agent.emit("succeeded", f"tick-{i}", "app.tasks.tick", engine="testengine")
        i += 1
        time.sleep(0.05)
    HANG.set()
    agent.stop(5)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "stream":
        stream(int(sys.argv[2]), float(sys.argv[3]))
    elif mode == "serve":
        serve(float(sys.argv[2]))
    else:
        sys.exit(f"unknown mode {mode!r}")
