"""Actions benchmark (docs/actions.md "Cost"): what queue-depth reporting costs a worker, per
engine, and how long a bulk retry of N failed tasks takes through a real brain (RQ, Celery).

Queue depth: the adapter's own `queue_depths()` (what the agent's runtime calls once per report
interval: the heartbeat's, never under `QUEUE_REPORT_SECONDS`; 5 s by default) timed in this
process against real Redis (and RabbitMQ for Celery and Dramatiq), for 1 and for 20 queues;
reported as CPU per report and as worker CPU per second at that cadence. Huey and arq adapters
report their one queue: "20 queues" there is 20 apps (20 adapters) in one process. CPU is the
whole process's (`time.process_time`), so the taskiq broker's loop thread and arq's private
loop count too.
Bulk retry (`--engine rq|celery`): N tasks fail in a real worker with the agent attached, so the
brain stores them as failed; the worker then stops, so the retries go to an agent in this
process (same app, same host); `POST /api/v1/tasks/retry` retries them all, paced at
`--per-second`. Reported: time from the request to the bulk's end, retries/s, the retries
queued in Redis, and the Redis commands processed meanwhile (INFO commandstats deltas,
server-wide: other clients of the server count too).
Prints figures; asserts nothing. Run with the engine's environment, e.g.
`.nox/celery/bin/python bench/bench_actions.py --engine celery [--count 10000]`.
Needs Redis on 127.0.0.1:6379 (RabbitMQ on 5672 for the AMQP rows), core, brain, z4j-<engine>.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchjson import Recorder, add_option

from z4j_core.testing import services
from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.engines import ENGINES, WorkerProcess, WorkerRun, worker_env
from z4j_core.wire.limits import DEFAULT_HEARTBEAT_SECONDS, QUEUE_REPORT_SECONDS

HERE = Path(__file__).resolve().parent
APP = "bench-actions"
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE_COUNTS = (1, 20)
# The agent runtime reports at the heartbeat's cadence, never faster than QUEUE_REPORT_SECONDS
# (runtime._report_queues): 5 s with the brain's default heartbeat.
REPORT_INTERVAL = max(QUEUE_REPORT_SECONDS, DEFAULT_HEARTBEAT_SECONDS)

# -- queue depth ----------------------------------------------------------------------------

# Each setup yields the adapters whose `queue_depths()` one report calls, with `queues` queues
# that exist on the broker (one message each where the engine needs one to know the queue).
Setup = Callable[[str, int], Iterator[list[Any]]]


@contextmanager
def rq_setup(redis_url: str, queues: int) -> Iterator[list[Any]]:
    from redis import Redis
    from rq import Queue

    from z4j_rq.adapter import RQAdapter

    connection = Redis.from_url(redis_url)
    for index in range(queues):
        Queue(f"q{index}", connection=connection).enqueue("bench_rq_app.always_fails", index)
    yield [RQAdapter(connection=connection, app_name=APP)]


def celery_setup(broker: str) -> Setup:
    @contextmanager
    def setup(redis_url: str, queues: int) -> Iterator[list[Any]]:
        from celery import Celery
        from kombu import Queue

        from z4j_celery.adapter import CeleryAdapter

        names = [f"bench-actions-celery-q{index}" for index in range(queues)]
        app = Celery(APP, broker=redis_url if broker == "redis" else AMQP_URL)
        app.conf.task_queues = [Queue(name) for name in names]
        for name in names:  # declares the queue (AMQP) and gives it a message (Redis)
            app.send_task("bench.noop", queue=name)
        try:
            yield [CeleryAdapter.create(app, {"app_name": APP})]
        finally:
            with app.connection_for_write() as connection:
                channel = connection.channel()
                for name in names:
                    channel.queue_delete(name)

    return setup


def dramatiq_setup(broker_kind: str) -> Setup:
    @contextmanager
    def setup(redis_url: str, queues: int) -> Iterator[list[Any]]:
        import dramatiq

        from z4j_dramatiq.adapter import DramatiqAdapter

        if broker_kind == "redis":
            from dramatiq.brokers.redis import RedisBroker

            broker: Any = RedisBroker(url=redis_url)
        else:
            from dramatiq.brokers.rabbitmq import RabbitmqBroker

            broker = RabbitmqBroker(url=AMQP_URL.rstrip("/") + "/%2F")
        names = [f"bench-actions-dramatiq-q{index}" for index in range(queues)]
        for name in names:
            broker.declare_queue(name)
            broker.enqueue(dramatiq.Message(queue_name=name, actor_name="noop", args=(),
                                            kwargs={}, options={}))  # fmt: skip
        try:
            yield [DramatiqAdapter.create(broker, {"app_name": APP})]
        finally:
            for name in names:
                broker.flush(name)
                if broker_kind == "rabbitmq":  # the queue and its delay and dead-letter queues
                    for queue in (name, f"{name}.DQ", f"{name}.XQ"):
                        broker.channel.queue_delete(queue)
            broker.close()

    return setup


@contextmanager
def huey_setup(redis_url: str, queues: int) -> Iterator[list[Any]]:
    from huey import RedisHuey

    from z4j_huey.adapter import HueyAdapter

    hueys = [RedisHuey(f"{APP}-{index}", url=redis_url) for index in range(queues)]
    yield [HueyAdapter.create(huey, {"app_name": APP}) for huey in hueys]


async def _arq_noop(ctx: Any) -> None:
    return None


@contextmanager
def arq_setup(redis_url: str, queues: int) -> Iterator[list[Any]]:
    from arq.connections import RedisSettings

    from z4j_arq.adapter import ArqAdapter

    settings = RedisSettings.from_dsn(redis_url)
    apps = [
        {"functions": [_arq_noop], "queue_name": f"bench-actions-q{index}",
         "redis_settings": settings}
        for index in range(queues)
    ]  # fmt: skip
    yield [ArqAdapter.create(app, {"app_name": APP}) for app in apps]


@contextmanager
def taskiq_setup(redis_url: str, queues: int) -> Iterator[list[Any]]:
    from taskiq_redis import ListQueueBroker

    from z4j_taskiq.adapter import TaskiqAdapter

    broker = ListQueueBroker(redis_url, queue_name="bench-actions-q0")
    for index in range(1, queues):
        broker.register_task(_arq_noop, f"noop{index}", queue_name=f"bench-actions-q{index}")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    adapter = TaskiqAdapter.create(broker, {"app_name": APP})
    assert adapter is not None
    adapter.loop = loop
    try:
        yield [adapter]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


DEPTH_SETUPS: dict[str, list[tuple[str, Setup]]] = {
    "rq": [("redis", rq_setup)],
    "celery": [("redis", celery_setup("redis")), ("rabbitmq", celery_setup("rabbitmq"))],
    "dramatiq": [("redis", dramatiq_setup("redis")), ("rabbitmq", dramatiq_setup("rabbitmq"))],
    "huey": [("redis", huey_setup)],
    "arq": [("redis", arq_setup)],
    "taskiq": [("redis", taskiq_setup)],
}


def depth_cost(adapters: list[Any], calls: int) -> tuple[float, float, int]:
    """CPU and wall seconds per report (every adapter's `queue_depths()` once), and the queues
    one report names."""
    named = sum(len(adapter.queue_depths()) for adapter in adapters)  # warm: imports, scripts
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        for adapter in adapters:
            adapter.queue_depths()
    return (time.process_time() - cpu0) / calls, (time.perf_counter() - wall0) / calls, named


def bench_depth(engine: str, redis_url: str, calls: int, recorder: Recorder) -> None:
    for broker, setup in DEPTH_SETUPS[engine]:
        for queues in QUEUE_COUNTS:
            with setup(redis_url, queues) as adapters:
                cpu, wall, named = depth_cost(adapters, calls)
            per_second = cpu / REPORT_INTERVAL
            print(
                f"queue depth, {engine} ({broker}), {queues:2d} queues ({named} reported): "
                f"{cpu * 1e6:7.0f} us CPU and {wall * 1e3:6.2f} ms per report; worker CPU "
                f"{per_second * 1e6:6.1f} us/s ({per_second * 100:.4f}% of a core) at one "
                f"report per {REPORT_INTERVAL:.0f} s",
                flush=True,
            )
            config = {"engine": engine, "broker": broker, "queues": queues}
            recorder.add("queue_depth_report_cpu", "us", [cpu * 1e6], **config)
            recorder.add("queue_depth_worker_cpu", "us/s", [per_second * 1e6], **config)


# -- bulk retry -----------------------------------------------------------------------------


def redis_commands(connection: Any) -> dict[str, int]:
    return {name: int(stats["calls"]) for name, stats in connection.info("commandstats").items()}


def wait_failed(brain: BrainProcess, task: str, count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        body = {"states": ["failed"], "task": task, "dry_run": True}
        seen = brain.api("POST", "/api/v1/tasks/retry", body)["matched"]
        if seen >= count:
            return seen
        time.sleep(1)
    return seen


class RQBulk:
    task = "bench_rq_app.always_fails"
    queue_key = "rq:queue:bench"

    def __init__(self, redis_url: str) -> None:
        from redis import Redis

        self.redis_url = redis_url
        self.connection = Redis.from_url(redis_url)

    def enqueue(self, count: int) -> None:
        from rq import Queue

        queue = Queue("bench", connection=self.connection)
        for start in range(0, count, 1000):
            queue.enqueue_many(
                [
                    Queue.prepare_data(self.task, (index,), failure_ttl=3600)
                    for index in range(start, min(start + 1000, count))
                ]
            )

    def worker(self) -> WorkerRun:
        options = ("-u", self.redis_url, "--burst", "--logging_level", "WARNING")
        return WorkerRun(sys.executable, "", queues=("bench",), pool="z4j_rq.SimpleWorker",
                         options=options)  # fmt: skip

    def producer_agent(self) -> Any:
        import z4j_rq

        return z4j_rq.agent_of(z4j_rq.instrument(self.connection, app_name=APP))


class CeleryBulk:
    task = "bench.always_fails"
    queue_key = "bench"

    def __init__(self, redis_url: str) -> None:
        from redis import Redis

        os.environ["BENCH_REDIS_URL"] = redis_url
        self.connection = Redis.from_url(redis_url)

    def enqueue(self, count: int) -> None:
        from bench_actions_celery_app import app

        with app.producer_or_acquire() as producer:
            for index in range(count):
                app.send_task(self.task, args=(index,), producer=producer)

    def worker(self) -> WorkerRun:
        return WorkerRun(sys.executable, "bench_actions_celery_app", queues=("bench",),
                         pool="solo", options=("--loglevel", "WARNING"))  # fmt: skip

    def producer_agent(self) -> Any:
        from bench_actions_celery_app import app

        import z4j_celery

        return z4j_celery.agent_of(z4j_celery.instrument(app, start=True, app_name=APP))


BULKS: dict[str, Callable[[str], Any]] = {"rq": RQBulk, "celery": CeleryBulk}


def bench_bulk(
    engine: str, redis_url: str, count: int, per_second: float, recorder: Recorder
) -> None:
    bulk = BULKS[engine](redis_url)
    bulk.connection.flushdb()
    with tempfile.TemporaryDirectory(prefix="z4j-bench-actions-") as folder:
        work = Path(folder)
        brain = BrainProcess(work / "brain")
        token = brain.create_token("bench")
        brain.start()
        env = worker_env(HERE, brain_url=brain.url, token=token, app=APP,
                         spool_dir=work / "spool",
                         extra={"BENCH_REDIS_URL": redis_url, "BENCH_WORKER": "1"})  # fmt: skip
        try:
            began = time.monotonic()
            bulk.enqueue(count)
            worker = WorkerProcess.start(ENGINES[engine], bulk.worker(), env,
                                         work / "worker.log", HERE)  # fmt: skip
            try:
                stored = wait_failed(brain, bulk.task, count, timeout=300 + count / 10)
            finally:
                worker.stop()
            print(
                f"bulk retry, {engine}: {stored} failed tasks stored in "
                f"{time.monotonic() - began:.1f} s",
                flush=True,
            )
            if stored < count:
                raise SystemExit(f"only {stored} of {count} failures reached the brain; see "
                                 f"{work / 'worker.log'}:\n{worker.output(2000)}")  # fmt: skip
            for key in ("Z4J_BRAIN_URL", "Z4J_TOKEN", "Z4J_APP"):
                os.environ[key] = env[key]
            os.environ["Z4J_SPOOL_DIR"] = str(work / "spool-bench")
            agent = bulk.producer_agent()
            if agent is None or not agent.wait_connected(20):
                raise SystemExit("the bench process's agent did not connect")
            bulk.connection.delete(bulk.queue_key)
            before = redis_commands(bulk.connection)
            began = time.monotonic()
            started = brain.api("POST", "/api/v1/tasks/retry",
                                {"states": ["failed"], "task": bulk.task,
                                 "per_second": per_second})  # fmt: skip
            while True:
                summary = brain.api("GET", f"/api/v1/bulk/{started['bulk_id']}")
                if summary["finished"]:
                    break
                time.sleep(0.2)
            elapsed = time.monotonic() - began
            after = redis_commands(bulk.connection)
            delta = {name: after[name] - before.get(name, 0) for name in after}
            commands = sum(delta.values())
            matched = max(summary["matched"], 1)
            top = sorted(delta.items(), key=lambda item: -item[1])[:4]
            busiest = ", ".join(f"{name.removeprefix('cmdstat_')} {n / matched:.1f}"
                                for name, n in top)  # fmt: skip
            queued = bulk.connection.llen(bulk.queue_key)
            print(
                f"bulk retry, {engine}, {summary['matched']} tasks at {per_second:.0f}/s: "
                f"{elapsed:.1f} s ({summary['matched'] / elapsed:.0f} retries/s), answers "
                f"{summary['counts']}, {queued} retries queued in Redis, {commands} Redis "
                f"commands ({commands / matched:.1f} per retried task, server-wide; "
                f"{busiest}), load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            config = {"engine": engine, "count": summary["matched"], "per_second": per_second}
            recorder.add("bulk_retry_time", "s", [elapsed], **config)
            recorder.add("bulk_retry_rate", "retries/s", [summary["matched"] / elapsed], **config)
            recorder.add("bulk_retry_redis_commands", "per task", [commands / matched], **config)
            agent.stop(5)
        finally:
            brain.stop()
            bulk.connection.flushdb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--engine",
        required=True,
        choices=sorted(DEPTH_SETUPS),
        help="the engine to measure (run with its environment's python)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=200,
        help="failed tasks to bulk-retry (rq, celery; 0: skip the bulk retry)",
    )
    parser.add_argument("--per-second", type=float, default=1000.0, help="bulk pace (<= 1000)")
    parser.add_argument("--calls", type=int, default=200, help="reports to time per setup")
    add_option(parser)
    options = parser.parse_args()
    recorder = Recorder("actions", options.json)
    database = services.claim_redis_database()
    redis_url = services.redis_url(database)
    try:
        bench_depth(options.engine, redis_url, options.calls, recorder)
        if options.count and options.engine in BULKS:
            bench_bulk(options.engine, redis_url, options.count, options.per_second, recorder)
    finally:
        services.release_redis_database(database)
    recorder.write()


if __name__ == "__main__":
    main()
