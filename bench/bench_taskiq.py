"""taskiq benchmark: 10,000 no-op tasks through one `taskiq worker` process, without and with
the agent.

Each run pre-fills a taskiq-redis list queue (ListQueueBroker) with N kicks, starts a fresh
`taskiq worker --workers 1` on it, and times the worker from its first task to its Nth (the
task counts in the worker and stamps those two instants); the worker is then stopped. With the
agent, the broker carries `Z4JMiddleware` and the agent connects to a real brain process, which
stores every event (two per task: started and succeeded). Runs alternate, in rotated order each
round; medians are reported with the ratio (target: with the agent at least 0.97 of without)
and the worker's CPU per task. Prints figures; asserts nothing.

Run: python bench/bench_taskiq.py [--tasks N] [--rounds R] [--quick] [--flame DIR]
--flame DIR: one run of each variant with py-spy attached to the worker (bench/flame.py),
writing DIR/taskiq-none.svg and DIR/taskiq-agent.svg; its figures are not comparable.
Needs Redis on 127.0.0.1:6379 and core, brain, z4j-taskiq, taskiq and taskiq-redis installed
(the taskiq session's environment). This file is also the worker's tasks module.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUEUE = "z4j-bench-taskiq"
ASYNC_TASKS = 100


def make_broker(redis_url: str, with_agent: bool) -> Any:
    from taskiq_redis import ListQueueBroker

    # No socket timeout: redis-py 8 defaults to 5 s, which ends a BRPOP on an idle queue.
    broker = ListQueueBroker(redis_url, queue_name=QUEUE, socket_timeout=None)
    if with_agent:
        import z4j_taskiq

        broker.add_middlewares(z4j_taskiq.Z4JMiddleware(app_name="bench-taskiq"))
    return broker


# -- the worker's tasks module -----------------------------------------------------------------

if os.environ.get("BENCH_TASKIQ_REDIS"):
    broker = make_broker(
        os.environ["BENCH_TASKIQ_REDIS"], os.environ.get("BENCH_TASKIQ_AGENT") == "1"
    )
    _expected = int(os.environ["BENCH_TASKIQ_TASKS"])
    _stamps = Path(os.environ["BENCH_TASKIQ_STAMPS"])
    _done = 0
    _first = 0.0

    @broker.task(task_name="bench.noop")
    async def noop(index: int) -> None:
        global _done, _first
        _done += 1
        if _done == 1:
            _first = time.perf_counter()
        elif _done == _expected:
            usage = os.times()
            cpu = usage.user + usage.system
            _stamps.write_text(f"{time.perf_counter() - _first} {cpu}\n")


# -- the driver ----------------------------------------------------------------------------------


async def fill(redis_url: str, tasks: int) -> None:
    producer = make_broker(redis_url, with_agent=False)

    @producer.task(task_name="bench.noop")
    async def noop(index: int) -> None:
        return None

    await producer.startup()
    try:
        for start in range(0, tasks, 500):
            await asyncio.gather(*(noop.kiq(i) for i in range(start, min(tasks, start + 500))))
    finally:
        await producer.shutdown()
        await producer.connection_pool.disconnect()


def one_run(
    with_agent: bool,
    tasks: int,
    redis_url: str,
    *,
    brain: Any,
    token: str,
    work: Path,
    flame: Path | None = None,
) -> tuple[float, float]:
    """(tasks per second, worker CPU microseconds per task, start-up included)."""
    asyncio.run(fill(redis_url, tasks))
    stamps = work / f"stamps-{time.monotonic_ns()}"
    env = {
        **os.environ,
        "BENCH_TASKIQ_REDIS": redis_url,
        "BENCH_TASKIQ_AGENT": "1" if with_agent else "0",
        "BENCH_TASKIQ_TASKS": str(tasks),
        "BENCH_TASKIQ_STAMPS": str(stamps),
        "Z4J_BRAIN_URL": brain.url,
        "Z4J_TOKEN": token,
        "Z4J_SPOOL_DIR": str(work / "spool"),
        "PYTHONPATH": str(HERE),
    }
    from z4j_core.testing.engines import ENGINES, WorkerRun

    run = WorkerRun(sys.executable, "bench_taskiq:broker", processes=1, concurrency=ASYNC_TASKS,
                    options=("--log-level", "WARNING"))  # fmt: skip
    worker = subprocess.Popen(
        ENGINES["taskiq"].worker(run),
        cwd=HERE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    recorders = None
    if flame is not None:
        import flame as flames

        recorders = flames.attach(
            worker.pid, flame / f"taskiq-{'agent' if with_agent else 'none'}.svg"
        )
    try:
        deadline = time.monotonic() + 600
        while not stamps.exists() or not stamps.read_text().endswith("\n"):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker stopped or stalled (exit {worker.returncode})")
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        if recorders is not None:
            flames.finish(recorders)
    elapsed, cpu = (float(v) for v in stamps.read_text().split())
    return (tasks - 1) / elapsed, cpu / tasks * 1e6


def stored_events(brain: Any) -> int:
    from z4j_core.testing.brainstore import BrainStore

    return BrainStore(brain.database).count_events()


def main() -> None:
    from benchjson import Recorder, add_option
    from redis import Redis

    from z4j_core.testing import services
    from z4j_core.testing.brainproc import BrainProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each variant")
    parser.add_argument("--quick", action="store_true", help="1,000 tasks, 3 rounds")
    parser.add_argument("--flame", type=Path, metavar="DIR", help="py-spy flame graphs into DIR")
    add_option(parser)
    options = parser.parse_args()
    recorder = Recorder("taskiq", options.json)
    if options.quick:
        options.tasks, options.rounds = 1000, 3
    if options.flame:
        options.rounds = 1
    database = services.claim_redis_database()
    redis_url = f"redis://127.0.0.1:6379/{database}"
    with tempfile.TemporaryDirectory(prefix="z4j-bench-taskiq-") as folder:
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
                        with_agent, options.tasks, redis_url, brain=brain, token=token,
                        work=work, flame=options.flame,
                    )  # fmt: skip
                    time.sleep(0.5)
                    stored = stored_events(brain) - before
                    results[with_agent].append(rate)
                    cpus[with_agent].append(cpu)
                    label = "with agent   " if with_agent else "without agent"
                    print(
                        f"round {round_index + 1} {label}: {rate:8.0f} tasks/s, "
                        f"worker CPU {cpu:7.1f} us/task"
                        + (f"  ({stored} events stored)" if with_agent else ""),
                        flush=True,
                    )
        finally:
            brain.stop()
            client = Redis.from_url(redis_url)
            client.flushdb()
            client.close()
            services.release_redis_database(database)
    without = statistics.median(results[False])
    with_ = statistics.median(results[True])
    print(f"tasks per run: {options.tasks}, one worker process, {ASYNC_TASKS} async tasks at once")
    print(f"median without agent: {without:.0f} tasks/s")
    print(f"median with agent:    {with_:.0f} tasks/s")
    print(f"ratio: {with_ / without:.3f} (target >= 0.97)")
    cpu_without, cpu_with = statistics.median(cpus[False]), statistics.median(cpus[True])
    print(f"worker CPU per task: {cpu_without:.1f} us without, {cpu_with:.1f} us with the agent")
    print(f"machine: {os.cpu_count()} CPUs shared by the worker, Redis and the brain")
    for with_agent in (False, True):
        config = {"engine": "taskiq", "variant": "ours" if with_agent else "none",
                  "tasks": options.tasks}  # fmt: skip
        recorder.add("throughput", "tasks/s", results[with_agent], **config)
        recorder.add("worker_cpu", "us/task", cpus[with_agent], **config)
    recorder.write()


if __name__ == "__main__":
    main()
