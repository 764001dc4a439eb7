"""The brain's store work per fire, in one process, without sockets or workers: what is left
of the fire path's CPU when everything around the store is taken away.

    python bench/bench_fire_store.py                       # SQLite and Postgres, full counts
    python bench/bench_fire_store.py --quick --only sqlite

A store (SQLite in a temporary folder; Postgres: a fresh database on 127.0.0.1:5432, trust)
holds `--schedules` interval schedules of 1 s, all due each second, and one connected agent
serves them. Each simulated second runs what the leader's brain runs for those slots, with the
brain's own functions: the due queue's pop and the leader's fires of each (the tick), the
leader's write (`leader.write_fires`: recipes, fires, cursors, the claim and its commands, one
transaction), then every fire's answer (`brain.write_answers`: the commands' and the fires',
one transaction a group of `--answers`, as the brain's answer writer groups them). The clock is
simulated, so nothing waits.

Prints, per store and round: fires written, this process's CPU per fire split into the tick
and the writer's jobs, and on Postgres the server backend's CPU per fire (read from /proc, so
the database must run on this machine). Asserts nothing. Every slot is checked to have one
fire answered `enqueued`, so a change that loses work cannot look faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from benchjson import Recorder, add_option

from z4j_brain.brain import CommandOutcome, write_answers
from z4j_brain.leader import Leader, write_fires
from z4j_brain.store import Agent, Store
from z4j_core.scheduling import IntervalSchedule
from z4j_core.scheduling.duequeue import DueQueue
from z4j_core.testing.postgres import temporary_database

_UTC = timezone.utc
APP = "bench"


def backend_cpu(store: Store) -> Callable[[], float]:
    """Seconds of CPU the Postgres backend serving `store` has used (utime + stime)."""
    pid = store.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    ticks = 100.0  # USER_HZ on Linux

    def read() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    return read


def fill(store: Store, count: int, start: float) -> None:
    with store.transaction():
        for i in range(count):
            store.insert_schedule(
                schedule_id=f"s{i:06d}", name=f"bench-{i:06d}", task="bench.tasks.noop",
                engine="huey", app=APP, labels={}, args=[i], kwargs={"region": "eu"},
                options={}, spec={"kind": "interval", "every": "1s"}, enabled=True,
                description="", actor="bench", now=start,
            )  # fmt: skip


def run(target: str, schedules: int, seconds: int, group: int) -> dict[str, float]:
    start = datetime.now(_UTC).replace(microsecond=0)  # write_fires claims by the real clock
    store = Store.open(target)
    try:
        fill(store, schedules, start.timestamp())
        queue = DueQueue()
        every = IntervalSchedule(every=timedelta(seconds=1))
        for i in range(schedules):
            queue.add(f"s{i:06d}", every, start, 1)
        agent = Agent(uuid.uuid4().hex, uuid.uuid4().hex, APP, frozenset({"huey"}),
                      frozenset({"huey"}), {})  # fmt: skip
        backend = backend_cpu(store) if store.dialect == "postgres" else None
        tick = write = answer = 0.0
        server_before = backend() if backend else 0.0
        fires = 0
        for second in range(1, seconds + 1):
            now = start + timedelta(seconds=second, milliseconds=1)
            began = time.process_time()
            dues = queue.pop_due(now)
            now_ts = now.timestamp()
            batches = [(d.schedule_id, Leader._fires_of(d, now), d.cursor.timestamp(), None,
                        now_ts) for d in dues]  # fmt: skip
            popped = time.process_time()
            with store.transaction():
                written, claimed = write_fires(store, batches, [agent], "bench-brain")
            wrote = time.process_time()
            # The claim takes at most CLAIM_LIMIT; delivery claims the rest, as in the brain.
            while len(claimed) < written:
                with store.transaction():
                    more = write_fires(store, [], [agent], "bench-brain")[1]
                if not more:
                    break
                claimed += more
            for index in range(0, len(claimed), group):
                with store.transaction():
                    answered = now_ts + 0.002
                    chunk = claimed[index : index + group]
                    write_answers(
                        store,
                        [(CommandOutcome(command.command_id, fire.agent_instance, "enqueued",
                                         fire.fire_id, "", answered), fire.fire_id)
                         for fire, command in chunk],
                    )  # fmt: skip
            done = time.process_time()
            tick += popped - began
            write += wrote - popped
            answer += done - wrote
            fires += written
        server = (backend() - server_before) if backend else float("nan")
        enqueued = store.conn.execute(
            "SELECT COUNT(*) FROM fires WHERE state = 'enqueued'"
        ).fetchone()[0]
        if enqueued != schedules * seconds or fires != enqueued:
            raise SystemExit(f"lost work: {fires} fires written, {enqueued} enqueued, "
                             f"{schedules * seconds} slots")  # fmt: skip
    finally:
        store.close()
    per = 1e6 / fires
    return {"fires": fires, "tick": tick * per, "write": write * per, "answer": answer * per,
            "process": (tick + write + answer) * per, "server": server * per}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer seconds and rounds")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--schedules", type=int, default=1000, help="fires per second")
    parser.add_argument("--answers", type=int, default=100, help="answers per transaction")
    add_option(parser)
    options = parser.parse_args()
    seconds, rounds = (5, 2) if options.quick else (20, 5)
    recorder = Recorder("fire_store", options.json)
    found: dict[tuple[str, str], list[float]] = {}
    stores = [options.only] if options.only else ["sqlite", "postgres"]
    for round_no in range(1, rounds + 1):
        for kind in stores:
            with tempfile.TemporaryDirectory(prefix="z4j-bench-fire-store-") as folder:
                if kind == "sqlite":
                    target = str(Path(folder) / "brain.sqlite3")
                    figures = run(target, options.schedules, seconds, options.answers)
                else:
                    with temporary_database("firestore") as url:
                        figures = run(url, options.schedules, seconds, options.answers)
            print(f"{kind} round {round_no}: {figures['fires']:,} fires; µs per fire: this "
                  f"process {figures['process']:.0f} (tick {figures['tick']:.0f}, write "
                  f"{figures['write']:.0f}, answers {figures['answer']:.0f}), Postgres "
                  f"backend {figures['server']:.0f}", flush=True)  # fmt: skip
            for name in ("process", "tick", "write", "answer", "server"):
                if figures[name] == figures[name]:  # not NaN
                    found.setdefault((kind, name), []).append(figures[name])
    for (kind, name), samples in found.items():
        recorder.add(f"store_cpu_{name}", "us/fire", samples, store=kind,
                     schedules=options.schedules)  # fmt: skip
        print(
            f"{kind} {name}: median {statistics.median(samples):.0f} µs per fire "
            f"(min {min(samples):.0f}, max {max(samples):.0f})"
        )
    recorder.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
