"""celery beat for the classic-scheduler comparison: FIRE_BEAT_COUNT entries of
FIRE_BEAT_PERIOD seconds (timedelta schedules) sending `fire.tick`, run by
`celery -A fire_beat beat -S fire_beat:RecordingScheduler`.

`RecordingScheduler` is beat's default `PersistentScheduler` with two additions that change
nothing in how it schedules: at start each entry's `last_run_at` is set so that the first runs
are spread evenly over one period from FIRE_BEAT_BASE (z4j's anchors; beat alone would start
every entry one period after it starts), and `apply_entry` appends, after the task is
published to the broker, "<entry> <due> <published>" to FIRE_BEAT_LOG, where due is the
instant beat itself computed for that run (`last_run_at + run_every`).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

os.environ["FIRE_NO_AGENT"] = "1"  # beat's process has no agent

from celery.beat import PersistentScheduler
from fire_celery import app

COUNT = int(os.environ.get("FIRE_BEAT_COUNT", "1000"))
PERIOD = float(os.environ.get("FIRE_BEAT_PERIOD", "1"))
BASE = float(os.environ.get("FIRE_BEAT_BASE", "0"))
LOG = os.environ.get("FIRE_BEAT_LOG", "")

app.conf.beat_schedule = {
    f"b{i:05d}": {"task": "fire.tick", "schedule": timedelta(seconds=PERIOD)} for i in range(COUNT)
}


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


class RecordingScheduler(PersistentScheduler):  # type: ignore[misc]
    def setup_schedule(self) -> None:
        super().setup_schedule()
        if BASE:
            for name, entry in self.schedule.items():
                if name.startswith("b") and name[1:].isdigit():
                    first = BASE + int(name[1:]) * PERIOD / COUNT
                    entry.last_run_at = datetime.fromtimestamp(first - PERIOD, timezone.utc)
        self._log = open(LOG, "a", buffering=1) if LOG else None  # noqa: SIM115

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        due = _epoch(entry.last_run_at) + entry.schedule.run_every.total_seconds()
        super().apply_entry(entry, producer=producer)
        if self._log is not None:
            published = datetime.now(timezone.utc).timestamp()
            self._log.write(f"{entry.name} {due:.6f} {published:.6f}\n")
