"""The taskiq adapter in one process: middleware mapping, retries, enqueue answers, schedules.

Real taskiq brokers (the in-memory broker, whose kicks run the task in the same loop) and a
recording `emit`; the conformance suite covers real workers on Redis and a real brain.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from taskiq import InMemoryBroker, SimpleRetryMiddleware, TaskiqMiddleware
from taskiq.exceptions import NoResultError, SendTaskError

import z4j_taskiq
from z4j_core.wire import Command, CommandKind, CommandOptions, CommandStatus
from z4j_taskiq import enqueue
from z4j_taskiq.adapter import TaskiqAdapter
from z4j_taskiq.capture import Z4JMiddleware


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict[str, Any]]] = []

    def __call__(self, kind: Any, task_id: str, task_name: str, **fields: Any) -> None:
        self.events.append((getattr(kind, "value", kind), task_id, task_name, fields))

    def kinds(self, task_id: str | None = None) -> list[str]:
        return [k for k, t, _, _ in self.events if task_id is None or t == task_id]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [f for k, _, _, f in self.events if k == kind]


class RecordingAgent:
    """What the middleware uses of the agent: `prepare` and `emit_prepared`."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def prepare(self, kind: Any, task_id: str, task_name: str, **fields: Any) -> Any:
        engine = fields.pop("engine", "")
        return (kind, time.time(), engine, task_id, task_name, fields)  # the agent's Record

    def emit_prepared(self, record: Any) -> None:
        kind, at, _, task_id, task_name, fields = record
        self.recorder(kind, task_id, task_name, at=at, **fields)


def captured(broker: Any, *before: TaskiqMiddleware, after: tuple[Any, ...] = ()) -> Recorder:
    """Our middleware on `broker` with a recorder instead of an agent (no link, no brain)."""
    recorder = Recorder()
    middleware = Z4JMiddleware()
    middleware.broker = broker  # set_broker would attach the process's agent
    middleware.agent = RecordingAgent(recorder)
    middleware.emit = recorder
    broker.add_middlewares(*before)
    broker.middlewares.append(middleware)
    broker.add_middlewares(*after)
    return recorder


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def kiq_and_wait(broker: Any, task: Any, *args: Any, **kwargs: Any) -> Any:
    await broker.startup()
    try:
        sent = await task.kiq(*args, **kwargs)
        await broker.wait_all()
        return sent
    finally:
        await broker.shutdown()


# -- lifecycle ---------------------------------------------------------------------------------


def test_success_reports_enqueued_started_succeeded_with_runtime() -> None:
    broker = InMemoryBroker()
    recorder = captured(broker)

    @broker.task(task_name="units.add")
    async def add(a: int, b: int) -> int:
        return a + b

    sent = run(kiq_and_wait(broker, add, 1, b=2))
    assert recorder.kinds(sent.task_id) == ["enqueued", "started", "succeeded"]
    enqueued, started, succeeded = (f for _, _, _, f in recorder.events)
    assert enqueued["args"] == [1] and enqueued["kwargs"] == {"b": 2}
    assert started["worker"].endswith(f":{__import__('os').getpid()}")
    assert succeeded["runtime"] >= 0 and succeeded["retries"] == 0
    assert {name for _, _, name, _ in recorder.events} == {"units.add"}


def test_failure_without_retries_is_failed_with_exception_and_traceback() -> None:
    broker = InMemoryBroker()
    recorder = captured(broker)

    @broker.task(task_name="units.broken")
    async def broken() -> None:
        raise KeyError("missing")

    sent = run(kiq_and_wait(broker, broken))
    assert recorder.kinds(sent.task_id) == ["enqueued", "started", "failed"]
    failed = recorder.all("failed")[0]
    assert failed["exception"] == "KeyError" and "missing" in failed["message"]
    assert "raise KeyError" in failed["traceback"]


@pytest.mark.parametrize("retry_first", [True, False], ids=["retry-before-z4j", "z4j-first"])
@pytest.mark.parametrize("no_result_on_retry", [True, False])
@pytest.mark.parametrize("in_place", [False, True], ids=["new-task", "kick-in-place"])
def test_retries_are_retried_until_the_last_attempt_fails(
    retry_first: bool, no_result_on_retry: bool, in_place: bool
) -> None:
    broker = InMemoryBroker(await_inplace=in_place)
    retry = SimpleRetryMiddleware(default_retry_count=3, no_result_on_retry=no_result_on_retry)
    recorder = captured(broker, retry) if retry_first else captured(broker, after=(retry,))

    @broker.task(task_name="units.flaky", retry_on_error=True)
    async def flaky() -> None:
        raise ValueError("again")

    sent = run(kiq_and_wait(broker, flaky))
    kinds = recorder.kinds(sent.task_id)
    assert sorted(kinds) == sorted(
        ["enqueued", "started", "retried", "started", "retried", "started", "failed"]
    ), kinds
    assert kinds[0] == "enqueued" and kinds.count("enqueued") == 1, "a re-kick is no new enqueue"
    # Kicking in place, the later attempts finish inside the earlier ones.
    assert sorted(f["retries"] for f in recorder.all("retried")) == [1, 2]
    assert [f["retries"] for f in recorder.all("started")] == [0, 1, 2]
    assert recorder.all("failed")[0]["retries"] == 2
    assert all(f["exception"] == "ValueError" for f in recorder.all("retried"))


