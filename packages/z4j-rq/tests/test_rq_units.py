"""The RQ adapter against real Redis without a brain: enqueue (dedup, ids, options, refusals),
observed schedules read back from real `rq cron`, rq-scheduler and scheduled-registry state,
the outcome reader, and the pure helpers."""

from __future__ import annotations

import datetime
import importlib.util
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler

from z4j_core.plugins import load_adapters
from z4j_core.wire import Command, CommandKind, CommandOptions, CommandStatus, LifecycleKind
from z4j_rq import capture, enqueue, schedules
from z4j_rq.adapter import CAPABILITIES, RQAdapter

UTC = datetime.timezone.utc


@pytest.fixture
def connection(redis_url: str) -> Iterator[Redis]:
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    yield connection
    connection.flushdb()


@pytest.fixture
def adapter(connection: Redis) -> RQAdapter:
    adapter = RQAdapter.create(connection, {"app_name": "units", "tasks": ["os.getcwd"]})
    assert adapter is not None
    return adapter


def command(task: str = "os.path.join", **fields: Any) -> Command:
    kind = CommandKind.FIRE if fields.get("fire_id") else CommandKind.ENQUEUE
    if kind is CommandKind.FIRE:
        fields.setdefault("schedule_id", "sched-1")
        fields.setdefault("slot", "2030-01-01T00:00:00+00:00")
    return Command(
        command_id=uuid.uuid4().hex,
        kind=kind,
        deadline_seconds=30,
        engine="rq",
        app="units",
        task=task,
        **fields,
    )


# -- adapter and plugin ----------------------------------------------------------------------


def test_create_adapter_accepts_queues_and_connections_only(connection: Redis) -> None:
    queue = Queue("billing", connection=connection)
    from_queue = RQAdapter.create(queue, {})
    assert from_queue is not None and from_queue.default_queue == "billing"
    assert RQAdapter.create(connection, {}) is not None
    assert RQAdapter.create(object(), {}) is None
    assert from_queue.capabilities == CAPABILITIES


def test_the_entry_point_names_the_adapter_class_and_it_claims_only_rq_objects() -> None:
    registry = load_adapters()
    assert registry.classes["rq"] is RQAdapter
    assert registry.adapter_for("nope") is None


def test_registered_tasks_are_the_functions_seen_with_their_queues_and_workers(
    adapter: RQAdapter, connection: Redis
) -> None:
    adapter.saw("app.tasks.mail", "mail")
    adapter.saw("app.tasks.mail", "default")
    queue = Queue("mail", connection=connection)
    queue.enqueue("os.getcwd")
    SimpleWorker([queue], connection=connection, name="w-units").register_birth()
    schedules.observe(adapter)  # refreshes the queue and worker snapshot
    infos = {(t.name, t.queue): t.options for t in adapter.registered_tasks()}
    assert ("app.tasks.mail", "mail") in infos and ("app.tasks.mail", "default") in infos
    assert infos[("app.tasks.mail", "mail")] == {"workers": "w-units"}
    assert ("os.getcwd", "default") in infos  # declared


# -- enqueue -----------------------------------------------------------------------------------


def test_enqueue_by_dotted_path_with_options(adapter: RQAdapter, connection: Redis) -> None:
    result = enqueue.enqueue(
        adapter,
        command(
            args=["a", "b"],
            kwargs={},
            options=CommandOptions(
                queue="reports",
                expires_seconds=30,
                headers={"rq.timeout": "42", "rq.result_ttl": "7", "rq.failure_ttl": "9", "x": "y"},
            ),
        ),
    )
    assert result.status is CommandStatus.ENQUEUED, result
    job = Queue("reports", connection=connection).fetch_job(result.native_id or "")
    assert job is not None
    assert (job.func_name, job.args, job.origin) == ("os.path.join", ("a", "b"), "reports")
    assert (job.timeout, job.result_ttl, job.failure_ttl, job.ttl) == (42, 7, 9, 30)
    assert job.meta == {"x": "y"}


