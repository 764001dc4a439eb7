"""The z4j fleet: one brain, six engines, schedules of every kind, fires shown as they land.

Run through `./scripts/fleet [--duration N] [--sqlite]`, which prepares the main environment;
this prepares the engines' own ones (z4j_core.testing.engines). It claims a Redis database of
its own and, on Postgres, creates a database for the run and drops it afterwards. Every process
it starts is stopped before it exits, also on Ctrl-C. docs/fleet.md says how to read what it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from z4j_core.testing import services
from z4j_core.testing.engines import FLEET_ENVIRONMENTS
from z4j_core.testing.fleet import BY_NAME, TERMINAL_TASK_STATES, Fleet, Snapshot
from z4j_core.testing.venvs import ensure

PROBLEM_FIRE_STATES = ("missed", "unknown", "rejected", "failed", "duplicate")
EVENT_KINDS = ("enqueued", "received", "started", "succeeded", "failed", "retried")
CLEAR = "\033[H\033[2J"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def bold(text: str) -> str:
    return f"\033[1m{text}\033[0m" if sys.stdout.isatty() else text


# -- what the view shows -----------------------------------------------------------------------


def table(snapshot: Snapshot, fleet: Fleet) -> list[str]:
    """One row per engine: agents, the brain's fires, what the engine ran, the lifecycle."""
    lines = [
        f"{'engine':<9}{'agents':>7}{'fires':>7}{'enqueued':>9}{'open':>6}{'lost':>6}"
        f"{'ran':>6}{'twice':>6}{'succeeded':>10}   events stored (enq/rcv/start/ok/fail)"
    ]
    totals = [0] * 8
    for engine in fleet.engines:
        view = snapshot.engines[engine.name]
        fire_ids = {f["fire_id"] for f in snapshot.fires if f["engine"] == engine.name}
        ran = sum(1 for job in view.runs if job in fire_ids)
        twice = sum(1 for job, n in view.runs.items() if job in fire_ids and n > 1)
        row = [
            view.agents,
            sum(view.fires.values()),
            view.fires["enqueued"],
            view.fires["pending"] + view.fires["delivering"],
            sum(view.fires[s] for s in PROBLEM_FIRE_STATES),
            ran,
            twice,
            view.tasks["succeeded"],
        ]
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        events = "/".join(str(view.events[k]) for k in EVENT_KINDS[:5])
        lines.append(
            f"{engine.name:<9}{row[0]:>7}{row[1]:>7}{row[2]:>9}{row[3]:>6}{row[4]:>6}"
            f"{row[5]:>6}{row[6]:>6}{row[7]:>10}   {events}"
        )
    lines.append(
        f"{'all':<9}{totals[0]:>7}{totals[1]:>7}{totals[2]:>9}{totals[3]:>6}{totals[4]:>6}"
        f"{totals[5]:>6}{totals[6]:>6}{totals[7]:>10}"
    )
    return lines


def fire_line(fire: dict[str, Any], runs: dict[str, int]) -> str:
    """One landed fire: its slot, schedule, engine, the job id it became, what the task did."""
    slot = datetime.fromtimestamp(fire["slot"], timezone.utc).strftime("%H:%M:%S")
    state = fire["task_state"] or fire["state"]
    detail = f"{fire['state']} as {fire['native_id'] or '-'}"
    if fire["task_finished_at"]:
        detail += f", {state} {fire['task_finished_at'] - fire['slot']:.2f}s after its slot"
    elif fire["state"] != "enqueued":
        detail += f" ({fire['reason'] or 'no reason given'})"
    ran = runs.get(fire["fire_id"], 0)
    return (
        f"  slot {slot}  {fire['schedule']:<16} -> {fire['engine']:<9}{detail}; "
        f"ran {ran}x in {fire['engine']}"
    )


def landed(fire: dict[str, Any]) -> bool:
    return fire["task_state"] in TERMINAL_TASK_STATES or fire["state"] in PROBLEM_FIRE_STATES


