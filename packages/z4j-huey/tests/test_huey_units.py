"""The Huey adapter in one process: signal mapping, enqueue answers, schedule rendering.

Real Huey instances (MemoryHuey, immediate mode, so tasks run in the test's thread) and a
recording `emit`; the conformance suite covers real consumers and a real brain.
"""

from __future__ import annotations

import datetime
import random
import uuid
from typing import Any

import pytest
from huey import MemoryHuey, RedisHuey, crontab
from huey.exceptions import CancelExecution, RetryTask

from z4j_core.wire import Command, CommandKind, CommandOptions, CommandStatus
from z4j_huey import capture, enqueue, schedules
from z4j_huey.adapter import HueyAdapter


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict[str, Any]]] = []

    def __call__(self, kind: Any, task_id: str, task_name: str, **fields: Any) -> None:
        self.events.append((getattr(kind, "value", kind), task_id, task_name, fields))

    def kinds(self, task_id: str | None = None) -> list[str]:
        return [k for k, t, _, _ in self.events if task_id is None or t == task_id]

    def last(self, kind: str) -> dict[str, Any]:
        return next(f for k, _, _, f in reversed(self.events) if k == kind)


def instrumented(name: str = "units") -> tuple[Any, HueyAdapter, Recorder]:
    huey = MemoryHuey(name, immediate=True, utc=True)
    adapter = HueyAdapter(huey=huey)
    recorder = Recorder()
    capture.install(adapter, recorder)
    return huey, adapter, recorder


def command(task: str, **fields: Any) -> Command:
    fields.setdefault("kind", CommandKind.ENQUEUE)
    return Command(
        command_id=uuid.uuid4().hex,
        deadline_seconds=10,
        engine="huey",
        app="units",
        task=task,
        **fields,
    )


def test_success_reports_enqueued_started_succeeded_with_runtime_and_full_name() -> None:
    huey, _, recorder = instrumented()

    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    result = add(1, 2)
    assert result() == 3
    assert recorder.kinds() == ["enqueued", "started", "succeeded"]
    _, task_id, name, fields = recorder.events[-1]
    assert task_id == result.id and name == f"{__name__}.add"
    assert fields["runtime"] >= 0 and fields["queue"] == "units"
    host_pid = fields["worker"]
    assert host_pid.endswith(f":{__import__('os').getpid()}")
    assert recorder.events[1][3]["args"] == (1, 2)


def test_failure_with_retries_is_retried_then_failed_with_traceback() -> None:
    huey, _, recorder = instrumented()

    @huey.task(retries=2)
    def broken() -> None:
        raise KeyError("missing")

    broken()
    assert recorder.kinds() == [
        "enqueued",
        "started",
        "retried",
        "enqueued",
        "started",
        "retried",
        "enqueued",
        "started",
        "failed",
    ]
    retried = [f for k, _, _, f in recorder.events if k == "retried"]
    assert [f["retries"] for f in retried] == [1, 0]
    assert all(f["exception"] == "KeyError" for f in retried)
    failed = recorder.last("failed")
    assert failed["exception"] == "KeyError" and "missing" in failed["message"]
    assert "Traceback" in failed["traceback"] and "raise KeyError" in failed["traceback"]
    assert failed["retries"] == 0


def test_retry_task_cancel_revoke_expire_and_lock_map_to_their_kinds() -> None:
    huey, _, recorder = instrumented()
    calls: list[int] = []

    @huey.task(retries=1)
    def asks_again() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RetryTask()

    asks_again()
    assert recorder.kinds()[-4:] == ["retried", "enqueued", "started", "succeeded"]

    @huey.task()
    def cancels() -> None:
        raise CancelExecution(retry=False)

    cancels()
    assert recorder.kinds()[-1] == "cancelled"

    @huey.task()
    def plain() -> None:
        pass

    pending = plain.s()
    huey.revoke_by_id(pending.id)
    huey.enqueue(pending)
    assert recorder.kinds(pending.id)[-1] == "revoked"

    stale = plain.s(expires=datetime.datetime(2000, 1, 1))
    huey.enqueue(stale)
    assert recorder.kinds(stale.id)[-1] == "expired"

    @huey.task()
    @huey.lock_task("units-lock")
    def locked() -> None:
        pass

    with huey.lock_task("units-lock"):
        locked()
    assert recorder.kinds()[-1] == "locked"


