"""Adopting RQ schedules: what `z4j schedules adopt` makes from an `rq cron` job or an
rq-scheduler job fires when RQ itself would enqueue it (`rq.cron.CronJob`'s own next enqueue
time in the host's zone; rq-scheduler's `crontab` next time and interval), with the job's
arguments and queue; what z4j cannot say (a repeat count, a job timeout) is a difference, and a
one-off scheduled job is refused."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from redis import Redis
from rq.cron import CronJob, CronScheduler

from z4j_core.scheduling import schedule_from_dict
from z4j_core.scheduling.adopt import NotAdoptable, adopt, compare, mismatches
from z4j_rq import schedules
from z4j_rq.adapter import RQAdapter

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


@pytest.fixture(params=["UTC", "Europe/Berlin", "America/New_York"])
def host_zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process's local zone (RQ reads crons in it), restored after."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def builtins(observed: Any) -> dict[str, Any]:
    return msgspec.to_builtins(observed)  # type: ignore[no-any-return]


def rq_cron_runs(expression: str, after: datetime.datetime, count: int) -> list[datetime.datetime]:
    """RQ's own answer: `CronJob.get_next_enqueue_time` from each enqueue to the next."""
    job = CronJob(func=print, queue_name="default", cron=expression)
    runs, moment = [], after
    for _ in range(count):
        job.latest_enqueue_time = moment
        moment = job.get_next_enqueue_time()
        runs.append(moment)
    return runs