def test_a_fire_becomes_a_unique_job_and_rq_refuses_it_twice(
    adapter: RQAdapter, connection: Redis
) -> None:
    fire = command(fire_id="sched-1_20300101T000000Z")
    first = enqueue.enqueue(adapter, fire)
    assert (first.status, first.native_id) == (CommandStatus.ENQUEUED, "sched-1_20300101T000000Z")
    job = Queue("default", connection=connection).fetch_job("sched-1_20300101T000000Z")
    assert job is not None and job.meta["z4j_schedule_id"] == "sched-1"
    second = enqueue.enqueue(adapter, command(fire_id="sched-1_20300101T000000Z"))
    assert second.status is CommandStatus.DUPLICATE
    assert Queue("default", connection=connection).count == 1


def test_a_delayed_fire_is_unique_too(adapter: RQAdapter, connection: Redis) -> None:
    options = CommandOptions(delay_seconds=60)
    first = enqueue.enqueue(adapter, command(fire_id="later_1", options=options))
    assert first.status is CommandStatus.ENQUEUED
    assert enqueue.enqueue(adapter, command(fire_id="later_1", options=options)).status is (
        CommandStatus.DUPLICATE
    )
    registry = Queue("default", connection=connection).scheduled_job_registry
    assert registry.get_job_ids() == ["later_1"]
    (score,) = [s for _, s in connection.zrange(registry.key, 0, -1, withscores=True)]
    assert score >= time.time() + 59


@pytest.mark.parametrize(
    ("task", "fields", "reason"),
    [
        ("no_such_module_z4j.task", {}, "no_such_module_z4j.task"),
        ("os.no_such_function", {}, "no_such_function"),
        ("os", {}, "dotted path"),
        ("os.sep", {}, "not callable"),
        ("os.getcwd", {"options": CommandOptions(priority=5)}, "priority"),
        ("os.getcwd", {"fire_id": "has:colon"}, "[A-Za-z0-9_-]"),
        ("os.getcwd", {"options": CommandOptions(headers={"rq.timeout": "soon"})}, "whole"),
    ],
)
def test_refusals_enqueue_nothing(
    adapter: RQAdapter, connection: Redis, task: str, fields: dict[str, Any], reason: str
) -> None:
    result = enqueue.enqueue(adapter, command(task, **fields))
    assert result.status is CommandStatus.REJECTED, result
    assert reason in result.reason, result.reason
    assert Queue("default", connection=connection).count == 0