class View:
    """A refreshing screen on a terminal; elsewhere, one line per landed fire and the table
    every `table_every` seconds."""

    def __init__(self, fleet: Fleet, began: float, ends: float | None, plain: bool) -> None:
        self.fleet = fleet
        self.began = began
        self.ends = ends
        self.plain = plain or not sys.stdout.isatty()
        self.shown: set[str] = set()
        self.recent: list[str] = []
        self.table_every = 10.0
        self.table_shown = 0.0

    def header(self) -> str:
        now = time.monotonic()
        left = f", {self.ends - now:.0f}s left" if self.ends is not None else ", Ctrl-C stops"
        db = "Postgres" if self.fleet.brain.database.startswith("postgres") else "SQLite"
        return (
            f"z4j fleet  {datetime.now(timezone.utc):%H:%M:%S} UTC  up {now - self.began:.0f}s"
            f"{left}  brain {self.fleet.brain.http_url} ({db})"
        )

    def refresh(self) -> None:
        snapshot = self.fleet.snapshot()
        runs = {job: n for v in snapshot.engines.values() for job, n in v.runs.items()}
        new = sorted(
            (f for f in snapshot.fires if landed(f) and f["fire_id"] not in self.shown),
            key=lambda f: (f["slot"], f["engine"]),
        )
        for fire in new:
            self.shown.add(fire["fire_id"])
            line = fire_line(fire, runs)
            self.recent = [*self.recent, line][-14:]
            if self.plain:
                print(line, flush=True)
        if not self.plain:
            screen = [self.header(), "", *table(snapshot, self.fleet), "", "fires landing:"]
            print(CLEAR + "\n".join([*screen, *self.recent]), flush=True)
        elif time.monotonic() - self.table_shown >= self.table_every:
            self.table_shown = time.monotonic()
            print("\n".join(["", self.header(), *table(snapshot, self.fleet), ""]), flush=True)

    def run(self, refresh: float) -> None:
        while self.ends is None or time.monotonic() < self.ends:
            self.refresh()
            time.sleep(refresh)


# -- the run -----------------------------------------------------------------------------------


@contextmanager
def redis_slice(url: str | None) -> Iterator[str]:
    """The Redis database the fleet uses: the one given, or one claimed for this run."""
    if url:
        yield url
        return
    service = services.SERVICES["redis"]
    if not service.reachable():
        raise SystemExit(f"fleet: {service.unreachable_reason()}")
    number = services.claim_redis_database()
    try:
        yield f"redis://{service.host}:{service.port}/{number}"
    finally:
        services.release_redis_database(number)


