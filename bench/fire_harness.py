"""What the fire-latency benchmarks share: one engine worker with the agent per engine, its
interpreter, schedules created through a real brain's API, reading the brain's fires, and the
JSON the benchmark report reads.

Owns: how each engine's worker is started (`ENGINES`), which interpreter runs it (`--python`,
this one when it has the engine, else a virtualenv built with uv from this checkout's sources),
and turning fire rows into the report's `fire_latency` figures. Never asserts on time.
The worker apps live in `bench/fire_apps/`; each of their tasks appends its engine job id to a
sink file, so executions are counted per fire (a fire's native id) as well as fires per slot.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APPS = HERE / "fire_apps"
sys.path.insert(0, str(ROOT / "tests" / "scheduler"))

from sched_harness import live_agents, make_brain  # noqa: E402

from z4j_core.testing import services  # noqa: E402
from z4j_core.testing.brainproc import BrainProcess  # noqa: E402

APP = "z4j-fire"


@dataclass(frozen=True)
class Engine:
    """How to run one engine's worker with the agent for the fire-latency benchmarks."""

    name: str
    #: What its interpreter needs besides z4j-core and the adapter (installed from this checkout).
    requirements: tuple[str, ...]
    #: The task's name as the brain's schedules give it.
    task: str
    #: Schedules per second by default: half the engine's no-op throughput measured on this
    #: machine by bench/bench_<engine>.py (docs/engines/<engine>.md), at most 1,000.
    default_rate: int
    rate_note: str
    #: Agents the worker connects (one per worker process that has one).
    agents: int
    argv: Callable[[str, str], list[str]] = field(repr=False)  # (python, queue) -> argv
    stop_signal: int = signal.SIGTERM


def _bin(python: str, name: str) -> str:
    return str(Path(python).parent / name)


ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        Engine(
            "huey", ("huey", "redis"), "fire_huey.tick", 1000,
            "bench_huey: 2,251 tasks/s without the agent, 2,221 with (RedisHuey, 1 worker)", 1,
            lambda py, q: [py, "-m", "huey.bin.huey_consumer", "fire_huey.huey", "--workers", "8",
                           "--delay", "0.01", "--max-delay", "0.05"],
            signal.SIGINT,
        ),
        Engine(
            "celery", ("celery[redis]",), "fire.tick", 400,
            "bench_celery: 893 tasks/s without the agent, 636 with (prefork 2, Redis)", 1,
            lambda py, q: [py, "-m", "celery", "-A", "fire_celery", "worker", "--pool", "prefork",
                           "--concurrency", "2", "--queues", q, "--loglevel", "WARNING",
                           "--without-gossip", "--without-mingle", "--without-heartbeat"],
        ),
        Engine(
            "rq", ("rq>=3.0", "rq-scheduler"), "fire_rq.tick", 30,
            "bench_rq: 67 jobs/s without the agent, 52 with (RQ forks a horse per job)", 1,
            lambda py, q: [_bin(py, "rq"), "worker", "-w", "z4j_rq.Worker", "-c",
                           "fire_rq_settings", "--logging_level", "WARNING",
                           "--disable-job-desc-logging", "default"],
        ),
        Engine(
            "dramatiq", ("dramatiq[redis]",), "tick", 1000,
            "bench_dramatiq: 2,027 messages/s without the agent, 1,878 with (2 processes x 4 "
            "threads)", 2,
            lambda py, q: [py, "-m", "dramatiq", "fire_dramatiq", "--processes", "2",
                           "--threads", "4"],
        ),
        Engine(
            "arq", ("arq",), "tick", 300,
            "bench_arq --quick: 639 jobs/s without the agent, median of 3 rounds on this loaded "
            "machine (one quiet 1,000-job round gave 2,182); at 1,000 fires/s the agent's "
            "enqueue fell seconds behind here", 1,
            lambda py, q: [_bin(py, "arq"), "fire_arq.WorkerSettings"],
        ),
        Engine(
            "taskiq", ("taskiq", "taskiq-redis"), "fire.tick", 1000,
            "bench_taskiq: 2,714 tasks/s without the agent in an undisturbed round (1 worker "
            "process, 100 async tasks)", 1,
            lambda py, q: [py, "-m", "taskiq", "worker", "fire_taskiq:broker", "--workers", "1",
                           "--max-async-tasks", "100", "--log-level", "WARNING"],
            signal.SIGINT,
        ),
    )
}  # fmt: skip


# -- interpreters ----------------------------------------------------------------------------


