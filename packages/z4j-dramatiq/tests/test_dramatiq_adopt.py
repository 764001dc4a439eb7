"""Adopting Dramatiq's periodic actors: what `z4j schedules adopt` makes from a periodiq spec
fires at the minutes periodiq's own `validate` accepts (its day rule and its Sunday included),
and from a dramatiq-crontab job at the times its APScheduler trigger gives, with the actor's
queue."""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo

import dramatiq
import msgspec
import pytest
from dramatiq.brokers.stub import StubBroker
from periodiq import PeriodiqMiddleware, cron

from z4j_core.scheduling import schedule_from_dict
from z4j_core.scheduling.adopt import NotAdoptable, adopt, compare, mismatches
from z4j_dramatiq import schedules

UTC = datetime.timezone.utc
pytestmark = pytest.mark.timeout(120)


def builtins(observed: Any) -> dict[str, Any]:
    return msgspec.to_builtins(observed)  # type: ignore[no-any-return]


def periodiq_runs(spec: str, after: datetime.datetime, count: int) -> list[datetime.datetime]:
    """periodiq's own answer: the minutes its `validate` accepts (its scheduler sends an actor
    when `validate(now)` is true), asked minute by minute."""
    parsed = cron(spec)
    moment = after.replace(second=0, microsecond=0)
    runs: list[datetime.datetime] = []
    for _ in range(366 * 24 * 60):
        moment += datetime.timedelta(minutes=1)
        if parsed.validate(moment):
            runs.append(moment.astimezone(UTC))
            if len(runs) == count:
                break
    return runs


SPECS = [
    "*/15 9-17 * * 1-5",
    "30 3 1 * *",
    "0 0 13 * 5",  # both restricted: periodiq ORs them
    "0 0 */2 * 1",  # `*/2` has fewer than 31 values: periodiq ORs (Vixie cron would AND)
    "0 12 * * 0,3",  # periodiq never matches 0 (Sunday is isoweekday 7): Wednesdays only
    "0 12 * * 0-6",  # 7 values of 0-7: not restricted, and Sunday still never matches
    "5,35 */6 * 6,8 *",
    "@hourly",
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
@pytest.mark.parametrize("spec", SPECS)
def test_an_adopted_periodiq_actor_fires_when_periodiq_sends_it(
    spec: str, zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = StubBroker()
    broker.add_middleware(PeriodiqMiddleware())

    @dramatiq.actor(broker=broker, periodic=cron(spec), queue_name="reports")
    def job() -> None:
        pass

    monkeypatch.setattr(schedules, "local_zone_name", lambda: zone)
    now = datetime.datetime(2026, 5, 12, 22, 7, 30, tzinfo=ZoneInfo(zone))
    [observed] = schedules.observe(broker, now)
    adoption = adopt(builtins(observed), now)
    assert adoption.options == {"queue": "reports"} and adoption.differences == []
    assert "periodic=cron" in adoption.remove
    brain = schedule_from_dict(adoption.schedule).slots(now, 10)
    assert brain == periodiq_runs(spec, now, 10), adoption.schedule
    assert not mismatches(compare(adoption, observed.next_runs, now))


def test_a_sunday_only_periodiq_spec_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = StubBroker()
    broker.add_middleware(PeriodiqMiddleware())

    @dramatiq.actor(broker=broker, periodic=cron("0 0 * * sun"))
    def weekly() -> None:
        pass

    monkeypatch.setattr(schedules, "local_zone_name", lambda: "UTC")
    [observed] = schedules.observe(broker, datetime.datetime(2026, 1, 1, tzinfo=UTC))
    assert periodiq_runs("0 0 * * sun", datetime.datetime(2026, 1, 1, tzinfo=UTC), 1) == []
    with pytest.raises(NotAdoptable, match="periodiq never runs it"):
        adopt(builtins(observed), datetime.datetime(2026, 1, 1, tzinfo=UTC))


def test_dramatiq_crontab_jobs_are_adopted_at_their_triggers_times() -> None:
    django_conf = pytest.importorskip("django.conf")
    if not django_conf.settings.configured:
        django_conf.settings.configure(TIME_ZONE="Europe/Berlin", USE_TZ=True)
    import dramatiq_crontab

    broker = StubBroker()

    @dramatiq.actor(broker=broker, queue_name="mail")
    def report() -> None:
        pass

    @dramatiq.actor(broker=broker)
    def heartbeat() -> None:
        pass

    dramatiq_crontab.cron("15 6 1-7 * Mon-Fri")(report)
    dramatiq_crontab.interval(seconds=90)(heartbeat)
    try:
        now = datetime.datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
        observed = {s.task: s for s in schedules.observe(broker, now)}
        jobs = {job.name: job for job in dramatiq_crontab.scheduler.get_jobs()}
        for task in ("report", "heartbeat"):
            adoption = adopt(builtins(observed[task]), now)
            assert adoption.differences == [] and "crontab command" in adoption.remove
            trigger = jobs[observed[task].name].trigger
            native = [
                datetime.datetime.fromtimestamp(t, UTC)
                for t in schedules.trigger_runs(trigger, now, 10)
            ]
            assert schedule_from_dict(adoption.schedule).slots(now, 10) == native, task
            assert not mismatches(compare(adoption, observed[task].next_runs, now))
        report_adoption = adopt(builtins(observed["report"]), now)
        assert report_adoption.schedule["day_and"] is True
        assert report_adoption.options == {"queue": "mail"}
    finally:
        for job in dramatiq_crontab.scheduler.get_jobs():
            job.remove()
