"""Celery benchmark: 10,000 no-op tasks through a prefork worker (concurrency 2, Redis broker and
result backend), with no agent, with ours, and with the existing product's agent.

- none: the worker with nothing attached.
- ours: `z4j_celery.instrument(app)`, connected to a real brain process; every task's
  received, started and succeeded events are stored there (the pool children's through the
  relay). No `-E`: capture does not use Celery's task events.
- theirs: z4j-celery 1.13 with z4j-bare, from the package index, in its own virtualenv
  (`--theirs-python`), worker started with `-E` (which it needs), connected to a z4j 1.13 server
  the caller runs (`--theirs-env`: a file of BENCH_THEIRS_URL/TOKEN/PROJECT/HMAC/DB lines);
  `bench/bench_celery_theirs.sh` sets all of that up and writes the file.

The tasks are queued before the worker starts; throughput is measured from the first task
running to every result being stored. Variants alternate round by round; medians are reported
with ratios to `none` (target for ours: at least 0.97), with the worker main process's CPU per
task (over the measured span) and its resident memory and its pool's at the end. Prints figures;
asserts nothing. Run: python bench/bench_celery.py [--quick] [--tasks N] [--rounds R]
Needs Redis on 127.0.0.1:6379, and core, brain, z4j-celery and celery[redis] installed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchjson import Recorder, add_option

from z4j_core.testing import services
from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.brainstore import BrainStore
from z4j_core.testing.engines import ENGINES, WorkerRun
from z4j_core.testing.stats import cpu_seconds, rss_mib

HERE = Path(__file__).resolve().parent
EVENTS_PER_TASK = 3  # received, started, succeeded


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def stored_events(database: Path | str) -> int:
    return BrainStore(str(database)).count_events()


def one_run(
    variant: str,
    tasks: int,
    redis_url: str,
    *,
    work: Path,
    env_extra: dict[str, str],
    python: str,
    events_db: Path | str | None,
    wait_for_events: bool,
) -> dict[str, float]:
    import redis
    from celery import Celery

    queue = f"z4j-bench-{services.run_id()}"
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    app = Celery("bench-producer", broker=redis_url, backend=redis_url)
    app.conf.task_default_queue = queue
    ids = [str(app.send_task("bench.noop", args=[i], ignore_result=False).id) for i in range(tasks)]
    app.close()
    result_keys = [f"celery-task-meta-{task_id}" for task_id in ids]
    times = work / f"times-{time.monotonic_ns()}.txt"
    events_before = stored_events(events_db) if events_db is not None else 0
    env = {
        **os.environ,
        **env_extra,
        "BENCH_REDIS_URL": redis_url,
        "BENCH_QUEUE": queue,
        "BENCH_TIMES": str(times),
        "BENCH_VARIANT": variant,
        "PYTHONPATH": str(HERE),
    }
    run = WorkerRun(python, "bench_celery_app", concurrency=2, queues=(queue,),
                    options=("--loglevel", "WARNING"))  # fmt: skip
    command = ENGINES["celery"].worker(run)
    if variant == "theirs":
        command.append("-E")
    log = open(work / f"worker-{variant}.log", "ab")  # noqa: SIM115 -- handed to the child
    worker = subprocess.Popen(
        command, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    try:
        deadline = time.monotonic() + 600
        while not (times.exists() and times.read_text().strip()):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {variant} worker did not run the first task")
            time.sleep(0.005)
        first = float(times.read_text().split()[0])
        cpu_start = cpu_seconds(worker.pid)
        while client.llen(queue):
            time.sleep(0.02)
        while client.exists(*result_keys) < tasks:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {variant} worker did not finish")
            time.sleep(0.01)
        end = time.time()
        cpu = cpu_seconds(worker.pid) - cpu_start
        rss = rss_mib(worker.pid)
        pool_rss = sum(rss_mib(child) for child in children(worker.pid))
        figures = {
            "rate": tasks / (end - first),
            "cpu_us": cpu / tasks * 1e6,
            "rss": rss,
            "pool_rss": pool_rss,
        }
        if events_db is not None:
            expected = events_before + EVENTS_PER_TASK * tasks
            stored = stored_events(events_db)
            figures["stored_by_end"] = stored - events_before
            figures["store_rate"] = (stored - events_before) / (end - first)
            while wait_for_events and stored < expected and time.time() - end < 30:
                time.sleep(0.02)
                stored = stored_events(events_db)
            figures["stored"] = stored - events_before
            figures["lag"] = time.time() - end
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            print(f"the {variant} worker did not stop within 60 s of SIGTERM: killed", flush=True)
        with contextlib.suppress(ProcessLookupError):  # its pool children too
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        client.close()
    return figures


def read_env_file(path: str) -> dict[str, str]:
    pairs = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each variant")
    parser.add_argument("--quick", action="store_true", help="2,000 tasks, 2 rounds")
    parser.add_argument("--theirs-python", help="python of the existing product's virtualenv")
    parser.add_argument("--theirs-env", help="file with BENCH_THEIRS_URL/TOKEN/PROJECT/HMAC")
    add_option(parser)
    options = parser.parse_args()
    recorder = Recorder("celery", options.json)
    if options.quick:
        options.tasks, options.rounds = 2_000, 2
    variants = ["none", "ours"]
    if options.theirs_python and options.theirs_env:
        variants.append("theirs")
    database = services.claim_redis_database()
    redis_url = f"redis://127.0.0.1:6379/{database}"
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="z4j-bench-celery-") as folder:
        work = Path(folder)
        brain = BrainProcess(work / "brain")
        token = brain.create_token("bench")
        brain.start()
        ours_env = {
            "Z4J_BRAIN_URL": brain.url,
            "Z4J_TOKEN": token,
            "Z4J_SPOOL_DIR": str(work / "spool"),
        }
        theirs_env = read_env_file(options.theirs_env) if "theirs" in variants else {}
        try:
            for round_index in range(options.rounds):
                order = variants if round_index % 2 == 0 else variants[::-1]
                for variant in order:
                    figures = one_run(
                        variant,
                        options.tasks,
                        redis_url,
                        work=work,
                        env_extra=ours_env if variant == "ours" else theirs_env,
                        python=options.theirs_python if variant == "theirs" else sys.executable,
                        events_db={
                            "ours": brain.database,
                            "theirs": theirs_env.get("BENCH_THEIRS_DB"),
                        }.get(variant),
                        wait_for_events=variant == "ours",
                    )
                    results[variant].append(figures)
                    print(f"round {round_index + 1} {variant:6}: {describe(figures)}", flush=True)
        finally:
            brain.stop()
            services.release_redis_database(database)
    print()
    baseline = statistics.median(f["rate"] for f in results["none"])
    for variant in variants:
        runs = results[variant]
        rate = statistics.median(f["rate"] for f in runs)
        medians = {key: statistics.median(f[key] for f in runs) for key in runs[0]}
        print(
            f"median {variant:6}: {rate:7.0f} tasks/s  ratio {rate / baseline:.3f}  "
            f"main-process CPU {medians['cpu_us']:7.1f} us/task  "
            f"RSS main {medians['rss']:.0f} MiB, pool {medians['pool_rss']:.0f} MiB"
            + (
                f"  events stored by the last result {medians['stored_by_end']:.0f} "
                f"({medians['store_rate']:.0f}/s), all {medians['stored']:.0f} "
                f"{medians['lag']:.2f}s after it"
                if "stored" in medians
                else ""
            )
        )
    print(f"tasks per run: {options.tasks}; machine: {os.cpu_count()} CPUs shared by all")
    for variant in variants:
        config = {"engine": "celery", "variant": variant, "tasks": options.tasks}
        runs = results[variant]
        recorder.add("throughput", "tasks/s", [f["rate"] for f in runs], **config)
        recorder.add("worker_cpu", "us/task", [f["cpu_us"] for f in runs], **config)
        recorder.add("worker_rss", "MiB", [f["rss"] + f["pool_rss"] for f in runs], **config)
        if "stored" in runs[0]:  # of 3 events a task (received, started, succeeded)
            expected = EVENTS_PER_TASK * options.tasks
            recorder.add("events_stored_share", "%", [100 * f["stored"] / expected for f in runs],
                         **config)  # fmt: skip
    recorder.write()


def describe(figures: dict[str, Any]) -> str:
    text = (
        f"{figures['rate']:7.0f} tasks/s, main CPU {figures['cpu_us']:6.1f} us/task, "
        f"RSS {figures['rss']:.0f}+{figures['pool_rss']:.0f} MiB"
    )
    if "stored" in figures:
        text += (
            f", events stored {figures['stored_by_end']:.0f} by the last result "
            f"({figures['store_rate']:.0f}/s), {figures['stored']:.0f} {figures['lag']:.2f}s after"
        )
    return text


if __name__ == "__main__":
    main()
