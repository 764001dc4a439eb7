"""Run in a subprocess by the beat tests: a Django project on SQLite with django-celery-beat,
some periodic tasks, then what z4j observes (as JSON on stdout)."""

from __future__ import annotations

import json
import sys

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django_celery_beat"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}},
    USE_TZ=True,
    TIME_ZONE="UTC",
)
django.setup()

from celery import Celery  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django_celery_beat.models import (  # noqa: E402
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)

from z4j_celery import schedules  # noqa: E402

call_command("migrate", verbosity=0)
crontab = CrontabSchedule.objects.create(
    minute="30", hour="6", day_of_week="1", day_of_month="8-14", month_of_year="*",
    timezone="America/New_York",
)  # fmt: skip
every = IntervalSchedule.objects.create(every=90, period=IntervalSchedule.SECONDS)
PeriodicTask.objects.create(
    name="second-monday", task="django.report", crontab=crontab, args="[1, 2]", queue="dj"
)
PeriodicTask.objects.create(name="every-90s", task="django.tick", interval=every)
PeriodicTask.objects.create(name="paused", task="django.off", interval=every, enabled=False)

app = Celery("z4j-django", broker="memory://")
observed = schedules.observe(app)
print(json.dumps([
    {"source": o.source, "name": o.name, "task": o.task, "kind": o.kind,
     "expression": o.expression, "next_runs": o.next_runs, "definition": o.definition}
    for o in observed
]))  # fmt: skip