# Expressions whose day rule croniter and z4j read alike; `0 0 */2 * 1` is read differently
# (croniter: odd days OR Mondays; Vixie cron and z4j: odd days that are Mondays).
EXPRESSIONS = ["*/15 9-17 * * 1-5", "30 2 * * *", "0 0 13 * 5", "0 */3 1,15 * *", "45 1 * * 0"]
NOWS = [
    datetime.datetime(2026, 3, 7, 12, 0, tzinfo=UTC),  # New York springs forward on the 8th
    datetime.datetime(2026, 10, 24, 20, 0, tzinfo=UTC),  # Berlin falls back on the 25th
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_an_adopted_rq_cron_job_fires_when_rq_enqueues_it(
    adapter: RQAdapter, connection: Redis, host_zone: str, expression: str
) -> None:
    cron = CronScheduler(connection=connection, name="adopt-cron")
    cron.register(print, "reports", args=(1, "x"), kwargs={"k": [2]}, cron=expression, ttl=30)
    cron.register_birth()
    for now in NOWS:
        (observed,) = schedules.observe_rq_cron(adapter, now.timestamp())
        adoption = adopt(builtins(observed), now)
        assert adoption.schedule["timezone"] == host_zone
        assert (adoption.task, adoption.args, adoption.kwargs) == (
            "builtins.print",
            [1, "x"],
            {"k": [2]},
        )
        assert adoption.options == {"queue": "reports", "expires_seconds": 30.0}
        assert adoption.differences == [] and "rq cron" in adoption.remove
        brain = schedule_from_dict(adoption.schedule).slots(now, 10)
        native = rq_cron_runs(expression, now, 10)
        if brain != native:
            # Only on a DST date, where croniter and z4j place a skipped or repeated time
            # differently; adopt's note says so, and its comparison shows the rows.
            zone = schedule_from_dict(adoption.schedule).timezone
            horizon = min(brain[-1], native[-1])
            dates = {s.astimezone(zone).date() for s in set(brain) ^ set(native) if s <= horizon}
            assert dates <= {datetime.date(2026, 3, 8), datetime.date(2026, 10, 25)}, (zone, dates)
            assert any("DST" in n or "spring-forward" in n for n in adoption.notes)
            continue
        assert not mismatches(compare(adoption, observed.next_runs, now))


def test_a_day_rule_croniter_reads_otherwise_shows_as_a_difference(
    adapter: RQAdapter, connection: Redis
) -> None:
    cron = CronScheduler(connection=connection, name="adopt-cron")
    cron.register(print, "default", cron="0 0 */2 * 1")
    cron.register_birth()
    now = NOWS[0]
    (observed,) = schedules.observe_rq_cron(adapter, now.timestamp())
    adoption = adopt(builtins(observed), now, tz="UTC")
    assert mismatches(compare(adoption, observed.next_runs, now))


def test_an_rq_cron_interval_keeps_its_grid(adapter: RQAdapter, connection: Redis) -> None:
    cron = CronScheduler(connection=connection, name="adopt-cron")
    cron.register(print, "reports", interval=600, name="every-ten")
    cron.register_birth()
    latest = time.time() - 100
    connection.zadd("rq:cron_jobs", {"every-ten": latest})
    now = datetime.datetime.now(UTC)
    (observed,) = schedules.observe_rq_cron(adapter, now.timestamp())
    adoption = adopt(builtins(observed), now)
    job = CronJob(func=print, queue_name="reports", interval=600)
    job.latest_enqueue_time = datetime.datetime.fromtimestamp(latest, UTC)
    first = job.get_next_enqueue_time()
    slots = schedule_from_dict(adoption.schedule).slots(now, 3)
    assert [s.timestamp() for s in slots] == pytest.approx(
        [first.timestamp() + 600 * k for k in range(3)]
    )


def test_a_cron_scheduler_on_another_host_asks_for_its_zone(
    adapter: RQAdapter, connection: Redis
) -> None:
    cron = CronScheduler(connection=connection, name="elsewhere")
    cron.register(print, "default", cron="0 3 * * *")
    cron.register_birth()
    connection.hset("rq:cron_scheduler:elsewhere", "hostname", "another-host")
    (observed,) = schedules.observe_rq_cron(adapter, time.time())
    with pytest.raises(NotAdoptable, match="--tz"):
        adopt(builtins(observed), datetime.datetime.now(UTC))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_rq_scheduler_jobs(adapter: RQAdapter, connection: Redis, host_zone: str) -> None:
    from crontab import CronTab
    from rq_scheduler import Scheduler

    scheduler = Scheduler(connection=connection)
    scheduler.cron("0 3 * * 1-5", func=print, args=[5], queue_name="q", id="weekdays")
    scheduler.cron("0 4 * * *", func=print, repeat=2, id="twice")
    start = datetime.datetime(2031, 5, 1, 12, 0)  # naive UTC
    scheduler.schedule(start, print, interval=300, id="five-min")
    scheduler.enqueue_at(datetime.datetime(2031, 6, 1, 8, 30), print, job_id="once")
    now = datetime.datetime.now(UTC)
    observed = {
        s.name: builtins(s) for s in schedules.observe_rq_scheduler(adapter, now.timestamp())
    }
    weekdays = adopt(observed["weekdays"], now)
    assert (weekdays.args, weekdays.options["queue"]) == ([5], "q")
    assert weekdays.schedule["timezone"] == host_zone and "cancel('weekdays')" in weekdays.remove
    # rq-scheduler's own next times: crontab's `next` on the local wall clock.
    native, moment = [], datetime.datetime.now()
    for _ in range(5):
        moment = CronTab("0 3 * * 1-5").next(now=moment, return_datetime=True)
        native.append(moment.astimezone(UTC))
        moment += datetime.timedelta(seconds=1)
    assert schedule_from_dict(weekdays.schedule).slots(now, 5) == native
    assert adopt(observed["twice"], now).differences == [
        "repeat 2 more times: z4j has no equivalent"
    ]
    five = adopt(observed["five-min"], now)
    epoch = start.replace(tzinfo=UTC).timestamp()
    assert [s.timestamp() for s in schedule_from_dict(five.schedule).slots(now, 2)] == [
        epoch,
        epoch + 300,
    ]
    once = adopt(observed["once"], now)
    assert once.schedule["kind"] == "oneshot"
    assert once.schedule["at"].startswith("2031-06-01T08:30:00")


def test_a_job_in_a_scheduled_registry_is_refused(adapter: RQAdapter, connection: Redis) -> None:
    from rq import Queue

    at = datetime.datetime(2032, 1, 2, 3, 4, 5, tzinfo=UTC)
    Queue("reports", connection=connection).enqueue_at(at, "os.getcwd", job_id="waiting")
    (waiting,) = [s for s in schedules.observe(adapter) if s.source == "rq_scheduled"]
    with pytest.raises(NotAdoptable, match="not a schedule: it runs once by itself"):
        adopt(builtins(waiting), datetime.datetime.now(UTC))
