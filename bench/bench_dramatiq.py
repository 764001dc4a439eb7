"""Dramatiq benchmark: 10,000 no-op messages through `dramatiq` (2 processes x 4 threads), with
and without the agent.

Without: the plain broker; with: the same broker with `z4j_dramatiq.Z4JMiddleware()`, one agent
per worker process connected to a real brain process (every message's `started` and
`succeeded` events are stored there). The messages are enqueued first by an uninstrumented
producer; the rate is measured from the first message any worker process started to the last
one it finished. Runs alternate between the variants; medians are reported with their ratio
(target: with the agent at least 0.97 of without). Prints figures; asserts nothing.
Run: python bench/bench_dramatiq.py [--messages N] [--rounds R] [--quick]
Needs Redis on 127.0.0.1:6379 and core, brain, z4j-dramatiq and dramatiq[redis] installed.
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
PROCESSES, THREADS = 2, 4


def fill(redis_url: str, messages: int) -> None:
    """Enqueue `messages` no-op messages with an uninstrumented broker, pipelined."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=redis_url)
    actor = dramatiq.Actor(lambda index: None, actor_name="noop", queue_name="bench",
                           priority=0, broker=broker, options={})  # fmt: skip
    for index in range(messages):
        broker.enqueue(actor.message(index))
    broker.close()


def pending(redis_url: str) -> int:
    from redis import Redis

    return int(Redis.from_url(redis_url).hlen("dramatiq:bench.msgs"))


def one_run(
    with_agent: bool, messages: int, redis_url: str, *, brain: BrainProcess, token: str, work: Path
) -> float:
    """Messages per second from the first message started to the last one finished."""
    from redis import Redis

    Redis.from_url(redis_url).flushdb()
    fill(redis_url, messages)
    times = work / f"times-{time.monotonic_ns()}"
    times.mkdir()
    env = {
        **os.environ,
        "BENCH_TIMES_DIR": str(times),
        "BENCH_REDIS_URL": redis_url,
        "BENCH_AGENT": "1" if with_agent else "0",
        "Z4J_BRAIN_URL": brain.url,
        "Z4J_TOKEN": token,
        "Z4J_SPOOL_DIR": str(work / "spool"),
        "PYTHONPATH": str(HERE),
    }
    run = WorkerRun(sys.executable, "bench_dramatiq_app", processes=PROCESSES, concurrency=THREADS)
    worker = subprocess.Popen(
        ENGINES["dramatiq"].worker(run),
        cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while pending(redis_url) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    rows = [f.read_text().split() for f in times.iterdir()]
    first = min(float(r[0]) for r in rows)
    last = max(float(r[1]) for r in rows)
    done = sum(int(r[2]) for r in rows)
    if done != messages:
        print(f"  (warning: {done} of {messages} messages ran)", flush=True)
    return done / (last - first)


def stored_events(brain: BrainProcess) -> int:
    return BrainStore(brain.database).count_events()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each variant")
    parser.add_argument("--quick", action="store_true", help="2,000 messages, 3 rounds")
    add_option(parser)
    options = parser.parse_args()
    recorder = Recorder("dramatiq", options.json)
    if options.quick:
        options.messages, options.rounds = 2000, 3
    database = services.claim_redis_database()
    redis_url = f"redis://127.0.0.1:6379/{database}"
    results: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="z4j-bench-dramatiq-") as folder:
        work = Path(folder)
        brain = BrainProcess(work / "brain")
        token = brain.create_token("bench")
        brain.start()
        try:
            for round_index in range(options.rounds):
                for with_agent in (False, True) if round_index % 2 == 0 else (True, False):
                    before = stored_events(brain)
                    rate = one_run(
                        with_agent, options.messages, redis_url, brain=brain, token=token, work=work
                    )
                    time.sleep(0.5)
                    stored = stored_events(brain) - before
                    results[with_agent].append(rate)
                    label = "with agent   " if with_agent else "without agent"
                    print(
                        f"round {round_index + 1} {label}: {rate:8.0f} messages/s"
                        + (f"  ({stored} events stored)" if with_agent else ""),
                        flush=True,
                    )
        finally:
            brain.stop()
            from redis import Redis

            Redis.from_url(redis_url).flushdb()
            services.release_redis_database(database)
    without = statistics.median(results[False])
    with_ = statistics.median(results[True])
    print(f"messages per run: {options.messages}, {PROCESSES} processes x {THREADS} threads")
    print(f"median without agent: {without:.0f} messages/s")
    print(f"median with agent:    {with_:.0f} messages/s")
    print(f"ratio: {with_ / without:.3f} (target >= 0.97)")
    print(f"machine: {os.cpu_count()} CPUs shared by the workers, Redis and the brain")
    for with_agent in (False, True):
        config = {"engine": "dramatiq", "variant": "ours" if with_agent else "none",
                  "messages": options.messages}  # fmt: skip
        recorder.add("throughput", "tasks/s", results[with_agent], **config)
    recorder.write()


if __name__ == "__main__":
    main()
