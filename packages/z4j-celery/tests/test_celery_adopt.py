"""Adopting celery beat schedules (static, django-celery-beat, redbeat): the brain schedule
`z4j schedules adopt` makes from what the adapter observes fires when celery beat itself says
the entry runs (`crontab.remaining_delta` in the app's zone, with Celery's AND of the day
fields; an interval from its last run), with the entry's task, arguments and queue."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from celery import Celery
from celery.schedules import crontab, schedule, solar
from celery_beat_app import app as beat_app

from z4j_celery import schedules
from z4j_core.scheduling import schedule_from_dict
from z4j_core.scheduling.adopt import adopt, compare, mismatches

HERE = Path(__file__).parent
UTC = datetime.timezone.utc


def celery_runs(
    entry: Any, app: Celery, after: datetime.datetime, count: int
) -> list[datetime.datetime]:
    """Celery's own answer: each next run is `remaining_delta` from the previous one."""
    entry.app = app
    runs, moment = [], after.astimezone(ZoneInfo(str(app.conf.timezone)))
    for _ in range(count):
        last, delta, _now = entry.remaining_delta(moment)
        moment = last + delta
        runs.append(moment.astimezone(UTC))
    return runs


def builtins(observed: Any) -> dict[str, Any]:
    return msgspec.to_builtins(observed)  # type: ignore[no-any-return]


CRONTABS: list[dict[str, Any]] = [
    {"minute": 0, "hour": 12, "day_of_month": "1-7", "day_of_week": "mon"},
    {"minute": "*/20", "hour": "7-9", "day_of_week": "mon-fri"},
    {"minute": 0, "hour": 0, "day_of_month": 13, "day_of_week": 5},  # Friday the 13th only
    {"minute": 30, "hour": "*/2"},
    {"minute": 15, "hour": 3, "month_of_year": "1,4,7,10", "day_of_month": 1},
    {"minute": "0,30", "hour": "1-3", "day_of_week": "sun"},  # around Berlin's DST changes
]
NOWS = [
    datetime.datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
    datetime.datetime(2026, 10, 24, 23, 59, tzinfo=UTC),  # Berlin falls back that night
    datetime.datetime(2027, 1, 4, 11, 30, tzinfo=UTC),
]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "UTC"])
@pytest.mark.parametrize("index", range(len(CRONTABS)))
def test_an_adopted_crontab_fires_when_celery_beat_runs_it(index: int, zone: str) -> None:
    app = Celery("adopt", broker="memory://")
    app.conf.update(
        timezone=zone,
        beat_schedule={
            "entry": {
                "task": "beat.report",
                "schedule": crontab(**CRONTABS[index]),
                "args": ("monthly", 3),
                "kwargs": {"kind": "digest"},
                "options": {"queue": "reports", "priority": 5, "expires": 30},
            }
        },
    )
    for now in NOWS:
        (observed,) = schedules.observe_static(app, now, schedules.zone_name(app), {})
        adoption = adopt(builtins(observed), now)
        assert (adoption.task, adoption.args, adoption.kwargs) == (
            "beat.report",
            ["monthly", 3],
            {"kind": "digest"},
        )
        assert adoption.options == {"queue": "reports", "priority": 5, "expires_seconds": 30.0}
        assert adoption.differences == [] and "beat_schedule" in adoption.remove
        assert adoption.schedule["day_and"] is True and adoption.schedule["timezone"] == zone
        brain = schedule_from_dict(adoption.schedule).slots(now, 10)
        expected = celery_runs(crontab(**CRONTABS[index]), app, now, 10)
        if zone == "Europe/Berlin" and now == NOWS[1]:
            # 02:00-02:59 repeats that night: celery beat runs each wall time once, z4j runs a
            # periodic hour (`*/2`) at both: adopt says so in a note; every other fire agrees.
            assert any("DST" in n for n in adoption.notes)
            horizon = min(brain[-1], expected[-1])
            differ = {s for s in set(brain) ^ set(expected) if s <= horizon}
            assert {s.astimezone(ZoneInfo(zone)).date() for s in differ} <= {
                datetime.date(2026, 10, 25)
            }, (brain, expected)
            assert bool(differ) == (index == 3), differ
            continue
        assert brain == expected, (now, brain, expected)
        assert not mismatches(compare(adoption, observed.next_runs, now))


def test_an_adopted_interval_keeps_celery_beats_times_from_the_last_run() -> None:
    now = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    last = now - datetime.timedelta(seconds=250)
    observed = schedules.observe_static(beat_app, now, "Europe/Berlin", {"every-ten-minutes": last})
    ten = next(o for o in observed if o.name == "every-ten-minutes")
    adoption = adopt(builtins(ten), now)
    assert adoption.schedule["kind"] == "interval" and adoption.schedule["every"] == 600
    entry = schedule(datetime.timedelta(minutes=10), nowfun=lambda: now, app=beat_app)
    # Celery: due `remaining_estimate(last)` from now, then every run_every after it.
    first = now + entry.remaining_estimate(last)
    expected = [first + datetime.timedelta(minutes=10 * k) for k in range(5)]
    assert schedule_from_dict(adoption.schedule).slots(now, 5) == expected
    assert any("counts each interval from the previous run" in n for n in adoption.notes)


