"""Huey benchmark: 10,000 no-op tasks through a RedisHuey consumer, with and without the agent.

The agent variant instruments the app and connects to a real brain process (every task's
`started` and `succeeded` events are stored there). Runs alternate between the two variants;
medians are reported with their ratio (target: with the agent at least 0.97 of without).
Prints figures; asserts nothing.
Run: python bench/bench_huey.py [--tasks N] [--rounds R] [--quick]
Needs Redis on 127.0.0.1:6379 and core, brain, z4j-huey, huey and redis installed.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchjson import Recorder, add_option

from z4j_core.testing import services
from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.brainstore import BrainStore
from z4j_core.testing.engines import ENGINES, WorkerRun

HERE = Path(__file__).resolve().parent


def one_run(
    with_agent: bool, tasks: int, redis_url: str, *, brain: BrainProcess, token: str, work: Path
) -> tuple[float, float]:
    """Tasks per second from the first task to the last, and the consumer's CPU µs per task."""
    os.environ["BENCH_REDIS_URL"] = redis_url
    import bench_huey_app  # the producer side: never instrumented

    bench_huey_app.huey.flush()
    times = work / f"times-{time.monotonic_ns()}.txt"
    pipeline_size = 1000
    for start in range(0, tasks, pipeline_size):
        for index in range(start, min(start + pipeline_size, tasks)):
            bench_huey_app.noop(index, tasks - 1)
    events_before = brain.api("GET", "/api/v1/events?after=0&limit=1")  # warms the API only
    del events_before
    env = {
        **os.environ,
        "BENCH_TIMES": str(times),
        "BENCH_WITH_AGENT": "1" if with_agent else "0",
        "Z4J_BRAIN_URL": brain.url,
        "Z4J_TOKEN": token,
        "Z4J_SPOOL_DIR": str(work / "spool"),
        "PYTHONPATH": str(HERE),
    }
    consumer = subprocess.Popen(
        ENGINES["huey"].worker(WorkerRun(sys.executable, "bench_huey_app.huey", concurrency=1)),
        cwd=HERE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = times.read_text().splitlines() if times.exists() else []
        if len(lines) == 2:
            break
        time.sleep(0.05)
    consumer.send_signal(signal.SIGINT)
    _, _, usage = os.wait4(consumer.pid, 0)
    consumer.returncode = 0
    stamps = dict(line.split() for line in lines)
    elapsed = float(stamps[str(tasks - 1)]) - float(stamps["0"])
    cpu = usage.ru_utime + usage.ru_stime  # the consumer's whole life, start-up included
    return (tasks - 1) / elapsed, cpu / tasks * 1e6


def stored_events(brain: BrainProcess) -> int:
    return BrainStore(brain.database).count_events()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each variant")
    parser.add_argument("--quick", action="store_true", help="2,000 tasks, 3 rounds")
    add_option(parser)
    options = parser.parse_args()
    if options.quick:
        options.tasks, options.rounds = 2000, 3
    recorder = Recorder("huey", options.json)
    database = services.claim_redis_database()
    redis_url = f"redis://127.0.0.1:6379/{database}"
    with tempfile.TemporaryDirectory(prefix="z4j-bench-huey-") as folder:
        work = Path(folder)
        brain = BrainProcess(work / "brain")
        token = brain.create_token("bench")
        brain.start()
        results: dict[bool, list[float]] = {False: [], True: []}
        cpus: dict[bool, list[float]] = {False: [], True: []}
        try:
            for round_index in range(options.rounds):
                for with_agent in (False, True) if round_index % 2 == 0 else (True, False):
                    before = stored_events(brain)
                    rate, cpu = one_run(
                        with_agent, options.tasks, redis_url, brain=brain, token=token, work=work
                    )
                    time.sleep(0.5)
                    stored = stored_events(brain) - before
                    results[with_agent].append(rate)
                    cpus[with_agent].append(cpu)
                    label = "with agent   " if with_agent else "without agent"
                    print(
                        f"round {round_index + 1} {label}: {rate:8.0f} tasks/s, "
                        f"consumer CPU {cpu:6.1f} us/task"
                        + (f"  ({stored} events stored)" if with_agent else ""),
                        flush=True,
                    )
        finally:
            brain.stop()
            services.release_redis_database(database)
    without = statistics.median(results[False])
    with_ = statistics.median(results[True])
    print(f"median without agent: {without:.0f} tasks/s")
    print(f"median with agent:    {with_:.0f} tasks/s")
    print(f"ratio: {with_ / without:.3f} (target >= 0.97)")
    cpu_without, cpu_with = statistics.median(cpus[False]), statistics.median(cpus[True])
    print(f"consumer CPU per task: {cpu_without:.1f} us without, {cpu_with:.1f} us with the agent")
    print(f"machine: {os.cpu_count()} CPUs shared by the consumer, Redis and the brain")
    for with_agent in (False, True):
        config = {"engine": "huey", "variant": "ours" if with_agent else "none",
                  "tasks": options.tasks}  # fmt: skip
        recorder.add("throughput", "tasks/s", results[with_agent], **config)
        recorder.add("worker_cpu", "us/task", cpus[with_agent], **config)
    recorder.write()


if __name__ == "__main__":
    main()
