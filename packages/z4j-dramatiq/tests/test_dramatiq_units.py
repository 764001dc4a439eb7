"""The Dramatiq adapter in one process: middleware mapping, enqueue answers, schedule reading.

Real Dramatiq brokers (StubBroker) and a real in-process `dramatiq.Worker`, with a recording
`emit`; the conformance suite covers real worker processes, real brokers and a real brain.
"""

from __future__ import annotations

import datetime
import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, Retries
from periodiq import PeriodiqMiddleware, cron

from z4j_core.wire import Command, CommandKind, CommandOptions, CommandStatus
from z4j_dramatiq import capture, enqueue, schedules
from z4j_dramatiq.adapter import DramatiqAdapter

pytestmark = pytest.mark.timeout(60)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict[str, Any]]] = []

    def __call__(self, kind: Any, task_id: str, task_name: str, **fields: Any) -> None:
        self.events.append((getattr(kind, "value", kind), task_id, task_name, fields))

    def kinds(self, task_id: str | None = None) -> list[str]:
        return [k for k, t, _, _ in self.events if task_id is None or t == task_id]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [f for k, _, _, f in self.events if k == kind]


def make_broker(place: str = "default") -> tuple[StubBroker, DramatiqAdapter, Recorder]:
    """A StubBroker with our middleware `place`d: added by `install` (before Retries), or
    appended last, or first (so our `after_*` hooks run before or after Retries')."""
    broker = StubBroker()
    broker.emit_after("process_boot")
    adapter = DramatiqAdapter(broker=broker, app_name="units")
    recorder = Recorder()
    if place == "default":
        capture.install(adapter, recorder)
    else:
        middleware = capture.Z4JMiddleware()
        middleware.adapter = adapter
        adapter.capture = middleware
        if place == "last":
            broker.add_middleware(middleware)
        else:
            broker.middleware.insert(0, middleware)
        capture.install(adapter, recorder)
    return broker, adapter, recorder


@pytest.fixture
def worker_of() -> Iterator[Any]:
    workers: list[dramatiq.Worker] = []

    def start(broker: StubBroker) -> dramatiq.Worker:
        worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
        worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def command(task: str, **fields: Any) -> Command:
    fields.setdefault("kind", CommandKind.ENQUEUE)
    return Command(
        command_id=uuid.uuid4().hex,
        deadline_seconds=10,
        engine="dramatiq",
        app="units",
        task=task,
        **fields,
    )


def test_success_reports_enqueued_started_succeeded_with_runtime(worker_of: Any) -> None:
    broker, _, recorder = make_broker()

    @dramatiq.actor(broker=broker, queue_name="units")
    def add(a: int, b: int) -> None:
        pass

    message = add.send(1, 2)
    worker_of(broker)
    broker.join("units", fail_fast=False)
    assert recorder.kinds(message.message_id) == ["enqueued", "started", "succeeded"]
    _, task_id, name, fields = recorder.events[-1]
    assert (task_id, name, fields["queue"]) == (message.message_id, "add", "units")
    assert fields["runtime"] >= 0
    assert fields["worker"].endswith(f":{__import__('os').getpid()}")
    assert recorder.events[0][3]["args"] == (1, 2)


@pytest.mark.parametrize("place", ["default", "last", "first"])
def test_retries_are_retried_with_counts_then_failed_and_dead_lettered(
    place: str, worker_of: Any
) -> None:
    """Whatever the middleware order, the Retries decision is read correctly."""
    broker, _, recorder = make_broker(place)

    @dramatiq.actor(broker=broker, max_retries=2, min_backoff=10, max_backoff=20)
    def broken() -> None:
        raise KeyError("missing")

    message = broken.send()
    worker_of(broker)
    broker.join(broken.queue_name, fail_fast=False)
    kinds = recorder.kinds(message.message_id)
    assert [k for k in kinds if k != "enqueued"] == [
        "started",
        "retried",
        "started",
        "retried",
        "started",
        "failed",
        "dead_lettered",
    ], kinds
    retried = recorder.all("retried")
    assert [f["retries"] for f in retried] == [1, 2]
    assert all(f["exception"] == "KeyError" and f["extra"]["delay_ms"] > 0 for f in retried)
    assert [f["retries"] for f in recorder.all("started")] == [0, 1, 2]
    [failed] = recorder.all("failed")
    assert failed["exception"] == "KeyError" and "missing" in failed["message"]
    assert "Traceback" in failed["traceback"] and "raise KeyError" in failed["traceback"]
    assert failed["retries"] == 2 and failed["runtime"] >= 0
    assert len(broker.dead_letters) == 1


