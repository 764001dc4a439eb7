"""List latency with a large store: the brain's ``GET /api/v1/tasks`` (first page, filtered
pages, a time window, deep pages by cursor, an id search) over a real brain socket, with
1,000,000 tasks stored, on SQLite and on Postgres, as the admin and as an operator scoped to
half the apps. Prints p50/p99 per query; asserts nothing
about time (the target, under 300 ms, is printed beside each figure).

Run: python bench/bench_lists.py [--quick | --count N] [--requests R] [--only sqlite|postgres]
[--explain]
Needs the brain installed (``pip install -e packages/z4j-brain``) and, for Postgres, the server at
127.0.0.1:5432 (trust auth; Z4J_TEST_PG_* variables move it). The tasks are written straight
into the store's ``tasks`` table through its connection (SQLite ``executemany`` in one
transaction, Postgres ``COPY``): loading is not what is measured. SQLite is left without
``ANALYZE`` (the brain never runs it); Postgres is analyzed after the load, as its autovacuum
would soon do.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchjson import Recorder, add_option

from z4j_brain.db import POSTGRES
from z4j_brain.paging import encode_cursor
from z4j_brain.store import Store
from z4j_core.testing.brainproc import ADMIN_TOKEN, BrainProcess
from z4j_core.testing.stats import percentile

ENGINES = ("celery", "rq", "dramatiq", "huey", "arq", "taskiq")
APPS = tuple(f"app{i:02d}" for i in range(20))
NAMES = tuple(f"shop.tasks.job_{i:03d}" for i in range(300))
#: (state, rank, share of tasks)
STATES = (
    ("succeeded", 50, 0.88), ("failed", 50, 0.05), ("started", 30, 0.03),
    ("received", 20, 0.02), ("enqueued", 10, 0.015), ("retried", 40, 0.005),
)  # fmt: skip
#: Tasks stored by one batch share their ``updated_at`` (the order must break such ties).
BATCH = 10
#: The stored tasks span this many seconds (inside the brain's retention, set to 30 days here).
SPAN = 3 * 86400.0
TARGET_MS = 300.0
COLUMNS = (
    "engine", "task_id", "name", "state", "state_rank", "state_agent", "state_seq", "app",
    "queue", "worker", "finished_at", "runtime", "updated_at",
)  # fmt: skip
Row = tuple[Any, ...]


def generate(count: int, now: float, seed: int = 7) -> Iterator[Row]:
    """``count`` tasks, newest ``now``, ``BATCH`` to an ``updated_at``, spread over the past."""
    rng = random.Random(seed)
    states = [s for s, _, _ in STATES]
    weights = [w for _, _, w in STATES]
    ranks = {s: r for s, r, _ in STATES}
    step = SPAN / count
    first = now - SPAN
    for i in range(count):
        state = rng.choices(states, weights)[0]
        updated = first + (i // BATCH) * BATCH * step
        yield (
            rng.choice(ENGINES), f"{rng.getrandbits(64):016x}{i:07d}", rng.choice(NAMES), state,
            ranks[state], "bench-agent", i, rng.choice(APPS), "default", f"w{i % 16}",
            updated if ranks[state] >= 50 else None, rng.random(), updated,
        )  # fmt: skip


def load(store: Store, count: int, now: float) -> list[Row]:
    """Write the tasks; return the (updated_at, engine, task_id) key of every hundredth row and
    the ids of a sample, to build cursors and searches from."""
    sample: list[Row] = []
    began = time.monotonic()
    chunk: list[Row] = []
    placeholders = ", ".join("?" * len(COLUMNS))
    sql = f"INSERT INTO tasks ({', '.join(COLUMNS)}) VALUES ({placeholders})"

    def flush() -> None:
        if store.dialect == POSTGRES:
            raw = store.conn.raw  # type: ignore[attr-defined]
            with raw.cursor() as cursor:
                copy_sql = f"COPY tasks ({', '.join(COLUMNS)}) FROM STDIN"
                with cursor.copy(copy_sql) as copy:
                    for row in chunk:
                        copy.write_row(row)
        else:
            store.conn.executemany(sql, chunk)
        chunk.clear()

    with store.transaction():
        for i, row in enumerate(generate(count, now)):
            chunk.append(row)
            if i % 100 == 0:
                sample.append((row[12], row[0], row[1]))
            if len(chunk) >= 50_000:
                flush()
                print(f"  loaded {i + 1:,} tasks ({time.monotonic() - began:.0f} s)", end="\r")
        flush()
        # The apps a scope can match are those agents presented: one past agent per app.
        store.conn.executemany(
            "INSERT INTO agents (agent_instance, token_name, app, host, pid, engines, labels, "
            "agent_version, last_seen_at) VALUES (?, 'bench', ?, 'bench', 1, '[]', '{}', 'x', ?)",
            [(f"agent-{app}", app, now) for app in APPS],
        )
    if store.dialect == POSTGRES:
        store.conn.execute("ANALYZE tasks")
    print(f"  loaded {count:,} tasks in {time.monotonic() - began:.0f} s" + " " * 20)
    return sample


class Client:
    """One kept-alive HTTP connection to the brain, as a console or a script holds."""

    def __init__(self, port: int, token: str = ADMIN_TOKEN) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.token = token

    def get(self, path: str, query: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        url = f"/api/v1/{path}?{urllib.parse.urlencode(query)}"
        began = time.perf_counter()
        self.conn.request("GET", url, headers={"Authorization": f"Bearer {self.token}"})
        response = self.conn.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - began) * 1000
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status} {body[:200]!r}")
        return elapsed, json.loads(body)


def queries(
    sample: list[Row], rng: random.Random, now: float
) -> dict[str, Callable[[], dict[str, Any]]]:
    """Each measured request, by name: a function giving its next query (varied per call)."""

    def deep() -> str:
        # Anywhere in the older half of the list: a page thousands of pages down.
        return encode_cursor("tasks", rng.choice(sample[: len(sample) // 2]))

    def window() -> dict[str, Any]:
        key = rng.choice(sample)
        return {"since": key[0] - 3600, "until": key[0], "limit": 100}

    return {
        "first page": lambda: {"limit": 100},
        "state=failed": lambda: {"state": "failed", "limit": 100},
        "engine+state": lambda: {"engine": rng.choice(ENGINES), "state": "failed", "limit": 100},
        "name": lambda: {"name": rng.choice(NAMES), "limit": 100},
        "app": lambda: {"app": rng.choice(APPS), "limit": 100},
        "name+state (rare)": lambda: {"name": rng.choice(NAMES), "state": "retried", "limit": 100},
        "1 h window": window,
        "deep page (cursor)": lambda: {"cursor": deep(), "limit": 100},
        "deep state=failed": lambda: {"state": "failed", "cursor": deep(), "limit": 100},
        "deep name": lambda: {"name": rng.choice(NAMES), "cursor": deep(), "limit": 100},
        "id search": lambda: {"task_id": rng.choice(sample)[2], "limit": 100},
        # An operator scoped to app0* (10 of the 20 apps).
        "scoped: first page": lambda: {"limit": 100},
        "scoped: state=failed": lambda: {"state": "failed", "limit": 100},
        "scoped: deep page": lambda: {"cursor": deep(), "limit": 100},
    }


def explain(database: str, name: str, query: dict[str, Any]) -> None:
    """Print the plan of the store query behind one request (Postgres: with the actual rows)."""
    store = Store.open(database, migrate=False)
    try:
        seen: list[tuple[str, Any]] = []
        execute = store.conn.execute

        def record(sql: str, params: Any = ()) -> Any:
            seen.append((sql, params))
            return execute(sql, params)

        store.conn.execute = record  # type: ignore[method-assign]
        apps = list(APPS[:10]) if name.startswith("scoped") else None
        filters = {k: v for k, v in query.items() if k != "limit"}
        store.tasks(**filters, limit=101, apps=apps)
        store.conn.execute = execute  # type: ignore[method-assign]
        sql, params = seen[0]
        prefix = (
            "EXPLAIN (ANALYZE, COSTS OFF) " if store.dialect == POSTGRES else "EXPLAIN QUERY PLAN "
        )
        lines = [str(r[0] if store.dialect == POSTGRES else r[-1])
                 for r in execute(prefix + sql, params).fetchall()]  # fmt: skip
    finally:
        store.close()
    print(f"  plan of {name}:")
    for line in lines:
        print(f"      {line}")


def measure(
    label: str,
    database: str,
    workdir: Path,
    recorder: Recorder,
    *,
    count: int,
    requests: int,
    plans: bool,
) -> None:
    now = time.time()
    store = Store.open(database)
    try:
        sample = load(store, count, now)
    finally:
        store.close()
    rng = random.Random(11)
    env = {"Z4J_EVENT_RETENTION_DAYS": "30"}
    with BrainProcess(workdir / label, database=database, env=env) as brain:
        admin = Client(brain.port)
        operator = brain.api(
            "POST", "/api/v1/operators", {"name": "scoped", "role": "viewer", "apps": ["app0*"]}
        )
        scoped = Client(brain.port, operator["token"])
        print(f"{label}: {count:,} tasks; {requests} requests each (after 5 warm-up)")
        print(f"  {'query':<22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  rows")
        for name, make in queries(sample, rng, now).items():
            client = scoped if name.startswith("scoped") else admin
            if plans:
                explain(database, name, make())
            for _ in range(5):
                client.get("tasks", make())
            times: list[float] = []
            rows = 0
            for _ in range(requests):
                elapsed, body = client.get("tasks", make())
                times.append(elapsed)
                rows += len(body["tasks"])
            recorder.add("list_latency", "ms", times, store=label, tasks=count, query=name)
            p99 = percentile(times, 0.99)
            flag = "" if p99 < TARGET_MS else f"  [over the {TARGET_MS:.0f} ms target]"
            print(
                f"  {name:<22} {statistics.median(times):>8.1f} {p99:>8.1f} {max(times):>8.1f}"
                f"  {rows / requests:>4.0f}{flag}",
                flush=True,
            )
        # A walk: 50 consecutive pages by next_cursor, from the first.
        times = []
        query: dict[str, Any] = {"limit": 100}
        for _ in range(50):
            elapsed, body = admin.get("tasks", query)
            times.append(elapsed)
            query = {"limit": 100, "cursor": body["next_cursor"]}
        recorder.add("list_latency", "ms", times, store=label, tasks=count, query="walk 50 pages")
        print(
            f"  {'walk 50 pages':<22} {statistics.median(times):>8.1f} "
            f"{percentile(times, 0.99):>8.1f} {max(times):>8.1f}",
            flush=True,
        )


def ingest(label: str, workdir: Path, recorder: Recorder, *, rounds: int, events: int) -> None:
    """What the list indexes cost the writes: ``store_events`` into a store at schema 7 (before
    them) and at the current schema, alternating, on the same code. Each task gets three events
    (received, started, succeeded), so both inserts and updates of ``tasks`` are measured."""
    from z4j_brain.migrations import LATEST_VERSION, MIGRATIONS
    from z4j_core.wire import Event, LifecycleKind

    kinds = (LifecycleKind.RECEIVED, LifecycleKind.STARTED, LifecycleKind.SUCCEEDED)
    rates: dict[int, list[float]] = {7: [], LATEST_VERSION: []}
    for n in range(rounds):
        for version, samples in rates.items():
            with database_for(label, workdir / f"ingest-{n}-{version}") as database:
                store = Store.open(database, migrate=False)
                try:
                    with store.transaction():
                        store.conn.execute("CREATE TABLE schema_version (version INTEGER)")
                        store.conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
                        for statement in (s for v, ss in MIGRATIONS if v <= version for s in ss):
                            store.conn.execute(statement)
                    began = time.perf_counter()
                    for b in range(events // 1000):
                        batch = [
                            Event(seq=seq, kind=kinds[seq % 3], at=float(seq), engine="bench",
                                  task_id=f"t{seq // 3}", task_name=f"job{seq % 50}")
                            for seq in range(b * 1000 + 1, b * 1000 + 1001)
                        ]  # fmt: skip
                        with store.transaction():
                            store.store_events("agent", APPS[b % len(APPS)], batch, 1000.0 + b)
                    samples.append(events / (time.perf_counter() - began))
                finally:
                    store.close()
    for version, samples in rates.items():
        recorder.add("ingest", "events/s", samples, store=label, schema=version, events=events)
        print(
            f"{label:<8} schema {version}: store_events median {statistics.median(samples):,.0f}"
            f" events/s over {rounds} rounds of {events:,} (min {min(samples):,.0f}, max "
            f"{max(samples):,.0f})",
            flush=True,
        )


@contextmanager
def database_for(label: str, workdir: Path) -> Iterator[str]:
    if label == "sqlite":
        workdir.mkdir(parents=True, exist_ok=True)
        yield str(workdir / "lists.sqlite3")
        return
    from z4j_core.testing.postgres import temporary_database

    with temporary_database("lists") as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, help="tasks (1,000,000; --quick: 100,000)")
    parser.add_argument("--requests", type=int, help="per query (100; --quick: 30)")
    parser.add_argument("--quick", action="store_true", help="reduced counts (bench/report)")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="one store only")
    parser.add_argument(
        "--ingest",
        action="store_true",
        help="instead: what the list indexes cost the writes (schema 7 against this one)",
    )
    parser.add_argument(
        "--explain", action="store_true", help="print each query's plan (Postgres: EXPLAIN ANALYZE)"
    )
    add_option(parser)
    args = parser.parse_args()
    if args.count is None:
        args.count = 100_000 if args.quick else 1_000_000
    if args.requests is None:
        args.requests = 30 if args.quick else 100
    if args.count < 1000:
        sys.exit("--count must be at least 1000")
    recorder = Recorder("lists", args.json)
    labels = [args.only] if args.only else ["sqlite", "postgres"]
    with tempfile.TemporaryDirectory() as tmp:
        if args.ingest:
            for label in labels:
                ingest(
                    label, Path(tmp), recorder, rounds=5, events=30_000 if args.quick else 200_000
                )
            recorder.write()
            return
        for label in labels:
            with database_for(label, Path(tmp)) as database:
                measure(
                    label,
                    database,
                    Path(tmp),
                    recorder,
                    count=args.count,
                    requests=args.requests,
                    plans=args.explain,
                )
    recorder.write()


if __name__ == "__main__":
    main()
