"""RQ benchmark: 10,000 no-op jobs through one forking `rq worker`, with and without the agent.

Without: `rq worker -w rq.worker.Worker`; with: `rq worker -w z4j_rq.Worker`, its agent
connected to a real brain process (every job's `started` and `succeeded` events are stored
there). The jobs are enqueued first by an uninstrumented producer; the worker runs in burst mode
and the rate is measured from the first job to the last. Runs alternate between the variants;
medians are reported with their ratio (target: with the agent at least 0.97 of without).
Prints figures; asserts nothing. Run: python bench/bench_rq.py [--jobs N] [--rounds R] [--quick]
Needs Redis on 127.0.0.1:6379 and core, brain, z4j-rq, rq and redis installed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchjson import Recorder, add_option
from redis import Redis
from rq import Queue

from z4j_core.testing import services
from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.brainstore import BrainStore
from z4j_core.testing.engines import ENGINES, WorkerRun

HERE = Path(__file__).resolve().parent


def fill(queue: Queue, jobs: int) -> None:
    """Enqueue `jobs` no-op jobs in pipelined batches (the producer is not instrumented)."""
    batch = 1000
    for start in range(0, jobs, batch):
        queue.enqueue_many(
            [
                Queue.prepare_data("bench_rq_app.noop", (index, jobs - 1), result_ttl=60)
                for index in range(start, min(start + batch, jobs))
            ]
        )


def one_run(
    with_agent: bool, jobs: int, redis_url: str, *, brain: BrainProcess, token: str, work: Path
) -> tuple[float, float, float]:
    """Jobs per second from the first job to the last, and the worker's CPU µs per job: for
    the whole run (start-up and shutdown included) and between the first job and the last."""
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    fill(Queue("bench", connection=connection), jobs)
    times = work / f"times-{time.monotonic_ns()}.txt"
    env = {
        **os.environ,
        "BENCH_TIMES": str(times),
        "Z4J_BRAIN_URL": brain.url,
        "Z4J_TOKEN": token,
        "Z4J_APP": "bench-rq",
        "Z4J_SPOOL_DIR": str(work / "spool"),
        "PYTHONPATH": str(HERE),
    }
    run = WorkerRun(
        sys.executable,
        "",
        queues=("bench",),
        instrumented=with_agent,
        options=(
            "-u",
            redis_url,
            "--burst",
            "--logging_level",
            "WARNING",
            "--disable-job-desc-logging",
        ),
    )
    worker = subprocess.Popen(
        ENGINES["rq"].worker(run),
        cwd=HERE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(worker.pid, 0)
    worker.returncode = os.waitstatus_to_exitcode(status)
    stamps = {index: (float(at), float(cpu)) for index, at, cpu in map(str.split, lines(times))}
    (began, cpu_first), (ended, cpu_last) = stamps["0"], stamps[str(jobs - 1)]
    cpu = usage.ru_utime + usage.ru_stime  # the worker and its horses, start-up included
    # Between the first and the last job: the worker and the horses it reaped (no start-up,
    # no shutdown; /proc's clock ticks, so only meaningful over hundreds of jobs).
    steady = (cpu_last - cpu_first) / (jobs - 1) * 1e6 if cpu_first >= 0 else float("nan")
    return (jobs - 1) / (ended - began), cpu / jobs * 1e6, steady


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def stored_events(brain: BrainProcess) -> int:
    return BrainStore(brain.database).count_events()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each variant")
    parser.add_argument("--quick", action="store_true", help="1,000 jobs, 3 rounds")
    add_option(parser)
    options = parser.parse_args()
    recorder = Recorder("rq", options.json)
    if options.quick:
        options.jobs, options.rounds = 1000, 3
    database = services.claim_redis_database()
    redis_url = f"redis://127.0.0.1:6379/{database}"
    with tempfile.TemporaryDirectory(prefix="z4j-bench-rq-") as folder:
        work = Path(folder)
        brain = BrainProcess(work / "brain")
        token = brain.create_token("bench")
        brain.start()
        results: dict[bool, list[float]] = {False: [], True: []}
        cpus: dict[bool, list[float]] = {False: [], True: []}
        steadies: dict[bool, list[float]] = {False: [], True: []}
        try:
            for round_index in range(options.rounds):
                for with_agent in (False, True) if round_index % 2 == 0 else (True, False):
                    before = stored_events(brain)
                    rate, cpu, steady = one_run(
                        with_agent, options.jobs, redis_url, brain=brain, token=token, work=work
                    )
                    time.sleep(0.5)
                    stored = stored_events(brain) - before
                    results[with_agent].append(rate)
                    cpus[with_agent].append(cpu)
                    steadies[with_agent].append(steady)
                    label = "with agent   " if with_agent else "without agent"
                    print(
                        f"round {round_index + 1} {label}: {rate:8.0f} jobs/s, "
                        f"worker CPU {cpu:7.1f} us/job ({steady:7.1f} first to last job)"
                        f", load {os.getloadavg()[0]:.1f}"
                        + (f"  ({stored} events stored)" if with_agent else ""),
                        flush=True,
                    )
        finally:
            brain.stop()
            Redis.from_url(redis_url).flushdb()
            services.release_redis_database(database)
    without = statistics.median(results[False])
    with_ = statistics.median(results[True])
    print(f"jobs per run: {options.jobs}, one forking worker (a work horse per job)")
    print(f"median without agent: {without:.0f} jobs/s")
    print(f"median with agent:    {with_:.0f} jobs/s")
    print(f"ratio: {with_ / without:.3f} (target >= 0.97)")
    cpu_without, cpu_with = statistics.median(cpus[False]), statistics.median(cpus[True])
    print(f"worker CPU per job: {cpu_without:.1f} us without, {cpu_with:.1f} us with the agent")
    steady_without = statistics.median(steadies[False])
    steady_with = statistics.median(steadies[True])
    print(
        f"worker CPU per job, first to last job: {steady_without:.1f} us without, "
        f"{steady_with:.1f} us with the agent (+{steady_with - steady_without:.1f} us)"
    )
    print(f"machine: {os.cpu_count()} CPUs shared by the worker, Redis and the brain")
    for with_agent in (False, True):
        config = {"engine": "rq", "variant": "ours" if with_agent else "none",
                  "jobs": options.jobs}  # fmt: skip
        recorder.add("throughput", "tasks/s", results[with_agent], **config)
        recorder.add("worker_cpu", "us/task", cpus[with_agent], **config)
        recorder.add("worker_cpu_steady", "us/task", steadies[with_agent], **config)
    recorder.write()


if __name__ == "__main__":
    main()