def test_run_at_rounds_up_to_a_whole_second() -> None:
    now = datetime.datetime(2030, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    assert enqueue.run_at(3, now) == datetime.datetime(2030, 1, 1, 0, 0, 4, tzinfo=UTC)
    exact = datetime.datetime(2030, 1, 1, tzinfo=UTC)
    assert enqueue.run_at(2, exact) == datetime.datetime(2030, 1, 1, 0, 0, 2, tzinfo=UTC)


# -- capture -----------------------------------------------------------------------------------


def test_producer_capture_reports_enqueued_scheduled_rejected_and_cancelled(
    adapter: RQAdapter, connection: Redis
) -> None:
    emitted: list[tuple[Any, ...]] = []
    capture.install(adapter, lambda kind, task_id, name, **f: emitted.append((kind, task_id, f)))
    try:
        queue = Queue("default", connection=connection)
        job = queue.enqueue("os.getcwd", job_id="one")
        later = queue.enqueue_in(datetime.timedelta(seconds=60), "os.getcwd", job_id="two")
        with pytest.raises(Exception, match="already exists"):
            queue.enqueue("os.getcwd", job_id="one", unique=True)
        job.cancel()
        other = Queue("default", connection=Redis.from_url("redis://127.0.0.1:6379/0"))
        assert capture.capture_for(other.connection) is None  # another database: not ours
    finally:
        adapter.uninstall_capture()
    kinds = [(k, i) for k, i, _ in emitted]
    assert kinds == [
        (LifecycleKind.ENQUEUED, "one"),
        (LifecycleKind.SCHEDULED, "two"),
        (LifecycleKind.CANCELLED, "one"),
    ]
    assert "eta" in emitted[1][2]["extra"]
    assert later.id == "two"
    queue.enqueue("os.getcwd", job_id="after-uninstall")
    assert len(emitted) == 3


def test_a_failed_write_is_reported_rejected(adapter: RQAdapter) -> None:
    emitted: list[Any] = []
    broken = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    dead = RQAdapter.create(broken, {})
    assert dead is not None
    capture.install(dead, lambda kind, task_id, name, **f: emitted.append((kind, f)))
    try:
        with pytest.raises(Exception):  # noqa: B017 -- whatever redis raises
            Queue("default", connection=broken).enqueue("os.getcwd")
    finally:
        dead.uninstall_capture()
    assert [k for k, _ in emitted] == [LifecycleKind.ENQUEUED, LifecycleKind.REJECTED]
    assert "RQ did not enqueue it" in emitted[1][1]["message"]


def test_capture_never_raises_into_rq(adapter: RQAdapter, connection: Redis) -> None:
    def broken_emit(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("emit broke")

    found = capture.install(adapter, broken_emit)
    try:
        job = Queue("default", connection=connection).enqueue("os.getcwd")
        found.finished(job, "default", worker="w", execution_id=None, elapsed=0.1)
        found.started(job, "default", "w")
        job.cancel()
    finally:
        adapter.uninstall_capture()
    assert found.errors == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'Traceback (most recent call last):\n  File "x.py", line 1\n'
            "app.tasks.BoomError: it broke: badly\n",
            ("app.tasks.BoomError", "it broke: badly"),
        ),
        (
            "Traceback (most recent call last):\nKeyboardInterrupt\n",
            ("KeyboardInterrupt", "KeyboardInterrupt"),
        ),
        (
            "Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); ",
            ("rq.WorkHorseTerminated", None),
        ),
        ("Moved to FailedJobRegistry, due to AbandonedJobError, at x", (capture.ABANDONED, None)),
        ("Job stopped by user, work-horse terminated.", ("rq.JobFailed", None)),
    ],
)
def test_parse_exc_string(text: str, expected: tuple[str, str | None]) -> None:
    name, message = capture.parse_exc_string(text)
    assert name == expected[0]
    assert message == (expected[1] if expected[1] is not None else text.strip())


# -- observed schedules ---------------------------------------------------------------------


def test_rq_cron_schedules_are_read_back_from_redis(adapter: RQAdapter, connection: Redis) -> None:
    cron = CronScheduler(connection=connection, name="units-cron")
    cron.register(print, "default", cron="*/15 9-17 * * 1-5")
    cron.register(print, "reports", interval=600, name="every-ten")
    cron.register_birth()
    latest = time.time() - 100
    connection.zadd("rq:cron_jobs", {"every-ten": latest})
    now = time.time()
    observed = {s.name: s for s in schedules.observe_rq_cron(adapter, now)}
    assert set(observed) == {"builtins.print", "every-ten"}
    office = observed["builtins.print"]
    assert (office.source, office.kind, office.expression) == (
        "rq_cron",
        "cron",
        "*/15 9-17 * * 1-5",
    )
    assert office.read_only and len(office.next_runs) == schedules.NEXT_RUNS
    for run in office.next_runs:
        local = datetime.datetime.fromtimestamp(run)
        assert local.minute % 15 == 0 and 9 <= local.hour <= 17 and local.weekday() < 5
        assert run > now
    every = observed["every-ten"]
    assert (every.kind, every.expression, every.task) == (
        "interval",
        "every 600s",
        "builtins.print",
    )
    assert every.next_runs[:2] == [latest + 600, latest + 1200]
    assert ("builtins.print", "reports") in {(t.name, t.queue) for t in adapter.registered_tasks()}


