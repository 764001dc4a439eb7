"""A running fleet: one brain, one worker per engine with the agent, and the brain's schedules.

`Fleet` starts the brain (a `postgresql://` URL, or SQLite in its folder) and every engine's
processes, creates schedules through the `z4j` command exactly as an operator types them, and
reads back what happened: the brain's fires and events over its HTTP API, and the runs each
engine's workers counted in Redis (scripts/fleet_app/apps/fleet_runs.py). It is driven by
`scripts/fleet_app/main.py` (the `scripts/fleet` command) and by tests/fleet. Every process it
starts is stopped by `stop()`. How each engine's worker starts is engines.py's; what the fleet
adds per engine (its app, its native schedule, its solar event) is `ENGINES` here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from redis import Redis

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.engines import ENGINES as RUN_SPECS
from z4j_core.testing.engines import Engine as RunSpec
from z4j_core.testing.engines import WorkerProcess as SpecProcess
from z4j_core.testing.engines import WorkerRun, environment_name, worker_env
from z4j_core.testing.services import advisory_lock_base
from z4j_core.testing.sink import AUDIT_KEY
from z4j_core.testing.venvs import checkout_root

APPS = checkout_root() / "scripts" / "fleet_app" / "apps"
APP = "fleet"


@dataclass(frozen=True)
class Solar:
    event: str
    latitude: float
    longitude: float
    timezone: str


@dataclass(frozen=True)
class Engine:
    """One engine in the fleet: its run spec, and what its app in apps/ declares."""

    spec: RunSpec
    task: str  # the task the brain's schedules fire, as the engine names it
    native_source: str  # the inventory's source of the native schedule the app declares
    lifecycle: frozenset[str]  # event kinds every fired task must reach the brain with
    solar: Solar

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def environment(self) -> str:
        """Its FLEET_ENVIRONMENTS key (engines.py)."""
        return environment_name(self.spec)

    @property
    def stop_signal(self) -> signal.Signals:
        return self.spec.stop_signal

    @property
    def stop_timeout(self) -> float:
        return self.spec.stop_timeout

    def runs(self, python: Path, redis_url: str) -> list[WorkerRun]:
        py = str(python)
        return {
            "celery": [WorkerRun(py, "fleet_celery", concurrency=2, queues=("fleet-celery",),
                                 options=("--hostname", "fleet@%h", "--loglevel", "INFO"))],
            "rq": [WorkerRun(py, "fleet_rq_settings", options=("-u", redis_url,
                                                                "--with-scheduler"))],
            "dramatiq": [WorkerRun(py, "fleet_dramatiq", processes=1, concurrency=2,
                                   options=("--worker-shutdown-timeout", "5000"))],
            "huey": [WorkerRun(py, "fleet_huey.huey", concurrency=2,
                               options=("--delay", "0.05", "--max-delay", "0.2"))],
            "arq": [WorkerRun(py, "fleet_arq.WorkerSettings")],
            "taskiq": [WorkerRun(py, "fleet_taskiq:broker", processes=1, concurrency=4,
                                 options=("--shutdown-timeout", "5"))],
        }[self.name]  # fmt: skip

    def commands(self, python: Path, redis_url: str) -> list[list[str]]:
        """The processes of its deployment: its worker, and for RQ the `rq cron` process that
        holds its native schedule."""
        commands = [self.spec.worker(run) for run in self.runs(python, redis_url)]
        if self.name == "rq":
            rq = str(python.parent / "rq")
            commands.append([rq, "cron", str(APPS / "fleet_rq_cron.py"), "-u", redis_url])
        return commands


QUEUED = frozenset({"enqueued", "started", "succeeded"})

ENGINES = (
    Engine(RUN_SPECS["celery"], "fleet_celery.record", "celery_beat", QUEUED | {"received"},
           Solar("sunrise", 35.68, 139.69, "Asia/Tokyo")),
    Engine(RUN_SPECS["rq"], "fleet_rq.record", "rq_cron", QUEUED,
           Solar("sunset", 48.85, 2.35, "Europe/Paris")),
    Engine(RUN_SPECS["dramatiq"], "fleet_dramatiq.record", "periodiq", QUEUED,
           Solar("dawn", 40.71, -74.01, "America/New_York")),
    Engine(RUN_SPECS["huey"], "fleet_huey.record", "huey_periodic", QUEUED,
           Solar("dusk", -33.87, 151.21, "Australia/Sydney")),
    Engine(RUN_SPECS["arq"], "record", "arq_cron", QUEUED,
           Solar("noon", 52.52, 13.40, "Europe/Berlin")),
    Engine(RUN_SPECS["taskiq"], "fleet_taskiq.record", "taskiq_labels", QUEUED,
           Solar("sunset", -23.55, -46.63, "America/Sao_Paulo")),
)  # fmt: skip
BY_NAME = {engine.name: engine for engine in ENGINES}

#: A fire in one of these states is still on its way to an engine.
OPEN_FIRE_STATES = frozenset({"pending", "delivering"})
#: The task states that end a task.
TERMINAL_TASK_STATES = frozenset(
    {"succeeded", "failed", "revoked", "cancelled", "expired", "rejected", "skipped", "locked",
     "dead_lettered"}
)  # fmt: skip


@dataclass
class Schedule:
    """One of the fleet's schedules in the brain."""

    name: str
    engine: str
    kind: str  # cron, every, once, solar
    id: str = ""
    created_at: float = 0.0
    spec: dict[str, Any] = field(default_factory=dict)