def test_an_error_replaced_by_no_result_is_a_retry_even_when_the_re_kick_is_unseen() -> None:
    """SmartRetryMiddleware with a schedule source re-kicks through the source, not a kick here."""

    class SchedulesARetry(TaskiqMiddleware):
        def on_error(self, message: Any, result: Any, exception: BaseException) -> None:
            result.error = NoResultError()

    broker = InMemoryBroker()
    recorder = captured(broker, SchedulesARetry())

    @broker.task(task_name="units.later")
    async def later() -> None:
        raise ValueError("later")

    sent = run(kiq_and_wait(broker, later))
    assert recorder.kinds(sent.task_id) == ["enqueued", "started", "retried"]


def test_a_task_raising_no_result_error_succeeded() -> None:
    broker = InMemoryBroker()
    recorder = captured(broker)

    @broker.task(task_name="units.quiet")
    async def quiet() -> None:
        raise NoResultError()

    sent = run(kiq_and_wait(broker, quiet))
    assert recorder.kinds(sent.task_id) == ["enqueued", "started", "succeeded"]


def test_a_failing_kick_is_never_reported_enqueued() -> None:
    broker = InMemoryBroker()
    recorder = captured(broker)

    async def refuse(message: Any) -> None:
        raise ConnectionError("broker down")

    broker.kick = refuse  # type: ignore[method-assign]

    @broker.task(task_name="units.nowhere")
    async def nowhere() -> None:
        pass

    with pytest.raises(SendTaskError):
        run(kiq_and_wait(broker, nowhere))
    assert recorder.events == []


