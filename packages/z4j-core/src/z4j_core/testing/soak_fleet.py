"""The fleet soak on Postgres, shared by tests/soak/test_soak_fleet.py (a short run in CI, ten
minutes in `nox -s soak_nightly`) and bench/soak_pg.py (an hour by default).

What runs, all real processes: two brains (`z4j brain serve`) on one Postgres database with a
short event retention; the fleet (fleet.py): one real worker per engine (Celery, RQ, Dramatiq,
Huey, arq, taskiq) with the agent, spread over the brains, one of them (`cut_engine`) connected
through a proxy; application processes with the agent (soak.py's `Emitter`) streaming task
lifecycles at `events_per_s` in total; `fires_per_s` interval schedules of 1 s spread over the
six engines, their anchors spread over the second, each firing the engine's task that counts
its run in Redis by its job id (the fire id).

Faults, on the periods of issue 26 (a leader SIGKILLed every 5 minutes and started again, a
brain restarted every 7, the proxied agent's network cut every 3), scaled down for runs shorter
than ten minutes so that each kind happens at least once (`FaultPlan.for_run`).

Every `sample_every` seconds: the resident memory of every process (each brain, each emitter,
each process of each engine's worker), the soak's events stored per second, emit-to-ack and
fire latencies, the database's and the events table's size on disk, and how many brains lead.
The soak's events are read back as they are stored (by position, before the retention purges
them) into one counter per emitted event. At the end: every emitted event stored exactly once,
every slot fired once and run exactly once in its own engine, one leader; and per process a
memory verdict after warm-up (`memory_verdict`). `run_fleet_soak` returns the figures; the
caller asserts or prints.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.brainstore import BrainStore
from z4j_core.testing.faults.proxy import ThreadedProxy
from z4j_core.testing.fleet import APP, ENGINES, Fleet
from z4j_core.testing.sink import is_leader
from z4j_core.testing.soak import LEAD_SECONDS, Emitter, pct, rss_or_none, slots_between
from z4j_core.testing.soak_emitter import KINDS
from z4j_core.testing.stats import process_group, slope_per_minute

SOAK_APP = "soak"  # the emitters' app (Emitter sets it); the fleet's workers are APP
#: Fault periods of a run of this length or longer are issue 26's; shorter runs scale them.
FULL_SCALE_SECONDS = 600.0
LEADER_KILL_EVERY = 300.0
BRAIN_RESTART_EVERY = 420.0
LINK_CUT_EVERY = 180.0
LINK_CUT_FOR = 20.0
LEADER_DOWN_FOR = 5.0
#: Growth over the window after warm-up below this is never called a leak (allocator arenas,
#: caches filling): a leak of 1 KiB per fire over an hour at 100 fires/s is 350 MiB.
FLAT_FLOOR_MIB = 8.0
RESTARTED_WARM_UP = 60.0
MIN_JUDGED = 180.0
SCAN_BATCH = 50_000
SETTLE_DEADLINE = 240.0


@dataclass(frozen=True)
class FaultPlan:
    leader_kill_every: float
    restart_every: float
    cut_every: float
    cut_for: float
    leader_down_for: float

    @classmethod
    def for_run(cls, seconds: float) -> FaultPlan:
        """Issue 26's periods for ten minutes or more; proportionally shorter below that."""
        scale = min(1.0, seconds / FULL_SCALE_SECONDS)
        return cls(
            leader_kill_every=LEADER_KILL_EVERY * scale,
            restart_every=BRAIN_RESTART_EVERY * scale,
            cut_every=LINK_CUT_EVERY * scale,
            cut_for=max(4.0, LINK_CUT_FOR * scale),
            leader_down_for=max(2.0, LEADER_DOWN_FOR * scale),
        )

    def timeline(self, seconds: float) -> list[tuple[float, str]]:
        """(seconds after the start, kind) of every fault that fits in the run, in order."""
        faults: list[tuple[float, str]] = []
        for every, kind, lasts in (
            (self.leader_kill_every, "leader_kill", self.leader_down_for),
            (self.restart_every, "brain_restart", 0.0),
            (self.cut_every, "link_cut", self.cut_for),
        ):
            k = 1
            while k * every + lasts < seconds:
                faults.append((k * every, kind))
                k += 1
        return sorted(faults)


