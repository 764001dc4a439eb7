"""Agent benchmarks: emit cost, the link thread's CPU per event at a worker's pace, sustained
events/s into a real brain, agent memory.

Prints figures; asserts nothing about time. Run: python bench/bench_agent.py [--quick]
Needs the brain installed (`pip install -e packages/z4j-brain`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.stats import thread_counters

MEMORY_PROBE = r"""
import json, os, sys, time, gc
from z4j_core.testing.stats import rss_bytes as rss
with_agent = sys.argv[1] == "1"
count = int(sys.argv[2])
if sys.argv[3] == "stdlib":
    # The standard library a worker host has loaded anyway (Celery, RQ... import all of these).
    import logging, threading, asyncio, json, typing, inspect, decimal, uuid, datetime, re
    import ssl, socket, http.client, email.parser, importlib.metadata, concurrent.futures
result = {"baseline": rss()}
if with_agent:
    from z4j_core.agent import Agent
    from z4j_core.plugins import PluginRegistry, new_plugin_manager
    agent = Agent(plugins=PluginRegistry(new_plugin_manager()))
    agent.start()
    agent.wait_connected(20)
    time.sleep(1)
    gc.collect()
    result["idle"] = rss()
    for i in range(count):
        agent.emit("succeeded", f"task-{i:08d}", "app.tasks.work", engine="bench", runtime=0.01,
                   args=(i, "payload"), kwargs={"user": "u", "password": "p"})
    deadline = time.monotonic() + 120
    while agent.stats["acked"] < count and time.monotonic() < deadline:
        time.sleep(0.05)
    gc.collect()
    result["after"] = rss()
    result["acked"] = agent.stats["acked"]
    result["heavy_modules"] = [m for m in ("croniter", "astral") if m in sys.modules]
    agent.stop(5)
else:
    time.sleep(1)
    result["idle"] = rss()
    result["after"] = rss()
print(json.dumps(result))
"""


def connected_agent(brain: BrainProcess, token: str, spool: str, **options: Any) -> Any:
    """An agent of this process, started and connected to `brain`."""
    from z4j_core.agent import Agent
    from z4j_core.plugins import PluginRegistry, new_plugin_manager

    agent = Agent(
        brain_url=brain.url,
        token=token,
        spool_dir=spool,
        plugins=PluginRegistry(new_plugin_manager()),
        **options,
    )
    agent.start()
    assert agent.wait_connected(20), "agent did not connect"
    return agent


def emit_cost(brain: BrainProcess, token: str, spool: str, calls: int) -> dict[str, float]:
    agent = connected_agent(brain, token, spool)
    emit = agent.emit
    clock = time.perf_counter_ns
    samples = []
    args = (42, "order-1234", {"amount": 10.5})
    kwargs = {"customer": "c-1", "api_key": "k-secret", "note": "x" * 80}
    for i in range(calls):
        task_id = f"3f1c2a7e-{i:08d}"
        began = clock()
        emit(
            "succeeded",
            task_id,
            "shop.tasks.charge_card",
            engine="bench",
            args=args,
            kwargs=kwargs,
            runtime=0.0123,
            queue="default",
        )
        samples.append(clock() - began)
        if i % 5000 == 4999:
            time.sleep(0.01)  # let the link keep up, as a real worker's pace would
    deadline = time.monotonic() + 120
    while agent.stats["acked"] < calls and time.monotonic() < deadline:
        time.sleep(0.05)
    agent.stop(5)
    samples.sort()
    return {
        "median_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[int(len(samples) * 0.99)] / 1000,
        "max_us": samples[-1] / 1000,
        "acked": agent.stats["acked"],
    }


def throughput(brain: BrainProcess, token: str, spool: str, count: int) -> dict[str, float]:
    agent = connected_agent(brain, token, spool, max_memory_events=max(20_000, count))
    began = time.perf_counter()
    for i in range(count):
        agent.emit(
            "succeeded",
            f"t-{i:09d}",
            "shop.tasks.charge_card",
            engine="bench",
            args=(i,),
            runtime=0.01,
            queue="default",
        )
    emitted = time.perf_counter() - began
    deadline = time.monotonic() + 300
    while agent.stats["acked"] < count and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = time.perf_counter() - began
    acked = agent.stats["acked"]
    agent.stop(5)
    return {
        "events": acked,
        "seconds": elapsed,
        "events_per_s": acked / elapsed,
        "emit_seconds": emitted,
    }


def link_cost(
    brain: BrainProcess, token: str, spool: str, rate: int, seconds: float
) -> dict[str, float]:
    """The link thread's CPU per event and its wake-ups per second while the host emits at a
    worker's pace (`rate` events/s, ten at a time), from /proc (Linux): the agent's share of a
    worker's CPU that `emit` itself does not show."""
    agent = connected_agent(brain, token, spool)
    time.sleep(1.0)
    link = next(t for t in threading.enumerate() if t.name == "z4j-agent-link")
    assert link.native_id is not None
    before = thread_counters(link.native_id)
    sent = 0
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        for _ in range(10):
            agent.emit("succeeded", f"t-{sent:09d}", "shop.tasks.charge_card", engine="bench",
                       args=(sent,), runtime=0.01, queue="default")  # fmt: skip
            sent += 1
        time.sleep(max(0.0, began + sent / rate - time.monotonic()))
    deadline = time.monotonic() + 60
    while agent.stats["acked"] < sent and time.monotonic() < deadline:
        time.sleep(0.01)
    elapsed = time.monotonic() - began
    _, cpu, wakeups = thread_counters(link.native_id)
    cpu, wakeups = cpu - before[1], wakeups - before[2]
    agent.stop(5)
    return {"cpu_us_per_event": cpu / sent * 1e6, "wakeups_per_s": wakeups / elapsed}