@pytest.mark.skipif(
    importlib.util.find_spec("rq_scheduler") is None, reason="rq-scheduler is not installed"
)
# rq-scheduler's `crontab` dependency warns about its own future default; not ours to change.
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_rq_scheduler_jobs_are_read_back_from_redis(adapter: RQAdapter, connection: Redis) -> None:
    from rq_scheduler import Scheduler

    scheduler = Scheduler(connection=connection)
    cron_job = scheduler.cron("0 3 * * *", func=print, repeat=2, id="nightly")
    start = datetime.datetime(2031, 5, 1, 12, 0)  # rq-scheduler's times are naive UTC
    scheduler.schedule(start, print, interval=300, repeat=3, id="five-min")
    scheduler.enqueue_at(datetime.datetime(2031, 6, 1, 8, 30), print, job_id="once")
    observed = {s.name: s for s in schedules.observe_rq_scheduler(adapter, time.time())}
    assert set(observed) == {"nightly", "five-min", "once"}
    nightly = observed["nightly"]
    assert (nightly.source, nightly.kind, nightly.task) == (
        "rq_scheduler",
        "cron",
        "builtins.print",
    )
    assert nightly.expression == "0 3 * * * (repeat 2 more)"
    assert nightly.next_runs[0] == connection.zscore("rq:scheduler:scheduled_jobs", cron_job.id)
    assert len(nightly.next_runs) == 3  # the stored run, then two repeats
    five = observed["five-min"]
    epoch = start.replace(tzinfo=UTC).timestamp()
    assert five.expression == "every 300s (repeat 3 more)"
    assert five.next_runs == [epoch, epoch + 300, epoch + 600, epoch + 900]
    once = observed["once"]
    assert once.kind == "once"
    assert once.next_runs == [datetime.datetime(2031, 6, 1, 8, 30, tzinfo=UTC).timestamp()]


def test_jobs_in_rq_scheduled_registries_are_observed(
    adapter: RQAdapter, connection: Redis
) -> None:
    at = datetime.datetime(2032, 1, 2, 3, 4, 5, tzinfo=UTC)
    Queue("reports", connection=connection).enqueue_at(at, "os.getcwd", job_id="waiting")
    observed = schedules.observe(adapter)
    (waiting,) = [s for s in observed if s.source == "rq_scheduled"]
    assert (waiting.name, waiting.task, waiting.kind) == ("waiting", "os.getcwd", "once")
    assert waiting.next_runs == [at.timestamp()]
    assert adapter.queues == {"reports": []}


def test_next_interval_runs() -> None:
    assert schedules.next_interval_runs(None, 10, 100, 3) == [100, 110, 120]
    assert schedules.next_interval_runs(95, 10, 100, 2) == [105, 115]
    assert schedules.next_interval_runs(50, 10, 100, 2) == [100, 110]
    assert schedules.next_interval_runs(50, 0, 100) == []


def test_a_workers_outcome_read_rides_on_its_heartbeat(
    adapter: RQAdapter, connection: Redis
) -> None:
    """In the worker process: `started` before the job, the outcome once RQ's post-job
    heartbeat is sent (the read shares its pipeline), with what RQ recorded."""
    import z4j_rq

    emitted: list[tuple[Any, ...]] = []
    found = capture.install(adapter, lambda kind, task_id, name, **f: emitted.append((kind, f)))
    try:
        queue = Queue("default", connection=connection)
        ok = queue.enqueue("os.getcwd")
        bad = queue.enqueue("os.path.join", 1, 2)  # raises TypeError
        worker = z4j_rq.SimpleWorker([queue], connection=connection)
        worker._z4j_capture = found
        worker.register_birth()
        for job in (ok, bad):
            worker.execute_job(job, queue)
            assert [k for k, _ in emitted][-1] is LifecycleKind.STARTED
            worker.heartbeat()
        worker._z4j_flush()  # nothing pending any more
    finally:
        adapter.uninstall_capture()
    emitted = [e for e in emitted if e[0] is not LifecycleKind.ENQUEUED]  # the producer side
    kinds = [k for k, _ in emitted]
    assert kinds == [
        LifecycleKind.STARTED,
        LifecycleKind.SUCCEEDED,
        LifecycleKind.STARTED,
        LifecycleKind.FAILED,
    ]
    assert emitted[1][1]["runtime"] >= 0
    failed = emitted[3][1]
    assert failed["exception"] == "TypeError" and "join" in failed["traceback"], failed
    assert connection.hget(worker.key, "last_heartbeat") is not None
