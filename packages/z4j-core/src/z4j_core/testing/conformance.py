"""The engine conformance suite: one set of tests every engine adapter passes on its real engine.

An adapter package subclasses `EngineConformance` in a test module and overrides one fixture,
`harness`, returning an `EngineHarness`: the engine and app names, the names of four tasks in a
tasks module of its own (succeed, fail, retry, slow; see `EngineHarness`), how to start a real
worker process with the agent attached, and the native schedules that tasks module declares.
The suite then drives everything through a real brain process (`BrainProcess`) and its HTTP
API: commands go in through `POST /api/v1/commands`, and every assertion reads what the brain
stored. It never imports an engine. The contract is written down in docs/conformance.md.

Every capability an adapter advertises must have a happy-path test here that passed in the same
run (`test_every_advertised_capability_has_a_passing_happy_path_test`, which runs last): an
advertised capability that cannot work is the worst kind of bug. Each action (retry, cancel,
terminate, purge, queue depth; docs/actions.md) has its happy path, run when advertised, and a
test that the brain answers `unavailable` when it is not.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import os
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pytest

from z4j_core.agent.runtime import INVENTORY_REFRESH_SECONDS
from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.waiting import wait_for
from z4j_core.wire import Capability, Command, CommandKind, CommandStatus

#: Where the succeed and slow tasks append their mark (one line per run); set by the suite.
MARKS_ENV = "Z4J_CONFORMANCE_MARKS"
#: When set in a worker's environment, the tasks module calls `inject_capture_fault()` before
#: it instruments its app, so every `emit` the adapter's capture code makes raises.
FAULT_ENV = "Z4J_CONFORMANCE_FAULT"

QUEUED_KINDS = frozenset({"enqueued", "received", "scheduled"})
# How long to wait for a queued event that another agent of the host may still be batching.
QUEUED_GRACE_SECONDS = 3.0
TERMINAL_KINDS = frozenset(
    {
        "succeeded",
        "failed",
        "revoked",
        "cancelled",
        "expired",
        "rejected",
        "skipped",
        "locked",
        "dead_lettered",
    }
)
SECRETS = ("hunter2-conformance", "tok-conformance-XYZ", "pw-in-url-conformance")
#: Planted in the flaky task's kwargs: the retried run must receive it, the brain never store it.
RETRY_SECRET = "retry-secret-conformance-7Q2"


class ConformanceFlakyError(Exception):
    """What the flaky task raises on its first run with a mark."""


# -- what a tasks module calls ---------------------------------------------------------------


def mark(value: str) -> None:
    """Record that a task ran (the succeed and slow tasks call this with their `mark` argument).

    One line per call, appended with O_APPEND so concurrent workers never interleave.
    """
    path = os.environ.get(MARKS_ENV)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{value}\n".encode())
    finally:
        os.close(fd)


def flaky(mark_value: str, **kwargs: Any) -> None:
    """The body of the harness's `flaky` task: every run records `mark_value` and its kwargs
    (one line, `<mark> <kwargs as sorted JSON>`); the first run with a mark then raises
    `ConformanceFlakyError`, later runs return. The suite retries the failed run through the
    brain and checks the new run received the same kwargs."""
    path = os.environ.get(MARKS_ENV)
    first = True
    if path and os.path.exists(path):
        with open(path) as marks:
            first = not any(line.startswith(f"{mark_value} ") for line in marks)
    mark(f"{mark_value} {json.dumps(kwargs, sort_keys=True)}")
    if first:
        raise ConformanceFlakyError(f"first run of {mark_value} fails on purpose")


def inject_capture_fault() -> None:
    """Make the agent's `emit` raise from now on, so the adapter's capture code must absorb it.

    Called by a tasks module, in the worker process, before it instruments its app.
    """
    from z4j_core.agent import runtime

    def raising_emit(self: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("z4j conformance: injected capture fault")

    runtime.Agent.emit = raising_emit  # type: ignore[method-assign]


# -- what an adapter provides ----------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedSchedule:
    """A native periodic schedule the tasks module declares, as the inventory must show it.

    kind "cron": `expression` is five cron fields, evaluated in `timezone`; `day_and_weekday`
    says the engine requires both day-of-month and day-of-week to match (classic cron: either).
    """

    task: str
    kind: str
    expression: str
    timezone: str = "UTC"
    day_and_weekday: bool = False

    def next_after(self, epoch: float) -> float:
        """The first run strictly after `epoch` (the suite's own oracle: croniter)."""
        if self.kind != "cron":
            raise NotImplementedError(f"the suite has no oracle for {self.kind!r} schedules")
        from croniter import croniter

        zone = ZoneInfo(self.timezone)
        start = datetime.datetime.fromtimestamp(epoch, zone)
        return float(
            croniter(self.expression, start, day_or=not self.day_and_weekday).get_next(float)
        )


@dataclass
class WorkerContext:
    """What the suite hands `EngineHarness.start_worker`: put `env` in the worker's environment
    (brain URL, token, spool folder, marks file, and the fault switch when asked)."""

    brain: BrainProcess
    env: dict[str, str]
    workdir: Path


class WorkerHandle(Protocol):
    """A running worker: `stop()` ends it (and everything it started) within a few seconds;
    `output()` returns its log for failure messages."""

    def stop(self) -> None: ...

    def output(self) -> str: ...


@dataclass
class EngineHarness:
    """Everything the suite needs from an adapter package.

    The tasks (names as the engine spells them, e.g. `tests_app.succeed`):
      succeed(mark, *args, **kwargs): calls `conformance.mark(mark)` and returns.
      fail(): raises an exception whose type name contains `fail_exception`, no retries.
      retry(): raises so that the engine retries it at least once (e.g. retries=1), then ends.
      slow(mark, seconds): calls `conformance.mark(mark)`, then sleeps `seconds`.
    start_worker: starts real worker process(es) with the agent attached, configured from
        `WorkerContext.env`; returns once they are started (the suite waits for the agent).
    concurrency: how many tasks the started worker runs at once (the priority and expiry tests
        occupy every slot with slow tasks).
    schedules: the native periodic schedules the tasks module declares.
    in_process_adapter: for adapters that advertise `native_dedup`: returns an adapter (a
        `z4j_core.adapter.Adapter`) in the test process, whose `enqueue` the suite calls.
    fire_id_is_native_id: whether the fire id becomes the engine's job id (the design says it
        does for every engine we support).
    flaky: for adapters that advertise `retry`: a task `flaky(mark, **kwargs)` whose body is
        `conformance.flaky(mark, **kwargs)`, with no engine retries.
    queue: the queue the suite's tasks land on without options (purge and queue depth); None:
        read from the task's `enqueued` event.
    prefetch: messages a busy worker takes from the broker beyond the tasks it runs (Celery's
        prefetch): the cancel, purge and depth tests queue that many fillers first, so their own
        tasks stay in the broker.
    broker_proven_by: the name of another class of the same suite that runs the same broker
        with another worker pool; what is the broker's alone (purge, queue depth: the adapter
        asks the broker, whatever the pool) is proven there and not run again here.
    """

    engine: str
    app: str
    succeed: str
    fail: str
    fail_exception: str
    retry: str
    slow: str
    start_worker: Callable[[WorkerContext], WorkerHandle]
    concurrency: int = 1
    schedules: list[ExpectedSchedule] = field(default_factory=list)
    in_process_adapter: Callable[[], Any] | None = None
    fire_id_is_native_id: bool = True
    flaky: str | None = None
    queue: str | None = None
    prefetch: int = 0
    broker_proven_by: str | None = None


# -- the running deployment ------------------------------------------------------------------


@dataclass
class Deployment:
    """A brain process and a worker connected to it, driven through the brain's API."""

    harness: EngineHarness
    brain: BrainProcess
    worker: WorkerHandle
    marks_path: Path
    started_at: float

    def command(self, task: str, *args: Any, kind: str = "enqueue", **body: Any) -> dict[str, Any]:
        request = {
            "kind": kind,
            "engine": self.harness.engine,
            "app": self.harness.app,
            "task": task,
            "args": list(args),
            "deadline": 30,
            **body,
        }
        result: dict[str, Any] = self.brain.api("POST", "/api/v1/commands", request, timeout=60)
        return result

    def enqueue(self, task: str, *args: Any, **body: Any) -> str:
        result = self.command(task, *args, **body)
        assert result["status"] == "enqueued", self.explain(result)
        assert result["native_id"], result
        return str(result["native_id"])

    def events(self, task_id: str) -> list[dict[str, Any]]:
        path = f"/api/v1/tasks/{task_id}/events?engine={self.harness.engine}"
        events: list[dict[str, Any]] = self.brain.api("GET", path)["events"]
        return events

    def wait_for(
        self,
        task_id: str,
        done: Callable[[list[dict[str, Any]]], bool] | None = None,
        timeout: float = 45.0,
    ) -> list[dict[str, Any]]:
        """Poll the brain until `done(events)`.

        By default: a terminal event is stored, and so is a queued one (or a few seconds passed
        after the terminal one). Events of one task may come from several agents (a producer's
        `enqueued`, a worker child's `started`), each batching on its own clock, so the last
        event to arrive need not be the last that happened.
        """
        terminal_seen_at: list[float] = []

        def default_done(events: list[dict[str, Any]]) -> bool:
            if not any(e["kind"] in TERMINAL_KINDS for e in events):
                return False
            if any(e["kind"] in QUEUED_KINDS for e in events):
                return True
            if not terminal_seen_at:
                terminal_seen_at.append(time.monotonic())
            return time.monotonic() - terminal_seen_at[0] > QUEUED_GRACE_SECONDS

        done = done or default_done
        deadline = time.monotonic() + timeout
        events: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            events = self.events(task_id)
            if done(events):
                return events
            time.sleep(0.1)
        raise AssertionError(
            f"task {task_id}: gave up after {timeout}s; stored events: "
            f"{[e['kind'] for e in events]}\n{self.worker_log()}"
        )

    def task(self, task_id: str) -> dict[str, Any]:
        """The brain's row of a task (`GET /api/v1/tasks?task_id=`)."""
        path = f"/api/v1/tasks?task_id={task_id}&engine={self.harness.engine}"
        rows: list[dict[str, Any]] = self.brain.api("GET", path)["tasks"]
        assert rows, f"the brain has no task {task_id}"
        return rows[0]

    def retry(self, task_id: str, **body: Any) -> dict[str, Any]:
        """`POST /api/v1/tasks/{id}/retry`: the action's result (status done, unavailable...)."""
        request = {"engine": self.harness.engine, "app": self.harness.app, **body}
        path = f"/api/v1/tasks/{task_id}/retry"
        result: dict[str, Any] = self.brain.api("POST", path, request, timeout=60)
        return result

    def cancel(self, task_id: str, **body: Any) -> dict[str, Any]:
        """`POST /api/v1/tasks/{id}/cancel` (`terminate=True` for a running task)."""
        request = {"engine": self.harness.engine, "app": self.harness.app, **body}
        path = f"/api/v1/tasks/{task_id}/cancel"
        result: dict[str, Any] = self.brain.api("POST", path, request, timeout=60)
        return result

    def purge(self, queue: str) -> dict[str, Any]:
        """`POST /api/v1/queues/{queue}/purge` for this engine and app."""
        request = {"engine": self.harness.engine, "app": self.harness.app}
        path = f"/api/v1/queues/{urllib.parse.quote(queue, safe='')}/purge"
        result: dict[str, Any] = self.brain.api("POST", path, request, timeout=60)
        return result

    def queues(self) -> list[dict[str, Any]]:
        """The queue depths the brain holds for this engine and app (`GET /api/v1/queues`)."""
        h = self.harness
        path = f"/api/v1/queues?engine={h.engine}&app={urllib.parse.quote(h.app)}"
        rows: list[dict[str, Any]] = self.brain.api("GET", path)["queues"]
        return rows

    def enqueue_natively(
        self, task: str, *args: Any, kwargs: dict[str, Any] | None = None
    ) -> tuple[str, bool]:
        """Enqueue as the application would (the harness's `in_process_adapter`, no brain),
        or through the brain when the harness has none; the task id, and whether it was
        enqueued natively."""
        h = self.harness
        if h.in_process_adapter is None:
            return self.enqueue(task, *args, kwargs=kwargs or {}), False
        result = h.in_process_adapter().enqueue(
            Command(
                command_id=uuid.uuid4().hex,
                kind=CommandKind.ENQUEUE,
                deadline_seconds=30,
                engine=h.engine,
                app=h.app,
                task=task,
                args=list(args),
                kwargs=kwargs or {},
            )
        )
        assert result.status is CommandStatus.ENQUEUED and result.native_id, result
        return str(result.native_id), True

    def stored_text(self, but: tuple[str, ...] = ()) -> str:
        """Every row of every table of the brain's SQLite store but `but`, as text."""
        import sqlite3

        uri = f"file:{self.brain.database}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            names = [
                r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            rows = [
                repr(row)
                for name in names
                if name not in but
                for row in db.execute(f'SELECT * FROM "{name}"')
            ]
        return "\n".join(rows)

    def stored_bytes(self) -> bytes:
        """Every byte of the brain's SQLite store (database, journal and WAL files)."""
        database = Path(self.brain.database)
        chunks = []
        for path in sorted(database.parent.glob(database.name + "*")):
            chunks.append(path.read_bytes())
        return b"".join(chunks)

    def marks(self) -> list[str]:
        return self.marks_path.read_text().splitlines()

    def wait_marks(self, wanted: Mapping[str, int], timeout: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            marks = self.marks()
            if all(marks.count(m) >= n for m, n in wanted.items()):
                return marks
            if time.monotonic() > deadline:
                raise AssertionError(f"marks {dict(wanted)} not all seen: {marks}")
            time.sleep(0.1)

    def inventories(self) -> list[dict[str, Any]]:
        """Every inventory reported for this engine and app, one per agent."""
        return [
            item
            for item in self.brain.api("GET", "/api/v1/inventory")["inventory"]
            if item["engine"] == self.harness.engine and item["app"] == self.harness.app
        ]

    def inventory(self) -> dict[str, Any]:
        """The inventory the agents reported for this engine and app (the latest one)."""
        items = self.inventories()
        assert items, f"no inventory for {self.harness.engine}/{self.harness.app}"
        return max(items, key=lambda item: item["updated_at"])

    def worker_log(self) -> str:
        try:
            return "worker output (tail):\n" + self.worker.output()[-3000:]
        except Exception as exc:
            return f"(worker output unavailable: {exc})"

    def explain(self, result: Any) -> str:
        return f"{result}\n{self.worker_log()}"


def connected_agents(brain: BrainProcess, engine: str, app: str) -> list[dict[str, Any]]:
    agents = brain.api("GET", "/api/v1/agents?connected=1")["agents"]
    return [
        a
        for a in agents
        if a["app"] == app and any(e["name"] == engine for e in a.get("engines", []))
    ]


def start_deployment(
    harness: EngineHarness, workdir: Path, *, fault: bool = False, timeout: float = 60.0
) -> Deployment:
    """Start a brain, create a token, start the harness's worker against it, wait for its agent."""
    brain = BrainProcess(workdir / "brain")
    token = brain.create_token("conformance")
    brain.start()
    marks_path = workdir / "marks.log"
    marks_path.touch()
    env = {
        "Z4J_BRAIN_URL": brain.url,
        "Z4J_TOKEN": token,
        "Z4J_SPOOL_DIR": str(workdir / "spool"),
        MARKS_ENV: str(marks_path),
    }
    if fault:
        env[FAULT_ENV] = "1"
    started_at = time.time()
    try:
        worker = harness.start_worker(WorkerContext(brain, env, workdir))
    except BaseException:
        brain.stop()
        raise
    deployment = Deployment(harness, brain, worker, marks_path, started_at)
    deadline = time.monotonic() + timeout
    while not connected_agents(brain, harness.engine, harness.app):
        if time.monotonic() > deadline:
            stop_deployment(deployment)
            raise AssertionError(
                f"no agent for {harness.engine}/{harness.app} connected within {timeout}s\n"
                f"{deployment.worker_log()}"
            )
        time.sleep(0.1)
    return deployment


def stop_deployment(deployment: Deployment) -> None:
    try:
        deployment.worker.stop()
    finally:
        deployment.brain.stop()


def _by_time(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Events of one task may come from several agents (producer, worker); they share a host in
    # these tests, so their wall clocks agree. Ties keep the brain's storage order.
    return sorted(events, key=lambda e: (e["at"], e["position"]))


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["kind"] for e in _by_time(events)]


def _first(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    for event in _by_time(events):
        if event["kind"] == kind:
            return event
    raise AssertionError(f"no {kind!r} event among {_kinds(events)}")


def _token() -> str:
    return uuid.uuid4().hex[:16]


#: capability -> the test whose passing proves it (the capability test checks this table).
#: What the adapter asks the broker, whatever the worker pool (see `broker_proven_by`).
BROKER_ONLY: frozenset[str] = frozenset({Capability.PURGE.value, Capability.QUEUE_DEPTH.value})

HAPPY_PATHS: dict[str, str] = {
    Capability.LIFECYCLE.value: "test_enqueue_by_name_runs_in_a_real_worker_in_order",
    Capability.ENQUEUE.value: "test_enqueue_by_name_runs_in_a_real_worker_in_order",
    Capability.LIST_TASKS.value: "test_registered_tasks_reach_the_inventory",
    Capability.OBSERVE_SCHEDULES.value: "test_observed_schedules_reach_the_inventory",
    Capability.RETRY.value: "test_retry_runs_a_failed_task_again_with_its_original_arguments",
    Capability.CANCEL.value: "test_cancel_keeps_a_queued_task_from_running",
    Capability.TERMINATE.value: "test_cancel_with_terminate_stops_a_running_task",
    Capability.PURGE.value: "test_purge_removes_the_ready_messages_of_a_queue",
    Capability.QUEUE_DEPTH.value: "test_queue_depth_reaches_the_brain",
    Capability.FIRE.value: "test_the_same_fire_twice_runs_once",
    Capability.TRIGGER_NOW.value: "test_trigger_now_runs_the_task",
    Capability.ETA.value: "test_a_delay_is_honoured",
    Capability.EXPIRES.value: "test_an_expired_task_does_not_run",
    Capability.PRIORITY.value: "test_a_higher_priority_runs_first",
    Capability.NATIVE_DEDUP.value: "test_the_engine_refuses_a_repeated_fire_id_itself",
}


class EngineConformance:
    """Subclass in an adapter's tests and override the `harness` fixture (class scope)."""

    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls) -> EngineHarness:
        raise NotImplementedError("override the `harness` fixture with your EngineHarness")

    @pytest.fixture(scope="class")
    @classmethod
    def deployment(
        cls, harness: EngineHarness, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Deployment]:
        deployment = start_deployment(harness, tmp_path_factory.mktemp("conformance"))
        yield deployment
        stop_deployment(deployment)

    @pytest.fixture(scope="class")
    @classmethod
    def proved(cls) -> set[str]:
        """Capabilities whose happy-path test passed in this class's run."""
        return set()

    @staticmethod
    def advertised(deployment: Deployment) -> set[str]:
        h = deployment.harness
        caps: set[str] = set()
        for agent in connected_agents(deployment.brain, h.engine, h.app):
            for engine in agent["engines"]:
                if engine["name"] == h.engine:
                    caps.update(engine["capabilities"])
        return caps

    def require(self, deployment: Deployment, capability: Capability) -> None:
        if capability.value not in self.advertised(deployment):
            pytest.skip(f"the adapter does not advertise {capability.value!r}")

    def require_own_broker(self, deployment: Deployment, capability: Capability) -> None:
        """Skip a test of what is the broker's alone where another class proves it."""
        self.require(deployment, capability)
        other = deployment.harness.broker_proven_by
        if other is not None:
            pytest.skip(f"{capability.value!r} is the broker's: proven by {other} (same broker)")

    # -- the agent ---------------------------------------------------------------------------

    def test_the_agent_connects_and_advertises_known_capabilities(
        self, deployment: Deployment
    ) -> None:
        h = deployment.harness
        # A worker's agent may renew its session right after its first hello, once the worker
        # knows its pool (`Agent.reannounce`): it is connected again within moments.
        agents = wait_for(
            lambda: connected_agents(deployment.brain, h.engine, h.app), 30, "a connected agent"
        )
        for agent in agents:
            engine = next(e for e in agent["engines"] if e["name"] == h.engine)
            assert engine["version"], "the engine version is empty"
            unknown = set(engine["capabilities"]) - {c.value for c in Capability}
            assert not unknown, f"unknown capabilities advertised: {unknown}"

    # -- enqueue and lifecycle ---------------------------------------------------------------

    def test_enqueue_by_name_runs_in_a_real_worker_in_order(
        self, deployment: Deployment, proved: set[str]
    ) -> None:
        h = deployment.harness
        token = _token()
        task_id = deployment.enqueue(h.succeed, token, 1, "two")
        events = deployment.wait_for(task_id)
        kinds = _kinds(events)
        assert kinds[-1] == "succeeded", kinds
        assert kinds[0] in QUEUED_KINDS, f"the first event should say it was queued: {kinds}"
        assert "started" in kinds, kinds
        assert kinds.index("started") < kinds.index("succeeded"), kinds
        assert all(e["task_name"] == h.succeed for e in events), events
        succeeded = _first(events, "succeeded")
        assert succeeded["runtime"] is not None and succeeded["runtime"] >= 0, succeeded
        assert _first(events, "started")["worker"], "the started event names no worker"
        assert deployment.marks().count(token) == 1, "the task did not run exactly once"
        task = deployment.brain.api("GET", f"/api/v1/tasks?task_id={task_id}")["tasks"]
        assert task and task[0]["state"] == "succeeded", task
        proved.update({Capability.LIFECYCLE.value, Capability.ENQUEUE.value})

    def test_a_failing_task_reports_its_exception_and_traceback(
        self, deployment: Deployment
    ) -> None:
        h = deployment.harness
        task_id = deployment.enqueue(h.fail)
        events = deployment.wait_for(task_id)
        failed = _first(events, "failed")
        assert h.fail_exception in (failed["exception"] or ""), failed
        assert failed["traceback"] and h.fail_exception in failed["traceback"], failed
        assert failed["message"], failed
        assert "retried" not in _kinds(events), "a task without retries was reported retried"

    def test_a_retried_task_reports_its_retries(self, deployment: Deployment) -> None:
        h = deployment.harness

        def retried_then_done(events: list[dict[str, Any]]) -> bool:
            kinds = _kinds(events)
            return "retried" in kinds and kinds[-1] in TERMINAL_KINDS

        task_id = deployment.enqueue(h.retry)
        events = deployment.wait_for(task_id, retried_then_done, timeout=60)
        kinds = _kinds(events)
        retried = [e for e in events if e["kind"] == "retried"]
        assert all(e["retries"] is not None for e in retried), retried
        assert kinds.index("retried") < len(kinds) - 1, kinds
        assert kinds.count("started") >= len(retried) + 1, f"every retry should run: {kinds}"

    def test_an_unknown_task_is_rejected_with_a_reason(self, deployment: Deployment) -> None:
        name = f"no_such_module.no_such_task_{_token()}"
        result = deployment.command(name)
        assert result["status"] == "rejected", result
        assert name in result["reason"], result

    def test_secrets_in_arguments_are_redacted_before_they_leave(
        self, deployment: Deployment
    ) -> None:
        h = deployment.harness
        token = _token()
        kwargs = {
            "password": SECRETS[0],
            "api_token": SECRETS[1],
            "note": f"visible-{token}",
        }
        url = f"postgres://alice:{SECRETS[2]}@db.example/app"
        task_id = deployment.enqueue(h.succeed, token, url, kwargs=kwargs)
        events = deployment.wait_for(task_id)
        dumped = json.dumps(events)
        for secret in SECRETS:
            assert secret not in dumped, f"{secret!r} reached the brain"
        shown = [e for e in events if e["kwargs"] and f"visible-{token}" in e["kwargs"]]
        assert shown, "no event carried the task's kwargs, so redaction was not exercised"
        assert "[redacted]" in shown[0]["kwargs"], shown[0]
        assert any(e["args"] and "alice" in e["args"] for e in events), "args not reported"

    # -- fires ------------------------------------------------------------------------------

    def test_the_same_fire_twice_runs_once(self, deployment: Deployment, proved: set[str]) -> None:
        h = deployment.harness
        self.require(deployment, Capability.FIRE)
        token = _token()
        fire_id = f"conformance-{token}"
        fire = {
            "kind": "fire",
            "fire_id": fire_id,
            "schedule_id": "conformance-schedule",
            "slot": "2030-01-01T00:00:00+00:00",
        }
        first = deployment.command(h.succeed, token, **fire)
        assert first["status"] == "enqueued", deployment.explain(first)
        if h.fire_id_is_native_id:
            assert first["native_id"] == fire_id, first
        second = deployment.command(h.succeed, token, **fire)
        assert second["status"] == "duplicate", second
        events = deployment.wait_for(first["native_id"])
        assert _kinds(events)[-1] == "succeeded", _kinds(events)
        time.sleep(1.0)
        assert deployment.marks().count(token) == 1, "the fire ran more than once"
        assert _kinds(deployment.events(first["native_id"])).count("started") == 1
        proved.add(Capability.FIRE.value)

    def test_trigger_now_runs_the_task(self, deployment: Deployment, proved: set[str]) -> None:
        h = deployment.harness
        self.require(deployment, Capability.TRIGGER_NOW)
        token = _token()
        result = deployment.command(
            h.succeed,
            token,
            kind="trigger_now",
            fire_id=f"conformance-now-{token}",
            schedule_id="conformance-schedule",
        )
        assert result["status"] == "enqueued", deployment.explain(result)
        deployment.wait_for(result["native_id"])
        deployment.wait_marks({token: 1})
        proved.add(Capability.TRIGGER_NOW.value)

    def test_the_engine_refuses_a_repeated_fire_id_itself(
        self, deployment: Deployment, proved: set[str]
    ) -> None:
        h = deployment.harness
        self.require(deployment, Capability.NATIVE_DEDUP)
        assert h.in_process_adapter is not None, "native_dedup needs `in_process_adapter`"
        adapter = h.in_process_adapter()
        token = _token()

        def fire() -> Any:
            return adapter.enqueue(
                Command(
                    command_id=uuid.uuid4().hex,
                    kind=CommandKind.FIRE,
                    deadline_seconds=30,
                    engine=h.engine,
                    app=h.app,
                    task=h.succeed,
                    args=[token],
                    fire_id=f"conformance-native-{token}",
                    schedule_id="conformance-schedule",
                    slot="2030-01-01T00:00:00+00:00",
                ),
            )

        assert fire().status is CommandStatus.ENQUEUED
        assert fire().status is CommandStatus.DUPLICATE, "the engine ran a repeated id twice"
        proved.add(Capability.NATIVE_DEDUP.value)

    # -- options -------------------------------------------------------------------------------

    def test_a_delay_is_honoured(self, deployment: Deployment, proved: set[str]) -> None:
        h = deployment.harness
        self.require(deployment, Capability.ETA)
        delay = 3.0
        sent = time.time()
        task_id = deployment.enqueue(h.succeed, _token(), options={"delay_seconds": delay})
        events = deployment.wait_for(task_id)
        started = _first(events, "started")
        assert started["at"] >= sent + delay - 0.25, f"started {started['at'] - sent:.2f}s after"
        assert _kinds(events)[-1] == "succeeded"
        proved.add(Capability.ETA.value)

    def _occupy_every_worker(self, deployment: Deployment, seconds: float) -> list[str]:
        h = deployment.harness
        tokens = [_token() for _ in range(h.concurrency)]
        for token in tokens:
            deployment.enqueue(h.slow, token, seconds)
        deployment.wait_marks(dict.fromkeys(tokens, 1))  # every slot is busy now
        return tokens

    def test_an_expired_task_does_not_run(self, deployment: Deployment, proved: set[str]) -> None:
        h = deployment.harness
        self.require(deployment, Capability.EXPIRES)
        self._occupy_every_worker(deployment, 3.0)
        token = _token()
        task_id = deployment.enqueue(h.succeed, token, options={"expires_seconds": 1})
        events = deployment.wait_for(task_id)
        assert _kinds(events)[-1] == "expired", _kinds(events)
        assert token not in deployment.marks(), "an expired task ran"
        proved.add(Capability.EXPIRES.value)

    def test_a_higher_priority_runs_first(self, deployment: Deployment, proved: set[str]) -> None:
        h = deployment.harness
        self.require(deployment, Capability.PRIORITY)
        self._occupy_every_worker(deployment, 2.0)
        lows = [f"low-{_token()}" for _ in range(h.concurrency + 2)]
        high = f"high-{_token()}"
        for low in lows:
            deployment.enqueue(h.succeed, low, options={"priority": 1})
        deployment.enqueue(h.succeed, high, options={"priority": 9})
        marks = deployment.wait_marks(dict.fromkeys([*lows, high], 1))
        order = [m for m in marks if m in (*lows, high)]
        assert high in order[: h.concurrency], f"the high-priority task ran as {order}"
        proved.add(Capability.PRIORITY.value)

    # -- discovery ---------------------------------------------------------------------------

    def test_registered_tasks_reach_the_inventory(
        self, deployment: Deployment, proved: set[str]
    ) -> None:
        h = deployment.harness
        self.require(deployment, Capability.LIST_TASKS)
        names = {t["name"] for t in deployment.inventory()["tasks"]}
        missing = {h.succeed, h.fail, h.retry, h.slow} - names
        assert not missing, f"tasks missing from the inventory: {missing} (got {names})"
        proved.add(Capability.LIST_TASKS.value)

    def test_observed_schedules_reach_the_inventory(
        self, deployment: Deployment, proved: set[str]
    ) -> None:
        h = deployment.harness
        self.require(deployment, Capability.OBSERVE_SCHEDULES)
        assert h.schedules, "observe_schedules is advertised: declare a native schedule"

        def observed() -> dict[str, tuple[dict[str, Any], float]]:
            # Any agent of the app may be the one that sees a schedule, and a native scheduler
            # started beside the worker (`rq cron`) may register after the worker's first
            # inventory: wait for the next refresh rather than read one snapshot.
            found = {
                schedule["task"]: (schedule, item["updated_at"])
                for item in deployment.inventories()
                for schedule in item["schedules"]
            }
            return found if all(e.task in found for e in h.schedules) else {}

        by_task = wait_for(
            observed,
            timeout=INVENTORY_REFRESH_SECONDS + 60,
            what=f"{[e.task for e in h.schedules]} in the inventory",
            interval=0.5,
        )
        for expected in h.schedules:
            seen, updated_at = by_task[expected.task]
            assert seen["kind"] == expected.kind, seen
            assert seen["expression"] == expected.expression, seen
            assert seen.get("read_only", True) is True, seen
            runs = seen["next_runs"]
            assert len(runs) >= 3, seen
            earliest = expected.next_after(deployment.started_at - 1)
            latest = expected.next_after(updated_at)
            assert earliest <= runs[0] <= latest, (runs[0], earliest, latest)
            assert expected.next_after(runs[0] - 1) == runs[0], "the first run is no match"
            for before, after in itertools.pairwise(runs):
                assert expected.next_after(before) == after, (before, after, runs)
        proved.add(Capability.OBSERVE_SCHEDULES.value)

    # -- actions (docs/actions.md) ----------------------------------------------------------

    def _failed_task(self, deployment: Deployment) -> str:
        task_id = deployment.enqueue(deployment.harness.fail)
        events = deployment.wait_for(task_id)
        assert _kinds(events)[-1] == "failed", _kinds(events)
        return task_id

    def _unavailable(self, result: dict[str, Any], capability: Capability) -> None:
        assert result["status"] == "unavailable", result
        assert capability.value in result["reason"], result

    def _queue_of(self, deployment: Deployment, task_id: str) -> str:
        h = deployment.harness
        if h.queue is not None:
            return h.queue
        queued = [e for e in deployment.events(task_id) if e["kind"] in QUEUED_KINDS]
        queue = next((e["queue"] for e in queued if e.get("queue")), None)
        assert queue, f"no queue on the queued events of {task_id}: set `EngineHarness.queue`"
        return str(queue)

    def _hold_the_queue(self, deployment: Deployment, seconds: float) -> None:
        """Keep every worker slot busy for `seconds`, with the prefetch filled too, so the
        next tasks wait in the broker."""
        h = deployment.harness
        self._occupy_every_worker(deployment, seconds)
        for _ in range(h.prefetch):
            deployment.enqueue(h.slow, _token(), seconds)

    def _wait_queued(self, deployment: Deployment, task_id: str) -> None:
        deployment.wait_for(task_id, lambda ev: any(e["kind"] in QUEUED_KINDS for e in ev), 30)

    def test_retry_runs_a_failed_task_again_with_its_original_arguments(
        self, deployment: Deployment, proved: set[str]
    ) -> None:
        h = deployment.harness
        self.require(deployment, Capability.RETRY)
        assert h.flaky, "retry is advertised: give the harness a `flaky` task"
        token = _token()
        kwargs = {"password": RETRY_SECRET, "note": f"visible-{token}", "count": 3}
        # Enqueued by the application (in this process) where the harness can: an enqueue sent
        # through the brain's API is recorded with the operator's arguments as given.
        first, direct = deployment.enqueue_natively(h.flaky, token, kwargs=kwargs)
        # `failed`, then `dead_lettered` where the engine dead-letters it (Dramatiq).
        assert "failed" in _kinds(deployment.wait_for(first)), _kinds(deployment.events(first))

        result = deployment.retry(first)
        assert result["status"] == "done", deployment.explain(result)
        second = result["new_task_id"]
        assert second and second != first, result
        events = deployment.wait_for(second)
        assert _kinds(events)[-1] == "succeeded", _kinds(events)
        runs = [m for m in deployment.marks() if m.startswith(f"{token} ")]
        assert len(runs) == 2, f"expected the failed run and its retry: {runs}"
        assert runs[0] == runs[1], "the retried run did not receive the original arguments"
        assert json.loads(runs[1].split(" ", 1)[1]) == kwargs, runs[1]
        assert deployment.task(second).get("retry_of") == first, deployment.task(second)
        assert second in deployment.task(first).get("retried_as", []), deployment.task(first)
        # The secret reached the new run, and never the brain.
        time.sleep(1.0)  # let every agent flush its last events
        dumped = json.dumps([deployment.events(first), deployment.events(second), result])
        assert RETRY_SECRET not in dumped, "the secret reached the brain's API"
        if direct:
            assert RETRY_SECRET.encode() not in deployment.stored_bytes(), "the secret was stored"
        else:
            assert RETRY_SECRET not in deployment.stored_text(but=("commands",)), "it was stored"
        proved.add(Capability.RETRY.value)

    def test_retry_is_answered_unavailable_when_not_advertised(
        self, deployment: Deployment
    ) -> None:
        if Capability.RETRY.value in self.advertised(deployment):
            pytest.skip("the adapter advertises 'retry'")
        self._unavailable(deployment.retry(self._failed_task(deployment)), Capability.RETRY)

    def test_cancel_keeps_a_queued_task_from_running(
        self, deployment: Deployment, proved: set[str]
    ) -> None:
        h = deployment.harness
        self.require(deployment, Capability.CANCEL)
        self._hold_the_queue(deployment, 4.0)
        token = _token()
        task_id = deployment.enqueue(h.succeed, token)
        self._wait_queued(deployment, task_id)
        result = deployment.cancel(task_id)
        assert result["status"] == "done", deployment.explain(result)
        events = deployment.wait_for(task_id)
        kinds = _kinds(events)
        assert kinds[-1] in ("revoked", "cancelled"), kinds
        # Past the slow tasks, and a little more: the cancelled one never ran.
        deployment.wait_for(deployment.enqueue(h.succeed, _token()), timeout=60)
        assert token not in deployment.marks(), "a cancelled task ran"
        assert "started" not in _kinds(deployment.events(task_id)), "a cancelled task started"
        assert deployment.task(task_id)["state"] in ("revoked", "cancelled")
        proved.add(Capability.CANCEL.value)

    def test_cancel_is_answered_unavailable_when_not_advertised(
        self, deployment: Deployment
    ) -> None:
        if Capability.CANCEL.value in self.advertised(deployment):
            pytest.skip("the adapter advertises 'cancel'")
        task_id = deployment.enqueue(deployment.harness.succeed, _token())
        self._unavailable(deployment.cancel(task_id), Capability.CANCEL)

    def test_cancel_with_terminate_stops_a_running_task(
        self, deployment: Deployment, proved: set[str]
    ) -> None:
        h = deployment.harness
        self.require(deployment, Capability.TERMINATE)
        token = _token()
        task_id = deployment.enqueue(h.slow, token, 60)
        deployment.wait_marks({token: 1})
        deployment.wait_for(task_id, lambda ev: "started" in _kinds(ev), 30)
        result = deployment.cancel(task_id, terminate=True)
        assert result["status"] == "done", deployment.explain(result)
        events = deployment.wait_for(task_id, timeout=30)
        kinds = _kinds(events)
        assert "succeeded" not in kinds, kinds
        assert any(k in ("revoked", "cancelled") for k in kinds), kinds
        # The worker is still there for the next task.
        again = deployment.enqueue(h.succeed, _token())
        assert _kinds(deployment.wait_for(again, timeout=60))[-1] == "succeeded"
        proved.add(Capability.TERMINATE.value)

    def test_terminate_is_answered_unavailable_when_not_advertised(
        self, deployment: Deployment
    ) -> None:
        if Capability.TERMINATE.value in self.advertised(deployment):
            pytest.skip("the adapter advertises 'terminate'")
        task_id = deployment.enqueue(deployment.harness.succeed, _token())
        result = deployment.cancel(task_id, terminate=True)
        missing = Capability.CANCEL
        if Capability.CANCEL.value in self.advertised(deployment):
            missing = Capability.TERMINATE
        self._unavailable(result, missing)

    def test_purge_removes_the_ready_messages_of_a_queue(
        self, deployment: Deployment, proved: set[str]
    ) -> None:
        h = deployment.harness
        self.require_own_broker(deployment, Capability.PURGE)
        self._hold_the_queue(deployment, 4.0)
        tokens = [_token() for _ in range(3)]
        ids = [deployment.enqueue(h.succeed, token) for token in tokens]
        for task_id in ids:
            self._wait_queued(deployment, task_id)
        result = deployment.purge(self._queue_of(deployment, ids[0]))
        assert result["status"] == "done", deployment.explain(result)
        assert result["count"] is not None and result["count"] >= len(tokens), result
        deployment.wait_for(deployment.enqueue(h.succeed, _token()), timeout=60)
        ran = [t for t in tokens if t in deployment.marks()]
        assert not ran, f"purged tasks ran: {ran}"
        proved.add(Capability.PURGE.value)

    def test_purge_is_answered_unavailable_when_not_advertised(
        self, deployment: Deployment
    ) -> None:
        if Capability.PURGE.value in self.advertised(deployment):
            pytest.skip("the adapter advertises 'purge'")
        # Any queue name: no agent of the engine app can purge, whatever the queue.
        queue = deployment.harness.queue or "default"
        self._unavailable(deployment.purge(queue), Capability.PURGE)

    def test_queue_depth_reaches_the_brain(self, deployment: Deployment, proved: set[str]) -> None:
        h = deployment.harness
        self.require_own_broker(deployment, Capability.QUEUE_DEPTH)
        self._hold_the_queue(deployment, 8.0)
        tokens = [_token() for _ in range(3)]
        ids = [deployment.enqueue(h.succeed, token) for token in tokens]
        queue = self._queue_of(deployment, ids[0])

        def depth() -> int | None:
            rows = [r for r in deployment.queues() if r["queue"] == queue]
            return max((r["ready"] for r in rows), default=None)

        deadline = time.monotonic() + 30
        while (depth() or 0) < len(tokens):
            assert time.monotonic() < deadline, f"queue {queue}: {deployment.queues()}"
            time.sleep(0.2)
        deployment.wait_marks(dict.fromkeys(tokens, 1), timeout=60)
        deadline = time.monotonic() + 30
        while depth() != 0:
            assert time.monotonic() < deadline, f"{queue} not drained: {deployment.queues()}"
            time.sleep(0.2)
        proved.add(Capability.QUEUE_DEPTH.value)

    def test_queue_depth_is_absent_when_not_advertised(self, deployment: Deployment) -> None:
        if Capability.QUEUE_DEPTH.value in self.advertised(deployment):
            pytest.skip("the adapter advertises 'queue_depth'")
        time.sleep(6.0)  # past one report interval
        assert deployment.queues() == [], deployment.queues()

    # -- the rule ------------------------------------------------------------------------------

    def test_every_advertised_capability_has_a_passing_happy_path_test(
        self, deployment: Deployment, proved: set[str]
    ) -> None:
        problems = []
        if deployment.harness.broker_proven_by is not None:
            proved |= BROKER_ONLY  # its own class's rule holds them to a passing test
        for capability in sorted(self.advertised(deployment)):
            test = HAPPY_PATHS.get(capability)
            if test is None:
                problems.append(
                    f"{capability!r} is advertised but the suite has no happy-path test for it: "
                    "stop advertising it until one exists"
                )
            elif capability not in proved:
                problems.append(f"{capability!r} is advertised but {test} did not pass")
        assert not problems, "\n".join(problems)

    # -- the host is never hurt ----------------------------------------------------------------

    def test_a_fault_in_capture_code_never_reaches_the_task(
        self, deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """Runs last: it stops the class's worker, so only the faulty one consumes the broker."""
        harness = deployment.harness
        deployment.worker.stop()
        faulty = start_deployment(harness, tmp_path_factory.mktemp("fault"), fault=True)
        try:
            first, second = _token(), _token()
            for token in (first, second):
                result = faulty.command(harness.succeed, token)
                assert result["status"] == "enqueued", faulty.explain(result)
            faulty.wait_marks({first: 1, second: 1})
        finally:
            stop_deployment(faulty)


__all__ = [
    "FAULT_ENV",
    "HAPPY_PATHS",
    "MARKS_ENV",
    "RETRY_SECRET",
    "ConformanceFlakyError",
    "Deployment",
    "EngineConformance",
    "EngineHarness",
    "ExpectedSchedule",
    "WorkerContext",
    "WorkerHandle",
    "flaky",
    "inject_capture_fault",
    "mark",
    "start_deployment",
    "stop_deployment",
]
