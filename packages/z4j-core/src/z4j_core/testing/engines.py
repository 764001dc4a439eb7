"""How each engine is run: the one spec that tests, benchmarks and scripts start workers from.

Owns, per engine: what its environment needs from the index, whether its pins let it share an
environment with the brain (Celery's Redis transport, arq and taskiq-redis pin redis-py versions
no two of them accept together), the worker's command line, how many agents a worker connects,
its graceful stop, a producer that enqueues a task by name, and the worker's environment
variables. The apps a worker loads (tasks, settings) belong to each caller and are named by it.

Standard library only and never imports an engine at module level: `scripts/fleet` and the
noxfile read it before any engine is installed (`python3 -m z4j_core.testing.engines`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from z4j_core.testing.venvs import Environment, checkout_root, ensure


def _bin(python: str, name: str) -> str:
    """A console script installed beside `python` (rq, arq)."""
    return str(Path(python).parent / name)


@dataclass(frozen=True)
class WorkerRun:
    """What a caller decides about one worker; the engine's spec turns it into a command line.

    app: what the worker loads, in the engine's own spelling (`huey_app.huey`, a Celery app
    module, RQ's settings module for `-c`, a Dramatiq broker module, arq's `module.Settings`,
    taskiq's `module:broker`). processes: worker processes that each hold an agent (Dramatiq,
    taskiq). concurrency: threads, pool size or async tasks per process (the engine's default
    when None). queues: for the engines that take them on the command line (Celery, RQ).
    options: appended as given (before RQ's queue names). instrumented: RQ attaches the agent
    through its worker class (`z4j_rq.Worker`, else rq's own); the other engines' apps decide.
    pool: how the worker runs tasks, in the engine's spelling: Celery's `--pool` (prefork when
    None), RQ's worker class for `-w` (in place of `instrumented`'s choice), Huey's
    `--worker-type` (Huey's default when None). script: a Python script run in place of
    `-m <engine>` that prepares the process and then calls the engine's own entry point
    (gevent's monkey-patching must come first), for the engines started with `python -m`.
    """

    python: str
    app: str
    processes: int = 1
    concurrency: int | None = None
    queues: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    instrumented: bool = True
    pool: str | None = None
    script: str | None = None


def _python(run: WorkerRun, module: str) -> list[str]:
    """`python -m module`, or `python script` when the caller wraps the engine's entry point."""
    return [run.python, run.script] if run.script else [run.python, "-m", module]


def _huey(run: WorkerRun) -> list[str]:
    pool = ["--worker-type", run.pool] if run.pool else []
    return [*_python(run, "huey.bin.huey_consumer"), run.app,
            "--workers", str(run.concurrency or 1), *pool, *run.options]  # fmt: skip


def _celery(run: WorkerRun) -> list[str]:
    queues = ["--queues", ",".join(run.queues)] if run.queues else []
    return [*_python(run, "celery"), "-A", run.app, "worker", "--pool", run.pool or "prefork",
            "--concurrency", str(run.concurrency or 2), *queues, "--without-gossip",
            "--without-mingle", "--without-heartbeat", *run.options]  # fmt: skip


def _rq(run: WorkerRun) -> list[str]:
    worker_class = run.pool or ("z4j_rq.Worker" if run.instrumented else "rq.worker.Worker")
    settings = ["-c", run.app] if run.app else []
    return [_bin(run.python, "rq"), "worker", "-w", worker_class, *settings,
            *run.options, *(run.queues or ("default",))]  # fmt: skip


def _dramatiq(run: WorkerRun) -> list[str]:
    return [*_python(run, "dramatiq"), run.app, "--processes", str(run.processes),
            "--threads", str(run.concurrency or 8), *run.options]  # fmt: skip


def _arq(run: WorkerRun) -> list[str]:
    return [_bin(run.python, "arq"), run.app, *run.options]


def _taskiq(run: WorkerRun) -> list[str]:
    return [*_python(run, "taskiq"), "worker", run.app, "--workers", str(run.processes),
            "--max-async-tasks", str(run.concurrency or 100), *run.options]  # fmt: skip


# -- producers: enqueue a task by name from outside the worker, with no agent ------------------


def _send_celery(app: Any, task: str, args: Sequence[Any], queue: str | None) -> str:
    """`app`: a Celery app on the worker's broker."""
    return str(app.send_task(task, args=list(args), queue=queue).id)


def _send_rq(queue: Any, task: str, args: Sequence[Any], _queue: str | None) -> str:
    """`queue`: an `rq.Queue`; `task` the function's dotted path."""
    return str(queue.enqueue(task, *args).id)


def _send_dramatiq(broker: Any, task: str, args: Sequence[Any], queue: str | None) -> str:
    """`broker`: a Dramatiq broker; `task` the actor's name."""
    import dramatiq

    message = dramatiq.Message(
        queue_name=queue or "default", actor_name=task, args=tuple(args), kwargs={}, options={}
    )
    return str(broker.enqueue(message).message_id)


def _send_huey(huey: Any, task: str, args: Sequence[Any], _queue: str | None) -> str:
    """`huey`: the app's Huey with its tasks registered; `task` Huey's `module.function`."""
    task_class = huey._registry._registry[task]
    return str(huey.enqueue(task_class(args=tuple(args))).id)


async def _send_arq(pool: Any, task: str, args: Sequence[Any], queue: str | None) -> str:
    """`pool`: an `ArqRedis`; `task` the function's name in the worker's settings."""
    job = await pool.enqueue_job(task, *args, **({"_queue_name": queue} if queue else {}))
    return str(job.job_id) if job is not None else ""


async def _send_taskiq(broker: Any, task: str, args: Sequence[Any], _queue: str | None) -> str:
    """`broker`: the app's taskiq broker (started); `task` the task's name."""
    from taskiq.kicker import AsyncKicker

    sent = await AsyncKicker(task_name=task, broker=broker, labels={}).kiq(*args)
    return str(sent.task_id)


Producer = Callable[[Any, str, Sequence[Any], "str | None"], "str | Awaitable[str]"]


@dataclass(frozen=True)
class Engine:
    """One engine's run spec. `worker(run)` is its command line; `send` its producer (async
    for arq and taskiq: await it)."""

    name: str
    #: The engine and its Redis transport, from the index (besides z4j-core and the adapter).
    requirements: tuple[str, ...]
    #: Its pins let it share one environment with the brain and the other sharing engines.
    shares_main: bool
    stop_signal: signal.Signals
    worker: Callable[[WorkerRun], list[str]] = field(repr=False)
    send: Producer = field(repr=False)
    #: Agents one worker connects: one per process that holds one.
    agents_per_process: int = 1
    #: How long a graceful stop may take before the process group is killed.
    stop_timeout: float = 20.0

    @property
    def package(self) -> str:
        """Our adapter's distribution, in packages/."""
        return f"z4j-{self.name}"

    @property
    def adapter(self) -> str:
        return f"z4j_{self.name}"

    def agents(self, run: WorkerRun) -> int:
        return self.agents_per_process * (run.processes if self.name in MULTIPROCESS else 1)

    def environment(self, folder: str, extra: Sequence[str] = ()) -> Environment:
        """An environment of its own: z4j-core, its adapter, its requirements and `extra`."""
        return Environment(folder, ("z4j-core", self.package), (*self.requirements, *extra))


#: Engines whose worker runs `processes` processes, each with an agent.
MULTIPROCESS = frozenset({"dramatiq", "taskiq"})

ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        Engine("celery", ("celery[redis]",), False, signal.SIGTERM, _celery, _send_celery),
        Engine("rq", ("rq>=3.0",), True, signal.SIGTERM, _rq, _send_rq),
        Engine("dramatiq", ("dramatiq[redis]",), True, signal.SIGTERM, _dramatiq,
               _send_dramatiq),
        Engine("huey", ("huey", "redis"), True, signal.SIGINT, _huey, _send_huey),
        Engine("arq", ("arq",), False, signal.SIGTERM, _arq, _send_arq),
        # taskiq-redis's worker blocks in BRPOP (no socket timeout, as docs/engines/taskiq.md
        # requires) and does not stop on SIGINT while its queue is idle: kill it sooner.
        Engine("taskiq", ("taskiq", "taskiq-redis"), False, signal.SIGINT, _taskiq,
               _send_taskiq, stop_timeout=6.0),
    )
}  # fmt: skip


def worker_env(
    app_dir: Path | str,
    *,
    brain_url: str | None = None,
    token: str | None = None,
    app: str | None = None,
    spool_dir: Path | str | None = None,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
    tz: str | None = "UTC",
) -> dict[str, str]:
    """A worker's environment: `base` (this process's), the agent's Z4J_* settings when a brain
    is given, `extra`, `tz` (None: inherited), and `app_dir` first on PYTHONPATH so the worker
    finds its app."""
    env = dict(os.environ if base is None else base)
    agent = {"Z4J_BRAIN_URL": brain_url, "Z4J_TOKEN": token, "Z4J_APP": app,
             "Z4J_SPOOL_DIR": str(spool_dir) if spool_dir else None}  # fmt: skip
    env.update({key: value for key, value in agent.items() if value is not None})
    env.update(extra or {})
    if tz is not None:
        env["TZ"] = tz
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(app_dir), env.get("PYTHONPATH")]))
    return env


