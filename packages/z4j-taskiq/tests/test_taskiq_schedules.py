"""Observed taskiq schedules: next runs against taskiq's own matcher, label and Redis sources.

The oracle for cron next runs is taskiq's scheduler itself (`is_cron_task_now`, asked about
every minute of real time), so DST and `cron_offset` cases are checked against what taskiq
would really do, not against our reading of it.
"""

from __future__ import annotations

import datetime
import warnings
from typing import Any

import msgspec
import pytest
from taskiq import InMemoryBroker
from taskiq.cli.scheduler.run import is_cron_task_now
from taskiq.scheduler.scheduled_task import ScheduledTask
from taskiq.serializers import JSONSerializer

from z4j_taskiq import schedules
from z4j_taskiq.adapter import TaskiqAdapter

UTC = datetime.timezone.utc


def taskiq_runs(cron: str, offset: Any, after: float, count: int, days: int = 3) -> list[float]:
    """Every minute start after `after` at which taskiq's scheduler fires `cron`."""
    start = datetime.datetime.fromtimestamp(after, UTC).replace(second=0, microsecond=0)
    found = []
    for minute in range(1, days * 24 * 60 + 1):
        moment = start + datetime.timedelta(minutes=minute)
        if is_cron_task_now(cron, moment, offset=offset):
            found.append(moment.timestamp())
            if len(found) == count:
                break
    return found


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


CASES = [
    # (cron, cron_offset, after) -- fall-back and spring-forward in Europe/Berlin (2026-10-25,
    # 2026-03-29) and New York, fixed hours and wildcard hours, offsets as timedelta, day OR.
    ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00+00:00"),
    ("*/20 * * * *", "Europe/Berlin", "2026-10-25T00:10:00+00:00"),
    ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00+00:00"),
    ("0 1 * * *", "America/New_York", "2026-11-01T03:00:00+00:00"),
    ("15 9 * * 1-5", None, "2026-05-01T00:00:00+00:00"),
    ("0 9 * * *", datetime.timedelta(hours=2), "2026-05-01T00:00:00+00:00"),
    ("0 9 * * *", datetime.timedelta(hours=-5, minutes=-30), "2026-05-01T00:00:00+00:00"),
    ("0 0 1 * 3", None, "2026-04-28T00:00:00+00:00"),  # the 1st or a Wednesday
    ("0 0 */2 * 3", None, "2026-04-28T00:00:00+00:00"),  # `*` in a day field: AND
    ("*/15 9-17 * * 1-5", None, "2026-05-01T16:40:00+00:00"),
]


@pytest.mark.parametrize(("cron", "offset", "after"), CASES)
def test_next_cron_runs_are_the_minutes_taskiq_fires(cron: str, offset: Any, after: str) -> None:
    start = at(after)
    expected = taskiq_runs(cron, offset, start, 5, days=80)
    assert len(expected) == 5
    assert schedules.next_cron_runs(cron, offset, start, 5) == expected


def test_a_fall_back_fires_both_occurrences_and_a_gap_never() -> None:
    berlin_fall = schedules.next_cron_runs(
        "30 2 * * *", "Europe/Berlin", at("2026-10-24T12:00:00+00:00"), 2
    )
    assert [datetime.datetime.fromtimestamp(r, UTC).isoformat() for r in berlin_fall] == [
        "2026-10-25T00:30:00+00:00",
        "2026-10-25T01:30:00+00:00",
    ]
    spring = schedules.next_cron_runs(
        "30 2 * * *", "Europe/Berlin", at("2026-03-28T12:00:00+00:00"), 1
    )
    assert datetime.datetime.fromtimestamp(spring[0], UTC).date() == datetime.date(2026, 3, 30)


def test_observed_kinds_and_expressions() -> None:
    now = at("2026-05-01T00:00:00+00:00")
    cron = schedules.observed("s", "n", "t", cron="0 9 * * *", cron_offset="Europe/Berlin", now=now)
    assert (cron.kind, cron.expression) == ("cron", "0 9 * * * (Europe/Berlin)")
    assert cron.next_runs[0] == at("2026-05-01T07:00:00+00:00") and cron.read_only
    shifted = schedules.observed(
        "s", "n", "t", cron="0 9 * * *", cron_offset=datetime.timedelta(hours=-3), now=now
    )
    assert shifted.expression == "0 9 * * * (UTC-03:00)"
    once = schedules.observed("s", "n", "t", at=datetime.datetime(2026, 5, 2, 8, 0), now=now)
    assert (once.kind, once.next_runs) == ("oneshot", [at("2026-05-02T08:00:00+00:00")])
    assert once.expression == "at 2026-05-02T08:00:00+00:00"
    gone = schedules.observed("s", "n", "t", at=datetime.datetime(2026, 4, 2, tzinfo=UTC), now=now)
    assert gone.next_runs == []
    every = schedules.observed("s", "n", "t", interval=90, now=now, anchor=now - 100)
    assert (every.kind, every.expression) == ("interval", "every 90s")
    assert every.next_runs[:2] == [now + 80, now + 170]
    unknown_anchor = schedules.observed(
        "s", "n", "t", interval=datetime.timedelta(minutes=1), now=now
    )
    assert unknown_anchor.next_runs == [] and unknown_anchor.expression == "every 60s"
    broken = schedules.observed("s", "n", "t", cron="61 * * * *", now=now)
    assert "unreadable" in broken.expression and broken.next_runs == []


