"""What the fire-latency benchmarks share: one engine worker with the agent per engine, its
interpreter, schedules created through a real brain's API, reading the brain's fires, and the
JSON the benchmark report reads.

Owns: each engine's fire-latency workload (`FIRE_ENGINES`: its app in `bench/fire_apps/`, its
task, its default rate; the command line comes from engines.py), which interpreter runs it
(`--python`, this one when it has the engine, else an environment made by venvs.py), and turning
fire rows into the report's `fire_latency` figures. Never asserts on time. Each app's task
appends its engine job id to a sink file, so executions are counted per fire (a fire's native
id) as well as fires per slot.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.util
import json
import math
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from z4j_core.testing import services
from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.brainstore import BrainStore
from z4j_core.testing.engines import ENGINES as RUN_SPECS
from z4j_core.testing.engines import Engine as RunSpec
from z4j_core.testing.engines import WorkerProcess, WorkerRun, worker_env
from z4j_core.testing.sink import live_agents, make_brain
from z4j_core.testing.stats import percentile
from z4j_core.testing.venvs import checkout_root, ensure

APPS = checkout_root() / "bench" / "fire_apps"
APP = "z4j-fire"


@dataclass(frozen=True)
class Engine:
    """One engine's fire-latency workload; how to start its worker is `spec`'s."""

    spec: RunSpec
    #: What its interpreter needs besides the run spec's requirements.
    extra_requirements: tuple[str, ...]
    #: The task's name as the brain's schedules give it.
    task: str
    #: Schedules per second by default: half the engine's no-op throughput measured on this
    #: machine by bench/bench_<engine>.py (docs/engines/<engine>.md), at most 1,000.
    default_rate: int
    rate_note: str
    #: (python, queue) -> what the worker runs.
    run: Callable[[str, str], WorkerRun] = field(repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def requirements(self) -> tuple[str, ...]:
        return (*self.spec.requirements, *self.extra_requirements)

    def argv(self, python: str, queue: str) -> list[str]:
        return self.spec.worker(self.run(python, queue))

    def agents(self, python: str, queue: str) -> int:
        return self.spec.agents(self.run(python, queue))


ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        Engine(
            RUN_SPECS["huey"], (), "fire_huey.tick", 1000,
            "bench_huey: 2,251 tasks/s without the agent, 2,221 with (RedisHuey, 1 worker)",
            lambda py, q: WorkerRun(py, "fire_huey.huey", concurrency=8,
                                    options=("--delay", "0.01", "--max-delay", "0.05")),
        ),
        Engine(
            RUN_SPECS["celery"], (), "fire.tick", 400,
            "bench_celery: 893 tasks/s without the agent, 636 with (prefork 2, Redis)",
            lambda py, q: WorkerRun(py, "fire_celery", concurrency=2, queues=(q,),
                                    options=("--loglevel", "WARNING")),
        ),
        Engine(
            RUN_SPECS["rq"], ("rq-scheduler",), "fire_rq.tick", 30,
            "bench_rq: 67 jobs/s without the agent, 52 with (RQ forks a horse per job)",
            lambda py, q: WorkerRun(py, "fire_rq_settings", options=(
                "--logging_level", "WARNING", "--disable-job-desc-logging")),
        ),
        Engine(
            RUN_SPECS["dramatiq"], (), "tick", 1000,
            "bench_dramatiq: 2,027 messages/s without the agent, 1,878 with (2 processes x 4 "
            "threads)",
            lambda py, q: WorkerRun(py, "fire_dramatiq", processes=2, concurrency=4),
        ),
        Engine(
            RUN_SPECS["arq"], (), "tick", 300,
            "bench_arq --quick: 639 jobs/s without the agent, median of 3 rounds on this loaded "
            "machine (one quiet 1,000-job round gave 2,182); at 1,000 fires/s the agent's "
            "enqueue fell seconds behind here",
            lambda py, q: WorkerRun(py, "fire_arq.WorkerSettings"),
        ),
        Engine(
            RUN_SPECS["taskiq"], (), "fire.tick", 1000,
            "bench_taskiq: 2,714 tasks/s without the agent in an undisturbed round (1 worker "
            "process, 100 async tasks)",
            lambda py, q: WorkerRun(py, "fire_taskiq:broker", processes=1, concurrency=100,
                                    options=("--log-level", "WARNING")),
        ),
    )
}  # fmt: skip


# -- interpreters ----------------------------------------------------------------------------


def engine_python(engine: Engine, given: str | None) -> str:
    """The interpreter that runs `engine`'s worker: `given`, else this one when it has the
    engine and its adapter, else `.venv-bench-<engine>` at the checkout's root (venvs.py)."""
    if given:
        return given
    module = engine.name
    if importlib.util.find_spec(module) and importlib.util.find_spec(f"z4j_{module}"):
        return sys.executable
    environment = engine.spec.environment(f".venv-bench-{engine.name}", engine.extra_requirements)
    return str(ensure(environment))