class WorkerProcess:
    """One engine process in its own session, logging to a file; `stop()` sends the engine's
    graceful stop, waits up to its stop timeout, then kills everything it started."""

    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        cwd: Path | str,
        stop_signal: int = signal.SIGTERM,
        stop_timeout: float = 20.0,
    ) -> None:
        self.argv = argv
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.stop_seconds = 0.0
        log = open(log_path, "ab")  # noqa: SIM115 -- handed to the child
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()

    @classmethod
    def start(
        cls,
        engine: Engine,
        run: WorkerRun,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | str,
        *,
        stop_timeout: float | None = None,
    ) -> WorkerProcess:
        """`engine`'s worker for `run`; `stop_timeout` in place of the engine's own."""
        timeout = engine.stop_timeout if stop_timeout is None else stop_timeout
        return cls(engine.worker(run), env, log_path, cwd=cwd, stop_signal=engine.stop_signal,
                   stop_timeout=timeout)  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float | None = None) -> None:
        began = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # nothing the engine forked may outlive it
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process.poll() is None:
            self.process.wait(10)
        self.stop_seconds = time.monotonic() - began

    def output(self, chars: int | None = None) -> str:
        text = self.log_path.read_text(errors="replace")
        return text if chars is None else text[-chars:]


# -- environments that hold several engines -----------------------------------------------------