def test_label_schedules_of_the_brokers_tasks() -> None:
    broker = InMemoryBroker()

    @broker.task(
        task_name="labels.report",
        schedule=[
            {"cron": "0 6 * * *", "cron_offset": "Europe/Berlin", "schedule_id": "morning"},
            {"interval": 30},
            {"time": datetime.datetime(2099, 1, 1, tzinfo=UTC)},
            {"args": [1]},  # no trigger: taskiq ignores it, so do we
        ],
    )
    async def report() -> None:
        pass

    found = schedules.observe(TaskiqAdapter(broker=broker), now=at("2026-05-01T00:00:00+00:00"))
    assert [(s.source, s.name, s.task, s.kind) for s in found] == [
        ("taskiq_labels", "morning", "labels.report", "cron"),
        ("taskiq_labels", "labels.report[1]", "labels.report", "interval"),
        ("taskiq_labels", "labels.report[2]", "labels.report", "oneshot"),
    ]
    assert found[0].next_runs[0] == at("2026-05-01T04:00:00+00:00")
    assert found[1].next_runs == [], "outside the scheduler's process the anchor is unknown"
    assert found[2].next_runs == [at("2099-01-01T00:00:00+00:00")]


def test_in_the_scheduler_process_intervals_run_from_its_start() -> None:
    broker = InMemoryBroker()
    broker.is_scheduler_process = True

    @broker.task(task_name="labels.tick", schedule=[{"interval": 10}])
    async def tick() -> None:
        pass

    adapter = TaskiqAdapter(broker=broker, started_at=1000.0)
    (found,) = schedules.observe(adapter, now=1025.0)
    assert found.next_runs[:3] == [1030.0, 1040.0, 1050.0]


# -- taskiq-redis sources, stored in Redis -------------------------------------------------------


def _schedules() -> list[ScheduledTask]:
    return [
        ScheduledTask(
            task_name="redis.cron",
            labels={},
            args=[1],
            kwargs={},
            schedule_id="cron-berlin",
            cron="0 7 * * 1-5",
            cron_offset="Europe/Berlin",
        ),
        ScheduledTask(
            task_name="redis.once",
            labels={},
            args=[],
            kwargs={},
            schedule_id="once",
            time=datetime.datetime(2099, 6, 1, 12, 30, tzinfo=UTC),
        ),
        ScheduledTask(
            task_name="redis.every",
            labels={},
            args=[],
            kwargs={},
            schedule_id="every",
            interval=datetime.timedelta(minutes=5),
        ),
    ]


def _check(found: list[Any], source: str) -> None:
    by_name = {s.name: s for s in found if s.source == source}
    assert set(by_name) == {"cron-berlin", "once", "every"}, found
    cron = by_name["cron-berlin"]
    assert (cron.task, cron.kind, cron.expression) == (
        "redis.cron",
        "cron",
        "0 7 * * 1-5 (Europe/Berlin)",
    )
    now = cron.next_runs[0] - 1
    expected = taskiq_runs("0 7 * * 1-5", "Europe/Berlin", now, schedules.NEXT_RUNS, days=20)
    assert cron.next_runs == expected
    # adopt reads the same schedule, with its arguments, from the source's own decoding
    from z4j_core.scheduling.adopt import adopt

    adoption = adopt(msgspec.to_builtins(cron), datetime.datetime.fromtimestamp(now, UTC))
    assert adoption.args == [1] and adoption.schedule["timezone"] == "Europe/Berlin"
    assert "delete_schedule('cron-berlin')" in adoption.remove
    assert by_name["once"].next_runs == [at("2099-06-01T12:30:00+00:00")]
    assert by_name["every"].expression == "every 300s"


def _run(coroutine: Any) -> Any:
    import asyncio

    return asyncio.run(coroutine)


@pytest.mark.redis
@pytest.mark.parametrize("serializer", [None, JSONSerializer()], ids=["pickle", "json"])
def test_list_redis_schedule_source_read_with_its_own_serializer(
    redis_url: str, serializer: Any
) -> None:
    from taskiq_redis import ListRedisScheduleSource

    prefix = f"z4j-units-{id(serializer)}"
    source = ListRedisScheduleSource(redis_url, prefix=prefix, serializer=serializer)

    async def add() -> None:
        for item in _schedules():
            await source.add_schedule(item)
        await source.shutdown()
        await source._connection_pool.disconnect()

    _run(add())
    try:
        broker = InMemoryBroker()
        adapter = TaskiqAdapter(broker=broker, sources=[source])
        _check(schedules.observe(adapter), schedules.SOURCE_REDIS_LIST)
        assert source._is_first_run, "observing changed the source's state"
    finally:
        _delete_prefix(redis_url, prefix)


@pytest.mark.redis
def test_redis_schedule_source_read_with_its_own_serializer(redis_url: str) -> None:
    from taskiq_redis import RedisScheduleSource

    prefix = "z4j-units-keys"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # taskiq-redis deprecates it
        source = RedisScheduleSource(redis_url, prefix=prefix, serializer=JSONSerializer())

    async def add() -> None:
        for item in _schedules():
            await source.add_schedule(item)
        await source.shutdown()
        await source.connection_pool.disconnect()

    _run(add())
    try:
        adapter = TaskiqAdapter(broker=InMemoryBroker(), sources=[source])
        _check(schedules.observe(adapter), schedules.SOURCE_REDIS)
    finally:
        _delete_prefix(redis_url, prefix)


def _delete_prefix(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
    finally:
        client.close()