def test_a_solar_entry_is_adopted_only_with_its_difference_said() -> None:
    now = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    observed = schedules.observe_static(beat_app, now, "Europe/Berlin", {})
    sunrise = next(o for o in observed if o.name == "sunrise-berlin")
    adoption = adopt(builtins(sunrise), now)
    assert adoption.schedule["kind"] == "solar" and adoption.schedule["event"] == "sunrise"
    assert any("within a minute" in d for d in adoption.differences)
    assert isinstance(solar("sunrise", 52.52, 13.40), solar)


def test_an_option_z4j_cannot_carry_is_a_difference() -> None:
    app = Celery("adopt", broker="memory://")
    app.conf.beat_schedule = {
        "routed": {"task": "t", "schedule": crontab(minute=0), "options": {"routing_key": "r"}}
    }
    (observed,) = schedules.observe_static(app, NOWS[0], "UTC", {})
    assert adopt(builtins(observed), NOWS[0]).differences == [
        "option 'routing_key': z4j has no equivalent"
    ]


def test_secret_looking_arguments_are_withheld_and_asked_for() -> None:
    app = Celery("adopt", broker="memory://")
    app.conf.beat_schedule = {
        "login": {"task": "t", "schedule": crontab(minute=0), "kwargs": {"password": "hunter2"}}
    }
    (observed,) = schedules.observe_static(app, NOWS[0], "UTC", {})
    assert "hunter2" not in json.dumps(builtins(observed))
    with pytest.raises(ValueError, match=r"secret-looking key 'password'.*--kwargs"):
        adopt(builtins(observed), NOWS[0])
    given = adopt(builtins(observed), NOWS[0], kwargs={"password_file": "/run/secret"})
    assert given.kwargs == {"password_file": "/run/secret"}


def test_a_django_celery_beat_task_fires_when_celery_runs_it(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, str(HERE / "celery_django_beat.py"), str(tmp_path / "db.sqlite3")],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    observed = {o["name"]: o for o in json.loads(done.stdout.strip().splitlines()[-1])}
    monday = observed["second-monday"]
    now = datetime.datetime.now(UTC)
    adoption = adopt(monday, now)
    assert adoption.schedule["timezone"] == "America/New_York"
    assert (adoption.args, adoption.options) == ([1, 2], {"queue": "dj"})
    assert "PeriodicTask" in adoption.remove
    app = Celery("ny", broker="memory://")
    app.conf.timezone = "America/New_York"
    entry = crontab(minute="30", hour="6", day_of_week="1", day_of_month="8-14")
    assert schedule_from_dict(adoption.schedule).slots(now, 10) == celery_runs(entry, app, now, 10)
    assert not mismatches(compare(adoption, monday["next_runs"], now))


@pytest.mark.redis
def test_redbeat_entries_are_adopted_at_the_times_redbeat_runs_them(redis_url: str) -> None:
    from redbeat import RedBeatSchedulerEntry

    prefix = f"z4j-redbeat-{uuid.uuid4().hex[:8]}:"
    app = Celery("z4j-redbeat", broker=redis_url)
    app.conf.update(redbeat_redis_url=redis_url, redbeat_key_prefix=prefix, timezone="UTC")
    cron = crontab(minute=15, hour="*/6")
    RedBeatSchedulerEntry("six-hourly", "rb.report", cron, args=[7], app=app).save()
    RedBeatSchedulerEntry("every-45s", "rb.tick", datetime.timedelta(seconds=45), app=app).save()
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        scores = dict(client.zrange(prefix + ":schedule", 0, -1, withscores=True))
        now = datetime.datetime.now(UTC)
        found = {o.name: o for o in schedules.observe(app, now)}
        six = adopt(builtins(found["six-hourly"]), now)
        assert six.args == [7] and "RedBeatSchedulerEntry" in six.remove
        first = datetime.datetime.fromtimestamp(scores[(prefix + "six-hourly").encode()], UTC)
        assert schedule_from_dict(six.schedule).slots(now, 10) == celery_runs(cron, app, now, 10)
        # redbeat scores an entry a moment before it is due (when it wakes to check it)
        due = schedule_from_dict(six.schedule).next_after(now)
        assert due is not None and abs((due - first).total_seconds()) < 2
        tick = adopt(builtins(found["every-45s"]), now)
        start = scores[(prefix + "every-45s").encode()]
        assert [s.timestamp() for s in schedule_from_dict(tick.schedule).slots(now, 3)] == [
            start,
            start + 45,
            start + 90,
        ]
    finally:
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)
        client.close()
