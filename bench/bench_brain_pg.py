"""Brain store benchmark: sustained events/s from 1 and from 10 agents into a brain on Postgres,
and the same on SQLite for comparison. Stored (events queryable, tasks' latest state kept) and
acknowledged, measured from the first emit to the last acknowledgement.

Prints figures; asserts nothing about time. Run: python bench/bench_brain_pg.py [--quick]
[--lifecycle] (three events per task, as a worker reports them, instead of one).
Needs the brain installed (`pip install -e packages/z4j-brain`) and Postgres at 127.0.0.1:5432
(trust auth; Z4J_TEST_PG_* variables move it). Each agent is its own process running
`z4j_core.agent.Agent`, as in a worker.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchjson import Recorder, add_option

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.stats import cpu_seconds

HERE = Path(__file__).resolve()


#: The events of one task: a finished one, or (--lifecycle) what a worker reports of each.
ONE, LIFECYCLE = ("succeeded",), ("received", "started", "succeeded")


def worker(url: str, token: str, spool: str, count: int, kinds: tuple[str, ...]) -> None:
    """One agent process: connect, wait for `go` on stdin, emit `count` events (`kinds` for
    each task, in one batch as a worker's fast task's would be), wait for acks."""
    from z4j_core.agent import Agent
    from z4j_core.plugins import PluginRegistry, new_plugin_manager

    agent = Agent(
        brain_url=url,
        token=token,
        spool_dir=spool,
        plugins=PluginRegistry(new_plugin_manager()),
        max_memory_events=max(20_000, count),
    )
    agent.start()
    if not agent.wait_connected(30):
        print(json.dumps({"error": "not connected"}), flush=True)
        return
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    began = time.time()
    pid = os.getpid()
    for i in range(count):
        kind = kinds[i % len(kinds)]
        agent.emit(
            kind,
            f"t-{pid}-{i // len(kinds):09d}",
            "shop.tasks.charge_card",
            engine="bench",
            args=(i,),
            runtime=0.01 if kind == "succeeded" else None,
            queue="default",
        )
    deadline = time.monotonic() + 600
    while agent.stats["acked"] < count and time.monotonic() < deadline:
        time.sleep(0.002)
    ended = time.time()
    acked = agent.stats["acked"]
    agent.stop(5)
    print(json.dumps({"began": began, "ended": ended, "acked": acked}), flush=True)


def run_agents(
    brain: BrainProcess, token: str, spool: Path, agents: int, total: int, *, kinds: tuple[str, ...]
) -> float:
    """Events per second from `agents` processes sending `total` events together."""
    each = total // agents
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE),
                "--worker",
                brain.url,
                token,
                str(spool / str(n)),
                str(each),
                ",".join(kinds),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(agents)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            ready = json.loads(proc.stdout.readline() or "{}")
            if not ready.get("ready"):
                raise RuntimeError(f"an agent did not connect: {ready}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results: list[dict[str, Any]] = []
        for proc in procs:
            assert proc.stdout is not None
            results.append(json.loads(proc.stdout.readline()))
            proc.wait(60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
    acked = sum(r["acked"] for r in results)
    if acked < each * agents:
        raise RuntimeError(f"only {acked:,} of {each * agents:,} events were acknowledged")
    elapsed = max(r["ended"] for r in results) - min(r["began"] for r in results)
    return acked / elapsed


def stored_count(brain: BrainProcess) -> int:
    body = brain.api("GET", "/api/v1/events?limit=0")
    return int(body["latest"])


def raw_rows(
    agent: str, count: int, kinds: tuple[str, ...]
) -> list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """The rows a brain writes for `count` events like the agents' (same keys: one agent
    instance, increasing seqs, `kinds` for each task), as (events, tasks) batches of 1,000
    events; each task's row once, as it ends."""
    from z4j_brain.store.events import STATE_RANK
    from z4j_core.wire import LifecycleKind

    now = time.time()
    rank = STATE_RANK[LifecycleKind.SUCCEEDED]
    batches = []
    for start in range(0, count, 1000):
        events, tasks = [], []
        for i in range(start, min(count, start + 1000)):
            task_id, kind = f"t-raw-{i // len(kinds):09d}", kinds[i % len(kinds)]
            events.append((agent, i + 1, i + 1, now, "bench", kind, now, "bench", task_id,
                           "shop.tasks.charge_card", "default", None, f"[{i}]", None, None, 0.01,
                           None, None, None, None, None, None))  # fmt: skip
            if kind != kinds[-1]:
                continue
            tasks.append(("bench", task_id, "shop.tasks.charge_card", "succeeded", rank, agent,
                          i + 1, "bench", "default", None, None, None, None, now, 0.01, None,
                          None, None, None, None, now))  # fmt: skip
        batches.append((events, tasks))
    return batches