def engine_python(engine: Engine, given: str | None) -> str:
    """The interpreter that runs `engine`'s worker: `given`, else this one when it has the
    engine and its adapter, else `.venv-bench-<engine>` at the repository root (built with uv
    from this checkout's z4j-core and adapter, and the engine's requirements, once)."""
    if given:
        return given
    module = engine.name
    if importlib.util.find_spec(module) and importlib.util.find_spec(f"z4j_{module}"):
        return sys.executable
    venv = ROOT / f".venv-bench-{engine.name}"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", f"import {module}, z4j_{module}"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(python)
    uv = shutil.which("uv") or _bin(sys.executable, "uv")
    if not Path(uv).exists():
        raise SystemExit(
            f"{engine.name} is not installed here and uv is not found to build {venv}: "
            f"pip install uv, or pass --python PATH of an interpreter that has "
            f"{', '.join(engine.requirements)} and -e packages/z4j-core -e "
            f"packages/z4j-{engine.name} installed"
        )
    print(f"building {venv} for {engine.name} (uv, this checkout's sources)", flush=True)
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python),
         "-e", str(ROOT / "packages" / "z4j-core"),
         "-e", str(ROOT / "packages" / f"z4j-{engine.name}"), *engine.requirements],
        check=True, env=env,
    )  # fmt: skip
    return str(python)


# -- processes ---------------------------------------------------------------------------------


class Process:
    """A child in its own session, logging to a file; `stop()` ends it and all it started."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        log_path: Path,
        stop_signal: int = signal.SIGTERM,
        cwd: Path = APPS,
    ) -> None:
        self.log_path = log_path
        self.stop_signal = stop_signal
        log = open(log_path, "ab")  # noqa: SIM115 -- handed to the child
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):  # nothing it started may outlive it
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(10)

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def app_env(redis_url: str, queue: str, sink: Path, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        **extra,
        "FIRE_REDIS_URL": redis_url,
        "FIRE_QUEUE": queue,
        "FIRE_SINK": str(sink),
        "TZ": "UTC",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")])),
    }


@dataclass
class Rig:
    """A brain, a Redis database of this run's own and one engine worker with the agent."""

    engine: Engine
    brain: BrainProcess
    worker: Process
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
    worker = Process(
        engine.argv(python, queue), env, work / f"worker-{engine.name}.log", engine.stop_signal
    )
    try:
        deadline = time.monotonic() + 60
        while live_agents(brain) < engine.agents:
            if not worker.alive() or time.monotonic() > deadline:
                raise SystemExit(
                    f"the {engine.name} worker's agent did not connect "
                    f"(log {worker.log_path}):\n{worker.tail()}"
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
        bodies.append({"name": f"{prefix}{i:05d}", "task": engine.task, "engine": engine.name,
                       "app": APP, "schedule": spec})  # fmt: skip
    return bodies, anchors


FIRE_COLUMNS = (
    "fire_id, schedule_id, kind, slot, due_at, state, native_id, created_at, sent_at, answered_at"
)


def query(brain: BrainProcess, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of one read of the brain's database (SQLite, or Postgres: `?` become `%s`)."""
    if brain.database.startswith(("postgres://", "postgresql://")):
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(brain.database, row_factory=dict_row) as conn:
            return [dict(r) for r in conn.execute(sql.replace("?", "%s"), params).fetchall()]
    with sqlite3.connect(brain.database, timeout=30) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, params).fetchall()]


def fire_rows(brain: BrainProcess, schedule_ids: set[str]) -> list[dict[str, Any]]:
    """The brain's fires of these schedules."""
    rows = query(brain, f"SELECT {FIRE_COLUMNS} FROM fires WHERE app = ?", (APP,))
    return [r for r in rows if r["schedule_id"] in schedule_ids]


def settled_fires(brain: BrainProcess, began: float, ended: float) -> int:
    """Fires of this benchmark's app with a slot in [began, ended) that are answered or given
    up (a cheap count: polling the whole table would take CPU from a brain catching up)."""
    rows = query(
        brain,
        "SELECT COUNT(*) AS n FROM fires WHERE app = ? AND slot >= ? AND slot < ? "
        "AND state NOT IN ('pending', 'delivering')",
        (APP, began, ended),
    )
    return int(rows[0]["n"])


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
            f"{name} p50 {pct(values, 0.5):.1f} / p99 {pct(values, 0.99):.1f} ms"
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


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


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
        "p99": round(pct(samples_ms, 0.99), 3) if ok else None,
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
        f"p50 {statistics.median(samples_ms):.1f} ms, p99 {pct(samples_ms, 0.99):.1f} ms, "
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