def test_a_failure_without_retries_left_is_failed_once_and_never_retried(worker_of: Any) -> None:
    broker, _, recorder = make_broker()

    @dramatiq.actor(broker=broker, max_retries=0)
    def once() -> None:
        raise ValueError("no")

    message = once.send()
    worker_of(broker)
    broker.join(once.queue_name, fail_fast=False)
    assert recorder.kinds(message.message_id) == [
        "enqueued",
        "started",
        "failed",
        "dead_lettered",
    ]


def test_without_the_retries_middleware_a_failure_is_acked_and_reported_failed(
    worker_of: Any,
) -> None:
    broker, _, recorder = make_broker()
    broker.middleware[:] = [m for m in broker.middleware if not isinstance(m, Retries)]

    @dramatiq.actor(broker=broker)
    def lonely() -> None:
        raise ValueError("no retries here")

    message = lonely.send()
    worker_of(broker)
    broker.join(lonely.queue_name, fail_fast=False)
    assert recorder.kinds(message.message_id) == ["enqueued", "started", "failed"]
    assert not broker.dead_letters


def test_an_aged_message_is_skipped_then_dead_lettered_and_never_runs(worker_of: Any) -> None:
    broker, _, recorder = make_broker()
    assert any(isinstance(m, AgeLimit) for m in broker.middleware)
    ran: list[int] = []

    @dramatiq.actor(broker=broker, max_age=1)
    def stale() -> None:
        ran.append(1)

    message = stale.send()

    time.sleep(0.05)
    worker_of(broker)
    broker.join(stale.queue_name, fail_fast=False)
    assert recorder.kinds(message.message_id) == ["enqueued", "skipped", "dead_lettered"]
    assert not ran


def test_a_delayed_message_is_scheduled_then_enqueued_when_due(worker_of: Any) -> None:
    broker, _, recorder = make_broker()

    @dramatiq.actor(broker=broker)
    def later() -> None:
        pass

    message = later.send_with_options(delay=50)
    worker_of(broker)
    broker.join(later.queue_name, fail_fast=False)
    kinds = recorder.kinds(message.message_id)
    assert kinds == ["scheduled", "enqueued", "started", "succeeded"], kinds
    assert recorder.all("scheduled")[0]["queue"] == later.queue_name  # not `default.DQ`


