"""The soak, shared by `test_soak_short.py` (about a minute, reduced rates) and `bench/soak.py`.

A real brain process (SQLite, or Postgres by URL); several application processes with the
agent (`soak_emitter.py`) emitting task lifecycles at a steady total rate; interval schedules of
one second whose anchors are spread over the second, so they fire at a steady rate into a real
Huey consumer with the agent (`tests/scheduler`'s sink, which records every execution's job
id, and a fire's id is its job id). Every `sample_every` seconds it records the memory of each
process, the rate of events stored, emit-to-ack and fire latencies, and fires run twice or
missing so far; at the end it counts every event stored (exactly once?) and every slot run
(exactly once?). `run_soak` returns the figures; the caller asserts or prints.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.brainstore import BrainStore
from z4j_core.testing.sink import Sink, live_agents, make_brain, schedule_body
from z4j_core.testing.stats import percentile, rss_mib

EMITTER = "z4j_core.testing.soak_emitter"
LEAD_SECONDS = 15.0  # from setting up to the first slot and event: schedules, agents connect
SETTLE_LAG = 15.0  # a slot counts as missing (so far) once it is this old and has not run
SETTLE_DEADLINE = 90.0  # after the end: the last fires and acks may take this long


@dataclass(frozen=True)
class SoakPlan:
    seconds: int
    events_per_s: float = 5000.0
    emitters: int = 4
    schedules: int = 100  # interval schedules of 1 s: fires per second
    sample_every: float = 10.0
    database: str | None = None  # a Postgres URL; None: SQLite in the work folder
    sink_workers: int = 4
    connect_timeout: float = 60.0  # for the consumer's agent (longer under a profiler)


def rss_or_none(pid: int) -> float | None:
    """A process's resident memory, or None once it is gone."""
    try:
        return rss_mib(pid)
    except OSError:
        return None


def pct(values: list[float], q: float) -> float | None:
    return percentile(values, q) if values else None