@dataclass(frozen=True)
class FleetSoakPlan:
    seconds: int
    events_per_s: float = 5000.0
    fires_per_s: int = 100  # interval schedules of 1 s over the engines
    emitters: int = 4
    brains: int = 2
    sample_every: float = 10.0
    cut_engine: str = "huey"  # its agent reaches its brain through the proxy that is cut
    faults: FaultPlan | None = None  # None: FaultPlan.for_run(seconds)
    retention_s: float | None = None  # None: a fifth of the run, at least a minute
    warm_up_s: float | None = None  # None: a quarter of the run, at most five minutes

    @property
    def fault_plan(self) -> FaultPlan:
        return self.faults or FaultPlan.for_run(self.seconds)

    @property
    def retention(self) -> float:
        return self.retention_s or max(60.0, self.seconds / 5)

    @property
    def warm_up(self) -> float:
        return self.warm_up_s if self.warm_up_s is not None else min(300.0, self.seconds / 4)


def memory_verdict(
    series: Mapping[str, list[tuple[float, float]]], warm_up: float, seconds: float
) -> dict[str, dict[str, Any]]:
    """Per process (a label and its pid, as sampled): over its samples after warm-up, the
    least-squares slope in MiB per minute, the spread (max - min) of what the line does not
    explain, the growth the slope makes over that stretch, and `flat`: the growth stays within
    the spread or `FLAT_FLOOR_MIB`. A process started during the run (a restarted brain) warms
    up for `RESTARTED_WARM_UP` after its first sample. A stretch shorter than half the window
    after warm-up or than `MIN_JUDGED` (whichever is shorter: a brain lives at most one fault
    period) gets no verdict (a job's work horse, a brain killed soon after its start)."""
    window = seconds - warm_up
    found: dict[str, dict[str, Any]] = {}
    for name, points in series.items():
        born = points[0][0]
        start = warm_up if born <= warm_up else born + RESTARTED_WARM_UP
        after = [(t, v) for t, v in points if t >= start]
        if len(after) < 4 or after[-1][0] - after[0][0] < min(window / 2, MIN_JUDGED):
            continue
        slope = slope_per_minute(after)
        t0 = after[0][0]
        mean_t = sum(t for t, _ in after) / len(after)
        mean_v = sum(v for _, v in after) / len(after)
        residuals = [v - (mean_v + slope * (t - mean_t) / 60) for t, v in after]
        spread = max(residuals) - min(residuals)
        span_min = (after[-1][0] - t0) / 60
        growth = slope * span_min
        found[name] = {
            "from_s": t0,
            "first_mib": after[0][1],
            "last_mib": after[-1][1],
            "slope_mib_per_min": slope,
            "spread_mib": spread,
            "growth_mib": growth,
            "minutes": span_min,
            "flat": growth <= max(spread, FLAT_FLOOR_MIB),
        }
    return found