class WorkerProcess(SpecProcess):
    """One engine process of the fleet, run from apps/; `stop()` ends it and all it started."""

    def __init__(self, engine: Engine, argv: list[str], env: dict[str, str], log_path: Path):
        super().__init__(argv, env, log_path, cwd=APPS, stop_signal=engine.stop_signal,
                         stop_timeout=engine.stop_timeout)  # fmt: skip
        self.engine = engine

    def output(self, chars: int | None = 3000) -> str:
        try:
            return super().output(chars)
        except OSError:
            return ""


@dataclass
class EngineView:
    """What one engine shows at one moment."""

    agents: int = 0
    fires: Counter[str] = field(default_factory=Counter)  # fire state -> count
    tasks: Counter[str] = field(default_factory=Counter)  # the fired tasks' latest states
    events: Counter[str] = field(default_factory=Counter)  # lifecycle events stored
    runs: dict[str, int] = field(default_factory=dict)  # job id -> runs counted in the engine


@dataclass
class Snapshot:
    at: float
    engines: dict[str, EngineView]
    fires: list[dict[str, Any]]  # every fire of the fleet's schedules, with `schedule`, `engine`


class Fleet:
    """brains: how many brain processes share the database (more than one needs Postgres); the
    engines' agents are spread over them in turn, and `agent_urls` (engine name -> URL, say a
    proxy's in front of a brain) overrides where one engine's agent connects. `brain_env` goes
    into every brain's environment. `tail_events`: count every stored event per engine and kind
    (off when something else streams thousands of events a second into the brains)."""

    def __init__(
        self,
        workdir: Path,
        pythons: Mapping[str, Path],
        redis_url: str,
        database: str | None = None,
        *,
        say: Callable[[str], None] = print,
        engines: Iterable[Engine] = ENGINES,
        brains: int = 1,
        brain_env: Mapping[str, str] | None = None,
        tail_events: bool = True,
    ) -> None:
        self.workdir = workdir
        self.pythons = dict(pythons)
        self.redis_url = redis_url
        self.engines = list(engines)
        self.say = say
        if brains < 1:
            raise ValueError(f"a fleet needs at least one brain, not {brains}")
        if brains > 1 and not (database or "").startswith("postgres"):
            raise ValueError("several brains share one database: give a postgresql:// URL")
        env = {"Z4J_LEADER_LOCK_KEY": str(advisory_lock_base() + 0x7A13), **(brain_env or {})}
        if brains > 1:
            env.setdefault("Z4J_AUDIT_KEY", AUDIT_KEY)  # brains sharing a database share it
        self.brains = [
            BrainProcess(
                workdir / ("brain" if brains == 1 else f"brain-{'abcdefgh'[i]}"),
                database=database,
                python=str(self.pythons["main"]),
                env=env,
                new_session=True,
            )
            for i in range(brains)
        ]
        self.brain = self.brains[0]
        self.agent_urls: dict[str, str] = {}
        self.tail_events = tail_events
        self.redis = Redis.from_url(redis_url)
        self.workers: list[WorkerProcess] = []
        self.schedules: list[Schedule] = []
        self.events: dict[str, Counter[str]] = {e.name: Counter() for e in self.engines}
        self._stop = threading.Event()
        self._tail: threading.Thread | None = None

    # -- processes ---------------------------------------------------------------------------

    def agent_url(self, index: int, engine: Engine) -> str:
        """Where `engine` (the index-th) connects: its override, else the brains in turn."""
        return self.agent_urls.get(engine.name) or self.brains[index % len(self.brains)].url

    def start(self, agent_timeout: float = 120.0) -> None:
        for engine in self.engines:
            self.redis.delete(f"fleet:runs:{engine.name}")
        token = self.brain.create_token("fleet")
        for brain in self.brains:
            brain.start()
        where = "Postgres" if self.brain.database.startswith("postgres") else "SQLite"
        listening = ", ".join(b.http_url for b in self.brains)
        self.say(f"brain listening on {listening} ({where}: {self.brain.database})")
        for index, engine in enumerate(self.engines):
            env = worker_env(
                APPS,
                brain_url=self.agent_url(index, engine),
                token=token,
                app=APP,
                spool_dir=self.workdir / f"spool-{engine.name}",
                extra={"FLEET_REDIS_URL": self.redis_url},
            )
            env.pop("Z4J_ADMIN_TOKEN", None)  # workers never hold the operator's token
            python = self.pythons[engine.environment]
            for number, argv in enumerate(engine.commands(python, self.redis_url)):
                log = self.workdir / f"{engine.name}-{number}.log"
                self.workers.append(WorkerProcess(engine, argv, env, log))
            self.say(f"{engine.name} started: {' '.join(self._short(a) for a in argv[:4])} ...")
        self._wait_for_agents(agent_timeout)
        self._wait_for_inventories(agent_timeout)
        if self.tail_events:
            self._tail = threading.Thread(
                target=self._tail_events, name="fleet-events", daemon=True
            )
            self._tail.start()

    @staticmethod
    def _short(arg: str) -> str:
        return Path(arg).name if "/" in arg else arg

    def _wait_for_inventories(self, timeout: float) -> None:
        """The brain checks a new schedule's app and task against the agents' inventories:
        wait until each engine's agents reported the fleet's task (or, for an engine whose
        task list is open, the app)."""
        from z4j_brain.schedule_health import OPEN_TASK_ENGINES

        deadline = time.monotonic() + timeout
        while True:
            inventories = self.brain.api("GET", "/api/v1/inventory")["inventory"]
            ours = [i for i in inventories if i["app"] == APP]
            waiting = [
                e.name
                for e in self.engines
                if not any(
                    i["engine"] == e.name
                    and (e.name in OPEN_TASK_ENGINES or e.task in {t["name"] for t in i["tasks"]})
                    for i in ours
                )
            ]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no inventory with the fleet's task from {sorted(waiting)}")
            time.sleep(0.2)

    def _wait_for_agents(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = {e.name for e in self.engines}
        while waiting:
            for worker in self.workers:
                if worker.process.poll() is not None:
                    raise RuntimeError(
                        f"the {worker.engine.name} process {' '.join(worker.argv)} exited "
                        f"({worker.process.returncode}):\n{worker.output()}"
                    )
            for agent in self.agents():
                for engine in agent["engines"]:
                    if engine["name"] in waiting:
                        waiting.discard(engine["name"])
                        self.say(
                            f"agent connected: {engine['name']} {engine['version']} "
                            f"(pid {agent['pid']}, {len(engine['capabilities'])} capabilities)"
                        )
            if waiting and time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {w.engine.name}: {w.log_path}\n{w.output()}"
                    for w in self.workers
                    if w.engine.name in waiting
                )
                raise RuntimeError(f"no agent for {sorted(waiting)} within {timeout:g}s\n{logs}")
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        if self._tail is not None:
            self._tail.join(5)
        with ThreadPoolExecutor(max_workers=max(len(self.workers), 1)) as pool:
            list(pool.map(WorkerProcess.stop, self.workers))
        slow = [
            f"{w.engine.name} {w.stop_seconds:.0f}s"
            for w in self.workers
            if w.stop_seconds >= w.engine.stop_timeout
        ]
        if slow:
            self.say(f"killed after their stop timeout: {', '.join(slow)}")
        for brain in self.brains:
            brain.stop()
        self.redis.close()

    # -- the z4j command -------------------------------------------------------------------------

    def z4j(self, *args: str, echo: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `z4j ARGS` as an operator would (pointed at the brain by Z4J_BRAIN_URL and
        Z4J_ADMIN_TOKEN) and show the command and its output."""
        result = subprocess.run(
            [str(self.pythons["main"]), "-m", "z4j_core.cli", *args],
            capture_output=True,
            text=True,
            env={**self.brain.env, "Z4J_BRAIN_URL": self.brain.http_url},
            timeout=120,
            check=False,
        )
        if echo:
            self.show_command(args, result)
        return result

    def show_command(self, args: Iterable[str], result: subprocess.CompletedProcess[str]) -> None:
        self.say("$ z4j " + " ".join(_quote(a) for a in args))
        for line in (result.stdout + result.stderr).rstrip().splitlines():
            self.say(f"    {line}")

    def z4j_many(
        self, commands: list[list[str]], echo: bool = True
    ) -> list[subprocess.CompletedProcess[str]]:
        """Run several `z4j` commands four at a time; show them in order; fail on the first
        that failed."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda args: self.z4j(*args, echo=False), commands))
        for args, result in zip(commands, results, strict=True):
            if echo:
                self.show_command(args, result)
            if result.returncode != 0:
                raise RuntimeError(f"z4j {' '.join(args)} failed: {result.stderr.strip()}")
        return results

    # -- schedules ---------------------------------------------------------------------------

    def create_schedules(
        self, cron: str = "* * * * * */2", every: str = "3s", oneshot_in: float = 8.0
    ) -> list[Schedule]:
        """Every kind for every engine, through `z4j schedules add`; the one-shots last, at
        `oneshot_in` seconds after the others exist, plus as long as creating those took (a
        one-shot created after its instant never fires, and on a loaded machine each `z4j`
        process takes a while to start)."""
        commands: list[list[str]] = []
        wanted: list[Schedule] = []
        for engine in self.engines:
            solar = engine.solar
            kinds = {
                "cron": ["--cron", cron],
                "every": ["--every", every],
                "solar": ["--solar", solar.event, "--lat", str(solar.latitude),
                          "--lon", str(solar.longitude), "--tz", solar.timezone],
            }  # fmt: skip
            for kind, option in kinds.items():
                name = f"{engine.name}-{kind}"
                wanted.append(Schedule(name, engine.name, kind))
                commands.append(self._add_command(name, engine, option))
        began = time.monotonic()
        self.z4j_many(commands)
        lead = oneshot_in + (time.monotonic() - began)
        at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=round(lead))
        commands = []
        for engine in self.engines:
            name = f"{engine.name}-once"
            wanted.append(Schedule(name, engine.name, "once"))
            commands.append(self._add_command(name, engine, ["--at", at.isoformat()]))
        self.z4j_many(commands)
        stored = {s["name"]: s for s in self.brain.api("GET", "/api/v1/schedules")["schedules"]}
        for schedule in wanted:
            row = stored[schedule.name]
            schedule.id = row["id"]
            schedule.created_at = float(row["created_at"])
            schedule.spec = row["schedule"]
        self.schedules = wanted
        return wanted

    @staticmethod
    def _add_command(name: str, engine: Engine, option: list[str]) -> list[str]:
        return ["schedules", "add", name, *option, "--task", engine.task, "--engine", engine.name,
                "--args", json.dumps([name])]  # fmt: skip

    def pause_all(self, note: str = "fleet stopping") -> None:
        """Pause every fleet schedule (through the CLI): slots after this never fire, so what
        was fired can settle and be counted."""
        names = [s.name for s in self.schedules if s.kind != "solar"]
        self.z4j_many([["schedules", "pause", n, "--note", note] for n in names], echo=False)
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        self.say(f"$ z4j schedules pause NAME --note {_quote(note)}   (x{len(names)}: {shown})")

    # -- what happened -------------------------------------------------------------------------

    def agents(self) -> list[dict[str, Any]]:
        agents: list[dict[str, Any]] = self.brain.api("GET", "/api/v1/agents?connected=1")["agents"]
        return agents

    def fires(self, schedule: Schedule) -> list[dict[str, Any]]:
        path = f"/api/v1/schedules/{schedule.id}/fires?limit=10000"
        found: list[dict[str, Any]] = self.brain.api("GET", path)["fires"]
        for fire in found:
            fire["schedule"] = schedule.name
            fire["engine"] = schedule.engine
        return sorted(found, key=lambda f: f["slot"])

    def runs(self, engine: str) -> dict[str, int]:
        raw = self.redis.hgetall(f"fleet:runs:{engine}")
        return {key.decode(): int(value) for key, value in raw.items()}

    def snapshot(self) -> Snapshot:
        views = {e.name: EngineView() for e in self.engines}
        for agent in self.agents():
            for engine in agent["engines"]:
                if engine["name"] in views:
                    views[engine["name"]].agents += 1
        fires: list[dict[str, Any]] = []
        for schedule in self.schedules:
            for fire in self.fires(schedule):
                fires.append(fire)
                view = views[schedule.engine]
                view.fires[fire["state"]] += 1
                if fire["state"] == "enqueued":
                    view.tasks[fire["task_state"] or "queued"] += 1
        for name, view in views.items():
            view.runs = self.runs(name)
            view.events = Counter(self.events[name])
        return Snapshot(time.time(), views, fires)

    def settled(self, snapshot: Snapshot) -> bool:
        """Every fire has left the brain and every enqueued one has ended in its engine."""
        return all(
            f["state"] not in OPEN_FIRE_STATES
            and (f["state"] != "enqueued" or f["task_state"] in TERMINAL_TASK_STATES)
            for f in snapshot.fires
        )

    def settle(self, timeout: float) -> Snapshot:
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.snapshot()
            if self.settled(snapshot) or time.monotonic() > deadline:
                return snapshot
            time.sleep(0.5)

    def task_events(self, task_id: str, engine: str) -> list[dict[str, Any]]:
        path = f"/api/v1/tasks/{task_id}/events?engine={engine}"
        events: list[dict[str, Any]] = self.brain.api("GET", path)["events"]
        return events

    def _tail_events(self) -> None:
        """Count every stored lifecycle event per engine and kind (the brain's event stream)."""
        after = 0
        while not self._stop.is_set():
            try:
                page = self.brain.api("GET", f"/api/v1/events?after={after}&limit=1000&wait=1")
            except Exception:
                time.sleep(0.5)
                continue
            for event in page["events"]:
                counts = self.events.get(event["engine"])
                if counts is not None:
                    counts[event["kind"]] += 1
            after = page["next_after"]

    def cli_env_file(self) -> Path:
        """A file to `source` in another terminal to point `z4j` at this fleet's brain."""
        path = self.workdir / "cli.env"
        path.write_text(
            f"export Z4J_BRAIN_URL={self.brain.http_url}\n"
            f"export Z4J_ADMIN_TOKEN={self.brain.env['Z4J_ADMIN_TOKEN']}\n"
        )
        path.chmod(0o600)
        return path


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in ' *[]"{}') else arg
