"""Console benchmark (docs/console.md "Speed"): how long the console's pages and the API's task
list take with many tasks in the store.

Fills a fresh store (SQLite by default; `--postgres` for a temporary database on the local
Postgres, or `--database postgresql://...`) with `--tasks` tasks (one finished event each: nine
in ten succeeded, one failed; 3 engines, 50 task names, updated over the last two hours),
serves a brain on it in this process, logs in through the console's form, and times `--rounds`
requests of each page (the first one apart, as "cold"). Prints figures; asserts nothing.
Run with the brain installed, e.g. `.nox/brain/bin/python bench/bench_console.py --tasks 1000000`.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from benchjson import Recorder, add_option

from z4j_brain.brain import Brain
from z4j_brain.config import BrainConfig
from z4j_brain.server import ServerThread
from z4j_brain.store import Store
from z4j_core.wire.frames import Event, LifecycleKind

ADMIN = "z4j_admin_bench-console-" + "b" * 24
ENGINES = ("huey", "rq", "celery")
BATCH = 5000
SPREAD_SECONDS = 7200.0


def fill(database: str, count: int) -> float:
    """``count`` finished tasks; the seconds it took."""
    began = time.perf_counter()
    store = Store.open(database)
    now = time.time()
    try:
        for first in range(0, count, BATCH):
            size = min(BATCH, count - first)
            stored_at = now - SPREAD_SECONDS * (1 - (first + size) / count)
            events = [
                Event(
                    seq=first + i,
                    kind=LifecycleKind.FAILED if (first + i) % 10 == 0 else LifecycleKind.SUCCEEDED,
                    at=stored_at,
                    engine=ENGINES[(first + i) % len(ENGINES)],
                    task_id=f"bench-{first + i:09d}",
                    task_name=f"bench.task{(first + i) % 50}",
                    queue="default",
                    worker="bench:1",
                    runtime=0.01,
                )
                for i in range(size)
            ]
            with store.transaction():
                store.store_events("bench-agent", "bench", events, stored_at)
    finally:
        store.close()
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200_000, help="tasks in the store (200000)")
    parser.add_argument("--rounds", type=int, default=20, help="requests per page (20)")
    parser.add_argument("--database", help="a postgresql:// URL (default: a SQLite file)")
    parser.add_argument(
        "--postgres", action="store_true", help="a temporary database on the local Postgres"
    )
    add_option(parser)
    options = parser.parse_args()
    if options.postgres:
        from z4j_core.testing.postgres import temporary_database

        with temporary_database("console") as url:
            options.database = url
            return run(options)
    return run(options)


def run(options: argparse.Namespace) -> int:
    recorder = Recorder("console", options.json)
    workdir = Path(tempfile.mkdtemp(prefix="z4j-bench-console-"))
    database = options.database or str(workdir / "brain.sqlite3")
    backend = "postgres" if options.database else "sqlite"
    Store.open(database).close()  # the schema first
    took = fill(database, options.tasks)
    print(f"filled {options.tasks} tasks on {backend} in {took:.1f} s", flush=True)
    config = BrainConfig.load(
        host="127.0.0.1", port=0, database=database, env={"Z4J_ADMIN_TOKEN": ADMIN}
    )
    server = ServerThread(Brain(config))
    base = server.start()
    try:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        # After login to a page the table does not time, so the overview's first read is cold.
        login = urllib.parse.urlencode({"token": ADMIN, "next": "/agents"}).encode()
        opener.open(
            urllib.request.Request(base + "/login", data=login, headers={"Origin": base}),
            timeout=60,
        ).read()
        pages = {
            "overview": "/",
            "tasks": "/tasks",
            "tasks failed": "/tasks?state=failed",
            "tasks by name": "/tasks?name=bench.task7",
            "tasks by engine, last hour": "/tasks?engine=rq&window=1h",
            "task by id": "/tasks?task_id=bench-000000123",
            "task detail": "/task/rq/bench-000000001",
            "live fragment": "/tasks/rows",
            "api tasks": "/api/v1/tasks?limit=50",
        }
        print(f"{'page':<28} {'cold ms':>8} {'median ms':>10} {'p95 ms':>8}")
        for name, path in pages.items():
            samples = []
            for _ in range(options.rounds + 1):
                began = time.perf_counter()
                with opener.open(base + path, timeout=120) as answer:
                    answer.read()
                    assert answer.status == 200, (path, answer.status)
                samples.append((time.perf_counter() - began) * 1000)
            cold, warm = samples[0], sorted(samples[1:])
            p95 = warm[min(len(warm) - 1, int(len(warm) * 0.95))]
            print(
                f"{name:<28} {cold:>8.1f} {statistics.median(warm):>10.1f} {p95:>8.1f}", flush=True
            )
            recorder.add(
                "page latency", "ms", warm, page=name, backend=backend, tasks=options.tasks
            )
    finally:
        server.stop()
    recorder.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