# -- processes ---------------------------------------------------------------------------------


def Process(argv: list[str], env: dict[str, str], log_path: Path) -> WorkerProcess:
    """A process of a fire bench (a scheduler beside the workers), run from the apps folder."""
    return WorkerProcess(argv, env, log_path, cwd=APPS)


def start_worker(engine: Engine, python: str, queue: str, env: dict[str, str], log: Path) -> Any:
    return WorkerProcess.start(engine.spec, engine.run(python, queue), env, log, cwd=APPS)


def app_env(redis_url: str, queue: str, sink: Path, extra: dict[str, str]) -> dict[str, str]:
    return worker_env(
        APPS,
        extra={**extra, "FIRE_REDIS_URL": redis_url, "FIRE_QUEUE": queue, "FIRE_SINK": str(sink)},
    )


@dataclass
class Rig:
    """A brain, a Redis database of this run's own and one engine worker with the agent."""

    engine: Engine
    brain: BrainProcess
    worker: WorkerProcess
    redis_url: str
    sink: Path
    work: Path


@contextlib.contextmanager
def rig(
    engine: Engine, python: str, work: Path, redis_db: int, database_url: str | None = None
) -> Iterator[Rig]:
    """Start a brain (SQLite in `work`, or `database_url`), flush the run's Redis database,
    start the engine's worker with the agent, wait for its agents; stop all on exit."""
    import redis

    work.mkdir(parents=True, exist_ok=True)
    redis_url = services.redis_url(redis_db)
    redis.Redis.from_url(redis_url).flushdb()
    brain = make_brain(work / "brain", database_url)
    token = brain.create_token(f"fire-{engine.name}")
    brain.start()
    sink = work / "sink.txt"
    sink.touch()
    queue = f"z4j-fire-{services.run_id()}"
    env = app_env(redis_url, queue, sink, {
        "Z4J_BRAIN_URL": brain.url, "Z4J_TOKEN": token, "Z4J_APP": APP,
        "Z4J_SPOOL_DIR": str(work / "spool"),
    })  # fmt: skip
    worker = start_worker(engine, python, queue, env, work / f"worker-{engine.name}.log")
    try:
        deadline = time.monotonic() + 60
        while live_agents(brain) < engine.agents(python, queue):
            if not worker.alive() or time.monotonic() > deadline:
                raise SystemExit(
                    f"the {engine.name} worker's agent did not connect "
                    f"(log {worker.log_path}):\n{worker.output(3000)}"
                )
            time.sleep(0.1)
        yield Rig(engine, brain, worker, redis_url, sink, work)
    finally:
        worker.stop()
        brain.stop()


# -- schedules and fires -------------------------------------------------------------------------


def create_schedules(brain: BrainProcess, bodies: list[dict[str, Any]]) -> dict[str, str]:
    """POST every schedule (8 at a time); returns name -> schedule id."""
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda b: brain.api("POST", "/api/v1/schedules", b), bodies))
    return {item["name"]: item["id"] for item in created}


def interval_bodies(
    engine: Engine, count: int, period: float, *, base: datetime, start: datetime, prefix: str
) -> tuple[list[dict[str, Any]], list[float]]:
    """`count` interval schedules of `period` seconds, anchors spread evenly over one period
    from `base`; returns the bodies and each schedule's anchor (epoch seconds)."""
    bodies, anchors = [], []
    for i in range(count):
        anchor = base.timestamp() + i * period / count
        anchors.append(anchor)
        spec = {
            "kind": "interval",
            "every": f"{period:g}s",
            "anchor": datetime.fromtimestamp(anchor, timezone.utc).isoformat(),
            "start": start.isoformat(),
        }
        # force: made as the agents connect, before their inventories may be stored.
        bodies.append({"name": f"{prefix}{i:05d}", "task": engine.task, "engine": engine.name,
                       "app": APP, "schedule": spec, "force": True})  # fmt: skip
    return bodies, anchors


