"""What a running agent costs a process that forks a child per job (RQ's forking worker).

A fork makes every page of the parent copy-on-write, in the parent as in the child: until the
child exits, each page either writes is copied, and afterwards each page the parent writes
first takes a fault. So in such a worker the agent costs the pages it writes per job, whoever
writes them: the host's thread emitting, the link thread waking up, and the fork handler in each
child. This bench counts them without an engine: a loop forks a child per "job" (the child
builds a small list, sleeps 10 ms and leaves with `os._exit`, as a work horse does), with no
agent, and with an agent (`after_fork="disable"`, as RQ's worker sets it) connected to a real
brain and emitting `started` before each fork and `succeeded` after it.

Per job it prints: each parent thread's minor page faults, CPU and voluntary context switches
(wake-ups), from /proc; the children's faults when they start (the fork and the fork handlers)
and in all; the CPU of the parent and of its children. Figures, never asserted (Linux only).

    python bench/bench_fork.py [--jobs 1000] [--rounds 3] [--json out.json]

Each run is a process of its own. Needs z4j-core and z4j-brain importable.
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

from benchjson import Recorder, add_option

from z4j_core.agent import Agent
from z4j_core.plugins import PluginRegistry, new_plugin_manager
from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.stats import thread_counters


def run(agent: Agent | None, jobs: int) -> dict[str, Any]:
    """Fork `jobs` children, one at a time; the figures per job."""
    read_end, write_end = os.pipe()
    threads = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    before = {tid: thread_counters(tid) for tid in threads}
    times_before = os.times()
    child_faults: list[int] = []
    started_faults: list[int] = []
    for i in range(jobs):
        if agent is not None:
            agent.emit("started", f"t-{i:09d}", "shop.tasks.charge", engine="bench",
                       args=(i,), queue="default", worker="w1")  # fmt: skip
        pid = os.fork()
        if pid == 0:
            os.write(write_end, thread_counters()[0].to_bytes(4, "little"))
            _ = [str(n) for n in range(2000)]
            time.sleep(0.01)
            os._exit(0)
        _, _, usage = os.wait4(pid, 0)
        child_faults.append(usage.ru_minflt)
        started_faults.append(int.from_bytes(os.read(read_end, 4), "little"))
        if agent is not None:
            agent.emit("succeeded", f"t-{i:09d}", "shop.tasks.charge", engine="bench",
                       runtime=0.01, result="None", queue="default", worker="w1")  # fmt: skip
    times_after = os.times()
    os.close(read_end)
    os.close(write_end)
    parent_cpu = sum(times_after[:2]) - sum(times_before[:2])
    children_cpu = sum(times_after[2:4]) - sum(times_before[2:4])
    figures: dict[str, Any] = {
        "parent_cpu_us": parent_cpu / jobs * 1e6,
        "children_cpu_us": children_cpu / jobs * 1e6,
        "child_faults_at_start": statistics.median(started_faults),
        "child_faults": statistics.median(child_faults),
    }
    for tid, name in threads.items():
        try:
            faults, cpu, switches = thread_counters(tid)
        except OSError:  # the thread ended
            continue
        key = "main" if name == "MainThread" else name
        figures[f"{key}_faults"] = (faults - before[tid][0]) / jobs
        figures[f"{key}_cpu_us"] = (cpu - before[tid][1]) / jobs * 1e6
        figures[f"{key}_wakeups"] = (switches - before[tid][2]) / jobs
    return figures


def one_process(variant: str, jobs: int, url: str, token: str, spool: str) -> None:
    """One run in a process of its own (a stopped agent cannot start again, and a "none" run
    must not have an agent's thread beside it); prints its figures as JSON."""
    agent = None
    if variant == "agent":
        agent = Agent(
            brain_url=url,
            token=token,
            spool_dir=spool,
            plugins=PluginRegistry(new_plugin_manager()),
            after_fork="disable",
        )
        agent.start()
        if not agent.wait_connected(30):
            raise SystemExit("the agent did not connect to the brain")
        time.sleep(1.0)
    figures = run(agent, jobs)
    if agent is not None:
        agent.stop(5)
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant")
    parser.add_argument("--one", nargs=4, metavar=("VARIANT", "URL", "TOKEN", "SPOOL"),
                        help=argparse.SUPPRESS)  # fmt: skip
    add_option(parser)
    options = parser.parse_args()
    if not sys.platform.startswith("linux"):
        raise SystemExit("bench_fork reads /proc: Linux only")
    if options.one:
        one_process(options.one[0], options.jobs, *options.one[1:])
        return
    recorder = Recorder("fork", options.json)
    results: dict[str, list[dict[str, Any]]] = {"none": [], "agent": []}
    with tempfile.TemporaryDirectory(prefix="z4j-bench-fork-") as folder:
        work = Path(folder)
        brain = BrainProcess(work / "brain")
        token = brain.create_token("bench")
        with brain:
            for round_index in range(options.rounds):
                order = ("none", "agent") if round_index % 2 == 0 else ("agent", "none")
                for variant in order:
                    command = [sys.executable, __file__, "--jobs", str(options.jobs),
                               "--one", variant, brain.url, token, str(work / "spool")]  # fmt: skip
                    output = subprocess.run(command, check=True, capture_output=True, text=True)
                    figures = json.loads(output.stdout.strip().splitlines()[-1])
                    results[variant].append(figures)
                    shown = ", ".join(f"{k} {v:,.1f}" for k, v in sorted(figures.items()))
                    load = os.getloadavg()[0]
                    print(f"round {round_index + 1} {variant:5}: {shown} (load {load:.2f})")
    print(f"\nper job, medians of {options.rounds} rounds of {options.jobs:,} forks:")
    for key in sorted(set(results["none"][0]) | set(results["agent"][0])):
        row = []
        for variant in ("none", "agent"):
            values = [r[key] for r in results[variant] if key in r]
            if values:
                row.append(f"{variant} {statistics.median(values):10,.1f}")
                recorder.add(f"fork_{key}", "per job", values, variant=variant)
        print(f"  {key:28} {'   '.join(row)}")
    recorder.write()


if __name__ == "__main__":
    main()