def raw_limit(database: str | Path, count: int, kinds: tuple[str, ...]) -> float:
    """Events/s of the limit this store sets: the same rows inserted straight into a brain's
    schema (same tables, keys and indexes), 1,000 a transaction, by the fastest plain path the
    store offers (COPY on Postgres, executemany on SQLite), with no agent, socket or decoding."""
    from z4j_brain.store import Store
    from z4j_brain.store.events import EVENT_COLUMNS, EVENT_TYPES, TASK_COLUMNS, TASK_TYPES

    store = Store.open(database)
    conn = store.conn
    try:
        batches = raw_rows("raw-agent", count, kinds)
        began = time.perf_counter()
        for events, tasks in batches:
            conn.begin()
            tables = (("events", EVENT_COLUMNS, EVENT_TYPES, events),
                      ("tasks", TASK_COLUMNS, TASK_TYPES, tasks))  # fmt: skip
            for table, columns, types, rows in tables:
                if isinstance(database, str):  # Postgres: binary COPY, straight from psycopg
                    sql = f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)"
                    raw = conn.raw  # type: ignore[attr-defined]
                    with raw.cursor() as cursor, cursor.copy(sql) as copy:
                        copy.set_types([t.removesuffix("[]") for t in types])
                        for row in rows:
                            copy.write_row(row)
                else:
                    marks = ", ".join("?" * len(rows[0]))
                    conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
            conn.commit()
        return count / (time.perf_counter() - began)
    finally:
        store.close()


def measure(
    label: str,
    database: str | None,
    workdir: Path,
    counts: dict[int, int],
    recorder: Recorder,
    *,
    kinds: tuple[str, ...],
) -> None:
    limits = []
    for run in range(3):
        with ExitStack() as stack:
            if database is None:
                target: str | Path = workdir / f"raw-{run}.sqlite3"
            else:
                from z4j_core.testing.postgres import temporary_database

                target = stack.enter_context(temporary_database(f"raw{run}"))
            limits.append(raw_limit(target, max(counts.values()), kinds))
    recorder.add("raw_insert_limit", "events/s", limits, store=label, events=max(counts.values()),
                 per_task=len(kinds))  # fmt: skip
    limit = statistics.median(limits)
    print(
        f"{label:<8} limit: the same rows inserted straight into the schema: median "
        f"{limit:,.0f} events/s over 3 runs of {max(counts.values()):,} (min {min(limits):,.0f}, "
        f"max {max(limits):,.0f})",
        flush=True,
    )
    brain = BrainProcess(workdir / label, database=database)
    with brain:
        token = brain.create_token("bench")
        spool = workdir / f"{label}-spool"
        assert brain.process is not None
        for agents, total in counts.items():
            cpu_before = cpu_seconds(brain.process.pid)
            rates = [
                run_agents(brain, token, spool / str(run), agents, total, kinds=kinds)
                for run in range(3)
            ]
            cpu_per_event = (cpu_seconds(brain.process.pid) - cpu_before) / (3 * total) * 1e6
            recorder.add("brain_cpu_per_event", "µs", [cpu_per_event], store=label,
                         agents=agents, events=total, per_task=len(kinds))  # fmt: skip
            recorder.add("events_stored", "events/s", rates, store=label, agents=agents,
                         events=total, per_task=len(kinds))  # fmt: skip
            target = "  [target: >= 60,000]" if label == "postgres" and agents == 1 else ""
            print(
                f"{label:<8} {agents:>2} agent{'s' if agents > 1 else ' '} -> 1 brain, stored + "
                f"acked: median {statistics.median(rates):,.0f} events/s over 3 runs of "
                f"{total:,} (min {min(rates):,.0f}, max {max(rates):,.0f}), "
                f"{statistics.median(rates) / limit:.2f} of the limit; brain CPU "
                f"{cpu_per_event:.1f} µs per event{target}",
                flush=True,
            )
        print(f"{label:<8} positions assigned: {stored_count(brain):,}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="reduced counts")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument(
        "--lifecycle",
        action="store_true",
        help="three events per task (received, started, succeeded), not one",
    )
    parser.add_argument("--only", choices=["postgres", "sqlite"], help="one store only")
    add_option(parser)
    args = parser.parse_args()
    if args.worker:
        url, token, spool, count, kinds = args.worker
        worker(url, token, spool, int(count), tuple(kinds.split(",")))
        return
    recorder = Recorder("brain_pg", args.json)
    kinds = LIFECYCLE if args.lifecycle else ONE
    counts = {1: 50_000, 10: 100_000} if args.quick else {1: 300_000, 10: 500_000}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        if args.only != "sqlite":
            from z4j_core.testing.postgres import temporary_database

            url = stack.enter_context(temporary_database("bench"))
            measure("postgres", url, Path(tmp), counts, recorder, kinds=kinds)
        if args.only != "postgres":
            measure("sqlite", None, Path(tmp), counts, recorder, kinds=kinds)
    recorder.write()


if __name__ == "__main__":
    main()