def memory(brain: BrainProcess, token: str, spool: str, count: int) -> dict[str, Any]:
    env = {**os.environ, "Z4J_BRAIN_URL": brain.url, "Z4J_TOKEN": token, "Z4J_SPOOL_DIR": spool}
    figures: dict[str, Any] = {}
    mib = 1024 * 1024
    for host in ("bare", "stdlib"):
        runs = {}
        for with_agent in ("0", "1"):
            out = subprocess.run(
                [sys.executable, "-c", MEMORY_PROBE, with_agent, str(count), host],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=300,
            )
            runs[with_agent] = json.loads(out.stdout)
        base, agent = runs["0"], runs["1"]
        figures[host] = {
            "idle_delta_mib": (agent["idle"] - base["idle"]) / mib,
            "after_delta_mib": (agent["after"] - base["after"]) / mib,
            "acked": agent["acked"],
            "heavy_modules_loaded": agent["heavy_modules"],
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="reduced counts")
    args = parser.parse_args()
    calls = 20_000 if args.quick else 200_000
    events = 50_000 if args.quick else 500_000
    mem_events = 20_000 if args.quick else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        brain = BrainProcess(Path(tmp) / "brain")
        token = brain.create_token("bench")
        with brain:
            spool = str(Path(tmp) / "spool")
            cost = emit_cost(brain, token, spool, calls)
            print(
                f"emit (link connected, {calls:,} calls, real brain): median "
                f"{cost['median_us']:.2f} us, p99 {cost['p99_us']:.2f} us, "
                f"max {cost['max_us']:.0f} us  [targets: median <= 5, p99 <= 50]"
            )
            pace = 3_000
            links = [link_cost(brain, token, spool, pace, 5 if args.quick else 20)
                     for _ in range(3)]  # fmt: skip
            per_event = sorted(link["cpu_us_per_event"] for link in links)
            print(
                f"link thread at {pace:,} events/s (a worker's pace), 3 runs: CPU median "
                f"{per_event[1]:.2f} us per event (min {per_event[0]:.2f}, max "
                f"{per_event[2]:.2f}), {statistics.median(w['wakeups_per_s'] for w in links):.1f} "
                "wake-ups/s"
            )
            rates = [throughput(brain, token, spool, events) for _ in range(3)]
            per_s = [r["events_per_s"] for r in rates]
            print(
                f"sustained, 1 agent -> 1 brain on SQLite, stored + acked: median "
                f"{statistics.median(per_s):,.0f} events/s over 3 runs of {events:,} "
                f"(min {min(per_s):,.0f}, max {max(per_s):,.0f})  [target: >= 50,000]"
            )
            labels = {"bare": "a bare interpreter", "stdlib": "a host with the stdlib loaded"}
            for host, mem in memory(brain, token, spool, mem_events).items():
                print(
                    f"agent resident memory vs {labels[host]}: idle "
                    f"+{mem['idle_delta_mib']:.1f} MiB, after {mem_events:,} events "
                    f"+{mem['after_delta_mib']:.1f} MiB (acked {mem['acked']:,}; croniter/astral "
                    f"loaded: {mem['heavy_modules_loaded'] or 'no'})  [target: <= 25 MiB]"
                )


if __name__ == "__main__":
    main()