def fire_rows(brain: BrainProcess, schedule_ids: set[str]) -> list[dict[str, Any]]:
    """The brain's fires of these schedules (from its store: thousands of schedules)."""
    rows = BrainStore(brain.database).fires_of_app(APP)
    return [r for r in rows if r["schedule_id"] in schedule_ids]


def settled_fires(brain: BrainProcess, began: float, ended: float) -> int:
    """Fires of this benchmark's app with a slot in [began, ended) that are answered or given
    up (a cheap count: polling the whole table would take CPU from a brain catching up)."""
    return BrainStore(brain.database).settled_fires(APP, began, ended)


def sink_counts(sink: Path) -> Counter[str]:
    return Counter(line for line in sink.read_text().splitlines() if line)


def expected_slots(anchor: float, period: float, began: float, ended: float) -> list[float]:
    """The slots of an interval schedule (anchor, period) in [began, ended)."""
    first = anchor + max(0, -(-(began - anchor) // period)) * period
    slots = []
    while first < ended:
        slots.append(first)
        first += period
    return slots


def lateness(
    runs: list[tuple[int, float, float]],
    anchors: list[float],
    period: float,
    began: float,
    ended: float,
) -> tuple[list[float], int, int, int]:
    """(schedule index, due, on broker) runs -> lateness samples (ms, in slot order) of runs
    whose grid slot lies in [began, ended), slots, missing and doubled."""
    by_slot: dict[tuple[int, int], list[float]] = {}
    for index, due, published in runs:
        k = math.floor((due - anchors[index]) / period + 1e-6)
        slot = anchors[index] + k * period
        if began <= slot < ended:
            by_slot.setdefault((index, k), []).append((published - due) * 1000)
    slots = missing = doubled = 0
    for index, anchor in enumerate(anchors):
        first = math.ceil((began - anchor) / period - 1e-9)
        k = first
        while anchor + k * period < ended:
            slots += 1
            found = by_slot.get((index, k), [])
            missing += not found
            doubled += len(found) > 1
            k += 1
    ordered = sorted(by_slot.items(), key=lambda item: anchors[item[0][0]] + item[0][1] * period)
    samples = [ms for _, values in ordered for ms in values]
    return samples, slots, missing, doubled


@dataclass
class Tally:
    """One configuration's fires in the measured window, against the slots it should have."""

    latencies_ms: list[float]
    slots: int
    fires: int
    missing: int
    doubled: int
    states: Counter[str]
    executed_once: int
    not_executed: int
    executed_twice: int
    #: Where the time went, per enqueued fire (ms after the slot): the leader's tick popped it
    #: (`created_at`), the claim ran in the store's writer (`sent_at`), the answer arrived.
    phases: dict[str, list[float]] = field(default_factory=dict)

    def describe(self) -> str:
        states = ", ".join(f"{k} {v}" for k, v in sorted(self.states.items()))
        where = "; ".join(
            f"{name} p50 {percentile(values, 0.5):.1f} / p99 {percentile(values, 0.99):.1f} ms"
            for name, values in (("popped by the tick", self.phases.get("created_at", [])),
                                 ("claimed in the writer", self.phases.get("sent_at", [])))
            if values
        )  # fmt: skip
        return (
            f"after the slot: {where}\n  "
            f"{self.slots} slots, {self.fires} fires ({states}); missing {self.missing}, "
            f"doubled {self.doubled}; executions: once {self.executed_once}, never "
            f"{self.not_executed}, more than once {self.executed_twice}"
        )


def tally(
    rows: list[dict[str, Any]],
    slots_by_schedule: dict[str, list[float]],
    executions: Counter[str] | None,
) -> Tally:
    """Fires per expected slot (a slot is missing unless exactly one fire of it was
    `enqueued`; doubled when it has more than one fire, or its job ran more than once)."""
    wanted = {(sid, round(s, 3)) for sid, slots in slots_by_schedule.items() for s in slots}
    per_slot: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for row in rows:
        key = (row["schedule_id"], round(row["slot"], 3))
        if key in wanted:
            per_slot.setdefault(key, []).append(row)
    latencies, states = [], Counter[str]()
    phases: dict[str, list[float]] = {}
    missing = doubled = once = never = twice = 0
    for key in sorted(wanted, key=lambda k: (k[1], k[0])):  # samples in slot order
        found = per_slot.get(key, [])
        states.update(r["state"] for r in found)
        enqueued = [r for r in found if r["state"] == "enqueued" and r["answered_at"]]
        if len(found) > 1:
            doubled += 1
        if not enqueued:
            missing += 1
            continue
        fire = enqueued[0]
        latencies.append((fire["answered_at"] - fire["slot"]) * 1000)
        for phase in ("created_at", "sent_at"):
            if fire.get(phase):
                phases.setdefault(phase, []).append((fire[phase] - fire["slot"]) * 1000)
        if executions is not None:
            runs = executions.get(str(fire["native_id"] or fire["fire_id"]), 0)
            once += runs == 1
            never += runs == 0
            twice += runs > 1
    if executions is not None:
        doubled += twice
    return Tally(latencies, len(wanted), sum(len(v) for v in per_slot.values()), missing,
                 doubled, states, once, never, twice, phases)  # fmt: skip


# -- figures and the report's JSON -------------------------------------------------------------


def result(
    config: dict[str, Any], samples_ms: list[float], missing: int, doubled: int
) -> dict[str, Any]:
    import statistics

    ok = bool(samples_ms)
    return {
        "metric": "fire_latency",
        "config": config,
        "unit": "ms",
        "median": round(statistics.median(samples_ms), 3) if ok else None,
        "min": round(min(samples_ms), 3) if ok else None,
        "max": round(max(samples_ms), 3) if ok else None,
        "p99": round(percentile(samples_ms, 0.99), 3) if ok else None,
        "count": len(samples_ms),
        "missing": missing,
        "doubled": doubled,
        "samples": [round(v, 3) for v in samples_ms],
    }


def describe(samples_ms: list[float]) -> str:
    import statistics

    if not samples_ms:
        return "no fires"
    return (
        f"p50 {statistics.median(samples_ms):.1f} ms, p99 {percentile(samples_ms, 0.99):.1f} ms, "
        f"max {max(samples_ms):.1f} ms, min {min(samples_ms):.1f} ms"
    )


class Report:
    """The JSON document: bench name, start, argv, machine (load averages at both ends)."""

    def __init__(self, bench: str) -> None:
        self.doc: dict[str, Any] = {
            "bench": bench,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "argv": sys.argv[1:],
            "machine": {
                "cpus": os.cpu_count(),
                "loadavg_start": [round(x, 2) for x in os.getloadavg()],
                "loadavg_end": None,
                "python": platform.python_version(),
            },
            "results": [],
        }

    def add(self, entry: dict[str, Any]) -> None:
        self.doc["results"].append(entry)

    def finish(self, path: str | None) -> None:
        self.doc["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        start, end = self.doc["machine"]["loadavg_start"], self.doc["machine"]["loadavg_end"]
        print(f"machine: {os.cpu_count()} CPUs; load average {start} at start, {end} at end")
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(self.doc, indent=1) + "\n")
            print(f"JSON written to {path}")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of each thread of process `pid` (empty once it is gone)."""
    seconds = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return seconds


def cpu_share(pid: int, before: dict[int, float], after: dict[int, float], span: float) -> str:
    """How busy a process was over `span` seconds: all its threads, its main thread (the
    brain's event loop) and its busiest other thread (the brain's store writer, under load)."""
    used = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    main = used.get(pid, 0.0)
    others = sorted((v for tid, v in used.items() if tid != pid), reverse=True)
    return (
        f"{sum(used.values()) / span:.0%} of a CPU (main thread {main / span:.0%}, busiest "
        f"other thread {(others[0] if others else 0.0) / span:.0%})"
    )


def cpu_pressure() -> str:
    """The kernel's CPU pressure (PSI `some`: the share of time some runnable task waited for
    a CPU) over the last 10 and 60 s, or "unknown" where /proc/pressure is absent."""
    try:
        fields = Path("/proc/pressure/cpu").read_text().split("\n")[0].split()
    except OSError:
        return "unknown"
    values = dict(f.split("=") for f in fields[1:])
    return f"{values['avg10']}% (10 s), {values['avg60']}% (60 s)"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