def test_a_pre_execute_cancel_is_final_even_with_retries_left() -> None:
    huey, _, recorder = instrumented()

    @huey.pre_execute()
    def refuse(task: Any) -> None:
        raise CancelExecution()

    @huey.task(retries=3)
    def never() -> None:
        pass

    never()
    assert recorder.kinds()[-1] == "cancelled"


def test_capture_never_raises_even_when_emit_does() -> None:
    huey = MemoryHuey("faulty", immediate=True)
    adapter = HueyAdapter(huey=huey)

    def raising_emit(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    installed = capture.install(adapter, raising_emit)

    @huey.task()
    def ok() -> int:
        return 7

    assert ok()() == 7
    assert installed.errors == 3  # enqueued, started, succeeded: each absorbed and counted


def test_uninstall_disconnects_and_is_safe_twice() -> None:
    huey, adapter, recorder = instrumented()
    adapter.uninstall_capture()
    adapter.uninstall_capture()

    @huey.task()
    def quiet() -> None:
        pass

    quiet()
    assert recorder.events == []


def test_enqueue_by_name_uses_the_fire_id_and_options() -> None:
    huey = MemoryHuey("units", immediate=False, utc=True)
    adapter = HueyAdapter(huey=huey)
    recorder = Recorder()
    capture.install(adapter, recorder)

    @huey.task()
    def work(x: int, label: str = "") -> None:
        pass

    name = f"{__name__}.work"
    answer = enqueue.enqueue(
        adapter,
        command(
            name,
            kind=CommandKind.FIRE,
            args=[1],
            kwargs={"label": "a"},
            fire_id="fire-123",
            schedule_id="s1",
            slot="2030-01-01T00:00:00+00:00",
            options=CommandOptions(priority=5, delay_seconds=60, expires_seconds=120),
        ),
    )
    assert answer.status is CommandStatus.ENQUEUED and answer.native_id == "fire-123"
    [pending] = huey.pending()
    assert pending.id == "fire-123" and pending.args == (1,) and pending.kwargs == {"label": "a"}
    assert pending.priority == 5 and pending.eta is not None and pending.expires == 120
    assert recorder.kinds() == ["scheduled"]
    assert recorder.events[0][3]["fire_id"] == "fire-123"


def test_enqueue_rejects_what_it_cannot_honour() -> None:
    huey = MemoryHuey("units")
    adapter = HueyAdapter(huey=huey)

    unknown = enqueue.enqueue(adapter, command("nope.missing"))
    assert unknown.status is CommandStatus.REJECTED and "nope.missing" in unknown.reason

    @huey.task()
    def work() -> None:
        pass

    name = f"{__name__}.work"
    other_queue = enqueue.enqueue(adapter, command(name, options=CommandOptions(queue="other")))
    assert other_queue.status is CommandStatus.REJECTED and "one queue" in other_queue.reason
    assert huey.pending_count() == 0


def test_priority_is_advertised_and_accepted_only_where_the_storage_orders_by_it() -> None:
    redis_huey = RedisHuey("units-redis")  # no connection is made until it is used
    adapter = HueyAdapter.create(redis_huey, {})
    assert adapter is not None and "priority" not in adapter.capabilities

    @redis_huey.task()
    def work() -> None:
        pass

    answer = enqueue.enqueue(
        adapter, command(f"{__name__}.work", options=CommandOptions(priority=3))
    )
    assert answer.status is CommandStatus.REJECTED and "priority" in answer.reason
    assert "priority" in HueyAdapter(huey=MemoryHuey("m")).capabilities
    assert HueyAdapter.create(object(), {}) is None


# -- schedules ---------------------------------------------------------------------------------

FIELDS = [
    ("*", "*", "*", "*", "*"),
    ("*/15", "9-17", "*", "*", "1-5"),
    ("0", "0", "1", "*", "*"),
    ("30", "3", "1", "*", "1"),  # Huey: the 1st AND a Monday
    ("5,10,50", "*/6", "*", "2,4", "*"),
    ("0", "12", "29", "2", "*"),
    ("59", "23", "31", "*", "0,6"),
    ("0", "8", "*", "*", "0,2,4,6"),
]


@pytest.mark.parametrize(("minute", "hour", "day", "month", "day_of_week"), FIELDS)
def test_crontab_renders_and_next_runs_match_huey_itself(
    minute: str, hour: str, day: str, month: str, day_of_week: str
) -> None:
    validate = crontab(minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week)
    settings = schedules.crontab_settings(validate)
    assert settings is not None
    expression = schedules.cron_expression(settings)
    # The rendering reads back to the same matches.
    again = crontab(*expression.split())
    assert schedules.crontab_settings(again) == settings
    rng = random.Random(f"{minute}{hour}{day}{month}{day_of_week}")
    for _ in range(5):
        after = datetime.datetime(2026, 1, 1) + datetime.timedelta(
            minutes=rng.randrange(4 * 365 * 24 * 60), seconds=rng.randrange(60)
        )
        runs = schedules.next_crontab_runs(settings, after, count=3)
        assert runs, expression
        # Brute force with Huey's own function: no matching minute is skipped.
        moment = after.replace(second=0) + datetime.timedelta(minutes=1)
        if moment - after > datetime.timedelta(minutes=1):
            moment -= datetime.timedelta(minutes=1)
        probes = 0
        while moment < runs[0] and probes < 200_000:
            assert not validate(moment), (expression, moment, runs[0])
            moment += datetime.timedelta(minutes=1)
            probes += 1
        assert all(validate(run) for run in runs)
        assert runs == sorted(set(runs)) and runs[0] > after


def test_crontab_fields_render_as_cron_spells_them() -> None:
    render = schedules.render_field
    assert render(range(60), range(60)) == "*"
    assert render([0, 15, 30, 45], range(60)) == "*/15"
    assert render([1, 2, 3, 7], range(60)) == "1-3,7"
    assert render([5], range(60)) == "5"


def test_observe_reports_crontab_and_custom_periodic_tasks() -> None:
    huey = MemoryHuey("units", utc=True)

    @huey.periodic_task(crontab(minute="0", hour="2"))
    def nightly() -> None:
        pass

    def every_ten(moment: datetime.datetime) -> bool:
        return moment.minute % 10 == 0

    @huey.periodic_task(every_ten)
    def custom() -> None:
        pass

    @huey.task()
    def not_periodic() -> None:
        pass

    now = datetime.datetime(2026, 3, 1, 1, 30, 20)
    observed = {s.task: s for s in schedules.observe(huey, now)}
    assert set(observed) == {f"{__name__}.nightly", f"{__name__}.custom"}
    night = observed[f"{__name__}.nightly"]
    assert (night.kind, night.expression, night.read_only) == ("cron", "0 2 * * *", True)
    utc = datetime.timezone.utc
    assert night.next_runs[:2] == [
        datetime.datetime(2026, 3, 1, 2, 0, tzinfo=utc).timestamp(),
        datetime.datetime(2026, 3, 2, 2, 0, tzinfo=utc).timestamp(),
    ]
    ten = observed[f"{__name__}.custom"]
    assert ten.kind == "custom" and ten.expression.endswith("every_ten")
    assert ten.next_runs[0] == datetime.datetime(2026, 3, 1, 1, 40, tzinfo=utc).timestamp()
