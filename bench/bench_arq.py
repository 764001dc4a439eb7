"""arq benchmark: 10,000 no-op jobs through one arq worker, without and with the agent.

Variants, each a fresh worker process (burst mode) on the same pre-filled queue:
  none       no agent;
  thread     the agent as shipped: its link on its own thread with its own loop;
  loop       the alternative: the same agent's link run as a task on the worker's own loop
             (built here, from the agent's internals, only to measure it);
  roundtrip  the shipped agent plus a user `on_job_start` that reads the job back from Redis
             (GET arq:job:<id> and unpickle), what capture would cost if it fetched names and
             arguments itself instead of reading what the worker already decoded.
Every agent variant connects to a real brain process, which stores every event. Variants
alternate in rotated order each round; medians are reported, with the ratio to `none` (target:
`thread` at least 0.97) and the worker loop's lag (how late a 5 ms sleep wakes up, p99 and
max) while the jobs run. Prints figures; asserts nothing.

Run: python bench/bench_arq.py [--jobs N] [--rounds R] [--quick] [--flame DIR]
--flame DIR: one run of `none` and `thread` with py-spy attached to the worker (bench/flame.py),
writing DIR/arq-none.svg and DIR/arq-thread.svg; its figures are not comparable.
Needs Redis on 127.0.0.1:6379 and core, brain, z4j-arq and arq installed (the arq session's
environment: arq pins redis<6).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchjson import Recorder, add_option

VARIANTS = ("none", "thread", "loop", "roundtrip")
ARQ_VARIANT_NAMES = {"none": "none", "thread": "ours", "loop": "ours-loop",
                     "roundtrip": "ours-roundtrip"}  # fmt: skip
PROBE_SECONDS = 0.005


# -- the worker process ----------------------------------------------------------------------


async def noop(ctx: dict[str, Any], index: int) -> None:
    return None


def settings_for(variant: str, redis_url: str, jobs: int, report: dict[str, Any]) -> Any:
    from arq.connections import RedisSettings

    import z4j_arq
    from z4j_core.agent import default_agent

    probe: dict[str, Any] = {}

    async def on_startup(ctx: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        if variant == "loop":
            agent = default_agent()
            agent._started = True
            agent._loop = loop
            agent._main_task = loop.create_task(agent._main())
        if variant != "none":
            agent = default_agent()
            deadline = time.monotonic() + 20
            while not (agent._link is not None and agent._link.connected.is_set()):
                if time.monotonic() > deadline:
                    raise SystemExit("the agent did not connect")
                await asyncio.sleep(0.01)
        probe["task"] = loop.create_task(lag_probe(probe.setdefault("lags", [])))
        report["began"] = time.perf_counter()
        report["cpu_began"] = time.process_time()

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        report["ended"] = time.perf_counter()
        report["cpu_ended"] = time.process_time()
        probe["task"].cancel()
        lags = sorted(probe["lags"]) or [0.0]
        report["lag_p99_ms"] = lags[int(len(lags) * 0.99)] * 1e3
        report["lag_max_ms"] = lags[-1] * 1e3
        if variant == "none":
            return
        agent = default_agent()
        deadline = time.monotonic() + 60
        while agent.stats["acked"] < 2 * jobs and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        report["acked"] = agent.stats["acked"]
        if variant == "loop" and agent._link is not None:
            await agent._link.stop(time.monotonic() + 5)
            if agent._main_task is not None:
                agent._main_task.cancel()
            agent._closed = True
            agent._finish_on_thread()

    async def read_back(ctx: dict[str, Any]) -> None:
        data = await ctx["redis"].get(f"arq:job:{ctx['job_id']}")
        pickle.loads(data)

    class Settings:
        functions = [noop]
        redis_settings = RedisSettings.from_dsn(redis_url)
        burst = True
        poll_delay = 0.01
        queue_read_limit = 1000
        handle_signals = False

    Settings.on_startup = on_startup  # type: ignore[attr-defined]
    Settings.on_shutdown = on_shutdown  # type: ignore[attr-defined]
    if variant == "roundtrip":
        Settings.on_job_start = read_back  # type: ignore[attr-defined]
    if variant == "none":
        return Settings
    return z4j_arq.instrument(Settings, start=False if variant == "loop" else None)


async def lag_probe(lags: list[float]) -> None:
    while True:
        began = time.perf_counter()
        await asyncio.sleep(PROBE_SECONDS)
        lags.append(max(time.perf_counter() - began - PROBE_SECONDS, 0.0))


def run_worker(variant: str, redis_url: str, jobs: int) -> None:
    from arq.worker import create_worker

    report: dict[str, Any] = {"variant": variant}

    async def main() -> None:
        worker = create_worker(settings_for(variant, redis_url, jobs, report))
        await worker.async_run()
        await worker.close()
        report["done"] = worker.jobs_complete

    asyncio.run(main())
    seconds = report["ended"] - report["began"]
    report["jobs_per_s"] = jobs / seconds
    report["cpu_us_per_job"] = (report["cpu_ended"] - report["cpu_began"]) / jobs * 1e6
    print(json.dumps(report), flush=True)


# -- the driver ------------------------------------------------------------------------------


def fill(redis_url: str, jobs: int) -> None:
    from arq.connections import ArqRedis
    from redis.asyncio import ConnectionPool

    async def main() -> None:
        pool = ArqRedis(ConnectionPool.from_url(redis_url, max_connections=64))
        await pool.flushdb()
        for start in range(0, jobs, 50):
            await asyncio.gather(
                *(pool.enqueue_job("noop", i) for i in range(start, min(start + 50, jobs)))
            )
        await pool.aclose(close_connection_pool=True)

    asyncio.run(main())


def one_run(
    variant: str, jobs: int, redis_url: str, env: dict[str, str], flame: Path | None = None
) -> dict[str, Any]:
    fill(redis_url, jobs)
    worker = subprocess.Popen(
        [sys.executable, __file__, "--worker", variant, "--jobs", str(jobs), "--redis", redis_url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    recorders = None
    if flame is not None:
        import flame as flames

        recorders = flames.attach(worker.pid, flame / f"arq-{variant}.svg")
    try:
        stdout, stderr = worker.communicate(timeout=900)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if recorders is not None:
            flames.finish(recorders)
    if worker.returncode != 0:
        raise SystemExit(f"{variant} worker failed:\n{stdout[-2000:]}\n{stderr[-4000:]}")
    report: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    if report["done"] != jobs:
        raise SystemExit(f"{variant}: {report['done']} of {jobs} jobs ran")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each variant")
    parser.add_argument("--quick", action="store_true", help="2,000 jobs, 3 rounds")
    parser.add_argument("--flame", type=Path, metavar="DIR", help="py-spy flame graphs into DIR")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    add_option(parser)
    options = parser.parse_args()
    if options.worker:
        run_worker(options.worker, options.redis, options.jobs)
        return
    if options.quick:
        options.jobs, options.rounds = 2_000, 3
    variants = ("none", "thread") if options.flame else VARIANTS
    if options.flame:
        options.rounds = 1
    recorder = Recorder("arq", options.json)

    from z4j_core.testing import services
    from z4j_core.testing.brainproc import BrainProcess

    database = services.claim_redis_database()
    redis_url = f"redis://127.0.0.1:6379/{database}"
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="z4j-bench-arq-") as folder:
        work = Path(folder)
        brain = BrainProcess(work / "brain")
        token = brain.create_token("bench")
        brain.start()
        env = {
            **os.environ,
            "Z4J_BRAIN_URL": brain.url,
            "Z4J_TOKEN": token,
            "Z4J_APP": "bench-arq",
            "Z4J_SPOOL_DIR": str(work / "spool"),
        }
        try:
            for round_index in range(options.rounds):
                shift = round_index % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    report = one_run(variant, options.jobs, redis_url, env, options.flame)
                    results[variant].append(report)
                    acked = f"  ({report['acked']} events acked)" if "acked" in report else ""
                    print(
                        f"round {round_index + 1} {variant:9}: {report['jobs_per_s']:7.0f} jobs/s, "
                        f"CPU {report['cpu_us_per_job']:6.1f} us/job, loop lag p99 "
                        f"{report['lag_p99_ms']:5.2f} ms max {report['lag_max_ms']:6.2f} ms{acked}",
                        flush=True,
                    )
        finally:
            brain.stop()
            services.release_redis_database(database)
    base = statistics.median(r["jobs_per_s"] for r in results["none"])
    print(f"\n{options.jobs} no-op jobs, {options.rounds} rounds, medians:")
    for variant in variants:
        rows = results[variant]
        rate = statistics.median(r["jobs_per_s"] for r in rows)
        cpu = statistics.median(r["cpu_us_per_job"] for r in rows)
        p99 = statistics.median(r["lag_p99_ms"] for r in rows)
        worst = statistics.median(r["lag_max_ms"] for r in rows)
        print(
            f"  {variant:9}: {rate:7.0f} jobs/s  ratio {rate / base:5.3f}  CPU {cpu:6.1f} us/job  "
            f"loop lag p99 {p99:5.2f} ms, max {worst:6.2f} ms"
        )
    print("target: thread ratio >= 0.97")
    for variant in variants:
        rows = results[variant]
        # `thread` is the agent as shipped; `loop` and `roundtrip` are this bench's alternatives.
        config = {"engine": "arq", "variant": ARQ_VARIANT_NAMES[variant], "jobs": options.jobs}
        recorder.add("throughput", "tasks/s", [r["jobs_per_s"] for r in rows], **config)
        recorder.add("worker_cpu", "us/task", [r["cpu_us_per_job"] for r in rows], **config)
        recorder.add("loop_lag_p99", "ms", [r["lag_p99_ms"] for r in rows], **config)
    recorder.write()
    print(f"machine: {os.cpu_count()} CPUs shared by the worker, Redis and the brain")


if __name__ == "__main__":
    main()
