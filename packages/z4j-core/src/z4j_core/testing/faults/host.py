"""A host process for the fault tests: an application with the z4j agent, emitting as a worker.

Usage: python -m z4j_core.testing.faults.host MODE ...  (agent configuration from Z4J_* variables)
  stream N RATE   emit N events (task ids ``task-0000000`` ...) at about RATE per second, then
                  wait until all are acknowledged (or counted as dropped) or HOST_DEADLINE
                  seconds pass
  work N          run N small tasks as a worker would: each emits received, started, runs about
                  a millisecond of CPU work, emits succeeded; records every task's latency
  idle SECONDS    start the agent and emit nothing for SECONDS (stop-time tests)

While it runs it rewrites HOST_STATUS (a JSON file) every 0.1 s: connected, sessions opened,
acked, pending, dropped, RSS bytes. At the end, if HOST_STOP_TIMEOUT is set, it calls
``agent.stop(HOST_STOP_TIMEOUT)`` and times it; then it prints one JSON summary line.
``time.monotonic`` is one clock for all processes of the machine, so the test can compare the
instants it reads here with its own.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from z4j_core.adapter import Adapter
from z4j_core.agent import Agent
from z4j_core.plugins import PluginRegistry, new_plugin_manager
from z4j_core.testing.stats import percentile, rss_bytes
from z4j_core.wire import TaskInfo


class HostEngine(Adapter):
    engine = "testengine"
    app_name = "faultapp"
    capabilities = frozenset({"lifecycle", "list_tasks"})

    def registered_tasks(self) -> list[TaskInfo]:
        return [TaskInfo(name="app.tasks.work")]


def make_agent() -> Agent:
    agent = Agent(plugins=PluginRegistry(new_plugin_manager()))
    agent.add_adapter(HostEngine())
    return agent


class Status:
    """Writes the agent's state to HOST_STATUS every 0.1 s on a daemon thread."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.path = Path(os.environ["HOST_STATUS"]) if os.environ.get("HOST_STATUS") else None
        self.max_rss = 0
        self.max_pending = 0
        self.emitted = 0
        self.tasks_done = 0
        self._stop = threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    def snapshot(self) -> dict[str, Any]:
        stats = self.agent.stats
        link = self.agent._link  # the session count is the link's own statistic
        rss = rss_bytes()
        self.max_rss = max(self.max_rss, rss)
        self.max_pending = max(self.max_pending, int(stats["pending"]))
        return {
            "now": time.monotonic(),
            "connected": stats["connected"],
            "sessions": link.stats.sessions_opened if link else 0,
            "acked": stats["acked"],
            "pending": stats["pending"],
            "in_flight": stats["in_flight"],
            "dropped": stats["dropped"],
            "errors": stats["errors"],
            "spooled_bytes": stats["spooled_bytes"],
            "emitted": self.emitted,
            "tasks_done": self.tasks_done,
            "rss": rss,
            "max_rss": self.max_rss,
            "max_pending": self.max_pending,
        }

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            data = json.dumps(self.snapshot())
            if self.path is not None:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(data)
                tmp.replace(self.path)

    def close(self) -> None:
        self._stop.set()


def stream(agent: Agent, status: Status, count: int, rate: float) -> dict[str, Any]:
    interval = 1.0 / rate
    next_at = time.monotonic()
    slowest_emit = 0.0
    for i in range(count):
        began = time.perf_counter()
        agent.emit(
            "succeeded",
            f"task-{i:07d}",
            "app.tasks.work",
            engine="testengine",
            runtime=0.001,
            args=(i,),
        )
        slowest_emit = max(slowest_emit, time.perf_counter() - began)
        status.emitted = i + 1
        if i % 50 == 49:
            next_at += 50 * interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    deadline = time.monotonic() + float(os.environ.get("HOST_DEADLINE", "60"))
    while time.monotonic() < deadline:
        stats = agent.stats
        if stats["acked"] + stats["dropped"] >= count:  # every event delivered or counted
            break
        time.sleep(0.05)
    return {"slowest_emit": slowest_emit}


def _cpu_work() -> int:
    total = 0
    for i in range(20_000):  # about a millisecond of pure-Python work
        total += i * i
    return total


def work(agent: Agent, status: Status, count: int) -> dict[str, Any]:
    """A worker's loop: the agent's emits around each task, latency measured around all of it."""
    agent.wait_connected(30)  # both runs start in session; a test may then cut the brain off
    time.sleep(0.5)
    latencies: list[float] = []
    slowest_emit = 0.0
    pause = float(os.environ.get("HOST_TASK_PAUSE", "0.002"))
    for i in range(count):
        task_id = f"job-{i:07d}"
        began = time.perf_counter()
        for kind in ("received", "started"):
            t = time.perf_counter()
            agent.emit(kind, task_id, "app.tasks.work", engine="testengine")
            slowest_emit = max(slowest_emit, time.perf_counter() - t)
        result = _cpu_work()
        t = time.perf_counter()
        agent.emit(
            "succeeded", task_id, "app.tasks.work", engine="testengine", result=result, runtime=0
        )
        slowest_emit = max(slowest_emit, time.perf_counter() - t)
        latencies.append(time.perf_counter() - began)
        status.emitted += 3
        status.tasks_done = i + 1
        time.sleep(pause)
    latencies.sort()

    return {
        "tasks": len(latencies),
        "slowest_emit": slowest_emit,
        "latency_p50": percentile(latencies, 0.50),
        "latency_p99": percentile(latencies, 0.99),
        "latency_max": latencies[-1],
    }


def main(argv: list[str]) -> None:
    mode = argv[0]
    agent = make_agent()
    agent.start()
    status = Status(agent)
    if mode == "stream":
        summary = stream(agent, status, int(argv[1]), float(argv[2]))
    elif mode == "work":
        summary = work(agent, status, int(argv[1]))
    elif mode == "idle":
        time.sleep(float(argv[1]))
        summary = {}
    else:
        sys.exit(f"unknown mode {mode!r}; use stream, work or idle")
    snapshot = status.snapshot()
    stop_timeout = os.environ.get("HOST_STOP_TIMEOUT")
    stop_seconds = None
    began = time.monotonic()
    agent.stop(float(stop_timeout) if stop_timeout else 5)
    stop_seconds = time.monotonic() - began
    status.close()
    print(
        json.dumps(
            {
                **snapshot,
                **summary,
                "stop_seconds": stop_seconds,
                "acked_at_end": agent.stats["acked"],
                "max_rss": status.max_rss,
                "max_pending": status.max_pending,
                "wall_clock": time.time(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
