"""Observing celery beat, read-only: a varied static `beat_schedule` in Europe/Berlin checked
against Celery's own schedule arithmetic; last runs from the file a real `celery beat` wrote;
django-celery-beat periodic tasks (Django on SQLite); redbeat entries in real Redis."""

from __future__ import annotations

import datetime
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab
from celery_beat_app import app as beat_app

from z4j_celery import schedules

HERE = Path(__file__).parent
BERLIN = ZoneInfo("Europe/Berlin")
UTC = datetime.timezone.utc


def by_name(observed: list[schedules.ObservedSchedule]) -> dict[str, schedules.ObservedSchedule]:
    return {o.name: o for o in observed}


def celery_next_runs(entry: crontab, after: datetime.datetime, count: int) -> list[float]:
    """Celery's own answer: each next run is `remaining_delta` from the previous one."""
    runs, moment = [], after
    for _ in range(count):
        last, delta, _now = entry.remaining_delta(moment)
        moment = last + delta
        runs.append(moment.timestamp())
    return runs


@pytest.mark.parametrize(
    "now",
    [
        datetime.datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
        datetime.datetime(2026, 10, 24, 23, 59, tzinfo=UTC),  # DST ends in Berlin that night
        datetime.datetime(2027, 1, 4, 11, 30, tzinfo=UTC),  # a first Monday, before noon
    ],
)
def test_crontabs_render_and_run_as_celery_beat_computes_them(now: datetime.datetime) -> None:
    observed = by_name(schedules.observe_static(beat_app, now, "Europe/Berlin", {}))
    first_monday = observed["first-monday"]
    assert first_monday.kind == "cron"
    assert first_monday.expression.startswith("0 12 1-7 * 1 (day and weekday) (Europe/Berlin)")
    assert "args=['monthly', 3]" in first_monday.expression
    assert "queue=reports" in first_monday.expression
    assert first_monday.read_only is True
    mornings = observed["weekday-mornings"]
    assert mornings.expression.startswith("*/20 7-9 * * 1-5 (Europe/Berlin)"), mornings
    assert "kwargs=['kind']" in mornings.expression, "kwarg values are not shown"
    for name in ("first-monday", "weekday-mornings"):
        entry = beat_app.conf.beat_schedule[name]["schedule"]
        entry.app = beat_app
        expected = celery_next_runs(entry, now.astimezone(BERLIN), schedules.NEXT_RUNS)
        assert observed[name].next_runs == expected, name
    # Celery's AND: every first-Monday run is a Monday within the 1st-7th, at noon in Berlin
    for run in first_monday.next_runs:
        local = datetime.datetime.fromtimestamp(run, BERLIN)
        assert (local.weekday(), local.hour, local.day <= 7) == (0, 12, True), local


def test_intervals_and_solar_events() -> None:
    now = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    observed = by_name(schedules.observe_static(beat_app, now, "Europe/Berlin", {}))
    ten = observed["every-ten-minutes"]
    assert (ten.kind, ten.expression) == ("interval", "every 600s")
    assert ten.next_runs[:2] == [now.timestamp() + 600, now.timestamp() + 1200]
    assert observed["every-second"].expression == "every 1s"
    # Celery's solar schedule measures from the real clock: compare against it now.
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    sunrise = by_name(schedules.observe_static(beat_app, now, "Europe/Berlin", {}))[
        "sunrise-berlin"
    ]
    assert (sunrise.kind, sunrise.expression) == ("solar", "sunrise at 52.52,13.4")
    entry = beat_app.conf.beat_schedule["sunrise-berlin"]["schedule"]
    entry.app = beat_app
    # Celery (ephem) and z4j (astral) agree on the event within a minute.
    celery_first = (now + entry.remaining_estimate(now)).timestamp()
    if celery_first - now.timestamp() < 120:
        now += datetime.timedelta(minutes=5)  # at sunrise itself: compare the next day's
        sunrise = by_name(schedules.observe_static(beat_app, now, "Europe/Berlin", {}))[
            "sunrise-berlin"
        ]
        celery_first = (now + entry.remaining_estimate(now)).timestamp()
    assert abs(sunrise.next_runs[0] - celery_first) < 60, (sunrise.next_runs[0], celery_first)


