"""A running fleet: one brain, one worker per engine with the agent, and the brain's schedules.

`Fleet` starts the brain (a `postgresql://` URL, or SQLite in its folder) and every engine's
processes, creates schedules through the `z4j` command exactly as an operator types them, and
reads back what happened: the brain's fires and events over its HTTP API, and the runs each
engine's workers counted in Redis (apps/fleet_runs.py). It is driven by `main.py` (the
`scripts/fleet` command) and by tests/fleet. Every process it starts is stopped by `stop()`.
"""

from __future__ import annotations

import json
import os
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

from engines import APP, APPS, ENGINES, Engine
from redis import Redis

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.services import advisory_lock_base

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


class WorkerProcess:
    """One engine process in its own session; `stop()` ends it and everything it started."""

    def __init__(self, engine: Engine, argv: list[str], env: dict[str, str], log_path: Path):
        self.engine = engine
        self.argv = argv
        self.log_path = log_path
        self.stop_seconds = 0.0
        log = open(log_path, "ab")  # noqa: SIM115 -- handed to the child
        self.process = subprocess.Popen(
            argv, cwd=APPS, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def stop(self) -> None:
        timeout = self.engine.stop_timeout
        began = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(self.engine.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # nothing the engine forked may outlive it
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process.poll() is None:
            self.process.wait(10)
        self.stop_seconds = time.monotonic() - began

    def output(self, tail: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
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
    def __init__(
        self,
        workdir: Path,
        pythons: Mapping[str, Path],
        redis_url: str,
        database: str | None = None,
        *,
        say: Callable[[str], None] = print,
        engines: Iterable[Engine] = ENGINES,
    ) -> None:
        self.workdir = workdir
        self.pythons = dict(pythons)
        self.redis_url = redis_url
        self.engines = list(engines)
        self.say = say
        self.brain = BrainProcess(
            workdir / "brain",
            database=database,
            python=str(self.pythons["main"]),
            env={"Z4J_LEADER_LOCK_KEY": str(advisory_lock_base() + 0x7A13)},
            new_session=True,
        )
        self.redis = Redis.from_url(redis_url)
        self.workers: list[WorkerProcess] = []
        self.schedules: list[Schedule] = []
        self.events: dict[str, Counter[str]] = {e.name: Counter() for e in self.engines}
        self._stop = threading.Event()
        self._tail: threading.Thread | None = None

    # -- processes ---------------------------------------------------------------------------

    def start(self, agent_timeout: float = 120.0) -> None:
        for engine in self.engines:
            self.redis.delete(f"fleet:runs:{engine.name}")
        token = self.brain.create_token("fleet")
        self.brain.start()
        where = "Postgres" if self.brain.database.startswith("postgres") else "SQLite"
        self.say(f"brain listening on {self.brain.http_url} ({where}: {self.brain.database})")
        for engine in self.engines:
            env = {
                **os.environ,
                "Z4J_BRAIN_URL": self.brain.url,
                "Z4J_TOKEN": token,
                "Z4J_APP": APP,
                "Z4J_SPOOL_DIR": str(self.workdir / f"spool-{engine.name}"),
                "FLEET_REDIS_URL": self.redis_url,
                "TZ": "UTC",
                "PYTHONPATH": str(APPS),
            }
            env.pop("Z4J_ADMIN_TOKEN", None)  # workers never hold the operator's token
            python = self.pythons[engine.environment]
            for number, argv in enumerate(engine.commands(python, self.redis_url)):
                log = self.workdir / f"{engine.name}-{number}.log"
                self.workers.append(WorkerProcess(engine, argv, env, log))
            self.say(f"{engine.name} started: {' '.join(self._short(a) for a in argv[:4])} ...")
        self._wait_for_agents(agent_timeout)
        self._tail = threading.Thread(target=self._tail_events, name="fleet-events", daemon=True)
        self._tail.start()

    @staticmethod
    def _short(arg: str) -> str:
        return Path(arg).name if "/" in arg else arg

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
        self.brain.stop()
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