def grouped_environments(
    prefix: str,
    *,
    main_packages: Sequence[str],
    main_requirements: Sequence[str] = (),
    extra: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Environment]:
    """One `main` environment (`prefix`) for `main_packages` and every engine that shares it,
    and one (`prefix-<engine>`) for each engine that cannot; `extra` adds requirements per
    engine (e.g. the native scheduler an app declares)."""
    extra = extra or {}
    sharing = [e for e in ENGINES.values() if e.shares_main]
    packages = [*main_packages, *(e.package for e in sharing if e.package not in main_packages)]
    requirements = [r for e in sharing for r in (*e.requirements, *extra.get(e.name, ()))]
    groups = {
        "main": Environment(
            prefix, tuple(packages), tuple(dict.fromkeys([*requirements, *main_requirements]))
        )
    }
    for engine in ENGINES.values():
        if not engine.shares_main:
            groups[engine.name] = engine.environment(
                f"{prefix}-{engine.name}", extra.get(engine.name, ())
            )
    return groups


def environment_name(engine: Engine) -> str:
    """Which of `grouped_environments` runs `engine`."""
    return "main" if engine.shares_main else engine.name


#: The fleet's environments (scripts/fleet, tests/fleet): the brain, the `z4j` command and uv
#: in the main one; Dramatiq's app declares a periodiq schedule.
FLEET_ENVIRONMENTS = grouped_environments(
    ".venv-fleet",
    main_packages=("z4j-core", "z4j-brain"),
    main_requirements=("psycopg[binary]", "uv==0.13.8"),
    extra={"dramatiq": ("periodiq",)},
)


def as_json() -> dict[str, Any]:
    """The spec's install facts, for tools that cannot import z4j (the noxfile)."""
    return {
        "engines": {
            e.name: {"package": e.package, "requirements": list(e.requirements),
                     "shares_main": e.shares_main}
            for e in ENGINES.values()
        },
        "fleet": {name: env.install_args() for name, env in FLEET_ENVIRONMENTS.items()},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="make (or reuse) the fleet's environments")
    parser.add_argument("names", nargs="*", help=f"of {', '.join(FLEET_ENVIRONMENTS)} (main)")
    parser.add_argument("--json", action="store_true", help="print the spec's install facts")
    options = parser.parse_args(argv)
    if options.json:
        print(json.dumps(as_json()))
        return 0
    unknown = set(options.names) - set(FLEET_ENVIRONMENTS)
    if unknown:
        parser.error(f"unknown environment(s) {sorted(unknown)}: choose from "
                     f"{', '.join(FLEET_ENVIRONMENTS)}")  # fmt: skip
    for name in options.names or ["main"]:
        print(ensure(FLEET_ENVIRONMENTS[name], root=checkout_root()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