@contextmanager
def brain_database(options: argparse.Namespace) -> Iterator[str | None]:
    """None (SQLite in the brain's folder), the URL given, or a database made for this run."""
    if options.sqlite:
        yield None
        return
    if options.database_url:
        yield options.database_url
        return
    service = services.SERVICES["postgres"]
    if not service.reachable():
        raise SystemExit(f"fleet: {service.unreachable_reason()} (or run with --sqlite)")
    import psycopg

    from z4j_core.testing.postgres import server_url

    name = f"z4j_fleet_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url(name)
    finally:
        with psycopg.connect(server_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def engine_pythons(names: set[str]) -> dict[str, Path]:
    pythons = {"main": Path(sys.executable)}
    for name in sorted(names - {"main"}):
        pythons[name] = ensure(FLEET_ENVIRONMENTS[name])
    return pythons


def seconds(values: list[float]) -> dict[str, float | None]:
    """Median and max of `values` (seconds), None when there are none."""
    if not values:
        return {"p50": None, "max": None}
    return {"p50": round(statistics.median(values), 3), "max": round(max(values), 3)}


def summary(fleet: Fleet, snapshot: Snapshot) -> dict[str, Any]:
    """Per engine: fires, whether each ran exactly once in its own engine, and how long from
    each slot to the agent's `enqueued` answer and to the task's success (figures, printed)."""
    print(bold("summary"), flush=True)
    figures: dict[str, Any] = {}
    for engine in fleet.engines:
        fires = [f for f in snapshot.fires if f["engine"] == engine.name]
        enqueued = [f for f in fires if f["state"] == "enqueued"]
        runs = snapshot.engines[engine.name].runs
        once = sum(1 for f in enqueued if runs.get(f["fire_id"]) == 1)
        twice = sum(1 for f in enqueued if runs.get(f["fire_id"], 0) > 1)
        succeeded = [f for f in enqueued if f["task_state"] == "succeeded"]
        row = {
            "fires": len(fires),
            "ran_once": once,
            "ran_twice": twice,
            "not_run": len(enqueued) - once - twice,
            "not_enqueued": len(fires) - len(enqueued),
            "succeeded": len(succeeded),
            "slot_to_enqueued_s": seconds(
                [f["answered_at"] - f["slot"] for f in enqueued if f["answered_at"]]
            ),
            "slot_to_succeeded_s": seconds(
                [f["task_finished_at"] - f["slot"] for f in succeeded if f["task_finished_at"]]
            ),
        }
        row["ok"] = row["fires"] > 0 and not (twice or row["not_run"] or row["not_enqueued"])
        figures[engine.name] = row
        to_enqueued, to_done = row["slot_to_enqueued_s"], row["slot_to_succeeded_s"]
        print(
            f"  {engine.name:<9} {len(fires):>4} fires: {once} ran once, {twice} twice, "
            f"{row['not_run']} not (yet) run, {row['not_enqueued']} not enqueued; "
            f"{len(succeeded)} succeeded; slot to enqueued p50 {to_enqueued['p50']} s "
            f"(max {to_enqueued['max']}), to succeeded p50 {to_done['p50']} s "
            f"(max {to_done['max']}){'' if row['ok'] else '   <-- look here'}",
            flush=True,
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/fleet", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="seconds to watch before stopping (60; 0: until Ctrl-C)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sqlite", action="store_true", help="the brain on SQLite")
    where.add_argument(
        "--database-url",
        metavar="URL",
        help="an existing postgresql:// database for the brain (default: a new "
        "one on 127.0.0.1:5432, dropped afterwards)",
    )
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help="the Redis database the engines use (default: a free one claimed on 127.0.0.1:6379)",
    )
    parser.add_argument(
        "--cron",
        default="* * * * * */2",
        help="the cron schedules' expression (every 2 s; seconds last)",
    )
    parser.add_argument("--every", default="3s", help="the interval schedules' period (3s)")
    parser.add_argument(
        "--engines", default=",".join(BY_NAME), help="which engines, comma-separated (all six)"
    )
    parser.add_argument(
        "--plain", action="store_true", help="print lines instead of redrawing the screen"
    )
    parser.add_argument("--refresh", type=float, default=1.0, help="seconds between refreshes")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder and logs")
    parser.add_argument("--json", metavar="PATH", help="also write the summary's figures here")
    options = parser.parse_args(argv)
    unknown = set(options.engines.split(",")) - set(BY_NAME)
    if unknown:
        parser.error(f"unknown engine(s) {sorted(unknown)}: choose from {', '.join(BY_NAME)}")
    if options.duration < 0:
        parser.error("--duration must be 0 (until Ctrl-C) or a number of seconds")
    engines = [BY_NAME[name] for name in options.engines.split(",")]
    began = time.monotonic()

    def say(text: str) -> None:
        print(f"{time.monotonic() - began:6.1f}s  {text}", flush=True)

    for stop_signal in STOP_SIGNALS[1:]:  # a closed terminal or `kill` stops it like Ctrl-C
        signal.signal(stop_signal, _interrupt)
    pythons = engine_pythons({e.environment for e in engines})
    workdir = Path(tempfile.mkdtemp(prefix="z4j-fleet-"))
    figures: dict[str, Any] = {}
    with redis_slice(options.redis_url) as redis_url, brain_database(options) as database:
        fleet = Fleet(workdir, pythons, redis_url, database, say=say, engines=engines)
        try:
            fleet.start()
            say(f"engines on {redis_url}; logs in {workdir}")
            say(f"point z4j at this brain from another shell: source {fleet.cli_env_file()}")
            fleet.create_schedules(cron=options.cron, every=options.every)
            say(bold("watching") + " (fires land below; the table counts them per engine)")
            ends = time.monotonic() + options.duration if options.duration else None
            try:
                View(fleet, began, ends, options.plain).run(options.refresh)
                settle_for = 30.0
            except KeyboardInterrupt:
                say("interrupted: pausing the schedules, then stopping")
                settle_for = 5.0
            fleet.pause_all()
            snapshot = fleet.settle(settle_for)
            for command in (["agents"], ["tasks", "--limit", "30"], ["schedules", "list", "--all"]):
                fleet.z4j(*command)
            figures = summary(fleet, snapshot)
        except KeyboardInterrupt:
            say("interrupted")
        except RuntimeError as exc:  # a worker that died, a brain or a z4j command that failed
            say(f"the fleet failed: {exc}")
        finally:
            for stop_signal in STOP_SIGNALS:  # stopping is bounded: let nothing interrupt it
                signal.signal(stop_signal, signal.SIG_IGN)
            say("stopping every process...")
            fleet.stop()
            left = [w.argv[0] for w in fleet.workers if w.process.poll() is None]
            say(
                f"stopped: brain and {len(fleet.workers)} engine processes"
                + (f"; still running: {left}" if left else "; nothing left running")
            )
    all_once = bool(figures) and all(row["ok"] for row in figures.values())
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"every fire ran exactly once in its engine: {'yes' if all_once else 'NO'}; "
        f"load average at the end: {load} ({os.cpu_count()} CPUs)"
    )
    if options.json:
        report = {
            "duration_s": options.duration,
            "database": "sqlite" if options.sqlite else "postgres",
            "cron": options.cron,
            "every": options.every,
            "load_average": os.getloadavg(),
            "every_fire_ran_once": all_once,
            "engines": figures,
        }
        Path(options.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"figures written to {options.json}")
    if options.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all_once else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