class EventLedger:
    """One counter per emitted event (emitter, task, kind), filled by reading the brain's
    events after the last position read: stored once, twice, or never."""

    def __init__(self, totals: Mapping[str, int]) -> None:
        self.counts = {name: bytearray(total) for name, total in totals.items()}
        self.position = 0
        self.read = 0
        self.foreign = 0  # rows of the soak's app that no emitter sent (must stay 0)
        self.saturated = 0  # an event stored more than 255 times (counted as doubled anyway)

    def add(self, task_id: str, kind: str) -> None:
        name, _, number = task_id.rpartition("-")
        counts = self.counts.get(name)
        if counts is None or not number.isdigit() or kind not in KINDS:
            self.foreign += 1
            return
        index = int(number) * 3 + KINDS.index(kind)
        if index >= len(counts):
            self.foreign += 1
        elif counts[index] == 255:
            self.saturated += 1
        else:
            counts[index] += 1

    def scan(self, store: BrainStore) -> int:
        """Read what was stored since the last scan; returns how many rows."""
        before = self.read
        while True:
            rows = store.events_after(self.position, SOAK_APP, SCAN_BATCH)
            for position, task_id, kind in rows:
                self.add(task_id, kind)
                self.position = max(self.position, int(position))
            self.read += len(rows)
            if len(rows) < SCAN_BATCH:
                return self.read - before

    def tally(self) -> dict[str, int]:
        once = twice = never = 0
        for counts in self.counts.values():
            never += counts.count(0)
            once += counts.count(1)
        twice = sum(len(c) for c in self.counts.values()) - once - never
        return {"stored_once": once, "stored_twice": twice, "never_stored": never}


