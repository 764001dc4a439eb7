"""Unit tests of the Celery adapter's parts: the relay across a real fork, enqueue's mapping onto
`send_task` (in-memory broker), and the small pure helpers."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest
from celery import Celery, signals

from z4j_celery import capture, enqueue, worker
from z4j_celery.adapter import CeleryAdapter
from z4j_celery.schedules import cron_fields, render_field
from z4j_core.agent import relay
from z4j_core.wire import Command, CommandKind, CommandOptions, CommandStatus


class FakeAgent:
    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []
        self.dropped = 0
        self.errors = 0

    def emit_prepared(self, record: tuple[Any, ...]) -> None:
        self.records.append(record)

    def count_relay_dropped(self, count: int) -> None:
        self.dropped += count

    def prepare(self, kind: str, task_id: str, task_name: str, **fields: Any) -> tuple[Any, ...]:
        return (kind, time.time(), fields.pop("engine", ""), task_id, task_name, fields)


def wait_until(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_the_relay_carries_a_childs_events_in_order_and_counts_its_drops() -> None:
    link = relay.Relay()
    agent = FakeAgent()
    pid = os.fork()
    if pid == 0:  # a pool child: fills the buffer (nobody reads yet), then sends once more
        link.enter_child()
        sent = 0
        while link.dropped == 0:
            link.send(("started", 1.0, "celery", f"t-{sent}", "app.add", {"n": sent}))
            sent += 1
        os.write(1, b"")  # keep the child's stdout untouched
        os._exit(0 if link.dropped == 1 else 1)
    assert os.waitpid(pid, 0)[1] == 0
    link.start(agent)
    assert wait_until(lambda: len(agent.records) > 100)
    time.sleep(0.2)
    kept = len(agent.records)
    assert [r[3] for r in agent.records] == [f"t-{i}" for i in range(kept)], "out of order"
    assert agent.records[0][5] == {"n": 0}
    # the child's drop is reported with its next datagram
    child = os.fork()
    if child == 0:
        link.dropped = 3
        link.send(("succeeded", 2.0, "celery", "after", "app.add", None))
        os._exit(0)
    os.waitpid(child, 0)
    assert wait_until(lambda: agent.dropped == 3)
    assert agent.records[-1][3] == "after"
    link.stop()
    link.close()
    assert link._thread is not None and not link._thread.is_alive()


def test_a_relay_send_never_raises_or_blocks_when_the_socket_is_gone() -> None:
    link = relay.Relay()
    link.close()
    began = time.monotonic()
    link.send(("started", 1.0, "celery", "t", "app.add", None))
    assert link.dropped == 1 and time.monotonic() - began < 0.1


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/bin/celery", "-A", "proj", "worker", "-l", "info"], True),
        (["/venv/lib/python3.11/site-packages/celery/__main__.py", "-A", "p", "worker"], True),
        (["/venv/bin/celery", "-A", "proj", "beat"], False),
        (["/venv/bin/gunicorn", "app:worker"], False),
        (["manage.py", "runserver"], False),
        ([], False),
    ],
)
def test_a_worker_is_recognised_from_its_command_line(argv: list[str], expected: bool) -> None:
    assert worker.in_worker_command(argv) is expected


def test_pool_names() -> None:
    from celery.concurrency.prefork import TaskPool
    from celery.concurrency.thread import TaskPool as ThreadPool

    assert worker.pool_name("prefork") == "prefork"
    assert worker.pool_name("processes") == "prefork"
    assert worker.pool_name(TaskPool) == "prefork"
    assert worker.pool_name(ThreadPool) == "thread"
    assert worker.pool_name("threads") == "threads"


def test_cron_fields_render_celerys_value_sets() -> None:
    assert render_field(range(0, 60, 15), range(60)) == "*/15"
    assert render_field([1, 2, 3, 7], range(1, 32)) == "1-3,7"
    assert cron_fields(range(60), range(24), range(1, 32), range(1, 13), range(7)) == "* * * * *"
    assert cron_fields([0], [12], range(1, 8), range(1, 13), [1]) == "0 12 1-7 * 1"
    assert cron_fields([30], [3], [1], [1, 7], [0, 6]) == "30 3 1 */6 0,6"  # months 1 and 7
    assert cron_fields([30], [3], [1], [2, 8], [7]) == "30 3 1 2,8 0"  # Celery's 7 is Sunday


def test_result_sizes() -> None:
    assert capture.result_size(None) == "4"
    assert capture.result_size("x" * 10) == "10"
    assert capture.result_size([1, 2]) == "2"
    assert capture.result_size(1234) == "4"
    assert capture.result_size(object()) == ""


# -- enqueue onto an in-memory broker ----------------------------------------------------------


_memory_app = Celery("units", broker="memory://")
_memory_app.conf.task_default_queue = "units"


@_memory_app.task(name="units.add")
def add(x: int, y: int) -> int:
    return x + y


@pytest.fixture
def memory_app() -> Celery:
    return _memory_app


def make_adapter(app: Celery) -> tuple[CeleryAdapter, list[tuple[Any, ...]]]:
    adapter = CeleryAdapter.create(app, {})
    assert adapter is not None
    events: list[tuple[Any, ...]] = []
    capture.install(adapter, lambda kind, task_id, name, **fields: events.append(
        (kind, task_id, name, fields)
    ))  # fmt: skip
    return adapter, events


def test_a_fire_maps_onto_send_task_with_its_id_options_and_headers(memory_app: Celery) -> None:
    adapter, events = make_adapter(memory_app)
    seen: list[dict[str, Any]] = []

    def keep_headers(headers: dict[str, Any] | None = None, **kw: Any) -> None:
        seen.append(dict(headers or {}))

    signals.before_task_publish.connect(keep_headers, weak=False)
    try:
        fire_id = f"fire-{uuid.uuid4().hex}"
        result = enqueue.enqueue(
            adapter,
            Command(
                command_id="c1", kind=CommandKind.FIRE, deadline_seconds=10, engine="celery",
                app=adapter.app_name, task="units.add", args=[1, 2], kwargs={},
                options=CommandOptions(
                    queue="other", delay_seconds=30, expires_seconds=600, headers={"tenant": "a"}
                ),
                fire_id=fire_id, schedule_id="nightly", slot="2030-01-01T00:00:00+00:00",
            ),
        )  # fmt: skip
    finally:
        signals.before_task_publish.disconnect(keep_headers)
        adapter.uninstall_capture()
    assert (result.status, result.native_id) == (CommandStatus.ENQUEUED, fire_id)
    headers = seen[-1]
    assert headers["id"] == fire_id and headers["eta"] and headers["expires"]
    assert headers["z4j_fire_id"] == fire_id and headers["z4j_schedule_id"] == "nightly"
    assert headers["tenant"] == "a"
    kind, task_id, name, fields = events[-1]
    assert (kind.value, task_id, name) == ("scheduled", fire_id, "units.add")
    assert fields["fire_id"] == fire_id and fields["queue"] == "other"
    assert fields["extra"]["eta"] and fields["extra"]["expires"]
    assert fields["args"] == [1, 2]


def test_an_unknown_task_is_rejected_in_a_worker_process(memory_app: Celery) -> None:
    adapter, _ = make_adapter(memory_app)
    adapter.worker = object()  # as `worker_init` marks it
    result = enqueue.enqueue(
        adapter,
        Command(
            command_id="c2", kind=CommandKind.ENQUEUE, deadline_seconds=10, engine="celery",
            app=adapter.app_name, task="units.nope",
        ),
    )  # fmt: skip
    adapter.uninstall_capture()
    assert result.status is CommandStatus.REJECTED
    assert "units.nope" in result.reason and "units.add" in result.reason


def test_capture_absorbs_a_fault_in_emit(memory_app: Celery) -> None:
    adapter = CeleryAdapter.create(memory_app, {})
    assert adapter is not None

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("emit is broken")

    installed = capture.install(adapter, broken)
    try:
        memory_app.send_task("units.add", args=[1, 2])
    finally:
        adapter.uninstall_capture()
    assert installed.errors == 1


def test_discovery_lists_the_apps_own_tasks_not_celerys(memory_app: Celery) -> None:
    adapter = CeleryAdapter.create(memory_app, {})
    assert adapter is not None
    tasks = adapter.registered_tasks()
    assert tasks is not None
    names = [t.name for t in tasks]
    assert "units.add" in names
    assert any(name.startswith("celery.") for name in memory_app.tasks), "Celery has built-ins"
    assert not [n for n in names if n.startswith("celery.")], names
    assert next(t for t in tasks if t.name == "units.add").queue == "units"
    assert CeleryAdapter.create(object(), {}) is None


class _Received:
    """What `task_received` hands over, enough for the capture."""

    def __init__(self, task_id: str) -> None:
        self.id = task_id
        self.name = "units.add"
        self.eta = None
        self.hostname = "celery@units"
        self.args, self.kwargs = [1, 2], {}
        self.delivery_info = {"routing_key": "celery"}


def test_a_task_received_before_its_publish_returns_is_reported_enqueued_first(
    memory_app: Celery,
) -> None:
    """A worker that publishes (a z4j fire) may receive the message before Celery fires
    `after_task_publish` in the publishing thread: `enqueued` must still come first, once."""
    adapter, events = make_adapter(memory_app)
    installed = adapter.capture
    received_early: list[str] = []

    def receive_now(headers: dict[str, Any] | None = None, **kw: Any) -> None:
        task_id = (headers or {})["id"]
        received_early.append(task_id)
        installed.on_received(request=_Received(task_id))

    signals.before_task_publish.connect(receive_now, weak=False)
    try:
        result = memory_app.send_task("units.add", args=[1, 2])
    finally:
        signals.before_task_publish.disconnect(receive_now)
        adapter.uninstall_capture()
    assert received_early == [result.id]
    kinds = [(kind.value, task_id) for kind, task_id, _, _ in events]
    assert kinds == [("enqueued", result.id), ("received", result.id)]