class Emitter:
    """One `soak_emitter.py` process and the lines it wrote."""

    def __init__(
        self, name: str, brain: BrainProcess, *, token: str, rate: float, start: float,
        end: float, spool: Path,
    ) -> None:  # fmt: skip
        env = {
            **os.environ,
            "Z4J_BRAIN_URL": brain.url,
            "Z4J_TOKEN": token,
            "Z4J_SPOOL_DIR": str(spool),
            "Z4J_APP": "soak",
        }
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-m", EMITTER, name, str(rate), str(start), str(end)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None
        self.stderr = ""
        self._taken = 0
        self._lock = threading.Lock()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._threads = [
            threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True),
            threading.Thread(target=self._drain, args=(self.process.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            message = json.loads(line)
            with self._lock:
                self.lines.append(message)
                if message.get("final"):
                    self.final = message

    def _drain(self, stream: IO[str]) -> None:
        self.stderr = stream.read()[-4000:]

    def new_lines(self) -> list[dict[str, Any]]:
        with self._lock:
            taken, self._taken = self.lines[self._taken :], len(self.lines)
        return taken

    def latest(self) -> dict[str, Any]:
        with self._lock:
            return self.lines[-1] if self.lines else {"sent": 0, "acked": 0, "dropped": 0}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for thread in self._threads:
            thread.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def events_stored_total(brain: BrainProcess) -> int | None:
    try:
        with urllib.request.urlopen(f"{brain.http_url}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    # One series per engine and lifecycle kind: their sum (0 before the first event).
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("z4j_events_stored_total{")
    )


def slots_between(anchors: list[float], start: float, end: float, low: float, high: float) -> int:
    """Slots of 1 s interval schedules (one per anchor) in [low, high) within [start, end)."""
    low, high = max(low, start), min(high, end)
    if high <= low:
        return 0
    return sum(math.ceil(high - a) - math.ceil(low - a) for a in anchors)


class Soak:
    """One soak run: set up, sample, settle, count."""

    def __init__(self, workdir: Path, plan: SoakPlan) -> None:
        self.workdir = workdir
        self.plan = plan
        self.brain = make_brain(workdir / "brain", plan.database)
        self.sink: Sink | None = None
        self.emitters: list[Emitter] = []
        self.schedule_ids: set[str] = set()
        self.anchors: list[float] = []
        self.start = self.end = 0.0
        self.samples: list[dict[str, Any]] = []
        self._db: BrainStore | None = None
        self._answered_after = 0.0
        self._checked_until = 0.0
        self._doubled: set[str] = set()
        self._not_run: set[str] = set()  # fires of checked slots that have not run (yet)
        self._no_fire_row = 0  # checked slots the leader wrote no fire for
        self._stored_before: tuple[float, int] | None = None

    # -- set up ------------------------------------------------------------------------------

    def set_up(self) -> None:
        plan = self.plan
        sink_token = self.brain.create_token("soak-sink")
        self.brain.start(timeout=60)
        emitter_token = self.brain.api("POST", "/api/v1/tokens", {"name": "soak-apps"})["token"]
        self.sink = Sink(self.workdir / "sink", self.brain.url, sink_token, plan.sink_workers)
        deadline = time.monotonic() + plan.connect_timeout
        while live_agents(self.brain) < 1:
            if time.monotonic() > deadline or self.sink.process.poll() is not None:
                raise RuntimeError(f"the Huey consumer's agent did not connect:\n{self.sink.log()}")
            time.sleep(0.1)
        self.start = math.ceil(time.time() + LEAD_SECONDS)
        self.end = self.start + plan.seconds
        last = datetime.fromtimestamp(self.end - 0.001, timezone.utc).isoformat()
        first = datetime.fromtimestamp(self.start, timezone.utc).isoformat()
        for i in range(plan.schedules):
            anchor = self.start + i / plan.schedules
            spec = {
                "kind": "interval", "every": "1s",
                "anchor": datetime.fromtimestamp(anchor, timezone.utc).isoformat(),
                "start": first, "end": last,
            }  # fmt: skip
            item = self.brain.api("POST", "/api/v1/schedules", schedule_body(f"soak{i:04d}", spec))
            self.schedule_ids.add(item["id"])
            self.anchors.append(anchor)
        if time.time() > self.start - 2:
            raise RuntimeError("setting up took longer than the lead; the machine is too busy")
        rate = plan.events_per_s / plan.emitters
        for k in range(plan.emitters):
            self.emitters.append(
                Emitter(f"e{k}", self.brain, token=emitter_token, rate=rate, start=self.start,
                        end=self.end, spool=self.workdir / f"spool-{k}")
            )  # fmt: skip
        self._db = BrainStore(self.brain.database, keep_open=True)
        self._answered_after = self.start
        self._checked_until = self.start

    # -- sampling ----------------------------------------------------------------------------

    def pids(self) -> tuple[int, list[int]]:
        assert self.brain.process is not None and self.sink is not None
        agents = [e.process.pid for e in self.emitters] + [self.sink.process.pid]
        return self.brain.process.pid, agents

    def sink_counts(self) -> Counter[str]:
        assert self.sink is not None
        return self.sink.counts()

    def _fire_rows_answered(self, after: float, until: float) -> list[tuple[Any, ...]]:
        assert self._db is not None
        return self._db.fires_answered_between(after, until)

    def _fire_rows_slots(self, low: float, high: float) -> list[tuple[Any, ...]]:
        assert self._db is not None
        return self._db.fires_in_slots(low, high, but_kind="trigger")

    def baseline(self) -> None:
        """What the rates of the first sample start from (called at the start instant)."""
        stored = events_stored_total(self.brain)
        if stored is not None:
            self._stored_before = (time.time(), stored)

    def sample(self) -> dict[str, Any]:
        now = time.time()
        brain_pid, agent_pids = self.pids()
        # Events stored per second (every agent's, the consumer's lifecycles included).
        stored = events_stored_total(self.brain)
        rate = None
        if stored is not None:
            if self._stored_before is not None:
                t0, n0 = self._stored_before
                rate = (stored - n0) / (now - t0) if now > t0 else None
            self._stored_before = (now, stored)
        lines = [line for e in self.emitters for line in e.new_lines()]
        acks = [ms for line in lines for ms in line.get("ack_ms", [])]
        # Fires answered since the last sample: due -> the agent's `enqueued` answer stored.
        answered = [
            r for r in self._fire_rows_answered(self._answered_after, now)
            if r[1] in self.schedule_ids
        ]  # fmt: skip
        self._answered_after = now
        fire_ms = [(r[3] - r[2]) * 1000 for r in answered]
        # Slots old enough to have run: each should have run exactly once at the sink.
        counts = self.sink_counts()
        cut = min(now - SETTLE_LAG, self.end)
        if cut > self._checked_until:
            rows = [
                r for r in self._fire_rows_slots(self._checked_until, cut)
                if r[1] in self.schedule_ids
            ]  # fmt: skip
            expected = slots_between(self.anchors, self.start, self.end, self._checked_until, cut)
            self._no_fire_row += expected - len(rows)
            self._not_run |= {r[0] for r in rows}
            self._checked_until = cut
        self._not_run = {fire_id for fire_id in self._not_run if counts.get(fire_id, 0) < 1}
        self._doubled |= {fire_id for fire_id, n in counts.items() if n > 1}
        emitted = sum(e.latest()["acked"] for e in self.emitters)
        sample = {
            "t": round(now - self.start, 1),
            "brain_rss_mib": rss_or_none(brain_pid),
            "agent_rss_mib": [rss_or_none(pid) for pid in agent_pids],
            "events_per_s": rate,
            "ack_p50_ms": pct(acks, 0.5),
            "ack_p99_ms": pct(acks, 0.99),
            "fire_p50_ms": pct(fire_ms, 0.5),
            "fire_p99_ms": pct(fire_ms, 0.99),
            "fires_answered": len(answered),
            "doubled": len(self._doubled),
            "missing": self._no_fire_row + len(self._not_run),
            "app_events_acked": emitted,
            "loadavg": os.getloadavg()[0],
        }
        self.samples.append(sample)
        return sample

    def check_alive(self) -> None:
        assert self.sink is not None and self.brain.process is not None
        if self.brain.process.poll() is not None:
            raise RuntimeError(f"the brain exited:\n{self.brain.log_path.read_text()[-4000:]}")
        if self.sink.process.poll() is not None:
            raise RuntimeError(f"the Huey consumer exited:\n{self.sink.log()}")
        for emitter in self.emitters:
            if emitter.process.poll() is not None and emitter.final is None:
                emitter.stop()
                raise RuntimeError(f"emitter {emitter.name} exited:\n{emitter.stderr}")

    # -- the end -----------------------------------------------------------------------------

    def settle(self) -> None:
        """Wait for every emitter's final line and every slot's fire to be answered."""
        deadline = time.monotonic() + SETTLE_DEADLINE
        expected = self.plan.schedules * self.plan.seconds
        while time.monotonic() < deadline:
            self.check_alive()
            finals = all(e.final is not None for e in self.emitters)
            ran = sum(1 for n in self.sink_counts().values() if n >= 1)
            if finals and ran >= expected:
                break
            time.sleep(0.5)
        time.sleep(2.0)  # a double would come within the consumer's polling delay

    def totals(self) -> dict[str, Any]:
        assert self._db is not None
        sent = sum(int((e.final or e.latest())["sent"]) for e in self.emitters)
        acked = sum(int((e.final or e.latest())["acked"]) for e in self.emitters)
        dropped = sum(int((e.final or e.latest())["dropped"]) for e in self.emitters)
        stored, distinct = self._db.event_identities("soak")
        fire_ids = {
            r[0] for r in self._fire_rows_slots(self.start, self.end) if r[1] in self.schedule_ids
        }
        counts = self.sink_counts()
        ran = {f: counts[f] for f in fire_ids if counts.get(f, 0) >= 1}
        expected = slots_between(self.anchors, self.start, self.end, self.start, self.end)
        return {
            "events_sent": sent,
            "events_acked": acked,
            "events_dropped": dropped,
            "events_stored": int(stored),
            "events_stored_distinct": int(distinct),
            "fires_expected": expected,
            "fire_rows": len(fire_ids),
            "fires": len(ran),
            "doubled": sum(1 for n in counts.values() if n > 1),
            "missing": expected - len(ran),
        }

    def tear_down(self) -> None:
        for emitter in self.emitters:
            emitter.stop()
        if self.sink is not None:
            self.sink.stop()
        if self._db is not None:
            self._db.close()
        self.brain.stop()


def flatness(samples: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Medians over the first and the last minute (or half, when shorter) of each figure."""
    window = min(60.0, seconds / 2)
    first = [s for s in samples if s["t"] <= window]
    last = [s for s in samples if s["t"] > seconds - window]

    def median(rows: list[dict[str, Any]], pick: Callable[[dict[str, Any]], Any]) -> float | None:
        values = [v for v in (pick(r) for r in rows) if v is not None]
        return statistics.median(values) if values else None

    figures: dict[str, Any] = {"window_s": window}
    picks: dict[str, Callable[[dict[str, Any]], Any]] = {
        "brain_rss_mib": lambda s: s["brain_rss_mib"],
        "agent_rss_mib_max": lambda s: max((v for v in s["agent_rss_mib"] if v), default=None),
        "events_per_s": lambda s: s["events_per_s"],
        "ack_p50_ms": lambda s: s["ack_p50_ms"],
        "ack_p99_ms": lambda s: s["ack_p99_ms"],
        "fire_p50_ms": lambda s: s["fire_p50_ms"],
        "fire_p99_ms": lambda s: s["fire_p99_ms"],
    }
    for name, pick in picks.items():
        figures[name] = {"first": median(first, pick), "last": median(last, pick)}
    return figures


def run_soak(
    workdir: Path, plan: SoakPlan, on_sample: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Run the soak; returns {"samples": [...], "totals": {...}, "flatness": {...}, ...}."""
    soak = Soak(workdir, plan)
    try:
        soak.set_up()
        time.sleep(max(0.0, soak.start - time.time()))
        soak.baseline()
        next_sample = soak.start + plan.sample_every
        while next_sample <= soak.end + 0.001:
            while time.time() < next_sample:
                soak.check_alive()
                time.sleep(min(0.5, max(0.0, next_sample - time.time())))
            sample = soak.sample()
            if on_sample is not None:
                on_sample(sample)
            next_sample += plan.sample_every
        soak.settle()
        totals = soak.totals()
        return {
            "agents": [e.name for e in soak.emitters] + ["huey-consumer"],
            "samples": soak.samples,
            "totals": totals,
            "flatness": flatness(soak.samples, plan.seconds),
        }
    finally:
        soak.tear_down()