class FleetSoak:
    """One run: set up, sample while the faults happen, settle, count."""

    def __init__(
        self,
        workdir: Path,
        plan: FleetSoakPlan,
        pythons: Mapping[str, Path],
        redis_url: str,
        database: str,
        *,
        say: Callable[[str], None] = print,
    ) -> None:
        if plan.brains < 2:
            raise ValueError("the fleet soak kills a leader: it needs two brains or more")
        if plan.cut_engine not in {e.name for e in ENGINES}:
            raise ValueError(f"unknown engine to cut: {plan.cut_engine!r}")
        self.workdir = workdir
        self.plan = plan
        self.say = say
        self.database = database
        retention_days = plan.retention / 86400
        brain_env = {
            "Z4J_EVENT_RETENTION_DAYS": f"{retention_days:.9f}",
            "Z4J_PURGE_INTERVAL_SECONDS": str(max(5.0, plan.retention / 4)),
        }
        self.fleet = Fleet(
            workdir / "fleet", pythons, redis_url, database, say=say, brains=plan.brains,
            brain_env=brain_env, tail_events=False,
        )  # fmt: skip
        cut_index = next(i for i, e in enumerate(ENGINES) if e.name == plan.cut_engine)
        self.cut_brain = self.fleet.brains[cut_index % plan.brains]
        self.proxy = ThreadedProxy(self.cut_brain.port)
        self.emitters: list[Emitter] = []
        self.schedule_engine: dict[str, str] = {}  # schedule id -> engine
        self.anchors: list[float] = []
        self.start = self.end = 0.0
        self.samples: list[dict[str, Any]] = []
        self.memory: dict[str, list[tuple[float, float]]] = {}
        self.faults: list[dict[str, Any]] = []
        self.fault_errors: list[str] = []
        self.ledger: EventLedger | None = None
        self._store: BrainStore | None = None
        self._scanned_at = 0.0
        self._answered_after = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def brains(self) -> list[BrainProcess]:
        return self.fleet.brains

    # -- set up ------------------------------------------------------------------------------

    def set_up(self) -> None:
        plan = self.plan
        self.proxy.start()
        self.fleet.agent_urls[plan.cut_engine] = self.proxy.url()
        self.fleet.start()
        token = self.brains[0].api("POST", "/api/v1/tokens", {"name": "soak-apps"})["token"]
        self.start = math.ceil(time.time() + LEAD_SECONDS)
        self.end = self.start + plan.seconds
        first = datetime.fromtimestamp(self.start, timezone.utc).isoformat()
        last = datetime.fromtimestamp(self.end - 0.001, timezone.utc).isoformat()
        for i in range(plan.fires_per_s):
            engine = ENGINES[i % len(ENGINES)]
            anchor = self.start + i / plan.fires_per_s
            name = f"soak-{engine.name}-{i:04d}"
            spec = {
                "kind": "interval", "every": "1s", "start": first, "end": last,
                "anchor": datetime.fromtimestamp(anchor, timezone.utc).isoformat(),
                "catch_up": "all", "misfire_grace": "120s",
            }  # fmt: skip
            body = {"name": name, "task": engine.task, "engine": engine.name, "app": APP,
                    "schedule": spec, "args": [name]}  # fmt: skip
            item = self.brains[0].api("POST", "/api/v1/schedules", body)
            self.schedule_engine[item["id"]] = engine.name
            self.anchors.append(anchor)
        if time.time() > self.start - 2:
            raise RuntimeError("setting up took longer than the lead; the machine is too busy")
        rate = plan.events_per_s / plan.emitters
        for k in range(plan.emitters):
            brain = self.brains[k % len(self.brains)]
            self.emitters.append(
                Emitter(f"e{k}", brain, token=token, rate=rate, start=self.start, end=self.end,
                        spool=self.workdir / f"spool-e{k}")
            )  # fmt: skip
        total = int(plan.seconds * rate)
        self.ledger = EventLedger({e.name: total for e in self.emitters})
        self._store = BrainStore(self.database, keep_open=True)
        self._scanned_at = self._answered_after = self.start
        timeline = plan.fault_plan.timeline(plan.seconds)
        brain_faults = [f for f in timeline if f[1] != "link_cut"]
        link_faults = [f for f in timeline if f[1] == "link_cut"]
        for name, faults in (("brain-faults", brain_faults), ("link-faults", link_faults)):
            thread = threading.Thread(target=self._faults, args=(faults,), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()
        self.say(
            f"soak starts at {first}: {plan.seconds} s, faults at "
            + ", ".join(f"{kind} +{at:.0f}s" for at, kind in timeline)
        )

    # -- faults ------------------------------------------------------------------------------

    def _faults(self, timeline: list[tuple[float, str]]) -> None:
        for at, kind in timeline:
            if self._stop.wait(max(0.0, self.start + at - time.time())):
                return
            began = time.time()
            try:
                record = getattr(self, f"_{kind}")()
            except Exception as exc:
                self.fault_errors.append(f"{kind} at +{at:.0f}s: {exc!r}")
                continue
            record.update(kind=kind, t=round(began - self.start, 1),
                          lasted_s=round(time.time() - began, 2))  # fmt: skip
            with self._lock:
                self.faults.append(record)
            self.say(f"fault: {record}")

    def leaders(self) -> list[str]:
        return [b.workdir.name for b in self.brains if is_leader(b)]

    def _leader_kill(self) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while not (leading := [b for b in self.brains if is_leader(b)]):
            if time.monotonic() > deadline:
                raise RuntimeError("no brain led for a minute")
            time.sleep(0.5)
        leader = leading[0]
        killed = time.monotonic()
        leader.kill()
        others = [b for b in self.brains if b is not leader]
        takeover = None
        while time.monotonic() - killed < 90:
            if any(is_leader(b) for b in others):
                takeover = time.monotonic() - killed
                break
            time.sleep(0.2)
        time.sleep(max(0.0, self.plan.fault_plan.leader_down_for - (time.monotonic() - killed)))
        leader.start(timeout=90)
        return {"brain": leader.workdir.name, "takeover_s": takeover}

    def _brain_restart(self) -> dict[str, Any]:
        restarts = sum(1 for f in self.faults if f["kind"] == "brain_restart")
        brain = self.brains[restarts % len(self.brains)]
        was_leader = is_leader(brain)
        brain.stop()
        brain.start(timeout=90)
        return {"brain": brain.workdir.name, "was_leader": was_leader}

    def _link_cut(self) -> dict[str, Any]:
        self.proxy.blackhole()
        time.sleep(self.plan.fault_plan.cut_for)
        reset = self.proxy.restore()  # what was held open is reset as the path comes back
        return {"engine": self.plan.cut_engine, "connections_reset": reset}

    # -- sampling ----------------------------------------------------------------------------

    def processes(self) -> dict[str, int]:
        """label -> pid of every process of the soak now."""
        found: dict[str, int] = {}
        for brain in self.brains:
            if brain.process is not None and brain.process.poll() is None:
                found[brain.workdir.name] = brain.process.pid
        for emitter in self.emitters:
            found[emitter.name] = emitter.process.pid
        for worker in self.fleet.workers:
            for rank, pid in enumerate(process_group(worker.process.pid)):
                label = worker.log_path.stem + ("" if rank == 0 else f"/{rank}")
                found[label if label not in found else f"{label}-{pid}"] = pid
        return found

    def sample(self) -> dict[str, Any]:
        assert self._store is not None and self.ledger is not None
        now = time.time()
        t = now - self.start
        rss: dict[str, float] = {}
        for label, pid in self.processes().items():
            value = rss_or_none(pid)
            if value is not None:
                rss[label] = value
                self.memory.setdefault(f"{label}[{pid}]", []).append((t, value))
        stored = self.ledger.scan(self._store)
        rate = stored / (now - self._scanned_at) if now > self._scanned_at else None
        self._scanned_at = now
        lines = [line for e in self.emitters for line in e.new_lines()]
        acks = [ms for line in lines for ms in line.get("ack_ms", [])]
        answered = [
            r for r in self._store.fires_answered_between(self._answered_after, now)
            if r[1] in self.schedule_engine
        ]  # fmt: skip
        self._answered_after = now
        fire_ms = [(r[3] - r[2]) * 1000 for r in answered]
        database, events = self._store.disk_bytes()
        sample = {
            "t": round(t, 1),
            "rss_mib": rss,
            "events_per_s": rate,
            "ack_p50_ms": pct(acks, 0.5),
            "ack_p99_ms": pct(acks, 0.99),
            "fires_answered": len(answered),
            "fire_p50_ms": pct(fire_ms, 0.5),
            "fire_p99_ms": pct(fire_ms, 0.99),
            "database_mib": database / 2**20,
            "events_table_mib": events / 2**20,
            "leaders": len(self.leaders()),
            "loadavg": os.getloadavg()[0],
        }
        self.samples.append(sample)
        return sample

    def check_alive(self) -> None:
        for worker in self.fleet.workers:
            if worker.process.poll() is not None:
                raise RuntimeError(
                    f"the {worker.engine.name} worker exited ({worker.process.returncode}):\n"
                    f"{worker.output()}"
                )
        for emitter in self.emitters:
            if emitter.process.poll() is not None and emitter.final is None:
                emitter.stop()
                raise RuntimeError(f"emitter {emitter.name} exited:\n{emitter.stderr}")
        if self.fault_errors:
            raise RuntimeError(f"a fault could not be made: {self.fault_errors}")

    # -- the end -----------------------------------------------------------------------------

    def fire_rows(self) -> list[tuple[Any, ...]]:
        assert self._store is not None
        rows = self._store.fires_in_slots(self.start, self.end, but_kind="trigger")
        return [r for r in rows if r[1] in self.schedule_engine]

    def runs(self) -> dict[str, dict[str, int]]:
        return {engine.name: self.fleet.runs(engine.name) for engine in ENGINES}

    def settle(self) -> None:
        """Wait for the faults to end, every emitter's final line, every event read back, every
        slot's fire run; then a moment for a double to show."""
        assert self._store is not None and self.ledger is not None
        for thread in self._threads:
            thread.join(SETTLE_DEADLINE)
        deadline = time.monotonic() + SETTLE_DEADLINE
        expected = slots_between(self.anchors, self.start, self.end, self.start, self.end)
        while time.monotonic() < deadline:
            self.check_alive()
            self.ledger.scan(self._store)
            finals = all(e.final is not None for e in self.emitters)
            stored = self.ledger.tally()["never_stored"] == 0
            fire_ids = {r[0] for r in self.fire_rows()}
            ran = {job for runs in self.runs().values() for job in runs}
            if finals and stored and len(fire_ids) >= expected and fire_ids <= ran:
                break
            time.sleep(2.0)
        time.sleep(3.0)
        self.ledger.scan(self._store)

    def totals(self) -> dict[str, Any]:
        assert self.ledger is not None
        finals = [e.final or e.latest() for e in self.emitters]
        rows = self.fire_rows()
        states: Counter[str] = Counter()
        assert self._store is not None
        for fire in self._store.fires_of_app(APP):
            if fire["schedule_id"] in self.schedule_engine and self.start <= fire["slot"]:
                states[fire["state"]] += 1
        runs = self.runs()
        once = twice = never = elsewhere = 0
        for fire_id, schedule_id in rows:
            engine = self.schedule_engine[schedule_id]
            n = runs[engine].get(fire_id, 0)
            once += n == 1
            twice += n > 1
            never += n == 0
            elsewhere += any(fire_id in r for name, r in runs.items() if name != engine)
        expected = slots_between(self.anchors, self.start, self.end, self.start, self.end)
        leaders: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # a lease may be between expiry and election
            leaders = self.leaders()
            if len(leaders) == 1:
                break
            time.sleep(1.0)
        return {
            "events_sent": sum(int(f["sent"]) for f in finals),
            "events_acked": sum(int(f["acked"]) for f in finals),
            "events_dropped": sum(int(f["dropped"]) for f in finals),
            **self.ledger.tally(),
            "events_foreign": self.ledger.foreign,
            "slots_expected": expected,
            "fire_rows": len(rows),
            "fire_rows_distinct": len({r[0] for r in rows}),
            "fire_states": dict(states),
            "ran_once": once,
            "ran_twice": twice,
            "never_ran": never,
            "ran_in_another_engine": elsewhere,
            "leaders_at_end": len(leaders),
            "faults": Counter(f["kind"] for f in self.faults),
        }

    def disk(self) -> dict[str, Any]:
        """The database's size on disk: at the end of the first retention period, its peak
        after that, and at the end (bounded: the peak stays near the first)."""
        after = [s for s in self.samples if s["t"] >= self.plan.retention]
        if not after:
            return {}
        return {
            "retention_s": self.plan.retention,
            "database_mib_at_retention": after[0]["database_mib"],
            "database_mib_peak_after": max(s["database_mib"] for s in after),
            "database_mib_end": after[-1]["database_mib"],
            "events_table_mib_at_retention": after[0]["events_table_mib"],
            "events_table_mib_peak_after": max(s["events_table_mib"] for s in after),
            "events_table_mib_end": after[-1]["events_table_mib"],
        }

    def tear_down(self) -> None:
        self._stop.set()
        for emitter in self.emitters:
            emitter.stop()
        self.fleet.stop()
        self.proxy.close()
        if self._store is not None:
            self._store.close()
        for thread in self._threads:
            thread.join(5)


@dataclass
class FleetSoakResult:
    plan: FleetSoakPlan
    samples: list[dict[str, Any]]
    totals: dict[str, Any]
    faults: list[dict[str, Any]]
    memory: dict[str, dict[str, Any]]
    disk: dict[str, Any]
    log: list[str] = field(default_factory=list)


def run_fleet_soak(
    workdir: Path,
    plan: FleetSoakPlan,
    pythons: Mapping[str, Path],
    redis_url: str,
    database: str,
    *,
    say: Callable[[str], None] = print,
    on_sample: Callable[[dict[str, Any]], None] | None = None,
) -> FleetSoakResult:
    soak = FleetSoak(workdir, plan, pythons, redis_url, database, say=say)
    try:
        soak.set_up()
        time.sleep(max(0.0, soak.start - time.time()))
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
        return FleetSoakResult(
            plan=plan,
            samples=soak.samples,
            totals=soak.totals(),
            faults=soak.faults,
            memory=memory_verdict(soak.memory, plan.warm_up, plan.seconds),
            disk=soak.disk(),
        )
    finally:
        soak.tear_down()