def test_last_runs_come_from_the_file_a_real_celery_beat_wrote(
    tmp_path: Path, redis_url: str
) -> None:
    schedule_file = tmp_path / "celerybeat-schedule"
    env = {
        **os.environ,
        "CELERY_BEAT_BROKER": redis_url,
        "CELERY_BEAT_FILE": str(schedule_file),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    log = tmp_path / "beat.log"
    with open(log, "wb") as out:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_beat_app", "beat",
             "--schedule", str(schedule_file), "--max-interval", "1", "--loglevel", "INFO"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while log.read_text().count("Scheduler: Sending due task every-second") < 2:
            assert time.monotonic() < deadline, log.read_text()
            assert beat.poll() is None, log.read_text()
            time.sleep(0.2)
    finally:
        beat.send_signal(signal.SIGTERM)
        beat.wait(20)
    beat_app.conf.beat_schedule_filename = str(schedule_file)
    last = schedules.last_runs(beat_app)
    assert "every-second" in last, last
    ran = last["every-second"]
    assert abs(ran.timestamp() - time.time()) < 60, ran
    observed = by_name(schedules.observe(beat_app))
    assert f"last run {ran.astimezone(UTC).isoformat(timespec='seconds')}" in (
        observed["every-second"].expression
    )
    redis_client_cleanup(redis_url)


def redis_client_cleanup(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete("celery")  # the tasks beat sent to the default queue (nobody consumes)
    finally:
        client.close()


def test_django_celery_beat_periodic_tasks(tmp_path: Path) -> None:
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
    assert set(observed) == {"second-monday", "every-90s"}, "a disabled task was observed"
    monday = observed["second-monday"]
    assert monday["source"] == "django_celery_beat" and monday["task"] == "django.report"
    assert monday["expression"].startswith(
        "30 6 8-14 * 1 (day and weekday) (America/New_York) [args=[1, 2]; queue=dj]"
    ), monday
    new_york = ZoneInfo("America/New_York")
    for run in monday["next_runs"]:
        local = datetime.datetime.fromtimestamp(run, new_york)
        assert (local.weekday(), local.hour, local.minute) == (0, 6, 30), local
        assert 8 <= local.day <= 14, local
    first = datetime.datetime.fromtimestamp(monday["next_runs"][0], new_york)
    assert first > datetime.datetime.now(new_york)
    tick = observed["every-90s"]
    assert (tick["kind"], tick["expression"]) == ("interval", "every 90s")


@pytest.mark.redis
def test_redbeat_entries_come_from_redis_with_their_scores(redis_url: str) -> None:
    from celery import Celery
    from redbeat import RedBeatSchedulerEntry

    prefix = f"z4j-redbeat-{uuid.uuid4().hex[:8]}:"
    app = Celery("z4j-redbeat", broker=redis_url)
    app.conf.update(redbeat_redis_url=redis_url, redbeat_key_prefix=prefix, timezone="UTC")
    cron = crontab(minute=15, hour="*/6")
    RedBeatSchedulerEntry("six-hourly", "rb.report", cron, args=[7], app=app).save()
    every = datetime.timedelta(seconds=45)
    RedBeatSchedulerEntry("every-45s", "rb.tick", every, app=app).save()
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        scores = dict(client.zrange(prefix + ":schedule", 0, -1, withscores=True))
        observed = by_name(schedules.observe(app))
        six = observed["six-hourly"]
        assert six.source == "redbeat" and six.task == "rb.report"
        assert six.expression.startswith("15 */6 * * * [args=[7]; last run "), six
        assert six.next_runs[0] == scores[(prefix + "six-hourly").encode()]
        assert len(six.next_runs) == schedules.NEXT_RUNS
        assert all(b - a >= 6 * 3600 - 1 for a, b in itertools.pairwise(six.next_runs)), six
        for run in six.next_runs[1:]:
            moment = datetime.datetime.fromtimestamp(run, UTC)
            assert (moment.minute, moment.hour % 6) == (15, 0), moment
        tick = observed["every-45s"]
        assert tick.expression.startswith("every 45s"), tick
        first = scores[(prefix + "every-45s").encode()]
        assert tick.next_runs[:2] == [first, first + 45], tick
    finally:
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)
        client.close()
