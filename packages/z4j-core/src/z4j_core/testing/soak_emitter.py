"""One application process of the soak: a real `Agent` emitting task lifecycles at a steady rate.

Usage: python -m z4j_core.testing.soak_emitter NAME RATE START END
  (Z4J_* variables configure the agent)

From the wall-clock instant START to END it emits RATE events per second (received, started,
succeeded for each task, task ids unique to NAME), paced every few milliseconds as a worker
would. Every 25th event's emit instant is remembered until the agent's acknowledged count passes
it, which gives the emit-to-ack latency (read every 5 ms, so within 5 ms). Once a second it
writes a JSON line to stdout: {"t", "sent", "acked", "dropped", "ack_ms": [...]}; after END it
waits until everything is acknowledged (or a minute passes), stops the agent and writes a final
line {"final": true, "instance", "sent", "acked", "dropped"}.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque

from z4j_core.agent import Agent
from z4j_core.plugins import PluginRegistry, new_plugin_manager

KINDS = ("received", "started", "succeeded")
SAMPLE_EVERY = 25
ACK_POLL = 0.005
DRAIN_SECONDS = 60.0


def say(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class AckWatch:
    """Turns the agent's acknowledged count into emit-to-ack latencies of sampled events."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.pending: deque[tuple[int, float]] = deque()  # (event index, emit instant)
        self.latencies: list[float] = []  # milliseconds, since the last report
        self.acked = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _watch(self) -> None:
        while not self._stop.wait(ACK_POLL):
            acked = self.agent.stats["acked"]
            if acked == self.acked:
                continue
            self.acked = acked
            now = time.monotonic()
            while self.pending and self.pending[0][0] < acked:
                _, emitted = self.pending.popleft()
                self.latencies.append((now - emitted) * 1000)

    def take(self) -> list[float]:
        taken, self.latencies = self.latencies, []
        return taken


def main(name: str, rate: float, start: float, end: float) -> None:
    agent = Agent(plugins=PluginRegistry(new_plugin_manager()))
    agent.start()
    if not agent.wait_connected(60):
        sys.exit(f"{name}: the agent did not connect: {agent.stats['last_error']}")
    watch = AckWatch(agent)
    watch.start()
    emit = agent.emit
    sent = 0
    total = int((end - start) * rate)
    next_report = start + 1.0
    time.sleep(max(0.0, start - time.time()))
    while sent < total:
        now = time.time()
        if now >= next_report:
            say({
                "t": now, "sent": sent, "acked": watch.acked, "dropped": agent.dropped,
                "ack_ms": watch.take(),
            })  # fmt: skip
            next_report += 1.0
        due = min(total, int((now - start) * rate))
        while sent < due:
            task = sent // 3
            if sent % SAMPLE_EVERY == 0:
                watch.pending.append((sent, time.monotonic()))
            emit(
                KINDS[sent % 3], f"{name}-{task:09d}", "soak.tasks.work", engine="soak",
                queue="default", args=(task,), kwargs={"order": task, "password": "hunter2"},
                runtime=0.002 if sent % 3 == 2 else None,
            )  # fmt: skip
            sent += 1
        time.sleep(0.005)
    deadline = time.monotonic() + DRAIN_SECONDS
    while watch.acked < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    watch.stop()
    stats = agent.stats
    agent.stop(5)
    say({
        "final": True, "t": time.time(), "instance": stats["instance"], "sent": sent,
        "acked": stats["acked"], "dropped": stats["dropped"], "ack_ms": watch.take(),
    })  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