def test_capture_faults_never_reach_the_task() -> None:
    broker = InMemoryBroker()
    recorder = captured(broker)
    middleware = next(m for m in broker.middlewares if isinstance(m, Z4JMiddleware))

    def raising(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("emit is broken")

    middleware.emit = raising
    middleware.agent.prepare = raising
    ran: list[int] = []

    @broker.task(task_name="units.fine")
    async def fine(x: int) -> int:
        ran.append(x)
        return x

    run(kiq_and_wait(broker, fine, 7))
    assert ran == [7] and recorder.events == []
    assert middleware.errors >= 3


# -- attach --------------------------------------------------------------------------------------


@pytest.fixture
def offline_agent_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    monkeypatch.setenv("Z4J_BRAIN_URL", "ws://127.0.0.1:9/")
    monkeypatch.setenv("Z4J_TOKEN", "units")
    monkeypatch.setenv("Z4J_SPOOL_DIR", str(tmp_path / "spool"))
    yield


def test_instrument_adds_one_middleware_wired_to_the_agent(offline_agent_env: None) -> None:
    broker = InMemoryBroker()
    assert z4j_taskiq.instrument(broker, app_name="units-app", start=False) is broker
    z4j_taskiq.instrument(broker)
    ours = [m for m in broker.middlewares if isinstance(m, Z4JMiddleware)]
    assert len(ours) == 1
    middleware = ours[0]
    agent = z4j_taskiq.agent_of(broker)
    assert agent is middleware.agent and middleware.adapter in agent.adapters
    assert middleware.emit is not None, "install_capture connected no emit"
    assert middleware.adapter.app_name == "units-app"
    with pytest.raises(TypeError):
        z4j_taskiq.instrument(object())


def test_the_broker_startup_remembers_its_loop(offline_agent_env: None) -> None:
    broker = InMemoryBroker()
    broker.add_middlewares(Z4JMiddleware(start=False))
    adapter = z4j_taskiq.middleware_of(broker).adapter  # type: ignore[union-attr]
    seen: list[Any] = []

    async def main() -> None:
        await broker.startup()
        seen.append(asyncio.get_running_loop())
        assert adapter.running_loop() is seen[0]
        await broker.shutdown()

    run(main())
    assert adapter.loop is seen[0] and adapter.running_loop() is None  # closed now


# -- enqueue -----------------------------------------------------------------------------------


def command(task: str, **fields: Any) -> Command:
    fields.setdefault("kind", CommandKind.ENQUEUE)
    return Command(
        command_id=uuid.uuid4().hex,
        deadline_seconds=10,
        engine="taskiq",
        app="u",
        task=task,
        **fields,
    )


class LoopThread:
    """A running loop on its own thread, standing in for a worker's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def started_broker() -> Iterator[tuple[Any, TaskiqAdapter, Recorder, list[Any]]]:
    broker = InMemoryBroker()
    recorder = captured(broker)
    ran: list[Any] = []

    @broker.task(task_name="units.record")
    async def record(*args: Any, **kwargs: Any) -> None:
        ran.append((args, kwargs))

    loop = LoopThread()
    loop.run(broker.startup())
    adapter = TaskiqAdapter(broker=broker, loop=loop.loop)
    yield broker, adapter, recorder, ran
    loop.run(broker.shutdown())
    loop.close()


def test_enqueue_kicks_by_name_with_the_fire_id_as_task_id_and_headers_as_labels(
    started_broker: tuple[Any, TaskiqAdapter, Recorder, list[Any]],
) -> None:
    _, adapter, recorder, ran = started_broker
    fire = command(
        "units.record",
        kind=CommandKind.FIRE,
        args=[1],
        kwargs={"k": "v"},
        fire_id="fire-123",
        schedule_id="s",
        slot="2030-01-01T00:00:00+00:00",
        options=CommandOptions(headers={"tenant": "acme"}),
    )
    result = enqueue.enqueue(adapter, fire)
    assert result.status is CommandStatus.ENQUEUED and result.native_id == "fire-123"
    deadline = 50
    while not ran and deadline:
        threading.Event().wait(0.05)
        deadline -= 1
    assert ran == [((1,), {"k": "v"})]
    enqueued = recorder.all("enqueued")[0]
    assert enqueued["fire_id"] == "fire-123"
    assert recorder.events[0][1] == "fire-123"


def test_enqueue_refuses_what_it_cannot_do(
    started_broker: tuple[Any, TaskiqAdapter, Recorder, list[Any]],
) -> None:
    _, adapter, recorder, ran = started_broker
    unknown = enqueue.enqueue(adapter, command("units.nope"))
    assert unknown.status is CommandStatus.REJECTED and "units.nope" in (unknown.reason or "")
    assert "units.record" in (unknown.reason or "")
    for options in (
        CommandOptions(delay_seconds=5),
        CommandOptions(expires_seconds=5),
        CommandOptions(priority=3),
        CommandOptions(queue="other"),  # the in-memory broker has no queues
    ):
        refused = enqueue.enqueue(adapter, command("units.record", options=options))
        assert refused.status is CommandStatus.REJECTED, options
    assert ran == [] and recorder.events == []


def test_enqueue_fails_clearly_before_the_broker_started() -> None:
    broker = InMemoryBroker()

    @broker.task(task_name="units.x")
    async def x() -> None:
        pass

    result = enqueue.enqueue(TaskiqAdapter(broker=broker), command("units.x"))
    assert result.status is CommandStatus.FAILED and "broker.startup()" in (result.reason or "")


# -- discovery ---------------------------------------------------------------------------------


def test_registered_tasks_with_their_safe_labels() -> None:
    broker = InMemoryBroker()

    @broker.task(task_name="units.a", retry_on_error=True, max_retries=5, secret="x")
    async def a() -> None:
        pass

    @broker.task(task_name="units.b", schedule=[{"cron": "* * * * *"}])
    async def b() -> None:
        pass

    infos = TaskiqAdapter(broker=broker).registered_tasks()
    assert infos is not None
    by_name = {i.name: i for i in infos}
    assert by_name["units.a"].options == {"retry_on_error": "True", "max_retries": "5"}
    assert by_name["units.b"].options == {"schedules": "1"}
    assert TaskiqAdapter.create(object(), {}) is None


def test_observe_adds_a_schedulers_sources_to_its_brokers_adapter(offline_agent_env: None) -> None:
    from taskiq import TaskiqScheduler
    from taskiq.schedule_sources import LabelScheduleSource

    broker = InMemoryBroker()
    other = InMemoryBroker()
    broker.add_middlewares(Z4JMiddleware(start=False))
    other.add_middlewares(Z4JMiddleware(start=False))
    source = LabelScheduleSource(broker)
    z4j_taskiq.observe(TaskiqScheduler(broker, [source]))
    ours = z4j_taskiq.middleware_of(broker).adapter  # type: ignore[union-attr]
    theirs = z4j_taskiq.middleware_of(other).adapter  # type: ignore[union-attr]
    assert ours.sources == [source] and theirs.sources == []
