"""A Celery app with a varied static `beat_schedule`, in Europe/Berlin, for the beat tests (and
for the `celery beat` process they run to write a persistent schedule file)."""

from __future__ import annotations

import datetime
import os

from celery import Celery
from celery.schedules import crontab, solar

app = Celery("z4j-beat", broker=os.environ.get("CELERY_BEAT_BROKER", "memory://"))
app.conf.update(
    timezone="Europe/Berlin",
    beat_schedule_filename=os.environ.get("CELERY_BEAT_FILE", "celerybeat-schedule"),
    beat_schedule={
        # Celery: the first Monday of each month only (day-of-month AND day-of-week).
        "first-monday": {
            "task": "beat.report",
            "schedule": crontab(minute=0, hour=12, day_of_month="1-7", day_of_week="mon"),
            "args": ("monthly", 3),
            "options": {"queue": "reports"},
        },
        "weekday-mornings": {
            "task": "beat.digest",
            "schedule": crontab(minute="*/20", hour="7-9", day_of_week="mon-fri"),
            "kwargs": {"kind": "digest"},
        },
        "every-ten-minutes": {
            "task": "beat.tick",
            "schedule": datetime.timedelta(minutes=10),
        },
        "every-second": {"task": "beat.second", "schedule": 1.0},
        "sunrise-berlin": {"task": "beat.lights", "schedule": solar("sunrise", 52.52, 13.40)},
    },
)