def test_capture_never_raises_even_when_emit_does(worker_of: Any) -> None:
    broker = StubBroker()
    adapter = DramatiqAdapter(broker=broker)
    calls: list[int] = []

    def raising_emit(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        raise RuntimeError("boom")

    installed = capture.install(adapter, raising_emit)
    done: list[int] = []

    @dramatiq.actor(broker=broker)
    def ok() -> None:
        done.append(1)

    ok.send()
    worker_of(broker)
    broker.join(ok.queue_name, fail_fast=False)
    assert done == [1]
    assert installed.errors == len(calls) == 3  # enqueued, started, succeeded: each absorbed


def test_uninstall_disconnects_and_is_safe_twice(worker_of: Any) -> None:
    broker, adapter, recorder = make_broker()
    adapter.uninstall_capture()
    adapter.uninstall_capture()

    @dramatiq.actor(broker=broker)
    def quiet() -> None:
        pass

    quiet.send()
    assert recorder.events == []


def test_the_middleware_added_by_hand_binds_itself_to_its_broker() -> None:
    broker = StubBroker()
    middleware = capture.Z4JMiddleware(start=False, app_name="by-hand")
    broker.add_middleware(middleware)
    assert getattr(broker, "_z4j_adapter", None) is None  # no actor yet: nothing named it

    @dramatiq.actor(broker=broker)
    def first() -> None:
        pass

    adapter = broker._z4j_adapter  # type: ignore[attr-defined]
    assert adapter.capture is middleware and middleware.adapter is adapter
    assert adapter.app_name == "by-hand"
    assert middleware.emit is not capture._ignore
    assert sum(isinstance(m, capture.Z4JMiddleware) for m in broker.middleware) == 1
    assert DramatiqAdapter.create(broker, {}) is adapter
    assert DramatiqAdapter.create(object(), {}) is None


def test_instrument_without_a_middleware_adds_one_that_keeps_start_false() -> None:
    import z4j_dramatiq

    broker = StubBroker()
    assert z4j_dramatiq.instrument(broker, start=False, app_name="added") is broker
    (middleware,) = [m for m in broker.middleware if isinstance(m, capture.Z4JMiddleware)]
    assert middleware.start is False  # its worker-boot hook leaves the link to the caller
    assert middleware.adapter is broker._z4j_adapter  # type: ignore[attr-defined]


# -- enqueue -----------------------------------------------------------------------------------


def test_enqueue_by_name_uses_the_fire_id_delay_and_options() -> None:
    broker, adapter, recorder = make_broker()

    @dramatiq.actor(broker=broker, queue_name="mail")
    def work(x: int, label: str = "") -> None:
        pass

    answer = enqueue.enqueue(
        adapter,
        command(
            "work",
            kind=CommandKind.FIRE,
            args=[1],
            kwargs={"label": "a"},
            fire_id="fire-123",
            schedule_id="s1",
            slot="2030-01-01T00:00:00+00:00",
            options=CommandOptions(delay_seconds=60, headers={"max_retries": "3"}),
        ),
    )
    assert answer.status is CommandStatus.ENQUEUED and answer.native_id == "fire-123"
    [queued] = broker.queues["mail.DQ"].queue
    message = dramatiq.Message.decode(queued)
    assert message.message_id == "fire-123" and message.args == (1,)
    assert message.kwargs == {"label": "a"} and message.options["max_retries"] == 3
    assert message.options["eta"] > 0
    assert recorder.kinds() == ["scheduled"]
    assert recorder.events[0][3]["fire_id"] == "fire-123"


def test_an_actor_the_producer_has_not_imported_is_sent_to_the_queue_given() -> None:
    broker, adapter, recorder = make_broker()
    broker.declare_queue("elsewhere")
    answer = enqueue.enqueue(
        adapter, command("remote.actor", args=[2], options=CommandOptions(queue="elsewhere"))
    )
    assert answer.status is CommandStatus.ENQUEUED
    [queued] = broker.queues["elsewhere"].queue
    assert dramatiq.Message.decode(queued).actor_name == "remote.actor"
    assert recorder.kinds() == ["enqueued"]


def test_enqueue_rejects_what_it_cannot_honour_and_sends_nothing() -> None:
    broker, adapter, _ = make_broker()

    @dramatiq.actor(broker=broker)
    def work() -> None:
        pass

    unknown = enqueue.enqueue(adapter, command("nope.missing"))
    assert unknown.status is CommandStatus.REJECTED and "nope.missing" in unknown.reason
    assert "work" in unknown.reason
    for options, words in [
        (CommandOptions(priority=5), "priority"),
        (CommandOptions(expires_seconds=5), "expire"),
        (CommandOptions(delay_seconds=8 * 24 * 3600), "7 days"),
        (CommandOptions(headers={"no_such_option": "1"}), "no_such_option"),
    ]:
        answer = enqueue.enqueue(adapter, command("work", options=options))
        assert answer.status is CommandStatus.REJECTED and words in answer.reason, answer
    assert all(not q.queue for q in broker.queues.values())
    assert not broker.dead_letters


def test_a_broker_that_refuses_the_write_turns_enqueued_into_rejected() -> None:
    broker, adapter, recorder = make_broker()

    @dramatiq.actor(broker=broker)
    def work() -> None:
        pass

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    broker.queues[work.queue_name].put = refuse  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        enqueue.enqueue(adapter, command("work"))
    assert recorder.kinds() == ["enqueued", "rejected"]
    assert "broker down" in recorder.all("rejected")[0]["message"]


def test_registered_actors_are_listed_with_their_queues_and_options() -> None:
    broker, adapter, _ = make_broker()
    broker.add_middleware(PeriodiqMiddleware())

    @dramatiq.actor(broker=broker, queue_name="q1", max_retries=4, time_limit=1000)
    def one() -> None:
        pass

    @dramatiq.actor(broker=broker, periodic=cron("0 * * * *"))
    def two() -> None:
        pass

    infos = {t.name: t for t in adapter.registered_tasks()}
    assert infos["one"].queue == "q1"
    assert infos["one"].options == {"max_retries": "4", "time_limit": "1000"}
    assert infos["two"].queue == "default" and infos["two"].options["periodic"] == "0 * * * *"


# -- schedules ---------------------------------------------------------------------------------


def _periodiq_runs(spec: str, after: datetime.datetime, count: int) -> list[float]:
    """The minutes periodiq's own `validate` accepts after `after`, found minute by minute.

    (periodiq's scheduler sends an actor when `validate(now)` is true. Its `next_valid_date`
    is not used as the oracle: it does not reset the minute when it moves to a later day.)
    """
    parsed = cron(spec)
    moment = after.replace(second=0, microsecond=0)
    runs: list[float] = []
    for _ in range(200_000):
        moment += datetime.timedelta(minutes=1)
        if parsed.validate(moment):
            runs.append(moment.timestamp())
            if len(runs) == count:
                break
    return runs


# Sunday is left out: periodiq parses `0`/`sun` as 0 but `validate` compares isoweekday()
# (7 on Sundays), so a Sunday-only spec never fires there; z4j reports cron's meaning.
@pytest.mark.parametrize(
    "spec",
    ["*/15 9-17 * * 1-5", "30 3 1 * *", "0 0 * * *", "5,35 */6 * 6,8 *", "@hourly", "0 12 * * 1"],
)
def test_periodiq_next_runs_match_periodiq_itself(spec: str) -> None:
    after = datetime.datetime(2026, 5, 12, 22, 7, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    expression = schedules.periodiq_expression(cron(spec))
    ours = schedules.next_cron_runs(expression, "Europe/Berlin", after, count=4)
    assert ours == _periodiq_runs(spec, after, 4), expression


def test_periodiq_schedules_are_observed_in_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker, _, _ = make_broker()
    broker.add_middleware(PeriodiqMiddleware())

    @dramatiq.actor(broker=broker, periodic=cron("@daily"))
    def nightly() -> None:
        pass

    @dramatiq.actor(broker=broker)
    def plain() -> None:
        pass

    monkeypatch.setattr(schedules, "local_zone_name", lambda: "America/New_York")
    now = datetime.datetime(2026, 3, 7, 12, 0, tzinfo=datetime.timezone.utc)
    [observed] = schedules.observe(broker, now)
    assert (observed.source, observed.task, observed.kind) == ("periodiq", "nightly", "cron")
    assert observed.expression == "0 0 * * * (America/New_York)" and observed.read_only
    zone = ZoneInfo("America/New_York")
    assert observed.next_runs[:3] == [
        datetime.datetime(2026, 3, 8, 0, 0, tzinfo=zone).timestamp(),
        datetime.datetime(2026, 3, 9, 0, 0, tzinfo=zone).timestamp(),  # after spring-forward
        datetime.datetime(2026, 3, 10, 0, 0, tzinfo=zone).timestamp(),
    ]


def test_dramatiq_crontab_jobs_are_observed_with_their_triggers_next_runs() -> None:
    django_conf = pytest.importorskip("django.conf")
    if not django_conf.settings.configured:
        django_conf.settings.configure(TIME_ZONE="Europe/Berlin", USE_TZ=True)
    import dramatiq_crontab

    broker, _, _ = make_broker()

    @dramatiq.actor(broker=broker)
    def report() -> None:
        pass

    @dramatiq.actor(broker=broker)
    def heartbeat() -> None:
        pass

    dramatiq_crontab.cron("0 6 * * Mon-Fri")(report)
    dramatiq_crontab.interval(seconds=90)(heartbeat)
    try:
        now = datetime.datetime(2026, 3, 28, 12, 0, tzinfo=datetime.timezone.utc)  # Saturday
        observed = {s.task: s for s in schedules.observe(broker, now)}
        cron_job = observed["report"]
        assert cron_job.source == "dramatiq_crontab" and cron_job.kind == "cron"
        assert cron_job.expression == "0 6 * * mon-fri (Europe/Berlin)"
        berlin = ZoneInfo("Europe/Berlin")
        assert cron_job.next_runs[:2] == [
            datetime.datetime(2026, 3, 30, 6, 0, tzinfo=berlin).timestamp(),  # after DST began
            datetime.datetime(2026, 3, 31, 6, 0, tzinfo=berlin).timestamp(),
        ]
        beat = observed["heartbeat"]
        assert beat.kind == "interval" and beat.expression.startswith("every 90s")
        gaps = {round(b - a) for a, b in itertools.pairwise(beat.next_runs)}
        assert gaps == {90}
    finally:
        for job in dramatiq_crontab.scheduler.get_jobs():
            job.remove()
